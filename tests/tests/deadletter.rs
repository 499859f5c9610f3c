//! `pg2bq deadletter list|replay`: a writer deployed with a fault refuses one table's pushes
//! for a window as batches it can never write, and forwards them to the dead-letter topic with
//! the reason, as deployed; `list` shows them without consuming them, and once a fixed writer
//! is deployed `replay` publishes them again (a claim check with its object) and BigQuery
//! equals PostgreSQL row by row. Needs the local stack with its Cloud Storage emulator.

use pg2bq_e2e::cli::{describe, pg2bq};
use pg2bq_e2e::pipeline::{Options, TestPipeline};
use serde_json::Value;
use std::time::{Duration, Instant};

const SCHEMA: &str = "
CREATE TABLE refused (id int PRIMARY KEY, note text, body text);
CREATE TABLE healthy (id int PRIMARY KEY, v text);
INSERT INTO refused SELECT g, 'copied', 'b' FROM generate_series(1, 20) g;
INSERT INTO healthy SELECT g, 'copied' FROM generate_series(1, 20) g;";

/// Changes of `refused` made while the writer refuses it: 10 + 5 + 3 + 1 + 1 row changes, the
/// fourth (a 6,000-character value) bigger than the claim threshold, so it travels by claim
/// check.
const WINDOW: &[&str] = &[
    "INSERT INTO refused SELECT g, 'window', 'b' FROM generate_series(101, 110) g",
    "UPDATE refused SET note = 'updated in the window' WHERE id BETWEEN 1 AND 5",
    "DELETE FROM refused WHERE id BETWEEN 6 AND 8",
    "INSERT INTO refused VALUES (200, 'big', repeat('0123456789', 600))",
    "UPDATE refused SET note = 'older than the fix' WHERE id = 9",
];
const WINDOW_CHANGES: u64 = 20;

/// `pg2bq deadletter <args> --json`, parsed.
fn deadletter(pipeline: &TestPipeline, args: &[&str]) -> Value {
    let mut all = vec!["deadletter"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", "--wait-secs", "2"]);
    let output = pg2bq(pipeline, &all, &[]);
    assert!(output.status.success(), "{}", describe(&output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&output)))
}

fn changes_of(messages: &Value) -> u64 {
    messages
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["changes"].as_u64().expect("changes"))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_dead_lettered_by_a_refusing_writer_is_listed_and_replayed_exactly() {
    let options = Options {
        capture_env: vec![("PG2BQ_CLAIM_THRESHOLD_BYTES".into(), "4000".into())],
        ..Options::default()
    };
    let tables = ["public.refused", "public.healthy"];
    let mut pipeline = TestPipeline::start_with("deadletter", &tables, SCHEMA, options).await;
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;

    // The window: a writer that can never write a push of public.refused.
    pipeline
        .restart_writer(&[("PG2BQ_TEST_REFUSE_TABLES", "public.refused")])
        .await;
    for statement in WINDOW {
        pipeline
            .sql
            .batch_execute(statement)
            .await
            .expect(statement);
        // Longer than capture's batch delay: a message per statement.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    pipeline
        .sql
        .batch_execute("UPDATE healthy SET v = 'in the window' WHERE id <= 10")
        .await
        .expect("healthy changes");

    // The writer forwards each to the dead-letter topic: list shows them all.
    let deadline = Instant::now() + Duration::from_secs(120);
    let listing = loop {
        let listing = deadletter(&pipeline, &["list"]);
        if changes_of(&listing["messages"]) >= WINDOW_CHANGES {
            break listing;
        }
        assert!(
            Instant::now() < deadline,
            "the refused changes were not dead-lettered: {listing:#}\n{}",
            pipeline.writer_log()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let messages = listing["messages"].as_array().expect("messages").clone();
    assert_eq!(
        changes_of(&listing["messages"]),
        WINDOW_CHANGES,
        "{listing:#}"
    );
    let push = format!("{}-push", pipeline.topic);
    for message in &messages {
        assert_eq!(message["table"], "public.refused", "{message:#}");
        assert!(
            message["error"]
                .as_str()
                .is_some_and(|e| e.contains("refused by PG2BQ_TEST_REFUSE_TABLES")),
            "the writer says why: {message:#}"
        );
        assert_eq!(message["kind"], "bad_batch", "{message:#}");
        assert_eq!(message["source_subscription"], push.as_str());
        assert!(message["first_seq"].is_string() && message["last_seq"].is_string());
        assert!(message["published"].is_string() && message["dead_lettered"].is_string());
        assert_eq!(message["replayed"], 0);
    }
    assert!(
        messages.iter().any(|m| m["claim"].is_string())
            && messages.iter().any(|m| m["claim"].is_null()),
        "the big change travels by claim check, the others in their messages: {listing:#}"
    );
    assert_eq!(listing["others"], 0);
    // The healthy table went on meanwhile.
    let healthy = format!(
        "SELECT count(*) FROM `{}.e2e_deadletter_public.healthy` WHERE v = 'in the window'",
        pipeline.stack.project
    );
    let rows = pipeline
        .wait_for_query(
            &healthy,
            &[vec![Some("10".into())]],
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(rows, [vec![Some("10".to_owned())]]);
    assert!(
        pipeline
            .writer_log()
            .contains("refused by PG2BQ_TEST_REFUSE_TABLES"),
        "the writer said why it refused"
    );

    // list consumed nothing; a filter on another table takes none of them.
    let again = deadletter(&pipeline, &["list"]);
    assert_eq!(
        again["messages"].as_array().map(Vec::len),
        Some(messages.len())
    );
    let other = deadletter(&pipeline, &["list", "--table", "public.healthy"]);
    assert_eq!(other["messages"].as_array().map(Vec::len), Some(0));
    assert_eq!(other["others"].as_u64(), Some(messages.len() as u64));
    let text = pg2bq(&pipeline, &["deadletter", "list", "--wait-secs", "2"], &[]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains(&format!("{WINDOW_CHANGES} changes) of public.refused"))
            && text.contains("pg2bq deadletter replay"),
        "{text}"
    );

    // The fix: a writer without the fault. A change made after it is newer than every
    // dead-lettered one, and still wins once they are replayed.
    pipeline.restart_writer(&[]).await;
    pipeline
        .sql
        .batch_execute("UPDATE refused SET note = 'after the fix' WHERE id = 9")
        .await
        .expect("a change after the fix");
    let first = deadletter(&pipeline, &["replay", "--limit", "1"]);
    assert_eq!(
        first["replayed"].as_array().map(Vec::len),
        Some(1),
        "{first:#}"
    );
    let rest = deadletter(&pipeline, &["replay", "--table", "public.refused"]);
    assert_eq!(
        changes_of(&first["replayed"]) + changes_of(&rest["replayed"]),
        WINDOW_CHANGES,
        "{first:#}\n{rest:#}"
    );
    assert_eq!(rest["others"], 0);
    assert!(
        rest["replayed"]
            .as_array()
            .expect("replayed")
            .iter()
            .all(|m| m["message_id"] != first["replayed"][0]["message_id"]),
        "each message is replayed once"
    );
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
    assert!(reports.iter().all(|r| r.matches()), "{reports:#?}");
    let source_rows: Vec<(String, usize)> = pg2bq_e2e::pipeline::row_counts(&reports);
    assert_eq!(
        source_rows,
        [
            ("public.healthy".to_owned(), 20),
            ("public.refused".to_owned(), 28)
        ]
    );
    let note = format!(
        "SELECT note FROM `{}.e2e_deadletter_public.refused` WHERE id = 9",
        pipeline.stack.project
    );
    let rows = pipeline
        .wait_for_query(&note, &[vec![Some("after the fix".into())]], Duration::ZERO)
        .await;
    assert_eq!(rows, [vec![Some("after the fix".to_owned())]]);
    assert!(
        pipeline
            .writer_metric("claim_checks_total{outcome=\"read\"}")
            .await
            .unwrap_or(0.0)
            >= 1.0,
        "the replayed claim check found its object"
    );

    // Replayed messages were acknowledged on the dead-letter subscription.
    let after = deadletter(&pipeline, &["list"]);
    assert_eq!(
        after["messages"].as_array().map(Vec::len),
        Some(0),
        "{after:#}"
    );
    assert_eq!(after["others"], 0);
    let nothing = pg2bq(
        &pipeline,
        &["deadletter", "replay", "--wait-secs", "2"],
        &[],
    );
    assert!(nothing.status.success(), "{}", describe(&nothing));
    assert!(
        String::from_utf8_lossy(&nothing.stdout).contains("nothing to replay"),
        "{}",
        describe(&nothing)
    );
}
