//! The whole pipeline on the local stack: PostgreSQL → capture → Pub/Sub emulator (push) →
//! writer → bqemulator.
//!
//! "Visible" means returned by a BigQuery query of the table's change table (`<table>__changes`),
//! where the writer's Storage Write API appends land (the default stream makes a row queryable as
//! soon as its append is acknowledged). The mirror table follows at the next staged MERGE, which
//! the writer runs every 500 ms here. A row's freshness is the time from its transaction's
//! commit (taken just before the one-statement transaction is sent, so a few milliseconds
//! early) to the start of the first query that returns it; queries run every 100 ms, so a
//! figure is up to 100 ms late.
//!
//! The same runs are repeated with the writer's null append sink (`PG2BQ_APPEND_SINK=null`): the
//! pipeline without bqemulator, whose appends are the bottleneck locally. There freshness is
//! the writer's own figure: from the commit of a batch's oldest change to the end of its push
//! request (logged per batch), so an upper bound of its rows' freshness.

use super::report::Summary;
use crate::pipeline::{Options, TestPipeline};
use pg2bq_core::pg_connect::connect_sql;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const SCHEMA: &str = "CREATE SCHEMA bench;
CREATE TABLE bench.items (id bigint PRIMARY KEY, name text, qty integer, at timestamptz);";

/// Ids of the freshness workload start here, those of the throughput burst at twice this.
const FRESHNESS_BASE: i64 = 1_000_000;
const BURST_BASE: i64 = 2_000_000;
const POLL: Duration = Duration::from_millis(100);

/// Freshness at a steady `rate` rows/s for `seconds`, then the throughput of a `burst`, into
/// bqemulator and into the writer's null sink.
pub async fn end_to_end(summary: &mut Summary, rate: u64, seconds: u64, burst: u64) {
    into_bigquery(summary, rate, seconds, burst).await;
    without_bigquery(summary, rate, seconds, burst).await;
}

async fn into_bigquery(summary: &mut Summary, rate: u64, seconds: u64, burst: u64) {
    let pipeline = TestPipeline::start("bench_e2e", &["bench"], SCHEMA).await;
    let table = format!(
        "`{}.e2e_{}_bench.items__changes`",
        pipeline.stack.project, pipeline.name
    );
    // The first batch creates the tables.
    insert(&pipeline.sql, 1, 1).await;
    wait_for_count(&pipeline, &table, 0, 1, Duration::from_secs(60)).await;

    let logged = writer_batches(&pipeline.writer_log()).len();
    let (p50, p99, max, rows) = freshness(&pipeline, &table, rate, seconds).await;
    let appended = percentiles(writer_batches(&pipeline.writer_log())[logged..].to_vec());
    summary.set("freshness_p50_ms", p50);
    summary.set("freshness_p99_ms", p99);
    summary.set("freshness_max_ms", max);
    summary.set("freshness_writer_ack_p99_ms", appended.1);
    summary.note(
        "freshness_p99_ms",
        format!(
            "{rows} rows at {rate} rows/s for {seconds} s ({} rows per transaction every 50 ms); commit to \
             the first query of the change table returning the row (queries every 100 ms); \
             freshness_writer_ack_p99_ms: commit of each batch's oldest change to the writer's \
             answer after bqemulator acknowledged the append",
            rate / 20
        ),
    );

    let started = Instant::now();
    let committed = insert_burst(&pipeline.sql, burst).await;
    let done = wait_for_count(
        &pipeline,
        &table,
        BURST_BASE,
        burst,
        Duration::from_secs(900),
    )
    .await;
    let seconds = done.duration_since(started).as_secs_f64();
    summary.set("e2e_rows_per_s", burst as f64 / seconds);
    let append_ms = writer_append_ms(&pipeline.writer_log());
    pipeline.dispose(&["bench"]).await;
    summary.note(
        "e2e_rows_per_s",
        format!(
            "{burst} rows inserted in transactions of 10,000 (committed within {committed:.1} s); from the \
             first insert until all are visible in the change table: {seconds:.1} s; bqemulator took \
             {append_ms:.0} ms per append of 1,000 rows on average"
        ),
    );
}

async fn without_bigquery(summary: &mut Summary, rate: u64, seconds: u64, burst: u64) {
    let options = Options {
        writer_env: vec![("PG2BQ_APPEND_SINK", "null")],
        ..Options::default()
    };
    let pipeline = TestPipeline::start_with("bench_e2e_null", &["bench"], SCHEMA, options).await;
    let rows_metric = "rows_written_total{table=\"bench.items\"}";
    insert(&pipeline.sql, 1, 1).await;
    wait_for_writer_rows(&pipeline, rows_metric, 1.0).await;

    let logged = writer_batches(&pipeline.writer_log()).len();
    let (sent, rows) = steady_workload(&pipeline, rate, seconds).await;
    sent.await.expect("workload");
    wait_for_writer_rows(&pipeline, rows_metric, 1.0 + rows as f64).await;
    let (p50, p99, _) = percentiles(writer_batches(&pipeline.writer_log())[logged..].to_vec());
    summary.set("freshness_null_sink_p50_ms", p50);
    summary.set("freshness_null_sink_p99_ms", p99);

    let started = Instant::now();
    insert_burst(&pipeline.sql, burst).await;
    let done = wait_for_writer_rows(&pipeline, rows_metric, 1.0 + (rows + burst) as f64).await;
    let elapsed = done.duration_since(started).as_secs_f64();
    pipeline.dispose(&["bench"]).await;
    summary.set("e2e_null_sink_rows_per_s", burst as f64 / elapsed);
    summary.note(
        "e2e_null_sink_rows_per_s",
        format!(
            "as e2e_rows_per_s, with the writer's null append sink (no bqemulator): until the writer \
             answered every push ({elapsed:.1} s); freshness_null_sink_*: per batch, commit of its \
             oldest change to the writer's answer"
        ),
    );
}

async fn insert_burst(sql: &tokio_postgres::Client, burst: u64) -> f64 {
    let started = Instant::now();
    for first in (0..burst).step_by(10_000) {
        let last = (first + 10_000).min(burst);
        insert(sql, BURST_BASE + first as i64 + 1, BURST_BASE + last as i64).await;
    }
    started.elapsed().as_secs_f64()
}

async fn wait_for_writer_rows(pipeline: &TestPipeline, series: &str, rows: f64) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if pipeline.writer_metric(series).await.unwrap_or(0.0) >= rows {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "the writer did not write {rows} rows"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `freshness_ms` of every batch the writer logged, in order.
fn writer_batches(log: &str) -> Vec<f64> {
    logged_values(log, "freshness_ms=")
}

/// Mean `append_ms` of the batches the writer logged.
fn writer_append_ms(log: &str) -> f64 {
    let values = logged_values(log, "append_ms=");
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn logged_values(log: &str, key: &str) -> Vec<f64> {
    log.lines()
        .filter(|line| line.contains("wrote batch"))
        .filter_map(|line| {
            let rest = &line[line.find(key)? + key.len()..];
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect()
}

/// p50, p99 and max.
fn percentiles(mut values: Vec<f64>) -> (f64, f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    let pick = |q: f64| values[((values.len() as f64 - 1.0) * q).round() as usize];
    (pick(0.5), pick(0.99), pick(1.0))
}

async fn insert(sql: &tokio_postgres::Client, first: i64, last: i64) {
    sql.batch_execute(&format!(
        "INSERT INTO bench.items SELECT g, 'row ' || md5(g::text), g % 1000, now() \
         FROM generate_series({first}, {last}) g"
    ))
    .await
    .expect("insert");
}

/// Polls until `expected` rows with ids above `base` are visible; returns when.
async fn wait_for_count(
    pipeline: &TestPipeline,
    table: &str,
    base: i64,
    expected: u64,
    timeout: Duration,
) -> Instant {
    let bigquery = pipeline.stack.bigquery();
    let sql = format!("SELECT count(*) FROM {table} WHERE id > {base}");
    let deadline = Instant::now() + timeout;
    loop {
        let asked = Instant::now();
        let count: u64 = bigquery
            .query(&sql)
            .await
            .ok()
            .and_then(|r| r.rows.first()?.first()?.as_deref()?.parse().ok())
            .unwrap_or(0);
        if count >= expected {
            return asked;
        }
        assert!(
            Instant::now() < deadline,
            "only {count} of {expected} rows reached BigQuery"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Runs the steady workload and measures each row's freshness; returns p50, p99 and max in ms
/// and the row count.
async fn freshness(
    pipeline: &TestPipeline,
    table: &str,
    rate: u64,
    seconds: u64,
) -> (f64, f64, f64, u64) {
    let per_tick = (rate / 20).max(1) as i64;
    let (writer, rows) = steady_workload(pipeline, rate, seconds).await;

    let bigquery = pipeline.stack.bigquery();
    let mut seen: HashMap<i64, Instant> = HashMap::new();
    let mut contiguous = FRESHNESS_BASE; // every id up to this one was seen
    let deadline = Instant::now() + Duration::from_secs(seconds + 300);
    while (seen.len() as u64) < rows {
        assert!(
            Instant::now() < deadline,
            "only {} of {rows} rows reached BigQuery",
            seen.len()
        );
        let asked = Instant::now();
        let sql = format!(
            "SELECT id FROM {table} WHERE id > {contiguous} AND id <= {}",
            FRESHNESS_BASE + rows as i64
        );
        if let Ok(answer) = bigquery.query(&sql).await {
            for id in answer
                .rows
                .iter()
                .filter_map(|r| r.first()?.as_deref()?.parse().ok())
            {
                seen.entry(id).or_insert(asked);
            }
        }
        while seen.contains_key(&(contiguous + 1)) {
            contiguous += 1;
        }
        tokio::time::sleep_until((asked + POLL).into()).await;
    }
    let sent = writer.await.expect("workload");
    let mut latencies: Vec<f64> = Vec::with_capacity(rows as usize);
    for (first, at) in sent {
        for id in first..first + per_tick {
            let visible = seen[&id];
            latencies.push(visible.saturating_duration_since(at).as_secs_f64() * 1000.0);
        }
    }
    let (p50, p99, max) = percentiles(latencies);
    (p50, p99, max, rows)
}

/// Starts the steady workload: every 50 ms one transaction of `rate / 20` rows, for `seconds`.
/// Returns the task (its result: each transaction's first id and when it was sent) and the row
/// count.
async fn steady_workload(
    pipeline: &TestPipeline,
    rate: u64,
    seconds: u64,
) -> (tokio::task::JoinHandle<Vec<(i64, Instant)>>, u64) {
    let per_tick = (rate / 20).max(1) as i64;
    let ticks = seconds * 20;
    let source = pipeline.stack.source(&format!("e2e_{}", pipeline.name));
    let task = tokio::spawn(async move {
        let sql = connect_sql(&source, "pg2bq-bench-workload")
            .await
            .expect("workload connection");
        let mut sent = Vec::with_capacity(ticks as usize);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for i in 0..ticks as i64 {
            tick.tick().await;
            let first = FRESHNESS_BASE + i * per_tick + 1;
            sent.push((first, Instant::now()));
            insert(&sql, first, first + per_tick - 1).await;
        }
        sent
    });
    (task, per_tick as u64 * ticks)
}
