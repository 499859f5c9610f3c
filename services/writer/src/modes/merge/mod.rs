//! Folding staged changes into their target tables, for the staged strategy (mirrors) and the
//! append-only mode (logs).
//!
//! - this file: [`Merger`], which tables wait for a MERGE and running it (on a timer locally, on
//!   `/merge` from Cloud Scheduler in GCP, and once at start, so that a writer restart loses no
//!   pending MERGE);
//! - [`mirror_sql`]: the MERGE of a mirror (newest change per key, newest value per column);
//! - [`log_sql`]: the insert of a log (every change once).
//!
//! What to merge is read from each staging table's metadata ([`TableMeta`]), so any writer
//! instance can merge tables it never wrote.

pub mod log_sql;
pub mod mirror_sql;

use crate::error::Result;
use crate::shape::is_metadata;
use crate::table_meta::{TableKind, TableMeta};
use pg2bq_bigquery::rest::{FieldSpec, RestClient};
use pg2bq_core::bq_naming::{
    BqTableName, CHANGE_TABLE_SUFFIX, DatasetLayout, Datasets, KEY_COLUMN_DESCRIPTION,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A target table to bring up to date from its staging table (`<table>__changes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeTarget {
    /// The target table (a mirror or a log).
    pub table: BqTableName,
    /// Mirror or log.
    pub kind: TableKind,
    /// Key column names (mirrors).
    pub keys: Vec<String>,
    /// Data column names (keys included): every data column of the staging table, so that a
    /// column added by any batch is merged.
    pub columns: Vec<String>,
    /// Columns that have arrived as unchanged TOAST values.
    pub unchanged: Vec<String>,
}

impl MergeTarget {
    /// The target of a staging table, from its metadata and columns.
    pub fn of(table: BqTableName, meta: &TableMeta, staging_fields: &[FieldSpec]) -> Self {
        MergeTarget {
            table,
            kind: meta.kind,
            keys: meta.keys.clone(),
            columns: staging_fields
                .iter()
                .filter(|f| !is_metadata(&f.name))
                .map(|f| f.name.clone())
                .collect(),
            unchanged: meta.unchanged.clone(),
        }
    }

    /// The statements that bring the target up to date, in order.
    fn statements(&self, project: &str) -> [String; 2] {
        match self.kind {
            TableKind::Mirror => mirror_sql::merge_statements(project, self),
            TableKind::Log => log_sql::log_statements(project, self),
        }
    }

    fn prune_statement(&self, project: &str, retention: Duration) -> String {
        match self.kind {
            TableKind::Mirror => mirror_sql::prune_statement(project, self, retention),
            TableKind::Log => log_sql::prune_statement(project, self, retention),
        }
    }
}

/// How often one table's staging table is pruned, at most.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Tables waiting for a MERGE, and the MERGE runner.
pub struct Merger {
    rest: RestClient,
    layout: DatasetLayout,
    pending: Mutex<HashMap<BqTableName, MergeTarget>>,
    seen: Mutex<HashMap<BqTableName, MergeTarget>>,
    running: Mutex<()>,
    retention: Duration,
    pruned_at: Mutex<HashMap<BqTableName, Instant>>,
}

impl Merger {
    /// A merger writing through `rest` into the datasets of `layout`, pruning staged rows older
    /// than `retention` (zero: never).
    pub fn new(rest: RestClient, layout: DatasetLayout, retention: Duration) -> Self {
        Merger {
            rest,
            layout,
            pending: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            running: Mutex::new(()),
            retention,
            pruned_at: Mutex::new(HashMap::new()),
        }
    }

    /// Notes that the staging table of `target` received rows.
    pub async fn mark(&self, target: MergeTarget) {
        self.seen
            .lock()
            .await
            .insert(target.table.clone(), target.clone());
        self.pending
            .lock()
            .await
            .insert(target.table.clone(), target);
    }

    /// Forgets `table`: its tables were dropped for a new generation, and what this instance
    /// knew of its columns no longer holds.
    pub async fn forget(&self, table: &BqTableName) {
        self.pending.lock().await.remove(table);
        self.seen.lock().await.remove(table);
    }

    /// Merges every table that received rows since its last MERGE; returns how many it merged.
    /// A table whose MERGE fails is kept pending for the next round.
    pub async fn merge_pending(&self) -> Result<usize> {
        let _one_at_a_time = self.running.lock().await;
        let tables: Vec<MergeTarget> = self.pending.lock().await.drain().map(|(_, t)| t).collect();
        self.merge(tables).await
    }

    /// Merges every target table of the layout's datasets, found in BigQuery (so that an
    /// instance that never wrote a table, e.g. the one Cloud Scheduler reaches, or one that just
    /// started, merges it too), and every table this instance wrote.
    pub async fn merge_all(&self) -> Result<usize> {
        let _one_at_a_time = self.running.lock().await;
        self.pending.lock().await.clear();
        let mut targets: HashMap<BqTableName, MergeTarget> = self
            .discover()
            .await?
            .into_iter()
            .map(|t| (t.table.clone(), t))
            .collect();
        for (table, target) in self.seen.lock().await.iter() {
            targets
                .entry(table.clone())
                .or_insert_with(|| target.clone());
        }
        self.merge(targets.into_values().collect()).await
    }

    /// Staging tables of the layout's datasets, with what their metadata says. Staging tables
    /// of an older release without metadata are mirrors whose key columns are marked.
    async fn discover(&self) -> Result<Vec<MergeTarget>> {
        let datasets = match self.layout.datasets() {
            Datasets::Single { dataset } => vec![dataset.clone()],
            Datasets::PerSchema { prefix } => {
                let all = self.rest.list_datasets().await?;
                all.into_iter()
                    .filter(|d| d.starts_with(prefix.as_str()))
                    .collect()
            }
        };
        let mut targets = Vec::new();
        for dataset in datasets {
            for table in self.rest.list_tables(&dataset).await? {
                let Some(target) = table.strip_suffix(CHANGE_TABLE_SUFFIX) else {
                    continue;
                };
                let target = BqTableName {
                    dataset: dataset.clone(),
                    table: target.to_owned(),
                };
                if let Some(found) = self.describe(&target).await? {
                    targets.push(found);
                }
            }
        }
        Ok(targets)
    }

    /// What the staging table of `target` says: `None` when it is gone, holds no metadata and
    /// no marked key (an empty staging table of a new generation), or marks a dropped table.
    async fn describe(&self, target: &BqTableName) -> Result<Option<MergeTarget>> {
        let Some(info) = self.rest.table(&target.change_table()).await? else {
            return Ok(None);
        };
        let meta = match info
            .description
            .as_deref()
            .and_then(TableMeta::from_description)
        {
            Some(meta) => meta,
            None => {
                let keys: Vec<String> = info
                    .fields
                    .iter()
                    .filter(|f| f.description.as_deref() == Some(KEY_COLUMN_DESCRIPTION))
                    .map(|f| f.name.clone())
                    .collect();
                if keys.is_empty() {
                    return Ok(None);
                }
                TableMeta {
                    kind: TableKind::Mirror,
                    source: String::new(),
                    keys,
                    unchanged: Vec::new(),
                }
            }
        };
        Ok(Some(MergeTarget::of(target.clone(), &meta, &info.fields)))
    }

    async fn merge(&self, tables: Vec<MergeTarget>) -> Result<usize> {
        let mut first_error = None;
        let mut merged = 0;
        for target in tables {
            let started = Instant::now();
            match self.run_statements(&target).await {
                Ok(()) => {
                    merged += 1;
                    let ms = started.elapsed().as_millis() as u64;
                    tracing::debug!(table = %target.table.table, ms, "merged");
                }
                Err(e) => {
                    tracing::warn!(table = %target.table.table, error = %e, "MERGE failed; will retry");
                    // Retried as BigQuery describes the table now: it may have been made again
                    // (a new generation) with other columns, or dropped.
                    self.seen.lock().await.remove(&target.table);
                    if let Ok(Some(fresh)) = self.describe(&target.table).await {
                        self.pending
                            .lock()
                            .await
                            .entry(target.table.clone())
                            .or_insert(fresh);
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(merged),
        }
    }

    async fn run_statements(&self, target: &MergeTarget) -> Result<()> {
        for statement in target.statements(self.rest.project()) {
            self.rest.query(&statement).await?;
        }
        if self.prune_due(&target.table).await {
            let statement = target.prune_statement(self.rest.project(), self.retention);
            self.rest.query(&statement).await?;
            self.pruned_at
                .lock()
                .await
                .insert(target.table.clone(), Instant::now());
        }
        Ok(())
    }

    /// Whether the staging table of `table` is to be pruned now: at most once per retention
    /// period (and per hour) by this instance.
    async fn prune_due(&self, table: &BqTableName) -> bool {
        if self.retention.is_zero() {
            return false;
        }
        let every = self.retention.min(PRUNE_EVERY);
        self.pruned_at
            .lock()
            .await
            .get(table)
            .is_none_or(|at| at.elapsed() >= every)
    }

    /// Runs [`Merger::merge_all`] once in the background, again after each failure (BigQuery may
    /// be unreachable while the writer starts): staged changes that a previous writer left
    /// unmerged are merged without waiting for the next write or `/merge`.
    pub fn spawn_start_round(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            loop {
                match self.merge_all().await {
                    Ok(merged) => {
                        tracing::info!(merged, "merged the tables staged before this start");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_s = delay.as_secs(), "merging at start failed; will retry");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(60));
                    }
                }
            }
        });
    }

    /// Runs [`Merger::merge_pending`] every `interval` in the background.
    pub fn spawn_timer(self: Arc<Self>, interval: Duration) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let _ = self.merge_pending().await;
            }
        });
    }
}
