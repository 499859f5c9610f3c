//! Copying a table again leaves BigQuery equal to the source, rows deleted since included: on
//! demand (`pg2bq backfill`), after the slot was lost, and for WAL written before the catalogue
//! changed (a type dropped, a key changed) while capture was down. Needs the local stack.

use pg2bq_e2e::cli::{describe, pg2bq};
use pg2bq_e2e::pipeline::{Options, TestPipeline, row_counts};
use std::time::{Duration, Instant};

/// Fast publication checks, so the tests need not wait for the default interval.
fn options() -> Options {
    Options {
        capture_env: vec![("PG2BQ_PUBLICATION_REFRESH_SECS".into(), "1".into())],
        ..Options::default()
    }
}

/// Rows of `table` in BigQuery whose `v` is `value`.
async fn count_where(pipeline: &TestPipeline, table: &str, value: &str) -> String {
    let sql = format!(
        "SELECT COUNT(*) FROM `{}.e2e_{}_{table}` WHERE v = '{value}'",
        pipeline.stack.project, pipeline.name
    );
    let rows = pipeline.stack.bigquery().query(&sql).await.expect("query");
    rows.rows[0][0].clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_on_demand_removes_rows_the_source_no_longer_has() {
    let schema = "CREATE SCHEMA rs;
        CREATE TABLE rs.t (id int PRIMARY KEY, v text);
        INSERT INTO rs.t SELECT g, 'v' || g FROM generate_series(1, 50) g;";
    let mut pipeline = TestPipeline::start_with("resyncod", &["rs"], schema, options()).await;
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;

    // Rows BigQuery has and the source does not: as if deletes had been lost.
    let bigquery = pipeline.stack.bigquery();
    let mirror = format!("`{}.e2e_resyncod_rs.t`", pipeline.stack.project);
    bigquery
        .query(&format!(
            "INSERT INTO {mirror} (id, v) VALUES (1001, 'rogue'), (1002, 'rogue'), (1003, 'rogue')"
        ))
        .await
        .expect("rows behind the pipeline's back");
    assert_eq!(count_where(&pipeline, "rs.t", "rogue").await, "3");

    let output = pg2bq(&pipeline, &["backfill", "rs.t"], &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
    assert_eq!(row_counts(&reports), vec![("rs.t".to_owned(), 50)]);
    assert_eq!(count_where(&pipeline, "rs.t", "rogue").await, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_lost_slot_the_copy_again_removes_rows_deleted_meanwhile() {
    let schema = "CREATE SCHEMA rl;
        CREATE TABLE rl.t (id int PRIMARY KEY, v text);
        INSERT INTO rl.t SELECT g, 'v' || g FROM generate_series(1, 60) g;";
    let mut pipeline = TestPipeline::start_with("resyncslot", &["rl"], schema, options()).await;
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;

    // Capture stops, the slot is lost, and the source changes with nothing reading the WAL.
    pipeline.stop_capture();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dropped = pipeline
            .sql
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE slot_name = 'e2e_resyncslot'",
                &[],
            )
            .await;
        match dropped {
            Ok(_) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot drop the slot: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    pipeline
        .sql
        .batch_execute(
            "DELETE FROM rl.t WHERE id % 4 = 0;
             UPDATE rl.t SET v = 'changed' WHERE id % 5 = 0;
             INSERT INTO rl.t VALUES (100, 'new');",
        )
        .await
        .expect("changes nobody captured");

    // Capture stops loudly with the way to start over; the operator follows it.
    pipeline.launch_capture();
    let exited = pipeline.capture().wait_exit(Duration::from_secs(60));
    assert_eq!(exited, Some(false), "capture stops with an error");
    let log = pipeline.capture().log();
    let fix = "DELETE FROM pg2bq.slots WHERE slot_name = 'e2e_resyncslot';";
    assert!(
        log.contains("no longer exists") && log.contains(fix),
        "the error names the fix:\n{log}"
    );
    pipeline.sql.batch_execute(fix).await.expect("the fix");
    pipeline.start_capture().await;
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(120)).await;
    assert_eq!(row_counts(&reports), vec![("rl.t".to_owned(), 46)]);
    let log = pipeline.capture().log();
    assert_eq!(
        log.matches("created logical replication slot").count(),
        2,
        "capture made a new slot:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_written_before_a_type_was_dropped_or_a_key_changed_still_decodes() {
    let schema = "CREATE SCHEMA rd;
        CREATE TYPE rd.mood AS ENUM ('sad', 'ok', 'happy');
        CREATE TABLE rd.feelings (id int PRIMARY KEY, how rd.mood, v text);
        CREATE TABLE rd.rekeyed (id int PRIMARY KEY, code text NOT NULL, v text);
        INSERT INTO rd.feelings SELECT g, 'ok', 'v' || g FROM generate_series(1, 20) g;
        INSERT INTO rd.rekeyed SELECT g, 'c' || g, 'v' || g FROM generate_series(1, 20) g;";
    let mut pipeline = TestPipeline::start_with("resyncddl", &["rd"], schema, options()).await;
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;

    // While capture is down: changes, then the catalogue moves on before they are decoded.
    pipeline.stop_capture();
    pipeline
        .sql
        .batch_execute(
            "UPDATE rd.feelings SET how = 'happy' WHERE id <= 5;
             INSERT INTO rd.feelings VALUES (21, 'sad', 'late');
             UPDATE rd.rekeyed SET v = 'before the key changed' WHERE id <= 3;
             ALTER TABLE rd.feelings DROP COLUMN how;
             DROP TYPE rd.mood;
             ALTER TABLE rd.rekeyed DROP CONSTRAINT rekeyed_pkey, ADD PRIMARY KEY (code);
             UPDATE rd.rekeyed SET v = 'after the key changed' WHERE id > 17;
             INSERT INTO rd.feelings VALUES (22, 'after');",
        )
        .await
        .expect("changes, then DDL");

    pipeline.start_capture().await;
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(120)).await;
    assert_eq!(
        row_counts(&reports),
        vec![
            ("rd.feelings".to_owned(), 22),
            ("rd.rekeyed".to_owned(), 20)
        ]
    );
    assert!(
        pipeline.capture().is_running(),
        "capture kept running:\n{}",
        pipeline.capture().log_tail(40)
    );
    let log = pipeline.capture().log();
    assert!(!log.contains("panicked"), "capture did not panic:\n{log}");
}
