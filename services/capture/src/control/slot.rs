//! The logical replication slot of the stream.
//!
//! The state schema remembers that capture created the slot. A slot that is missing although it
//! was created before means that its position is lost (someone dropped it): capture then stops
//! with the way to recover instead of silently starting over and missing changes.

use crate::error::{CaptureError, Result};
use pg2bq_source::state::StateStore;
use pg2bq_source::state::stream::DesiredState;
use std::time::Duration;
use tokio_postgres::Client;

/// Makes sure the slot exists and can be used: creates it on first start, waits while another
/// process holds it, and refuses an invalidated or vanished slot with the way to recover.
pub async fn ensure_slot(client: &Client, state: &StateStore, database: &str) -> Result<()> {
    let mut waited = Duration::ZERO;
    loop {
        match check_slot(client, state, database).await? {
            SlotState::Ready => return Ok(()),
            SlotState::Missing => return create_slot(client, state).await,
            SlotState::Busy(pid) => {
                if waited.as_secs().is_multiple_of(30) {
                    tracing::warn!(
                        slot = state.slot(),
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

async fn check_slot(client: &Client, state: &StateStore, database: &str) -> Result<SlotState> {
    let slot = state.slot();
    let state_schema = state.schema();
    let row = client
        .query_opt(
            "SELECT plugin::text, database::text, active_pid, wal_status \
             FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(CaptureError::postgres("looking up the replication slot"))?;
    let Some(row) = row else {
        return match state.stream(client).await? {
            // Never created, or recorded by `pg2bq stream create` before its first start.
            None => Ok(SlotState::Missing),
            Some(record) if record.created_lsn.is_none() => Ok(SlotState::Missing),
            Some(record) => Err(CaptureError::Slot(format!(
                "slot '{slot}' (created {}) no longer exists: it was dropped, and the changes \
                 it held are lost. To start over: DELETE FROM {state_schema}.slots WHERE slot_name = '{slot}'; \
                 and restart capture: it creates the slot and copies every table again (rows deleted \
                 meanwhile are removed from BigQuery by the copies)",
                record.created_at
            ))),
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
             DELETE FROM {state_schema}.slots WHERE slot_name = '{slot}', then restart capture: it copies \
             every table again"
        )));
    }
    Ok(match active_pid {
        Some(pid) => SlotState::Busy(pid),
        None => SlotState::Ready,
    })
}

/// Waits while the stream is created but not started (`pg2bq stream create` without `start`);
/// returns `false` if a stop was requested meanwhile.
pub async fn wait_until_started(
    client: &Client,
    state: &StateStore,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<bool> {
    let mut logged = false;
    loop {
        let desired = state.stream(client).await?.map(|r| r.desired_state);
        if desired != Some(DesiredState::Created) {
            return Ok(true);
        }
        if !logged {
            tracing::info!(
                slot = state.slot(),
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

async fn create_slot(client: &Client, state: &StateStore) -> Result<()> {
    let slot = state.slot();
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
    state.record_slot_created(client, &lsn).await?;
    // A new slot starts a new stream: every table is copied from a snapshot newer than it
    // (after a lost slot, the copies' sweeps remove the rows deleted meanwhile).
    state.reset_all_backfills(client).await?;
    tracing::info!(slot, %lsn, "created logical replication slot");
    Ok(())
}
