#!/usr/bin/env bash
# Runs the pg2bq pipeline (writer and capture) on the local stack, as background processes
# with pid files and logs under .local/. Used by `make demo`; `make down` stops it.
#
#   pipeline.sh start   create the topic and push subscription, start writer and capture
#   pipeline.sh stop    stop capture (it flushes and confirms), then the writer
#   pipeline.sh status  one line per process
#
# Settings (environment): PG2BQ_PG_DATABASE, PG2BQ_TOPIC, PG2BQ_SLOT, PG2BQ_PUBLICATION,
# PG2BQ_INCLUDE, PG2BQ_BQ_DATASET_PREFIX, PG2BQ_WRITER_PORT, PG2BQ_HEALTH_PORT, PG2BQ_BIN_DIR.
set -euo pipefail

PIPELINE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/local/lib.sh
source "$PIPELINE_DIR/lib.sh"

[[ -f "$ENV_FILE" ]] || die "the local stack is not up: run 'make up' first"
# shellcheck disable=SC1090
source "$ENV_FILE"

export PG2BQ_PG_DATABASE="${PG2BQ_PG_DATABASE:-pg2bq_demo}"
export PG2BQ_TOPIC="${PG2BQ_TOPIC:-pg2bq-demo-changes}"
export PG2BQ_SLOT="${PG2BQ_SLOT:-pg2bq_demo}"
export PG2BQ_PUBLICATION="${PG2BQ_PUBLICATION:-pg2bq_demo}"
export PG2BQ_INCLUDE="${PG2BQ_INCLUDE:-shop.*}"
export PG2BQ_BQ_DATASET_PREFIX="${PG2BQ_BQ_DATASET_PREFIX:-demo_}"
WRITER_PORT="${PG2BQ_WRITER_PORT:-28180}"
HEALTH_PORT="${PG2BQ_HEALTH_PORT:-28181}"
BIN_DIR="${PG2BQ_BIN_DIR:-$REPO_ROOT/target/debug}"
SUBSCRIPTION="${PG2BQ_TOPIC}-push"

pubsub_put() {
  curl -sf -o /dev/null -X PUT -H 'content-type: application/json' \
    "http://$PUBSUB_EMULATOR_HOST/v1/projects/$PG2BQ_PROJECT/$1" ${2:+-d "$2"}
}

create_topic_and_subscription() {
  pubsub_put "topics/$PG2BQ_TOPIC" || true # already exists is fine
  curl -sf -o /dev/null -X DELETE \
    "http://$PUBSUB_EMULATOR_HOST/v1/projects/$PG2BQ_PROJECT/subscriptions/$SUBSCRIPTION" || true
  pubsub_put "subscriptions/$SUBSCRIPTION" "$(printf '{"topic":"projects/%s/topics/%s","pushConfig":{"pushEndpoint":"http://127.0.0.1:%s/push"},"ackDeadlineSeconds":60}' \
    "$PG2BQ_PROJECT" "$PG2BQ_TOPIC" "$WRITER_PORT")" ||
    die "could not create the push subscription $SUBSCRIPTION on the Pub/Sub emulator"
}

start_writer() {
  [[ -x "$BIN_DIR/writer" ]] || die "$BIN_DIR/writer is missing: run 'make build'"
  PORT="$WRITER_PORT" PG2BQ_LISTEN_ADDRESS=127.0.0.1 PG2BQ_PUSH_AUTH=none PG2BQ_MERGE_INTERVAL_MS=1000 \
    start_detached writer "$BIN_DIR/writer"
  wait_for_service writer "$BIN_DIR/writer" 30 http_ok "http://127.0.0.1:$WRITER_PORT/healthz" ||
    die "the writer did not start; see $(rel "$(logfile_for writer)")"
}

start_capture() {
  [[ -x "$BIN_DIR/capture" ]] || die "$BIN_DIR/capture is missing: run 'make build'"
  PG2BQ_HEALTH_PORT="$HEALTH_PORT" start_detached capture "$BIN_DIR/capture"
  wait_for_service capture "$BIN_DIR/capture" 60 http_ok "http://127.0.0.1:$HEALTH_PORT/healthz" ||
    die "capture did not start streaming; see $(rel "$(logfile_for capture)")"
}

cmd_start() {
  mkdir -p "$LOG_DIR" "$PID_DIR"
  create_topic_and_subscription
  group_alive "$(recorded_pgid writer)" "$BIN_DIR/writer" || start_writer
  group_alive "$(recorded_pgid capture)" "$BIN_DIR/capture" || start_capture
  say "pipeline running: writer on 127.0.0.1:$WRITER_PORT, capture streaming database $PG2BQ_PG_DATABASE"
  say "  logs: $(rel "$(logfile_for capture)"), $(rel "$(logfile_for writer)")"
}

cmd_stop() {
  stop_service capture "$BIN_DIR/capture"
  stop_service writer "$BIN_DIR/writer"
}

cmd_status() {
  local name pgid
  for name in capture writer; do
    pgid="$(recorded_pgid "$name")"
    if group_alive "$pgid" "$BIN_DIR/$name"; then
      status_line "$name" running "$(rel "$(logfile_for "$name")")" "$pgid"
    else
      status_line "$name" stopped "" ""
    fi
  done
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    say "usage: infra/local/pipeline.sh start|stop|status"
    exit 2
    ;;
esac
