//! Backfill progress per table, from capture's state schema, as progress bars or JSON.

use crate::error::{CliError, Result};
use pg2bq_core::pg_connect::quote_ident;
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
}

/// Reads the progress of every table of `slot`.
pub async fn read(sql: &Client, state_schema: &str, slot: &str) -> Result<Vec<BackfillProgress>> {
    let s = quote_ident(state_schema);
    let rows = sql
        .query(
            &format!(
                "SELECT t.schema_name || '.' || t.table_name, t.estimated_rows, \
                        COALESCE(SUM(r.rows) FILTER (WHERE r.done), 0)::bigint, \
                        COUNT(r.*) FILTER (WHERE r.done), COUNT(r.*), t.finished_at IS NOT NULL, \
                        EXTRACT(EPOCH FROM (COALESCE(t.finished_at, now()) - t.planned_at))::float8 \
                 FROM {s}.backfill_tables t LEFT JOIN {s}.backfill_ranges r USING (slot_name, schema_name, table_name) \
                 WHERE t.slot_name = $1 GROUP BY 1, 2, 6, 7 ORDER BY 1"
            ),
            &[&slot],
        )
        .await
        .map_err(CliError::postgres(format!("reading backfill progress from {state_schema} (has capture started?)")))?;
    Ok(rows
        .iter()
        .map(|r| {
            let copied: i64 = r.get(2);
            let seconds: f64 = r.get(6);
            BackfillProgress {
                table: r.get(0),
                rows_estimated: r.get(1),
                rows_copied: copied,
                ranges_done: r.get(3),
                ranges: r.get(4),
                finished: r.get(5),
                rows_per_s: copied as f64 / seconds.max(1e-3),
            }
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
        };
        let text = render(&[p]);
        assert!(
            text.starts_with("public.t [###############---------------]  50%"),
            "{text}"
        );
        assert!(text.contains("25 rows/s"));
    }
}
