#!/usr/bin/env bash
# `make demo`: a fresh demo database, the pipeline running on it, sample data and live changes,
# then a comparison of every table in PostgreSQL and BigQuery. Expects `make up` and `make build`.
set -euo pipefail

DEMO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/local/lib.sh
source "$DEMO_DIR/../local/lib.sh"
# shellcheck disable=SC1090
source "$ENV_FILE"

export PG2BQ_PG_DATABASE=pg2bq_demo PG2BQ_SLOT=pg2bq_demo PG2BQ_PUBLICATION=pg2bq_demo
export PG2BQ_TOPIC=pg2bq-demo-changes PG2BQ_INCLUDE="shop.*" PG2BQ_BQ_DATASET_PREFIX=demo_
BIN_DIR="${PG2BQ_BIN_DIR:-$REPO_ROOT/target/debug}"
PIPELINE="$DEMO_DIR/../local/pipeline.sh"
DATASET="demo_shop"

step() { printf '\n==> %s\n' "$*"; }
psql_quiet() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

step "Stopping a previous demo pipeline, if any"
"$PIPELINE" stop

step "Creating database $PG2BQ_PG_DATABASE with the shop schema"
psql_quiet -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$PG2BQ_PG_DATABASE'" >/dev/null
psql_quiet -d postgres -c "DROP DATABASE IF EXISTS $PG2BQ_PG_DATABASE WITH (FORCE)" 2>/dev/null
psql_quiet -d postgres -c "CREATE DATABASE $PG2BQ_PG_DATABASE"
"$BIN_DIR/pg2bq" seed --schema
curl -sf -o /dev/null -X DELETE "$PG2BQ_BQ_REST_ENDPOINT/bigquery/v2/projects/$PG2BQ_PROJECT/datasets/$DATASET?deleteContents=true" || true

step "Loading the sample data (before capture starts: it reaches BigQuery by backfill)"
"$BIN_DIR/pg2bq" seed --rows
psql_quiet -d "$PG2BQ_PG_DATABASE" -c "SELECT 'customers' AS table, count(*) FROM shop.customers UNION ALL SELECT 'products', count(*) FROM shop.products UNION ALL SELECT 'orders', count(*) FROM shop.orders UNION ALL SELECT 'order_lines', count(*) FROM shop.order_lines"

step "Checking the source, then creating and starting the stream"
"$BIN_DIR/pg2bq" profile test source
"$BIN_DIR/pg2bq" stream create
"$BIN_DIR/pg2bq" stream start

step "Starting the pipeline (capture -> Pub/Sub emulator -> writer -> bqemulator)"
"$PIPELINE" start

step "Making live changes: inserts, updates (two primary key changes), deletes"
"$BIN_DIR/pg2bq" seed --live-changes

step "Waiting for BigQuery to catch up, then comparing every table (all rows, all columns)"
started=$SECONDS
if "$BIN_DIR/pg2bq" validate --wait-secs 120; then
  result=0
  say ""
  say "Every table matches ($((SECONDS - started)) s after the last change was committed)."
else
  result=1
  say ""
  say "Some tables differ: see the rows above and the logs in $(rel "$LOG_DIR")."
fi

cat <<EOF2

The pipeline keeps running: change rows in PostgreSQL and watch them arrive.
  source .local/stack.env
  psql -d $PG2BQ_PG_DATABASE -c "UPDATE shop.customers SET full_name = 'Grace Hopper' WHERE customer_id = 1"
  bq query --nouse_legacy_sql 'SELECT customer_id, full_name, _pg2bq_seq FROM \`$PG2BQ_PROJECT.$DATASET.customers\` ORDER BY customer_id LIMIT 5'
  bq ls $DATASET
  export PG2BQ_PG_DATABASE=$PG2BQ_PG_DATABASE PG2BQ_SLOT=$PG2BQ_SLOT PG2BQ_PUBLICATION=$PG2BQ_PUBLICATION PG2BQ_BQ_DATASET_PREFIX=demo_
  target/debug/pg2bq validate
  target/debug/pg2bq stream status
Logs: $(rel "$LOG_DIR")/{capture,writer,postgres,pubsub,bigquery}.log
Stop everything: make down
EOF2
exit "$result"
