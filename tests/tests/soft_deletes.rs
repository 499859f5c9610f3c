//! Soft deletes (`PG2BQ_SOFT_DELETES`): deleted rows stay in the mirror, marked with
//! `_pg2bq_is_deleted` and the deletion's commit time, a row inserted again comes back, a
//! TRUNCATE marks every older row, and `validate` compares the rows that are not deleted. Needs
//! the local stack.

use pg2bq_e2e::pipeline::{Options, TestPipeline};
use std::time::{Duration, Instant};

/// `id|v|deleted` of every row of `table` (the mirror or its live view), by id.
async fn marked_rows(pipeline: &TestPipeline, table: &str) -> Vec<String> {
    let sql = format!(
        "SELECT CAST(id AS STRING), IFNULL(v, 'NULL'), \
         IF(`_pg2bq_is_deleted`, 'deleted', 'live'), \
         IF(`_pg2bq_is_deleted`, CAST(`_pg2bq_deleted_at` IS NOT NULL AS STRING), '-') \
         FROM `{}.e2e_soft_sd.{table}` ORDER BY id",
        pipeline.stack.project
    );
    pipeline.bigquery_lines(&sql).await
}

async fn wait_for_rows(pipeline: &TestPipeline, table: &str, expected: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = marked_rows(pipeline, table).await;
        if rows == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{table}: {rows:#?}\nexpected: {expected:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_rows_stay_marked_and_validate_compares_the_others() {
    let options = Options {
        writer_env: vec![("PG2BQ_SOFT_DELETES", "true")],
        ..Options::default()
    };
    let schema = "CREATE SCHEMA sd; CREATE TABLE sd.t (id int PRIMARY KEY, v text);
                  INSERT INTO sd.t SELECT g, 'copied ' || g FROM generate_series(1, 4) g;";
    let mut pipeline = TestPipeline::start_with("soft", &["sd"], schema, options).await;
    // The copied rows are merged first: a row the mirror never held has nothing to keep.
    let copied = [
        "1|copied 1|live|-",
        "2|copied 2|live|-",
        "3|copied 3|live|-",
        "4|copied 4|live|-",
    ];
    wait_for_rows(&pipeline, "t", &copied).await;
    pipeline
        .sql
        .batch_execute(
            "BEGIN;
             INSERT INTO sd.t VALUES (5, 'five'), (6, 'six');
             DELETE FROM sd.t WHERE id IN (2, 5);
             UPDATE sd.t SET v = 'updated' WHERE id = 3;
             DELETE FROM sd.t WHERE id = 3;
             INSERT INTO sd.t VALUES (2, 'inserted again');
             COMMIT;",
        )
        .await
        .expect("changes");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert!(reports.iter().all(|r| r.matches()), "{reports:?}");
    // One transaction, so one MERGE: row 5 was inserted and deleted before any MERGE saw it
    // (nothing to keep), and row 3 keeps the values the mirror had (its update was never
    // merged).
    let expected = [
        "1|copied 1|live|-",
        "2|inserted again|live|-",
        "3|copied 3|deleted|true",
        "4|copied 4|live|-",
        "6|six|live|-",
    ];
    wait_for_rows(&pipeline, "t", &expected).await;
    wait_for_rows(&pipeline, "t__live", &expected).await;

    // A TRUNCATE marks every older row; rows inserted after it are live.
    pipeline
        .sql
        .batch_execute("TRUNCATE sd.t; INSERT INTO sd.t VALUES (4, 'after'), (9, 'nine');")
        .await
        .expect("truncate");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert!(reports.iter().all(|r| r.matches()), "{reports:?}");
    let expected = [
        "1|copied 1|deleted|true",
        "2|inserted again|deleted|true",
        "3|copied 3|deleted|true",
        "4|after|live|-",
        "6|six|deleted|true",
        "9|nine|live|-",
    ];
    wait_for_rows(&pipeline, "t", &expected).await;
    wait_for_rows(&pipeline, "t__live", &expected).await;
}
