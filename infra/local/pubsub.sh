# shellcheck shell=bash
# Google Cloud Pub/Sub emulator (gcloud beta emulators pubsub; needs Java 17+).

# shellcheck source=infra/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PUBSUB_MARKER="pubsub" # in the command line of both the gcloud wrapper and the java child
PUBSUB_READY_TIMEOUT=60

pubsub_topics_url() {
  printf 'http://%s:%s/v1/projects/%s/topics' "$LOOPBACK" "$PUBSUB_PORT" "$PROJECT"
}

pubsub_answering() { http_ok "$(pubsub_topics_url)"; }

pubsub_up() {
  local addr="$LOOPBACK:$PUBSUB_PORT" log pgid
  log="$(rel "$(logfile_for pubsub)")"
  pgid="$(recorded_pgid pubsub)"
  if group_alive "$pgid" "$PUBSUB_MARKER"; then
    wait_for_service pubsub "$PUBSUB_MARKER" "$PUBSUB_READY_TIMEOUT" pubsub_answering ||
      die "Pub/Sub emulator (pgid $pgid) runs but does not answer on $addr; see $log (changed PG2BQ_PUBSUB_PORT? run 'infra/local/stack.sh down' first)"
    say "pubsub:   already running on $addr (pgid $pgid)"
    return 0
  fi

  require_port_free "$PUBSUB_PORT" PG2BQ_PUBSUB_PORT "the Pub/Sub emulator"
  mkdir -p "$PUBSUB_DATA"
  say "pubsub:   starting on $addr"
  # gcloud would also copy the emulator's output into $CLOUDSDK_CONFIG/logs, without bound.
  CLOUDSDK_CORE_DISABLE_FILE_LOGGING=true start_detached pubsub gcloud beta emulators pubsub start \
    --host-port="$addr" --project="$PROJECT" --data-dir="$PUBSUB_DATA"
  if ! wait_for_service pubsub "$PUBSUB_MARKER" "$PUBSUB_READY_TIMEOUT" pubsub_answering; then
    stop_service pubsub "$PUBSUB_MARKER" >/dev/null
    tail -n 20 "$(logfile_for pubsub)" >&2
    die "Pub/Sub emulator did not answer on $addr within ${PUBSUB_READY_TIMEOUT}s; see $log"
  fi
}

pubsub_down() { stop_service pubsub "$PUBSUB_MARKER"; }

pubsub_status() {
  local addr="$LOOPBACK:$PUBSUB_PORT" pgid
  pgid="$(recorded_pgid pubsub)"
  if ! group_alive "$pgid" "$PUBSUB_MARKER"; then
    status_line pubsub stopped "$addr" ""
  elif pubsub_answering; then
    status_line pubsub running "$addr" "$pgid"
  else
    status_line pubsub unhealthy "$addr (not answering)" "$pgid"
  fi
}
