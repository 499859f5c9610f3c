//! Backfill of a 2,000,000-row table next to `COPY ... TO STDOUT` of the same table, measured in
//! the same run (its own test binary, so nothing else runs beside it). It reports the figures and
//! checks every row was copied; the speed targets belong to `make bench`. Needs the local stack.

use pg2bq_e2e::pipeline::{Options, TestPipeline};
use std::time::{Duration, Instant};

const ROWS: i64 = 2_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_million_row_backfill_reports_its_speed_next_to_copy() {
    let schema = pg2bq_e2e::bench::backfill::speed_table_sql(ROWS as u64);
    let options = Options {
        writer: false,
        capture_env: vec![("PG2BQ_BACKFILL".to_owned(), "none".to_owned())],
        wait_for_backfill: false,
        ..Options::default()
    };
    // First the reference: COPY of the same table, before capture runs.
    let mut pipeline = TestPipeline::start_with("speed", &["speed"], &schema, options).await;
    let copy_seconds = pg2bq_e2e::bench::backfill::copy_seconds(&pipeline).await;

    // Then the backfill: schedule the table (capture runs with backfill none) and time it.
    let state = pipeline.state();
    state
        .reset_all_backfills(&pipeline.sql)
        .await
        .expect("reset");
    pipeline.stop_capture();
    let started = Instant::now();
    pipeline.capture_env_set("PG2BQ_BACKFILL", "all");
    pipeline.start_capture().await;
    let deadline = Instant::now() + Duration::from_secs(900);
    let copied = loop {
        let ranges = state.ranges(&pipeline.sql).await.expect("progress");
        let pending = ranges.iter().filter(|r| !r.done).count();
        let rows: i64 = ranges.iter().map(|r| r.rows).sum();
        let planned = ranges.len();
        if planned > 0 && pending == 0 {
            break rows;
        }
        assert!(Instant::now() < deadline, "the backfill did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let backfill_seconds = started.elapsed().as_secs_f64();
    assert_eq!(copied, ROWS, "every row copied once");
    let copy_rate = ROWS as f64 / copy_seconds;
    let backfill_rate = ROWS as f64 / backfill_seconds;
    eprintln!(
        "2,000,000 rows: COPY TO STDOUT {copy_rate:.0} rows/s ({copy_seconds:.1} s); \
         backfill to Pub/Sub {backfill_rate:.0} rows/s ({backfill_seconds:.1} s, from capture start); ratio {:.2}",
        backfill_rate / copy_rate
    );
}
