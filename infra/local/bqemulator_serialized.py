"""Starts bqemulator with REST and Storage Write mutually exclusive, and appends that survive
their client being killed.

1. One lock. bqemulator serves REST on an asyncio loop and gRPC on worker threads, and both use
   one DuckDB connection. Its REST side locks with an asyncio lock and its Storage Write side
   with a thread lock, so a table creation or a query can run inside DuckDB at the same time as
   an append; the two then deadlock and the emulator stops answering. This launcher adds one
   re-entrant lock that every REST request and every DuckDB-touching Storage Write step takes.

2. No thread waits for a client. bqemulator's AppendRows is a synchronous generator, which
   grpc.aio runs on a worker thread of a small pool (cores + 4 threads) that blocks reading the
   client's next request. When a client dies in the middle of an AppendRows call, that read can
   stay blocked for good: each such call keeps a worker, and once every worker is kept no append
   runs again (new calls hang until the client gives up). Here AppendRows is an asynchronous
   handler: it reads the client's requests on the event loop, which notices a client that goes
   away, and hands each request to the emulator's own generator on a thread only once the
   request has arrived, so a worker only ever works, never waits. When the call ends for any
   reason the generator is told that no request follows.

3. Bounded memory: DuckDB's memory is limited (see _MEMORY_LIMIT).

4. No time-travel copies: bqemulator copies the whole table after every append and every DML
   statement (see _capture_asked_only).

`kill -USR1 <pid>` writes the stack of every thread to the log. The emulator's own command line
runs unchanged: `python bqemulator_serialized.py start --rest-port ...`.
"""

import asyncio
import concurrent.futures
import faulthandler
import functools
import os
import queue
import signal
import sys
import threading

import grpc
from bqemulator import cli, server
from bqemulator.storage import engine
from bqemulator.grpc_api import write_servicer
from bqemulator.versioning import snapshots

_DUCKDB = threading.RLock()


def _serialised(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _DUCKDB:
            return method(*args, **kwargs)

    return wrapper


class _SerialisingMiddleware:
    """ASGI middleware: each HTTP request holds the lock while it runs (on the loop thread)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        _DUCKDB.acquire()
        try:
            await self.app(scope, receive, send)
        finally:
            _DUCKDB.release()


_HANDLER = write_servicer.BigQueryWriteHandler
for _name in (
    "_perform_append",
    "_handle_create_write_stream",
    "_handle_finalize_write_stream",
    "_handle_batch_commit_write_streams",
    "_handle_flush_rows",
):
    if hasattr(_HANDLER, _name):
        setattr(_HANDLER, _name, _serialised(getattr(_HANDLER, _name)))

# The threads that run the appends' DuckDB work; they never wait for a client.
_APPEND_WORKERS = concurrent.futures.ThreadPoolExecutor(
    max_workers=8, thread_name_prefix="append-rows"
)
_NO_MORE = object()


class _Requests:
    """The requests the emulator's generator reads: handed over one by one, and an end."""

    def __init__(self):
        self._queue = queue.SimpleQueue()

    def put(self, request):
        self._queue.put(request)

    def __iter__(self):
        return self

    def __next__(self):
        request = self._queue.get()
        if request is _NO_MORE:
            raise StopIteration
        return request


def _next_response(responses):
    return next(responses, _NO_MORE)


def _append_rows_handler(handler):
    """AppendRows on the event loop around the emulator's generator (see point 2 above)."""

    async def append_rows(request_iterator, context):
        loop = asyncio.get_running_loop()
        requests = _Requests()
        responses = handler._handle_append_rows(requests, context)
        try:
            async for request in request_iterator:
                requests.put(request)
                response = await loop.run_in_executor(
                    _APPEND_WORKERS, _next_response, responses
                )
                if response is _NO_MORE:
                    return
                yield response
            requests.put(_NO_MORE)
            while True:
                response = await loop.run_in_executor(
                    _APPEND_WORKERS, _next_response, responses
                )
                if response is _NO_MORE:
                    return
                yield response
        finally:
            # The client finished, failed or went away: whatever the generator waits for, no
            # request follows.
            requests.put(_NO_MORE)

    return grpc.stream_stream_rpc_method_handler(append_rows)


_service = _HANDLER.service


def _service_with_async_appends(self, handler_call_details):
    if handler_call_details.method == write_servicer._APPEND_ROWS:
        return _append_rows_handler(self)
    return _service(self, handler_call_details)


_HANDLER.service = _service_with_async_appends

_create_app = server.create_app


def _create_serialised_app(*args, **kwargs):
    app = _create_app(*args, **kwargs)
    app.add_middleware(_SerialisingMiddleware)
    return app


server.create_app = _create_serialised_app

# DuckDB takes up to 80% of the machine's memory by default, and the emulator keeps every table
# of a test run: the whole end-to-end suite grows it past 15 GB. A limit makes DuckDB spill to its
# temporary directory instead (PG2BQ_BQ_EMULATOR_MEMORY, DuckDB's size syntax, default 3GB).
_MEMORY_LIMIT = os.environ.get("PG2BQ_BQ_EMULATOR_MEMORY", "3GB")
_apply_session_pragmas = engine.DuckDBEngine._apply_session_pragmas


def _limited_session_pragmas(self):
    _apply_session_pragmas(self)
    self._connection.execute("SET memory_limit = ?", [_MEMORY_LIMIT])


engine.DuckDBEngine._apply_session_pragmas = _limited_session_pragmas

# After every append and every DML statement bqemulator copies the whole table into an automatic
# time-travel snapshot (`CREATE TABLE ... AS SELECT *`, kept 7 days). pg2bq never reads a table's
# past, and the copies make the emulator's work and disk grow with the square of a table's size:
# a 2,000,000-row backfill (2,000 appends and a MERGE every 500 ms) wrote 19 GB of DuckDB spill
# files in 3 minutes and filled the disk. Automatic snapshots are skipped (a read "as of" a time
# then reads the live table); the change event (query cache, materialized views) is still
# published, and a snapshot asked for by name (CREATE SNAPSHOT TABLE) is still made.
_capture_snapshot = snapshots.SnapshotManager.capture


def _capture_asked_only(self, project_id, dataset_id, table_id, *, kind="AUTO"):
    if kind == "AUTO":
        return None
    return _capture_snapshot(self, project_id, dataset_id, table_id, kind=kind)


snapshots.SnapshotManager.capture = _capture_asked_only

if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    sys.argv[0] = "bqemulator"
    sys.exit(cli.main())
