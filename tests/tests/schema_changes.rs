//! Schema changes made while streaming end with BigQuery equal to the source, row by row:
//! columns added (with and without a default), dropped, renamed and retyped, tables renamed,
//! dropped and created again, partitions truncated, detached, dropped and attached. Each test
//! ends with the comparison `pg2bq validate` makes, and checks the BigQuery tables' columns and
//! existence. Needs the local stack.

use pg2bq_e2e::mirror::mirror_columns;
use pg2bq_e2e::pipeline::{Options, TestPipeline};
use std::time::Duration;

/// Fast publication checks: schema changes without row changes, dropped tables and partition
/// maintenance are found by them.
fn options() -> Options {
    Options {
        capture_env: vec![("PG2BQ_PUBLICATION_REFRESH_SECS".into(), "1".into())],
        ..Options::default()
    }
}

/// The BigQuery columns of `schema.table` (none if the table does not exist), metadata left out.
async fn columns(pipeline: &TestPipeline, schema: &str, table: &str) -> Option<Vec<String>> {
    let dataset = format!("e2e_{}_{schema}", pipeline.name);
    mirror_columns(&pipeline.stack, &dataset, table).await
}

/// Waits until `schema.table` is gone from BigQuery (or its columns are `wanted`).
async fn wait_for_columns(
    pipeline: &TestPipeline,
    schema: &str,
    table: &str,
    wanted: Option<&[&str]>,
    timeout: Duration,
) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let now = columns(pipeline, schema, table).await;
        let matches = match (&now, wanted) {
            (None, None) => true,
            (Some(have), Some(want)) => have.iter().map(String::as_str).eq(want.iter().copied()),
            _ => false,
        };
        if matches {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{schema}.{table}: BigQuery columns {now:?}, wanted {wanted:?}\n{}",
            pipeline.writer_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

const COLUMN_SCHEMA: &str = "
CREATE SCHEMA sc;
CREATE TABLE sc.add_default (id int PRIMARY KEY, v text);
CREATE TABLE sc.add_idle (id int PRIMARY KEY, v text);
CREATE TABLE sc.add_nullable (id int PRIMARY KEY, v text);
CREATE TABLE sc.drop_col (id int PRIMARY KEY, v text, extra text);
CREATE TABLE sc.rename_col (id int PRIMARY KEY, name text);
CREATE TABLE sc.widen (id int PRIMARY KEY, n int, s varchar(10));
CREATE TABLE sc.int_to_text (id int PRIMARY KEY, n int);
CREATE TABLE sc.rounding (id int PRIMARY KEY, amount numeric(12,2));
CREATE TABLE sc.rekeyed (id int PRIMARY KEY, code text NOT NULL);
INSERT INTO sc.add_default SELECT g, 'v' || g FROM generate_series(1, 20) g;
INSERT INTO sc.add_idle SELECT g, 'v' || g FROM generate_series(1, 20) g;
INSERT INTO sc.add_nullable SELECT g, 'v' || g FROM generate_series(1, 20) g;
INSERT INTO sc.drop_col SELECT g, 'v' || g, 'x' || g FROM generate_series(1, 20) g;
INSERT INTO sc.rename_col SELECT g, 'n' || g FROM generate_series(1, 20) g;
INSERT INTO sc.widen SELECT g, g, 's' || g FROM generate_series(1, 20) g;
INSERT INTO sc.int_to_text SELECT g, g FROM generate_series(1, 20) g;
INSERT INTO sc.rounding SELECT g, g + 0.25 FROM generate_series(1, 20) g;
INSERT INTO sc.rekeyed SELECT g, 'c' || g FROM generate_series(1, 20) g;";

/// Each change, then (for most) row changes after it.
const COLUMN_CHANGES: &str = "
ALTER TABLE sc.add_default ADD COLUMN flag int NOT NULL DEFAULT 7;
INSERT INTO sc.add_default VALUES (100, 'new', 8);
ALTER TABLE sc.add_idle ADD COLUMN stamp text DEFAULT 'filled';
ALTER TABLE sc.add_nullable ADD COLUMN note text;
UPDATE sc.add_nullable SET note = 'n' || id WHERE id % 3 = 0;
ALTER TABLE sc.drop_col DROP COLUMN extra;
UPDATE sc.drop_col SET v = 'changed' WHERE id < 5;
ALTER TABLE sc.rename_col RENAME COLUMN name TO title;
UPDATE sc.rename_col SET title = 'updated' WHERE id = 1;
ALTER TABLE sc.widen ALTER COLUMN n TYPE bigint, ALTER COLUMN s TYPE varchar(50);
UPDATE sc.widen SET n = 5000000000, s = repeat('w', 40) WHERE id = 2;
ALTER TABLE sc.int_to_text ALTER COLUMN n TYPE text;
UPDATE sc.int_to_text SET n = 'text ' || n WHERE id % 2 = 0;
ALTER TABLE sc.rounding ALTER COLUMN amount TYPE numeric(12,1);
ALTER TABLE sc.rekeyed DROP CONSTRAINT rekeyed_pkey, ADD PRIMARY KEY (code);
UPDATE sc.rekeyed SET id = id + 100 WHERE id <= 3;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_changes_while_streaming_end_equal_to_the_source() {
    let mut pipeline = TestPipeline::start_with("schcols", &["sc"], COLUMN_SCHEMA, options()).await;
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    pipeline
        .sql
        .batch_execute(COLUMN_CHANGES)
        .await
        .expect("schema changes");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(120)).await;
    assert_eq!(reports.len(), 9, "{reports:#?}");
    let timeout = Duration::from_secs(30);
    // Dropped and renamed columns are gone from BigQuery: the table was made again.
    wait_for_columns(&pipeline, "sc", "drop_col", Some(&["id", "v"]), timeout).await;
    wait_for_columns(
        &pipeline,
        "sc",
        "rename_col",
        Some(&["id", "title"]),
        timeout,
    )
    .await;
    wait_for_columns(&pipeline, "sc", "int_to_text", Some(&["id", "n"]), timeout).await;
    wait_for_columns(
        &pipeline,
        "sc",
        "add_idle",
        Some(&["id", "v", "stamp"]),
        timeout,
    )
    .await;
    let log = pipeline.writer_log();
    assert!(
        log.contains("a new generation starts"),
        "the writer made tables again:\n{log}"
    );
}

const TABLE_SCHEMA: &str = "
CREATE SCHEMA st;
CREATE TABLE st.renamed_away (id int PRIMARY KEY, v text);
CREATE TABLE st.dropped (id int PRIMARY KEY, v text);
CREATE TABLE st.recreated (id int PRIMARY KEY, v text);
CREATE TABLE st.kept (id int PRIMARY KEY, v text);
INSERT INTO st.renamed_away SELECT g, 'v' || g FROM generate_series(1, 20) g;
INSERT INTO st.dropped SELECT g, 'v' || g FROM generate_series(1, 20) g;
INSERT INTO st.recreated SELECT g, 'v' || g FROM generate_series(1, 20) g;
INSERT INTO st.kept SELECT g, 'v' || g FROM generate_series(1, 20) g;";

const TABLE_CHANGES: &str = "
ALTER TABLE st.renamed_away RENAME TO renamed_here;
INSERT INTO st.renamed_here VALUES (100, 'after the rename');
DROP TABLE st.dropped;
DROP TABLE st.recreated;
CREATE TABLE st.recreated (id int PRIMARY KEY, other int);
INSERT INTO st.recreated SELECT g, g * 2 FROM generate_series(5, 9) g;
UPDATE st.kept SET v = 'still here' WHERE id = 1;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_renamed_dropped_and_created_again_leave_nothing_behind() {
    let mut pipeline = TestPipeline::start_with("schtabs", &["st"], TABLE_SCHEMA, options()).await;
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    pipeline
        .sql
        .batch_execute(TABLE_CHANGES)
        .await
        .expect("table changes");
    let timeout = Duration::from_secs(60);
    wait_for_columns(&pipeline, "st", "renamed_away", None, timeout).await;
    wait_for_columns(&pipeline, "st", "dropped", None, timeout).await;
    wait_for_columns(
        &pipeline,
        "st",
        "recreated",
        Some(&["id", "other"]),
        timeout,
    )
    .await;
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    let tables: Vec<String> = reports.iter().map(|r| r.table.clone()).collect();
    assert_eq!(
        tables,
        ["st.kept", "st.recreated", "st.renamed_here"],
        "{reports:#?}"
    );
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        vec![
            ("st.kept".to_owned(), 20),
            ("st.recreated".to_owned(), 5),
            ("st.renamed_here".to_owned(), 21)
        ]
    );
}

const PARTITION_SCHEMA: &str = "
CREATE SCHEMA sp;
CREATE TABLE sp.events (id int, day int, v text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE sp.events_1 PARTITION OF sp.events FOR VALUES FROM (0) TO (10);
CREATE TABLE sp.events_2 PARTITION OF sp.events FOR VALUES FROM (10) TO (20);
CREATE TABLE sp.events_3 PARTITION OF sp.events FOR VALUES FROM (20) TO (30);
CREATE TABLE sp.events_4 PARTITION OF sp.events FOR VALUES FROM (30) TO (40);
INSERT INTO sp.events SELECT g, g % 40, 'v' || g FROM generate_series(1, 400) g;
CREATE TABLE sp.loose (id int, day int, v text, PRIMARY KEY (id, day));
INSERT INTO sp.loose SELECT g, 40 + g % 10, 'loose ' || g FROM generate_series(1000, 1049) g;";

const PARTITION_CHANGES: &str = "
TRUNCATE sp.events_1;
ALTER TABLE sp.events DETACH PARTITION sp.events_2;
DROP TABLE sp.events_3;
ALTER TABLE sp.events ATTACH PARTITION sp.loose FOR VALUES FROM (40) TO (50);
INSERT INTO sp.events VALUES (5000, 35, 'after');";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_maintenance_under_publish_via_partition_root_ends_equal() {
    let mut pipeline =
        TestPipeline::start_with("schparts", &["sp.events"], PARTITION_SCHEMA, options()).await;
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        vec![("sp.events".to_owned(), 400)]
    );
    pipeline
        .sql
        .batch_execute(PARTITION_CHANGES)
        .await
        .expect("partition maintenance");
    // 100 rows per partition: partitions 2 and 3 left, 1 was emptied, 50 rows came with the
    // attached table and one was inserted.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let reports = pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
        if pg2bq_e2e::pipeline::row_counts(&reports) == vec![("sp.events".to_owned(), 151)] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{reports:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
