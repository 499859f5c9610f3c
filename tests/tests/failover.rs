//! Failovers and standbys, on scratch clusters of the pinned PostgreSQL builds
//! (`.local/postgresql/<major>`, see `versions.rs`).
//!
//! - PostgreSQL 17: a slot created as an older pg2bq did (not a failover slot) is reported by
//!   `pg2bq profile test source`, and capture makes it a failover slot at its start; the
//!   profile then says that the slot is one and what is left to set up (versions.rs checks that
//!   a new slot is created as one on 17+, and the line before 17).
//! - A physical standby (PostgreSQL 17, which can decode on a standby, and 15, which cannot):
//!   capture and `pg2bq profile test` refuse it with the fix, and exit; nothing is written on the
//!   primary (no state schema, no publication, no slot).

use pg2bq_e2e::cli::{describe, pg2bq};
use pg2bq_e2e::pipeline::{Options, TestPipeline};
use pg2bq_e2e::processes::Service;
use pg2bq_e2e::scratch_cluster::{ClusterOptions, ScratchCluster};
use pg2bq_e2e::stack::Stack;
use std::time::Duration;

const SCHEMA: &str = "CREATE SCHEMA f;
CREATE TABLE f.items (id int PRIMARY KEY, label text);
INSERT INTO f.items SELECT g, 'row ' || g FROM generate_series(1, 20) g;";

/// `failover` of slot `slot` in pg_replication_slots.
async fn failover(sql: &tokio_postgres::Client, slot: &str) -> Option<bool> {
    sql.query_opt(
        "SELECT failover FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .expect("pg_replication_slots")
    .map(|row| row.get(0))
}

/// The `failover` line of `pg2bq profile test source` output (and its fix line, if any).
fn failover_line(text: &str) -> String {
    let mut lines = text.lines().skip_while(|l| !l.contains(" failover "));
    let first = lines.next().unwrap_or_default().to_owned();
    match lines.next() {
        Some(fix) if fix.trim_start().starts_with("fix:") => format!("{first}\n{fix}"),
        _ => first,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_made_before_becomes_a_failover_slot_on_17() {
    let cluster = ScratchCluster::start(&ClusterOptions {
        version: Some(17),
        ..ClusterOptions::default()
    });
    let name = "failover_pg17";
    let slot = format!("e2e_{name}");
    let mut pipeline = TestPipeline::start_with(
        name,
        &["f"],
        SCHEMA,
        Options {
            stack: Some(cluster.stack()),
            start_capture: false,
            ..Options::default()
        },
    )
    .await;
    // The publication and the slot as pg2bq made them before: no failover.
    for statement in [
        format!(
            "CREATE PUBLICATION \"{slot}\" FOR TABLE f.items WITH (publish_via_partition_root = true)"
        ),
        format!("SELECT pg_catalog.pg_create_logical_replication_slot('{slot}', 'pgoutput')"),
    ] {
        pipeline
            .sql
            .batch_execute(&statement)
            .await
            .expect(&statement);
    }
    assert_eq!(failover(&pipeline.sql, &slot).await, Some(false));
    let profile = |pipeline: &TestPipeline| {
        let output = pg2bq(
            pipeline,
            &["profile", "test", "source", "--include", "f"],
            &[],
        );
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        (failover_line(&text), describe(&output))
    };
    let (line, all) = profile(&pipeline);
    assert!(
        line.starts_with("WARN  failover")
            && line.contains(&format!("no: slot {slot} is not a failover slot"))
            && line.contains("fix: restart capture"),
        "{all}"
    );

    pipeline.start_capture().await;
    assert_eq!(
        failover(&pipeline.sql, &slot).await,
        Some(true),
        "capture makes the slot a failover slot\n{}",
        pipeline.capture_log()
    );
    let mirrored = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&mirrored),
        [("f.items".to_owned(), 20)]
    );
    let (line, all) = profile(&pipeline);
    assert!(
        line.starts_with("WARN  failover")
            && line.contains(&format!("slot {slot} is a failover slot"))
            && line.contains("synchronized_standby_slots is empty")
            && line.contains("sync_replication_slots = on"),
        "{all}"
    );
    // The physical slot named must exist (PostgreSQL checks the setting against it). Capture
    // stops first: with no standby confirming that slot, its walsender would wait.
    assert!(pipeline.stop_capture(), "capture stops cleanly");
    for statement in [
        "SELECT pg_catalog.pg_create_physical_replication_slot('standby_1')",
        "ALTER SYSTEM SET synchronized_standby_slots = 'standby_1'",
        "SELECT pg_catalog.pg_reload_conf()",
    ] {
        pipeline
            .sql
            .batch_execute(statement)
            .await
            .expect(statement);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (line, all) = profile(&pipeline);
    assert!(
        line.starts_with("PASS  failover")
            && line.contains("yes, if the standbys synchronize it")
            && line.contains("'standby_1'"),
        "{all}"
    );
}

/// Capture and `pg2bq profile test` against a standby of a PostgreSQL `major` cluster.
async fn standby_refused(major: u32) {
    let primary = ScratchCluster::start(&ClusterOptions {
        version: Some(major),
        ..ClusterOptions::default()
    });
    let database = format!("e2e_standby_pg{major}");
    primary
        .admin()
        .await
        .batch_execute(&format!("CREATE DATABASE \"{database}\""))
        .await
        .expect("database");
    {
        let sql = pg2bq_core::pg_connect::connect_sql(&primary.admin_source(&database), "e2e")
            .await
            .expect("connect");
        sql.batch_execute(SCHEMA).await.expect("schema");
    }
    let standby = primary.start_standby();
    let in_recovery: bool = standby
        .admin()
        .await
        .query_one("SELECT pg_catalog.pg_is_in_recovery()", &[])
        .await
        .expect("pg_is_in_recovery")
        .get(0);
    assert!(in_recovery, "the standby is in recovery");
    let stack: Stack = standby.stack();

    let output = stack
        .pg2bq(&database)
        .args(["profile", "test", "source", "--include", "f"])
        .env("PG2BQ_SLOT", &database)
        .output()
        .expect("pg2bq profile test");
    let text = String::from_utf8_lossy(&output.stdout);
    let all = describe(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        text.contains("FAIL  standby")
            && text.contains("the server is a standby")
            && text.contains("fix: point PG2BQ_PG_HOST (and PG2BQ_PG_PORT) at the primary"),
        "{all}"
    );
    if major < 16 {
        assert!(
            text.contains("a standby cannot decode changes before PostgreSQL 16"),
            "{all}"
        );
    } else {
        assert!(
            text.contains("which a standby cannot write (logical decoding on a standby"),
            "{all}"
        );
    }

    let env: Vec<(String, String)> = [
        ("PG2BQ_PG_HOST", stack.pg_host.clone()),
        ("PG2BQ_PG_PORT", stack.pg_port.to_string()),
        ("PG2BQ_PG_USER", stack.pg_user.clone()),
        ("PG2BQ_PG_DATABASE", database.clone()),
        ("PG2BQ_SLOT", database.clone()),
        ("PG2BQ_PUBLICATION", database.clone()),
        ("PG2BQ_INCLUDE", "f".to_owned()),
        ("PG2BQ_PROJECT", stack.project.clone()),
        ("PG2BQ_TOPIC", format!("e2e-standby-pg{major}")),
        ("PUBSUB_EMULATOR_HOST", stack.pubsub_host.clone()),
        ("PG2BQ_HEALTH_PORT", "0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let log_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/e2e-logs")
        .join(format!("standby_pg{major}"));
    let _ = std::fs::remove_dir_all(&log_dir);
    let mut capture = Service::start("capture", &Stack::bin_dir().join("capture"), &env, &log_dir);
    let exited = capture.wait_exit(Duration::from_secs(30));
    let log = capture.log();
    assert_eq!(
        exited,
        Some(false),
        "capture exits with an error at once (no reconnection loop)\n{log}"
    );
    assert!(
        log.contains("the server is a standby")
            && log.contains("point PG2BQ_PG_HOST (and PG2BQ_PG_PORT) at the primary")
            && !log.contains("panicked")
            && !log.contains("reconnecting"),
        "{log}"
    );

    // Nothing was written: no state schema, publication or slot on the primary (whose changes
    // the standby replays).
    let sql = pg2bq_core::pg_connect::connect_sql(&primary.admin_source(&database), "e2e")
        .await
        .expect("connect");
    let written: (bool, bool, bool) = {
        let row = sql
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'pg2bq'), \
                        EXISTS (SELECT 1 FROM pg_catalog.pg_publication), \
                        EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_type = 'logical')",
                &[],
            )
            .await
            .expect("what exists");
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!(written, (false, false, false), "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_is_refused_with_the_fix_on_17() {
    standby_refused(17).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_is_refused_with_the_fix_on_15() {
    standby_refused(15).await;
}
