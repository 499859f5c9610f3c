//! Unchanged TOAST values under the default replica identity, where PostgreSQL does not send
//! them: the staged MERGE keeps, per column, the newest value that was sent (from the mirror or
//! an older change of the key), whatever order the changes arrive in, duplicates included.
//! Needs the local stack.

use base64::Engine;
use pg2bq_core::wire::{ChangeBatch, Op, Value};
use pg2bq_e2e::pipeline::{Options, StandaloneWriter, TestPipeline};
use pg2bq_e2e::pubsub::Pulled;
use serde_json::json;
use std::time::Duration;

/// EXTERNAL storage: values over 2 KB are kept out of line and uncompressed, so an UPDATE that
/// does not touch them sends the unchanged-TOAST marker.
const SCHEMA: &str = "
CREATE SCHEMA tx;
CREATE TABLE tx.docs (id int PRIMARY KEY, n int NOT NULL, body text, meta jsonb);
ALTER TABLE tx.docs ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE tx.docs ALTER COLUMN meta SET STORAGE EXTERNAL;
CREATE FUNCTION tx.big(seed int) RETURNS text LANGUAGE sql AS
  $$ SELECT string_agg(md5((seed * 1000 + i)::text), '') FROM generate_series(1, 375) i $$;";

/// 50 rows, 25 of them with a 12,000-character body; then updates that leave bodies unchanged
/// (every row at once, and after an insert in the same transaction), key changes of TOASTed
/// rows, deletes, bodies made short and made long.
const WORKLOAD: &str = "
INSERT INTO tx.docs SELECT g, 0,
    CASE WHEN g <= 25 THEN tx.big(g) ELSE 'short ' || g END,
    CASE WHEN g % 5 = 0 THEN jsonb_build_object('pad', tx.big(g + 100)) END
  FROM generate_series(1, 50) g;
UPDATE tx.docs SET n = n + 1;
BEGIN; INSERT INTO tx.docs VALUES (100, 0, tx.big(100), NULL); UPDATE tx.docs SET n = 5 WHERE id = 100; COMMIT;
UPDATE tx.docs SET id = id + 1000 WHERE id IN (1, 2, 3, 4);
UPDATE tx.docs SET n = n + 10 WHERE id IN (1001, 1002);
DELETE FROM tx.docs WHERE id IN (5, 30);
UPDATE tx.docs SET body = 'now short' WHERE id = 6;
UPDATE tx.docs SET n = 7 WHERE id = 6;
UPDATE tx.docs SET body = tx.big(40) WHERE id = 40;
UPDATE tx.docs SET n = 8 WHERE id IN (40, 10, 15);
UPDATE tx.docs SET meta = '{\"small\": true}' WHERE id = 20;
UPDATE tx.docs SET n = 9 WHERE id = 20;";

/// Rows of the mirror whose values are still unknown, and TOASTed bodies, as BigQuery has them.
async fn unknown_and_long_bodies(pipeline: &TestPipeline, dataset: &str) -> (String, String) {
    let project = &pipeline.stack.project;
    let rows = pipeline
        .stack
        .bigquery()
        .query(&format!(
            "SELECT CAST(COUNTIF(_pg2bq_unknown IS NOT NULL) AS STRING), \
                    CAST(COUNTIF(LENGTH(body) = 12000) AS STRING) FROM `{project}.{dataset}.docs`"
        ))
        .await
        .expect("mirror")
        .rows;
    let cell = |i: usize| rows[0][i].clone().unwrap_or_default();
    (cell(0), cell(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_toast_values_replicate_exactly_under_the_default_identity() {
    let mut pipeline = TestPipeline::start("toastdef", &["tx"], SCHEMA).await;
    pipeline
        .sql
        .batch_execute(WORKLOAD)
        .await
        .expect("workload");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        vec![("tx.docs".to_owned(), 49)]
    );
    // 25 long bodies at first, minus id 5 (deleted) and 6 (made short), plus 40 and 100.
    let (unknown, long) = unknown_and_long_bodies(&pipeline, "e2e_toastdef_tx").await;
    assert_eq!((unknown.as_str(), long.as_str()), ("0", "25"));
    let log = pipeline.writer_log();
    assert!(
        !log.contains("quarantined") && !log.contains("REPLICA IDENTITY FULL"),
        "nothing refused, no setting to change:\n{log}"
    );
}

fn envelope(batch: &ChangeBatch, attributes: &serde_json::Value, id: usize) -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(batch.to_json());
    json!({"message": {"data": data, "attributes": attributes, "messageId": id.to_string()}})
        .to_string()
}

/// A deterministic shuffle (xorshift) from `seed`, printed so that a failure can be replayed.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

fn sends_unchanged(message: &Pulled) -> bool {
    message.batch.changes.iter().any(|c| {
        c.op == Op::Update
            && c.new
                .as_ref()
                .is_some_and(|row| row.contains(&Value::UnchangedToast))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_and_duplicated_deliveries_with_unchanged_toast_values_end_exact() {
    let seed: u64 = std::env::var("PG2BQ_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x70a5_7ed0_0bad_cafe);
    eprintln!("shuffle seed {seed} (replay with PG2BQ_TEST_SEED={seed})");
    let options = Options {
        writer: false,
        capture_env: vec![("PG2BQ_BATCH_MAX_ROWS".into(), "3".into())],
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("toastshuf", &["tx"], SCHEMA, options).await;
    let (pubsub, subscription) = pipeline.pull_subscription().await;
    pipeline
        .sql
        .batch_execute(WORKLOAD)
        .await
        .expect("workload");
    let messages = pipeline
        .pull_all_published(
            &pubsub,
            &subscription,
            |_| true,
            Duration::from_millis(500),
            Duration::from_secs(60),
        )
        .await;
    let unchanged = messages.iter().filter(|m| sends_unchanged(m)).count();
    assert!(
        unchanged > 5,
        "updates without their TOAST values ({unchanged} messages)"
    );

    // The updates that did not send their bodies come first, twice, and are merged before
    // the rows they update arrive; then everything again, twice, shuffled.
    let writer =
        StandaloneWriter::start(&pipeline.stack, "toastshuf-writer", "e2e_toastshuf_").await;
    let body = |(i, m): (usize, &Pulled)| {
        envelope(&m.batch, &serde_json::to_value(&m.attributes).unwrap(), i)
    };
    let first: Vec<String> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| sends_unchanged(m))
        .map(body)
        .collect();
    let mut rest: Vec<String> = messages
        .iter()
        .enumerate()
        .flat_map(|item| [body(item), body(item)])
        .collect();
    shuffle(&mut rest, seed);
    for delivery in first.iter().chain(&first) {
        let (status, text) = writer.push(delivery.clone()).await;
        assert_eq!(status, 204, "{text}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for chunk in rest.chunks(4) {
        let answers =
            futures::future::join_all(chunk.iter().map(|body| writer.push(body.clone()))).await;
        for (status, text) in answers {
            assert_eq!(status, 204, "{text}");
        }
    }
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        vec![("tx.docs".to_owned(), 49)]
    );
    let (unknown, long) = unknown_and_long_bodies(&pipeline, "e2e_toastshuf_tx").await;
    assert_eq!((unknown.as_str(), long.as_str()), ("0", "25"));
}
