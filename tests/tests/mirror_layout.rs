//! Mirror table layout (`PG2BQ_BQ_PARTITIONING`, `PG2BQ_BQ_CLUSTERING`): mirrors are made
//! partitioned and clustered as the settings say per table or by default, their rows equal the
//! source's, and a layout naming a column a table lacks stops only that table, with the fix in
//! the writer's log. Needs the local stack.

use pg2bq_e2e::pipeline::{Options, TestPipeline};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn table_resource(pipeline: &TestPipeline, table: &str) -> Value {
    let stack = &pipeline.stack;
    let url = format!(
        "{}/bigquery/v2/projects/{}/datasets/e2e_layout_ly/tables/{table}",
        stack.bq_rest, stack.project
    );
    reqwest::get(url)
        .await
        .expect("tables.get")
        .json()
        .await
        .expect("a table")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_are_partitioned_and_clustered_as_configured() {
    let options = Options {
        writer_env: vec![
            (
                "PG2BQ_BQ_PARTITIONING",
                "ly.events = day(at); ly.bad = day(nosuch); * = ingestion(hour)",
            ),
            ("PG2BQ_BQ_CLUSTERING", "ly.events = kind, at; * = key"),
        ],
        ..Options::default()
    };
    let schema = "CREATE SCHEMA ly;
        CREATE TABLE ly.events (id bigint PRIMARY KEY, kind text, at timestamptz, n int);
        CREATE TABLE ly.plain (a int, b text, PRIMARY KEY (a, b));
        CREATE TABLE ly.bad (id int PRIMARY KEY);
        INSERT INTO ly.events SELECT g, 'k' || (g % 3), '2026-01-01'::timestamptz + g * interval '1 hour', g
          FROM generate_series(1, 50) g;
        INSERT INTO ly.plain SELECT g, 'b' FROM generate_series(1, 5) g;
        INSERT INTO ly.bad VALUES (1);";
    let pipeline = TestPipeline::start_with("layout", &["ly"], schema, options).await;
    pipeline
        .sql
        .batch_execute(
            "UPDATE ly.events SET kind = 'changed' WHERE id % 7 = 0;
             DELETE FROM ly.events WHERE id > 45; INSERT INTO ly.plain VALUES (9, 'late');",
        )
        .await
        .expect("changes");

    // The two tables whose layout fits are equal to the source; the third waits, loudly.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let reports = pipeline.compare().await;
        let ok = |name: &str| reports.iter().any(|r| r.table == name && r.matches());
        if ok("ly.events") && ok("ly.plain") {
            let bad = reports
                .iter()
                .find(|r| r.table == "ly.bad")
                .expect("ly.bad");
            assert!(!bad.matches(), "{bad:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{reports:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let events = table_resource(&pipeline, "events").await;
    assert_eq!(
        events["timePartitioning"],
        json!({"type": "DAY", "field": "at"}),
        "{events}"
    );
    assert_eq!(events["clustering"], json!({"fields": ["kind", "at"]}));
    let plain = table_resource(&pipeline, "plain").await;
    assert_eq!(plain["timePartitioning"]["type"], json!("HOUR"), "{plain}");
    assert!(
        plain["timePartitioning"].get("field").is_none(),
        "ingestion time: {plain}"
    );
    assert_eq!(plain["clustering"], json!({"fields": ["a", "b"]}));
    let log = pipeline.writer_log();
    assert!(
        log.contains("mirror layout: the mirror of ly.bad has no column nosuch"),
        "the writer's log names the problem:\n{log}"
    );
}
