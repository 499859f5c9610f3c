//! The staged MERGE as the change history grows, and what a million changes cost on the way.
//!
//! A writer in the staged strategy (no merge timer: only `POST /merge` merges, its own dataset,
//! no pruning of the change table) receives push requests for one table of a fixed set of keys,
//! so the mirror keeps its size while the change table's history grows. At each history size
//! (100,000 changes, then 2,000,000) the pending changes are merged once, then a few rounds of
//! 1,000 new changes (updates, deletes, inserts) are pushed and their `POST /merge` timed; the
//! median counts. The mirror is then compared row by row with the state the workload left, so a
//! fast but wrong MERGE fails the benchmark.
//!
//! A writer that reads only the rows appended since its previous MERGE reads them with an
//! overlap (`PG2BQ_MERGE_OVERLAP_SECS`, minutes in a deployment): here [`OVERLAP`], and each
//! MERGE waits a little longer than that after the last push, so that the window holds the
//! round's changes and not the end of the history pushed a moment earlier, as it would a day
//! later. Older writers ignore the setting.
//!
//! Rows read: the `rows_read` of the writer's `/merge` answer (the change-table and mirror rows
//! the round's statements select); a writer that does not report it reads both tables whole,
//! so their row counts, taken just before the merge, stand in. Bytes read: rows read times the
//! average logical size of a row (BigQuery's data size: 8 bytes per INT64 and TIMESTAMP, 2 plus
//! the UTF-8 length per STRING, NULL 0), as bqemulator reports no bytes processed.

use super::merge_workload::{MessageBytes, SCHEMA, TABLE, Workload};
use super::report::Summary;
use crate::stack::Stack;
use crate::writer_process::StandaloneWriter;
use futures::StreamExt;
use pg2bq_bigquery::rest::RestClient;
use pg2bq_core::bq_naming::BqTableName;
use serde_json::Value as Json;
use std::time::{Duration, Instant};

/// Dataset prefix of the benchmark's writer.
const PREFIX: &str = "bench_merge_";
/// Seed of the workload's random choices.
const SEED: u64 = 16;
/// The writer's MERGE overlap, in seconds.
const OVERLAP: &str = "1";
/// The wait between the last push and a MERGE: longer than the overlap.
const SETTLE: Duration = Duration::from_millis(1500);

/// The sizes of the MERGE benchmark.
#[derive(Debug, Clone)]
pub struct MergeSizes {
    /// Keys of the table (the mirror's size).
    pub keys: u64,
    /// The history sizes measured, in changes, ascending.
    pub histories: [u64; 2],
    /// Changes of each timed round.
    pub round_changes: usize,
    /// Timed rounds per history size (the median counts).
    pub rounds: usize,
    /// Changes per push request while the history grows.
    pub push_changes: usize,
    /// Push requests at once while the history grows.
    pub concurrency: usize,
}

/// One timed `POST /merge`.
#[derive(Debug, Clone, Copy)]
struct Round {
    ms: f64,
    rows_read: u64,
    bytes_read: f64,
    queries: Option<u64>,
    reported: bool,
}

/// Average logical bytes of a row of the change table and of the mirror.
#[derive(Debug, Clone, Copy)]
struct RowBytes {
    changes: f64,
    mirror: f64,
}

/// The figures of one history size.
struct Measured {
    history: u64,
    catch_up_ms: f64,
    rounds: Vec<Round>,
    /// Changes pushed by the end of the last round.
    changes: u64,
    row_bytes: RowBytes,
    /// Rows of the mirror after the last round.
    mirror_rows: u64,
}

/// Runs the benchmark; records `merge_ms_history_*`, `merge_rows_read_history_*`,
/// `merge_growth_ratio` and the bytes per million changes.
pub async fn merge_growth(summary: &mut Summary, sizes: &MergeSizes) {
    let stack = Stack::from_env();
    let bigquery = stack.bigquery();
    let mirror = BqTableName {
        dataset: format!("{PREFIX}{SCHEMA}"),
        table: TABLE.to_owned(),
    };
    let _ = bigquery.delete_dataset(&mirror.dataset).await;
    let settings = [
        ("PG2BQ_MERGE_STRATEGY", "staged"),
        ("PG2BQ_MERGE_INTERVAL_MS", "0"),
        ("PG2BQ_CHANGE_RETENTION_SECS", "0"),
        ("PG2BQ_MERGE_OVERLAP_SECS", OVERLAP),
    ];
    let writer = StandaloneWriter::start_with(&stack, "bench-merge", PREFIX, &settings).await;
    let mut workload = Workload::new(sizes.keys, SEED);
    let mut measured = Vec::new();
    for history in sizes.histories {
        let pending = history.saturating_sub(workload.changes());
        let (seconds, pushed) = grow(&writer, &mut workload, pending, sizes).await;
        eprintln!(
            "   history {}: pushed {pushed} changes in {seconds:.0} s ({:.0}/s)",
            workload.changes(),
            pushed as f64 / seconds
        );
        tokio::time::sleep(SETTLE).await;
        let (catch_up_ms, answer) = merge(&writer).await;
        // A writer that reports the rows it reads needs no counting (which would read the whole
        // change table).
        let reports = answer["rows_read"].is_u64();
        let row_bytes = row_bytes(&bigquery, &mirror).await;
        let mut rounds = Vec::with_capacity(sizes.rounds);
        for _ in 0..sizes.rounds {
            push(&writer, workload.round_push(sizes.round_changes)).await;
            tokio::time::sleep(SETTLE).await;
            let counted = if reports {
                None
            } else {
                Some(rows_before_merge(&bigquery, &mirror).await)
            };
            rounds.push(timed_round(&writer, counted, row_bytes).await);
        }
        let mirror_rows = verify(&bigquery, &mirror, &workload).await;
        eprintln!(
            "   history {history}: catch-up MERGE {catch_up_ms:.0} ms; rounds {:?} ms; mirror checked",
            rounds.iter().map(|r| r.ms.round()).collect::<Vec<_>>()
        );
        measured.push(Measured {
            history,
            catch_up_ms,
            rounds,
            changes: workload.changes(),
            row_bytes,
            mirror_rows,
        });
    }
    let appended = writer_metric(&writer, "bytes_written_total{table=\"bench.items\"}").await;
    drop(writer);
    let _ = bigquery.delete_dataset(&mirror.dataset).await;
    record(summary, sizes, &measured, workload.bytes, appended);
}

fn record(
    summary: &mut Summary,
    sizes: &MergeSizes,
    measured: &[Measured],
    bytes: MessageBytes,
    appended: Option<f64>,
) {
    let per_million = |value: f64| value / sizes.round_changes as f64 * 1e6;
    let mut medians = Vec::new();
    let mut notes = Vec::new();
    for m in measured {
        let (label, rounds) = (history_label(m.history), &m.rounds);
        let ms = median(rounds.iter().map(|r| r.ms));
        let rows = median(rounds.iter().map(|r| r.rows_read as f64));
        let bytes_read = median(rounds.iter().map(|r| r.bytes_read));
        summary.set(&format!("merge_ms_history_{label}"), ms);
        summary.set(&format!("merge_rows_read_history_{label}"), rows);
        summary.set(
            &format!("merge_bytes_read_per_million_changes_history_{label}"),
            per_million(bytes_read),
        );
        medians.push((ms, per_million(bytes_read)));
        let reported = rounds.iter().all(|r| r.reported);
        // A MERGE reads at least the mirror's rows: a reported figure below it leaves rows out.
        let short = if reported && rows < m.mirror_rows as f64 {
            format!(
                " (less than the mirror's {} rows: the writer's figure leaves out rows its \
                 statements read)",
                m.mirror_rows
            )
        } else {
            String::new()
        };
        let queries = rounds.first().and_then(|r| r.queries);
        notes.push(format!(
            "history {label} ({} changes after the last round): rounds {:?} ms, catch-up MERGE of \
             the history {:.0} ms; rows read {}{}{}; average row {:.1} bytes in the change table, \
             {:.1} in the mirror",
            m.changes,
            rounds.iter().map(|r| r.ms.round()).collect::<Vec<_>>(),
            m.catch_up_ms,
            if reported {
                "as the writer reported them"
            } else {
                "not reported by the writer (it reads both tables whole): change-table rows plus \
                 mirror rows counted before each merge"
            },
            short,
            queries.map_or(String::new(), |q| format!(", {q} queries a round")),
            m.row_bytes.changes,
            m.row_bytes.mirror,
        ));
    }
    if let [(small, _), (large, large_bytes)] = medians[..] {
        summary.set("merge_growth_ratio", large / small);
        summary.set("merge_bytes_read_per_million_changes", large_bytes);
    }
    summary.note(
        "merge_growth_ratio",
        format!(
            "staged writer (no merge timer, no pruning), one table (id bigint key, name text, qty \
             integer, at timestamptz) of {} keys; history grown by pushes of {} changes ({} at \
             once), merged, then {} rounds of {} new changes (a tenth deletes, a tenth inserts, \
             the rest updates) each pushed and its POST /merge timed, median; the mirror compared \
             row by row after the rounds. {}",
            sizes.keys,
            sizes.push_changes,
            sizes.concurrency,
            sizes.rounds,
            sizes.round_changes,
            notes.join("; ")
        ),
    );
    summary.note(
        "merge_bytes_read_per_million_changes",
        format!(
            "median round at the largest history: rows read times the average logical row size \
             (BigQuery's data size of every column; bqemulator reports 0 bytes processed) per \
             {} changes, scaled to a million; on-demand BigQuery also bills at least 10 MB per \
             table a statement references",
            sizes.round_changes
        ),
    );
    let changes = bytes.changes.max(1) as f64;
    summary.set(
        "pubsub_bytes_per_million_changes",
        (bytes.json + bytes.attributes) as f64 / changes * 1e6,
    );
    summary.set(
        "pubsub_gzip_bytes_per_million_changes",
        (bytes.gzip + bytes.attributes) as f64 / changes * 1e6,
    );
    summary.note(
        "pubsub_bytes_per_million_changes",
        format!(
            "the MERGE benchmark's {} messages ({} changes, {:.0} a message) as capture publishes \
             them (the same batch JSON): data, attribute keys and values, 20 bytes of timestamp \
             and a 16-byte message id each, as Pub/Sub bills a message; _gzip: the data \
             compressed as PG2BQ_COMPRESSION=gzip (Terraform's default) does. Publishing and the \
             push delivery are each billed",
            bytes.messages,
            bytes.changes,
            changes / bytes.messages.max(1) as f64
        ),
    );
    if let Some(appended) = appended {
        summary.set(
            "bq_append_bytes_per_million_changes",
            appended / changes * 1e6,
        );
        summary.note(
            "bq_append_bytes_per_million_changes",
            "the writer's pg2bq_writer_bytes_written_total (encoded proto rows BigQuery \
             acknowledged) over the MERGE benchmark's changes: one change-table row per change",
        );
    }
}

fn history_label(history: u64) -> String {
    if history >= 1_000_000 && history.is_multiple_of(1_000_000) {
        format!("{}m", history / 1_000_000)
    } else if history >= 1000 && history.is_multiple_of(1000) {
        format!("{}k", history / 1000)
    } else {
        history.to_string()
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Pushes `changes` history changes; returns the seconds it took and how many it pushed.
async fn grow(
    writer: &StandaloneWriter,
    workload: &mut Workload,
    changes: u64,
    sizes: &MergeSizes,
) -> (f64, u64) {
    let started = Instant::now();
    let mut remaining = changes;
    let mut next = |workload: &mut Workload| {
        let n = remaining.min(sizes.push_changes as u64);
        remaining -= n;
        (n > 0).then(|| workload.history_push(n as usize))
    };
    // The first push of a table creates its tables: alone.
    if workload.changes() == 0
        && let Some(body) = next(workload)
    {
        push(writer, body).await;
    }
    let bodies = std::iter::from_fn(|| next(workload));
    let mut pushed = 0usize;
    let mut stream = futures::stream::iter(bodies)
        .map(|body| push(writer, body))
        .buffer_unordered(sizes.concurrency.max(1));
    let mut reported = Instant::now();
    while stream.next().await.is_some() {
        pushed += 1;
        if reported.elapsed() >= Duration::from_secs(30) {
            reported = Instant::now();
            eprintln!(
                "   {} of {changes} changes pushed ({:.0}/s)",
                pushed * sizes.push_changes,
                (pushed * sizes.push_changes) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    (started.elapsed().as_secs_f64(), changes)
}

/// Posts a push request; retries what the writer answers with a 5xx (as Pub/Sub would).
async fn push(writer: &StandaloneWriter, body: Vec<u8>) {
    let mut delay = Duration::from_millis(500);
    for attempt in 1.. {
        let (status, text) = writer.push(body.clone()).await;
        if status == 204 {
            return;
        }
        assert!(
            status >= 500 && attempt < 8,
            "push answered {status}: {text}"
        );
        eprintln!("   push answered {status} (attempt {attempt}), retrying: {text}");
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
}

/// Times one `POST /merge`; returns the milliseconds and the answer.
async fn merge(writer: &StandaloneWriter) -> (f64, Json) {
    let started = Instant::now();
    let (status, text) = writer.post("merge", "", None).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(status, 200, "POST /merge: {text}");
    let answer: Json = serde_json::from_str(&text).expect("the answer of /merge is JSON");
    assert_eq!(
        answer["merged_tables"].as_u64(),
        Some(1),
        "one table merged: {text}"
    );
    (ms, answer)
}

/// The rows of the change table and of the mirror.
async fn rows_before_merge(bigquery: &RestClient, mirror: &BqTableName) -> (u64, u64) {
    (
        count(bigquery, &mirror.change_table()).await,
        count(bigquery, mirror).await,
    )
}

/// Times the merge of the pushed round. `counted`: the rows of the change table and of the
/// mirror just before, for a writer that does not report the rows it reads.
async fn timed_round(
    writer: &StandaloneWriter,
    counted: Option<(u64, u64)>,
    row_bytes: RowBytes,
) -> Round {
    let (ms, answer) = merge(writer).await;
    let queries = answer["queries"].as_u64();
    match (answer["rows_read"].as_u64(), counted) {
        (Some(rows_read), _) => Round {
            ms,
            rows_read,
            // Mostly change rows, the wider of the two.
            bytes_read: rows_read as f64 * row_bytes.changes.max(row_bytes.mirror),
            queries,
            reported: true,
        },
        (None, Some((changes, mirrored))) => Round {
            ms,
            rows_read: changes + mirrored,
            bytes_read: changes as f64 * row_bytes.changes + mirrored as f64 * row_bytes.mirror,
            queries,
            reported: false,
        },
        (None, None) => panic!("the writer reported rows_read at first, then not: {answer}"),
    }
}

async fn count(bigquery: &RestClient, table: &BqTableName) -> u64 {
    let sql = format!("SELECT COUNT(*) FROM {}", table.quoted(bigquery.project()));
    let rows = bigquery.query(&sql).await.expect("counting rows").rows;
    rows.first()
        .and_then(|r| r.first()?.as_deref()?.parse().ok())
        .expect("a count")
}

/// Average logical bytes of a row of the change table and of the mirror.
async fn row_bytes(bigquery: &RestClient, mirror: &BqTableName) -> RowBytes {
    RowBytes {
        changes: average_row_bytes(bigquery, &mirror.change_table()).await,
        mirror: average_row_bytes(bigquery, mirror).await,
    }
}

/// The average of BigQuery's data size of a row of `table`, every column counted.
async fn average_row_bytes(bigquery: &RestClient, table: &BqTableName) -> f64 {
    let info = bigquery
        .table(table)
        .await
        .expect("reading the table")
        .expect("the table exists");
    let sizes: Vec<String> = info
        .fields
        .iter()
        .map(|f| column_bytes(&format!("`{}`", f.name), &f.bq_type))
        .collect();
    let sql = format!(
        "SELECT AVG({}) FROM {}",
        sizes.join(" + "),
        table.quoted(bigquery.project())
    );
    // Bytes are a secondary figure: a table that cannot be scanned whole (a partition filter
    // required) leaves them unknown rather than failing the benchmark.
    match bigquery.query(&sql).await {
        Ok(answer) => answer
            .rows
            .first()
            .and_then(|r| r.first()?.as_deref()?.parse().ok())
            .unwrap_or(f64::NAN),
        Err(e) => {
            eprintln!("   average row size of {}: {e}", table.table);
            f64::NAN
        }
    }
}

/// BigQuery's data size of a column's value, as SQL: 0 for NULL.
fn column_bytes(column: &str, bq_type: &str) -> String {
    let fixed = match bq_type {
        "BOOL" | "BOOLEAN" => Some(1),
        "NUMERIC" => Some(16),
        "BIGNUMERIC" => Some(32),
        "STRING" | "BYTES" | "JSON" => None,
        _ => Some(8),
    };
    match (fixed, bq_type) {
        (Some(n), _) => format!("IF({column} IS NULL, 0, {n})"),
        (None, "JSON") => format!("IFNULL(2 + BYTE_LENGTH(TO_JSON_STRING({column})), 0)"),
        (None, _) => format!("IFNULL(2 + BYTE_LENGTH({column}), 0)"),
    }
}

/// Compares every row of the mirror with the rows the workload left; panics on a difference.
/// Returns the mirror's row count.
async fn verify(bigquery: &RestClient, mirror: &BqTableName, workload: &Workload) -> u64 {
    let sql = format!(
        "SELECT `id`, `name`, `qty`, UNIX_MICROS(`at`) FROM {}",
        mirror.quoted(bigquery.project())
    );
    let rows = bigquery.query(&sql).await.expect("reading the mirror").rows;
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let cell = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let id: u64 = cell(0).parse().expect("an id");
        let previous = found.insert(id, (cell(1), cell(2), cell(3)));
        assert!(previous.is_none(), "the mirror holds id {id} twice");
    }
    let mut differences = Vec::new();
    let mut expected = 0;
    for (id, row) in workload.expected() {
        expected += 1;
        let want = (row.name.clone(), row.qty.to_string(), row.at_us.to_string());
        match found.remove(&id) {
            Some(got) if got == want => {}
            got => differences.push(format!("id {id}: mirror {got:?}, source {want:?}")),
        }
    }
    differences.extend(
        found
            .keys()
            .map(|id| format!("id {id}: in the mirror, deleted")),
    );
    assert!(
        differences.is_empty(),
        "the mirror differs from the source in {} of {expected} rows, e.g. {:?}",
        differences.len(),
        &differences[..differences.len().min(5)]
    );
    rows.len() as u64
}

/// A value of the writer's `/metrics`, e.g. `bytes_written_total{table="bench.items"}`.
async fn writer_metric(writer: &StandaloneWriter, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", writer.url))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let prefix = format!("pg2bq_writer_{series} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_medians() {
        assert_eq!(history_label(100_000), "100k");
        assert_eq!(history_label(2_000_000), "2m");
        assert_eq!(history_label(1234), "1234");
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
    }

    #[test]
    fn column_sizes_follow_bigquery_data_size() {
        assert_eq!(column_bytes("`id`", "INTEGER"), "IF(`id` IS NULL, 0, 8)");
        assert_eq!(
            column_bytes("`n`", "STRING"),
            "IFNULL(2 + BYTE_LENGTH(`n`), 0)"
        );
        assert_eq!(column_bytes("`b`", "BOOLEAN"), "IF(`b` IS NULL, 0, 1)");
    }
}
