//! Several streams in one deployment: one configuration file describes two streams
//! (`[streams.alpha]`, `[streams.beta]`), each with its own database, slot, publication, topic,
//! datasets and settings (soft deletes on one), sharing one writer. Each capture is started with
//! `PG2BQ_STREAM`, each push subscription pushes to `/push/<stream>`, and each stream's tables
//! end equal to its database in its own datasets. The CLI selects a stream by name; an unknown
//! stream, a push for a stream the writer does not serve, and a push to `/push` are refused with
//! the fix. Needs the local stack.

use pg2bq_e2e::pipeline::{Options, TestPipeline};
use pg2bq_e2e::pubsub::PubSub;
use pg2bq_e2e::stack::Stack;
use std::path::PathBuf;
use std::time::Duration;

const ALPHA: &str = "
CREATE SCHEMA sa;
CREATE TABLE sa.orders (id int PRIMARY KEY, total numeric(10,2), note text);
INSERT INTO sa.orders SELECT g, g * 1.5, 'o' || g FROM generate_series(1, 40) g;";

const BETA: &str = "
CREATE SCHEMA sb;
CREATE TABLE sb.invoices (id int PRIMARY KEY, amount int);
INSERT INTO sb.invoices SELECT g, g * 10 FROM generate_series(1, 30) g;";

/// The file: what the streams share at the top, each stream's own values in its tables. The
/// slot names differ from the ones the test harness puts in the environment, so that the
/// stream's own values must win for the test to pass.
fn config(stack: &Stack, dead_letter: &str) -> String {
    format!(
        r#"
[source]
host = "{host}"
port = {port}
user = "{user}"

[target]
project = "{project}"
rest_endpoint = "{rest}"
grpc_endpoint = "{grpc}"

[streams.alpha.source]
database = "e2e_msalpha"
[streams.alpha.stream]
slot = "alpha_slot"
publication = "e2e_msalpha"
topic = "e2e-msalpha"
include = "sa"
[streams.alpha.target]
dataset_prefix = "e2e_msalpha_"

[streams.beta.source]
database = "e2e_msbeta"
[streams.beta.stream]
slot = "beta_slot"
publication = "e2e_msbeta"
topic = "e2e-msbeta"
include = "sb"
soft_deletes = true
[streams.beta.target]
dataset_prefix = "e2e_msbeta_"
[streams.beta.writer]
dead_letter_topic = "{dead_letter}"
"#,
        host = stack.pg_host,
        port = stack.pg_port,
        user = stack.pg_user,
        project = stack.project,
        rest = stack.bq_rest,
        grpc = stack.bq_grpc,
    )
}

async fn slots(sql: &tokio_postgres::Client) -> Vec<String> {
    sql.query(
        "SELECT slot_name::text FROM pg_replication_slots WHERE slot_name IN ('alpha_slot', 'beta_slot') ORDER BY 1",
        &[],
    )
    .await
    .expect("slots")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_streams_share_one_writer_and_each_keeps_its_settings() {
    let stack = Stack::from_env();
    let pubsub = PubSub::new(&stack);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-config");
    std::fs::create_dir_all(&dir).expect("config dir");
    let file = dir.join("streams.toml");
    std::fs::write(&file, config(&stack, "e2e-msbeta-dead-letter")).expect("config file");
    let file_text = file.display().to_string();

    // One writer for both streams; alpha's pipeline starts it.
    let with_stream = |stream: &str| Options {
        capture_env: vec![
            ("PG2BQ_CONFIG".into(), file_text.clone()),
            ("PG2BQ_STREAM".into(), stream.into()),
        ],
        start_capture: false,
        ..Options::default()
    };
    // The writer gets the file's text as a value, as Terraform passes it (PG2BQ_CONFIG_TOML).
    let text: &'static str = Box::leak(
        std::fs::read_to_string(&file)
            .expect("config text")
            .into_boxed_str(),
    );
    let alpha_options = Options {
        writer_env: vec![("PG2BQ_CONFIG_TOML", text)],
        ..with_stream("alpha")
    };
    let mut alpha = TestPipeline::start_with("msalpha", &["sa"], ALPHA, alpha_options).await;
    let mut beta = TestPipeline::start_with(
        "msbeta",
        &["sb"],
        BETA,
        Options {
            writer: false,
            ..with_stream("beta")
        },
    )
    .await;
    pubsub.create_topic("e2e-msbeta-dead-letter").await;
    let writer = alpha
        .writer_push_url()
        .expect("alpha's pipeline has the writer");
    let base = writer.trim_end_matches("/push").to_owned();
    // The harness subscribed alpha's topic to /push; each stream's subscription names its path.
    pubsub.delete_subscription("e2e-msalpha-push").await;
    for (stream, topic) in [("alpha", "e2e-msalpha"), ("beta", "e2e-msbeta")] {
        // A subscription of an earlier run would push to that run's writer.
        pubsub
            .delete_subscription(&format!("{topic}-push-{stream}"))
            .await;
        pubsub
            .create_subscription(
                &format!("{topic}-push-{stream}"),
                topic,
                Some(&format!("{base}/push/{stream}")),
            )
            .await;
    }
    alpha.start_capture().await;
    beta.start_capture().await;
    assert_eq!(slots(&alpha.sql).await, ["alpha_slot", "beta_slot"]);
    // Both backfills are in BigQuery before the changes (so the deleted rows were there).
    alpha.wait_until_mirrored(Duration::from_secs(90)).await;
    beta.wait_until_mirrored(Duration::from_secs(90)).await;

    alpha
        .sql
        .batch_execute(
            "UPDATE sa.orders SET note = 'changed' WHERE id % 4 = 0;
             DELETE FROM sa.orders WHERE id > 35;
             INSERT INTO sa.orders VALUES (100, 9.99, 'new');",
        )
        .await
        .expect("alpha changes");
    beta.sql
        .batch_execute(
            "DELETE FROM sb.invoices WHERE id <= 3; UPDATE sb.invoices SET amount = 0 WHERE id = 10;",
        )
        .await
        .expect("beta changes");
    let alpha_reports = alpha.wait_until_mirrored(Duration::from_secs(90)).await;
    let beta_reports = beta.wait_until_mirrored(Duration::from_secs(90)).await;
    assert_eq!(alpha_reports[0].table, "sa.orders");
    assert_eq!(alpha_reports[0].source_rows, 36);
    assert_eq!(beta_reports[0].table, "sb.invoices");
    assert_eq!(beta_reports[0].source_rows, 27);

    // beta keeps its deleted rows, marked (its own setting); alpha removes them.
    let marked = beta
        .bigquery_lines(&format!(
            "SELECT CAST(id AS STRING) FROM `{}.e2e_msbeta_sb.invoices` WHERE `_pg2bq_is_deleted` ORDER BY id",
            stack.project
        ))
        .await;
    assert_eq!(marked, ["1", "2", "3"]);
    let alpha_rows = alpha
        .bigquery_lines(&format!(
            "SELECT CAST(COUNT(*) AS STRING) FROM `{}.e2e_msalpha_sa.orders`",
            stack.project
        ))
        .await;
    assert_eq!(alpha_rows, ["36"], "alpha's deleted rows are gone");

    // The CLI works on the stream it is given, from the same file.
    let pg2bq = Stack::bin_dir().join("pg2bq");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(&pg2bq)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PG2BQ_CONFIG", &file_text)
            .output()
            .expect("pg2bq runs");
        (
            output.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let (code, out) = run(&["--stream", "beta", "validate"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("sb.invoices") && !out.contains("sa.orders"),
        "{out}"
    );
    let (code, out) = run(&["--stream", "alpha", "stream", "status"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("alpha_slot") || out.contains("sa.orders"),
        "{out}"
    );
    let (code, out) = run(&["validate"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("describes the streams alpha, beta") && out.contains("--stream"),
        "{out}"
    );
    let (code, out) = run(&["--stream", "gamma", "validate"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("stream 'gamma' is not in"), "{out}");

    // One /merge (as Cloud Scheduler calls it) runs both streams' rounds.
    let client = reqwest::Client::new();
    let report: serde_json::Value = client
        .post(format!("{base}/merge"))
        .send()
        .await
        .expect("merge")
        .json()
        .await
        .expect("a merge report");
    let tables = [
        "merged_tables",
        "idle_tables",
        "continued_tables",
        "failed_tables",
    ]
    .iter()
    .map(|k| report[k].as_u64().unwrap_or(0))
    .sum::<u64>();
    assert_eq!(tables, 2, "both streams' tables are in the round: {report}");
    assert_eq!(report["failed_tables"], 0, "{report}");

    // A push for a stream the writer does not serve, or to /push, waits (5xx) with the fix.
    for (path, wanted) in [
        ("push/gamma", "does not serve"),
        ("push", "pushes to /push/<stream>"),
    ] {
        let response = client
            .post(format!("{base}/{path}"))
            .header("content-type", "application/json")
            .body(
                r#"{"message":{"data":"e30=","messageId":"1","attributes":{}},"subscription":"s"}"#,
            )
            .send()
            .await
            .expect("push");
        assert_eq!(response.status().as_u16(), 500, "{path}");
        let text = response.text().await.unwrap_or_default();
        assert!(text.contains(wanted), "{path}: {text}");
    }

    for name in ["e2e-msalpha-push-alpha", "e2e-msbeta-push-beta"] {
        pubsub.delete_subscription(name).await;
    }
    beta.dispose(&["sb"]).await;
    alpha.dispose(&["sa"]).await;
}
