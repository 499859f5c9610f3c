//! Watching and steering a running backfill from a test: its ranges, the sessions that wait for
//! a table's lock, and the table's file.

use crate::pipeline::TestPipeline;
use pg2bq_core::pg_connect::connect_sql;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// The application name of capture's connections that copy ranges.
pub const COPYING: &str = "pg2bq-backfill-copy";

/// Another session on the pipeline's database, named `application`.
pub async fn session(pipeline: &TestPipeline, application: &str) -> Client {
    connect_sql(
        &pipeline.stack.source(&format!("e2e_{}", pipeline.name)),
        application,
    )
    .await
    .expect("a session on the test database")
}

/// Ranges of `table` (`schema.table`) done and not done.
pub async fn ranges_of(pipeline: &TestPipeline, table: &str) -> (usize, usize) {
    let ranges = pipeline
        .state()
        .ranges(&pipeline.sql)
        .await
        .expect("ranges");
    let of: Vec<_> = ranges
        .iter()
        .filter(|r| r.range.table.to_string() == table)
        .collect();
    let done = of.iter().filter(|r| r.done).count();
    (done, of.len() - done)
}

/// Waits until some ranges of `table` are done and at least `pending` are not; fails if the
/// table was copied too fast for that.
pub async fn wait_midway(pipeline: &TestPipeline, table: &str, pending: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (done, left) = ranges_of(pipeline, table).await;
        if done >= 1 && left >= pending {
            return;
        }
        assert!(
            left >= pending || done == 0,
            "{table} was copied too fast to act midway ({done} ranges done, {left} left)"
        );
        assert!(
            Instant::now() < deadline,
            "the backfill of {table} did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until a session named `application` waits for a lock on `table`.
pub async fn wait_blocked(pipeline: &TestPipeline, application: &str, table: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let waiting: i64 = pipeline
            .sql
            .query_one(
                "SELECT count(*) FROM pg_catalog.pg_locks l \
                 JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
                 WHERE NOT l.granted AND l.locktype = 'relation' \
                   AND l.relation = $1::text::regclass AND a.application_name = $2",
                &[&table, &application],
            )
            .await
            .expect("locks")
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{application} does not wait for {table}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The file of `table` now.
pub async fn relfilenode(pipeline: &TestPipeline, table: &str) -> u32 {
    pipeline
        .sql
        .query_one("SELECT pg_relation_filenode($1::text::regclass)", &[&table])
        .await
        .expect("relfilenode")
        .get(0)
}
