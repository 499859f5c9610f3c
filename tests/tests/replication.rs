//! End-to-end: PostgreSQL → capture → Pub/Sub emulator (push) → writer → bqemulator.
//! Needs the local stack (`make test` starts it).

use pg2bq_e2e::pipeline::TestPipeline;
use std::time::Duration;

const SCHEMA: &str = r#"
CREATE SCHEMA kinds;
CREATE TYPE kinds.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN kinds.positive AS integer CHECK (VALUE > 0);
CREATE TABLE kinds.everything (
    id          bigint PRIMARY KEY,
    small       smallint,
    regular     integer,
    exact       numeric(12, 3),
    unbounded   numeric,
    real4       real,
    double8     double precision,
    flag        boolean,
    label       text,
    code        varchar(20),
    fixed       char(3),
    day         date,
    instant     timestamptz,
    civil       timestamp,
    clock       time,
    doc         jsonb,
    raw_doc     json,
    ident       uuid,
    blob        bytea,
    feeling     kinds.mood,
    count       kinds.positive,
    tags        text[],
    span        interval,
    cash        money,
    address     inet
);
CREATE TABLE kinds.pairs (
    a integer,
    b text,
    v integer,
    PRIMARY KEY (a, b)
);
"#;

const EDGE_ROWS: &str = r#"
INSERT INTO kinds.everything VALUES
 (1, -32768, 2147483647, -123456789.125, 12345678901234567890.123456789, 1.5, 0.1, true,
  'héllo, "wörld"\n', '', 'ab', '0044-03-15 BC', '2024-02-29 23:59:59.999999+05:30',
  '1999-12-31 23:59:59.5', '24:00:00', '{"b": [1, 2.5, null], "a": {"x": "y"}}', '{"k":  1}',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00ff10', 'happy', 7, ARRAY['x', NULL, 'z'],
  '1 year 2 mons 3 days 04:05:06.5', '-1234.56', '192.168.0.1/24'),
 (2, 0, 0, 0, 'NaN', 'NaN', '-Infinity', false, '', 'x', NULL, 'infinity', '-infinity',
  'infinity', '00:00:00', '[]', 'null', NULL, '\x', 'sad', 1, '{}', '0', 0, NULL),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

const BULK_ROWS: &str = r#"
INSERT INTO kinds.everything (id, regular, exact, double8, flag, label, day, instant, doc, blob)
SELECT g, g * 7, g / 8.0, g / 3.0, g % 2 = 0, 'row ' || g, date '2000-01-01' + g,
       timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second 1 microsecond',
       jsonb_build_object('g', g), decode(md5(g::text), 'hex')
FROM generate_series(10, 2509) AS g;
INSERT INTO kinds.pairs SELECT g % 50, 'b' || (g / 50), g FROM generate_series(0, 499) AS g;
"#;

const CHANGES: &str = r#"
UPDATE kinds.everything SET label = 'updated', doc = NULL, flag = NOT flag WHERE id BETWEEN 10 AND 400;
UPDATE kinds.everything SET id = 100001 WHERE id = 1;
UPDATE kinds.pairs SET b = 'moved' WHERE a = 3 AND b = 'b0';
UPDATE kinds.pairs SET a = a + 1000 WHERE b = 'b9';
DELETE FROM kinds.everything WHERE id BETWEEN 500 AND 699;
DELETE FROM kinds.pairs WHERE a = 7;
BEGIN;
INSERT INTO kinds.everything (id, label) VALUES (5000, 'short-lived');
UPDATE kinds.everything SET label = 'still short-lived' WHERE id = 5000;
DELETE FROM kinds.everything WHERE id = 5000;
INSERT INTO kinds.everything (id, label) VALUES (5001, 'renamed twice');
UPDATE kinds.everything SET id = 5002 WHERE id = 5001;
UPDATE kinds.everything SET id = 5003, label = 'final' WHERE id = 5002;
COMMIT;
BEGIN;
DELETE FROM kinds.everything WHERE id = 2;
INSERT INTO kinds.everything (id, label) VALUES (2, 'reborn');
COMMIT;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bigquery_mirrors_inserts_updates_key_changes_and_deletes_of_every_type() {
    let mut pipeline = TestPipeline::start("mirror", &["kinds"], SCHEMA).await;
    pipeline
        .sql
        .batch_execute(EDGE_ROWS)
        .await
        .expect("edge rows");
    pipeline
        .sql
        .batch_execute(BULK_ROWS)
        .await
        .expect("bulk rows");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(120)).await;
    let everything = reports
        .iter()
        .find(|r| r.table == "kinds.everything")
        .expect("report");
    assert_eq!(everything.source_rows, 2503);

    pipeline.sql.batch_execute(CHANGES).await.expect("changes");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(120)).await;
    let rows = pg2bq_e2e::pipeline::row_counts(&reports);
    assert_eq!(
        rows,
        // 2503 - 200 deleted + 1 (5003); 500 - 9 with a = 7 (the 'b9' one moved to a = 1007 first).
        vec![
            ("kinds.everything".to_owned(), 2304),
            ("kinds.pairs".to_owned(), 491)
        ]
    );

    // Independently of validate: the renumbered rows, read straight from BigQuery.
    let bigquery = pipeline.stack.bigquery();
    let answer = bigquery
        .query(&format!(
            "SELECT id, label FROM `{}.e2e_mirror_kinds.everything` WHERE id IN (1, 2, 5000, 5001, 5002, 5003, 100001) ORDER BY id",
            pipeline.stack.project
        ))
        .await
        .expect("query");
    let found: Vec<Vec<Option<String>>> = answer.rows;
    let text = |s: &str| Some(s.to_owned());
    assert_eq!(
        found,
        vec![
            vec![text("2"), text("reborn")],
            vec![text("5003"), text("final")],
            vec![text("100001"), text("héllo, \"wörld\"\\n")],
        ]
    );
    assert!(pipeline.writer_running(), "the writer must keep serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_confirms_its_position_on_stop_and_resumes_from_the_slot() {
    let schema = "CREATE SCHEMA app; CREATE TABLE app.events (id bigint PRIMARY KEY, payload text, at timestamptz);";
    let mut pipeline = TestPipeline::start("restart", &["app"], schema).await;
    let before = pipeline.slot_confirmed_lsn().await;

    pipeline
        .sql
        .batch_execute(
            "INSERT INTO app.events SELECT g, 'first ' || g, now() FROM generate_series(1, 1000) g",
        )
        .await
        .expect("first rows");
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert!(
        pipeline.stop_capture(),
        "capture must exit cleanly on SIGTERM"
    );
    let after = pipeline.slot_confirmed_lsn().await;
    assert!(
        after > before,
        "the slot must have advanced past the published changes ({before} -> {after})"
    );

    // Changes made while capture is down wait in the slot.
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO app.events SELECT g, 'second ' || g, now() FROM generate_series(1001, 1500) g;
             UPDATE app.events SET payload = 'changed while down' WHERE id % 10 = 0;
             DELETE FROM app.events WHERE id % 7 = 0;",
        )
        .await
        .expect("changes while down");
    pipeline.start_capture().await;
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert_eq!(reports[0].source_rows, 1500 - 1500 / 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_empties_the_mirror_and_later_rows_stay() {
    let schema = "CREATE SCHEMA tr; CREATE TABLE tr.t (id int PRIMARY KEY, v text); CREATE TABLE tr.other (id int PRIMARY KEY);";
    let mut pipeline = TestPipeline::start("truncate", &["tr"], schema).await;
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO tr.t SELECT g, 'before ' || g FROM generate_series(1, 200) g;
             INSERT INTO tr.other SELECT generate_series(1, 50);",
        )
        .await
        .expect("rows");
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    pipeline
        .sql
        .batch_execute(
            "BEGIN; TRUNCATE tr.t; INSERT INTO tr.t SELECT g, 'after ' || g FROM generate_series(150, 160) g; COMMIT;
             INSERT INTO tr.t VALUES (1000, 'later');",
        )
        .await
        .expect("truncate");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    let rows = pg2bq_e2e::pipeline::row_counts(&reports);
    assert_eq!(
        rows,
        vec![("tr.other".to_owned(), 50), ("tr.t".to_owned(), 12)]
    );
}
