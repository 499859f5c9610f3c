//! Capture resumes by itself after PostgreSQL restarts (its own test binary: it restarts the
//! shared server, so nothing else may run beside it). Needs the local stack (`make test`).

use pg2bq_e2e::pipeline::TestPipeline;
use std::path::PathBuf;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_resumes_by_itself_after_a_postgres_restart() {
    let schema = "CREATE SCHEMA r; CREATE TABLE r.items (id int PRIMARY KEY, label text);";
    let mut pipeline = TestPipeline::start("pgrestart", &["r"], schema).await;
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO r.items SELECT g, 'before ' || g FROM generate_series(1, 300) g",
        )
        .await
        .expect("rows before");
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;

    let stack_script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/local/stack.sh");
    let status = std::process::Command::new(stack_script)
        .arg("restart-postgres")
        .status()
        .expect("run stack.sh restart-postgres");
    assert!(status.success(), "PostgreSQL did not restart");

    pipeline.reconnect_sql(Duration::from_secs(30)).await;
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO r.items SELECT g, 'after ' || g FROM generate_series(301, 600) g;
             UPDATE r.items SET label = 'updated after restart' WHERE id <= 100;
             DELETE FROM r.items WHERE id BETWEEN 200 AND 249;",
        )
        .await
        .expect("rows after");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
    assert_eq!(reports[0].source_rows, 550);
    assert!(
        pipeline.capture().is_running(),
        "capture must not have exited"
    );
    let sessions = pipeline
        .capture_metric("sessions_total")
        .await
        .expect("sessions metric");
    assert!(sessions >= 2.0, "capture reconnected ({sessions} sessions)");
}
