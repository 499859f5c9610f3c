//! End-to-end tests of a backfill under maintenance: a table rewritten while its ranges are
//! copied (VACUUM FULL, CLUSTER, ALTER COLUMN TYPE, pg_repack) is detected by its relfilenode and
//! copied again, and BigQuery ends equal to the source; a table dropped or renamed while its
//! ranges are pending loses its plan (renamed, it is planned again under its new name) and the
//! other tables go on. Needs the local stack.
//!
//! The rewrites are placed deterministically: a test session holds an ACCESS EXCLUSIVE lock on
//! the table until capture's copying connection waits for it in the middle of the table, then
//! lets the rewrite (queued behind the lock, or made in the same transaction) through.

use pg2bq_e2e::backfill_probe::{
    COPYING, ranges_of, relfilenode, session, wait_blocked, wait_midway,
};
use pg2bq_e2e::pipeline::{Options, TestPipeline};
use std::time::Duration;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A slow backfill: small ranges, one at a time, small batches.
fn slow_backfill() -> Options {
    Options {
        capture_env: env(&[
            ("PG2BQ_BACKFILL_RANGE_BLOCKS", "16"),
            ("PG2BQ_BACKFILL_CONCURRENCY", "1"),
            ("PG2BQ_BATCH_MAX_ROWS", "100"),
            ("PG2BQ_PUBLICATION_REFRESH_SECS", "1"),
        ]),
        wait_for_backfill: false,
        ..Options::default()
    }
}

/// Runs `rewrite` (VACUUM FULL or CLUSTER, which cannot run in a transaction) on `table` while
/// its backfill waits in the middle of the table: the copy of the waiting range goes first
/// (it queued first), the rewrite next, and the range after it finds the new file.
async fn rewrite_midway(pipeline: &TestPipeline, table: &str, prepare: &str, rewrite: &str) {
    wait_midway(pipeline, table, 3).await;
    // Rows deleted first, so that the rewrite compacts the table: rows move to other blocks.
    pipeline.sql.batch_execute(prepare).await.expect("prepare");
    let holder = session(pipeline, "pg2bq-e2e-holder").await;
    holder
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .expect("lock");
    wait_blocked(pipeline, COPYING, table).await;
    let (_, left) = ranges_of(pipeline, table).await;
    assert!(left >= 2, "a range follows the waiting one ({left} left)");
    let before = relfilenode(pipeline, table).await;
    let rewriter = session(pipeline, "pg2bq-e2e-rewrite").await;
    let statement = rewrite.to_owned();
    let rewritten = tokio::spawn(async move { rewriter.batch_execute(&statement).await });
    wait_blocked(pipeline, "pg2bq-e2e-rewrite", table).await;
    holder.batch_execute("COMMIT").await.expect("unlock");
    rewritten.await.unwrap().expect("the rewrite");
    assert_ne!(
        relfilenode(pipeline, table).await,
        before,
        "{rewrite} gave {table} a new file"
    );
}

async fn replanned(pipeline: &TestPipeline, table: &str) -> i32 {
    pipeline
        .state()
        .progress(&pipeline.sql, None)
        .await
        .expect("progress")
        .into_iter()
        .find(|p| p.table.to_string() == table)
        .map_or(0, |p| p.replanned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_full_and_cluster_while_tables_are_copied_are_detected_and_copied_again() {
    let schema = "
CREATE SCHEMA rw;
CREATE TABLE rw.a_keyed (id bigint PRIMARY KEY, v text);
INSERT INTO rw.a_keyed SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 20000) g;
CREATE TABLE rw.b_log (n int, v text);
CREATE INDEX b_log_n ON rw.b_log (n);
ALTER TABLE rw.b_log REPLICA IDENTITY FULL;
INSERT INTO rw.b_log SELECT g % 1000, repeat(md5(g::text), 3) FROM generate_series(1, 20000) g;
ANALYZE rw.a_keyed, rw.b_log;";
    let mut pipeline = TestPipeline::start_with("rewrite", &["rw"], schema, slow_backfill()).await;
    // A keyed table: VACUUM FULL after a third of its rows were deleted.
    rewrite_midway(
        &pipeline,
        "rw.a_keyed",
        "DELETE FROM rw.a_keyed WHERE id <= 7000",
        "VACUUM FULL rw.a_keyed",
    )
    .await;
    // A table without a key (one snapshot and the changes after it): CLUSTER by an index.
    rewrite_midway(
        &pipeline,
        "rw.b_log",
        "DELETE FROM rw.b_log WHERE n < 350",
        "CLUSTER rw.b_log USING b_log_n",
    )
    .await;
    pipeline
        .sql
        .batch_execute(
            "UPDATE rw.a_keyed SET v = 'after' WHERE id % 100 = 0;
             INSERT INTO rw.a_keyed SELECT g, 'new' FROM generate_series(30001, 30100) g;
             INSERT INTO rw.b_log SELECT g, 'after' FROM generate_series(1, 100) g;",
        )
        .await
        .expect("changes after the rewrites");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(240)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        vec![
            ("rw.a_keyed".to_owned(), 13_100),
            ("rw.b_log".to_owned(), 13_100)
        ]
    );
    assert!(replanned(&pipeline, "rw.a_keyed").await >= 1);
    assert!(replanned(&pipeline, "rw.b_log").await >= 1);
    assert!(
        pipeline
            .capture()
            .log()
            .contains("table rewritten while it was copied"),
        "capture says why it copies the table again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_column_type_while_a_table_is_copied_is_detected_and_copied_again() {
    let schema = "
CREATE SCHEMA ra;
CREATE TABLE ra.t (id int PRIMARY KEY, n int, v text);
INSERT INTO ra.t SELECT g, g * 3, repeat(md5(g::text), 3) FROM generate_series(1, 20000) g;
ANALYZE ra.t;";
    let mut pipeline =
        TestPipeline::start_with("altertype", &["ra"], schema, slow_backfill()).await;
    wait_midway(&pipeline, "ra.t", 3).await;
    // The ALTER rewrites the table with every row new to a snapshot taken before it: read from
    // such a snapshot, the new file looks empty.
    let holder = session(&pipeline, "pg2bq-e2e-holder").await;
    holder
        .batch_execute("BEGIN; ALTER TABLE ra.t ALTER COLUMN n TYPE bigint")
        .await
        .expect("alter");
    wait_blocked(&pipeline, COPYING, "ra.t").await;
    let before = relfilenode(&pipeline, "ra.t").await;
    holder.batch_execute("COMMIT").await.expect("commit");
    assert_ne!(relfilenode(&pipeline, "ra.t").await, before);
    pipeline
        .sql
        .batch_execute(
            "UPDATE ra.t SET n = n + 5000000000 WHERE id % 50 = 0; DELETE FROM ra.t WHERE id % 70 = 0",
        )
        .await
        .expect("changes after the rewrite");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(240)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        vec![("ra.t".to_owned(), 20_000 - 20_000 / 70)]
    );
    // The rewrite is seen by the copy (its plan counts a re-plan), and the new column type by
    // the stream, whose copy again starts a new plan: either way the log says why.
    assert!(
        pipeline
            .capture()
            .log()
            .contains("table rewritten while it was copied"),
        "capture says why it copies the table again"
    );
}

/// `pg_repack`'s client, if installed (Debian: postgresql-<major>-repack).
fn pg_repack_binary() -> Option<std::path::PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(
            std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|d| d.path().join("bin")),
        );
    candidates
        .map(|dir| dir.join("pg_repack"))
        .find(|path| path.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_repacked_while_its_backfill_waits_is_copied_again() {
    let schema = "
CREATE SCHEMA rp;
CREATE TABLE rp.t (id bigint PRIMARY KEY, v text);
INSERT INTO rp.t SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 20000) g;
ANALYZE rp.t;";
    let options = Options {
        start_capture: false,
        ..slow_backfill()
    };
    let mut pipeline = TestPipeline::start_with("repack", &["rp"], schema, options).await;
    let available: bool = pipeline
        .sql
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_repack')",
            &[],
        )
        .await
        .expect("extensions")
        .get(0);
    let Some(binary) = pg_repack_binary().filter(|_| available) else {
        eprintln!(
            "SKIPPED: pg_repack is not installed (Debian: apt-get install postgresql-15-repack). \
             It swaps the table's file for a rewritten one, as VACUUM FULL does, so the same \
             relfilenode check covers it"
        );
        return;
    };
    pipeline
        .sql
        .batch_execute("CREATE EXTENSION pg_repack")
        .await
        .expect("the extension");
    pipeline.start_capture().await;
    wait_midway(&pipeline, "rp.t", 3).await;
    // Repacked while capture is down: the resumed backfill finds the new file before it copies.
    pipeline.kill_capture();
    pipeline
        .sql
        .batch_execute("DELETE FROM rp.t WHERE id <= 7000")
        .await
        .expect("deletes");
    let before = relfilenode(&pipeline, "rp.t").await;
    let stack = &pipeline.stack;
    let output = std::process::Command::new(binary)
        .args([
            "-h",
            &stack.pg_host,
            "-p",
            &stack.pg_port.to_string(),
            "-U",
            &stack.pg_user,
            "-d",
            &format!("e2e_{}", pipeline.name),
            "-t",
            "rp.t",
        ])
        .output()
        .expect("pg_repack runs");
    assert!(
        output.status.success(),
        "pg_repack: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_ne!(relfilenode(&pipeline, "rp.t").await, before, "repacked");
    pipeline.start_capture().await;
    pipeline
        .sql
        .batch_execute("UPDATE rp.t SET v = 'after' WHERE id % 100 = 0")
        .await
        .expect("changes");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(240)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        vec![("rp.t".to_owned(), 13_000)]
    );
    assert!(replanned(&pipeline, "rp.t").await >= 1);
    assert!(
        pipeline
            .capture()
            .log()
            .contains("table rewritten since it was planned"),
        "capture says why it copies the table again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_dropped_or_renamed_while_pending_do_not_block_the_others() {
    let schema = "
CREATE SCHEMA vt;
CREATE TABLE vt.a_moving (id bigint PRIMARY KEY, v text);
INSERT INTO vt.a_moving SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 20000) g;
CREATE TABLE vt.b_drop (id int PRIMARY KEY, v text);
CREATE TABLE vt.c_rename (id int PRIMARY KEY, v text);
CREATE TABLE vt.d_other (id int PRIMARY KEY, v text);
INSERT INTO vt.b_drop SELECT g, 'b' FROM generate_series(1, 100) g;
INSERT INTO vt.c_rename SELECT g, 'c' FROM generate_series(1, 100) g;
INSERT INTO vt.d_other SELECT g, 'd' FROM generate_series(1, 100) g;
ANALYZE;";
    let mut pipeline = TestPipeline::start_with("vanished", &["vt"], schema, slow_backfill()).await;
    // While the first table is copied and its copy waits for a lock, two pending tables are
    // dropped and renamed; then the table being copied is renamed in the transaction that held
    // the lock. (A transaction that writes holds back the export of any new snapshot, so the
    // renames that are not the copied table's own are committed at once.)
    wait_midway(&pipeline, "vt.a_moving", 2).await;
    let holder = session(&pipeline, "pg2bq-e2e-holder").await;
    holder
        .batch_execute("BEGIN; LOCK TABLE vt.a_moving IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    wait_blocked(&pipeline, COPYING, "vt.a_moving").await;
    pipeline
        .sql
        .batch_execute("DROP TABLE vt.b_drop; ALTER TABLE vt.c_rename RENAME TO c_renamed")
        .await
        .expect("drop and rename");
    holder
        .batch_execute("ALTER TABLE vt.a_moving RENAME TO a_moved; COMMIT")
        .await
        .expect("rename the table being copied");
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO vt.d_other VALUES (101, 'after');
             UPDATE vt.c_renamed SET v = 'after' WHERE id = 1;
             UPDATE vt.a_moved SET v = 'after' WHERE id % 1000 = 0;",
        )
        .await
        .expect("changes");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(240)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        vec![
            ("vt.a_moved".to_owned(), 20_000),
            ("vt.c_renamed".to_owned(), 100),
            ("vt.d_other".to_owned(), 101),
        ]
    );
    let plans: Vec<(String, bool)> = pipeline
        .state()
        .progress(&pipeline.sql, None)
        .await
        .expect("progress")
        .into_iter()
        .map(|p| (p.table.to_string(), p.finished))
        .collect();
    assert_eq!(
        plans,
        [
            ("vt.a_moved".to_owned(), true),
            ("vt.c_renamed".to_owned(), true),
            ("vt.d_other".to_owned(), true),
        ],
        "the plans of the old names are gone"
    );
    assert!(
        pipeline
            .capture()
            .log()
            .contains("no longer exists under its name"),
        "capture says why it drops the plans"
    );
}
