//! The live view of a mirror table (`<table>__live`): the mirror with the staged changes not
//! merged yet folded in, as the next MERGE would fold them. A query of it is exact at the moment
//! it runs, whatever the MERGE schedule, and reads the mirror and the staging rows of the view's
//! window only (see `window.rs`; the view is made again when its window's start falls an hour
//! behind the last MERGE).
//!
//! Its rows: every mirror row that no TRUNCATE of the set removed and no newer change of the set
//! replaced or deleted, and the newest UPSERT of each key that is newer than the mirror's row,
//! with the values PostgreSQL did not send taken from the mirror.

use super::MergeTarget;
use super::mirror_sql::Folding;
use super::window::{MergeState, Window, micros};
use pg2bq_core::bq_naming::{
    APPENDED_AT_COLUMN, COMMIT_TS_COLUMN, DELETED_AT_COLUMN, IS_DELETED_COLUMN, OP_COLUMN,
    SEQ_COLUMN, quote_column,
};
use std::time::Duration;

/// How far the view's window may fall behind the last MERGE before the view is made again.
pub const VIEW_RENEWAL: Duration = Duration::from_secs(3600);

/// Label of a staging table: the window start its live view reads from, and the digest of the
/// view's columns (`<micros>-<digest>`).
pub const VIEW_LABEL: &str = "pg2bq_live_view";

/// The digest of the view's columns, to notice a column added since it was made.
fn columns_digest(target: &MergeTarget) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in target.columns.iter().flat_map(|c| c.bytes().chain([0])) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

/// The label value of a view made with the window starting at `start` for `target`.
pub fn view_label(start: i64, target: &MergeTarget) -> String {
    format!("{start}-{}", columns_digest(target))
}

/// Whether the view, made as `label` says (or never), is to be made again after a MERGE that
/// leaves `state`.
pub fn renewal_due(label: Option<&str>, state: &MergeState, target: &MergeTarget) -> bool {
    let Some((start, digest)) = label.and_then(|l| l.split_once('-')) else {
        return true;
    };
    let Ok(start) = start.parse::<i64>() else {
        return true;
    };
    digest != columns_digest(target)
        || state.merged_through.saturating_sub(start) > micros(VIEW_RENEWAL)
}

/// The statement that makes the live view of `target` again and its label, when the view is due
/// for renewal (`label`: the staging table's [`VIEW_LABEL`]) after a MERGE that leaves `state`.
pub fn live_view_statement_due(
    project: &str,
    target: &MergeTarget,
    label: Option<&str>,
    state: &MergeState,
    overlap: Duration,
) -> Option<(String, String)> {
    if !renewal_due(label, state, target) {
        return None;
    }
    let window = Window::after(state.merged_through, overlap);
    let start = match window {
        Window::Since(start) => start,
        Window::All => i64::MIN,
    };
    Some((
        view_statement(project, target, window, overlap),
        view_label(start, target),
    ))
}

/// The statement that makes the live view of `target` fold the staged rows of `window`, its set
/// widened (within the query) to the oldest commit time of the window minus `overlap`.
pub fn view_statement(
    project: &str,
    target: &MergeTarget,
    window: Window,
    overlap: Duration,
) -> String {
    let view = target.table.live_view().quoted(project);
    let mirror = target.table.quoted(project);
    let changes = target.table.change_table().quoted(project);
    let seq = quote_column(SEQ_COLUMN);
    let op = quote_column(OP_COLUMN);
    let ts = quote_column(COMMIT_TS_COLUMN);
    let in_set = match window {
        Window::All => window.condition(None),
        Window::Since(start) => {
            let appended = quote_column(APPENDED_AT_COLUMN);
            let start = format!("TIMESTAMP_MICROS({start})");
            format!(
                "({appended} >= (SELECT LEAST({start}, IFNULL(TIMESTAMP_SUB(MIN({ts}), \
                 INTERVAL {secs} SECOND), {start})) FROM {changes} WHERE {}) OR {appended} IS NULL)",
                window.condition(None),
                secs = overlap.as_secs(),
            )
        }
    };
    let folding = Folding::new(project, target, &in_set);
    let keys: Vec<String> = target.keys.iter().map(|k| quote_column(k)).collect();
    let values: Vec<&String> = folding.values().collect();
    let mut mirror_columns: Vec<String> = keys.iter().map(|k| format!("T.{k}")).collect();
    mirror_columns.extend(values.iter().map(|c| format!("T.{}", quote_column(c))));
    mirror_columns.extend([format!("T.{seq}"), format!("T.{ts}")]);
    let mut change_columns: Vec<String> = keys.iter().map(|k| format!("S.{k}")).collect();
    change_columns.extend(values.iter().map(|c| {
        let quoted = quote_column(c);
        format!(
            "IF({}, S.{quoted}, T.{quoted}) AS {quoted}",
            folding.known(c)
        )
    }));
    change_columns.extend([format!("S.{seq}"), format!("S.{ts}")]);
    let same_key = folding.same_key("T", "S");
    let newer = format!("S.{seq} > IFNULL(T.{seq}, '')");
    let older_than_truncate = format!(
        "IFNULL(T.{seq}, '') < IFNULL({}, '')",
        folding.last_truncate
    );
    let (kept, soft_parts) = if target.soft_deletes {
        // Soft deletes: rows a TRUNCATE or a DELETE removed stay, marked.
        let deleted = quote_column(IS_DELETED_COLUMN);
        let deleted_at = quote_column(DELETED_AT_COLUMN);
        let truncated = format!("({older_than_truncate} AND T.{deleted} IS NOT TRUE)");
        mirror_columns.extend([
            format!("IF({truncated}, TRUE, T.{deleted}) AS {deleted}"),
            format!(
                "IF({truncated}, ({}), T.{deleted_at}) AS {deleted_at}",
                folding.last_truncate_ts
            ),
        ]);
        change_columns.extend([
            format!("FALSE AS {deleted}"),
            format!("CAST(NULL AS TIMESTAMP) AS {deleted_at}"),
        ]);
        let mut removed: Vec<String> = keys.iter().map(|k| format!("T.{k}")).collect();
        removed.extend(values.iter().map(|c| format!("T.{}", quote_column(c))));
        removed.extend([
            format!("S.{seq}"),
            format!("S.{ts}"),
            format!("TRUE AS {deleted}"),
            format!("S.{ts} AS {deleted_at}"),
        ]);
        (
            "TRUE".to_owned(),
            format!(
                " UNION ALL SELECT {} FROM S JOIN M AS T ON {same_key} \
                 WHERE S.{op} = 'DELETE' AND {newer}",
                removed.join(", ")
            ),
        )
    } else {
        (format!("NOT ({older_than_truncate})"), String::new())
    };
    format!(
        "CREATE OR REPLACE VIEW {view} AS WITH S AS ({source}), \
         M AS (SELECT *, TRUE AS `_pg2bq_present` FROM {mirror} AS T WHERE {kept}) \
         SELECT {mirror_list} FROM M AS T \
         WHERE NOT EXISTS (SELECT 1 FROM S WHERE {same_key} AND {newer}) \
         UNION ALL \
         SELECT {change_list} FROM S LEFT JOIN M AS T ON {same_key} \
         WHERE S.{op} = 'UPSERT' AND (T.`_pg2bq_present` IS NULL OR {newer}){soft_parts}",
        source = folding.source,
        mirror_list = mirror_columns.join(", "),
        change_list = change_columns.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table_meta::TableKind;
    use pg2bq_core::bq_naming::BqTableName;

    fn target(columns: &[&str]) -> MergeTarget {
        MergeTarget {
            table: BqTableName {
                dataset: "d".into(),
                table: "t".into(),
            },
            kind: TableKind::Mirror,
            keys: vec!["id".into()],
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            unchanged: vec![],
            soft_deletes: false,
        }
    }

    #[test]
    fn the_view_folds_the_window_into_the_mirror() {
        let sql = view_statement(
            "p",
            &target(&["id", "v"]),
            Window::Since(1_000),
            Duration::from_secs(60),
        );
        assert!(sql.starts_with("CREATE OR REPLACE VIEW `p.d.t__live` AS WITH S AS ("));
        assert!(sql.contains(
            "(SELECT LEAST(TIMESTAMP_MICROS(1000), IFNULL(TIMESTAMP_SUB(MIN(`_pg2bq_commit_ts`), INTERVAL 60 SECOND), TIMESTAMP_MICROS(1000))) FROM `p.d.t__changes` WHERE"
        ));
        assert!(
            sql.contains("SELECT T.`id`, T.`v`, T.`_pg2bq_seq`, T.`_pg2bq_commit_ts` FROM M AS T")
        );
        assert!(sql.contains(
            "S.`id`, IF(NOT IFNULL(STRPOS(S.`_pg2bq_unchanged`, ',v,'), 0) > 0, S.`v`, T.`v`) AS `v`"
        ));
    }

    #[test]
    fn the_view_is_made_again_for_new_columns_or_an_old_window() {
        let two = target(&["id", "v"]);
        let state = MergeState {
            merged_through: micros(Duration::from_secs(10_000)),
            marks: String::new(),
        };
        let fresh = view_label(micros(Duration::from_secs(9_000)), &two);
        assert!(!renewal_due(Some(&fresh), &state, &two));
        assert!(renewal_due(
            Some(&fresh),
            &state,
            &target(&["id", "v", "w"])
        ));
        let old = view_label(micros(Duration::from_secs(5_000)), &two);
        assert!(renewal_due(Some(&old), &state, &two));
        assert!(renewal_due(None, &state, &two));
        assert!(renewal_due(Some("garbage"), &state, &two));
    }
}
