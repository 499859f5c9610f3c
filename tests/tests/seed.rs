//! `pg2bq seed`: the sample shop and a steady workload, mirrored end to end. Needs the stack.

use pg2bq_e2e::pipeline::{Options, TestPipeline};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeded_shop_and_a_steady_workload_are_mirrored() {
    let options = Options {
        capture_env: vec![("PG2BQ_PUBLICATION_REFRESH_SECS".to_owned(), "1".to_owned())],
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("seed", &["shop"], "SELECT 1", options).await;
    let seed = |args: &[&str]| {
        pipeline
            .stack
            .pg2bq("e2e_seed")
            .arg("seed")
            .args(args)
            .output()
            .expect("pg2bq seed")
    };
    let output = seed(&["--schema", "--rows"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = seed(&[
        "--live-changes",
        "--workload-secs",
        "2",
        "--workload-rate",
        "20",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("made the live changes") && text.contains("workload:"),
        "{text}"
    );
    let transactions: u64 = text
        .split("workload: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a transaction count");
    assert!(
        transactions >= 20,
        "the workload ran ({transactions} transactions)"
    );
    // The shop's tables were created after capture started: the publication takes them in.
    let deadline = Instant::now() + Duration::from_secs(30);
    let published = "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'e2e_seed'";
    while pipeline
        .sql
        .query_one(published, &[])
        .await
        .expect("publication")
        .get::<_, i64>(0)
        < 4
    {
        assert!(
            Instant::now() < deadline,
            "the shop's tables did not join the publication"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(120)).await;
    let tables: Vec<String> = reports.iter().map(|r| r.table.clone()).collect();
    assert_eq!(
        tables,
        [
            "shop.customers",
            "shop.order_lines",
            "shop.orders",
            "shop.products"
        ]
    );
}
