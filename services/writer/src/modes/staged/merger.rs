//! The MERGE runner of the staged strategy: which mirror tables are waiting for a MERGE, and
//! running their statements ([`super::statements`]) on a timer (locally) or when `/merge` is
//! called (Cloud Scheduler in GCP).

use super::statements::{MergeTarget, merge_statements, prune_statement};
use crate::error::Result;
use crate::shape::is_metadata;
use pg2bq_bigquery::rest::{FieldSpec, RestClient};
use pg2bq_core::bq_naming::{
    BqTableName, CHANGE_TABLE_SUFFIX, DatasetLayout, Datasets, KEY_COLUMN_DESCRIPTION,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// How often one table's change table is pruned, at most.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Tables waiting for a MERGE, and the MERGE runner.
pub struct Merger {
    rest: RestClient,
    layout: DatasetLayout,
    pending: Mutex<HashMap<BqTableName, MergeTarget>>,
    seen: Mutex<HashMap<BqTableName, MergeTarget>>,
    running: Mutex<()>,
    retention: Duration,
    pruned_at: Mutex<HashMap<BqTableName, std::time::Instant>>,
}

impl Merger {
    /// A merger writing through `rest` into the datasets of `layout`, pruning superseded change
    /// rows older than `retention` (zero: never).
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

    /// Notes that the change table of `target` received rows.
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

    /// Merges every table that received rows since its last MERGE; returns how many it merged.
    /// A table whose MERGE fails is kept pending for the next round.
    pub async fn merge_pending(&self) -> Result<usize> {
        let _one_at_a_time = self.running.lock().await;
        let tables: Vec<MergeTarget> = self.pending.lock().await.drain().map(|(_, t)| t).collect();
        self.merge(tables).await
    }

    /// Merges every mirror table of the layout's datasets, found in BigQuery (so that an
    /// instance that never wrote a table, e.g. the one Cloud Scheduler reaches, merges it too),
    /// and every table this instance wrote.
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

    /// Change tables of the layout's datasets whose key columns are marked.
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
                let Some(mirror) = table.strip_suffix(CHANGE_TABLE_SUFFIX) else {
                    continue;
                };
                let change_table = BqTableName {
                    dataset: dataset.clone(),
                    table: table.clone(),
                };
                let Some(fields) = self.rest.table_schema(&change_table).await? else {
                    continue;
                };
                let marked =
                    |f: &&FieldSpec| f.description.as_deref() == Some(KEY_COLUMN_DESCRIPTION);
                let keys: Vec<String> = fields
                    .iter()
                    .filter(marked)
                    .map(|f| f.name.clone())
                    .collect();
                if keys.is_empty() {
                    continue;
                }
                let columns = fields
                    .iter()
                    .filter(|f| !is_metadata(&f.name))
                    .map(|f| f.name.clone())
                    .collect();
                targets.push(MergeTarget {
                    table: BqTableName {
                        dataset: dataset.clone(),
                        table: mirror.to_owned(),
                    },
                    keys,
                    columns,
                });
            }
        }
        Ok(targets)
    }

    async fn merge(&self, tables: Vec<MergeTarget>) -> Result<usize> {
        let mut first_error = None;
        let mut merged = 0;
        for target in tables {
            let started = std::time::Instant::now();
            match self.run_statements(&target).await {
                Ok(()) => {
                    merged += 1;
                    let ms = started.elapsed().as_millis() as u64;
                    tracing::debug!(table = %target.table.table, ms, "merged");
                }
                Err(e) => {
                    tracing::warn!(table = %target.table.table, error = %e, "MERGE failed; will retry");
                    self.pending
                        .lock()
                        .await
                        .entry(target.table.clone())
                        .or_insert(target);
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
        for statement in merge_statements(self.rest.project(), target) {
            self.rest.query(&statement).await?;
        }
        if self.prune_due(&target.table).await {
            let statement = prune_statement(self.rest.project(), target, self.retention);
            self.rest.query(&statement).await?;
            self.pruned_at
                .lock()
                .await
                .insert(target.table.clone(), std::time::Instant::now());
        }
        Ok(())
    }

    /// Whether the change table of `table` is to be pruned now: at most once per retention
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
