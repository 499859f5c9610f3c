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

use super::report::Summary;
use crate::pipeline::TestPipeline;
use pg2bq_core::pg_connect::connect_sql;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const SCHEMA: &str = "CREATE SCHEMA bench;
CREATE TABLE bench.items (id bigint PRIMARY KEY, name text, qty integer, at timestamptz);";

/// Ids of the freshness workload start here, those of the throughput burst at twice this.
const FRESHNESS_BASE: i64 = 1_000_000;
const BURST_BASE: i64 = 2_000_000;
const POLL: Duration = Duration::from_millis(100);

/// Freshness at a steady `rate` rows/s for `seconds`, then the throughput of a `burst`.
pub async fn end_to_end(summary: &mut Summary, rate: u64, seconds: u64, burst: u64) {
    let pipeline = TestPipeline::start("bench_e2e", &["bench"], SCHEMA).await;
    let table = format!(
        "`{}.e2e_{}_bench.items__changes`",
        pipeline.stack.project, pipeline.name
    );
    // The first batch creates the tables.
    insert(&pipeline.sql, 1, 1).await;
    wait_for_count(&pipeline, &table, 0, 1, Duration::from_secs(60)).await;

    let (p50, p99, max, rows) = freshness(&pipeline, &table, rate, seconds).await;
    summary.set("freshness_p50_ms", p50);
    summary.set("freshness_p99_ms", p99);
    summary.set("freshness_max_ms", max);
    summary.note(
        "freshness_p99_ms",
        format!(
            "{rows} rows at {rate} rows/s for {seconds} s ({} rows per transaction every 50 ms); commit to \
             the first query of the change table returning the row (queries every 100 ms)",
            rate / 20
        ),
    );

    let started = Instant::now();
    for first in (0..burst).step_by(10_000) {
        let last = (first + 10_000).min(burst);
        insert(
            &pipeline.sql,
            BURST_BASE + first as i64 + 1,
            BURST_BASE + last as i64,
        )
        .await;
    }
    let committed = started.elapsed().as_secs_f64();
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
    summary.note(
        "e2e_rows_per_s",
        format!(
            "{burst} rows inserted in transactions of 10,000 (committed within {committed:.1} s); from the \
             first insert until all are visible in the change table: {seconds:.1} s"
        ),
    );
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
    let ticks = seconds * 20;
    let rows = per_tick as u64 * ticks;
    let source = pipeline.stack.source(&format!("e2e_{}", pipeline.name));
    let writer = tokio::spawn(async move {
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
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    (pick(0.5), pick(0.99), pick(1.0), rows)
}
