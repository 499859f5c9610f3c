//! Partitioned source tables replicated as their leaf partitions (`PG2BQ_PARTITIONS=leaves`):
//! one BigQuery table per leaf, equal to it row by row through a backfill, changes, a row moving
//! between partitions and a partition created while streaming; no table for the partitioned
//! tables themselves. Then the stream's choice cannot be changed on its live publication:
//! capture started with `root` exits with the fix and leaves the publication as it was.
//! (Replication through the root, the default, is covered by schema_changes.rs.) Needs the local
//! stack.

use pg2bq_e2e::pipeline::{Options, TestPipeline};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A table partitioned by year, one year sub-partitioned by id, and an ordinary table.
const SCHEMA: &str = "
CREATE SCHEMA pt;
CREATE TABLE pt.readings (id int NOT NULL, at date NOT NULL, v text, PRIMARY KEY (id, at))
  PARTITION BY RANGE (at);
CREATE TABLE pt.readings_2025 PARTITION OF pt.readings
  FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE pt.readings_2026 PARTITION OF pt.readings
  FOR VALUES FROM ('2026-01-01') TO ('2027-01-01') PARTITION BY RANGE (id);
CREATE TABLE pt.readings_2026_low PARTITION OF pt.readings_2026 FOR VALUES FROM (MINVALUE) TO (100);
CREATE TABLE pt.readings_2026_high PARTITION OF pt.readings_2026 FOR VALUES FROM (100) TO (MAXVALUE);
CREATE TABLE pt.plain (id int PRIMARY KEY, v text);
INSERT INTO pt.readings SELECT g, DATE '2025-01-01' + g * 2, 'r' || g FROM generate_series(1, 300) g;
INSERT INTO pt.plain SELECT g, 'p' || g FROM generate_series(1, 10) g;";

/// Changes while streaming: inserts into each leaf, an update moving rows to another partition,
/// updates in place, deletes, and a partition created with rows.
const CHANGES: &str = "
INSERT INTO pt.readings SELECT g, DATE '2026-03-01', 'new ' || g FROM generate_series(1000, 1010) g;
INSERT INTO pt.readings VALUES (5, DATE '2026-06-01', 'low leaf');
UPDATE pt.readings SET at = DATE '2026-02-02', v = 'moved' WHERE id BETWEEN 10 AND 14;
UPDATE pt.readings SET v = 'updated' WHERE id % 9 = 0;
DELETE FROM pt.readings WHERE id % 13 = 0;
UPDATE pt.plain SET v = 'changed' WHERE id = 3;
CREATE TABLE pt.readings_2027 PARTITION OF pt.readings
  FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
INSERT INTO pt.readings SELECT g, DATE '2027-05-05', 'later ' || g FROM generate_series(2000, 2020) g;";

const LEAVES: [&str; 5] = [
    "pt.plain",
    "pt.readings_2025",
    "pt.readings_2026_high",
    "pt.readings_2026_low",
    "pt.readings_2027",
];

async fn bigquery_tables(pipeline: &TestPipeline) -> BTreeSet<String> {
    let stack = &pipeline.stack;
    let url = format!(
        "{}/bigquery/v2/projects/{}/datasets/e2e_parts_pt/tables?maxResults=1000",
        stack.bq_rest, stack.project
    );
    let list: serde_json::Value = reqwest::get(url)
        .await
        .expect("tables.list")
        .json()
        .await
        .expect("a table list");
    list["tables"]
        .as_array()
        .map(|tables| {
            tables
                .iter()
                .filter_map(|t| t["tableReference"]["tableId"].as_str())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

async fn via_root(pipeline: &TestPipeline) -> bool {
    pipeline
        .sql
        .query_one(
            "SELECT pubviaroot FROM pg_catalog.pg_publication WHERE pubname = 'e2e_parts'",
            &[],
        )
        .await
        .expect("the publication")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_replicated_as_leaves_and_the_choice_is_kept() {
    let options = Options {
        capture_env: vec![
            ("PG2BQ_PARTITIONS".into(), "leaves".into()),
            ("PG2BQ_PUBLICATION_REFRESH_SECS".into(), "1".into()),
        ],
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("parts", &["pt"], SCHEMA, options).await;
    assert!(!via_root(&pipeline).await, "publish_via_partition_root");
    pipeline.sql.batch_execute(CHANGES).await.expect("changes");

    // Every leaf (the new one too) is published and equal to BigQuery, row by row.
    let wanted: BTreeSet<String> = LEAVES.iter().map(|t| t.to_string()).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let reports = loop {
        let reports = pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
        let published: BTreeSet<String> = reports.iter().map(|r| r.table.clone()).collect();
        if published == wanted {
            break reports;
        }
        assert!(
            Instant::now() < deadline,
            "published tables {published:?}, wanted {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let rows = |table: &str| {
        reports
            .iter()
            .find(|r| r.table == table)
            .map(|r| r.source_rows)
            .unwrap_or_default()
    };
    assert_eq!(rows("pt.readings_2027"), 21, "{reports:?}");
    // Four rows moved in (the fifth was deleted after) and one inserted.
    assert_eq!(rows("pt.readings_2026_low"), 5, "{reports:?}");
    let moved: i64 = pipeline
        .sql
        .query_one(
            "SELECT count(*) FROM pt.readings_2026_low WHERE v = 'moved'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(moved, 4, "the rows moved between partitions");
    let in_bigquery = bigquery_tables(&pipeline).await;
    for leaf in [
        "plain",
        "readings_2025",
        "readings_2026_low",
        "readings_2027",
    ] {
        assert!(in_bigquery.contains(leaf), "{leaf} in {in_bigquery:?}");
    }
    for parent in ["readings", "readings_2026"] {
        assert!(
            !in_bigquery.contains(parent),
            "no table for the partitioned table {parent}: {in_bigquery:?}"
        );
    }

    // The choice cannot be changed on the live publication: capture exits with the fix.
    assert!(pipeline.stop_capture(), "capture stops cleanly");
    pipeline.capture_env_set("PG2BQ_PARTITIONS", "root");
    pipeline.launch_capture();
    let deadline = Instant::now() + Duration::from_secs(30);
    while pipeline.capture_running() {
        assert!(
            Instant::now() < deadline,
            "capture should exit: {}",
            pipeline.capture_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = pipeline.capture_log();
    assert!(
        log.contains("PG2BQ_PARTITIONS is 'root'")
            && log.contains("as 'leaves'")
            && log.contains("Fix: set PG2BQ_PARTITIONS=leaves again"),
        "capture's log names the problem and the fix:\n{log}"
    );
    assert!(!via_root(&pipeline).await, "the publication is unchanged");

    // Back to the stream's choice, it goes on.
    pipeline.capture_env_set("PG2BQ_PARTITIONS", "leaves");
    pipeline.start_capture().await;
    pipeline
        .sql
        .batch_execute("INSERT INTO pt.readings VALUES (3000, DATE '2025-09-09', 'after restart')")
        .await
        .expect("insert");
    pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
    pipeline.dispose(&["pt"]).await;
}
