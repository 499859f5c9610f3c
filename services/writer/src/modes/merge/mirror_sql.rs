//! The SQL that keeps a mirror table equal to its source: the MERGE that folds the newest change
//! per key of a set of staged changes (see `window.rs`) into the mirror.
//!
//! Per key, the newest change wins (whatever order changes arrived in), and per column, the
//! newest value that was actually sent: a column PostgreSQL did not send (an unchanged TOAST
//! value, named in the change's `_pg2bq_unchanged`) keeps the mirror's value, or takes the
//! value of the newest older change of the key that sent it (an INSERT and an UPDATE of the same
//! key in one MERGE window, in either order). A value that no change sent yet is NULL and named
//! in the mirror row's `_pg2bq_unknown`, and filled in by the MERGE that sees it arrive. Keys
//! are compared NULL-safely.

use super::MergeTarget;
use super::window::Window;
use pg2bq_core::bq_naming::{
    COMMIT_TS_COLUMN, DELETED_AT_COLUMN, IS_DELETED_COLUMN, OP_COLUMN, SEQ_COLUMN,
    UNCHANGED_COLUMN, UNKNOWN_COLUMN, quote_column,
};

/// A GoogleSQL string literal of `text`.
pub fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `IFNULL(STRPOS(<list>, ',<column>,'), 0) > 0`: whether a column list names `column`.
fn names(list: &str, column: &str) -> String {
    format!(
        "IFNULL(STRPOS({list}, {}), 0) > 0",
        sql_string(&format!(",{column},"))
    )
}

/// The newest change per key of a set of staged changes, as a query (`S`), and what the
/// statements that fold it need to know about it. Shared by the MERGE and the live view.
pub struct Folding<'a> {
    target: &'a MergeTarget,
    /// The query of the newest change per key newer than the newest TRUNCATE, with the values
    /// of columns that arrived unchanged resolved from older changes of the key.
    pub source: String,
    /// A scalar subquery: the sequence number of the newest TRUNCATE of the set (or NULL).
    pub last_truncate: String,
    /// A query of the commit time of the newest TRUNCATE of the set (no row if none).
    pub last_truncate_ts: String,
    resolved: Vec<(usize, String)>,
}

impl<'a> Folding<'a> {
    /// The folding into `target` of the staged rows that satisfy `in_set` (a condition on a
    /// staging row, e.g. [`Window::condition`]).
    pub fn new(project: &str, target: &'a MergeTarget, in_set: &str) -> Self {
        let changes = target.table.change_table().quoted(project);
        let seq = quote_column(SEQ_COLUMN);
        let op = quote_column(OP_COLUMN);
        let ts = quote_column(COMMIT_TS_COLUMN);
        let unchanged = quote_column(UNCHANGED_COLUMN);
        let keys: Vec<String> = target.keys.iter().map(|k| quote_column(k)).collect();
        let partition = keys.join(", ");
        let last_truncate =
            format!("(SELECT MAX({seq}) FROM {changes} WHERE {op} = 'TRUNCATE' AND {in_set})");
        let last_truncate_ts = format!(
            "SELECT {ts} FROM {changes} WHERE {op} = 'TRUNCATE' AND {in_set} \
             ORDER BY {seq} DESC LIMIT 1"
        );
        // Columns that have arrived unchanged: their values come from the newest change that
        // sent them (`_pg2bq_sent_<i>` is its sequence number, NULL if none did).
        let resolved: Vec<(usize, String)> = values(target)
            .filter(|c| target.unchanged.contains(c))
            .cloned()
            .enumerate()
            .collect();
        // The window of the resolved columns' values (only declared when there are some).
        let window = if resolved.is_empty() {
            String::new()
        } else {
            format!(
                " WINDOW w AS (PARTITION BY {partition} ORDER BY {seq} DESC \
                 ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"
            )
        };
        let mut ranked = vec![format!(
            "ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY {seq} DESC) AS `_pg2bq_rank`"
        )];
        ranked.extend(resolved.iter().map(|(i, c)| {
            format!(
                "FIRST_VALUE(IF({op} = 'UPSERT' AND NOT {}, {seq}, NULL) IGNORE NULLS) OVER w AS {}",
                names(&unchanged, c),
                sent(*i)
            )
        }));
        let level1 = format!(
            "SELECT *, {} FROM {changes} WHERE {op} <> 'TRUNCATE' AND {in_set} \
             AND {seq} > IFNULL({last_truncate}, ''){window}",
            ranked.join(", ")
        );
        let mut picked: Vec<String> = keys.clone();
        for column in values(target) {
            let quoted = quote_column(column);
            match resolved.iter().find(|(_, c)| c == column) {
                Some((i, _)) => {
                    picked.push(format!(
                        "FIRST_VALUE(IF({seq} = {s}, {quoted}, NULL) IGNORE NULLS) OVER w AS {quoted}",
                        s = sent(*i)
                    ));
                    picked.push(sent(*i));
                }
                None => picked.push(quoted),
            }
        }
        picked.extend([op, seq, ts, unchanged]);
        picked.push("`_pg2bq_rank`".to_owned());
        // The newest change per key, with the resolved values taken over all changes of the key.
        let source = format!(
            "SELECT * FROM (SELECT {} FROM ({level1}){window}) WHERE `_pg2bq_rank` = 1",
            picked.join(", ")
        );
        Folding {
            target,
            source,
            last_truncate,
            last_truncate_ts,
            resolved,
        }
    }

    /// Whether `S` (the newest change of a key) knows a column's value: it sent it, or an
    /// older change did.
    pub fn known(&self, column: &str) -> String {
        match self.resolved.iter().find(|(_, c)| c == column) {
            Some((i, _)) => format!("S.{} IS NOT NULL", sent(*i)),
            None => format!(
                "NOT {}",
                names(&format!("S.{}", quote_column(UNCHANGED_COLUMN)), column)
            ),
        }
    }

    /// `T.k IS NOT DISTINCT FROM S.k AND ...` over the key columns.
    pub fn same_key(&self, t: &str, s: &str) -> String {
        self.target
            .keys
            .iter()
            .map(|k| {
                let k = quote_column(k);
                format!("{t}.{k} IS NOT DISTINCT FROM {s}.{k}")
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// The data columns that are not key columns.
    pub fn values(&self) -> impl Iterator<Item = &'a String> {
        values(self.target)
    }
}

fn values(target: &MergeTarget) -> impl Iterator<Item = &String> {
    target.columns.iter().filter(|c| !target.keys.contains(c))
}

fn sent(i: usize) -> String {
    quote_column(&format!("_pg2bq_sent_{i}"))
}

/// The statements that bring the mirror table up to date, in order.
///
/// A TRUNCATE at sequence number S removes every row older than S, whatever order changes arrive
/// in: the first statement deletes mirror rows older than the newest TRUNCATE, and the MERGE folds
/// in only changes newer than it, so a late change from before the TRUNCATE is ignored.
///
/// Only the staged rows of `set` are read: they hold every change that can beat a change of the
/// window, so the newest change per key of the set is the newest of all.
pub fn merge_statements(project: &str, target: &MergeTarget, set: Window) -> [String; 2] {
    let mirror = target.table.quoted(project);
    let folding = Folding::new(project, target, &set.condition(None));
    let seq = quote_column(SEQ_COLUMN);
    let op = quote_column(OP_COLUMN);
    let ts = quote_column(COMMIT_TS_COLUMN);
    let unknown = quote_column(UNKNOWN_COLUMN);
    let keys: Vec<String> = target.keys.iter().map(|k| quote_column(k)).collect();
    let values: Vec<&String> = folding.values().collect();
    let unknown_list = |matched: bool| {
        let parts: Vec<String> = values
            .iter()
            .map(|c| {
                let still = if matched {
                    format!(
                        "NOT ({}) AND {}",
                        folding.known(c),
                        names(&format!("T.{unknown}"), c)
                    )
                } else {
                    format!("NOT ({})", folding.known(c))
                };
                format!("IF({still}, {}, '')", sql_string(&format!("{c},")))
            })
            .collect();
        let mut concat = vec!["','".to_owned()];
        concat.extend(parts);
        format!("NULLIF(CONCAT({}), ',')", concat.join(", "))
    };
    let mut set_list: Vec<String> = values
        .iter()
        .map(|c| {
            let quoted = quote_column(c);
            format!(
                "{quoted} = IF({}, S.{quoted}, T.{quoted})",
                folding.known(c)
            )
        })
        .collect();
    set_list.extend([
        format!("{seq} = S.{seq}"),
        format!("{ts} = S.{ts}"),
        format!("{unknown} = {}", unknown_list(true)),
    ]);
    let mut inserted: Vec<String> = keys.clone();
    inserted.extend(values.iter().map(|c| quote_column(c)));
    inserted.extend([seq.clone(), ts.clone()]);
    let mut inserted_values: Vec<String> = inserted.iter().map(|c| format!("S.{c}")).collect();
    inserted.push(unknown.clone());
    inserted_values.push(unknown_list(false));
    // A row without a sequence number was not written by pg2bq (added by hand): older than any.
    let older = format!("IFNULL({seq}, '') < {}", folding.last_truncate);
    let (truncated, on_delete, upsert) = if target.soft_deletes {
        // Soft deletes: a deleted row stays with its values, marked, and takes the deletion's
        // sequence number, so that a late older change loses to it as to any newer change.
        let deleted = quote_column(IS_DELETED_COLUMN);
        let deleted_at = quote_column(DELETED_AT_COLUMN);
        set_list.extend([format!("{deleted} = FALSE"), format!("{deleted_at} = NULL")]);
        inserted.push(deleted.clone());
        inserted_values.push("FALSE".to_owned());
        (
            format!(
                "UPDATE {mirror} SET {deleted} = TRUE, {deleted_at} = ({}), {seq} = {} \
                 WHERE {older} AND {deleted} IS NOT TRUE",
                folding.last_truncate_ts, folding.last_truncate,
            ),
            format!(
                "AND S.{seq} > IFNULL(T.{seq}, '') THEN UPDATE SET {deleted} = TRUE, \
                 {deleted_at} = S.{ts}, {seq} = S.{seq}, {ts} = S.{ts}"
            ),
            format!("S.{op} = 'UPSERT' AND "),
        )
    } else {
        (
            format!("DELETE FROM {mirror} WHERE {older}"),
            "THEN DELETE".to_owned(),
            String::new(),
        )
    };
    let merge = format!(
        "MERGE {mirror} AS T USING ({source}) AS S ON {on} \
         WHEN MATCHED AND S.{op} = 'DELETE' {on_delete} \
         WHEN MATCHED AND {upsert}(S.{seq} > T.{seq} OR (S.{seq} = T.{seq} AND T.{unknown} IS NOT NULL)) \
           THEN UPDATE SET {set} \
         WHEN NOT MATCHED AND S.{op} = 'UPSERT' THEN INSERT ({names}) VALUES ({values})",
        source = folding.source,
        on = folding.same_key("T", "S"),
        set = set_list.join(", "),
        names = inserted.join(", "),
        values = inserted_values.join(", "),
    );
    [truncated, merge]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table_meta::TableKind;
    use pg2bq_core::bq_naming::BqTableName;

    fn target(unchanged: &[&str]) -> MergeTarget {
        MergeTarget {
            table: BqTableName {
                dataset: "d".into(),
                table: "t".into(),
            },
            kind: TableKind::Mirror,
            keys: vec!["a".into(), "b".into()],
            columns: vec!["a".into(), "b".into(), "v".into(), "doc".into()],
            unchanged: unchanged.iter().map(|c| (*c).to_owned()).collect(),
            soft_deletes: false,
        }
    }

    #[test]
    fn merge_keeps_the_newest_change_per_key_after_the_last_truncate() {
        let [truncated, sql] = merge_statements("p", &target(&[]), Window::All);
        assert_eq!(
            truncated,
            "DELETE FROM `p.d.t` WHERE IFNULL(`_pg2bq_seq`, '') < \
             (SELECT MAX(`_pg2bq_seq`) FROM `p.d.t__changes` WHERE `_pg2bq_op` = 'TRUNCATE' AND TRUE)"
        );
        assert!(
            sql.starts_with(
                "MERGE `p.d.t` AS T USING (SELECT * FROM (SELECT `a`, `b`, `v`, `doc`,"
            )
        );
        assert!(
            sql.contains(
                "`_pg2bq_op` <> 'TRUNCATE' AND TRUE AND `_pg2bq_seq` > IFNULL((SELECT MAX("
            )
        );
        assert!(sql.contains("PARTITION BY `a`, `b` ORDER BY `_pg2bq_seq` DESC"));
        assert!(
            sql.contains(
                "ON T.`a` IS NOT DISTINCT FROM S.`a` AND T.`b` IS NOT DISTINCT FROM S.`b`"
            )
        );
        assert!(sql.contains(
            "`v` = IF(NOT IFNULL(STRPOS(S.`_pg2bq_unchanged`, ',v,'), 0) > 0, S.`v`, T.`v`)"
        ));
        assert!(
            !sql.contains("_pg2bq_sent_"),
            "no column arrived unchanged yet"
        );
    }

    #[test]
    fn columns_that_arrived_unchanged_take_the_newest_value_sent() {
        let [_, sql] = merge_statements("p", &target(&["doc"]), Window::All);
        assert!(
            sql.contains("FIRST_VALUE(IF(`_pg2bq_op` = 'UPSERT' AND NOT IFNULL(STRPOS(`_pg2bq_unchanged`, ',doc,'), 0) > 0, `_pg2bq_seq`, NULL) IGNORE NULLS) OVER w AS `_pg2bq_sent_0`"),
            "{sql}"
        );
        assert!(sql.contains(
            "FIRST_VALUE(IF(`_pg2bq_seq` = `_pg2bq_sent_0`, `doc`, NULL) IGNORE NULLS) OVER w AS `doc`"
        ));
        assert!(sql.contains("`doc` = IF(S.`_pg2bq_sent_0` IS NOT NULL, S.`doc`, T.`doc`)"));
        assert!(
            sql.contains("IF(NOT (S.`_pg2bq_sent_0` IS NOT NULL), 'doc,', '')"),
            "{sql}"
        );
        assert!(
            sql.contains("(S.`_pg2bq_seq` = T.`_pg2bq_seq` AND T.`_pg2bq_unknown` IS NOT NULL)")
        );
    }

    #[test]
    fn a_window_reads_only_its_set_of_staged_rows() {
        let [truncated, sql] = merge_statements("p", &target(&[]), Window::Since(7));
        let in_set =
            "(`_pg2bq_appended_at` >= TIMESTAMP_MICROS(7) OR `_pg2bq_appended_at` IS NULL)";
        assert!(
            truncated.ends_with(&format!("WHERE `_pg2bq_op` = 'TRUNCATE' AND {in_set})")),
            "{truncated}"
        );
        assert_eq!(sql.matches(in_set).count(), 2, "{sql}");
    }

    #[test]
    fn soft_deletes_mark_rows_instead_of_removing_them() {
        let soft = MergeTarget {
            soft_deletes: true,
            ..target(&[])
        };
        let [truncated, sql] = merge_statements("p", &soft, Window::All);
        assert!(
            truncated.starts_with(
                "UPDATE `p.d.t` SET `_pg2bq_is_deleted` = TRUE, `_pg2bq_deleted_at` = (SELECT `_pg2bq_commit_ts` FROM"
            ),
            "{truncated}"
        );
        assert!(
            truncated.ends_with("AND `_pg2bq_is_deleted` IS NOT TRUE"),
            "{truncated}"
        );
        assert!(!sql.contains("THEN DELETE"), "{sql}");
        assert!(sql.contains(
            "THEN UPDATE SET `_pg2bq_is_deleted` = TRUE, `_pg2bq_deleted_at` = S.`_pg2bq_commit_ts`, `_pg2bq_seq` = S.`_pg2bq_seq`"
        ));
        assert!(sql.contains("`_pg2bq_is_deleted` = FALSE, `_pg2bq_deleted_at` = NULL"));
    }

    #[test]
    fn string_literals_are_escaped() {
        assert_eq!(sql_string("a'b\\c"), "'a\\'b\\\\c'");
    }
}
