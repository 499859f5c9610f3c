//! The logical replication slot of the stream.
//!
//! The state schema remembers that capture created the slot. A slot that is missing although it
//! was created before means that its position is lost (someone dropped it): capture then stops
//! with the way to recover instead of silently starting over and missing changes.
//!
//! On PostgreSQL 17+ the slot is a failover slot: standbys set up to synchronize slots keep a
//! copy, so that the stream continues on a promoted standby. A slot created before (by an older
//! pg2bq, or before an upgrade to 17) is made one when no process streams from it; if that
//! fails, capture streams on and says so (`pg2bq profile test source` reports it too).

use crate::error::{CaptureError, Result};
use crate::source::connection::{Session, open, replication_config};
use pg2bq_core::config::SourceArgs;
use pg2bq_source::server::ServerRole;
use pg2bq_source::state::StateStore;
use pg2bq_source::state::stream::DesiredState;
use std::time::Duration;
use tokio_postgres::Client;

/// Makes sure the slot exists and can be used: creates it on first start, waits while another
/// process holds it, and refuses an invalidated or vanished slot with the way to recover. On
/// PostgreSQL 17+ (`role`) it is a failover slot (see the module's documentation).
pub async fn ensure_slot(
    client: &Client,
    state: &StateStore,
    source: &SourceArgs,
    publication: &str,
    role: ServerRole,
) -> Result<()> {
    let mut waited = Duration::ZERO;
    loop {
        match check_slot(client, state, &source.database).await? {
            SlotState::Ready => {
                if role.failover_slots() {
                    make_failover(client, state.slot(), source, publication).await;
                }
                return Ok(());
            }
            SlotState::Missing => return create_slot(client, state, role).await,
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

async fn create_slot(client: &Client, state: &StateStore, role: ServerRole) -> Result<()> {
    let slot = state.slot();
    // (name, plugin, temporary, two-phase, failover): failover from PostgreSQL 17 on.
    let sql = if role.failover_slots() {
        "SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)"
    } else {
        "SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')"
    };
    let row = client
        .query_one(sql, &[&slot])
        .await
        .map_err(CaptureError::postgres(format!(
            "creating replication slot {slot}"
        )))?;
    let lsn: String = row.get(0);
    state.record_slot_created(client, &lsn).await?;
    // A new slot starts a new stream: every table is copied from a snapshot newer than it
    // (after a lost slot, the copies' sweeps remove the rows deleted meanwhile).
    state.reset_all_backfills(client).await?;
    tracing::info!(slot, %lsn, failover = role.failover_slots(), "created logical replication slot");
    Ok(())
}

/// Makes the existing slot `slot` a failover slot if it is not one (PostgreSQL 17+; no process
/// streams from it: [`ensure_slot`] waited for that). `ALTER_REPLICATION_SLOT` is a replication
/// command, so it runs on a replication session of its own. A failure is not fatal: the stream
/// works, it just does not survive a failover; capture warns with the fix.
async fn make_failover(client: &Client, slot: &str, source: &SourceArgs, publication: &str) {
    let failover = client
        .query_opt(
            "SELECT failover FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await;
    match failover {
        Ok(Some(row)) if !row.get::<_, bool>(0) => {}
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(slot, error = %e, "cannot read whether the slot is a failover slot");
            return;
        }
    }
    let config = replication_config(source, slot, publication, "pg2bq-capture-slot");
    let outcome = match open(source, config, Session::Gated).await {
        Ok(mut session) => session
            .simple_query(&format!(
                "ALTER_REPLICATION_SLOT {} (FAILOVER true)",
                pg2bq_core::pg_connect::quote_ident(slot)
            ))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(()) => tracing::info!(
            slot,
            "made the slot a failover slot: standbys that synchronize slots keep it through a failover"
        ),
        Err(error) => tracing::warn!(
            slot,
            %error,
            fix = %format!("stop capture and run ALTER_REPLICATION_SLOT \"{slot}\" (FAILOVER true) on a replication connection (psql \"dbname=<db> replication=database\"), then start it again"),
            "the slot is not a failover slot, and making it one failed: the stream does not survive a failover"
        ),
    }
}
