//! Backfill plans and progress: which tables are planned, their ranges of blocks, and which
//! ranges are done. A range is marked done only after every row of it was acknowledged
//! downstream, so after a restart only unfinished ranges are read again.
//!
//! A plan records the relfilenode of the table it was planned from: ranges are blocks of that
//! file, so a table rewritten since (VACUUM FULL, CLUSTER, a rewriting ALTER TABLE, pg_repack)
//! is planned again ([`StateStore::replan`]) rather than copied by the old ranges.

use super::StateStore;
use crate::catalog::table_id;
use crate::catalog::tables::quoted;
use crate::error::{Result, SourceError};
use pg2bq_core::wire::TableId;
use serde::Serialize;
use tokio_postgres::Client;

/// One range of a table: blocks `[first_block, end_block)`, or the whole table when it has no
/// storage of its own (a partitioned table): then `whole` is set.
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

/// A planned range and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRecord {
    /// The range.
    pub range: Range,
    /// Whether every row of it was acknowledged.
    pub done: bool,
    /// Rows copied (once done).
    pub rows: i64,
    /// The snapshot it was read from (once done).
    pub snapshot_lsn: Option<String>,
}

/// Progress of one table's backfill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableProgress {
    /// The table.
    pub table: TableId,
    /// Rows the planner expected.
    pub estimated_rows: i64,
    /// Rows copied and acknowledged so far.
    pub copied_rows: i64,
    /// Ranges planned (0 when the table was not copied: backfill `none`, or excluded).
    pub ranges: i64,
    /// Ranges done.
    pub done_ranges: i64,
    /// Whether the backfill of the table finished.
    pub finished: bool,
    /// Seconds from planning to the end (or to now, while it runs).
    pub seconds: f64,
    /// Times the table was planned again because it was rewritten while it was copied.
    pub replanned: i32,
    /// Why its last attempt failed (cleared when a range of it is done), with the fix.
    pub last_error: Option<String>,
}

/// A table's plan, as a backfill round needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePlan {
    /// The relfilenode of the table when it was planned (`None`: a partitioned table, which
    /// has no storage of its own, or a plan made before it was recorded).
    pub relfilenode: Option<i64>,
    /// Times the table was planned again after a rewrite.
    pub replanned: i32,
    /// Whether the table's backfill finished.
    pub finished: bool,
}

/// The planner's row estimate for a whole-table scan.
async fn planner_estimate(client: &Client, table: &str) -> Option<i64> {
    let row = client
        .query_one(&format!("EXPLAIN (FORMAT JSON) SELECT 1 FROM {table}"), &[])
        .await
        .ok()?;
    let plan: serde_json::Value = row.try_get(0).ok()?;
    plan.pointer("/0/Plan/Plan Rows")?
        .as_f64()
        .map(|rows| rows as i64)
}

impl StateStore {
    /// Tables of `publication` that have no backfill plan yet.
    pub async fn unplanned(&self, client: &Client, publication: &str) -> Result<Vec<TableId>> {
        let rows = client
            .query(
                &format!(
                    "SELECT p.schemaname::text, p.tablename::text FROM pg_catalog.pg_publication_tables p \
                     WHERE p.pubname = $1 AND NOT EXISTS (SELECT 1 FROM {} b \
                       WHERE b.slot_name = $2 AND b.schema_name = p.schemaname AND b.table_name = p.tablename) \
                     ORDER BY 1, 2",
                    self.table("backfill_tables")
                ),
                &[&publication, &self.slot],
            )
            .await
            .map_err(SourceError::postgres("listing tables to backfill"))?;
        Ok(rows.iter().map(table_id).collect())
    }

    /// Plans a table: ranges of `range_blocks` blocks (the last one open-ended), or one whole
    /// range for a partitioned table; `copy` false records the table as done without copying
    /// (backfill mode `none`, or an excluded table).
    pub async fn plan(
        &self,
        client: &Client,
        table: &TableId,
        range_blocks: i64,
        copy: bool,
    ) -> Result<()> {
        let name = quoted(table);
        let row = client
            .query_one(
                "SELECT c.relkind::text, GREATEST(c.reltuples, 0)::bigint, \
                        (pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::bigint), \
                        pg_catalog.pg_relation_filenode(c.oid)::bigint \
                 FROM pg_catalog.pg_class c WHERE c.oid = $1::text::regclass",
                &[&name],
            )
            .await
            .map_err(SourceError::postgres(format!("sizing {table}")))?;
        let (kind, mut estimated, blocks, relfilenode): (String, i64, i64, Option<i64>) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if estimated == 0 {
            // Never analysed: the planner's size-based estimate.
            estimated = planner_estimate(client, &name).await.unwrap_or(0);
        }
        let ranges: Vec<(i64, Option<i64>, bool)> = if !copy {
            Vec::new()
        } else if kind == "p" {
            vec![(0, None, true)]
        } else {
            let step = range_blocks.max(1);
            let count = (blocks / step).max(0).saturating_add(1);
            (0..count)
                .map(|i| {
                    let first = i.saturating_mul(step);
                    let end = (i + 1 < count).then(|| first.saturating_add(step));
                    (first, end, false)
                })
                .collect()
        };
        let firsts: Vec<i64> = ranges.iter().map(|r| r.0).collect();
        let ends: Vec<Option<i64>> = ranges.iter().map(|r| r.1).collect();
        let wholes: Vec<bool> = ranges.iter().map(|r| r.2).collect();
        // One statement: the table and its ranges are recorded together or not at all.
        client
            .execute(
                &format!(
                    "WITH planned AS ( \
                         INSERT INTO {tables} (slot_name, schema_name, table_name, estimated_rows, finished_at, relfilenode) \
                         VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN NULL ELSE now() END, $9) ON CONFLICT DO NOTHING \
                         RETURNING slot_name) \
                     INSERT INTO {ranges} (slot_name, schema_name, table_name, first_block, end_block, whole) \
                     SELECT p.slot_name, $2, $3, r.first_block, r.end_block, r.whole \
                     FROM planned p, unnest($6::bigint[], $7::bigint[], $8::boolean[]) AS r(first_block, end_block, whole) \
                     ON CONFLICT DO NOTHING",
                    tables = self.table("backfill_tables"),
                    ranges = self.table("backfill_ranges"),
                ),
                &[
                    &self.slot,
                    &table.schema,
                    &table.table,
                    &estimated,
                    &copy,
                    &firsts,
                    &ends,
                    &wholes,
                    &relfilenode,
                ],
            )
            .await
            .map_err(SourceError::postgres("recording a backfill plan"))?;
        Ok(())
    }

    /// Ranges not done yet.
    pub async fn pending(&self, client: &Client) -> Result<Vec<Range>> {
        Ok(self
            .ranges(client)
            .await?
            .into_iter()
            .filter(|r| !r.done)
            .map(|r| r.range)
            .collect())
    }

    /// Every planned range with its state, by table and first block.
    pub async fn ranges(&self, client: &Client) -> Result<Vec<RangeRecord>> {
        let rows = client
            .query(
                &format!(
                    "SELECT schema_name, table_name, first_block, end_block, whole, done, rows, \
                            snapshot_lsn::text FROM {} \
                     WHERE slot_name = $1 ORDER BY schema_name, table_name, first_block",
                    self.table("backfill_ranges")
                ),
                &[&self.slot],
            )
            .await
            .map_err(SourceError::postgres("listing backfill ranges"))?;
        Ok(rows
            .iter()
            .map(|r| RangeRecord {
                range: Range {
                    table: table_id(r),
                    first_block: r.get(2),
                    end_block: r.get(3),
                    whole: r.get(4),
                },
                done: r.get(5),
                rows: r.get(6),
                snapshot_lsn: r.get(7),
            })
            .collect())
    }

    /// Marks a range done with its row count and snapshot; marks its table finished when it was
    /// the last.
    pub async fn finish(
        &self,
        client: &Client,
        range: &Range,
        rows: i64,
        snapshot_lsn: &str,
    ) -> Result<()> {
        client
            .execute(
                &format!(
                    "WITH done AS ( \
                         UPDATE {ranges} SET done = true, rows = $5, snapshot_lsn = $6::text::pg_lsn, finished_at = now() \
                         WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3 AND first_block = $4 \
                         RETURNING first_block) \
                     UPDATE {tables} SET last_error = NULL, last_error_at = NULL, \
                         finished_at = COALESCE(finished_at, CASE WHEN NOT EXISTS ( \
                             SELECT 1 FROM {ranges} r WHERE r.slot_name = $1 AND r.schema_name = $2 \
                             AND r.table_name = $3 AND NOT r.done \
                             AND r.first_block NOT IN (SELECT first_block FROM done)) THEN now() END) \
                     WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3",
                    ranges = self.table("backfill_ranges"),
                    tables = self.table("backfill_tables"),
                ),
                &[
                    &self.slot,
                    &range.table.schema,
                    &range.table.table,
                    &range.first_block,
                    &rows,
                    &snapshot_lsn,
                ],
            )
            .await
            .map_err(SourceError::postgres("marking a backfill range done"))?;
        Ok(())
    }

    /// Progress of every planned table, or of `only` that one, by schema and name.
    pub async fn progress(
        &self,
        client: &Client,
        only: Option<&TableId>,
    ) -> Result<Vec<TableProgress>> {
        let (schema, name) = only.map_or((None, None), |t| (Some(&t.schema), Some(&t.table)));
        let rows = client
            .query(
                &format!(
                    "SELECT t.schema_name, t.table_name, t.estimated_rows, \
                            COALESCE(SUM(r.rows) FILTER (WHERE r.done), 0)::bigint, \
                            COUNT(r.*), COUNT(r.*) FILTER (WHERE r.done), t.finished_at IS NOT NULL, \
                            EXTRACT(EPOCH FROM (COALESCE(t.finished_at, now()) - t.planned_at))::float8, \
                            t.replanned, t.last_error \
                     FROM {tables} t LEFT JOIN {ranges} r USING (slot_name, schema_name, table_name) \
                     WHERE t.slot_name = $1 AND ($2::text IS NULL OR (t.schema_name = $2 AND t.table_name = $3)) \
                     GROUP BY t.schema_name, t.table_name, t.estimated_rows, t.finished_at, t.planned_at, \
                              t.replanned, t.last_error \
                     ORDER BY 1, 2",
                    tables = self.table("backfill_tables"),
                    ranges = self.table("backfill_ranges"),
                ),
                &[&self.slot, &schema, &name],
            )
            .await
            .map_err(SourceError::postgres(format!(
                "reading backfill progress from {} (has capture started?)",
                self.schema
            )))?;
        Ok(rows
            .iter()
            .map(|r| TableProgress {
                table: table_id(r),
                estimated_rows: r.get(2),
                copied_rows: r.get(3),
                ranges: r.get(4),
                done_ranges: r.get(5),
                finished: r.get(6),
                seconds: r.get(7),
                replanned: r.get(8),
                last_error: r.get(9),
            })
            .collect())
    }

    /// The plan of a table, if it has one.
    pub async fn table_plan(&self, client: &Client, table: &TableId) -> Result<Option<TablePlan>> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT relfilenode, replanned, finished_at IS NOT NULL FROM {} \
                     WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3",
                    self.table("backfill_tables")
                ),
                &[&self.slot, &table.schema, &table.table],
            )
            .await
            .map_err(SourceError::postgres(format!(
                "reading the backfill plan of {table}"
            )))?;
        Ok(row.map(|r| TablePlan {
            relfilenode: r.get(0),
            replanned: r.get(1),
            finished: r.get(2),
        }))
    }

    /// Records the relfilenode of a plan made before plans recorded it.
    pub async fn set_relfilenode(
        &self,
        client: &Client,
        table: &TableId,
        relfilenode: i64,
    ) -> Result<()> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET relfilenode = $4 \
                     WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3",
                    self.table("backfill_tables")
                ),
                &[&self.slot, &table.schema, &table.table, &relfilenode],
            )
            .await
            .map_err(SourceError::postgres(format!(
                "recording the relfilenode of {table}"
            )))?;
        Ok(())
    }

    /// Plans a table again from its current file, forgetting its ranges and their progress: it
    /// was rewritten (its relfilenode changed), so its rows are in other blocks now and every
    /// range is copied again. Counts the re-plan. One transaction: a crash leaves the old plan
    /// or the new one.
    pub async fn replan(&self, client: &Client, table: &TableId, range_blocks: i64) -> Result<()> {
        client
            .batch_execute("BEGIN")
            .await
            .map_err(SourceError::postgres("starting a backfill re-plan"))?;
        let outcome = async {
            let replanned = self
                .table_plan(client, table)
                .await?
                .map_or(0, |p| p.replanned);
            self.reset_backfill(client, table).await?;
            self.plan(client, table, range_blocks, true).await?;
            client
                .execute(
                    &format!(
                        "UPDATE {} SET replanned = $4 \
                         WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3",
                        self.table("backfill_tables")
                    ),
                    &[&self.slot, &table.schema, &table.table, &(replanned + 1)],
                )
                .await
                .map_err(SourceError::postgres(format!(
                    "counting the re-plan of {table}"
                )))?;
            Ok::<(), SourceError>(())
        }
        .await;
        let ended = crate::transaction::end(client, outcome.is_ok())
            .await
            .map_err(SourceError::postgres("ending a backfill re-plan"));
        outcome.and(ended)
    }

    /// Records why the last attempt to copy a table failed (shown by `pg2bq backfill`).
    pub async fn record_error(&self, client: &Client, table: &TableId, error: &str) -> Result<()> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET last_error = $4, last_error_at = now() \
                     WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3",
                    self.table("backfill_tables")
                ),
                &[&self.slot, &table.schema, &table.table, &error],
            )
            .await
            .map_err(SourceError::postgres(format!(
                "recording the backfill error of {table}"
            )))?;
        Ok(())
    }

    /// Forgets a table's backfill, so that the next round copies it again; returns whether it
    /// had a plan.
    pub async fn reset_backfill(&self, client: &Client, table: &TableId) -> Result<bool> {
        let deleted = client
            .execute(
                &format!(
                    "WITH ranges AS (DELETE FROM {ranges} WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3) \
                     DELETE FROM {tables} WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3",
                    ranges = self.table("backfill_ranges"),
                    tables = self.table("backfill_tables"),
                ),
                &[&self.slot, &table.schema, &table.table],
            )
            .await
            .map_err(SourceError::postgres(format!(
                "resetting the backfill of {table}"
            )))?;
        Ok(deleted > 0)
    }

    /// Forgets the backfill of every table of the stream, so that the next round plans and
    /// copies them all again.
    pub async fn reset_all_backfills(&self, client: &Client) -> Result<()> {
        client
            .execute(
                &format!(
                    "WITH ranges AS (DELETE FROM {ranges} WHERE slot_name = $1) \
                     DELETE FROM {tables} WHERE slot_name = $1",
                    ranges = self.table("backfill_ranges"),
                    tables = self.table("backfill_tables"),
                ),
                &[&self.slot],
            )
            .await
            .map_err(SourceError::postgres("resetting the backfill"))?;
        Ok(())
    }

    /// Marks every range of a table pending again (and the table unfinished), so that the next
    /// round copies the whole table from one snapshot: a table without a key is kept as one
    /// snapshot and the changes after it, so its ranges may not come from different snapshots.
    pub async fn reopen_ranges(&self, client: &Client, table: &TableId) -> Result<()> {
        client
            .execute(
                &format!(
                    "WITH reopened AS (UPDATE {ranges} SET done = false, rows = 0, snapshot_lsn = NULL, \
                         finished_at = NULL WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3) \
                     UPDATE {tables} SET finished_at = NULL \
                     WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3",
                    ranges = self.table("backfill_ranges"),
                    tables = self.table("backfill_tables"),
                ),
                &[&self.slot, &table.schema, &table.table],
            )
            .await
            .map_err(SourceError::postgres(format!(
                "reopening the backfill of {table}"
            )))?;
        Ok(())
    }

    /// How many tables of `publication` have not finished their backfill (or have no plan yet).
    pub async fn unfinished_backfills(&self, client: &Client, publication: &str) -> Result<i64> {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM pg_catalog.pg_publication_tables p WHERE p.pubname = $1 \
                     AND NOT EXISTS (SELECT 1 FROM {} b WHERE b.slot_name = $2 AND b.schema_name = p.schemaname \
                                     AND b.table_name = p.tablename AND b.finished_at IS NOT NULL)",
                    self.table("backfill_tables")
                ),
                &[&publication, &self.slot],
            )
            .await
            .map_err(SourceError::postgres("counting unfinished backfills"))?;
        Ok(row.get(0))
    }
}
