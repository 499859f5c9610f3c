//! `pg2bq stream pause|resume|status`: the stream's desired state, kept in the state schema and
//! followed by capture within a second, and what the stream is doing per table.

use crate::backfill_status;
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

/// What the stream of a slot is doing.
#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    /// The slot.
    pub slot: String,
    /// `running` or `paused`, as set.
    pub desired_state: String,
    /// Whether a capture holds the slot now.
    pub capture_connected: bool,
    /// The slot's confirmed position.
    pub confirmed_lsn: Option<String>,
    /// WAL bytes the slot holds back.
    pub slot_lag_bytes: Option<i64>,
    /// Per table: phase and backfill progress.
    pub tables: Vec<TableStatus>,
}

/// One table of the stream.
#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    /// `schema.table`.
    pub table: String,
    /// `backfilling`, `streaming` or `paused`.
    pub phase: String,
    /// Rows copied by backfill.
    pub rows_backfilled: i64,
}

/// Reads the status of the stream of `slot`.
pub async fn status(sql: &Client, state_schema: &str, slot: &str) -> Result<StreamStatus> {
    let row = sql
        .query_opt(
            &format!(
                "SELECT s.desired_state, r.active, r.confirmed_flush_lsn::text, \
                        pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), r.confirmed_flush_lsn)::bigint \
                 FROM {}.slots s LEFT JOIN pg_catalog.pg_replication_slots r ON r.slot_name = s.slot_name \
                 WHERE s.slot_name = $1",
                quote_ident(state_schema)
            ),
            &[&slot],
        )
        .await
        .map_err(CliError::postgres("reading the stream status (has capture started?)"))?
        .ok_or_else(|| CliError::Config(format!("no stream uses slot '{slot}': start capture once, or name the slot with --slot")))?;
    let desired_state: String = row.get(0);
    let paused = desired_state == "paused";
    let tables = backfill_status::read(sql, state_schema, slot)
        .await?
        .into_iter()
        .map(|p| TableStatus {
            phase: if paused {
                "paused"
            } else if p.finished {
                "streaming"
            } else {
                "backfilling"
            }
            .to_owned(),
            table: p.table,
            rows_backfilled: p.rows_copied,
        })
        .collect();
    Ok(StreamStatus {
        slot: slot.to_owned(),
        desired_state,
        capture_connected: row.get::<_, Option<bool>>(1).unwrap_or(false),
        confirmed_lsn: row.get(2),
        slot_lag_bytes: row.get(3),
        tables,
    })
}

/// The status as readable text.
pub fn render(status: &StreamStatus) -> String {
    let mut out = format!(
        "stream on slot {}: {} (capture {}), confirmed {}, slot lag {} bytes\n",
        status.slot,
        status.desired_state,
        if status.capture_connected {
            "connected"
        } else {
            "not connected"
        },
        status.confirmed_lsn.as_deref().unwrap_or("-"),
        status
            .slot_lag_bytes
            .map_or("-".to_owned(), |b| b.to_string()),
    );
    let width = status
        .tables
        .iter()
        .map(|t| t.table.len())
        .max()
        .unwrap_or(5)
        .max(5);
    out.push_str(&format!(
        "{:<width$}  {:<11}  {:>15}\n",
        "TABLE", "PHASE", "ROWS BACKFILLED"
    ));
    for t in &status.tables {
        out.push_str(&format!(
            "{:<width$}  {:<11}  {:>15}\n",
            t.table, t.phase, t.rows_backfilled
        ));
    }
    out
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
    for table in ["backfill_ranges", "backfill_tables", "slots"] {
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
