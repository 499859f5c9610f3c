//! Backfill of a table next to `COPY ... TO STDOUT` of the same table.
//!
//! Two backfill times are taken: from capture's start (process start, connections, slot checks,
//! then the backfill), and the backfill round itself, from the table's planning to the last
//! range acknowledged (both recorded by capture in its state tables, on the server's clock). The
//! round is what grows with the table; the start-up is a constant of about half a second.

use super::report::Summary;
use crate::pipeline::{Options, TestPipeline};
use futures::StreamExt;
use std::time::{Duration, Instant};

/// The table the backfill is measured on, `speed.t`, with `rows` rows.
pub fn speed_table_sql(rows: u64) -> String {
    format!(
        "CREATE SCHEMA speed; CREATE TABLE speed.t (id bigint PRIMARY KEY, v text, n integer, at timestamptz);
         INSERT INTO speed.t SELECT g, md5(g::text), g % 1000, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
           FROM generate_series(1, {rows}) g;
         ANALYZE speed.t;"
    )
}

/// Backfills a table of `rows` rows, publishing to the emulator and to the null publisher, and
/// times COPY of the same table before and after.
pub async fn backfill_vs_copy(summary: &mut Summary, rows: u64) {
    let schema = speed_table_sql(rows);
    let options = Options {
        writer: false,
        capture_env: vec![("PG2BQ_BACKFILL".to_owned(), "none".to_owned())],
        wait_for_backfill: false,
        ..Options::default()
    };
    let mut pipeline =
        TestPipeline::start_with("bench_backfill", &["speed"], &schema, options).await;
    pipeline.stop_capture();
    // Hint bits and the visibility map set, so that no reader pays for the first read.
    pipeline
        .sql
        .batch_execute("VACUUM speed.t")
        .await
        .expect("vacuum");
    let copy_before = copy_seconds(&pipeline).await;
    let (from_start, round) = timed_backfill(&mut pipeline, rows).await;
    pipeline.capture_env_set("PG2BQ_PUBLISHER", "null");
    let (null_from_start, null_round) = timed_backfill(&mut pipeline, rows).await;
    let copy_after = copy_seconds(&pipeline).await;
    pipeline.dispose(&[]).await;
    let copy = (copy_before + copy_after) / 2.0;

    let rate = |seconds: f64| rows as f64 / seconds;
    summary.set("copy_rows_per_s", rate(copy));
    summary.set("backfill_rows_per_s", rate(round));
    summary.set("backfill_vs_copy", copy / round);
    summary.set("backfill_from_capture_start_rows_per_s", rate(from_start));
    summary.set("backfill_from_capture_start_vs_copy", copy / from_start);
    summary.set("backfill_null_publisher_rows_per_s", rate(null_round));
    summary.set("backfill_null_publisher_vs_copy", copy / null_round);
    summary.condition("backfill_rows", rows.into());
    summary.note(
        "backfill_rows_per_s",
        format!(
            "{rows} rows (bigint, text, integer, timestamptz), published to the emulator; the \
             backfill round from planning to the last range acknowledged (from capture's start: \
             {:.2} s; with the null publisher {:.2} s / {null_from_start:.2} s)",
            from_start, null_round
        ),
    );
    summary.note(
        "copy_rows_per_s",
        format!("COPY speed.t TO STDOUT read by a client, mean of {copy_before:.2} s before and {copy_after:.2} s after the backfills"),
    );
}

/// Seconds to read `COPY speed.t TO STDOUT` in full, as one client.
pub async fn copy_seconds(pipeline: &TestPipeline) -> f64 {
    let started = Instant::now();
    let stream = pipeline
        .sql
        .copy_out("COPY speed.t TO STDOUT")
        .await
        .expect("copy");
    futures::pin_mut!(stream);
    let mut bytes = 0usize;
    while let Some(chunk) = stream.next().await {
        bytes += chunk.expect("chunk").len();
    }
    assert!(bytes > 0);
    started.elapsed().as_secs_f64()
}

/// Schedules the table again, starts capture with `PG2BQ_BACKFILL=all` and waits for the
/// backfill; returns the seconds from capture's start and of the backfill round, then stops capture.
async fn timed_backfill(pipeline: &mut TestPipeline, rows: u64) -> (f64, f64) {
    let state = pipeline.state();
    state
        .reset_all_backfills(&pipeline.sql)
        .await
        .expect("reset the backfill");
    pipeline.capture_env_set("PG2BQ_BACKFILL", "all");
    let started = Instant::now();
    pipeline.start_capture().await;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let progress = state
            .progress(&pipeline.sql, None)
            .await
            .expect("backfill progress");
        let planned: i64 = progress.iter().map(|p| p.ranges).sum();
        let pending = progress.iter().any(|p| !p.finished);
        if planned > 0 && !pending {
            let copied: i64 = progress.iter().map(|p| p.copied_rows).sum();
            let from_start = started.elapsed().as_secs_f64();
            let round = progress.iter().map(|p| p.seconds).fold(0.0, f64::max);
            assert_eq!(copied as u64, rows, "every row copied once");
            pipeline.stop_capture();
            eprintln!("backfill: {from_start:.2} s from capture start, round {round:.2} s");
            return (from_start, round);
        }
        assert!(Instant::now() < deadline, "the backfill did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
