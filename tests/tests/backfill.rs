//! End-to-end tests of backfill: existing rows reach BigQuery from a consistent snapshot while
//! changes stream, in parallel ranges, resumable after a crash. Needs the local stack.

use pg2bq_e2e::pipeline::{Options, TestPipeline};
use std::time::{Duration, Instant};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const PRELOADED: &str = "
CREATE SCHEMA bf;
CREATE TABLE bf.big (id bigint PRIMARY KEY, v text, n numeric(12, 2), at timestamptz);
CREATE TABLE bf.small (k text PRIMARY KEY, payload jsonb);
INSERT INTO bf.big SELECT g, md5(g::text), g / 7.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
  FROM generate_series(1, 30000) g;
INSERT INTO bf.small SELECT 'k' || g, jsonb_build_object('g', g) FROM generate_series(1, 500) g;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_and_concurrent_changes_end_equal_to_the_source() {
    let options = Options {
        capture_env: env(&[
            ("PG2BQ_BACKFILL_RANGE_BLOCKS", "16"),
            ("PG2BQ_BACKFILL_CONCURRENCY", "2"),
        ]),
        wait_for_backfill: false,
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("backfill", &["bf"], PRELOADED, options).await;
    // Changes to the same tables while the backfill copies them.
    for round in 0..10 {
        pipeline
            .sql
            .batch_execute(&format!(
                "UPDATE bf.big SET v = 'changed {round}' WHERE id % 97 = {round};
                 DELETE FROM bf.big WHERE id % 1001 = {round};
                 INSERT INTO bf.big SELECT g, 'new', 0, now() FROM generate_series(100000 + {round} * 10, 100000 + {round} * 10 + 9) g;
                 UPDATE bf.small SET payload = payload || '{{\"round\": {round}}}' WHERE k = 'k{round}';"
            ))
            .await
            .expect("concurrent changes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(180)).await;
    let rows = pg2bq_e2e::pipeline::row_counts(&reports);
    assert_eq!(rows[1], ("bf.small".to_owned(), 500));
    assert!(rows[0].1 > 29_000, "{rows:?}");
    let ranges = pipeline
        .state()
        .ranges(&pipeline.sql)
        .await
        .expect("ranges")
        .iter()
        .filter(|r| r.done)
        .count();
    assert!(
        ranges > 10,
        "the big table was copied in many ranges ({ranges})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_midway_resumes_without_rereading_finished_ranges() {
    let schema = "
CREATE SCHEMA kb;
CREATE TABLE kb.t (id bigint PRIMARY KEY, v text);
INSERT INTO kb.t SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 60000) g;";
    let options = Options {
        capture_env: env(&[
            ("PG2BQ_BACKFILL_RANGE_BLOCKS", "40"),
            ("PG2BQ_BACKFILL_CONCURRENCY", "1"),
            ("PG2BQ_BATCH_MAX_ROWS", "200"),
        ]),
        wait_for_backfill: false,
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("killbf", &["kb"], schema, options).await;
    let state = pipeline.state();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (done_before, total) = loop {
        let ranges = state.ranges(&pipeline.sql).await.expect("progress");
        let (finished, total) = (ranges.iter().filter(|r| r.done).count(), ranges.len());
        if finished >= 2 {
            break (finished, total);
        }
        assert!(Instant::now() < deadline, "the backfill made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    pipeline.kill_capture();
    assert!(
        done_before < total,
        "killed midway ({done_before} of {total} ranges done)"
    );
    let first_snapshot: Vec<String> = state
        .ranges(&pipeline.sql)
        .await
        .expect("ranges")
        .into_iter()
        .filter(|r| r.done)
        .filter_map(|r| r.snapshot_lsn)
        .collect();

    pipeline
        .sql
        .batch_execute("UPDATE kb.t SET v = 'while down' WHERE id % 500 = 0")
        .await
        .expect("changes");
    pipeline.start_capture().await;
    pipeline.wait_until_mirrored(Duration::from_secs(180)).await;
    let snapshots: Vec<String> = state
        .ranges(&pipeline.sql)
        .await
        .expect("ranges")
        .into_iter()
        .filter_map(|r| r.snapshot_lsn)
        .collect();
    assert_eq!(
        &snapshots[..first_snapshot.len()],
        &first_snapshot[..],
        "finished ranges were not read again"
    );
    assert!(
        snapshots
            .iter()
            .skip(first_snapshot.len())
            .all(|s| s != &first_snapshot[0]),
        "the remaining ranges came from a new snapshot: {snapshots:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_tables_are_backfilled_and_a_table_can_be_backfilled_again_on_demand() {
    let options = Options {
        capture_env: env(&[("PG2BQ_PUBLICATION_REFRESH_SECS", "1")]),
        wait_for_backfill: false,
        ..Options::default()
    };
    let schema = "CREATE SCHEMA od; CREATE TABLE od.first (id int PRIMARY KEY, v text);";
    let mut pipeline = TestPipeline::start_with("ondemand", &["od"], schema, options).await;
    // A table created with rows after capture started: the publication follows, then its backfill.
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO od.first SELECT g, 'v' || g FROM generate_series(1, 100) g;
             CREATE TABLE od.later (id int PRIMARY KEY, v text);
             INSERT INTO od.later SELECT g, 'old ' || g FROM generate_series(1, 300) g;",
        )
        .await
        .expect("rows");
    let deadline = Instant::now() + Duration::from_secs(30);
    let joined = "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'e2e_ondemand'";
    while pipeline
        .sql
        .query_one(joined, &[])
        .await
        .expect("publication")
        .get::<_, i64>(0)
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the new table did not join the publication"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
    assert_eq!(reports.len(), 2, "the new table joined the stream");

    // Damage BigQuery behind the pipeline's back, then backfill the table again.
    let bigquery = pipeline.stack.bigquery();
    let mirror = format!("`{}.e2e_ondemand_od.later`", pipeline.stack.project);
    bigquery
        .query(&format!(
            "UPDATE {mirror} SET v = 'tampered' WHERE id <= 10"
        ))
        .await
        .expect("tamper");
    let status = pipeline
        .stack
        .pg2bq("e2e_ondemand")
        .args(["backfill", "od.later", "--slot", "e2e_ondemand"])
        .status()
        .expect("pg2bq backfill");
    assert!(status.success(), "pg2bq backfill succeeds");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
    assert!(reports.iter().all(|r| r.matches()));
    let tampered = bigquery
        .query(&format!(
            "SELECT COUNT(*) FROM {mirror} WHERE v = 'tampered'"
        ))
        .await
        .expect("query");
    assert_eq!(
        tampered.rows,
        vec![vec![Some("0".to_owned())]],
        "the new backfill repaired the rows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_tables_appear_in_bigquery() {
    let schema = "
CREATE SCHEMA et;
CREATE TABLE et.keyed (id int PRIMARY KEY, v text);
CREATE TABLE et.keyless (v text, n int);
ALTER TABLE et.keyless REPLICA IDENTITY FULL;";
    let mut pipeline = TestPipeline::start("emptytables", &["et"], schema).await;
    // Without rows, only the copy's announcement creates them: the comparison needs both
    // tables to exist in BigQuery, empty.
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    let tables: Vec<(String, Option<usize>)> = reports
        .iter()
        .map(|r| (r.table.clone(), r.bigquery_rows))
        .collect();
    assert_eq!(
        tables,
        [
            ("et.keyed".to_owned(), Some(0)),
            ("et.keyless".to_owned(), Some(0))
        ]
    );
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO et.keyed VALUES (1, 'a'); INSERT INTO et.keyless VALUES ('b', 2)",
        )
        .await
        .expect("rows after");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        [("et.keyed".to_owned(), 1), ("et.keyless".to_owned(), 1)]
    );
}
