# shellcheck shell=bash
# BigQuery emulator (bqemulator, PyPI) in the venv .local/venv: REST + gRPC
# (Storage Read/Write API), in-memory. The venv also holds the Cloud Storage emulator.

# shellcheck source=infra/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Exact pins: bqemulator 1.4.0 is tested against duckdb 1.5.5. The duckdb
# extension wheels ship the spatial extension so nothing is downloaded at run
# time. python-hcl2 is for the Terraform checker, not for the emulator. gcp-storage-emulator is
# the Cloud Storage emulator (storage.sh); it shares the venv.
GCS_VENV_PACKAGE=gcp-storage-emulator==2026.7.19
BQ_VENV_PACKAGES=(
  bqemulator==1.4.0
  duckdb==1.5.5
  duckdb-extensions==1.5.5
  duckdb-extension-spatial==1.5.5
  numpy
  python-hcl2
  "$GCS_VENV_PACKAGE"
)
BQ_VENV_MARKER="$VENV_DIR/.pg2bq-ready" # holds the package list it was built with
BQ_MARKER="bqemulator"
BQ_READY_TIMEOUT=90
BQ_WORK_DIR="$STATE_DIR/bigquery" # the emulator's working directory (DuckDB's spill files)

bq_datasets_url() {
  printf 'http://%s:%s/bigquery/v2/projects/%s/datasets' "$LOOPBACK" "$BQ_REST_PORT" "$PROJECT"
}

bq_answering() { http_ok "$(bq_datasets_url)" && tcp_open "$BQ_GRPC_PORT"; }

# Creates/updates the venv; pip only runs when the package list changed.
bq_ensure_venv() {
  local wanted install_log
  wanted="$(printf '%s\n' "${BQ_VENV_PACKAGES[@]}")"
  install_log="$LOG_DIR/venv-install.log"

  if ! "$VENV_DIR/bin/python" -c '' >/dev/null 2>&1; then
    # Missing, or its interpreter is gone (e.g. python upgraded): rebuild.
    rm -rf "$VENV_DIR"
    say "bigquery: creating $(rel "$VENV_DIR")"
    python3 -m venv "$VENV_DIR" || die "python3 -m venv failed (apt-get install python3-venv)"
  fi
  if [[ -f "$BQ_VENV_MARKER" && "$(<"$BQ_VENV_MARKER")" == "$wanted" ]]; then
    return 0
  fi

  say "bigquery: installing ${BQ_VENV_PACKAGES[*]} (first run takes a few minutes; log: $(rel "$install_log"))"
  rm -f "$BQ_VENV_MARKER"
  if ! "$VENV_DIR/bin/pip" install --disable-pip-version-check "${BQ_VENV_PACKAGES[@]}" \
    >"$install_log" 2>&1; then
    tail -n 20 "$install_log" >&2
    die "pip install into $(rel "$VENV_DIR") failed; see $(rel "$install_log") (it needs PyPI, or a mirror in PIP_INDEX_URL)"
  fi
  printf '%s\n' "$wanted" >"$BQ_VENV_MARKER"
}

# Installs the bundled spatial extension into DuckDB's extension dir (under
# $HOME/.duckdb); without it bqemulator tries to download it and fails offline.
# Cheap and idempotent, so it runs before every start.
bq_install_spatial_extension() {
  "$VENV_DIR/bin/python" -c \
    "from duckdb_extensions import import_extension; import_extension('spatial')" \
    >>"$(logfile_for bigquery)" 2>&1 ||
    die "could not install the DuckDB spatial extension from duckdb-extension-spatial; see $(rel "$(logfile_for bigquery)")"
}

bq_addresses() {
  printf 'rest %s:%s, grpc %s:%s' "$LOOPBACK" "$BQ_REST_PORT" "$LOOPBACK" "$BQ_GRPC_PORT"
}

bigquery_up() {
  local log pgid
  log="$(rel "$(logfile_for bigquery)")"
  pgid="$(recorded_pgid bigquery)"
  if group_alive "$pgid" "$BQ_MARKER"; then
    wait_for_service bigquery "$BQ_MARKER" "$BQ_READY_TIMEOUT" bq_answering ||
      die "bqemulator (pgid $pgid) runs but does not answer on $(bq_addresses); see $log (changed a port? run 'infra/local/stack.sh down' first)"
    say "bigquery: already running on $(bq_addresses) (pgid $pgid)"
    return 0
  fi

  require_port_free "$BQ_REST_PORT" PG2BQ_BQ_REST_PORT "the BigQuery emulator REST API"
  require_port_free "$BQ_GRPC_PORT" PG2BQ_BQ_GRPC_PORT "the BigQuery emulator gRPC API"
  bq_ensure_venv
  bq_install_spatial_extension
  say "bigquery: starting on $(bq_addresses)"
  # Through a launcher that serialises REST and Storage Write (see bqemulator_serialized.py).
  # It runs in a folder of its own under .local: DuckDB spills to `.tmp` in the working directory,
  # gigabytes after large tests, which must stay out of the repository.
  mkdir -p "$BQ_WORK_DIR"
  rm -rf "$BQ_WORK_DIR/.tmp"
  (cd "$BQ_WORK_DIR" &&
    start_detached bigquery "$VENV_DIR/bin/python" "$STACK_DIR/bqemulator_serialized.py" start \
      --rest-host "$LOOPBACK" --rest-port "$BQ_REST_PORT" \
      --grpc-host "$LOOPBACK" --grpc-port "$BQ_GRPC_PORT" \
      --project "$PROJECT" --ephemeral --log-level info)
  if ! wait_for_service bigquery "$BQ_MARKER" "$BQ_READY_TIMEOUT" bq_answering; then
    stop_service bigquery "$BQ_MARKER" >/dev/null
    tail -n 20 "$(logfile_for bigquery)" >&2
    die "bqemulator did not answer on $(bq_addresses) within ${BQ_READY_TIMEOUT}s; see $log"
  fi
}

bigquery_down() { stop_service bigquery "$BQ_MARKER"; }

bigquery_status() {
  local addr pgid
  addr="$(bq_addresses)"
  pgid="$(recorded_pgid bigquery)"
  if ! group_alive "$pgid" "$BQ_MARKER"; then
    status_line bigquery stopped "$addr" ""
  elif bq_answering; then
    status_line bigquery running "$addr" "$pgid"
  else
    status_line bigquery unhealthy "$addr (not answering)" "$pgid"
  fi
}
