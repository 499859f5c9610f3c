//! `pg2bq stream pause|resume|status` end to end. Needs the local stack.

use pg2bq_e2e::pipeline::TestPipeline;
use std::time::Duration;

fn pg2bq(pipeline: &TestPipeline, args: &[&str]) -> String {
    let output = pipeline
        .stack
        .pg2bq("e2e_pause")
        .args(args)
        .env("PG2BQ_SLOT", "e2e_pause")
        .output()
        .expect("pg2bq");
    assert!(
        output.status.success(),
        "pg2bq {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_the_slot_and_resume_catches_up_with_nothing_lost() {
    let schema = "CREATE SCHEMA ps; CREATE TABLE ps.t (id int PRIMARY KEY, v text);";
    let mut pipeline = TestPipeline::start("pause", &["ps"], schema).await;
    pipeline
        .sql
        .batch_execute("INSERT INTO ps.t SELECT g, 'before' FROM generate_series(1, 100) g")
        .await
        .expect("rows");
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;

    assert!(pg2bq(&pipeline, &["stream", "pause"]).contains("paused"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let confirmed =
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'e2e_pause'";
    let before: String = pipeline
        .sql
        .query_one(confirmed, &[])
        .await
        .expect("slot")
        .get(0);
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO ps.t SELECT g, 'while paused' FROM generate_series(101, 200) g;
             UPDATE ps.t SET v = 'updated while paused' WHERE id <= 50;
             DELETE FROM ps.t WHERE id BETWEEN 90 AND 99;",
        )
        .await
        .expect("changes while paused");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during: String = pipeline
        .sql
        .query_one(confirmed, &[])
        .await
        .expect("slot")
        .get(0);
    assert_eq!(before, during, "a paused stream does not advance its slot");
    let status: serde_json::Value =
        serde_json::from_str(&pg2bq(&pipeline, &["stream", "status", "--json"])).expect("status");
    assert_eq!(status["desired_state"], "paused");
    assert_eq!(status["tables"][0]["phase"], "paused");
    assert!(
        status["slot_lag_bytes"].as_i64().unwrap_or(0) > 0,
        "the slot holds the new WAL: {status}"
    );

    assert!(pg2bq(&pipeline, &["stream", "resume"]).contains("running"));
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert_eq!(reports[0].source_rows, 190);
    let text = pg2bq(&pipeline, &["stream", "status"]);
    assert!(
        text.contains("running (capture connected)")
            && text.contains("ps.t")
            && text.contains("streaming"),
        "{text}"
    );
}
