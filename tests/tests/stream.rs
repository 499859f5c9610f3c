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
    let before = pipeline.slot_confirmed_lsn().await;
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
    let during = pipeline.slot_confirmed_lsn().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_refuses_while_capture_streams_and_drops_the_slot_only_when_asked() {
    let options = pg2bq_e2e::pipeline::Options {
        writer: false,
        ..Default::default()
    };
    let schema = "CREATE SCHEMA del; CREATE TABLE del.t (id int PRIMARY KEY);";
    let mut pipeline = TestPipeline::start_with("delstream", &["del"], schema, options).await;
    let delete = |pipeline: &TestPipeline, flags: &[&str]| {
        let mut args = vec![
            "stream",
            "delete",
            "--slot",
            "e2e_delstream",
            "--publication",
            "e2e_delstream",
        ];
        args.extend_from_slice(flags);
        pipeline
            .stack
            .pg2bq("e2e_delstream")
            .args(args)
            .output()
            .expect("pg2bq stream delete")
    };
    let refused = delete(&pipeline, &["--drop-slot"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("capture still streams from slot 'e2e_delstream'")
    );

    assert!(pipeline.stop_capture());
    let kept = delete(&pipeline, &[]);
    assert!(kept.status.success());
    assert!(String::from_utf8_lossy(&kept.stdout).contains("still exists and holds WAL"));
    let count = |sql: &'static str| {
        let client = &pipeline.sql;
        async move {
            client
                .query_one(sql, &[])
                .await
                .expect("count")
                .get::<_, i64>(0)
        }
    };
    let slots = "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'e2e_delstream'";
    let publications = "SELECT count(*) FROM pg_publication WHERE pubname = 'e2e_delstream'";
    assert_eq!(
        (count(slots).await, count(publications).await),
        (1, 1),
        "kept unless asked"
    );

    let dropped = delete(&pipeline, &["--drop-slot", "--drop-publication"]);
    assert!(
        dropped.status.success(),
        "{}",
        String::from_utf8_lossy(&dropped.stderr)
    );
    assert_eq!(
        (count(slots).await, count(publications).await),
        (0, 0),
        "dropped when asked"
    );
}
