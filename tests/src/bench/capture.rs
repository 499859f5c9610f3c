//! Capture next to `pg_recvlogical` on the same WAL, and capture's memory in a huge transaction.
//!
//! The workload's WAL is written before anything reads it, from slots created before it: the
//! figures are the time to read and deliver that WAL, not the time to write it. Each consumer is
//! timed from its process start to the end of the workload:
//! - `pg_recvlogical` (pgoutput, to /dev/null) until `--endpos`, the WAL position after the last
//!   commit;
//! - capture until its confirmed position passes the last transaction (every change acknowledged
//!   by Pub/Sub, or by the null publisher).

use super::probe::{
    capture_metric, pg_bindir, process_cpu_seconds, pubsub_emulator_pid, wait_for_metric,
};
use super::report::Summary;
use crate::pipeline::{Options, TestPipeline};
use crate::processes::free_port;
use std::time::{Duration, Instant};

const SCHEMA: &str = "CREATE SCHEMA bench;
CREATE TABLE bench.items (id bigint PRIMARY KEY, name text, amount numeric(12, 2), qty integer,
    price double precision, active boolean, created date, updated_at timestamptz);";

/// Rows per workload transaction.
const TRANSACTION_ROWS: u64 = 10_000;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `changes` row changes (half inserts, then updates of those rows), read by `pg_recvlogical`,
/// capture publishing to the Pub/Sub emulator, and capture with the null publisher, each
/// `repeat` times in turn (from slots of their own); the best time of each counts.
pub async fn capture_vs_recvlogical(
    summary: &mut Summary,
    changes: u64,
    repeat: usize,
    extra_env: &[(String, String)],
) {
    let mut capture_env = env(&[("PG2BQ_BACKFILL", "none")]);
    capture_env.extend(extra_env.iter().cloned());
    let options = Options {
        writer: false,
        capture_env,
        ..Options::default()
    };
    // Capture creates its state and publication, then stops before the workload.
    let mut pipeline = TestPipeline::start_with("bench_capture", &["bench"], SCHEMA, options).await;
    pipeline.stop_capture();
    let database = format!("e2e_{}", pipeline.name);
    let kinds = ["recv", "pubsub", "null"];
    for round in 0..repeat {
        for kind in kinds {
            pipeline
                .sql
                .execute(
                    "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&format!("{database}_{kind}_{round}")],
                )
                .await
                .expect("a slot created before the workload");
        }
    }

    let started = Instant::now();
    let (before_last_commit, end) = workload(&pipeline, changes).await;
    let wal_bytes = end - first_lsn(&pipeline, &format!("{database}_recv_0")).await;
    eprintln!(
        "capture workload: {changes} changes, {:.0} MB of WAL, written in {:.1} s",
        wal_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    // pg_recvlogical stops only once the server reports a position at or past --endpos: some
    // WAL after the workload (a small message every 50 ms, during every run alike) makes that
    // prompt instead of waiting for unrelated activity.
    let source = pipeline.stack.source(&database);
    let ticker = tokio::spawn(async move {
        let sql = pg2bq_core::pg_connect::connect_sql(&source, "pg2bq-bench-ticker")
            .await
            .expect("ticker connection");
        loop {
            let _ = sql
                .execute(
                    "SELECT pg_logical_emit_message(false, 'pg2bq.bench', 'tick')",
                    &[],
                )
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // Per reader: the best (seconds, capture CPU seconds, emulator CPU seconds).
    let mut best = [(f64::MAX, f64::NAN, f64::NAN); 3];
    for round in 0..repeat {
        for (i, kind) in kinds.iter().enumerate() {
            let slot = format!("{database}_{kind}_{round}");
            let run = if *kind == "recv" {
                (
                    recvlogical(&pipeline, &slot, &database, end),
                    f64::NAN,
                    f64::NAN,
                )
            } else {
                pipeline.capture_env_set("PG2BQ_SLOT", &slot);
                let publisher = if *kind == "null" { "null" } else { "pubsub" };
                pipeline.capture_env_set("PG2BQ_PUBLISHER", publisher);
                timed_capture(
                    &mut pipeline,
                    &format!("capture-{kind}-{round}"),
                    before_last_commit,
                )
                .await
            };
            eprintln!("{kind} {round}: {:.2} s", run.0);
            if run.0 < best[i].0 {
                best[i] = run;
            }
        }
    }
    let [
        (recv_seconds, ..),
        (capture_seconds, capture_cpu, emulator_cpu),
        (null_seconds, null_cpu, _),
    ] = best;
    ticker.abort();
    pipeline.dispose(&[]).await;
    summary.set("capture_cpu_s", capture_cpu);
    summary.set("capture_null_publisher_cpu_s", null_cpu);
    summary.set("pubsub_emulator_cpu_s", emulator_cpu);

    let rate = |seconds: f64| changes as f64 / seconds;
    summary.set("pg_recvlogical_rows_per_s", rate(recv_seconds));
    summary.set("capture_rows_per_s", rate(capture_seconds));
    summary.set("capture_null_publisher_rows_per_s", rate(null_seconds));
    summary.set("capture_vs_pg_recvlogical", recv_seconds / capture_seconds);
    summary.set(
        "capture_null_publisher_vs_pg_recvlogical",
        recv_seconds / null_seconds,
    );
    summary.condition("capture_changes", changes.into());
    summary.condition("capture_wal_mb", (wal_bytes as f64 / 1e6).round().into());
    summary.note(
        "capture_rows_per_s",
        format!(
            "{changes} row changes (inserts, then updates, {TRANSACTION_ROWS} per transaction) of an \
             8-column table, read from slots created before the workload; from process start until \
             the confirmed position passes the last commit (every change acknowledged); best of \
             {repeat} runs of each reader, in turn"
        ),
    );
}

/// Writes the workload; returns a WAL position inside its last transaction (before its commit)
/// and the WAL position after it.
async fn workload(pipeline: &TestPipeline, changes: u64) -> (u64, u64) {
    let inserts = changes / 2;
    let mut statements = Vec::new();
    for first in (1..=inserts).step_by(TRANSACTION_ROWS as usize) {
        let last = (first + TRANSACTION_ROWS - 1).min(inserts);
        statements.push(format!(
            "INSERT INTO bench.items SELECT g, 'item ' || md5(g::text), (g % 100000) / 100.0, g % 1000, \
             g * 0.25, g % 2 = 0, date '2024-01-01' + (g % 365)::int, now() \
             FROM generate_series({first}, {last}) g"
        ));
    }
    let updates = changes - inserts;
    for first in (1..=updates).step_by(TRANSACTION_ROWS as usize) {
        let last = (first + TRANSACTION_ROWS - 1).min(updates);
        statements.push(format!(
            "UPDATE bench.items SET qty = qty + 1, amount = amount + 1, updated_at = now() \
             WHERE id BETWEEN {first} AND {last}"
        ));
    }
    let last = statements.pop().expect("a workload");
    for statement in &statements {
        pipeline
            .sql
            .batch_execute(statement)
            .await
            .expect("workload");
    }
    pipeline
        .sql
        .batch_execute(&format!("BEGIN; {last}"))
        .await
        .expect("workload");
    let inside = lsn_query(pipeline, "SELECT pg_current_wal_insert_lsn()::text").await;
    pipeline.sql.batch_execute("COMMIT").await.expect("commit");
    let end = lsn_query(pipeline, "SELECT pg_current_wal_lsn()::text").await;
    (inside, end)
}

async fn lsn_query(pipeline: &TestPipeline, sql: &str) -> u64 {
    let text: String = pipeline.sql.query_one(sql, &[]).await.expect("lsn").get(0);
    pg2bq_core::lsn::Lsn::parse(&text).expect("an LSN").0
}

async fn first_lsn(pipeline: &TestPipeline, slot: &str) -> u64 {
    let text: String = pipeline
        .sql
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .expect("slot")
        .get(0);
    pg2bq_core::lsn::Lsn::parse(&text).expect("an LSN").0
}

/// Runs `pg_recvlogical` from `slot` to `end`; returns its wall time in seconds.
fn recvlogical(pipeline: &TestPipeline, slot: &str, database: &str, end: u64) -> f64 {
    let binary = pg_bindir().join("pg_recvlogical");
    let stack = &pipeline.stack;
    let started = Instant::now();
    let status = std::process::Command::new(&binary)
        .args([
            "--host",
            &stack.pg_host,
            "--port",
            &stack.pg_port.to_string(),
        ])
        .args(["--username", &stack.pg_user, "--dbname", database])
        .args([
            "--slot",
            slot,
            "--start",
            "--no-loop",
            "--file",
            "/dev/null",
        ])
        .arg(format!("--endpos={}", pg2bq_core::lsn::Lsn(end)))
        .args(["--option", "proto_version=1"])
        .arg("--option")
        .arg(format!("publication_names={database}"))
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    let seconds = started.elapsed().as_secs_f64();
    assert!(status.success(), "pg_recvlogical failed: {status}");
    seconds
}

/// Starts capture and times it until its confirmed position passes `target`; prints the CPU
/// time capture and the Pub/Sub emulator used meanwhile.
async fn timed_capture(pipeline: &mut TestPipeline, name: &str, target: u64) -> (f64, f64, f64) {
    let port = free_port();
    let emulator = pubsub_emulator_pid();
    let emulator_cpu = emulator.and_then(process_cpu_seconds);
    let started = Instant::now();
    let mut capture = pipeline.spawn_capture(name, port);
    let done = wait_for_metric(
        port,
        "confirmed_lsn",
        target as f64 + 1.0,
        Duration::from_secs(600),
    )
    .await;
    let seconds = done.map(|at| (at - started).as_secs_f64());
    let published = capture_metric(port, "changes_published_total").await;
    let capture_cpu = capture.pid().and_then(process_cpu_seconds);
    let emulator_used = emulator
        .and_then(process_cpu_seconds)
        .zip(emulator_cpu)
        .map(|(after, before)| after - before);
    capture.terminate();
    let seconds =
        seconds.unwrap_or_else(|| panic!("{name} did not finish\n{}", capture.log_tail(30)));
    assert!(published.is_some(), "{name} reported no figures");
    eprintln!(
        "{name}: {seconds:.2} s; CPU: capture {:.2} s, Pub/Sub emulator {:.2} s",
        capture_cpu.unwrap_or(f64::NAN),
        emulator_used.unwrap_or(f64::NAN)
    );
    (
        seconds,
        capture_cpu.unwrap_or(f64::NAN),
        emulator_used.unwrap_or(f64::NAN),
    )
}

/// Peak RSS of capture while it publishes one transaction of `rows` inserted rows.
pub async fn peak_rss(summary: &mut Summary, rows: u64) {
    let options = Options {
        writer: false,
        ..Options::default()
    };
    let schema = "CREATE SCHEMA big; CREATE TABLE big.rows (id bigint PRIMARY KEY, payload text, at timestamptz);";
    let mut pipeline = TestPipeline::start_with("bench_memory", &["big"], schema, options).await;
    let started = Instant::now();
    pipeline
        .sql
        .batch_execute(&format!(
            "INSERT INTO big.rows SELECT g, md5(g::text) || md5((g + 1)::text), now() \
             FROM generate_series(1, {rows}) g"
        ))
        .await
        .expect("one big transaction");
    let committed = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    while pipeline
        .capture_metric("changes_published_total")
        .await
        .unwrap_or(0.0)
        < rows as f64
    {
        assert!(
            Instant::now() < deadline,
            "capture did not publish the transaction"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = started.elapsed().as_secs_f64();
    let peak = pipeline
        .capture()
        .peak_rss_bytes()
        .expect("capture's VmHWM");
    pipeline.dispose(&[]).await;
    summary.set("capture_peak_rss_mb", peak as f64 / f64::from(1 << 20));
    summary.set("capture_single_transaction_s", total);
    summary.note(
        "capture_peak_rss_mb",
        format!(
            "VmHWM of capture (publishing to the emulator) after one transaction of {rows} inserted \
             rows was published; committed after {committed:.1} s, published after {total:.1} s"
        ),
    );
}
