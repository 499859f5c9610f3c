//! Folding staged changes into their target tables, for the staged strategy (mirrors) and the
//! append-only mode (logs).
//!
//! - this file: [`MergeTarget`] and [`Merger`], which tables wait for a MERGE (on a timer
//!   locally, on `/merge` from Cloud Scheduler in GCP, and once at start, so that a writer restart
//!   loses no pending MERGE);
//! - [`round`]: a round: idle tables skipped from their metadata, the others merged in parallel
//!   within a time budget, each reading only its window;
//! - [`window`]: which staged rows a MERGE reads, and the watermark kept in BigQuery;
//! - [`mirror_sql`]: the MERGE of a mirror (newest change per key, newest value per column);
//! - [`view_sql`]: the live view of a mirror (the mirror with the changes not merged yet);
//! - [`log_sql`]: the insert of a log (every change once).
//!
//! What to merge is read from each staging table's metadata ([`TableMeta`], labels), so any
//! writer instance can merge tables it never wrote.

pub mod log_sql;
pub mod mirror_sql;
pub mod round;
pub mod view_sql;
pub mod window;

use crate::error::Result;
use crate::shape::is_metadata;
use crate::table_meta::{TableKind, TableMeta};
use pg2bq_bigquery::rest::{FieldSpec, RestClient, TableInfo};
use pg2bq_core::bq_naming::{
    APPENDED_AT_COLUMN, BqTableName, CHANGE_TABLE_SUFFIX, COMMIT_TS_COLUMN, DatasetLayout,
    Datasets, KEY_COLUMN_DESCRIPTION, quote_column,
};
pub use round::MergeReport;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use window::Window;

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
    /// Deleted rows stay in the mirror, marked (see [`TableMeta::soft_deletes`]).
    pub soft_deletes: bool,
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
            soft_deletes: meta.soft_deletes,
        }
    }

    /// The statements that fold the staged rows of `set` into the target, in order.
    fn statements(&self, project: &str, set: Window) -> [String; 2] {
        match self.kind {
            TableKind::Mirror => mirror_sql::merge_statements(project, self, set),
            TableKind::Log => log_sql::log_statements(project, self, set),
        }
    }

    /// The statement that deletes the staged rows appended before `cutoff` (microseconds): a
    /// MERGE has folded them, and no late delivery they could beat can still arrive.
    fn prune_statement(&self, project: &str, cutoff: i64) -> String {
        // On the partitioning column itself, so that BigQuery drops whole partitions; rows of
        // an older release have no append time, and go by their commit time.
        let appended = quote_column(APPENDED_AT_COLUMN);
        let cutoff = format!("TIMESTAMP_MICROS({cutoff})");
        format!(
            "DELETE FROM {} WHERE {appended} < {cutoff} OR ({appended} IS NULL AND {} < {cutoff})",
            self.table.change_table().quoted(project),
            quote_column(COMMIT_TS_COLUMN),
        )
    }
}

/// How merges run.
#[derive(Debug, Clone)]
pub struct MergeSettings {
    /// How long staged rows are kept after they were merged: as long as a late delivery can
    /// still arrive (zero: for ever).
    pub retention: Duration,
    /// How far before the watermark a MERGE reads (see [`window`]).
    pub overlap: Duration,
    /// How many tables merge at once.
    pub parallelism: usize,
    /// How long a round starts and waits for MERGEs; what is left continues in the next round.
    pub round_budget: Duration,
}

impl Default for MergeSettings {
    fn default() -> Self {
        MergeSettings {
            retention: Duration::from_secs(86_400),
            overlap: Duration::from_secs(300),
            parallelism: 4,
            round_budget: Duration::from_secs(50),
        }
    }
}

/// How often one table's staging table is pruned, at most.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Tables waiting for a MERGE, and the MERGE runner.
pub struct Merger {
    rest: RestClient,
    layout: DatasetLayout,
    settings: MergeSettings,
    pending: Mutex<HashMap<BqTableName, MergeTarget>>,
    seen: Mutex<HashMap<BqTableName, MergeTarget>>,
    running: Mutex<()>,
    in_flight: Mutex<HashSet<BqTableName>>,
    pruned_at: Mutex<HashMap<BqTableName, Instant>>,
}

impl Merger {
    /// A merger writing through `rest` into the datasets of `layout`.
    pub fn new(rest: RestClient, layout: DatasetLayout, settings: MergeSettings) -> Self {
        Merger {
            rest,
            layout,
            settings,
            pending: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            running: Mutex::new(()),
            in_flight: Mutex::new(HashSet::new()),
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

    /// Merges every table that received rows on this instance since its last MERGE.
    pub async fn merge_pending(self: &Arc<Self>) -> Result<MergeReport> {
        let _one_at_a_time = self.running.lock().await;
        let tables: Vec<MergeTarget> = self.pending.lock().await.drain().map(|(_, t)| t).collect();
        let forced: HashSet<BqTableName> = tables.iter().map(|t| t.table.clone()).collect();
        let mut candidates = Vec::new();
        for target in tables {
            match self.rest.table(&target.table.change_table()).await {
                Ok(Some(info)) => candidates.push((target, info)),
                Ok(None) => {}
                Err(e) => {
                    // Kept for the next round; the others merge now.
                    tracing::warn!(table = %target.table.table, error = %e, "reading a staging table failed; will retry");
                    self.pending
                        .lock()
                        .await
                        .entry(target.table.clone())
                        .or_insert(target);
                }
            }
        }
        self.round(candidates, forced).await
    }

    /// Merges every target table of the layout's datasets that has new staged rows, found in
    /// BigQuery (so that an instance that never wrote a table, e.g. the one Cloud Scheduler
    /// reaches, or one that just started, merges it too), and every table this instance wrote.
    pub async fn merge_all(self: &Arc<Self>) -> Result<MergeReport> {
        let _one_at_a_time = self.running.lock().await;
        let forced: HashSet<BqTableName> =
            self.pending.lock().await.drain().map(|(t, _)| t).collect();
        let mut candidates: HashMap<BqTableName, (MergeTarget, TableInfo)> = self
            .discover()
            .await?
            .into_iter()
            .map(|(t, info)| (t.table.clone(), (t, info)))
            .collect();
        let seen: Vec<BqTableName> = self.seen.lock().await.keys().cloned().collect();
        for table in seen {
            if !candidates.contains_key(&table)
                && let Some(found) = self.describe(&table).await?
            {
                candidates.insert(table, found);
            }
        }
        self.round(candidates.into_values().collect(), forced).await
    }

    /// Staging tables of the layout's datasets, with what their metadata says.
    async fn discover(&self) -> Result<Vec<(MergeTarget, TableInfo)>> {
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
    /// Staging tables of an older release without metadata are mirrors whose key columns are
    /// marked.
    async fn describe(&self, target: &BqTableName) -> Result<Option<(MergeTarget, TableInfo)>> {
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
                    soft_deletes: false,
                }
            }
        };
        let target = MergeTarget::of(target.clone(), &meta, &info.fields);
        Ok(Some((target, info)))
    }

    /// Whether the staging table of `table` is to be pruned now: at most once per retention
    /// period (and per hour) by this instance.
    async fn prune_due(&self, table: &BqTableName) -> bool {
        if self.settings.retention.is_zero() {
            return false;
        }
        let every = self.settings.retention.min(PRUNE_EVERY);
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
                    Ok(report) => {
                        tracing::info!(
                            merged = report.merged_tables,
                            "merged the tables staged before this start"
                        );
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
