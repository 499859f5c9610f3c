//! A consistent snapshot for a backfill: the exported snapshot of a temporary logical slot.
//!
//! Its consistent point is the sequence number of every row read from it (`<lsn>/0`): changes
//! committed after it reach the main slot with larger LSNs and win; changes before it are already
//! in the snapshot. The snapshot lives as long as the connection that created the slot stays open
//! and idle, and the temporary slot goes away with that connection. A backfill exports one per
//! table and drops it when the table is copied, so that no snapshot holds back vacuum longer
//! than one table takes.
//!
//! The session has pg2bq's session settings, as every connection: it sits idle in its
//! transaction for as long as its table takes, which `idle_in_transaction_session_timeout`
//! (or PostgreSQL 17's `transaction_timeout`) set as a default for applications would cut short.

use crate::error::{CaptureError, Result};
use crate::source::connection::{Session, open, replication_config};
use pg2bq_core::config::SourceArgs;
use pg2bq_core::lsn::Lsn;
use pg2bq_core::pg_types::{NEWER_SESSION_SETTINGS, session_options};
use pgwire_replication::ReplicationClient;
use std::sync::atomic::{AtomicU32, Ordering};

/// An exported snapshot, valid while this value lives.
pub struct ExportedSnapshot {
    /// Keeps the exporting session (and its temporary slot) open.
    _session: ReplicationClient,
    /// Name to pass to `SET TRANSACTION SNAPSHOT`.
    pub name: String,
    /// The slot's consistent point: the LSN of the snapshot.
    pub consistent_point: Lsn,
}

/// Creates a temporary slot with an exported snapshot.
pub async fn export(
    source: &SourceArgs,
    slot: &str,
    publication: &str,
) -> Result<ExportedSnapshot> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let temporary = format!(
        "{slot}_bf_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let config = replication_config(source, &temporary, publication, "pg2bq-backfill")
        .with_options(session_options());
    let mut session = open(source, config, Session::Gated).await?;
    for (name, value) in NEWER_SESSION_SETTINGS {
        // A logical replication session runs plain SQL too; a server that does not know the
        // setting has no such limit.
        session
            .simple_query(&format!(
                "SELECT pg_catalog.set_config(name, '{value}', false) FROM pg_catalog.pg_settings \
                 WHERE name = '{name}'"
            ))
            .await
            .map_err(CaptureError::replication(
                "setting the backfill snapshot session's settings",
            ))?;
    }
    // PostgreSQL 15+ syntax first, then 14's.
    let commands = [
        format!(
            "CREATE_REPLICATION_SLOT \"{temporary}\" TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export')"
        ),
        format!(
            "CREATE_REPLICATION_SLOT \"{temporary}\" TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT"
        ),
    ];
    let mut last_error = None;
    for command in commands {
        match session.simple_query(&command).await {
            Ok(rows) => {
                let row = rows.first().ok_or_else(|| {
                    CaptureError::Slot("CREATE_REPLICATION_SLOT returned nothing".into())
                })?;
                let text = |i: usize| {
                    row.get(i)
                        .and_then(|v| v.as_ref())
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .ok_or_else(|| {
                            CaptureError::Slot(format!(
                                "CREATE_REPLICATION_SLOT returned no column {i}"
                            ))
                        })
                };
                let consistent_point =
                    Lsn::parse(&text(1)?).map_err(|e| CaptureError::Slot(e.to_string()))?;
                let name = text(2)?;
                tracing::info!(slot = %temporary, snapshot = %name, %consistent_point, "exported a backfill snapshot");
                return Ok(ExportedSnapshot {
                    _session: session,
                    name,
                    consistent_point,
                });
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(CaptureError::replication(
        "creating a temporary slot for a backfill snapshot",
    )(last_error.expect("two attempts")))
}
