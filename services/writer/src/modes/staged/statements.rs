//! The SQL of the staged strategy: the MERGE that folds the newest change per key of the change
//! table into the mirror table, and the DELETE that prunes change rows no MERGE needs any more.

use pg2bq_core::bq_naming::{BqTableName, COMMIT_TS_COLUMN, OP_COLUMN, SEQ_COLUMN, quote_column};
use std::time::Duration;

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
