//! A consistent snapshot for a backfill: the exported snapshot of a temporary logical slot.
//!
//! Its consistent point is the sequence number of every row read from it (`<lsn>/0`): changes
//! committed after it reach the main slot with larger LSNs and win; changes before it are already
//! in the snapshot. The snapshot lives as long as the connection that created the slot stays open
//! and idle, and the temporary slot goes away with that connection.

use crate::error::{CaptureError, Result};
use crate::source::connection::{Session, open, replication_config};
use pg2bq_core::config::SourceArgs;
use pg2bq_core::lsn::Lsn;
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
    let config = replication_config(source, &temporary, publication, "pg2bq-backfill");
    let mut session = open(source, config, Session::Gated).await?;
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
