//! The staged merge strategy: fold the newest change per key of the change table into the
//! mirror table with one MERGE statement.
//!
//! The change table keeps every change, so the newest change per key is always known, whatever
//! order the changes arrived in: a late, older UPSERT never resurrects a deleted row, and a
//! duplicate changes nothing. The MERGE runs on a timer (locally) or when `/merge` is called
//! (Cloud Scheduler in GCP).

use crate::bigquery::rest::RestClient;
use crate::error::Result;
use crate::tables::TableShape;
use pg2bq_core::bq_naming::{BqTableName, COMMIT_TS_COLUMN, OP_COLUMN, SEQ_COLUMN, quote_column};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// The statements that bring the mirror table of `shape` up to date, in order.
///
/// A TRUNCATE at sequence number S removes every row older than S, whatever order changes arrive
/// in: the first statement deletes mirror rows older than the newest TRUNCATE, and the MERGE folds
/// in only changes newer than it, so a late change from before the TRUNCATE is ignored.
pub fn merge_statements(project: &str, shape: &TableShape) -> [String; 2] {
    let target = shape.target.quoted(project);
    let changes = shape.target.change_table().quoted(project);
    let keys: Vec<String> = shape.keys().map(|c| quote_column(&c.name)).collect();
    let seq = quote_column(SEQ_COLUMN);
    let op = quote_column(OP_COLUMN);
    let last_truncate = format!("(SELECT MAX({seq}) FROM {changes} WHERE {op} = 'TRUNCATE')");
    let mut columns: Vec<String> = shape
        .columns
        .iter()
        .map(|c| quote_column(&c.name))
        .collect();
    columns.push(seq.clone());
    columns.push(quote_column(COMMIT_TS_COLUMN));
    let joined = |items: Vec<String>, separator: &str| items.join(separator);
    let on = joined(
        keys.iter().map(|k| format!("T.{k} = S.{k}")).collect(),
        " AND ",
    );
    let set = joined(
        columns.iter().map(|c| format!("{c} = S.{c}")).collect(),
        ", ",
    );
    let values = joined(columns.iter().map(|c| format!("S.{c}")).collect(), ", ");
    let truncated = format!("DELETE FROM {target} WHERE {seq} < {last_truncate}");
    let merge = format!(
        "MERGE {target} AS T \
         USING (SELECT * FROM {changes} WHERE {op} <> 'TRUNCATE' AND {seq} > IFNULL({last_truncate}, '') \
                QUALIFY ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY {seq} DESC) = 1) AS S \
         ON {on} \
         WHEN MATCHED AND S.{op} = 'DELETE' THEN DELETE \
         WHEN MATCHED AND S.{seq} > T.{seq} THEN UPDATE SET {set} \
         WHEN NOT MATCHED AND S.{op} = 'UPSERT' THEN INSERT ({list}) VALUES ({values})",
        partition = keys.join(", "),
        list = columns.join(", "),
    );
    [truncated, merge]
}

/// Tables waiting for a MERGE, and the MERGE runner.
pub struct Merger {
    rest: RestClient,
    pending: Mutex<HashMap<BqTableName, TableShape>>,
    seen: Mutex<HashMap<BqTableName, TableShape>>,
    running: Mutex<()>,
}

impl Merger {
    /// A merger writing through `rest`.
    pub fn new(rest: RestClient) -> Self {
        Merger {
            rest,
            pending: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            running: Mutex::new(()),
        }
    }

    /// Notes that the change table of `shape` received rows.
    pub async fn mark(&self, shape: &TableShape) {
        self.pending
            .lock()
            .await
            .insert(shape.target.clone(), shape.clone());
        self.seen
            .lock()
            .await
            .insert(shape.target.clone(), shape.clone());
    }

    /// Merges every table that received rows since its last MERGE; returns how many it merged.
    /// A table whose MERGE fails is kept pending for the next round.
    pub async fn merge_pending(&self) -> Result<usize> {
        let _one_at_a_time = self.running.lock().await;
        let tables: Vec<TableShape> = self.pending.lock().await.drain().map(|(_, s)| s).collect();
        self.merge(tables).await
    }

    /// Merges every table this instance has written to.
    pub async fn merge_all(&self) -> Result<usize> {
        let _one_at_a_time = self.running.lock().await;
        self.pending.lock().await.clear();
        let tables: Vec<TableShape> = self.seen.lock().await.values().cloned().collect();
        self.merge(tables).await
    }

    async fn merge(&self, tables: Vec<TableShape>) -> Result<usize> {
        let mut first_error = None;
        let mut merged = 0;
        for shape in tables {
            let started = std::time::Instant::now();
            match self.run_statements(&shape).await {
                Ok(_) => {
                    merged += 1;
                    tracing::debug!(table = %shape.target.table, ms = started.elapsed().as_millis() as u64, "merged");
                }
                Err(e) => {
                    tracing::warn!(table = %shape.target.table, error = %e, "MERGE failed; will retry");
                    self.pending
                        .lock()
                        .await
                        .entry(shape.target.clone())
                        .or_insert(shape);
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(merged),
        }
    }

    async fn run_statements(&self, shape: &TableShape) -> Result<()> {
        for statement in merge_statements(self.rest.project(), shape) {
            self.rest.query(&statement).await?;
        }
        Ok(())
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
    use pg2bq_core::wire::ColumnSpec;

    #[test]
    fn merge_keeps_the_newest_change_per_key() {
        let columns = [
            ColumnSpec {
                name: "id".into(),
                pg_type: "int4".into(),
                type_modifier: -1,
                key: true,
            },
            ColumnSpec {
                name: "v".into(),
                pg_type: "text".into(),
                type_modifier: -1,
                key: false,
            },
        ];
        let shape = TableShape::new(
            BqTableName {
                dataset: "d".into(),
                table: "t".into(),
            },
            &columns,
        );
        let [truncated, sql] = merge_statements("p", &shape);
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
