//! `pg2bq stream create|start|pause|resume|delete`: the stream's desired state, kept in the state
//! schema and followed by capture within a second. `status` is in [`crate::stream_status`].

use crate::error::{CliError, Result};
use pg2bq_core::pg_connect::quote_ident;
use serde::Serialize;
use tokio_postgres::Client;

/// Sets the desired state (`running` or `paused`) of the stream of `slot`.
pub async fn set_state(sql: &Client, state_schema: &str, slot: &str, state: &str) -> Result<()> {
    let updated = sql
        .execute(
            &format!(
                "UPDATE {}.slots SET desired_state = $2 WHERE slot_name = $1",
                quote_ident(state_schema)
            ),
            &[&slot, &state],
        )
        .await
        .map_err(CliError::postgres(format!(
            "setting the stream to {state} (has capture started?)"
        )))?;
    if updated == 0 {
        return Err(CliError::Config(format!(
            "no stream uses slot '{slot}': start capture once (it creates the slot), or name the slot with --slot"
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
    state_schema: &str,
    slot: &str,
    publication: &str,
    drop_slot: bool,
    drop_publication: bool,
) -> Result<Deleted> {
    let active: Option<Option<i32>> = sql
        .query_opt(
            "SELECT active_pid FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            &[&slot],
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
            sql.execute("SELECT pg_catalog.pg_drop_replication_slot($1)", &[&slot])
                .await
                .map_err(CliError::postgres(format!("dropping slot {slot}")))?;
            deleted.slot_dropped = true;
        } else {
            deleted.slot_kept = true;
        }
    }
    if drop_publication {
        sql.batch_execute(&format!(
            "DROP PUBLICATION IF EXISTS {}",
            quote_ident(publication)
        ))
        .await
        .map_err(CliError::postgres(format!(
            "dropping publication {publication}"
        )))?;
        deleted.publication_dropped = true;
    }
    let schema = quote_ident(state_schema);
    for table in [
        "backfill_ranges",
        "backfill_tables",
        "table_activity",
        "slots",
    ] {
        sql.execute(
            &format!("DELETE FROM {schema}.{table} WHERE slot_name = $1"),
            &[&slot],
        )
        .await
        .map_err(CliError::postgres(format!(
            "deleting the stream's state in {state_schema}"
        )))?;
    }
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
}

/// Records a new stream, not started: the state schema, the publication of the selected tables
/// and the stream's row with desired state `created`. The slot is made by capture at `start`, so
/// a stream that is never started holds no WAL.
pub async fn create(
    sql: &Client,
    state_schema: &str,
    slot: &str,
    publication: &str,
    selection: &pg2bq_core::selection::TableSelection,
) -> Result<Created> {
    let capture_error = |e: pg2bq_capture::error::CaptureError| CliError::Config(e.to_string());
    pg2bq_capture::control::slot::ensure_state_schema(sql, state_schema)
        .await
        .map_err(capture_error)?;
    let existing: Option<String> = sql
        .query_opt(
            &format!(
                "SELECT desired_state FROM {}.slots WHERE slot_name = $1",
                quote_ident(state_schema)
            ),
            &[&slot],
        )
        .await
        .map_err(CliError::postgres("looking up the stream"))?
        .map(|row| row.get(0));
    if let Some(state) = existing {
        return Err(CliError::Config(format!(
            "a stream on slot '{slot}' exists already ({state}); see `pg2bq stream status`, or name \
             another slot with --slot"
        )));
    }
    pg2bq_capture::control::publication::reconcile(sql, publication, selection, state_schema)
        .await
        .map_err(capture_error)?;
    sql.execute(
        &format!(
            "INSERT INTO {}.slots (slot_name, created_lsn, desired_state) VALUES ($1, NULL, $2)",
            quote_ident(state_schema)
        ),
        &[&slot, &pg2bq_capture::control::slot::CREATED],
    )
    .await
    .map_err(CliError::postgres("recording the stream"))?;
    let tables = crate::catalog::publication_tables(sql, publication)
        .await?
        .into_iter()
        .map(|t| t.id.to_string())
        .collect();
    Ok(Created {
        slot: slot.to_owned(),
        publication: publication.to_owned(),
        tables,
    })
}
