//! End-to-end tests of outages: BigQuery unreachable for longer than a dead-letter policy's
//! delivery attempt budget loses nothing and dead-letters nothing; only a message the writer can
//! never write reaches the dead-letter topic. Needs the local stack (`make test` starts it).

use pg2bq_e2e::chaos::failed_deliveries;
use pg2bq_e2e::fault_proxy::FaultProxy;
use pg2bq_e2e::pipeline::{Options, TestPipeline};
use pg2bq_e2e::pubsub::PubSub;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const SCHEMA: &str = "
CREATE SCHEMA ou;
CREATE TABLE ou.t (id int PRIMARY KEY, v text, n numeric);
INSERT INTO ou.t SELECT g, 'v' || g, g FROM generate_series(1, 200) g;";

/// Changes made while BigQuery is unreachable, in several transactions.
const DURING_OUTAGE: &[&str] = &[
    "INSERT INTO ou.t SELECT g, 'new ' || g, g FROM generate_series(201, 500) g",
    "UPDATE ou.t SET v = 'updated', n = n * 2 WHERE id % 3 = 0",
    "DELETE FROM ou.t WHERE id % 10 = 0",
    "UPDATE ou.t SET id = id + 10000 WHERE id BETWEEN 41 AND 49",
    "BEGIN; DELETE FROM ou.t WHERE id = 7; INSERT INTO ou.t VALUES (7, 'reborn', 0); COMMIT",
];

/// The delivery attempt budget of the dead-letter policy the push subscription used to have
/// (Pub/Sub allows 5 to 100).
const ATTEMPTS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bigquery_unreachable_longer_than_a_delivery_attempt_budget_loses_nothing() {
    let stack = pg2bq_e2e::stack::Stack::from_env();
    let rest = FaultProxy::start(&stack.bq_rest).await;
    let grpc = FaultProxy::start(&stack.bq_grpc).await;
    let options = Options {
        capture_env: vec![("PG2BQ_BATCH_MAX_ROWS".into(), "40".into())],
        writer_bigquery: Some((rest.url(), grpc.url())),
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("outage", &["ou"], SCHEMA, options).await;
    pipeline.wait_until_mirrored(Duration::from_secs(90)).await;

    let published_before = pipeline
        .capture_metric("messages_published_total")
        .await
        .unwrap_or(0.0);
    let log_before = pipeline.writer_log().len();
    rest.cut();
    grpc.cut();
    let outage = Instant::now();
    for statement in DURING_OUTAGE {
        pipeline
            .sql
            .batch_execute(statement)
            .await
            .expect(statement);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // BigQuery stays away until every batch published meanwhile has been refused more times
    // than a dead-letter policy's budget.
    let deadline = Instant::now() + Duration::from_secs(240);
    let (published, fewest) = loop {
        let published = pipeline
            .capture_metric("messages_published_total")
            .await
            .unwrap_or(0.0) as usize
            - published_before as usize;
        let failures = failed_deliveries(&pipeline.writer_log()[log_before..]);
        let fewest = failures.values().copied().min().unwrap_or(0);
        if published > 0 && failures.len() >= published && fewest > ATTEMPTS {
            break (published, fewest);
        }
        assert!(
            Instant::now() < deadline,
            "{} of {published} batches refused, the fewest {fewest} times",
            failures.len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let failed_pushes = pipeline
        .writer_metric("errors_total{kind=\"bigquery_transient\"}")
        .await
        .unwrap_or(0.0);
    rest.restore();
    grpc.restore();
    let outage = outage.elapsed();

    let recovery = Instant::now();
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(240)).await;
    let recovery = recovery.elapsed();
    let dead_lettered = pipeline.dead_letters().await;
    assert!(
        dead_lettered.is_empty(),
        "the pipeline dead-lettered {} messages: {:?}",
        dead_lettered.len(),
        dead_lettered.first().map(|m| &m.attributes)
    );
    assert!(failed_pushes > 0.0, "the writer failed no push");
    assert!(rest.refused() + grpc.refused() > 0);
    let rows = pg2bq_e2e::pipeline::row_counts(&reports);
    assert_eq!(rows, vec![("ou.t".to_owned(), 500 - 50)]);
    println!(
        "BigQuery unreachable for {outage:?}: {published} batches published meanwhile, each \
         refused at least {fewest} times (a dead-letter policy of {ATTEMPTS} attempts would have \
         taken them), none dead-lettered; the writer failed {failed_pushes} pushes; equal again \
         {recovery:?} after BigQuery came back ({} rows)",
        rows[0].1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_writer_can_never_write_is_dead_lettered_with_the_reason() {
    let options = Options {
        start_capture: false,
        ..Options::default()
    };
    let pipeline =
        TestPipeline::start_with("dlforward", &["dl"], "CREATE SCHEMA dl;", options).await;
    let pubsub = PubSub::new(&pipeline.stack);
    let attributes = HashMap::from([
        ("table".to_owned(), "dl.t".to_owned()),
        ("wire_version".to_owned(), "1".to_owned()),
    ]);
    pubsub
        .publish(&pipeline.topic, b"not a change batch", &attributes)
        .await;

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut dead = Vec::new();
    while dead.is_empty() {
        assert!(Instant::now() < deadline, "nothing was dead-lettered");
        tokio::time::sleep(Duration::from_millis(500)).await;
        dead = pipeline.dead_letters().await;
    }
    let message = &dead[0];
    assert_eq!(message.data, b"not a change batch");
    assert_eq!(message.attributes["table"], "dl.t");
    assert_eq!(message.attributes["dead_letter_kind"], "bad_batch");
    assert!(
        message.attributes["dead_letter_error"].contains("not a JSON change batch"),
        "{:?}",
        message.attributes
    );
    assert!(message.attributes["dead_letter_subscription"].ends_with("-push"));
    // Acknowledged once forwarded: it is not delivered (nor forwarded) again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(pipeline.dead_letters().await.is_empty());
    assert_eq!(
        pipeline.writer_metric("messages_dead_lettered_total").await,
        Some(1.0)
    );
}
