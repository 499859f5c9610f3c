//! Row filters per table (`PG2BQ_ROW_FILTERS`, PostgreSQL 15+): the backfill copies only the
//! matching rows, rows that an UPDATE moves into or out of the filter appear in and disappear
//! from BigQuery, `validate` compares the filtered source rows; a filter reading a column
//! outside the replica identity is refused with the fix; a table whose filter changes is copied
//! again. Needs the local stack (15+).

use pg2bq_e2e::pipeline::{Options, TestPipeline};
use std::time::Duration;

const SCHEMA: &str = "CREATE SCHEMA rf;
    CREATE TABLE rf.orders (id int PRIMARY KEY, region text NOT NULL, total int);
    ALTER TABLE rf.orders REPLICA IDENTITY FULL;
    CREATE TABLE rf.events (id int PRIMARY KEY, kind text);
    CREATE TABLE rf.refused (id int PRIMARY KEY, region text);
    INSERT INTO rf.orders SELECT g, CASE WHEN g % 2 = 0 THEN 'EU' ELSE 'US' END, g * 10
        FROM generate_series(1, 10) g;
    INSERT INTO rf.events SELECT g, 'kind ' || g FROM generate_series(1, 10) g;
    INSERT INTO rf.refused VALUES (1, 'EU'), (2, 'US');";

const FILTERS: &str = "rf.orders=region = 'EU'; rf.events=id > 5; rf.refused=region = 'EU'";

/// `id|...` lines of the mirror of `rf.<table>`, by id.
async fn mirror_rows(pipeline: &TestPipeline, table: &str, columns: &str) -> Vec<String> {
    pipeline
        .bigquery_lines(&format!(
            "SELECT {columns} FROM `{}.e2e_rowfilt_rf.{table}` ORDER BY id",
            pipeline.stack.project
        ))
        .await
}

/// The same lines from the source, through the filter.
async fn source_rows(pipeline: &TestPipeline, sql: &str) -> Vec<String> {
    pipeline
        .sql
        .query(sql, &[])
        .await
        .expect("source rows")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_matching_rows_are_replicated_and_follow_updates_across_the_filter() {
    let options = Options {
        capture_env: vec![("PG2BQ_ROW_FILTERS".into(), FILTERS.into())],
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("rowfilt", &["rf.*"], SCHEMA, options).await;
    let orders_sql = "SELECT id || '|' || region || '|' || total FROM rf.orders \
                      WHERE region = 'EU' ORDER BY id";
    let orders_bq = "CAST(id AS STRING) || '|' || region || '|' || CAST(total AS STRING)";
    // The backfill copied the matching rows only.
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert_eq!(
        mirror_rows(&pipeline, "orders", orders_bq).await,
        ["2|EU|20", "4|EU|40", "6|EU|60", "8|EU|80", "10|EU|100"]
    );
    assert_eq!(
        mirror_rows(&pipeline, "events", "CAST(id AS STRING)").await,
        ["6", "7", "8", "9", "10"]
    );

    pipeline
        .sql
        .batch_execute(
            "INSERT INTO rf.orders VALUES (11, 'US', 110), (12, 'EU', 120);
             UPDATE rf.orders SET region = 'EU', total = 31 WHERE id = 3;  -- moves in
             UPDATE rf.orders SET region = 'US' WHERE id = 4;              -- moves out
             UPDATE rf.orders SET total = 61 WHERE id = 6;                 -- stays in
             UPDATE rf.orders SET total = 51 WHERE id = 5;                 -- stays out
             DELETE FROM rf.orders WHERE id IN (8, 9);
             INSERT INTO rf.events VALUES (1000, 'in'), (0, 'out');
             UPDATE rf.events SET kind = 'changed' WHERE id IN (2, 7);
             DELETE FROM rf.events WHERE id IN (3, 9);",
        )
        .await
        .expect("changes");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    let compared: Vec<(&str, usize)> = reports
        .iter()
        .map(|r| (r.table.as_str(), r.source_rows))
        .collect();
    assert_eq!(
        compared,
        [("rf.events", 5), ("rf.orders", 5)],
        "{reports:?}"
    );
    let expected = source_rows(&pipeline, orders_sql).await;
    assert_eq!(
        expected,
        ["2|EU|20", "3|EU|31", "6|EU|61", "10|EU|100", "12|EU|120"]
    );
    assert_eq!(mirror_rows(&pipeline, "orders", orders_bq).await, expected);
    assert_eq!(
        mirror_rows(&pipeline, "events", "CAST(id AS STRING) || '|' || kind").await,
        source_rows(
            &pipeline,
            "SELECT id || '|' || kind FROM rf.events WHERE id > 5 ORDER BY id"
        )
        .await
    );

    // The filter on a column outside rf.refused's replica identity is refused with the fix,
    // and the application's UPDATE and DELETE keep working.
    let published: i64 = pipeline
        .sql
        .query_one(
            "SELECT count(*) FROM pg_publication_tables \
             WHERE pubname = 'e2e_rowfilt' AND tablename = 'refused'",
            &[],
        )
        .await
        .expect("publication")
        .get(0);
    assert_eq!(published, 0);
    let log = pipeline.capture_log();
    let line = log
        .lines()
        .find(|l| l.contains("table skipped") && l.contains("rf.refused"))
        .unwrap_or_else(|| panic!("no refusal of rf.refused in the log:\n{log}"));
    assert!(
        line.contains("row filter (PG2BQ_ROW_FILTERS) reads region")
            && line.contains("filter only on its replica identity columns (id)")
            && line.contains("ALTER TABLE \"rf\".\"refused\" REPLICA IDENTITY FULL"),
        "{line}"
    );
    pipeline
        .sql
        .batch_execute("UPDATE rf.refused SET region = 'US'; DELETE FROM rf.refused;")
        .await
        .expect("the application's statements succeed");

    // Another filter for a table already streaming: it is copied again, and the rows that no
    // longer match leave BigQuery.
    pipeline.stop_capture();
    pipeline.capture_env_set(
        "PG2BQ_ROW_FILTERS",
        "rf.orders=region = 'US'; rf.events=id > 5",
    );
    pipeline.start_capture().await;
    pipeline
        .sql
        .batch_execute("INSERT INTO rf.orders VALUES (13, 'US', 130), (14, 'EU', 140);")
        .await
        .expect("changes");
    pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
    let expected = source_rows(
        &pipeline,
        "SELECT id || '|' || region || '|' || total FROM rf.orders WHERE region = 'US' ORDER BY id",
    )
    .await;
    assert_eq!(
        expected,
        [
            "1|US|10",
            "4|US|40",
            "5|US|51",
            "7|US|70",
            "11|US|110",
            "13|US|130"
        ]
    );
    assert_eq!(mirror_rows(&pipeline, "orders", orders_bq).await, expected);
    pipeline.dispose(&["rf"]).await;
}
