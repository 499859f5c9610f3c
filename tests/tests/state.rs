//! The state schema's migrations on a real server: a layout written by a release from before
//! versioning is brought to the current version with its rows kept, concurrent starts migrate
//! once, and a schema newer than this build is refused with the fix. Needs the local stack.

use pg2bq_core::pg_connect::connect_sql;
use pg2bq_e2e::pipeline::recreate_database;
use pg2bq_e2e::stack::Stack;
use pg2bq_source::SourceError;
use pg2bq_source::state::StateStore;
use pg2bq_source::state::migrations;
use pg2bq_source::state::stream::DesiredState;

/// The tables as releases before versioning created them.
const UNVERSIONED: &str = "
CREATE SCHEMA pg2bq;
CREATE TABLE pg2bq.slots (slot_name text PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(),
    created_lsn pg_lsn NOT NULL);
CREATE TABLE pg2bq.backfill_tables (slot_name text, schema_name text, table_name text,
    planned_at timestamptz NOT NULL DEFAULT now(), estimated_rows bigint NOT NULL DEFAULT 0,
    finished_at timestamptz, PRIMARY KEY (slot_name, schema_name, table_name));
INSERT INTO pg2bq.slots (slot_name, created_lsn) VALUES ('old', '0/16B3748');
INSERT INTO pg2bq.backfill_tables (slot_name, schema_name, table_name, finished_at)
    VALUES ('old', 'public', 't', now());";

async fn database(name: &str) -> tokio_postgres::Client {
    let stack = Stack::from_env();
    recreate_database(&stack, name).await;
    connect_sql(&stack.source(name), "pg2bq-e2e")
        .await
        .expect("test database")
}

#[tokio::test]
async fn an_unversioned_state_schema_is_upgraded_with_its_rows() {
    let sql = database("e2e_state_upgrade").await;
    sql.batch_execute(UNVERSIONED).await.expect("old layout");
    let state = StateStore::new("pg2bq", "old");
    assert_eq!(state.version(&sql).await.unwrap(), 0);
    state.migrate(&sql).await.expect("upgrade");
    assert_eq!(state.version(&sql).await.unwrap(), migrations::latest());
    let record = state.stream(&sql).await.unwrap().expect("the old stream");
    assert_eq!(record.desired_state, DesiredState::Running);
    assert_eq!(record.created_lsn.as_deref(), Some("0/16B3748"));
    let progress = state.progress(&sql, None).await.unwrap();
    assert_eq!(progress.len(), 1);
    assert!(progress[0].finished);
    // Tables the old layout lacked exist now, and a second start changes nothing.
    assert!(state.activity(&sql).await.unwrap().is_empty());
    state.migrate(&sql).await.expect("idempotent");
    let versions: i64 = sql
        .query_one("SELECT count(*) FROM pg2bq.schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, i64::from(migrations::latest()));
}

#[tokio::test]
async fn concurrent_starts_migrate_once() {
    let stack = Stack::from_env();
    let name = "e2e_state_race";
    recreate_database(&stack, name).await;
    let mut starts = Vec::new();
    for i in 0..6 {
        let source = stack.source(name);
        starts.push(tokio::spawn(async move {
            let sql = connect_sql(&source, "pg2bq-e2e").await.expect("connection");
            StateStore::new("pg2bq", &format!("slot{i}"))
                .migrate(&sql)
                .await
        }));
    }
    for start in starts {
        start.await.unwrap().expect("every start succeeds");
    }
    let sql = connect_sql(&stack.source(name), "pg2bq-e2e").await.unwrap();
    let versions: i64 = sql
        .query_one("SELECT count(*) FROM pg2bq.schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, i64::from(migrations::latest()));
}

#[tokio::test]
async fn a_state_schema_newer_than_this_build_is_refused() {
    let sql = database("e2e_state_newer").await;
    let state = StateStore::new("pg2bq", "s");
    state.migrate(&sql).await.unwrap();
    sql.batch_execute(
        "INSERT INTO pg2bq.schema_version (version, description) VALUES (999, 'from the future')",
    )
    .await
    .unwrap();
    let error = state.migrate(&sql).await.unwrap_err();
    assert!(matches!(error, SourceError::StateVersion(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("version 999") && message.contains("same release"),
        "{message}"
    );
    assert!(!error.is_transient());
}
