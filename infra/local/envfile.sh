# shellcheck shell=bash
# Client-side configuration for the stack: .local/stack.env (sourceable), the
# project-local gcloud config (.local/gcloud) and a bigqueryrc for the bq CLI.

# shellcheck source=infra/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GCLOUD_TOKEN_FILE="$GCLOUD_CONFIG_DIR/emulator-access-token"

# Discovery document shipped with the bq CLI. bq fetches it from the API
# endpoint unless told otherwise, and bqemulator does not serve it.
bq_discovery_file() {
  locate_gcloud_sdk_root 2>/dev/null || return 1
  local file="$GCLOUD_SDK_ROOT/platform/bq/discovery_next/bigquery.json"
  [[ -f "$file" ]] || return 1
  printf '%s' "$file"
}

# gcloud (and the gcloud wrapper around bq) with CLOUDSDK_CONFIG=.local/gcloud:
# the local project, Pub/Sub API pointed at the emulator, and a dummy access
# token so no login is needed (the emulators ignore it).
write_gcloud_config() {
  mkdir -p "$GCLOUD_CONFIG_DIR/configurations"
  printf 'emulator-dummy-token\n' | write_if_changed "$GCLOUD_TOKEN_FILE"
  printf 'default' | write_if_changed "$GCLOUD_CONFIG_DIR/active_config"
  write_if_changed "$GCLOUD_CONFIG_DIR/configurations/config_default" <<EOF
[core]
project = $PROJECT
disable_usage_reporting = true

[auth]
access_token_file = $GCLOUD_TOKEN_FILE

[api_endpoint_overrides]
pubsub = http://$LOOPBACK:$PUBSUB_PORT/
EOF
}

# Flags that point the bq CLI at bqemulator (empty if bq is unusable here).
bq_cli_flags() {
  command -v bq >/dev/null 2>&1 || return 0
  local discovery
  discovery="$(bq_discovery_file)" || return 0
  # The flags end up in a word-split variable: refuse paths with whitespace.
  [[ "$discovery" =~ [[:space:]] ]] && return 0
  printf -- '--api=http://%s:%s --project_id=%s --discovery_file=%s' \
    "$LOOPBACK" "$BQ_REST_PORT" "$PROJECT" "$discovery"
}

write_bigqueryrc() {
  local flags="$1"
  [[ -n "$flags" ]] || return 0
  tr ' ' '\n' <<<"$flags" | write_if_changed "$BIGQUERYRC_FILE"
}

# Prints one `export NAME='value'` line.
export_line() { printf 'export %s=%s\n' "$1" "$(shell_quote "$2")"; }

write_stack_env() {
  local bq_flags
  bq_flags="$(bq_cli_flags)"
  write_bigqueryrc "$bq_flags"
  {
    printf '# pg2bq local stack (infra/local/stack.sh up). Usage: source %s\n' "$(rel "$ENV_FILE")"
    export_line PG2BQ_PROJECT "$PROJECT"
    export_line PG2BQ_PG_HOST "$LOOPBACK"
    export_line PG2BQ_PG_PORT "$PG_PORT"
    export_line PG2BQ_PG_USER postgres
    # Which PostgreSQL runs (PG2BQ_PG_VERSION: 'make up' in a shell with this file sourced starts
    # the same one), and its server binaries (the tests' scratch clusters run them too).
    export_line PG2BQ_PG_VERSION "$PG_MAJOR"
    export_line PG2BQ_PG_SERVER_BINDIR "$PG_BIN"
    export_line PGHOST "$LOOPBACK"
    export_line PGPORT "$PG_PORT"
    export_line PGUSER postgres
    export_line PG2BQ_DATABASE_URL "postgres://postgres@$LOOPBACK:$PG_PORT/postgres"
    export_line PG2BQ_PUBSUB_PORT "$PUBSUB_PORT"
    export_line PUBSUB_EMULATOR_HOST "$LOOPBACK:$PUBSUB_PORT"
    export_line PUBSUB_PROJECT_ID "$PROJECT"
    export_line PG2BQ_BQ_REST_PORT "$BQ_REST_PORT"
    export_line PG2BQ_BQ_GRPC_PORT "$BQ_GRPC_PORT"
    export_line PG2BQ_BQ_REST_ENDPOINT "http://$LOOPBACK:$BQ_REST_PORT"
    export_line PG2BQ_BQ_GRPC_ENDPOINT "http://$LOOPBACK:$BQ_GRPC_PORT"
    export_line PG2BQ_GCS_PORT "$GCS_PORT"
    export_line STORAGE_EMULATOR_HOST "http://$LOOPBACK:$GCS_PORT"
    export_line PG2BQ_CLAIM_BUCKET "$CLAIM_BUCKET"
    export_line PG2BQ_STACK_LOGS "$LOG_DIR"
    export_line CLOUDSDK_CONFIG "$GCLOUD_CONFIG_DIR"
    if [[ -n "$bq_flags" ]]; then
      # shellcheck disable=SC2016 # literal text for the reader of the env file
      printf '# bq CLI against bqemulator: plain `bq ...` (via BIGQUERYRC) or `$PG2BQ_BQ_CLI ...`\n'
      export_line BIGQUERYRC "$BIGQUERYRC_FILE"
      export_line PG2BQ_BQ_CLI "bq $bq_flags --oauth_access_token=emulator-dummy-token"
    fi
  } | write_if_changed "$ENV_FILE"
  [[ -n "$bq_flags" ]] || warn "bq CLI or its discovery document not found: PG2BQ_BQ_CLI/BIGQUERYRC left out of $(rel "$ENV_FILE")"
}
