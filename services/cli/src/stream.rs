//! `pg2bq stream create|start|pause|resume|delete`: the stream's record and desired state in the
//! state schema, followed by capture within a second. `status` is in [`crate::stream_status`].

use crate::error::{CliError, Result};
use pg2bq_core::config::StreamArgs;
use pg2bq_core::selection::TableSelection;
use pg2bq_source::catalog::Catalog;
use pg2bq_source::publication;
use pg2bq_source::state::StateStore;
use pg2bq_source::state::stream::DesiredState;
use serde::Serialize;
use tokio_postgres::Client;

/// The state of `stream` in its state schema.
pub fn state(stream: &StreamArgs) -> StateStore {
    StateStore::new(&stream.state_schema, &stream.slot)
}

/// Sets the desired state (`running` or `paused`) of the stream.
pub async fn set_state(sql: &Client, stream: &StreamArgs, desired: DesiredState) -> Result<()> {
    if !state(stream).set_desired_state(sql, desired).await? {
        return Err(CliError::Config(format!(
            "no stream uses slot '{}': create one with `pg2bq stream create`, or name the slot with --slot",
            stream.slot
        )));
    }
    Ok(())
}

/// What `stream delete` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Deleted {
    /// The slot was dropped.
    pub slot_dropped: bool,
    /// The publication was dropped.
    pub publication_dropped: bool,
    /// The slot still exists (and holds WAL) because it was not asked to be dropped.
    pub slot_kept: bool,
}

/// Deletes the stream's state; drops the slot and the publication only when asked. Refuses while
/// a capture holds the slot.
pub async fn delete(
    sql: &Client,
    stream: &StreamArgs,
    drop_slot: bool,
    drop_publication: bool,
) -> Result<Deleted> {
    let slot = &stream.slot;
    let active: Option<Option<i32>> = sql
        .query_opt(
            "SELECT active_pid FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            &[slot],
        )
        .await
        .map_err(CliError::postgres("looking up the slot"))?
        .map(|row| row.get(0));
    if let Some(Some(pid)) = active {
        return Err(CliError::Config(format!(
            "capture still streams from slot '{slot}' (pid {pid}): stop it first, then delete the stream"
        )));
    }
    let mut deleted = Deleted::default();
    if active.is_some() {
        if drop_slot {
            sql.execute("SELECT pg_catalog.pg_drop_replication_slot($1)", &[slot])
                .await
                .map_err(CliError::postgres(format!("dropping slot {slot}")))?;
            deleted.slot_dropped = true;
        } else {
            deleted.slot_kept = true;
        }
    }
    if drop_publication {
        publication::drop(sql, &stream.publication).await?;
        deleted.publication_dropped = true;
    }
    state(stream).delete_stream(sql).await?;
    Ok(deleted)
}

/// What `stream create` made.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    /// The slot the stream will use (created by capture at `start`).
    pub slot: String,
    /// The publication, with the selected tables.
    pub publication: String,
    /// Tables of the publication, `schema.table`.
    pub tables: Vec<String>,
    /// Selected tables left out of the publication (their UPDATE and DELETE would fail once
    /// published); `pg2bq stream status` shows why and the fix.
    pub skipped: Vec<String>,
}

/// Records a new stream, not started: the state schema, the publication of the selected tables
/// and the stream's record with desired state `created`. The slot is made by capture at `start`,
/// so a stream that is never started holds no WAL.
pub async fn create(
    sql: &Client,
    stream: &StreamArgs,
    selection: &TableSelection,
) -> Result<Created> {
    // A standby is refused before anything is written.
    pg2bq_source::server::refuse_standby(sql).await?;
    let store = state(stream);
    store.migrate(sql).await?;
    if let Some(record) = store.stream(sql).await? {
        return Err(CliError::Config(format!(
            "a stream on slot '{}' exists already ({}); see `pg2bq stream status`, or name \
             another slot with --slot",
            stream.slot,
            record.desired_state.as_str()
        )));
    }
    let reconciled =
        publication::reconcile(sql, &stream.publication, selection, &stream.state_schema).await?;
    store.record_skipped(sql, &reconciled.skipped).await?;
    store.create_stream(sql).await?;
    let tables = Catalog::new()
        .publication_tables(sql, &stream.publication)
        .await?
        .into_iter()
        .map(|t| t.id.to_string())
        .collect();
    Ok(Created {
        slot: stream.slot.clone(),
        publication: stream.publication.clone(),
        tables,
        skipped: reconciled
            .skipped
            .iter()
            .map(|s| s.table.to_string())
            .collect(),
    })
}
