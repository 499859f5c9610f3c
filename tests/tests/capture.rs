//! End-to-end tests of capture: exact values on the wire, crashes, idle slots.
//! Needs the local stack (`make test` starts it).

use pg2bq_core::wire::{Op, Value};
use pg2bq_e2e::pipeline::{Options, TestPipeline};
use pg2bq_e2e::pubsub::Pulled;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_postgres::SimpleQueryMessage;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const TYPES: &str = r#"
CREATE SCHEMA w;
CREATE TYPE w.color AS ENUM ('red', 'green');
CREATE DOMAIN w.price AS numeric(8, 2) CHECK (VALUE >= 0);
CREATE TYPE w.pair AS (x integer, y text);
CREATE TABLE w.values (
    id integer PRIMARY KEY, i2 smallint, i8 bigint, n numeric(20, 5), nn numeric, f4 real,
    f8 double precision, b boolean, t text, v varchar(10), c char(4), by bytea, j json, jb jsonb,
    u uuid, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval,
    e w.color, dom w.price, arr integer[], arr2 text[], rng int4range, pt point, comp w.pair,
    ip inet, m money, bits bit(4), tsv tsvector, big text
);
ALTER TABLE w.values ALTER COLUMN big SET STORAGE EXTERNAL;
"#;

const ROWS: &str = r#"
INSERT INTO w.values VALUES
 (1, -32768, 9223372036854775807, -123456789012345.12345, 'NaN', 3.4028235e38, 'Infinity', true,
  E'tab\there ''quoted'' "dq" \\ back, ünïcödé 😀', 'ten chars!', 'ab', '\xdeadbeef',
  '{"a": [1, 2.50, null]}', '{"b": {"c": true}, "a": 1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '4713-01-01 BC', '23:59:59.999999', '12:00:00+05:30', '294276-12-31 23:59:59.999999',
  '-infinity', '-1 year -2 mons +3 days -04:05:06.789', 'green', 12.5, '{1,NULL,3}',
  '{{a,b},{NULL,"d e"}}', '[1,10)', '(1.5,-2)', '(7,"x,y")', '::1', '12.34', B'1010',
  'fat:2 cat:1', NULL),
 (2, 0, 0, 0, 'Infinity', '-0', 'NaN', false, '', '', '', '\x', 'null', '[]', NULL, 'infinity',
  '00:00', NULL, '-infinity', 'infinity', '0', NULL, 0, '{}', '{}', 'empty', NULL, NULL, NULL,
  '-0.01', B'0000', '', repeat('toasted!', 2000)),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
UPDATE w.values SET t = 'changed, big untouched' WHERE id = 2;
"#;

async fn pull_changes(pipeline: &TestPipeline, subscription: &str, expected: usize) -> Vec<Pulled> {
    let (pubsub, _) = (pg2bq_e2e::pubsub::PubSub::new(&pipeline.stack), ());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut messages = Vec::new();
    while messages
        .iter()
        .map(|m: &Pulled| m.batch.changes.len())
        .sum::<usize>()
        < expected
    {
        assert!(
            Instant::now() < deadline,
            "only {} messages arrived",
            messages.len()
        );
        // The initial backfill's sweep (nothing to copy: the table was empty) is not a row change.
        messages.extend(
            pubsub
                .pull(subscription, 100)
                .await
                .into_iter()
                .filter(|m| m.batch.changes.iter().all(|c| c.op != Op::Sweep)),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_travels_exactly_as_postgres_prints_it() {
    let options = Options {
        writer: false,
        capture_env: env(&[("PG2BQ_COMPRESSION", "gzip")]),
        ..Options::default()
    };
    let pipeline = TestPipeline::start_with("wire", &["w"], TYPES, options).await;
    let (_, subscription) = pipeline.pull_subscription().await;
    pipeline.sql.batch_execute(ROWS).await.expect("rows");
    let messages = pull_changes(&pipeline, &subscription, 4).await;

    // What PostgreSQL holds, in each type's output form (the simple query protocol).
    let mut expected: HashMap<String, Vec<Option<String>>> = HashMap::new();
    for message in pipeline
        .sql
        .simple_query("SELECT * FROM w.values")
        .await
        .expect("select")
    {
        if let SimpleQueryMessage::Row(row) = message {
            let values: Vec<Option<String>> = (0..row.len())
                .map(|i| row.get(i).map(str::to_owned))
                .collect();
            expected.insert(values[0].clone().unwrap(), values);
        }
    }

    let mut inserts = 0;
    for message in &messages {
        assert_eq!(message.attributes["encoding"], "json+gzip");
        assert_eq!(message.attributes["table"], "w.values");
        assert_eq!(
            message.attributes["changes"],
            message.batch.changes.len().to_string()
        );
        assert_eq!(
            message.attributes["first_seq"],
            message.batch.changes[0].seq.to_string()
        );
        let columns = &message.batch.columns;
        assert_eq!(columns.len(), 33);
        assert!(columns[0].key && columns.iter().skip(1).all(|c| !c.key));
        let types: Vec<&str> = columns.iter().map(|c| c.pg_type.as_str()).collect();
        assert_eq!(
            &types[20..25],
            ["interval", "enum", "numeric", "int4[]", "text[]"]
        );
        assert_eq!(
            columns[22].type_modifier,
            ((8 << 16) | 2) + 4,
            "the domain carries its base type's modifier"
        );
        for change in &message.batch.changes {
            let new = change.new.as_ref().expect("a new row");
            let id = match &new[0] {
                Value::Text(id) => id.clone(),
                other => panic!("id is {other:?}"),
            };
            match change.op {
                Op::Insert if id == "2" => {
                    // The row as inserted: everything but `t` is as PostgreSQL holds it now.
                    assert_eq!(new[32], Value::Text("toasted!".repeat(2000)));
                }
                Op::Insert => {
                    inserts += 1;
                    let wire: Vec<Option<String>> = new
                        .iter()
                        .map(|v| match v {
                            Value::Text(t) => Some(t.clone()),
                            Value::Null => None,
                            Value::UnchangedToast => {
                                panic!("an insert has no unchanged TOAST value")
                            }
                            Value::InvalidUtf8(_) => panic!("a UTF-8 database sends UTF-8"),
                        })
                        .collect();
                    assert_eq!(
                        wire, expected[&id],
                        "row {id}: the wire differs from PostgreSQL"
                    );
                }
                Op::Update => {
                    assert_eq!(id, "2");
                    assert_eq!(new[8], Value::Text("changed, big untouched".into()));
                    assert_eq!(
                        new[32],
                        Value::UnchangedToast,
                        "an unchanged TOAST value is marked, never NULL"
                    );
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(inserts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_killed_mid_stream_loses_nothing() {
    let schema = "CREATE SCHEMA k; CREATE TABLE k.accounts (id bigint PRIMARY KEY, balance numeric(12, 2), note text);";
    let mut pipeline = TestPipeline::start("kill", &["k"], schema).await;
    let source = pipeline.stack.source("e2e_kill");
    let workload = tokio::spawn(async move {
        let sql = pg2bq_core::pg_connect::connect_sql(&source, "pg2bq-e2e-workload")
            .await
            .expect("workload");
        for tx in 0..200i64 {
            let base = tx * 10;
            sql.batch_execute(&format!(
                "BEGIN;
                 INSERT INTO k.accounts SELECT g, g * 1.5, 'tx {tx}' FROM generate_series({base}, {base} + 9) g;
                 UPDATE k.accounts SET balance = balance + 1, note = 'updated by {tx}' WHERE id % 7 = {tx} % 7 AND id < {base};
                 DELETE FROM k.accounts WHERE id = {base} - 5;
                 COMMIT;"
            ))
            .await
            .expect("workload transaction");
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    pipeline.kill_capture();
    tokio::time::sleep(Duration::from_millis(500)).await;
    pipeline.start_capture().await;
    workload.await.expect("workload");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(120)).await;
    assert_eq!(reports[0].source_rows, 2000 - 199);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tables_do_not_hold_wal_that_another_database_writes() {
    let options = Options {
        writer: false,
        capture_env: env(&[("PG2BQ_HEARTBEAT_SECS", "1")]),
        ..Options::default()
    };
    let pipeline = TestPipeline::start_with(
        "idle",
        &["quiet"],
        "CREATE SCHEMA quiet; CREATE TABLE quiet.t (id int PRIMARY KEY);",
        options,
    )
    .await;
    let other_db = "e2e_idle_other";
    pg2bq_e2e::pipeline::recreate_database(&pipeline.stack, other_db).await;
    let other = pg2bq_core::pg_connect::connect_sql(&pipeline.stack.source(other_db), "pg2bq-e2e")
        .await
        .expect("other");
    let lsn = |sql: &'static str| {
        let client = &pipeline.sql;
        async move {
            client
                .query_one(sql, &[])
                .await
                .expect("lsn")
                .get::<_, i64>(0)
        }
    };
    let before = lsn("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").await;
    other
        .batch_execute("CREATE TABLE noise (id int, pad text); INSERT INTO noise SELECT g, repeat('x', 200) FROM generate_series(1, 150000) g;")
        .await
        .expect("noise");
    let written = lsn("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").await - before;
    assert!(
        written > 30 << 20,
        "the other database wrote only {written} bytes of WAL"
    );

    let lag_sql = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = 'e2e_idle'";
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lag = i64::MAX;
    while Instant::now() < deadline {
        lag = lsn(lag_sql).await;
        if lag < 1 << 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        lag < 1 << 20,
        "the slot still holds {lag} bytes of the {written} written elsewhere"
    );
    eprintln!(
        "idle slot: {written} bytes of WAL written in another database, slot lag now {lag} bytes"
    );
    let reported = pipeline
        .capture_metric("slot_lag_bytes")
        .await
        .expect("slot lag metric");
    assert!(reported >= 0.0, "capture reports slot lag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_slot_stops_capture_with_the_way_to_recover() {
    let options = Options {
        writer: false,
        ..Options::default()
    };
    let schema = "CREATE SCHEMA gone; CREATE TABLE gone.t (id int PRIMARY KEY);";
    let mut pipeline = TestPipeline::start_with("dropped", &["gone"], schema, options).await;
    assert!(pipeline.stop_capture(), "capture stops cleanly");
    pipeline
        .sql
        .batch_execute("SELECT pg_drop_replication_slot('e2e_dropped')")
        .await
        .expect("drop the slot");
    let mut capture = pipeline.spawn_capture("capture-again", pg2bq_e2e::processes::free_port());
    let exit = tokio::task::block_in_place(|| capture.wait_exit(Duration::from_secs(20)));
    assert_eq!(
        exit,
        Some(false),
        "capture must stop with an error\n{}",
        capture.log_tail(20)
    );
    let log = capture.log();
    assert!(
        log.contains("slot 'e2e_dropped'")
            && log.contains("no longer exists")
            && log.contains("DELETE FROM pg2bq.slots"),
        "the error names the slot and the way to recover:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_capture_waits_until_the_slot_is_free() {
    let schema = "CREATE SCHEMA two; CREATE TABLE two.t (id int PRIMARY KEY, v text);";
    let mut pipeline = TestPipeline::start("second", &["two"], schema).await;
    let port = pg2bq_e2e::processes::free_port();
    let mut second = pipeline.spawn_capture("capture-second", port);
    let second_health = format!("http://127.0.0.1:{port}/healthz");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        second.is_running(),
        "the second capture waits rather than exits"
    );
    assert!(!pg2bq_e2e::processes::wait_healthy(&second_health, Duration::from_millis(300)).await);
    assert!(
        second.log().contains("in use by another process"),
        "{}",
        second.log_tail(10)
    );

    assert!(pipeline.stop_capture(), "the first capture stops cleanly");
    assert!(
        pg2bq_e2e::processes::wait_healthy(&second_health, Duration::from_secs(20)).await,
        "the second capture takes over\n{}",
        second.log_tail(20)
    );
    pipeline
        .sql
        .batch_execute("INSERT INTO two.t SELECT g, 'v' || g FROM generate_series(1, 100) g")
        .await
        .expect("rows");
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
}
