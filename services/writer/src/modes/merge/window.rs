//! Which staged rows a MERGE reads: the rows appended since the previous MERGE of the table,
//! with an overlap, and the older DELETE and TRUNCATE rows that may still beat them.
//!
//! Each staged row carries the time the writer appended it (`_pg2bq_appended_at`, the
//! partitioning column of staging tables). After a MERGE, the table's *watermark* is the time the
//! MERGE began, kept in BigQuery as a label of the staging table with the *data marks* of the
//! staging table as they were read before it (see [`MergeState`]). The next MERGE:
//!
//! 1. is skipped without a query when the staging table's data marks are unchanged (no row was
//!    appended since): an idle table costs nothing;
//! 2. reads the *window*: rows appended at or after the watermark minus the overlap. The overlap
//!    covers rows stamped before the watermark that became readable only after the MERGE read
//!    (an append in flight, at most one BigQuery deadline long, and clock differences between
//!    writer instances);
//! 3. folds the *set*: rows appended at or after the window's start or the oldest commit time in
//!    the window minus the overlap, whichever is older. A change newer than a change of the
//!    window was committed after it, so it was appended after that commit (give or take the
//!    clocks): the set holds every change that can beat a change of the window, DELETE and
//!    TRUNCATE included, while the mirror holds the result of every older one. A late delivery
//!    widens the set back to its own commit time: the cost follows how late it is.
//!
//! Rows written by an older release have no append time: they are always read, until pruned.

use pg2bq_bigquery::rest::DataMarks;
use pg2bq_core::bq_naming::{APPENDED_AT_COLUMN, COMMIT_TS_COLUMN, quote_column};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Label of a staging table: the watermark, microseconds since the Unix epoch.
pub const MERGED_THROUGH_LABEL: &str = "pg2bq_merged_through";
/// Label of a staging table: the digest of its data marks read before the last MERGE.
pub const MARKS_LABEL: &str = "pg2bq_marks";

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `duration` in microseconds, saturating.
pub fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// What the last MERGE of a table left in the labels of its staging table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeState {
    /// When it began (microseconds since the Unix epoch).
    pub merged_through: i64,
    /// The digest of the staging table's data marks read before it.
    pub marks: String,
}

impl MergeState {
    /// The state in `labels`, if they hold one.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<Self> {
        Some(MergeState {
            merged_through: labels.get(MERGED_THROUGH_LABEL)?.parse().ok()?,
            marks: labels.get(MARKS_LABEL)?.clone(),
        })
    }

    /// `labels` with this state in them.
    pub fn into_labels(&self, mut labels: BTreeMap<String, String>) -> BTreeMap<String, String> {
        labels.insert(
            MERGED_THROUGH_LABEL.to_owned(),
            self.merged_through.to_string(),
        );
        labels.insert(MARKS_LABEL.to_owned(), self.marks.clone());
        labels
    }

    /// Whether no row was appended since this MERGE, by the staging table's `marks` now.
    pub fn idle(&self, marks: &DataMarks) -> bool {
        self.marks == marks.digest()
    }
}

/// The rows one MERGE folds: every row (no watermark yet), or the set of a window (see the
/// module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Every staged row.
    All,
    /// Rows appended at or after this instant (microseconds), and rows without append time.
    Since(i64),
}

impl Window {
    /// The window of a MERGE after one that began at `merged_through`.
    pub fn after(merged_through: i64, overlap: Duration) -> Self {
        Window::Since(merged_through.saturating_sub(micros(overlap)))
    }

    /// The set to fold for this window, whose oldest change was committed at `oldest_commit`
    /// (microseconds; `None`: no change, or no commit time).
    pub fn set(self, oldest_commit: Option<i64>, overlap: Duration) -> Self {
        match (self, oldest_commit) {
            (Window::Since(start), Some(oldest)) => {
                Window::Since(start.min(oldest.saturating_sub(micros(overlap))))
            }
            (window, _) => window,
        }
    }

    /// The condition on a staging row (alias `alias`, or none) that selects this window, or
    /// `TRUE`.
    pub fn condition(self, alias: Option<&str>) -> String {
        match self {
            Window::All => "TRUE".to_owned(),
            Window::Since(start) => {
                let column = match alias {
                    Some(a) => format!("{a}.{}", quote_column(APPENDED_AT_COLUMN)),
                    None => quote_column(APPENDED_AT_COLUMN),
                };
                format!("({column} >= TIMESTAMP_MICROS({start}) OR {column} IS NULL)")
            }
        }
    }

    /// The query that counts the rows of this window in `changes` (a quoted table), finds the
    /// oldest commit time among them, and counts the rows of `target` (which BigQuery answers
    /// from metadata): `(count, micros or NULL, target rows)`.
    pub fn stats_query(self, changes: &str, target: &str) -> String {
        format!(
            "SELECT COUNT(*), UNIX_MICROS(MIN({ts})), (SELECT COUNT(*) FROM {target}) \
             FROM {changes} WHERE {}",
            self.condition(None),
            ts = quote_column(COMMIT_TS_COLUMN),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_reaches_back_to_the_oldest_commit_minus_the_overlap() {
        let overlap = Duration::from_secs(300);
        let window = Window::after(1_000_000_000, overlap);
        assert_eq!(window, Window::Since(700_000_000));
        // A late change committed long before: the set reaches back to it.
        assert_eq!(
            window.set(Some(100_000_000), overlap),
            Window::Since(-200_000_000)
        );
        // Changes committed recently: the window's start bounds the set.
        assert_eq!(window.set(Some(1_050_000_000), overlap), window);
        assert_eq!(window.set(None, overlap), window);
        assert_eq!(Window::All.set(Some(5), overlap), Window::All);
        assert_eq!(Window::after(i64::MIN, overlap), Window::Since(i64::MIN));
    }

    #[test]
    fn conditions_keep_rows_without_append_time() {
        assert_eq!(
            Window::Since(42).condition(Some("C")),
            "(C.`_pg2bq_appended_at` >= TIMESTAMP_MICROS(42) OR C.`_pg2bq_appended_at` IS NULL)"
        );
        assert_eq!(Window::All.condition(None), "TRUE");
    }

    #[test]
    fn the_state_round_trips_through_labels_beside_others() {
        let state = MergeState {
            merged_through: 1_796_043_814_511_425,
            marks: "00ff".into(),
        };
        let mut others = BTreeMap::new();
        others.insert("team".to_owned(), "data".to_owned());
        let labels = state.into_labels(others);
        assert_eq!(labels.get("team").map(String::as_str), Some("data"));
        assert_eq!(MergeState::from_labels(&labels), Some(state));
        assert_eq!(MergeState::from_labels(&BTreeMap::new()), None);
    }
}
