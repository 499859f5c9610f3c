//! A table that cannot publish UPDATE and DELETE safely (no primary key under the default replica
//! identity) is never added to the publication by pattern: the application's statements on it
//! keep working, `stream status` shows it skipped with the fix, and once it has a key it joins
//! and is backfilled. Needs the local stack.

use pg2bq_e2e::cli::{describe, pg2bq};
use pg2bq_e2e::pipeline::{Options, TestPipeline, row_counts};
use std::time::{Duration, Instant};

/// The status of `table` from `pg2bq stream status --json`, if listed.
fn table_status(pipeline: &TestPipeline, table: &str) -> Option<serde_json::Value> {
    let output = pg2bq(pipeline, &["stream", "status", "--json"], &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    status["tables"]
        .as_array()?
        .iter()
        .find(|t| t["table"] == table)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_table_created_while_streaming_is_skipped_until_it_has_a_key() {
    let schema = "CREATE SCHEMA kl;
        CREATE TABLE kl.orders (id int PRIMARY KEY, v text);
        INSERT INTO kl.orders SELECT g, 'v' || g FROM generate_series(1, 10) g;";
    let options = Options {
        capture_env: vec![("PG2BQ_PUBLICATION_REFRESH_SECS".into(), "1".into())],
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("skipkeyless", &["kl.*"], schema, options).await;
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;

    pipeline
        .sql
        .batch_execute(
            "CREATE TABLE kl.audit_log (at timestamptz DEFAULT now(), msg text);
             INSERT INTO kl.audit_log (msg) SELECT 'event ' || g FROM generate_series(1, 30) g;",
        )
        .await
        .expect("a table without a key");

    // Several publication refreshes later the application's UPDATE and DELETE still work.
    let deadline = Instant::now() + Duration::from_secs(30);
    let skipped = loop {
        if let Some(t) = table_status(&pipeline, "kl.audit_log") {
            break t;
        }
        assert!(Instant::now() < deadline, "kl.audit_log not listed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    pipeline
        .sql
        .batch_execute(
            "UPDATE kl.audit_log SET msg = msg || ' (seen)' WHERE msg LIKE 'event 1%';
             DELETE FROM kl.audit_log WHERE msg = 'event 2';
             INSERT INTO kl.orders VALUES (11, 'after');",
        )
        .await
        .expect("the application's statements succeed");
    assert_eq!(skipped["phase"], "skipped", "{skipped}");
    let error = skipped["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("has no primary key")
            && error.contains("ALTER TABLE \"kl\".\"audit_log\" REPLICA IDENTITY FULL"),
        "{error}"
    );
    let in_publication: i64 = pipeline
        .sql
        .query_one(
            "SELECT count(*) FROM pg_publication_tables \
             WHERE pubname = 'e2e_skipkeyless' AND tablename = 'audit_log'",
            &[],
        )
        .await
        .expect("publication tables")
        .get(0);
    assert_eq!(in_publication, 0, "not in the publication");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert_eq!(row_counts(&reports), vec![("kl.orders".to_owned(), 11)]);

    // The fix the status names: a key. The table joins, is backfilled, and streams.
    pipeline
        .sql
        .batch_execute("ALTER TABLE kl.audit_log ADD COLUMN id bigserial PRIMARY KEY;")
        .await
        .expect("a primary key");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
        if reports.len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "kl.audit_log did not join");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    pipeline
        .sql
        .batch_execute("UPDATE kl.audit_log SET msg = 'updated' WHERE id <= 3;")
        .await
        .expect("an update after the key");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert_eq!(
        row_counts(&reports),
        vec![
            ("kl.audit_log".to_owned(), 29),
            ("kl.orders".to_owned(), 11)
        ]
    );
    let status = table_status(&pipeline, "kl.audit_log").expect("listed");
    assert_ne!(status["phase"], "skipped", "{status}");
}
