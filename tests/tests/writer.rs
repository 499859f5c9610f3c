//! End-to-end tests of the writer: unordered and duplicated delivery, malformed requests, schema
//! changes. Needs the local stack (`make test` starts it).

use base64::Engine;
use pg2bq_core::wire::{ChangeBatch, Op};
use pg2bq_e2e::pipeline::{Options, StandaloneWriter, TestPipeline};
use serde_json::json;
use std::time::Duration;

fn envelope(batch: &ChangeBatch, attributes: &serde_json::Value, id: usize) -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(batch.to_json());
    json!({
        "message": {"data": data, "attributes": attributes, "messageId": id.to_string()},
        "subscription": "projects/pg2bq-local/subscriptions/test"
    })
    .to_string()
}

/// A deterministic shuffle (xorshift), so a failure can be replayed.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

const SHUFFLE_SCHEMA: &str = "
CREATE SCHEMA sh;
CREATE TABLE sh.a (id int PRIMARY KEY, v text, n numeric(10, 2));
CREATE TABLE sh.b (k1 int, k2 text, v int, PRIMARY KEY (k1, k2));";

const SHUFFLE_WORKLOAD: &str = "
INSERT INTO sh.a SELECT g, 'v' || g, g * 1.25 FROM generate_series(1, 300) g;
INSERT INTO sh.b SELECT g % 20, 'k' || (g / 20), g FROM generate_series(1, 200) g;
UPDATE sh.a SET v = 'updated once' WHERE id % 3 = 0;
UPDATE sh.a SET v = 'updated twice', n = n + 1 WHERE id % 6 = 0;
UPDATE sh.a SET id = id + 1000 WHERE id BETWEEN 10 AND 19;
DELETE FROM sh.a WHERE id BETWEEN 100 AND 149;
BEGIN; DELETE FROM sh.a WHERE id = 200; INSERT INTO sh.a VALUES (200, 'reborn', 0); COMMIT;
UPDATE sh.b SET k2 = 'moved' WHERE k1 = 3 AND k2 = 'k1';
BEGIN; TRUNCATE sh.b; INSERT INTO sh.b VALUES (1, 'after', 1), (2, 'after', 2); COMMIT;
UPDATE sh.b SET v = 99 WHERE k1 = 1;
INSERT INTO sh.a SELECT g, 'late ' || g, 0 FROM generate_series(2000, 2050) g;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_shuffled_deliveries_give_the_same_tables() {
    let options = Options {
        writer: false,
        capture_env: vec![("PG2BQ_BATCH_MAX_ROWS".into(), "7".into())],
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("shuffle", &["sh"], SHUFFLE_SCHEMA, options).await;
    let (pubsub, subscription) = pipeline.pull_subscription().await;
    pipeline
        .sql
        .batch_execute(SHUFFLE_WORKLOAD)
        .await
        .expect("workload");

    // Collect every message capture published.
    // Row changes only: the initial copy's sweep marker is no published change.
    let messages = pipeline
        .pull_all_published(
            &pubsub,
            &subscription,
            |m| m.batch.changes.iter().all(|c| c.op != Op::Sweep),
            Duration::from_millis(500),
            Duration::from_secs(60),
        )
        .await;
    assert!(
        messages.len() > 50,
        "small batches make many messages ({})",
        messages.len()
    );

    // Every message twice, in a shuffled order, four at a time.
    let mut deliveries: Vec<String> = messages
        .iter()
        .enumerate()
        .flat_map(|(i, m)| {
            let attributes = serde_json::to_value(&m.attributes).unwrap();
            [
                envelope(&m.batch, &attributes, i),
                envelope(&m.batch, &attributes, i),
            ]
        })
        .collect();
    shuffle(&mut deliveries, 0x5eed_1234_abcd_0042);
    let writer = StandaloneWriter::start(&pipeline.stack, "shuffle-writer", "e2e_shuffle_").await;
    for chunk in deliveries.chunks(4) {
        let answers =
            futures::future::join_all(chunk.iter().map(|body| writer.push(body.clone()))).await;
        for (status, text) in answers {
            assert_eq!(status, 204, "{text}");
        }
    }
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
    let rows = pg2bq_e2e::pipeline::row_counts(&reports);
    assert_eq!(
        rows,
        vec![("sh.a".to_owned(), 300 - 50 + 51), ("sh.b".to_owned(), 2)]
    );
}

fn batch_json(version: u32, width_ok: bool, id_value: &str) -> Vec<u8> {
    let new = if width_ok {
        json!([id_value, "x"])
    } else {
        json!([id_value])
    };
    json!({
        "version": version,
        "source": {"schema": "bad", "table": "t"},
        "columns": [
            {"name": "id", "pg_type": "int4", "type_modifier": -1, "key": true},
            {"name": "v", "pg_type": "text", "type_modifier": -1, "key": false}
        ],
        "changes": [{"op": "insert", "seq": "0000000000000010/0000000000000001", "commit_time_us": 0, "xid": 1, "new": new}]
    })
    .to_string()
    .into_bytes()
}

fn push_body(data: &[u8], encoding: &str) -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(data);
    json!({"message": {"data": data, "attributes": {"encoding": encoding}, "messageId": "1"}})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_push_requests_get_a_clear_4xx_and_the_writer_keeps_serving() {
    let stack = pg2bq_e2e::stack::Stack::from_env();
    stack
        .bigquery()
        .delete_dataset("e2e_malformed_bad")
        .await
        .expect("clean dataset");
    let writer = StandaloneWriter::start(&stack, "malformed", "e2e_malformed_").await;
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "not JSON",
            "this is not json".into(),
            400,
            "expected a Pub/Sub push request",
        ),
        (
            "no message",
            "{}".into(),
            400,
            "expected a Pub/Sub push request",
        ),
        (
            "no data",
            r#"{"message": {"attributes": {}}}"#.into(),
            400,
            "has no data",
        ),
        (
            "bad base64",
            r#"{"message": {"data": "%%% not base64"}}"#.into(),
            400,
            "not base64",
        ),
        (
            "data not JSON",
            push_body(b"\x00\x01 binary", "json"),
            400,
            "not a JSON change batch",
        ),
        (
            "unknown version",
            push_body(&batch_json(99, true, "1"), "json"),
            400,
            "wire version 99 is not supported",
        ),
        (
            "row width",
            push_body(&batch_json(1, false, "1"), "json"),
            400,
            "1 values for 2 columns",
        ),
        (
            "unknown encoding",
            push_body(&batch_json(1, true, "1"), "zstd"),
            400,
            "'zstd' is not supported",
        ),
        (
            "bad gzip",
            push_body(b"not gzip", "json+gzip"),
            400,
            "not valid gzip",
        ),
    ];
    for (what, body, status, message) in cases {
        let (got, text) = writer.push(body).await;
        assert_eq!(got, status, "{what}: {text}");
        let answer: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{what}: JSON error body, got {text}"));
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message),
            "{what}: '{error}' should contain '{message}'"
        );
        assert!(answer["kind"].is_string(), "{what}: a kind");
    }
    // The writer answers 413 as soon as it has read the length and closes the connection, so a
    // client still sending the body may see the connection end instead: either is a refusal.
    let too_big = reqwest::Client::new()
        .post(format!("{}/push", writer.url))
        .body(vec![b' '; 17 << 20])
        .send()
        .await;
    if let Ok(response) = too_big {
        assert_eq!(
            response.status().as_u16(),
            413,
            "a body over the push size limit"
        );
    }

    let (ok, text) = writer
        .push(push_body(&batch_json(1, true, "7"), "json"))
        .await;
    assert_eq!(ok, 204, "a valid batch after all that: {text}");
    let health = reqwest::get(format!("{}/healthz", writer.url))
        .await
        .expect("healthz");
    assert!(health.status().is_success());
    let log = writer.service.log();
    assert!(
        log.contains("push refused") && !log.contains("panicked"),
        "one log line per refusal, no panic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_and_dropped_columns_keep_bigquery_correct() {
    let schema = "CREATE SCHEMA ev; CREATE TABLE ev.t (id int PRIMARY KEY, note text, n int);";
    let mut pipeline = TestPipeline::start("evolve", &["ev"], schema).await;
    pipeline
        .sql
        .batch_execute("INSERT INTO ev.t SELECT g, 'note ' || g, g FROM generate_series(1, 50) g")
        .await
        .expect("rows");
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;

    pipeline
        .sql
        .batch_execute(
            "ALTER TABLE ev.t ADD COLUMN extra text, ADD COLUMN at timestamptz;
             INSERT INTO ev.t SELECT g, 'note ' || g, g, 'extra ' || g, now() FROM generate_series(51, 60) g;
             UPDATE ev.t SET extra = 'set later' WHERE id <= 5;",
        )
        .await
        .expect("add columns");
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;

    pipeline
        .sql
        .batch_execute(
            "ALTER TABLE ev.t DROP COLUMN note;
             INSERT INTO ev.t SELECT g, g, 'after drop' FROM generate_series(61, 70) g;
             UPDATE ev.t SET n = -n WHERE id % 10 = 0;
             DELETE FROM ev.t WHERE id = 1;",
        )
        .await
        .expect("drop a column");
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;

    // The dropped column is gone from BigQuery (a new generation of the table), so no row keeps
    // a value the source no longer has.
    let names = pg2bq_e2e::mirror::mirror_columns(&pipeline.stack, "e2e_evolve_ev", "t")
        .await
        .expect("the table");
    assert_eq!(names, ["id", "n", "extra", "at"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_merge_need_the_right_oidc_token() {
    use pg2bq_writer::oidc::test_support::{
        AUDIENCE, EMAIL, JwksServer, Reply, claims_with, jwks, keys, sign, valid_claims,
    };
    let stack = pg2bq_e2e::stack::Stack::from_env();
    stack
        .bigquery()
        .delete_dataset("e2e_oidc_bad")
        .await
        .expect("clean dataset");
    let [key, other_key] = keys();
    let server = JwksServer::start(Reply::ok(jwks(&[(key, "k1")]), Some("max-age=3600"))).await;
    let settings = [
        ("PG2BQ_PUSH_AUTH", "oidc"),
        ("PG2BQ_PUSH_AUDIENCE", AUDIENCE),
        ("PG2BQ_PUSH_SERVICE_ACCOUNT", EMAIL),
        ("PG2BQ_OIDC_JWKS_URL", server.url.as_str()),
    ];
    let writer = StandaloneWriter::start_with(&stack, "oidc", "e2e_oidc_", &settings).await;
    let body = push_body(&batch_json(1, true, "7"), "json");
    let bearer = |token: String| format!("Bearer {token}");
    let cases: Vec<(&str, Option<String>, u16)> = vec![
        ("no token", None, 401),
        ("not a JWT", Some("Bearer not.a.jwt".into()), 401),
        ("basic auth", Some("Basic dXNlcjpwYXNz".into()), 401),
        (
            "unknown key",
            Some(bearer(sign(other_key, "k2", &valid_claims()))),
            403,
        ),
        (
            "wrong signer for kid",
            Some(bearer(sign(other_key, "k1", &valid_claims()))),
            403,
        ),
        (
            "wrong audience",
            Some(bearer(sign(
                key,
                "k1",
                &claims_with(&json!({"aud": "https://elsewhere/push"})),
            ))),
            403,
        ),
        (
            "wrong email",
            Some(bearer(sign(
                key,
                "k1",
                &claims_with(&json!({"email": "intruder@example.com"})),
            ))),
            403,
        ),
        (
            "expired",
            Some(bearer(sign(
                key,
                "k1",
                &claims_with(&json!({"exp": 1_000_000_000, "iat": 999_999_000})),
            ))),
            403,
        ),
    ];
    for (what, authorization, status) in cases {
        let (got, text) = writer
            .post("push", body.clone(), authorization.as_deref())
            .await;
        assert_eq!(got, status, "{what}: {text}");
        assert!(
            !text.contains("eyJ"),
            "{what}: the answer must not echo the token: {text}"
        );
    }
    let token = bearer(sign(key, "k1", &valid_claims()));
    let (ok, text) = writer.post("push", body, Some(&token)).await;
    assert_eq!(ok, 204, "a valid token: {text}");
    assert_eq!(
        writer.post("merge", "", None).await.0,
        401,
        "/merge needs a token too"
    );
    let (merged, text) = writer.post("merge", "", Some(&token)).await;
    assert_eq!(merged, 200, "{text}");
    assert_eq!(
        server.hits(),
        2,
        "keys fetched once, plus one refetch for the unknown kid"
    );
}

fn row(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| Some(v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_only_mode_records_every_change_with_its_metadata() {
    let options = Options {
        writer_env: vec![("PG2BQ_WRITE_MODE", "append-only")],
        ..Options::default()
    };
    let schema = "CREATE SCHEMA ap; CREATE TABLE ap.t (id int PRIMARY KEY, v text);";
    let pipeline = TestPipeline::start_with("append", &["ap"], schema, options).await;
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO ap.t SELECT g, 'v' || g FROM generate_series(1, 100) g;
             UPDATE ap.t SET v = 'changed' WHERE id <= 10;
             UPDATE ap.t SET id = 1000 WHERE id = 50;
             DELETE FROM ap.t WHERE id BETWEEN 91 AND 95;
             TRUNCATE ap.t;",
        )
        .await
        .expect("changes");
    let sql = format!(
        "SELECT _pg2bq_change_type, COUNT(*), COUNT(DISTINCT _pg2bq_xid), COUNTIF(_pg2bq_seq IS NULL OR _pg2bq_commit_ts IS NULL) \
         FROM `{}.e2e_append_ap.t` GROUP BY 1 ORDER BY 1",
        pipeline.stack.project
    );
    let expected = vec![
        row(&["DELETE", "5", "1", "0"]),
        row(&["INSERT", "100", "1", "0"]),
        row(&["TRUNCATE", "1", "1", "0"]),
        row(&["UPDATE-DELETE", "1", "1", "0"]),
        // One statement list is one implicit transaction: a single xid throughout.
        row(&["UPDATE-INSERT", "11", "1", "0"]),
    ];
    let rows = pipeline
        .wait_for_query(&sql, &expected, Duration::from_secs(60))
        .await;
    assert_eq!(
        rows, expected,
        "one row per change, typed, with seq, commit time and transaction id"
    );
    let old_key = pipeline
        .stack
        .bigquery()
        .query(&format!(
            "SELECT id, v FROM `{}.e2e_append_ap.t` WHERE _pg2bq_change_type = 'UPDATE-DELETE'",
            pipeline.stack.project
        ))
        .await
        .expect("query");
    assert_eq!(
        old_key.rows,
        vec![vec![Some("50".into()), None]],
        "the old key of the key change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_primary_key_is_written_append_only_with_a_warning() {
    let schema = "CREATE SCHEMA nk; CREATE TABLE nk.log (at int, msg text); ALTER TABLE nk.log REPLICA IDENTITY FULL;";
    let pipeline = TestPipeline::start("keyless", &["nk"], schema).await;
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO nk.log SELECT g, 'm' || g FROM generate_series(1, 20) g;
             UPDATE nk.log SET msg = 'edited' WHERE at = 1;
             DELETE FROM nk.log WHERE at = 2;",
        )
        .await
        .expect("changes");
    let sql = format!(
        "SELECT _pg2bq_change_type, COUNT(*) FROM `{}.e2e_keyless_nk.log` GROUP BY 1 ORDER BY 1",
        pipeline.stack.project
    );
    let expected = vec![
        row(&["DELETE", "1"]),
        row(&["INSERT", "20"]),
        row(&["UPDATE-DELETE", "1"]),
        row(&["UPDATE-INSERT", "1"]),
    ];
    let rows = pipeline
        .wait_for_query(&sql, &expected, Duration::from_secs(60))
        .await;
    assert_eq!(rows, expected);
    let log = pipeline.writer_log();
    assert!(
        log.contains("has no primary key") && log.contains("append-only"),
        "a clear warning:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_never_saw_a_table_merges_it_when_asked() {
    let options = Options {
        writer_env: vec![("PG2BQ_MERGE_INTERVAL_MS", "0")],
        ..Options::default()
    };
    let schema = "CREATE SCHEMA cm; CREATE TABLE cm.t (a int, b text, v int, PRIMARY KEY (a, b));";
    let mut pipeline = TestPipeline::start_with("coldmerge", &["cm"], schema, options).await;
    pipeline
        .sql
        .batch_execute("INSERT INTO cm.t SELECT g, 'b' || g, g FROM generate_series(1, 40) g; DELETE FROM cm.t WHERE a <= 5;")
        .await
        .expect("rows");
    // Row changes only: the initial copy's sweep (a TRUNCATE marker at its snapshot) is there too.
    let changes = format!(
        "SELECT COUNT(*) FROM `{}.e2e_coldmerge_cm.t__changes` WHERE _pg2bq_op <> 'TRUNCATE'",
        pipeline.stack.project
    );
    let rows = pipeline
        .wait_for_query(&changes, &[row(&["45"])], Duration::from_secs(60))
        .await;
    assert_eq!(
        rows,
        vec![row(&["45"])],
        "the change table holds every change"
    );
    let mirror = format!(
        "SELECT COUNT(*) FROM `{}.e2e_coldmerge_cm.t`",
        pipeline.stack.project
    );
    assert_eq!(
        pipeline
            .stack
            .bigquery()
            .query(&mirror)
            .await
            .expect("mirror")
            .rows,
        vec![row(&["0"])],
        "nothing merged yet"
    );

    let other = StandaloneWriter::start(&pipeline.stack, "coldmerge-other", "e2e_coldmerge_").await;
    let (status, text) = other.post("merge", "", None).await;
    assert_eq!(status, 200, "{text}");
    // Merged by this round, or by the round the writer runs at start (then idle now).
    assert!(
        text.contains("\"merged_tables\":1") || text.contains("\"idle_tables\":1"),
        "{text}"
    );
    pipeline.wait_until_mirrored(Duration::from_secs(30)).await;
}

/// The emulator ignores `_CHANGE_TYPE` and `_CHANGE_SEQUENCE_NUMBER` (it appends every row), so
/// only inserts can be checked here; the rows, the pseudo-columns and the table definition are
/// pinned by the writer's unit tests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_cdc_rows_reach_the_mirror_table_directly() {
    let options = Options {
        writer_env: vec![
            ("PG2BQ_MERGE_STRATEGY", "native"),
            ("PG2BQ_MERGE_INTERVAL_MS", "0"),
        ],
        // The emulator appends every CDC row, so a backfilled copy of a row inserted while
        // capture starts would show twice here (BigQuery itself keeps the newest per key).
        capture_env: vec![("PG2BQ_BACKFILL".to_owned(), "none".to_owned())],
        ..Options::default()
    };
    let schema = "CREATE SCHEMA na; CREATE TABLE na.t (id bigint PRIMARY KEY, v text);";
    let mut pipeline = TestPipeline::start_with("native", &["na"], schema, options).await;
    pipeline
        .sql
        .batch_execute("INSERT INTO na.t SELECT g, 'v' || g FROM generate_series(1, 30) g")
        .await
        .expect("rows");
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    let tables = pipeline
        .stack
        .bigquery()
        .list_tables("e2e_native_na")
        .await
        .expect("tables");
    assert_eq!(
        tables,
        vec!["t".to_owned()],
        "no change table under the native strategy"
    );
}
