//! The SQL that keeps an append-only table (a log of changes) free of duplicates: every change
//! staged in `<table>__changes` is inserted into the log once, identified by its sequence number
//! and change type, whatever number of times it was delivered.
//!
//! Backfilled rows (`READ`) carry `<consistent point>/0/<range>/<row>`: a backfill range copied
//! again from a newer snapshot (after a restart, or `pg2bq backfill` on demand) supersedes the
//! rows an older snapshot of the same range gave, so a resumed backfill leaves each row once.
//!
//! A table without a key is kept as a multiset of its rows: one snapshot (the newest: capture
//! copies such a table whole from one snapshot) and the changes committed after it. Changes
//! committed before that snapshot are in it already, so its log drops them, and the rows of
//! older snapshots.

use super::MergeTarget;
use super::window::Window;
use pg2bq_core::bq_naming::{CHANGE_TYPE_COLUMN, COMMIT_TS_COLUMN, SEQ_COLUMN, quote_column};

/// The snapshot (consistent point) section of a sequence number.
fn snapshot_of(seq: &str) -> String {
    format!("SUBSTR({seq}, 1, 16)")
}

/// The range section of a backfilled row's sequence number.
fn range_of(seq: &str) -> String {
    format!("SUBSTR({seq}, 35, 16)")
}

/// The statements that bring the log up to date, in order: drop rows of superseded backfill
/// snapshots from it, then insert every staged change it does not hold yet.
///
/// Only the staged rows of `set` are read (see `window.rs`): the log holds every older one.
pub fn log_statements(project: &str, target: &MergeTarget, set: Window) -> [String; 2] {
    let log = target.table.quoted(project);
    let changes = target.table.change_table().quoted(project);
    let seq = quote_column(SEQ_COLUMN);
    let kind = quote_column(CHANGE_TYPE_COLUMN);
    if target.keys.is_empty() {
        return keyless_statements(&log, &changes, &seq, &kind, &columns_list(target), set);
    }
    let superseded = format!(
        "DELETE FROM {log} AS T WHERE T.{kind} = 'READ' AND {} < \
         (SELECT MAX({}) FROM {changes} AS C WHERE C.{kind} = 'READ' AND {} = {} AND {})",
        snapshot_of(&format!("T.{seq}")),
        snapshot_of(&format!("C.{seq}")),
        range_of(&format!("C.{seq}")),
        range_of(&format!("T.{seq}")),
        set.condition(Some("C")),
    );
    let list = columns_list(target);
    let newest_snapshot = format!(
        "MAX(IF({kind} = 'READ', {}, NULL)) OVER (PARTITION BY {})",
        snapshot_of(&seq),
        range_of(&seq)
    );
    let insert = format!(
        "INSERT INTO {log} ({list}) \
         SELECT {list} FROM {changes} AS S \
         WHERE {} AND NOT EXISTS (SELECT 1 FROM {log} AS T WHERE T.{seq} = S.{seq} AND T.{kind} = S.{kind}) \
         QUALIFY ROW_NUMBER() OVER (PARTITION BY {seq}, {kind}) = 1 \
           AND ({kind} <> 'READ' OR {} = {newest_snapshot})",
        set.condition(Some("S")),
        snapshot_of(&seq),
    );
    [superseded, insert]
}

/// Every column of the log, in order.
fn columns_list(target: &MergeTarget) -> String {
    target
        .columns
        .iter()
        .map(|c| quote_column(c))
        .chain(
            [
                CHANGE_TYPE_COLUMN,
                SEQ_COLUMN,
                COMMIT_TS_COLUMN,
                pg2bq_core::bq_naming::XID_COLUMN,
                pg2bq_core::bq_naming::UNCHANGED_COLUMN,
            ]
            .iter()
            .map(|c| quote_column(c)),
        )
        .collect::<Vec<_>>()
        .join(", ")
}

/// The log of a table without a key: its rows from the newest snapshot, and the changes
/// committed after it; everything older goes.
fn keyless_statements(
    log: &str,
    changes: &str,
    seq: &str,
    kind: &str,
    list: &str,
    set: Window,
) -> [String; 2] {
    let in_set = set.condition(None);
    let newest = format!(
        "(SELECT MAX({snapshot}) FROM (SELECT {seq} FROM {changes} WHERE {kind} = 'READ' AND {in_set} \
         UNION ALL SELECT {seq} FROM {log} WHERE {kind} = 'READ'))",
        snapshot = snapshot_of(seq),
    );
    let superseded = format!("DELETE FROM {log} WHERE {} < {newest}", snapshot_of(seq));
    let insert = format!(
        "INSERT INTO {log} ({list}) \
         SELECT {list} FROM {changes} AS S \
         WHERE {} AND NOT EXISTS (SELECT 1 FROM {log} AS T WHERE T.{seq} = S.{seq} AND T.{kind} = S.{kind}) \
           AND {} >= IFNULL({newest}, '') \
         QUALIFY ROW_NUMBER() OVER (PARTITION BY {seq}, {kind}) = 1",
        set.condition(Some("S")),
        snapshot_of(&format!("S.{seq}")),
    );
    [superseded, insert]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table_meta::TableKind;
    use pg2bq_core::bq_naming::BqTableName;

    #[test]
    fn inserts_each_change_once_and_only_the_newest_snapshot_of_a_range() {
        let target = MergeTarget {
            table: BqTableName {
                dataset: "d".into(),
                table: "log".into(),
            },
            kind: TableKind::Log,
            keys: vec!["at".into()],
            columns: vec!["at".into(), "msg".into()],
            unchanged: vec![],
            soft_deletes: false,
        };
        let [superseded, insert] = log_statements("p", &target, Window::All);
        assert!(superseded.starts_with(
            "DELETE FROM `p.d.log` AS T WHERE T.`_pg2bq_change_type` = 'READ' AND SUBSTR(T.`_pg2bq_seq`, 1, 16) <"
        ));
        assert!(
            superseded.contains("SUBSTR(C.`_pg2bq_seq`, 35, 16) = SUBSTR(T.`_pg2bq_seq`, 35, 16)")
        );
        assert!(insert.starts_with(
            "INSERT INTO `p.d.log` (`at`, `msg`, `_pg2bq_change_type`, `_pg2bq_seq`, `_pg2bq_commit_ts`, `_pg2bq_xid`, `_pg2bq_unchanged`) SELECT"
        ));
        assert!(insert.contains(
            "WHERE T.`_pg2bq_seq` = S.`_pg2bq_seq` AND T.`_pg2bq_change_type` = S.`_pg2bq_change_type`"
        ));
        assert!(
            insert.contains(
                "ROW_NUMBER() OVER (PARTITION BY `_pg2bq_seq`, `_pg2bq_change_type`) = 1"
            )
        );
    }
}
