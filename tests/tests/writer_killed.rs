//! End-to-end test of writers killed with SIGKILL in the middle of their appends: BigQuery (the
//! local emulator) keeps serving, a new writer's appends complete within a bound, and the data
//! ends equal. Needs the local stack (`make test` starts it).
//!
//! Before the local stack's launcher handled it, each AppendRows call whose client died kept one
//! of bqemulator's few worker threads forever; after a handful of kills no append ran again, and
//! a writer's call hung until the server closed the connection for "too many pings".

use pg2bq_e2e::chaos::Rng;
use pg2bq_e2e::pipeline::{Options, StandaloneWriter, TestPipeline};
use pg2bq_e2e::pubsub::Pulled;
use std::time::{Duration, Instant};

const SCHEMA: &str = "
CREATE SCHEMA wk;
CREATE TABLE wk.t (id int PRIMARY KEY, n int, pad text);";

/// 60,000 rows (published in batches of 10,000 rows, 1.5 MB), then updates and deletes.
const ROWS: usize = 60_000;
const WORKLOAD: &str = "
INSERT INTO wk.t SELECT g, 0, md5(g::text) FROM generate_series(1, 60000) g;
UPDATE wk.t SET n = 1 WHERE id % 7 = 0;
DELETE FROM wk.t WHERE id % 11 = 0;";

/// Pushes given to each writer at once: the emulator takes them one after the other, so the
/// writer is appending for a few seconds.
const PUSHES_PER_WRITER: usize = 3;

/// More kills than bqemulator has worker threads (cores + 4).
const KILLS: usize = 10;
/// How long a new writer may take for its first append after the kills.
const FIRST_APPEND_BOUND: Duration = Duration::from_secs(30);

fn push_body(message: &Pulled, id: usize) -> String {
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(message.batch.to_json());
    serde_json::json!({
        "message": {"data": data, "attributes": message.attributes, "messageId": id.to_string()},
        "subscription": "projects/pg2bq-local/subscriptions/wkill"
    })
    .to_string()
}

/// Posts a push; the status, or the transport error (the writer was killed).
async fn post(url: String, body: String) -> Result<u16, String> {
    let response = reqwest::Client::new()
        .post(format!("{url}/push"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

/// Every message capture published for the workload, pulled from `subscription`.
async fn published(pipeline: &TestPipeline, subscription: &str) -> Vec<Pulled> {
    let pubsub = pg2bq_e2e::pubsub::PubSub::new(&pipeline.stack);
    pipeline
        .pull_all_published(
            &pubsub,
            subscription,
            |_| true,
            Duration::from_secs(1),
            Duration::from_secs(120),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_killed_in_the_middle_of_appends_leave_bigquery_serving_and_the_data_equal() {
    let options = Options {
        writer: false,
        capture_env: vec![
            ("PG2BQ_BATCH_MAX_ROWS".into(), "10000".into()),
            ("PG2BQ_BATCH_MAX_BYTES".into(), "8000000".into()),
        ],
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("wkill", &["wk"], SCHEMA, options).await;
    let (_, subscription) = pipeline.pull_subscription().await;
    pipeline
        .sql
        .batch_execute(WORKLOAD)
        .await
        .expect("workload");
    let messages = published(&pipeline, &subscription).await;
    let mut bodies: Vec<String> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| push_body(m, i))
        .collect();
    bodies.sort_by_key(|b| std::cmp::Reverse(b.len()));
    let seed = std::env::var("PG2BQ_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| pg2bq_core::civil::now_us() as u64 | 1);
    println!(
        "seed {seed} (PG2BQ_KILL_SEED replays it); {} messages, the largest {} bytes",
        bodies.len(),
        bodies[0].len()
    );
    let mut rng = Rng::new(seed);

    // How long a writer takes for the largest batches, so that the kills land while one writes.
    let calibration =
        StandaloneWriter::start(&pipeline.stack, "wkill-calibration", "e2e_wkill_").await;
    let started = Instant::now();
    let answers = futures::future::join_all(
        (0..PUSHES_PER_WRITER).map(|i| post(calibration.url.clone(), bodies[i].clone())),
    )
    .await;
    let full = started.elapsed();
    assert!(
        answers.iter().all(|a| *a == Ok(204)),
        "{answers:?}\n{}",
        calibration.service.log_tail(20)
    );
    drop(calibration);
    let full_ms = full.as_millis() as u64;
    println!("a writer takes {full:?} for {PUSHES_PER_WRITER} of the largest batches");

    // Each writer gets some of the largest batches at once and is killed while it writes them.
    let mut in_flight = 0;
    for kill in 0..KILLS {
        let mut writer =
            StandaloneWriter::start(&pipeline.stack, &format!("wkill-{kill}"), "e2e_wkill_").await;
        let pushes: Vec<_> = (0..PUSHES_PER_WRITER)
            .map(|i| {
                let body = bodies[(kill + i) % PUSHES_PER_WRITER.max(4)].clone();
                tokio::spawn(post(writer.url.clone(), body))
            })
            .collect();
        let delay = rng.between(
            Duration::from_millis(full_ms / 5),
            Duration::from_millis(full_ms * 9 / 10),
        );
        tokio::time::sleep(delay).await;
        let unanswered = pushes.iter().filter(|p| !p.is_finished()).count();
        writer.service.kill();
        let answers = futures::future::join_all(pushes).await;
        let written = answers.iter().filter(|a| matches!(a, Ok(Ok(204)))).count();
        println!(
            "kill {kill}: after {delay:?}, {unanswered} of {PUSHES_PER_WRITER} pushes unanswered \
             ({written} written)"
        );
        in_flight += usize::from(unanswered > 0);
    }
    assert!(
        in_flight >= KILLS / 2,
        "only {in_flight} of {KILLS} kills landed while a push was written"
    );

    // A new writer appends within the bound, then writes every batch once.
    let writer = StandaloneWriter::start(&pipeline.stack, "wkill-after", "e2e_wkill_").await;
    let smallest = bodies.last().expect("a message").clone();
    let started = Instant::now();
    let first = tokio::time::timeout(FIRST_APPEND_BOUND, post(writer.url.clone(), smallest)).await;
    let first_append = started.elapsed();
    assert!(
        matches!(first, Ok(Ok(204))),
        "the first push after {KILLS} kills: {first:?} after {first_append:?}\n{}",
        writer.service.log_tail(20)
    );
    let started = Instant::now();
    for chunk in bodies.chunks(2) {
        let answers = futures::future::join_all(
            chunk
                .iter()
                .map(|body| post(writer.url.clone(), body.clone())),
        )
        .await;
        for answer in answers {
            assert_eq!(answer, Ok(204), "{}", writer.service.log_tail(20));
        }
    }
    let all_batches = started.elapsed();
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(180)).await;
    let rows = pg2bq_e2e::pipeline::row_counts(&reports);
    assert_eq!(rows, vec![("wk.t".to_owned(), ROWS - ROWS / 11)]);
    println!(
        "{KILLS} writers killed ({in_flight} in the middle of their pushes); the next writer's first \
         append took {first_append:?}, all {} batches {all_batches:?}; {} rows equal",
        bodies.len(),
        rows[0].1
    );
}
