//! Backfill progress in the state schema: which tables are planned, their ranges, and which
//! ranges are done. A range is marked done only after Pub/Sub acknowledged all its rows, so after
//! a restart only unfinished ranges are read again.

use crate::error::{CaptureError, Result};
use pg2bq_core::pg_connect::quote_ident;
use pg2bq_core::wire::TableId;
use tokio_postgres::Client;

/// One range of a table: blocks `[first_block, end_block)`, or the whole table when it has no
/// storage of its own (a partitioned table) — then `whole` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The table.
    pub table: TableId,
    /// First block.
    pub first_block: i64,
    /// One past the last block; `None` for the open-ended last range.
    pub end_block: Option<i64>,
    /// Read the table without a block filter.
    pub whole: bool,
}

/// Progress of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProgress {
    /// The table.
    pub table: TableId,
    /// Rows the planner expected.
    pub estimated_rows: i64,
    /// Rows copied so far.
    pub copied_rows: i64,
    /// Ranges planned.
    pub ranges: i64,
    /// Ranges done.
    pub done_ranges: i64,
}

/// The planner's row estimate for a whole-table scan.
async fn planner_estimate(sql: &Client, table: &str) -> Option<i64> {
    let row = sql
        .query_one(&format!("EXPLAIN (FORMAT JSON) SELECT 1 FROM {table}"), &[])
        .await
        .ok()?;
    let plan: serde_json::Value = row.try_get(0).ok()?;
    plan.pointer("/0/Plan/Plan Rows")?
        .as_f64()
        .map(|rows| rows as i64)
}

/// Access to the backfill tables of one slot.
pub struct BackfillState {
    schema: String,
    slot: String,
}

impl BackfillState {
    /// The state of `slot` in `schema`.
    pub fn new(schema: &str, slot: &str) -> Self {
        BackfillState {
            schema: quote_ident(schema),
            slot: slot.to_owned(),
        }
    }

    /// Creates the backfill tables if needed.
    pub async fn ensure(&self, sql: &Client) -> Result<()> {
        let s = &self.schema;
        sql.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {s}.backfill_tables ( \
                 slot_name text, schema_name text, table_name text, \
                 planned_at timestamptz NOT NULL DEFAULT now(), estimated_rows bigint NOT NULL DEFAULT 0, \
                 finished_at timestamptz, PRIMARY KEY (slot_name, schema_name, table_name)); \
             CREATE TABLE IF NOT EXISTS {s}.backfill_ranges ( \
                 slot_name text, schema_name text, table_name text, first_block bigint, end_block bigint, \
                 whole boolean NOT NULL DEFAULT false, done boolean NOT NULL DEFAULT false, \
                 rows bigint NOT NULL DEFAULT 0, snapshot_lsn pg_lsn, finished_at timestamptz, \
                 PRIMARY KEY (slot_name, schema_name, table_name, first_block))"
        ))
        .await
        .map_err(CaptureError::postgres("creating the backfill state tables"))
    }

    /// Tables of the publication that have no backfill plan yet.
    pub async fn unplanned(&self, sql: &Client, publication: &str) -> Result<Vec<TableId>> {
        let rows = sql
            .query(
                &format!(
                    "SELECT p.schemaname::text, p.tablename::text FROM pg_catalog.pg_publication_tables p \
                     WHERE p.pubname = $1 AND NOT EXISTS (SELECT 1 FROM {}.backfill_tables b \
                       WHERE b.slot_name = $2 AND b.schema_name = p.schemaname AND b.table_name = p.tablename) \
                     ORDER BY 1, 2",
                    self.schema
                ),
                &[&publication, &self.slot],
            )
            .await
            .map_err(CaptureError::postgres("listing tables to backfill"))?;
        Ok(rows
            .iter()
            .map(crate::control::publication::table_id)
            .collect())
    }

    /// Plans a table: ranges of `range_blocks` blocks (the last one open-ended), or one whole
    /// range for a partitioned table; `copy` false records the table as done without copying
    /// (backfill mode `none`, or an excluded table).
    pub async fn plan(
        &self,
        sql: &mut Client,
        table: &TableId,
        range_blocks: i64,
        copy: bool,
    ) -> Result<()> {
        let name = format!(
            "{}.{}",
            quote_ident(&table.schema),
            quote_ident(&table.table)
        );
        let row = sql
            .query_one(
                "SELECT c.relkind::text, GREATEST(c.reltuples, 0)::bigint, \
                        (pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::bigint) \
                 FROM pg_catalog.pg_class c WHERE c.oid = $1::text::regclass",
                &[&name],
            )
            .await
            .map_err(CaptureError::postgres(format!("sizing {table}")))?;
        let (kind, mut estimated, blocks): (String, i64, i64) =
            (row.get(0), row.get(1), row.get(2));
        if estimated == 0 {
            // Never analysed: the planner's size-based estimate.
            estimated = planner_estimate(sql, &name).await.unwrap_or(0);
        }
        let tx = sql
            .transaction()
            .await
            .map_err(CaptureError::postgres("planning a backfill"))?;
        let finished = if copy { None } else { Some("now()") };
        tx.execute(
            &format!(
                "INSERT INTO {}.backfill_tables (slot_name, schema_name, table_name, estimated_rows, finished_at) \
                 VALUES ($1, $2, $3, $4, {}) ON CONFLICT DO NOTHING",
                self.schema,
                finished.unwrap_or("NULL")
            ),
            &[&self.slot, &table.schema, &table.table, &estimated],
        )
        .await
        .map_err(CaptureError::postgres("recording a backfill plan"))?;
        if copy {
            let ranges: Vec<(i64, Option<i64>, bool)> = if kind == "p" {
                vec![(0, None, true)]
            } else {
                let step = range_blocks.max(1);
                let count = (blocks / step).max(0) + 1;
                (0..count)
                    .map(|i| (i * step, (i + 1 < count).then_some((i + 1) * step), false))
                    .collect()
            };
            for (first, end, whole) in ranges {
                tx.execute(
                    &format!(
                        "INSERT INTO {}.backfill_ranges (slot_name, schema_name, table_name, first_block, end_block, whole) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                        self.schema
                    ),
                    &[&self.slot, &table.schema, &table.table, &first, &end, &whole],
                )
                .await
                .map_err(CaptureError::postgres("recording a backfill range"))?;
            }
        }
        tx.commit()
            .await
            .map_err(CaptureError::postgres("planning a backfill"))
    }

    /// Ranges not done yet.
    pub async fn pending(&self, sql: &Client) -> Result<Vec<Range>> {
        let rows = sql
            .query(
                &format!(
                    "SELECT schema_name, table_name, first_block, end_block, whole FROM {}.backfill_ranges \
                     WHERE slot_name = $1 AND NOT done ORDER BY schema_name, table_name, first_block",
                    self.schema
                ),
                &[&self.slot],
            )
            .await
            .map_err(CaptureError::postgres("listing backfill ranges"))?;
        Ok(rows
            .iter()
            .map(|r| Range {
                table: TableId {
                    schema: r.get(0),
                    table: r.get(1),
                },
                first_block: r.get(2),
                end_block: r.get(3),
                whole: r.get(4),
            })
            .collect())
    }

    /// Marks a range done with its row count and snapshot; marks its table finished when it was
    /// the last.
    pub async fn finish(
        &self,
        sql: &Client,
        range: &Range,
        rows: i64,
        snapshot_lsn: &str,
    ) -> Result<()> {
        let s = &self.schema;
        sql.execute(
            &format!(
                "UPDATE {s}.backfill_ranges SET done = true, rows = $5, snapshot_lsn = $6::text::pg_lsn, finished_at = now() \
                 WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3 AND first_block = $4"
            ),
            &[&self.slot, &range.table.schema, &range.table.table, &range.first_block, &rows, &snapshot_lsn],
        )
        .await
        .map_err(CaptureError::postgres("marking a backfill range done"))?;
        sql.execute(
            &format!(
                "UPDATE {s}.backfill_tables SET finished_at = now() \
                 WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3 AND finished_at IS NULL \
                   AND NOT EXISTS (SELECT 1 FROM {s}.backfill_ranges WHERE slot_name = $1 AND schema_name = $2 \
                                   AND table_name = $3 AND NOT done)"
            ),
            &[&self.slot, &range.table.schema, &range.table.table],
        )
        .await
        .map_err(CaptureError::postgres("marking a backfill done"))?;
        Ok(())
    }

    /// Progress of a table.
    pub async fn progress(&self, sql: &Client, table: &TableId) -> Result<TableProgress> {
        let row = sql
            .query_one(
                &format!(
                    "SELECT t.estimated_rows, COALESCE(SUM(r.rows), 0)::bigint, COUNT(r.*), COUNT(r.*) FILTER (WHERE r.done) \
                     FROM {s}.backfill_tables t LEFT JOIN {s}.backfill_ranges r USING (slot_name, schema_name, table_name) \
                     WHERE t.slot_name = $1 AND t.schema_name = $2 AND t.table_name = $3 GROUP BY t.estimated_rows",
                    s = self.schema
                ),
                &[&self.slot, &table.schema, &table.table],
            )
            .await
            .map_err(CaptureError::postgres("reading backfill progress"))?;
        Ok(TableProgress {
            table: table.clone(),
            estimated_rows: row.get(0),
            copied_rows: row.get(1),
            ranges: row.get(2),
            done_ranges: row.get(3),
        })
    }
}
