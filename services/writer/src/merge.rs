//! The staged merge strategy: fold the newest change per key of the change table into the
//! mirror table.
//!
//! The change table keeps every change, so the newest change per key is always known, whatever
//! order the changes arrived in: a late, older UPSERT never resurrects a deleted row, and a
//! duplicate changes nothing. The MERGE runs on a timer (locally) or when `/merge` is called
//! (Cloud Scheduler in GCP).

use crate::error::Result;
use crate::shape::is_metadata;
use pg2bq_bigquery::rest::{FieldSpec, RestClient};
use pg2bq_core::bq_naming::{
    BqTableName, CHANGE_TABLE_SUFFIX, COMMIT_TS_COLUMN, DatasetLayout, KEY_COLUMN_DESCRIPTION,
    OP_COLUMN, SEQ_COLUMN, quote_column,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// A mirror table to merge into: its key columns and its data columns (every data column of the
/// change table, so that a column added by any batch is merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeTarget {
    /// The mirror table.
    pub table: BqTableName,
    /// Key column names.
    pub keys: Vec<String>,
    /// Data column names (keys included).
    pub columns: Vec<String>,
}

/// The statements that bring the mirror table up to date, in order.
///
/// A TRUNCATE at sequence number S removes every row older than S, whatever order changes arrive
/// in: the first statement deletes mirror rows older than the newest TRUNCATE, and the MERGE folds
/// in only changes newer than it, so a late change from before the TRUNCATE is ignored.
pub fn merge_statements(project: &str, target: &MergeTarget) -> [String; 2] {
    let mirror = target.table.quoted(project);
    let changes = target.table.change_table().quoted(project);
    let keys: Vec<String> = target.keys.iter().map(|k| quote_column(k)).collect();
    let seq = quote_column(SEQ_COLUMN);
    let op = quote_column(OP_COLUMN);
    let last_truncate = format!("(SELECT MAX({seq}) FROM {changes} WHERE {op} = 'TRUNCATE')");
    let mut columns: Vec<String> = target.columns.iter().map(|c| quote_column(c)).collect();
    columns.push(seq.clone());
    columns.push(quote_column(COMMIT_TS_COLUMN));
    let list = |f: &dyn Fn(&String) -> String, separator: &str| -> String {
        columns.iter().map(f).collect::<Vec<_>>().join(separator)
    };
    let on = keys
        .iter()
        .map(|k| format!("T.{k} = S.{k}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let set = list(&|c| format!("{c} = S.{c}"), ", ");
    let values = list(&|c| format!("S.{c}"), ", ");
    let truncated = format!("DELETE FROM {mirror} WHERE {seq} < {last_truncate}");
    let merge = format!(
        "MERGE {mirror} AS T \
         USING (SELECT * FROM {changes} WHERE {op} <> 'TRUNCATE' AND {seq} > IFNULL({last_truncate}, '') \
                QUALIFY ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY {seq} DESC) = 1) AS S \
         ON {on} \
         WHEN MATCHED AND S.{op} = 'DELETE' THEN DELETE \
         WHEN MATCHED AND S.{seq} > T.{seq} THEN UPDATE SET {set} \
         WHEN NOT MATCHED AND S.{op} = 'UPSERT' THEN INSERT ({names}) VALUES ({values})",
        partition = keys.join(", "),
        names = columns.join(", "),
    );
    [truncated, merge]
}

/// The statement that deletes the change rows no MERGE needs any more, once older than
/// `retention`: rows older than the newest TRUNCATE (the MERGE skips them) and rows a newer
/// change of the same key supersedes (the MERGE folds only the newest per key). The newest change
/// of every key and the newest TRUNCATE stay, so late and duplicate deliveries still lose to
/// them. The retention also keeps the statement away from rows still in BigQuery's streaming
/// buffer, which DML may not touch.
pub fn prune_statement(project: &str, target: &MergeTarget, retention: Duration) -> String {
    let changes = target.table.change_table().quoted(project);
    let seq = quote_column(SEQ_COLUMN);
    let op = quote_column(OP_COLUMN);
    let same_key = target
        .keys
        .iter()
        .map(|k| format!("N.{c} = C.{c}", c = quote_column(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!(
        "DELETE FROM {changes} AS C \
         WHERE C.{commit_ts} < TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL {secs} SECOND) \
           AND (C.{seq} < (SELECT MAX({seq}) FROM {changes} WHERE {op} = 'TRUNCATE') \
                OR (C.{op} <> 'TRUNCATE' AND EXISTS (SELECT 1 FROM {changes} AS N \
                    WHERE {same_key} AND N.{seq} > C.{seq})))",
        commit_ts = quote_column(COMMIT_TS_COLUMN),
        secs = retention.as_secs(),
    )
}

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
        let datasets = match &self.layout {
            DatasetLayout::Single { dataset } => vec![dataset.clone()],
            DatasetLayout::PerSchema { prefix } => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_change_per_key_and_the_last_truncate() {
        let target = MergeTarget {
            table: BqTableName {
                dataset: "d".into(),
                table: "t".into(),
            },
            keys: vec!["a".into(), "b".into()],
            columns: vec!["a".into(), "b".into(), "v".into()],
        };
        let sql = prune_statement("p", &target, Duration::from_secs(3600));
        assert!(
            sql.starts_with("DELETE FROM `p.d.t__changes` AS C"),
            "{sql}"
        );
        assert!(sql.contains("INTERVAL 3600 SECOND"), "{sql}");
        assert!(
            sql.contains("C.`_pg2bq_seq` < (SELECT MAX(`_pg2bq_seq`) FROM `p.d.t__changes` WHERE `_pg2bq_op` = 'TRUNCATE')"),
            "{sql}"
        );
        assert!(
            sql.contains(
                "WHERE N.`a` = C.`a` AND N.`b` = C.`b` AND N.`_pg2bq_seq` > C.`_pg2bq_seq`"
            ),
            "{sql}"
        );
    }

    #[test]
    fn merge_keeps_the_newest_change_per_key_after_the_last_truncate() {
        let target = MergeTarget {
            table: BqTableName {
                dataset: "d".into(),
                table: "t".into(),
            },
            keys: vec!["id".into()],
            columns: vec!["id".into(), "v".into()],
        };
        let [truncated, sql] = merge_statements("p", &target);
        assert_eq!(
            truncated,
            "DELETE FROM `p.d.t` WHERE `_pg2bq_seq` < \
             (SELECT MAX(`_pg2bq_seq`) FROM `p.d.t__changes` WHERE `_pg2bq_op` = 'TRUNCATE')"
        );
        assert!(sql.starts_with("MERGE `p.d.t` AS T USING (SELECT * FROM `p.d.t__changes`"));
        assert!(sql.contains("`_pg2bq_op` <> 'TRUNCATE' AND `_pg2bq_seq` > IFNULL((SELECT MAX("));
        assert!(sql.contains("PARTITION BY `id` ORDER BY `_pg2bq_seq` DESC"));
        assert!(sql.contains("ON T.`id` = S.`id`"));
        assert!(
            sql.contains("UPDATE SET `id` = S.`id`, `v` = S.`v`, `_pg2bq_seq` = S.`_pg2bq_seq`")
        );
    }
}
