# shellcheck shell=bash
# Cloud Storage emulator (gcp-storage-emulator, PyPI; JSON API) in the stack's venv, in memory.
# It holds the claim-check objects of change batches too big for a Pub/Sub message.

# shellcheck source=infra/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GCS_MARKER="gcp-storage-emulator"
GCS_READY_TIMEOUT=30

gcs_address() { printf 'http://%s:%s' "$LOOPBACK" "$GCS_PORT"; }

gcs_bucket_url() { printf '%s/storage/v1/b/%s' "$(gcs_address)" "$CLAIM_BUCKET"; }

gcs_answering() { http_ok "$(gcs_address)/storage/v1/b"; }

# The claim bucket, as Terraform makes it: no soft delete, so that a deleted object is gone at
# once (the emulator keeps deleted objects for 7 days by default, as Cloud Storage does).
gcs_ensure_bucket() {
  local policy='{"softDeletePolicy": {"retentionDurationSeconds": "0"}}'
  if ! http_ok "$(gcs_bucket_url)"; then
    curl -sf -o /dev/null --max-time 5 -X POST -H 'Content-Type: application/json' \
      --data "{\"name\": \"$CLAIM_BUCKET\"}" "$(gcs_address)/storage/v1/b?project=$PROJECT" ||
      die "could not create the bucket $CLAIM_BUCKET in the Cloud Storage emulator; see $(rel "$(logfile_for storage)")"
  fi
  # The emulator takes the policy on a PATCH only (its bucket insert ignores it).
  curl -sf -o /dev/null --max-time 5 -X PATCH -H 'Content-Type: application/json' \
    --data "$policy" "$(gcs_bucket_url)" ||
    die "could not turn off soft delete on the bucket $CLAIM_BUCKET; see $(rel "$(logfile_for storage)")"
}

storage_up() {
  local log pgid
  log="$(rel "$(logfile_for storage)")"
  pgid="$(recorded_pgid storage)"
  if group_alive "$pgid" "$GCS_MARKER"; then
    wait_for_service storage "$GCS_MARKER" "$GCS_READY_TIMEOUT" gcs_answering ||
      die "Cloud Storage emulator (pgid $pgid) runs but does not answer on $(gcs_address); see $log (changed PG2BQ_GCS_PORT? run 'infra/local/stack.sh down' first)"
    gcs_ensure_bucket
    say "storage:  already running on $(gcs_address) (pgid $pgid)"
    return 0
  fi

  require_port_free "$GCS_PORT" PG2BQ_GCS_PORT "the Cloud Storage emulator"
  bq_ensure_venv # the venv is shared with bqemulator (bigquery.sh); no-op when it is up to date
  [[ -x "$VENV_DIR/bin/gcp-storage-emulator" ]] ||
    die "gcp-storage-emulator is missing from $(rel "$VENV_DIR"): install it with '$(rel "$VENV_DIR")/bin/pip install $GCS_VENV_PACKAGE'"
  say "storage:  starting on $(gcs_address)"
  start_detached storage "$VENV_DIR/bin/gcp-storage-emulator" start \
    --host "$LOOPBACK" --port "$GCS_PORT" --in-memory
  if ! wait_for_service storage "$GCS_MARKER" "$GCS_READY_TIMEOUT" gcs_answering; then
    stop_service storage "$GCS_MARKER" >/dev/null
    tail -n 20 "$(logfile_for storage)" >&2
    die "Cloud Storage emulator did not answer on $(gcs_address) within ${GCS_READY_TIMEOUT}s; see $log"
  fi
  gcs_ensure_bucket
}

storage_down() { stop_service storage "$GCS_MARKER"; }

storage_status() {
  local addr pgid
  addr="$(gcs_address) (bucket $CLAIM_BUCKET)"
  pgid="$(recorded_pgid storage)"
  if ! group_alive "$pgid" "$GCS_MARKER"; then
    status_line storage stopped "$addr" ""
  elif gcs_answering; then
    status_line storage running "$addr" "$pgid"
  else
    status_line storage unhealthy "$addr (not answering)" "$pgid"
  fi
}
