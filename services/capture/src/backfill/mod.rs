//! Backfill: existing rows of the replicated tables, copied from a consistent snapshot while
//! changes keep streaming.
//!
//! Each round plans the publication's tables that have no plan yet (ranges of blocks), exports a
//! snapshot from a temporary slot if any range is pending, and copies the pending ranges in
//! parallel over connections that import that snapshot. Rows carry the snapshot's consistent
//! point as sequence number, so the newest version of every row wins downstream whatever arrives
//! first. A range is marked done only after Pub/Sub acknowledged it; after a restart the pending
//! ranges are copied from a new snapshot, whose later consistent point keeps the result correct.
//! Tables added to the publication later are planned by the next round; `pg2bq backfill <table>`
//! deletes a table's plan so that the next round copies it again. See `services/capture/docs/backfill.md`.

pub mod copy_range;
pub mod copy_text;
pub mod snapshot;

use crate::error::{CaptureError, Result};
use crate::pipeline::batcher::BatchLimits;
use crate::pipeline::batcher::ReadyBatch;
use crate::sinks::BatchSink;
use crate::source::relations::RelationInfo;
use crate::source::shapes::Shapes;
use copy_range::RangeCopy;
use pg2bq_core::config::SourceArgs;
use pg2bq_core::config::StreamArgs;
use pg2bq_core::lsn::Lsn;
use pg2bq_core::pg_connect::connect_sql;
use pg2bq_core::selection::TableSelection;
use pg2bq_core::seq::Seq;
use pg2bq_core::wire::TableId;
use pg2bq_core::wire::{Change, ChangeBatch, Op};
use pg2bq_source::catalog::Catalog;
use pg2bq_source::state::StateStore;
use pg2bq_source::state::backfill::Range;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

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
    /// The generations copies belong to.
    pub shapes: Shapes,
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

    async fn connect(&self, application_name: &str) -> Result<tokio_postgres::Client> {
        Ok(connect_sql(&self.source, application_name).await?)
    }

    async fn round(&self) -> Result<()> {
        let sql = self.connect("pg2bq-backfill").await?;
        let state = self.state();
        for table in state.unplanned(&sql, &self.stream.publication).await? {
            let excluded = self.exclude.as_ref().is_some_and(|e| e.matches(&table));
            let copy = self.mode == BackfillMode::All && !excluded;
            state.plan(&sql, &table, self.range_blocks, copy).await?;
            tracing::info!(table = %table, copy, "planned backfill");
        }
        self.sweep(&sql, &state).await?;
        let mut pending = state.pending(&sql).await?;
        if pending.is_empty() {
            return Ok(());
        }
        let mut tables: Vec<TableId> = pending.iter().map(|r| r.table.clone()).collect();
        tables.dedup();
        let described = Catalog::new().describe(&sql, &tables).await?;
        let infos: HashMap<TableId, Arc<RelationInfo>> = described
            .iter()
            .map(|t| (t.id.clone(), Arc::new(RelationInfo::from(t))))
            .collect();
        // A table without a key is one snapshot and the changes after it: an interrupted copy
        // of one starts over, so that all its rows come from the same snapshot.
        let mut reopened = false;
        for range in state.ranges(&sql).await? {
            let keyless = infos
                .get(&range.range.table)
                .is_some_and(|info| info.columns.iter().all(|c| !c.key));
            if keyless && range.done && tables.contains(&range.range.table) {
                state.reopen_ranges(&sql, &range.range.table).await?;
                tables.retain(|t| *t != range.range.table);
                tracing::info!(table = %range.range.table, "copying a table without a key again from the start, from one snapshot");
                reopened = true;
            }
        }
        if reopened {
            pending = state.pending(&sql).await?;
        }
        let snapshot =
            snapshot::export(&self.source, &self.stream.slot, &self.stream.publication).await?;
        // Each table's rows belong to the generation recorded at the snapshot; a table that is
        // new under its name starts one, whose control message goes first.
        let mut infos = infos;
        for table in &described {
            let placed = self
                .shapes
                .for_copy(&sql, table, snapshot.consistent_point)
                .await?;
            let mut info = RelationInfo::from(table);
            info.generation = placed.generation;
            if let Some(control) = placed.control {
                let batch = ChangeBatch::control(
                    table.id.clone(),
                    info.columns.clone(),
                    placed.generation,
                    control,
                );
                publish(self.sink.as_ref(), batch).await?;
            }
            infos.insert(table.id.clone(), Arc::new(info));
        }
        let infos = Arc::new(infos);
        let queue = Arc::new(Mutex::new(pending.into_iter().collect::<VecDeque<Range>>()));
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..self.concurrency.max(1) {
            let (queue, infos, this) = (Arc::clone(&queue), Arc::clone(&infos), self.clone());
            let (name, lsn) = (snapshot.name.clone(), snapshot.consistent_point);
            workers.push(tokio::spawn(async move {
                this.work(queue, infos, name, lsn, started).await
            }));
        }
        let mut outcome = Ok(());
        for worker in workers {
            match worker.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => outcome = Err(e),
                Err(e) => {
                    outcome = Err(CaptureError::Decode(format!("backfill worker failed: {e}")))
                }
            }
        }
        drop(snapshot);
        outcome?;
        self.sweep(&sql, &state).await
    }

    /// Publishes the sweep of every finished copy not swept yet: rows of its mirror older than
    /// the copy's oldest snapshot and not copied again were deleted at the source since. Only
    /// tables with a key are mirrors; under the native strategy copies start new generations
    /// instead (no sweep).
    async fn sweep(&self, sql: &tokio_postgres::Client, state: &StateStore) -> Result<()> {
        for unswept in state.unswept(sql).await? {
            if let Some(oldest) = unswept.oldest_snapshot
                && self.shapes.sweeps()
                && let Some(table) = Catalog::new()
                    .describe(sql, std::slice::from_ref(&unswept.table))
                    .await?
                    .into_iter()
                    .next()
                && !table.key_names().is_empty()
            {
                let placed = self.shapes.for_copy(sql, &table, oldest).await?;
                let sweep = Change {
                    op: Op::Sweep,
                    seq: Seq::new(oldest, 0),
                    commit_time_us: pg2bq_core::civil::now_us(),
                    xid: 0,
                    new: None,
                    old: None,
                };
                let mut batch =
                    ChangeBatch::new(table.id.clone(), table.column_specs(), vec![sweep]);
                batch.generation = placed.generation;
                publish(self.sink.as_ref(), batch).await?;
                tracing::info!(table = %table.id, oldest_snapshot = %oldest, "swept the rows deleted at the source since the previous copy");
            }
            state.mark_swept(sql, &unswept.table).await?;
        }
        Ok(())
    }

    async fn work(
        &self,
        queue: Arc<Mutex<VecDeque<Range>>>,
        infos: Arc<HashMap<TableId, Arc<RelationInfo>>>,
        snapshot: String,
        consistent_point: Lsn,
        started: Instant,
    ) -> Result<()> {
        let mut sql = self.connect("pg2bq-backfill-copy").await?;
        let state = self.state();
        loop {
            let Some(range) = queue.lock().await.pop_front() else {
                return Ok(());
            };
            let copy = RangeCopy {
                info: infos.get(&range.table).ok_or_else(|| {
                    CaptureError::Slot(format!(
                        "{} is pending a backfill but no longer exists",
                        range.table
                    ))
                })?,
                range: &range,
                snapshot: &snapshot,
                consistent_point,
                sink: self.sink.as_ref(),
                limits: self.limits,
            };
            let rows = copy.run(&mut sql).await?;
            state
                .finish(&sql, &range, rows, &consistent_point.to_string())
                .await?;
            let Some(progress) = state
                .progress(&sql, Some(&range.table))
                .await?
                .into_iter()
                .next()
            else {
                continue;
            };
            let seconds = started.elapsed().as_secs_f64().max(1e-3);
            let rate = progress.copied_rows as f64 / seconds;
            let remaining = (progress.estimated_rows - progress.copied_rows).max(0) as f64;
            tracing::info!(
                table = %range.table,
                rows_copied = progress.copied_rows,
                rows_estimated = progress.estimated_rows,
                ranges_done = progress.done_ranges,
                ranges = progress.ranges,
                rows_per_s = rate.round() as u64,
                eta_s = if progress.done_ranges == progress.ranges { 0 } else { (remaining / rate.max(1.0)).round() as u64 },
                "backfill progress"
            );
        }
    }
}

/// Publishes one batch and waits for Pub/Sub's acknowledgement.
async fn publish(sink: &dyn BatchSink, batch: ChangeBatch) -> Result<()> {
    let ready = ReadyBatch {
        batch,
        min_commit_lsn: Lsn(0),
    };
    let (_, published) = sink.send(ready.encode());
    published.await.result.map(|_| ())
}
