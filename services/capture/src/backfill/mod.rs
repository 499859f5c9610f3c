//! Backfill: existing rows of the replicated tables, copied from a consistent snapshot while
//! changes keep streaming.
//!
//! Each round plans the publication's tables that have no plan yet (ranges of blocks), then takes
//! the tables with pending ranges one at a time: it exports a snapshot from a temporary slot for
//! the table, copies its pending ranges in parallel over connections that import that snapshot,
//! and releases the snapshot when the table is done. Rows carry the snapshot's consistent point
//! as sequence number, so the newest version of every row wins downstream whatever arrives
//! first. A range is marked done only after Pub/Sub acknowledged it; after a restart the pending
//! ranges are copied from a new snapshot, whose later consistent point keeps the result correct.
//!
//! A table rewritten since its plan (its relfilenode changed) is planned again and copied whole
//! from a new snapshot; a table that no longer exists loses its plan; a table that fails (row
//! security that would hide rows, a lost connection) records its error and the round goes on
//! with the others. Tables added to the publication later are planned by the next round;
//! `pg2bq backfill <table>` deletes a table's plan so that the next round copies it again. See
//! `services/capture/docs/backfill.md`.

pub mod copy_range;
pub mod copy_text;
pub mod snapshot;

use crate::error::{CaptureError, Result};
use crate::pipeline::batcher::BatchLimits;
use crate::pipeline::batcher::ReadyBatch;
use crate::sinks::BatchSink;
use crate::source::relations::RelationInfo;
use crate::source::shapes::Shapes;
use copy_range::{RangeCopy, RangeOutcome};
use pg2bq_core::column_rules::ColumnRules;
use pg2bq_core::config::SourceArgs;
use pg2bq_core::config::StreamArgs;
use pg2bq_core::lsn::Lsn;
use pg2bq_core::pg_connect::connect_sql;
use pg2bq_core::protect::Protection;
use pg2bq_core::selection::TableSelection;
use pg2bq_core::seq::Seq;
use pg2bq_core::wire::TableId;
use pg2bq_core::wire::{Change, ChangeBatch, Op};
use pg2bq_source::catalog::Catalog;
use pg2bq_source::state::StateStore;
use pg2bq_source::state::backfill::{Range, TableProgress};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_postgres::Client;

/// Which tables are backfilled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackfillMode {
    /// Every table of the publication, except the excluded ones.
    All,
    /// None: only changes from now on are replicated.
    None,
}

/// Backfill settings.
#[derive(Clone)]
pub struct Backfill {
    /// The source.
    pub source: SourceArgs,
    /// The stream: its main slot (backfill state is kept per slot), the publication whose
    /// tables are backfilled, and the state schema.
    pub stream: StreamArgs,
    /// `all` or `none`.
    pub mode: BackfillMode,
    /// Tables not to backfill (their changes still stream).
    pub exclude: Option<TableSelection>,
    /// Ranges copied at once.
    pub concurrency: usize,
    /// Blocks per range.
    pub range_blocks: i64,
    /// Period of the check for tables to backfill.
    pub poll: Duration,
    /// Batch limits.
    pub limits: BatchLimits,
    /// Where batches go.
    pub sink: Arc<dyn BatchSink>,
    /// The columns hashed or masked before they leave capture.
    pub protection: Arc<Protection>,
    /// The generations copies belong to.
    pub shapes: Shapes,
    /// The columns and rows copied of each table.
    pub columns: ColumnRules,
}

impl Backfill {
    /// Runs rounds forever in the background; a failed round is retried at the next period.
    pub fn spawn(self) {
        tokio::spawn(async move {
            loop {
                // Each round in its own task: even a panic only costs the round.
                let this = self.clone();
                match tokio::spawn(async move { this.round().await }).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "backfill round failed; pending ranges are retried")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "backfill round crashed; pending ranges are retried")
                    }
                }
                tokio::time::sleep(self.poll).await;
            }
        });
    }

    fn state(&self) -> StateStore {
        StateStore::new(&self.stream.state_schema, &self.stream.slot)
    }

    async fn connect(&self, application_name: &str) -> Result<Client> {
        Ok(connect_sql(&self.source, application_name).await?)
    }

    async fn round(&self) -> Result<()> {
        let sql = self.connect("pg2bq-backfill").await?;
        let state = self.state();
        // Copies finished before a crash are swept first.
        self.sweep(&sql, &state).await?;
        let mut pool = Vec::new();
        let mut attempted: HashSet<TableId> = HashSet::new();
        loop {
            // Planned in the loop: a table renamed while it was pending is planned again under
            // its new name as soon as its old plan is dropped.
            self.plan_new_tables(&sql, &state).await?;
            let next = state
                .pending(&sql)
                .await?
                .into_iter()
                .map(|r| r.table)
                .find(|t| !attempted.contains(t));
            let Some(table) = next else {
                return self.sweep(&sql, &state).await;
            };
            attempted.insert(table.clone());
            // One table's failure is its own: the others go on.
            if let Err(e) = self.table(&sql, &state, &table, &mut pool).await {
                let error = match &e {
                    CaptureError::Config(reason) => reason.clone(),
                    other => other.to_string(),
                };
                if let Err(record) = state.record_error(&sql, &table, &error).await {
                    tracing::warn!(table = %table, error = %record, "could not record a backfill error");
                }
                if matches!(e, CaptureError::Config(_)) {
                    tracing::error!(table = %table, error = %error, "backfill of a table refused until fixed; the other tables go on");
                } else {
                    tracing::warn!(table = %table, error = %error, "backfill of a table failed; it is retried at the next round");
                }
            }
        }
    }

    /// Publishes the sweep of every finished copy not swept yet: rows of its mirror older than
    /// the copy's oldest snapshot and not copied again were deleted at the source since. Only
    /// tables with a key are mirrors; under the native strategy copies start new generations
    /// instead (no sweep). A table that gets no sweep is announced instead, by a batch without
    /// changes: an empty table then exists in BigQuery too.
    async fn sweep(&self, sql: &Client, state: &StateStore) -> Result<()> {
        for unswept in state.unswept(sql).await? {
            if let Some(oldest) = unswept.oldest_snapshot
                && let Some(table) = Catalog::with_rules(self.columns.clone())
                    .describe(sql, std::slice::from_ref(&unswept.table))
                    .await?
                    .into_iter()
                    .next()
            {
                let placed = self.shapes.for_copy(sql, &table, oldest).await?;
                let swept = self.shapes.sweeps() && !table.key_names().is_empty();
                let changes = if swept {
                    vec![Change {
                        op: Op::Sweep,
                        seq: Seq::new(oldest, 0),
                        commit_time_us: pg2bq_core::civil::now_us(),
                        xid: 0,
                        new: None,
                        old: None,
                    }]
                } else {
                    Vec::new()
                };
                let mut batch = ChangeBatch::new(table.id.clone(), table.column_specs(), changes);
                batch.generation = placed.generation;
                publish(self.sink.as_ref(), &self.protection, batch).await?;
                if swept {
                    tracing::info!(table = %table.id, oldest_snapshot = %oldest, "swept the rows deleted at the source since the previous copy");
                }
            }
            state.mark_swept(sql, &unswept.table).await?;
        }
        Ok(())
    }

    async fn plan_new_tables(&self, sql: &Client, state: &StateStore) -> Result<()> {
        for table in state.unplanned(sql, &self.stream.publication).await? {
            let excluded = self.exclude.as_ref().is_some_and(|e| e.matches(&table));
            let copy = self.mode == BackfillMode::All && !excluded;
            state.plan(sql, &table, self.range_blocks, copy).await?;
            tracing::info!(table = %table, copy, "planned backfill");
        }
        Ok(())
    }

    /// Copies the pending ranges of one table from a snapshot of its own, released as soon as
    /// the table is done. A table rewritten since it was planned, or while it is copied, is
    /// planned again and copied from a new snapshot; a table that no longer exists loses its
    /// plan.
    async fn table(
        &self,
        sql: &Client,
        state: &StateStore,
        table: &TableId,
        pool: &mut Vec<Client>,
    ) -> Result<()> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(now) = self.locate(sql, table).await? else {
                state.reset_backfill(sql, table).await?;
                tracing::info!(table = %table, "a table pending a backfill no longer exists under its name: its plan is dropped (renamed, it is planned again under its new name)");
                return Ok(());
            };
            if !now.published {
                tracing::debug!(table = %table, "pending a backfill but not in the publication: not copied");
                return Ok(());
            }
            let Some(plan) = state.table_plan(sql, table).await? else {
                return Ok(());
            };
            match (plan.relfilenode, now.relfilenode) {
                (Some(planned), Some(current)) if planned != current => {
                    tracing::info!(table = %table, planned, current, "table rewritten since it was planned (VACUUM FULL, CLUSTER, a rewriting ALTER TABLE, pg_repack): copying it again");
                    state.replan(sql, table, self.range_blocks).await?;
                }
                (None, Some(current)) => state.set_relfilenode(sql, table, current).await?,
                _ => {}
            }
            let Some(described) = Catalog::with_rules(self.columns.clone())
                .describe(sql, std::slice::from_ref(table))
                .await?
                .into_iter()
                .next()
            else {
                continue;
            };
            let mut info = RelationInfo::from(&described);
            let ranges: Vec<_> = state
                .ranges(sql)
                .await?
                .into_iter()
                .filter(|r| r.range.table == *table)
                .collect();
            // A table without a key is one snapshot and the changes after it: an interrupted
            // copy of one starts over, so that all its rows come from the same snapshot.
            let keyless = info.columns.iter().all(|c| !c.key);
            if keyless && ranges.iter().any(|r| r.done) && ranges.iter().any(|r| !r.done) {
                state.reopen_ranges(sql, table).await?;
                tracing::info!(table = %table, "copying a table without a key again from the start, from one snapshot");
            }
            let ranges: Vec<_> = state
                .ranges(sql)
                .await?
                .into_iter()
                .filter(|r| r.range.table == *table)
                .collect();
            // Rows copied before this attempt (by a process killed since, or an earlier round):
            // the progress log's rate counts only this attempt's.
            let copied_before: i64 = ranges.iter().filter(|r| r.done).map(|r| r.rows).sum();
            let pending: Vec<Range> = (ranges.into_iter().filter(|r| !r.done))
                .map(|r| r.range)
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            let relfilenode = state
                .table_plan(sql, table)
                .await?
                .and_then(|p| p.relfilenode);
            let snapshot =
                snapshot::export(&self.source, &self.stream.slot, &self.stream.publication).await?;
            // The rows belong to the generation recorded at the snapshot; a table new under its
            // name starts one, whose control message goes first.
            let placed = self
                .shapes
                .for_copy(sql, &described, snapshot.consistent_point)
                .await?;
            info.generation = placed.generation;
            self.protection.check(&info.table, &info.columns)?;
            crate::control::protection::record_table(
                sql,
                state,
                &self.protection,
                &info.table,
                &info.columns,
            )
            .await?;
            if let Some(control) = placed.control {
                let batch = ChangeBatch::control(
                    table.clone(),
                    info.columns.clone(),
                    placed.generation,
                    control,
                );
                publish(self.sink.as_ref(), &self.protection, batch).await?;
            }
            let outcome = self
                .copy_ranges(
                    pending,
                    Arc::new(info),
                    &snapshot,
                    relfilenode,
                    copied_before,
                    pool,
                )
                .await;
            drop(snapshot);
            match outcome {
                Ok(RangeOutcome::Copied(_)) => return Ok(()),
                Ok(RangeOutcome::Rewritten) => {
                    tracing::info!(table = %table, "table rewritten while it was copied (VACUUM FULL, CLUSTER, a rewriting ALTER TABLE, pg_repack): copying it again from a new snapshot");
                    if self.locate(sql, table).await?.is_some() {
                        state.replan(sql, table, self.range_blocks).await?;
                    }
                }
                // Dropped or renamed while it was copied: the next attempt finds it gone.
                Err(_) if self.locate(sql, table).await?.is_none() => {}
                Err(e) => return Err(e),
            }
        }
        Err(CaptureError::Slot(format!(
            "backfill of {table}: rewritten {MAX_ATTEMPTS} times while it was copied; tried again at the next round"
        )))
    }

    /// The table under its name now: its relfilenode (none for a partitioned table) and
    /// whether it is in the publication; `None` if no table has that name.
    async fn locate(&self, sql: &Client, table: &TableId) -> Result<Option<Located>> {
        let row = sql
            .query_opt(
                "SELECT pg_catalog.pg_relation_filenode(c.oid)::bigint, EXISTS ( \
                     SELECT 1 FROM pg_catalog.pg_publication_tables p \
                     WHERE p.pubname = $3 AND p.schemaname = n.nspname AND p.tablename = c.relname) \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
                &[&table.schema, &table.table, &self.stream.publication],
            )
            .await
            .map_err(CaptureError::postgres(format!("looking up {table}")))?;
        Ok(row.map(|r| Located {
            relfilenode: r.get(0),
            published: r.get(1),
        }))
    }

    /// Copies ranges of one table from `snapshot` over up to `concurrency` connections of
    /// `pool` (opened as needed; those that failed are not returned to it). Stops at the first
    /// error or rewrite. `copied_before` rows of the table were copied before (by earlier
    /// attempts).
    async fn copy_ranges(
        &self,
        ranges: Vec<Range>,
        info: Arc<RelationInfo>,
        snapshot: &snapshot::ExportedSnapshot,
        relfilenode: Option<i64>,
        copied_before: i64,
        pool: &mut Vec<Client>,
    ) -> Result<RangeOutcome> {
        let workers = self.concurrency.max(1).min(ranges.len());
        while pool.len() < workers {
            pool.push(self.connect("pg2bq-backfill-copy").await?);
        }
        let queue = Arc::new(Mutex::new(ranges.into_iter().collect::<VecDeque<Range>>()));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for client in pool.drain(..workers) {
            let worker = Worker {
                queue: Arc::clone(&queue),
                stop: Arc::clone(&stop),
                info: Arc::clone(&info),
                snapshot: snapshot.name.clone(),
                consistent_point: snapshot.consistent_point,
                relfilenode,
                started,
                copied_before,
            };
            let this = self.clone();
            tasks.push(tokio::spawn(async move { this.work(client, worker).await }));
        }
        let mut outcome = Ok(RangeOutcome::Copied(0));
        for task in tasks {
            match task.await {
                Ok((client, Ok(RangeOutcome::Copied(rows)))) => {
                    pool.extend(client);
                    if let Ok(RangeOutcome::Copied(total)) = &mut outcome {
                        *total += rows;
                    }
                }
                Ok((client, Ok(RangeOutcome::Rewritten))) => {
                    pool.extend(client);
                    if outcome.is_ok() {
                        outcome = Ok(RangeOutcome::Rewritten);
                    }
                }
                Ok((_, Err(e))) => outcome = Err(e),
                Err(e) => {
                    outcome = Err(CaptureError::Decode(format!("backfill worker failed: {e}")))
                }
            }
        }
        outcome
    }

    /// One connection copying ranges of the queue until it is empty, a range fails or the
    /// table turns out rewritten; returns the connection unless it failed.
    async fn work(
        &self,
        mut sql: Client,
        worker: Worker,
    ) -> (Option<Client>, Result<RangeOutcome>) {
        let state = self.state();
        let mut copied = 0;
        loop {
            if worker.stop.load(Ordering::Relaxed) {
                return (Some(sql), Ok(RangeOutcome::Copied(copied)));
            }
            let Some(range) = worker.queue.lock().await.pop_front() else {
                return (Some(sql), Ok(RangeOutcome::Copied(copied)));
            };
            let copy = RangeCopy {
                info: &worker.info,
                range: &range,
                relfilenode: worker.relfilenode,
                snapshot: &worker.snapshot,
                consistent_point: worker.consistent_point,
                sink: self.sink.as_ref(),
                protection: &self.protection,
                limits: self.limits,
            };
            let rows = match copy.run(&mut sql).await {
                Ok(RangeOutcome::Copied(rows)) => rows,
                Ok(RangeOutcome::Rewritten) => {
                    worker.stop.store(true, Ordering::Relaxed);
                    return (Some(sql), Ok(RangeOutcome::Rewritten));
                }
                Err(e) => {
                    worker.stop.store(true, Ordering::Relaxed);
                    return (None, Err(e));
                }
            };
            copied += rows;
            let finished = state
                .finish(&sql, &range, rows, &worker.consistent_point.to_string())
                .await;
            if let Err(e) = finished {
                worker.stop.store(true, Ordering::Relaxed);
                return (None, Err(e.into()));
            }
            if let Ok(Some(progress)) = state
                .progress(&sql, Some(&range.table))
                .await
                .map(|p| p.into_iter().next())
            {
                log_progress(
                    &range.table,
                    &progress,
                    worker.started,
                    worker.copied_before,
                );
            }
        }
    }
}

/// Publishes one batch and waits for Pub/Sub's acknowledgement.
async fn publish(sink: &dyn BatchSink, protection: &Protection, batch: ChangeBatch) -> Result<()> {
    let ready = ReadyBatch {
        batch,
        min_commit_lsn: Lsn(0),
    };
    let (_, published) = sink.send(ready.encode(protection));
    published.await.result.map(|_| ())
}

/// At most this many attempts at a table per round (each after a rewrite, or after it was
/// dropped or renamed while copied).
const MAX_ATTEMPTS: usize = 3;

/// Where a table pending a backfill is now.
struct Located {
    relfilenode: Option<i64>,
    published: bool,
}

/// What one copying connection shares with the others of its table.
struct Worker {
    queue: Arc<Mutex<VecDeque<Range>>>,
    stop: Arc<AtomicBool>,
    info: Arc<RelationInfo>,
    snapshot: String,
    consistent_point: Lsn,
    relfilenode: Option<i64>,
    started: Instant,
    /// Rows of the table copied before this attempt started.
    copied_before: i64,
}

fn log_progress(table: &TableId, progress: &TableProgress, started: Instant, copied_before: i64) {
    let (rate, eta) = rate_and_eta(progress, copied_before, started.elapsed().as_secs_f64());
    tracing::info!(
        table = %table,
        rows_copied = progress.copied_rows,
        rows_estimated = progress.estimated_rows,
        ranges_done = progress.done_ranges,
        ranges = progress.ranges,
        rows_per_s = rate,
        eta_s = eta,
        "backfill progress"
    );
}

/// Rows per second of this attempt at a table (the rows copied since it started `seconds` ago,
/// not those `copied_before` it by a process killed since) and the seconds left at that rate.
fn rate_and_eta(progress: &TableProgress, copied_before: i64, seconds: f64) -> (u64, u64) {
    let rate = (progress.copied_rows - copied_before).max(0) as f64 / seconds.max(1e-3);
    let remaining = (progress.estimated_rows - progress.copied_rows).max(0) as f64;
    let eta = if progress.done_ranges == progress.ranges {
        0
    } else {
        (remaining / rate.max(1.0)).round() as u64
    };
    (rate.round() as u64, eta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(copied_rows: i64, done_ranges: i64) -> TableProgress {
        TableProgress {
            table: TableId {
                schema: "s".into(),
                table: "t".into(),
            },
            estimated_rows: 2_000_000,
            copied_rows,
            ranges: 100,
            done_ranges,
            finished: false,
            seconds: 0.0,
            replanned: 0,
            last_error: None,
        }
    }

    #[test]
    fn a_resumed_copy_rates_only_the_rows_it_copied_itself() {
        // Half the table was copied by a process killed since; this one copied 20,000 rows in
        // 0.2 s: 100,000 rows/s, and the other half takes 10 s more (not 5,000,000 rows/s and
        // no time left, as when the earlier process's rows were counted as this one's).
        assert_eq!(
            rate_and_eta(&progress(1_000_000, 50), 980_000, 0.2),
            (100_000, 10)
        );
        // A first attempt counts every row; a finished table has no time left.
        assert_eq!(rate_and_eta(&progress(500_000, 25), 0, 5.0), (100_000, 15));
        assert_eq!(rate_and_eta(&progress(2_000_000, 100), 980_000, 10.0).1, 0);
    }
}
