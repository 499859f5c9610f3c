"""Starts bqemulator with its REST requests and Storage Write appends mutually exclusive.

bqemulator serves REST on an asyncio loop and gRPC on worker threads, and both use one DuckDB
connection. Its REST side locks with an asyncio lock and its Storage Write side with a thread
lock, so a table creation or a query can run inside DuckDB at the same time as an append; the
two then deadlock and the emulator stops answering. This launcher adds one re-entrant lock that
every REST request and every DuckDB-touching Storage Write step takes, then runs the emulator's
own command line unchanged: `python bqemulator_serialized.py start --rest-port ...`. It also
bounds DuckDB's memory (see _MEMORY_LIMIT).
"""

import functools
import os
import sys
import threading

from bqemulator import cli, server
from bqemulator.storage import engine
from bqemulator.grpc_api import write_servicer

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

if __name__ == "__main__":
    sys.argv[0] = "bqemulator"
    sys.exit(cli.main())
