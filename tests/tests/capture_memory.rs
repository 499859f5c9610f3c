//! Capture's memory stays bounded whatever the transaction size (its own test binary, so that
//! nothing else runs beside it). Needs the local stack (`make test` starts it).

use pg2bq_e2e::pipeline::{Options, TestPipeline};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_row_transaction_keeps_capture_memory_bounded() {
    const ROWS: f64 = 1_000_000.0;
    let options = Options {
        writer: false,
        ..Options::default()
    };
    let schema = "CREATE SCHEMA big; CREATE TABLE big.rows (id bigint PRIMARY KEY, payload text, at timestamptz);";
    let mut pipeline = TestPipeline::start_with("memory", &["big"], schema, options).await;
    let started = Instant::now();
    pipeline
        .sql
        .batch_execute("INSERT INTO big.rows SELECT g, md5(g::text) || md5((g + 1)::text), now() FROM generate_series(1, 1000000) g")
        .await
        .expect("one transaction of a million rows");
    let committed = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let published = pipeline
            .capture_metric("changes_published_total")
            .await
            .unwrap_or(0.0);
        if published >= ROWS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "capture published only {published} of {ROWS} changes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let total = started.elapsed();
    let peak = pipeline
        .capture()
        .peak_rss_bytes()
        .expect("capture's peak RSS");
    let peak_mb = peak as f64 / f64::from(1 << 20);
    eprintln!(
        "1,000,000-row transaction: committed in {:.1} s, all published after {:.1} s; capture peak RSS {peak_mb:.1} MiB",
        committed.as_secs_f64(),
        total.as_secs_f64()
    );
    assert!(peak_mb < 256.0, "capture's peak RSS was {peak_mb:.1} MiB");
}
