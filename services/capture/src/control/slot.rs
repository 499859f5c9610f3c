//! The logical replication slot, and the record of it in pg2bq's state schema.
//!
//! The state schema remembers that capture created the slot. A slot that is missing although it
//! was created before means that its position is lost (someone dropped it): capture then stops
//! with the way to recover instead of silently starting over and missing changes.

use crate::error::{CaptureError, Result};
use pg2bq_core::pg_connect::quote_ident;
use std::time::Duration;
use tokio_postgres::Client;

/// Creates the state schema and its stream table if needed.
pub async fn ensure_state_schema(client: &Client, state_schema: &str) -> Result<()> {
    let schema = quote_ident(state_schema);
    let sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; \
         CREATE TABLE IF NOT EXISTS {schema}.slots ( \
             slot_name text PRIMARY KEY, \
             created_at timestamptz NOT NULL DEFAULT now(), \
             created_lsn pg_lsn NOT NULL); \
         ALTER TABLE {schema}.slots ADD COLUMN IF NOT EXISTS desired_state text NOT NULL DEFAULT 'running'; \
         ALTER TABLE {schema}.slots ALTER COLUMN created_lsn DROP NOT NULL; \
         {activity}",
        activity = super::table_activity::create_table_sql(&schema)
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(CaptureError::postgres(format!(
            "creating the state schema {state_schema} (the capture user needs CREATE on the database)"
        )))
}

/// Makes sure the slot exists and can be used: creates it on first start, waits while another
/// process holds it, and refuses an invalidated or vanished slot with the way to recover.
pub async fn ensure_slot(
    client: &Client,
    slot: &str,
    database: &str,
    state_schema: &str,
) -> Result<()> {
    let mut waited = Duration::ZERO;
    loop {
        match check_slot(client, slot, database, state_schema).await? {
            SlotState::Ready => return Ok(()),
            SlotState::Missing => return create_slot(client, slot, state_schema).await,
            SlotState::Busy(pid) => {
                if waited.as_secs().is_multiple_of(30) {
                    tracing::warn!(
                        slot,
                        pid,
                        waited_s = waited.as_secs(),
                        "slot is in use by another process (only one capture may stream from a slot); waiting"
                    );
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                waited += Duration::from_secs(2);
            }
        }
    }
}

enum SlotState {
    Ready,
    Missing,
    Busy(i32),
}

async fn check_slot(
    client: &Client,
    slot: &str,
    database: &str,
    state_schema: &str,
) -> Result<SlotState> {
    let row = client
        .query_opt(
            "SELECT plugin::text, database::text, active_pid, wal_status \
             FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(CaptureError::postgres("looking up the replication slot"))?;
    let Some(row) = row else {
        let sql = format!(
            "SELECT created_at::text, created_lsn IS NULL FROM {}.slots WHERE slot_name = $1",
            quote_ident(state_schema)
        );
        let record = client
            .query_opt(sql.as_str(), &[&slot])
            .await
            .map_err(CaptureError::postgres("reading the slot record"))?;
        return match record {
            // Never created, or recorded by `pg2bq stream create` before its first start.
            None => Ok(SlotState::Missing),
            Some(record) if record.get::<_, bool>(1) => Ok(SlotState::Missing),
            Some(record) => {
                let created_at: String = record.get(0);
                Err(CaptureError::Slot(format!(
                    "slot '{slot}' (created {created_at}) no longer exists: it was dropped, and the changes \
                     it held are lost. To start over: DELETE FROM {state_schema}.slots WHERE slot_name = '{slot}'; \
                     restart capture, and backfill the tables again"
                )))
            }
        };
    };
    let plugin: Option<String> = row.get(0);
    let slot_database: Option<String> = row.get(1);
    let active_pid: Option<i32> = row.get(2);
    let wal_status: Option<String> = row.get(3);
    if plugin.as_deref() != Some("pgoutput") || slot_database.as_deref() != Some(database) {
        return Err(CaptureError::Slot(format!(
            "slot '{slot}' exists but is not a pgoutput slot of database '{database}' \
             (plugin {plugin:?}, database {slot_database:?}); choose another slot name with PG2BQ_SLOT"
        )));
    }
    if wal_status.as_deref() == Some("lost") {
        return Err(CaptureError::Slot(format!(
            "slot '{slot}' was invalidated: PostgreSQL removed WAL it still needed (max_slot_wal_keep_size). \
             Drop it with SELECT pg_drop_replication_slot('{slot}') and \
             DELETE FROM {state_schema}.slots WHERE slot_name = '{slot}', then restart capture and backfill \
             the tables again"
        )));
    }
    Ok(match active_pid {
        Some(pid) => SlotState::Busy(pid),
        None => SlotState::Ready,
    })
}

/// Waits while the stream of `slot` is created but not started (`pg2bq stream create` without
/// `start`); returns `false` if a stop was requested meanwhile.
pub async fn wait_until_started(
    client: &Client,
    state_schema: &str,
    slot: &str,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<bool> {
    let sql = format!(
        "SELECT desired_state FROM {}.slots WHERE slot_name = $1",
        quote_ident(state_schema)
    );
    let mut logged = false;
    loop {
        let state: Option<String> = client
            .query_opt(sql.as_str(), &[&slot])
            .await
            .map_err(CaptureError::postgres("reading the stream's desired state"))?
            .map(|row| row.get(0));
        if state.as_deref() != Some(CREATED) {
            return Ok(true);
        }
        if !logged {
            tracing::info!(
                slot,
                "the stream is created but not started; waiting for `pg2bq stream start`"
            );
            logged = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return Ok(false),
        }
    }
}

/// The desired state of a stream that `pg2bq stream create` recorded and nobody started yet.
pub const CREATED: &str = "created";

async fn create_slot(client: &Client, slot: &str, state_schema: &str) -> Result<()> {
    let row = client
        .query_one(
            "SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .map_err(CaptureError::postgres(format!(
            "creating replication slot {slot}"
        )))?;
    let lsn: String = row.get(0);
    let sql = format!(
        "INSERT INTO {}.slots (slot_name, created_lsn) VALUES ($1, $2::text::pg_lsn) \
         ON CONFLICT (slot_name) DO UPDATE SET created_at = now(), created_lsn = EXCLUDED.created_lsn",
        quote_ident(state_schema)
    );
    client
        .execute(sql.as_str(), &[&slot, &lsn])
        .await
        .map_err(CaptureError::postgres("recording the slot"))?;
    tracing::info!(slot, %lsn, "created logical replication slot");
    Ok(())
}
