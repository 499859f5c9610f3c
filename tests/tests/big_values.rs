//! Changes too big for a Pub/Sub message travel by claim check (capture writes the batch to
//! Cloud Storage and publishes a reference; the writer reads it), and rows too big for a Storage
//! Write request are written by a load job. Needs the local stack with its Cloud Storage
//! emulator.

use pg2bq_core::cloud_storage::{CloudStorage, ObjectUri};
use pg2bq_core::lsn::Lsn;
use pg2bq_e2e::pipeline::{Options, TestPipeline};
use std::time::{Duration, Instant};

/// The claim bucket and the emulator of the stack; panics with the fix if they are missing.
fn claim_settings() -> (String, String) {
    let get = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: the big-value tests need the local stack's Cloud Storage \
                 emulator. Run `make up`, then `set -a; source .local/stack.env; set +a`"
            )
        })
    };
    (get("PG2BQ_CLAIM_BUCKET"), get("STORAGE_EMULATOR_HOST"))
}

/// Names of the objects left under `prefix` in the claim bucket.
async fn objects_under(prefix: &str) -> Vec<String> {
    let (bucket, host) = claim_settings();
    let url = format!(
        "{}/storage/v1/b/{bucket}/o",
        CloudStorage::new(Some(&host)).unwrap().endpoint()
    );
    let answer: serde_json::Value = reqwest::Client::new()
        .get(url)
        .query(&[("prefix", prefix)])
        .send()
        .await
        .expect("list objects")
        .json()
        .await
        .expect("a listing");
    answer["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_12_mb_value_arrives_exactly_and_the_slot_moves_past_it() {
    let (bucket, host) = claim_settings();
    // EXTERNAL storage: stored as it is, 12,000,000 bytes that no compression shrinks.
    let schema = "CREATE TABLE big_docs (id int PRIMARY KEY, note text, body bytea);
        ALTER TABLE big_docs ALTER COLUMN body SET STORAGE EXTERNAL;
        INSERT INTO big_docs VALUES (1, 'before the snapshot', '\\x01');";
    let mut pipeline = TestPipeline::start("big_value", &["public.big_docs"], schema).await;
    pipeline
        .sql
        .batch_execute("INSERT INTO big_docs VALUES (2, 'before the big row', '\\x0203')")
        .await
        .expect("a change before");

    // 375,000 SHA-256 digests: 12,000,000 bytes, 24 MB as PostgreSQL's text.
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO big_docs SELECT 3, 'big', \
               (SELECT string_agg(sha256(int4send(i)), ''::bytea ORDER BY i) \
                  FROM generate_series(1, 375000) i)",
        )
        .await
        .expect("the big row");
    // A position after the big row's commit record.
    let big_lsn: String = pipeline
        .sql
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .expect("an LSN")
        .get(0);
    let big_lsn = Lsn::parse(&big_lsn).expect("an LSN");
    let committed = Instant::now();
    let source: (i32, String) = pipeline
        .sql
        .query_one(
            "SELECT length(body), encode(sha256(body), 'hex') FROM big_docs WHERE id = 3",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .expect("the big row's hash");
    assert_eq!(source.0, 12_000_000);
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO big_docs VALUES (4, 'after the big row', '\\x04');
             UPDATE big_docs SET note = 'updated after' WHERE id = 1;
             DELETE FROM big_docs WHERE id = 2;",
        )
        .await
        .expect("changes after");

    // The slot moves past the big row within a minute: it no longer holds the stream.
    let confirmed = loop {
        let confirmed = pipeline.slot_confirmed_lsn().await;
        if confirmed >= big_lsn {
            break confirmed;
        }
        assert!(
            committed.elapsed() < Duration::from_secs(60),
            "confirmed_flush_lsn {confirmed} still before the big row's {big_lsn} after a minute\n{}",
            pipeline.capture().log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "big row at {big_lsn}; confirmed_flush_lsn {confirmed} after {:.1}s",
        committed.elapsed().as_secs_f64()
    );

    let reports = pipeline.wait_until_mirrored(Duration::from_secs(120)).await;
    assert!(reports.iter().all(|r| r.matches()), "{reports:?}");
    eprintln!(
        "mirrored {:.1}s after the big commit; peak RSS: writer {} MB, capture {} MB",
        committed.elapsed().as_secs_f64(),
        pipeline.writer_peak_rss_bytes().unwrap_or(0) >> 20,
        pipeline.capture().peak_rss_bytes().unwrap_or(0) >> 20
    );
    let project = pipeline.stack.project.clone();
    let mirror = format!("`{project}.e2e_big_value_public.big_docs`");
    let rows = pipeline
        .stack
        .bigquery()
        .query(&format!(
            "SELECT CAST(id AS STRING), note, CAST(LENGTH(body) AS STRING), TO_HEX(SHA256(body)) \
             FROM {mirror} ORDER BY id"
        ))
        .await
        .expect("the mirror")
        .rows;
    let text = |v: &str| Some(v.to_owned());
    assert_eq!(
        rows,
        vec![
            vec![
                text("1"),
                text("updated after"),
                text("1"),
                text("4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a")
            ],
            vec![
                text("3"),
                text("big"),
                text("12000000"),
                Some(source.1.clone())
            ],
            vec![
                text("4"),
                text("after the big row"),
                text("1"),
                text("e52d9c508c502347344d8c07ad91cbd6068afc75ff6292f062a09ca381c89e71")
            ],
        ],
        "the big row exactly (length and SHA-256), and the changes around it"
    );

    let capture_log = pipeline.capture().log();
    assert!(
        capture_log.contains("sent by claim check") && capture_log.contains(&bucket),
        "the big batch went through Cloud Storage ({host})"
    );
    assert!(
        pipeline
            .writer_log()
            .contains("row too big for a Storage Write request: written by a load job"),
        "the big row was loaded"
    );
    // The writer deletes each object once its batch is written.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !objects_under("batches/public.big_docs/").await.is_empty() {
        assert!(Instant::now() < deadline, "claim objects left behind");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        pipeline
            .writer_metric("claim_checks_total{outcome=\"read\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_check_whose_object_is_gone_counts_as_written() {
    let (bucket, host) = claim_settings();
    let storage = CloudStorage::new(Some(&host)).unwrap();
    let writer = pg2bq_e2e::pipeline::StandaloneWriter::start(
        &pg2bq_e2e::stack::Stack::from_env(),
        "claim_gone",
        "e2e_claim_gone_",
    )
    .await;
    let object = ObjectUri {
        bucket: bucket.clone(),
        name: "batches/public.gone/0000000000000001.0000000000000001-1-0.json".into(),
    };
    let check = serde_json::json!({"claim": object.to_string(), "bytes": 10});
    let push = |data: &serde_json::Value| {
        use base64::Engine;
        serde_json::json!({"message": {
            "data": base64::engine::general_purpose::STANDARD.encode(data.to_string()),
            "attributes": {"table": "public.gone", "wire_version": "1", "changes": "1",
                           "encoding": "json", "claim": object.to_string()},
            "messageId": "1"}})
        .to_string()
    };
    let (status, body) = writer.push(push(&check)).await;
    assert_eq!(
        status, 204,
        "a missing object is a batch already written: {body}"
    );
    // An object whose size differs from the claim is refused (dead-lettered), never applied.
    storage
        .create(&object, b"{}".to_vec())
        .await
        .expect("object");
    let (status, body) = writer.push(push(&check)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("holds 2 bytes"), "{body}");
    storage.delete(&object).await.expect("delete");
    // A claim check of another bucket is refused.
    let other = serde_json::json!({"claim": "gs://elsewhere/x.json", "bytes": 10});
    let mut message: serde_json::Value = serde_json::from_str(&push(&other)).unwrap();
    message["message"]["attributes"]["claim"] = "gs://elsewhere/x.json".into();
    let (status, body) = writer.push(message.to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not in the claim bucket"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_beyond_bigquerys_row_size_limit_is_quarantined_and_the_stream_goes_on() {
    claim_settings();
    let schema = "CREATE TABLE huge_docs (id int PRIMARY KEY, note text, body bytea);
        ALTER TABLE huge_docs ALTER COLUMN body SET STORAGE EXTERNAL;";
    let mut pipeline = TestPipeline::start("huge_value", &["public.huge_docs"], schema).await;
    // 2,500,000 SHA-256 digests: 80,000,000 bytes, 106,666,668 in the base64 of a load job,
    // over BigQuery's 100 MB row limit (PostgreSQL sends it as 160 MB of text).
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO huge_docs SELECT 1, 'huge', \
               (SELECT string_agg(sha256(int4send(i)), ''::bytea ORDER BY i) \
                  FROM generate_series(1, 2500000) i)",
        )
        .await
        .expect("the huge row");
    let huge_lsn: String = pipeline
        .sql
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .expect("an LSN")
        .get(0);
    let huge_lsn = Lsn::parse(&huge_lsn).expect("an LSN");
    let committed = Instant::now();
    pipeline
        .sql
        .batch_execute("INSERT INTO huge_docs VALUES (2, 'after the huge row', '\\x02')")
        .await
        .expect("a change after");
    let project = pipeline.stack.project.clone();
    let dataset = format!("`{project}.e2e_huge_value_public`");
    let deadline = Instant::now() + Duration::from_secs(180);
    let rows = loop {
        let rows = pipeline
            .stack
            .bigquery()
            .query(&format!(
                "SELECT source_table, op, error, change IS NULL FROM {dataset}._pg2bq_quarantine \
                 WHERE event = 'quarantined'"
            ))
            .await
            .map(|a| a.rows)
            .unwrap_or_default();
        if !rows.is_empty() {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "nothing quarantined\n{}",
            pipeline.writer_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!(
        "quarantined {:.1}s after the huge commit",
        committed.elapsed().as_secs_f64()
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    let error = rows[0][2].clone().unwrap_or_default();
    assert!(
        error.contains("more than BigQuery's maximum row size")
            && error.contains("cannot be retried"),
        "{error}"
    );
    assert_eq!(
        rows[0][3].as_deref(),
        Some("true"),
        "kept without its values"
    );
    let after = pipeline
        .wait_for_query(
            &format!("SELECT note FROM {dataset}.huge_docs ORDER BY id"),
            &[vec![Some("after the huge row".to_owned())]],
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(after, [vec![Some("after the huge row".to_owned())]]);
    let confirmed = pipeline.slot_confirmed_lsn().await;
    assert!(confirmed >= huge_lsn, "{confirmed} < {huge_lsn}");
    eprintln!(
        "peak RSS: writer {} MB, capture {} MB",
        pipeline.writer_peak_rss_bytes().unwrap_or(0) >> 20,
        pipeline.capture().peak_rss_bytes().unwrap_or(0) >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_gzip_batches_over_a_low_threshold_travel_by_claim_check_too() {
    claim_settings();
    let options = Options {
        capture_env: vec![
            ("PG2BQ_CLAIM_THRESHOLD_BYTES".into(), "2000".into()),
            ("PG2BQ_COMPRESSION".into(), "gzip".into()),
        ],
        ..Options::default()
    };
    let schema = "CREATE TABLE claimed (id int PRIMARY KEY, body text);
        INSERT INTO claimed SELECT g, repeat(md5(g::text), 200) FROM generate_series(1, 50) g;";
    let mut pipeline =
        TestPipeline::start_with("claim_gzip", &["public.claimed"], schema, options).await;
    pipeline
        .sql
        .batch_execute(
            "UPDATE claimed SET body = repeat(md5((id * 7)::text), 300) WHERE id % 2 = 0;
             DELETE FROM claimed WHERE id % 5 = 0;",
        )
        .await
        .expect("changes");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert!(reports.iter().all(|r| r.matches()), "{reports:?}");
    let capture_log = pipeline.capture().log();
    assert!(
        capture_log.contains("sent by claim check"),
        "claim checks were used"
    );
    assert!(
        capture_log.contains(".json.gz"),
        "gzip bodies are stored as they are"
    );
    assert!(
        pipeline
            .writer_metric("claim_checks_total{outcome=\"read\"}")
            .await
            .unwrap_or(0.0)
            >= 2.0,
        "the backfill and the changes came by claim check"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_bucket_a_batch_too_big_for_a_message_stops_capture_with_the_fix() {
    let options = Options {
        capture_env: vec![
            ("PG2BQ_CLAIM_BUCKET".into(), String::new()),
            ("PG2BQ_CLAIM_THRESHOLD_BYTES".into(), "2000".into()),
        ],
        ..Options::default()
    };
    let schema = "CREATE TABLE unclaimed (id int PRIMARY KEY, body text);";
    let mut pipeline =
        TestPipeline::start_with("claim_none", &["public.unclaimed"], schema, options).await;
    pipeline
        .sql
        .batch_execute("INSERT INTO unclaimed VALUES (1, repeat('x', 5000))")
        .await
        .expect("a change");
    let exited = pipeline.capture().wait_exit(Duration::from_secs(30));
    assert_eq!(
        exited,
        Some(false),
        "capture stops (and the platform's restart and alerts act)"
    );
    let log = pipeline.capture().log();
    assert!(
        log.contains("more than a Pub/Sub message takes") && log.contains("set PG2BQ_CLAIM_BUCKET"),
        "{log}"
    );
}
