//! A MERGE round: which tables merge, in parallel within a time budget, and one table's MERGE.
//!
//! A table whose staging table's data marks are those its last MERGE recorded has no new rows:
//! it costs no query. The others merge at most [`MergeSettings::parallelism`] at a time; a
//! round starts no MERGE after its budget and waits no longer for the ones running, which finish
//! in the background. What a round leaves is merged by the next one: its watermark has not
//! moved, and a table merging already is not started twice.

use super::view_sql::{VIEW_LABEL, live_view_statement_due};
use super::window::{MergeState, Window, micros, now_micros};
use super::{MergeSettings, MergeTarget, Merger};
use crate::error::Result;
use crate::table_meta::TableKind;
use pg2bq_bigquery::rest::TableInfo;
use pg2bq_core::bq_naming::BqTableName;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

/// What a round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MergeReport {
    /// Tables brought up to date (their MERGE ran, or their window was empty).
    pub merged_tables: usize,
    /// Tables skipped without a query: nothing appended since their last MERGE.
    pub idle_tables: usize,
    /// Tables left to the next round (the budget ran out, or a MERGE of them is running).
    pub continued_tables: usize,
    /// Tables whose MERGE failed (retried by the next round).
    pub failed_tables: usize,
    /// Queries issued by the MERGEs that finished within the round.
    pub queries: usize,
    /// Rows those queries selected from staging tables and target tables.
    pub rows_read: u64,
}

impl MergeReport {
    /// Adds another round's figures (of another stream's tables) to these.
    pub fn absorb(&mut self, other: &MergeReport) {
        self.merged_tables = self.merged_tables.saturating_add(other.merged_tables);
        self.idle_tables = self.idle_tables.saturating_add(other.idle_tables);
        self.continued_tables = self.continued_tables.saturating_add(other.continued_tables);
        self.failed_tables = self.failed_tables.saturating_add(other.failed_tables);
        self.queries = self.queries.saturating_add(other.queries);
        self.rows_read = self.rows_read.saturating_add(other.rows_read);
    }
}

/// What one table's MERGE did.
#[derive(Debug, Default)]
struct TableMerge {
    queries: usize,
    rows_read: u64,
}

impl Merger {
    /// Merges `candidates` (each with its staging table's metadata), skipping idle ones unless
    /// `forced` names them (this instance appended to them).
    pub(super) async fn round(
        self: &Arc<Self>,
        candidates: Vec<(MergeTarget, TableInfo)>,
        forced: HashSet<BqTableName>,
    ) -> Result<MergeReport> {
        let deadline = Instant::now() + self.settings.round_budget;
        let permits = Arc::new(Semaphore::new(self.settings.parallelism.max(1)));
        let mut report = MergeReport::default();
        let mut running = Vec::new();
        for (target, info) in candidates {
            let state = MergeState::from_labels(&info.labels);
            if !forced.contains(&target.table)
                && state.as_ref().is_some_and(|s| s.idle(&info.marks))
            {
                report.idle_tables += 1;
                continue;
            }
            let permit =
                tokio::time::timeout_at(deadline.into(), Arc::clone(&permits).acquire_owned())
                    .await;
            let Ok(Ok(permit)) = permit else {
                // Out of time: the table keeps its watermark, and the next round merges it.
                self.keep_pending(&target, &forced).await;
                report.continued_tables += 1;
                continue;
            };
            if !self.in_flight.lock().await.insert(target.table.clone()) {
                self.keep_pending(&target, &forced).await;
                report.continued_tables += 1;
                continue;
            }
            let merger = Arc::clone(self);
            running.push(tokio::spawn(async move {
                let outcome = merger.merge_table(&target, &info).await;
                merger.in_flight.lock().await.remove(&target.table);
                drop(permit);
                if let Err(e) = &outcome {
                    merger.after_failure(&target, e).await;
                }
                outcome
            }));
        }
        let mut first_error = None;
        for task in running {
            match tokio::time::timeout_at(deadline.into(), task).await {
                Ok(Ok(Ok(table))) => {
                    report.merged_tables += 1;
                    report.queries += table.queries;
                    report.rows_read = report.rows_read.saturating_add(table.rows_read);
                }
                Ok(Ok(Err(e))) => {
                    report.failed_tables += 1;
                    first_error.get_or_insert(e);
                }
                // The task panicked: its table keeps its watermark.
                Ok(Err(_)) => report.failed_tables += 1,
                // Still running: it finishes in the background.
                Err(_) => report.continued_tables += 1,
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Keeps a table this instance appended to pending, for the next round.
    async fn keep_pending(&self, target: &MergeTarget, forced: &HashSet<BqTableName>) {
        if forced.contains(&target.table) {
            self.pending
                .lock()
                .await
                .entry(target.table.clone())
                .or_insert_with(|| target.clone());
        }
    }

    /// After a failed MERGE: retried as BigQuery describes the table now (it may have been made
    /// again, a new generation, with other columns, or dropped).
    async fn after_failure(&self, target: &MergeTarget, error: &crate::error::WriterError) {
        tracing::warn!(table = %target.table.table, error = %error, "MERGE failed; will retry");
        self.seen.lock().await.remove(&target.table);
        if let Ok(Some((fresh, _))) = self.describe(&target.table).await {
            self.pending
                .lock()
                .await
                .entry(target.table.clone())
                .or_insert(fresh);
        }
    }

    /// Brings one table up to date from the staged rows of its window, then moves its
    /// watermark, prunes what no MERGE needs any more, and renews its live view when due.
    async fn merge_table(&self, target: &MergeTarget, info: &TableInfo) -> Result<TableMerge> {
        let started = Instant::now();
        let began = now_micros();
        let settings: &MergeSettings = &self.settings;
        let project = self.rest.project();
        let changes = target.table.change_table();
        let mut done = TableMerge::default();
        let previous = MergeState::from_labels(&info.labels);
        // The target's rows, as the metadata says (the first MERGE), or counted.
        let mut target_rows = 0;
        let (set, window_rows) = match &previous {
            None => {
                if let Some(target_info) = self.rest.table(&target.table).await? {
                    target_rows = rows_of(&target_info);
                }
                (Window::All, rows_of(info))
            }
            Some(state) => {
                let window = Window::after(state.merged_through, settings.overlap);
                let stats = self
                    .rest
                    .query(
                        &window
                            .stats_query(&changes.quoted(project), &target.table.quoted(project)),
                    )
                    .await?;
                done.queries += 1;
                let first = stats.rows.first();
                let cell = |i: usize| first.and_then(|r| r.get(i).cloned().flatten());
                let number = |i: usize| cell(i).and_then(|c| c.parse::<u64>().ok()).unwrap_or(0);
                let oldest: Option<i64> = cell(1).and_then(|c| c.parse().ok());
                target_rows = number(2);
                (window.set(oldest, settings.overlap), number(0))
            }
        };
        if window_rows > 0 || previous.is_none() {
            for statement in target.statements(project, set) {
                self.rest.query(&statement).await?;
                done.queries += 1;
            }
            // What the MERGE read: the staged rows of its window and the target table.
            done.rows_read = window_rows.saturating_add(target_rows);
        }
        let state = MergeState {
            merged_through: began,
            marks: info.marks.digest(),
        };
        let mut labels = state.into_labels(info.labels.clone());
        if self.prune_due(&target.table).await {
            let retained = began.saturating_sub(micros(settings.retention));
            let cutoff = match Window::after(began, settings.overlap) {
                Window::Since(start) => start.min(retained),
                Window::All => retained,
            };
            self.rest
                .query(&target.prune_statement(project, cutoff))
                .await?;
            done.queries += 1;
            self.pruned_at
                .lock()
                .await
                .insert(target.table.clone(), Instant::now());
        }
        if target.kind == TableKind::Mirror
            && let Some((statement, label)) = live_view_statement_due(
                project,
                target,
                labels.get(VIEW_LABEL).map(String::as_str),
                &state,
                settings.overlap,
            )
        {
            self.rest.query(&statement).await?;
            done.queries += 1;
            labels.insert(VIEW_LABEL.to_owned(), label);
        }
        self.rest.set_labels(&changes, &labels).await?;
        tracing::debug!(
            table = %target.table.table,
            ms = started.elapsed().as_millis() as u64,
            window_rows,
            queries = done.queries,
            "merged"
        );
        Ok(done)
    }
}

/// The rows a table's metadata says it has (0 when it does not say).
fn rows_of(info: &TableInfo) -> u64 {
    info.marks
        .rows
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}
