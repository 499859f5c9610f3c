//! Backfill progress per table, from capture's state schema, as progress bars or JSON.

use crate::error::Result;
use pg2bq_source::state::StateStore;
use serde::Serialize;
use tokio_postgres::Client;

/// Progress of one table's backfill.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillProgress {
    /// `schema.table`.
    pub table: String,
    /// Rows the planner expected (PostgreSQL's estimate).
    pub rows_estimated: i64,
    /// Rows copied and acknowledged so far.
    pub rows_copied: i64,
    /// Ranges done.
    pub ranges_done: i64,
    /// Ranges planned (0 when the table was not copied: backfill `none` or excluded).
    pub ranges: i64,
    /// Whether the backfill finished.
    pub finished: bool,
    /// Rows per second since the backfill was planned.
    pub rows_per_s: f64,
    /// Times the table was planned again because it was rewritten while it was copied.
    pub replanned: i32,
    /// Why its last attempt failed, with the fix (until a range of it is done).
    pub last_error: Option<String>,
}

/// Reads the progress of every table of the stream.
pub async fn read(sql: &Client, state: &StateStore) -> Result<Vec<BackfillProgress>> {
    Ok(state
        .progress(sql, None)
        .await?
        .into_iter()
        .map(|p| BackfillProgress {
            table: p.table.to_string(),
            rows_estimated: p.estimated_rows,
            rows_copied: p.copied_rows,
            ranges_done: p.done_ranges,
            ranges: p.ranges,
            finished: p.finished,
            rows_per_s: p.copied_rows as f64 / p.seconds.max(1e-3),
            replanned: p.replanned,
            last_error: p.last_error,
        })
        .collect())
}

/// One line per table with a progress bar.
pub fn render(progress: &[BackfillProgress]) -> String {
    let width = progress
        .iter()
        .map(|p| p.table.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = String::new();
    for p in progress {
        let fraction = if p.finished {
            1.0
        } else if p.ranges > 0 {
            p.ranges_done as f64 / p.ranges as f64
        } else {
            0.0
        };
        let filled = (fraction * 30.0).round() as usize;
        let state = match (p.finished, p.ranges) {
            (true, 0) => "not copied".to_owned(),
            (true, _) => format!("done, {:.0} rows/s", p.rows_per_s),
            (false, _) => format!("{:.0} rows/s", p.rows_per_s),
        };
        out.push_str(&format!(
            "{:<width$} [{}{}] {:>3.0}% {:>10}/{:<10} {}\n",
            p.table,
            "#".repeat(filled),
            "-".repeat(30 - filled),
            fraction * 100.0,
            p.rows_copied,
            p.rows_estimated,
            state
        ));
        if let Some(error) = &p.last_error {
            out.push_str(&format!("{:<width$}   error: {error}\n", ""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bars() {
        let p = BackfillProgress {
            table: "public.t".into(),
            rows_estimated: 100,
            rows_copied: 50,
            ranges_done: 1,
            ranges: 2,
            finished: false,
            rows_per_s: 25.0,
            replanned: 0,
            last_error: None,
        };
        let text = render(std::slice::from_ref(&p));
        assert!(
            text.starts_with("public.t [###############---------------]  50%"),
            "{text}"
        );
        assert!(text.contains("25 rows/s"));
        let refused = BackfillProgress {
            last_error: Some("row-level security would hide rows".into()),
            ..p
        };
        assert!(
            render(&[refused]).contains("\n           error: row-level security would hide rows\n"),
            "the error under the bar"
        );
    }
}
