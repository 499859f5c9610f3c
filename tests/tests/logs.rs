//! Append-only logs (tables without a key, and the append-only mode) hold every change once,
//! identified by its sequence number: redelivered batches and a backfill resumed after a crash
//! add no duplicate. And a writer that restarts merges what an earlier one left staged. Needs
//! the local stack.

use base64::Engine;
use pg2bq_e2e::pipeline::{Options, StandaloneWriter, TestPipeline};
use pg2bq_e2e::pubsub::Pulled;
use serde_json::json;
use std::time::{Duration, Instant};

fn envelope(message: &Pulled, id: usize) -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(message.batch.to_json());
    json!({"message": {"data": data, "attributes": message.attributes, "messageId": id.to_string()}})
        .to_string()
}

/// A deterministic shuffle (xorshift).
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// Pulls every message capture publishes until its count of changes stops moving.
async fn pull_all(
    pipeline: &TestPipeline,
    pubsub: &pg2bq_e2e::pubsub::PubSub,
    subscription: &str,
) -> Vec<Pulled> {
    let mut messages: Vec<Pulled> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_since = Instant::now();
    let mut last = 0;
    loop {
        let pulled = pubsub.pull(subscription, 500).await;
        if !pulled.is_empty() {
            quiet_since = Instant::now();
        }
        messages.extend(pulled);
        let count: usize = messages.iter().map(|m| m.batch.changes.len()).sum();
        if count != last {
            last = count;
            quiet_since = Instant::now();
        }
        if count > 0 && quiet_since.elapsed() > Duration::from_secs(3) {
            return messages;
        }
        assert!(Instant::now() < deadline, "capture kept publishing");
        let _ = pipeline;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_logs_hold_each_change_once_despite_redelivery_and_a_resumed_backfill() {
    let schema = "CREATE SCHEMA nk;
        CREATE TABLE nk.hist (a int, b text);
        ALTER TABLE nk.hist REPLICA IDENTITY FULL;
        INSERT INTO nk.hist SELECT g % 500, repeat('h', 40) || g FROM generate_series(1, 20000) g;";
    let options = Options {
        writer: false,
        wait_for_backfill: false,
        start_capture: false,
        capture_env: vec![
            ("PG2BQ_BACKFILL_RANGE_BLOCKS".into(), "8".into()),
            ("PG2BQ_BACKFILL_CONCURRENCY".into(), "1".into()),
            ("PG2BQ_BATCH_MAX_ROWS".into(), "100".into()),
        ],
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("keylesslog", &["nk"], schema, options).await;
    let (pubsub, subscription) = pipeline.pull_subscription().await;
    pipeline.start_capture().await;
    // Kill capture in the middle of its backfill: the unfinished ranges are copied again, from
    // a newer snapshot, after the restart.
    let state = pipeline.state();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ranges = state.ranges(&pipeline.sql).await.expect("ranges");
        if ranges.iter().filter(|r| r.done).count() >= 2 {
            assert!(ranges.iter().any(|r| !r.done), "killed midway");
            break;
        }
        assert!(Instant::now() < deadline, "the backfill made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pipeline.kill_capture();
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO nk.hist SELECT g, 'while down ' || g FROM generate_series(1, 300) g",
        )
        .await
        .expect("changes");
    pipeline.start_capture().await;
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO nk.hist SELECT g, 'after ' || g FROM generate_series(1, 300) g;
             INSERT INTO nk.hist VALUES (1, 'twin'), (1, 'twin');",
        )
        .await
        .expect("changes");
    let messages = pull_all(&pipeline, &pubsub, &subscription).await;
    let snapshots: std::collections::BTreeSet<String> = messages
        .iter()
        .flat_map(|m| m.batch.changes.iter())
        .filter(|c| c.seq.snapshot_row.is_some())
        .map(|c| c.seq.commit_lsn.to_string())
        .collect();
    assert!(snapshots.len() >= 2, "rows of two snapshots: {snapshots:?}");

    // Every message twice, shuffled: the log still holds each change once.
    let mut deliveries: Vec<String> = messages
        .iter()
        .enumerate()
        .flat_map(|(i, m)| [envelope(m, i), envelope(m, i)])
        .collect();
    shuffle(&mut deliveries, 0x0010_c50f_cafe);
    let writer =
        StandaloneWriter::start(&pipeline.stack, "keylesslog-writer", "e2e_keylesslog_").await;
    for chunk in deliveries.chunks(4) {
        let answers =
            futures::future::join_all(chunk.iter().map(|body| writer.push(body.clone()))).await;
        for (status, text) in answers {
            assert_eq!(status, 204, "{text}");
        }
    }
    // The log's rows equal the table's rows, as a multiset: none missing, none twice (the two
    // identical 'twin' rows stay two rows).
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(120)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        vec![("nk.hist".to_owned(), 20_602)]
    );
    let counts = pipeline
        .stack
        .bigquery()
        .query(&format!(
            "SELECT CAST(COUNT(*) AS STRING), CAST(COUNT(DISTINCT _pg2bq_seq) AS STRING) \
             FROM `{}.e2e_keylesslog_nk.hist`",
            pipeline.stack.project
        ))
        .await
        .expect("log")
        .rows;
    let row = |i: usize| counts[0][i].clone().unwrap_or_default();
    assert_eq!((row(0), row(1)), ("20602".to_owned(), "20602".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_writer_merges_what_an_earlier_one_left_staged() {
    let schema = "CREATE SCHEMA rm; CREATE TABLE rm.t (id int PRIMARY KEY, v text);";
    let options = Options {
        writer: false,
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("restartmerge", &["rm"], schema, options).await;
    let (pubsub, subscription) = pipeline.pull_subscription().await;
    pipeline
        .sql
        .batch_execute("INSERT INTO rm.t SELECT g, 'v' || g FROM generate_series(1, 30) g; DELETE FROM rm.t WHERE id <= 3;")
        .await
        .expect("changes");
    let messages = pull_all(&pipeline, &pubsub, &subscription).await;
    // A writer that never merges on its own writes the changes, and dies before any MERGE.
    let never = [("PG2BQ_MERGE_INTERVAL_MS", "0")];
    let mut first = StandaloneWriter::start_with(
        &pipeline.stack,
        "restartmerge-1",
        "e2e_restartmerge_",
        &never,
    )
    .await;
    for (i, message) in messages.iter().enumerate() {
        let (status, text) = first.push(envelope(message, i)).await;
        assert_eq!(status, 204, "{text}");
    }
    first.service.kill();
    let staged = pipeline
        .stack
        .bigquery()
        .query(&format!(
            "SELECT CAST(COUNT(*) AS STRING) FROM `{}.e2e_restartmerge_rm.t`",
            pipeline.stack.project
        ))
        .await
        .expect("mirror")
        .rows;
    assert_eq!(staged[0][0].as_deref(), Some("0"), "nothing merged yet");
    // Its successor merges at start, with no write and no `/merge`.
    let _second = StandaloneWriter::start_with(
        &pipeline.stack,
        "restartmerge-2",
        "e2e_restartmerge_",
        &never,
    )
    .await;
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        vec![("rm.t".to_owned(), 27)]
    );
}
