//! The writer's metrics, in Prometheus text format on `/metrics`: rows and bytes written per
//! table, append latency, freshness (source commit → BigQuery acknowledgement), errors by kind,
//! and values written by a documented adjustment rule (clamped, rounded, nulled) per table and
//! rule. The "wrote batch" log line carries the same figures for log-based metrics in Cloud
//! Logging.
//!
//! Adjusted values are noted where values are converted ([`note_adjustment`]) into a tally of
//! the write in progress ([`counting_adjustments`]), and counted only once BigQuery acknowledged
//! the write, so that a redelivered batch is not counted twice.

use pg2bq_core::bq_values::{Adjustment, BqValue, Converted};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Values adjusted per rule, in one write.
pub type Adjusted = BTreeMap<Adjustment, u64>;

tokio::task_local! {
    static ADJUSTED: RefCell<Adjusted>;
}

/// Notes one value written by `rule`, in the tally of the write in progress (nothing outside
/// [`counting_adjustments`]).
pub fn note_adjustment(rule: Adjustment) {
    let _ = ADJUSTED.try_with(|tally| {
        let mut tally = tally.borrow_mut();
        let count = tally.entry(rule).or_default();
        *count = count.saturating_add(1);
    });
}

/// The value of a conversion, its adjustment noted (see [`note_adjustment`]).
pub fn noted<E>(converted: Result<Converted, E>) -> Result<BqValue, E> {
    converted.map(|c| {
        if let Some(rule) = c.adjustment {
            note_adjustment(rule);
        }
        c.value
    })
}

/// Runs `write`, and returns its outcome with the adjustments noted while it ran.
pub async fn counting_adjustments<F: Future>(write: F) -> (F::Output, Adjusted) {
    ADJUSTED
        .scope(RefCell::new(Adjusted::new()), async move {
            let outcome = write.await;
            (outcome, ADJUSTED.with(RefCell::take))
        })
        .await
}

/// `rule=count,...` of a tally, for the log line.
pub fn describe(adjusted: &Adjusted) -> String {
    adjusted
        .iter()
        .map(|(rule, count)| format!("{rule}={count}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, Default, Clone, Copy)]
struct TableCounters {
    rows: u64,
    bytes: u64,
    batches: u64,
    quarantined: u64,
    superseded: u64,
}

#[derive(Debug, Default)]
struct Inner {
    tables: BTreeMap<String, TableCounters>,
    errors: BTreeMap<&'static str, u64>,
    adjusted: BTreeMap<(String, Adjustment), u64>,
    append_seconds_sum: f64,
    appends: u64,
    freshness_seconds: f64,
    claims_read: u64,
    claims_already_written: u64,
    dead_lettered: u64,
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

    /// Records a discarded batch of an older generation of `table`, with its changes.
    pub fn record_superseded(&self, table: &str, changes: usize) {
        let mut inner = self.inner.lock().expect("metrics lock");
        let counters = inner.tables.entry(table.to_owned()).or_default();
        counters.superseded = counters.superseded.saturating_add(changes as u64);
    }

    /// Records the values of a written batch of `table` that were adjusted by a rule.
    pub fn record_adjustments(&self, table: &str, adjusted: &Adjusted) {
        if adjusted.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().expect("metrics lock");
        for (rule, count) in adjusted {
            *inner.adjusted.entry((table.to_owned(), *rule)).or_default() += count;
        }
    }

    /// Records a claim check: its object read, or found gone (its batch already written).
    pub fn record_claim(&self, read: bool) {
        let mut inner = self.inner.lock().expect("metrics lock");
        if read {
            inner.claims_read += 1;
        } else {
            inner.claims_already_written += 1;
        }
    }

    /// Records a message forwarded to the dead-letter topic.
    pub fn record_dead_lettered(&self) {
        let mut inner = self.inner.lock().expect("metrics lock");
        inner.dead_lettered = inner.dead_lettered.saturating_add(1);
    }

    /// Records a failed push request by the error's kind.
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
            "changes_superseded_total",
            "counter",
            "Changes discarded because their table started a new generation since (they come \
             again with its copy), per source table.",
        );
        for (table, c) in &inner.tables {
            let _ = writeln!(
                out,
                "pg2bq_writer_changes_superseded_total{{table=\"{}\"}} {}",
                label(table),
                c.superseded
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
            "claim_checks_total",
            "counter",
            "Claim checks (batches too big for a message, read from Cloud Storage): `read`, or \
             `already_written` when the object was gone because an earlier delivery wrote it.",
        );
        let _ = writeln!(
            out,
            "pg2bq_writer_claim_checks_total{{outcome=\"read\"}} {}",
            inner.claims_read
        );
        let _ = writeln!(
            out,
            "pg2bq_writer_claim_checks_total{{outcome=\"already_written\"}} {}",
            inner.claims_already_written
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
        header(
            &mut out,
            "messages_dead_lettered_total",
            "counter",
            "Messages the writer can never write, forwarded to the dead-letter topic.",
        );
        let _ = writeln!(
            out,
            "pg2bq_writer_messages_dead_lettered_total {}",
            inner.dead_lettered
        );
        header(
            &mut out,
            "values_adjusted_total",
            "counter",
            "Values written by a documented adjustment rule (clamped, rounded, nulled; see \
             type-mapping.md), per source table and rule.",
        );
        for ((table, rule), count) in &inner.adjusted {
            let _ = writeln!(
                out,
                "pg2bq_writer_values_adjusted_total{{table=\"{}\",rule=\"{rule}\"}} {count}",
                label(table)
            );
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
        assert!(text.contains("# TYPE pg2bq_writer_values_adjusted_total counter\n"));
    }

    #[tokio::test]
    async fn adjusted_values_of_a_write_are_counted_per_table_and_rule() {
        use crate::modes::rows::change_rows;
        use crate::shape::TableShape;
        use pg2bq_core::bq_naming::BqTableName;
        use pg2bq_core::lsn::Lsn;
        use pg2bq_core::seq::Seq;
        use pg2bq_core::wire::{Change, ChangeBatch, ColumnSpec, Op, TableId, Value, WIRE_VERSION};

        let column = |name: &str, pg_type: &str| ColumnSpec {
            name: name.into(),
            pg_type: pg_type.into(),
            type_modifier: -1,
            key: name == "id",
        };
        let insert = |values: [&str; 3]| Change {
            op: Op::Insert,
            seq: Seq::new(Lsn(1), 1),
            commit_time_us: 1,
            xid: 1,
            new: Some(values.iter().map(|v| Value::Text((*v).into())).collect()),
            old: None,
        };
        let batch = ChangeBatch {
            version: WIRE_VERSION,
            source: TableId {
                schema: "public".into(),
                table: "t".into(),
            },
            columns: vec![
                column("id", "int4"),
                column("d", "date"),
                column("n", "numeric"),
            ],
            changes: vec![
                insert(["1", "infinity", "NaN"]),
                insert(["2", "infinity", "1.5"]),
                insert(["3", "2024-01-01", "Infinity"]),
            ],
            generation: 0,
            control: None,
        };
        let shape = TableShape::new(
            BqTableName {
                dataset: "d".into(),
                table: "t".into(),
            },
            &batch.columns,
        );
        let (rows, adjusted) = counting_adjustments(async { change_rows(&batch, &shape) }).await;
        assert_eq!(rows.rows.len(), 3);
        assert_eq!(
            describe(&adjusted),
            "infinity_to_max=2,nan_to_null=1,infinity_to_null=1"
        );
        // Outside a counted write nothing is noted.
        note_adjustment(Adjustment::Rounded);
        let m = WriterMetrics::default();
        m.record_adjustments("public.t", &adjusted);
        m.record_adjustments("public.t", &adjusted);
        let text = m.prometheus();
        assert!(
            text.contains(
                "pg2bq_writer_values_adjusted_total{table=\"public.t\",rule=\"infinity_to_max\"} 4\n"
            ),
            "{text}"
        );
        assert!(text.contains("{table=\"public.t\",rule=\"nan_to_null\"} 2\n"));
        assert!(!text.contains("rule=\"rounded\""));
    }
}
