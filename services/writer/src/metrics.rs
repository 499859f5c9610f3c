//! The writer's metrics, in Prometheus text format on `/metrics`: rows and bytes written per
//! table, append latency, freshness (source commit → BigQuery acknowledgement) and errors by kind.
//! The "wrote batch" log line carries the same figures for log-based metrics in Cloud Logging.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Default, Clone, Copy)]
struct TableCounters {
    rows: u64,
    bytes: u64,
    batches: u64,
    quarantined: u64,
}

#[derive(Debug, Default)]
struct Inner {
    tables: BTreeMap<String, TableCounters>,
    errors: BTreeMap<&'static str, u64>,
    append_seconds_sum: f64,
    appends: u64,
    freshness_seconds: f64,
}

/// Counters of one writer instance.
#[derive(Debug, Default)]
pub struct WriterMetrics {
    inner: Mutex<Inner>,
}

/// Seconds from `commit_time_us` (microseconds since the Unix epoch) to now.
pub fn seconds_since(commit_time_us: i64) -> f64 {
    ((pg2bq_core::civil::now_us() - commit_time_us) as f64 / 1e6).max(0.0)
}

impl WriterMetrics {
    /// Records a batch BigQuery acknowledged.
    pub fn record_write(
        &self,
        table: &str,
        rows: usize,
        bytes: usize,
        append: Duration,
        freshness_seconds: f64,
    ) {
        let mut inner = self.inner.lock().expect("metrics lock");
        let counters = inner.tables.entry(table.to_owned()).or_default();
        counters.rows += rows as u64;
        counters.bytes += bytes as u64;
        counters.batches += 1;
        inner.append_seconds_sum += append.as_secs_f64();
        inner.appends += 1;
        inner.freshness_seconds = freshness_seconds;
    }

    /// Records changes of a table set aside in the quarantine.
    pub fn record_quarantined(&self, table: &str, changes: usize) {
        let mut inner = self.inner.lock().expect("metrics lock");
        let counters = inner.tables.entry(table.to_owned()).or_default();
        counters.quarantined = counters.quarantined.saturating_add(changes as u64);
    }

    /// Records a refused or failed request.
    pub fn record_error(&self, kind: &'static str) {
        *self
            .inner
            .lock()
            .expect("metrics lock")
            .errors
            .entry(kind)
            .or_default() += 1;
    }

    /// The metrics in Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let inner = self.inner.lock().expect("metrics lock");
        let mut out = String::new();
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(
                out,
                "# HELP pg2bq_writer_{name} {help}\n# TYPE pg2bq_writer_{name} {kind}"
            );
        };
        header(
            &mut out,
            "rows_written_total",
            "counter",
            "Rows BigQuery acknowledged, per source table.",
        );
        for (table, c) in &inner.tables {
            let _ = writeln!(
                out,
                "pg2bq_writer_rows_written_total{{table=\"{}\"}} {}",
                label(table),
                c.rows
            );
        }
        header(
            &mut out,
            "bytes_written_total",
            "counter",
            "Encoded row bytes BigQuery acknowledged, per source table.",
        );
        for (table, c) in &inner.tables {
            let _ = writeln!(
                out,
                "pg2bq_writer_bytes_written_total{{table=\"{}\"}} {}",
                label(table),
                c.bytes
            );
        }
        header(
            &mut out,
            "batches_written_total",
            "counter",
            "Change batches written, per source table.",
        );
        for (table, c) in &inner.tables {
            let _ = writeln!(
                out,
                "pg2bq_writer_batches_written_total{{table=\"{}\"}} {}",
                label(table),
                c.batches
            );
        }
        header(
            &mut out,
            "changes_quarantined_total",
            "counter",
            "Changes that could not be written and wait in the quarantine, per source table.",
        );
        for (table, c) in &inner.tables {
            let _ = writeln!(
                out,
                "pg2bq_writer_changes_quarantined_total{{table=\"{}\"}} {}",
                label(table),
                c.quarantined
            );
        }
        header(
            &mut out,
            "append_seconds",
            "summary",
            "Time from receiving a batch to BigQuery's acknowledgement.",
        );
        let _ = writeln!(
            out,
            "pg2bq_writer_append_seconds_sum {}",
            inner.append_seconds_sum
        );
        let _ = writeln!(out, "pg2bq_writer_append_seconds_count {}", inner.appends);
        header(
            &mut out,
            "freshness_seconds",
            "gauge",
            "Source commit to BigQuery acknowledgement, last batch (oldest change).",
        );
        let _ = writeln!(
            out,
            "pg2bq_writer_freshness_seconds {}",
            inner.freshness_seconds
        );
        header(
            &mut out,
            "errors_total",
            "counter",
            "Refused or failed requests, by kind.",
        );
        for (kind, count) in &inner.errors {
            let _ = writeln!(out, "pg2bq_writer_errors_total{{kind=\"{kind}\"}} {count}");
        }
        out
    }
}

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_table_and_kind() {
        let m = WriterMetrics::default();
        m.record_write("public.t", 10, 400, Duration::from_millis(20), 1.5);
        m.record_write("public.t", 5, 100, Duration::from_millis(10), 0.5);
        m.record_write("odd\"name", 1, 1, Duration::ZERO, 0.1);
        m.record_error("bad_batch");
        let text = m.prometheus();
        assert!(
            text.contains("pg2bq_writer_rows_written_total{table=\"public.t\"} 15\n"),
            "{text}"
        );
        assert!(text.contains("pg2bq_writer_bytes_written_total{table=\"public.t\"} 500\n"));
        assert!(text.contains("{table=\"odd\\\"name\"} 1\n"));
        assert!(text.contains("pg2bq_writer_append_seconds_count 3\n"));
        assert!(text.contains("pg2bq_writer_errors_total{kind=\"bad_batch\"} 1\n"));
        assert!(text.contains("pg2bq_writer_freshness_seconds 0.1\n"));
    }
}
