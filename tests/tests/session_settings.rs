//! Values read under pg2bq's own session settings, whatever the database's defaults say: money
//! under a German `lc_monetary`, bytea under `bytea_output = escape`, and timeouts too short
//! for a backfill all replicate exactly; text that is not UTF-8 in a `SQL_ASCII`
//! database is quarantined with the reason and the fix while capture goes on. Needs the local
//! stack.

use pg2bq_e2e::cli::{describe, pg2bq};
use pg2bq_e2e::pipeline::{Options, TestPipeline};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_and_bytea_under_the_database_defaults_of_another_locale_replicate_exactly() {
    // The database's defaults, as an application's sessions see them: euros printed the German
    // way, bytea in the escape form, and statements and idle transactions ended after 200 ms
    // (a backfill's snapshot session sits idle in its transaction while the table is copied).
    let schema = "
ALTER DATABASE e2e_locale SET lc_monetary = 'de_DE.utf8';
ALTER DATABASE e2e_locale SET bytea_output = 'escape';
ALTER DATABASE e2e_locale SET statement_timeout = '200ms';
ALTER DATABASE e2e_locale SET idle_in_transaction_session_timeout = '200ms';
CREATE SCHEMA m;
CREATE TABLE m.t (id int PRIMARY KEY, amount money, amounts money[], raw bytea);
INSERT INTO m.t VALUES
  (1, 1234.56, ARRAY[0.01, -92233720368547758.08]::numeric[]::money[], '\\x00ff41'),
  (2, -0.5, NULL, 'plain');
INSERT INTO m.t SELECT g, g * 1000.25, NULL, decode(md5(g::text), 'hex')
  FROM generate_series(3, 30000) g;";
    let mut pipeline = TestPipeline::start_with(
        "locale",
        &["m"],
        schema,
        Options {
            capture_env: vec![("PG2BQ_BACKFILL_CONCURRENCY".into(), "1".into())],
            ..Options::default()
        },
    )
    .await;
    // An application's session (no pinned settings) sees the German form.
    let stack = pg2bq_e2e::stack::Stack::from_env();
    let application = pg2bq_core::pg_connect::connect_sql_with_database_defaults(
        &stack.source("e2e_locale"),
        "pg2bq-e2e-application",
    )
    .await
    .expect("an application's session");
    let shown: String = application
        .query_one("SELECT 1234.56::money::text", &[])
        .await
        .expect("money")
        .get(0);
    assert_eq!(shown, "1.234,56 €", "the database's default is German");
    application
        .batch_execute(
            "INSERT INTO m.t VALUES (30001, 98765.43, ARRAY[1.5]::numeric[]::money[], '\\xdeadbeef');
             UPDATE m.t SET amount = amount + 0.01::money, raw = '\\x5c' WHERE id = 2;",
        )
        .await
        .expect("an application's changes");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(180)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        vec![("m.t".to_owned(), 30_001)]
    );
    let rows = pipeline
        .stack
        .bigquery()
        .query(&format!(
            "SELECT CAST(CAST(amount * 100 AS INT64) AS STRING), TO_HEX(raw) FROM `{}.e2e_locale_m.t` \
             WHERE id IN (1, 2, 30001) ORDER BY id",
            pipeline.stack.project
        ))
        .await
        .expect("the mirror")
        .rows;
    let text = |s: &str| Some(s.to_owned());
    // Amounts in cents: exact, whatever form the emulator prints NUMERIC in.
    assert_eq!(
        rows,
        vec![
            vec![text("123456"), text("00ff41")],
            vec![text("-49"), text("5c")],
            vec![text("9876543"), text("deadbeef")],
        ]
    );
    assert!(
        !pipeline.capture().log().contains("timeout"),
        "the database's timeouts never reach pg2bq's sessions"
    );
    // `profile test source` explains why the German database is exact.
    let profile = pg2bq(
        &pipeline,
        &["profile", "test", "source"],
        &[("PG2BQ_INCLUDE", "m")],
    );
    let out = String::from_utf8_lossy(&profile.stdout);
    assert!(
        out.lines().any(|l| l.starts_with("PASS  lc_monetary")
            && l.contains("m.t.amount")
            && l.contains("de_DE.utf8")),
        "{}",
        describe(&profile)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_ascii_text_that_is_not_utf8_is_quarantined_and_capture_goes_on() {
    let schema = "
CREATE SCHEMA a;
CREATE TABLE a.t (id int PRIMARY KEY, v text);
INSERT INTO a.t VALUES (1, 'plain'), (2, E'caf\\xe9 (latin-1)');";
    let options = Options {
        database_options: "ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            .into(),
        wait_for_backfill: false,
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("sqlascii", &["a"], schema, options).await;
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO a.t VALUES (3, E'\\xff\\xfe not text');
             INSERT INTO a.t VALUES (4, 'after');
             UPDATE a.t SET v = 'changed' WHERE id = 1;",
        )
        .await
        .expect("changes");
    let after: String = pipeline
        .sql
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("lsn")
        .get(0);
    let after = pg2bq_core::lsn::Lsn::parse(&after).expect("an LSN");
    // The valid rows arrive, the two that are not UTF-8 (one backfilled, one streamed) wait in
    // the quarantine with the column and the fix, and the slot moves past them.
    let bigquery = pipeline.stack.bigquery();
    let rows = pipeline
        .wait_for_query(
            &format!(
                "SELECT CAST(id AS STRING), v FROM `{}.e2e_sqlascii_a.t` ORDER BY id",
                pipeline.stack.project
            ),
            &[
                vec![Some("1".into()), Some("changed".into())],
                vec![Some("4".into()), Some("after".into())],
            ],
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(rows.len(), 2, "{rows:?}\n{}", pipeline.writer_log());
    let deadline = Instant::now() + Duration::from_secs(60);
    let open = loop {
        let open = pg2bq_bigquery::quarantine::open_changes(&bigquery, "e2e_sqlascii_a", None)
            .await
            .expect("the quarantine");
        if open.len() >= 2 || Instant::now() > deadline {
            break open;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Row 3 may wait twice: streamed, and read by the copy if its snapshot came after the
    // insert. Rows 2 and 3 are there, and nothing else.
    let mut rows: Vec<&str> = open
        .iter()
        .map(|c| {
            if c.change.contains(r#""new":["2","#) {
                "2"
            } else if c.change.contains(r#""new":["3","#) {
                "3"
            } else {
                "other"
            }
        })
        .collect();
    rows.sort_unstable();
    rows.dedup();
    assert_eq!(rows, ["2", "3"], "{open:?}");
    for change in &open {
        assert!(
            change
                .error
                .contains("column v: the value is not valid UTF-8")
                && change.error.contains("SQL_ASCII")
                && change
                    .error
                    .contains("Fix: correct the value at the source"),
            "{}",
            change.error
        );
        assert!(change.change.contains("invalid_utf8"), "{}", change.change);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while pipeline.slot_confirmed_lsn().await < after {
        assert!(
            Instant::now() < deadline,
            "the slot does not pass the invalid change"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(pipeline.capture().is_running(), "capture never stopped");
    assert!(
        !pipeline.capture().log().contains("ERROR"),
        "{}",
        pipeline.capture().log_tail(30)
    );
    // The fix the reason names: correct the values at the source; the updates replace them.
    pipeline
        .sql
        .batch_execute(
            "UPDATE a.t SET v = 'café (fixed)' WHERE id = 2; UPDATE a.t SET v = 'fixed' WHERE id = 3",
        )
        .await
        .expect("the fix");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(120)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        vec![("a.t".to_owned(), 4)]
    );
}
