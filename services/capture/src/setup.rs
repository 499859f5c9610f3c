//! Preparing the source: the publication and the logical replication slot.

use crate::error::{CaptureError, Result};
use pg2bq_core::config::SourceArgs;
use pg2bq_core::pg_connect::{self, quote_ident};
use tokio_postgres::Client;

/// Opens an ordinary SQL connection with pg2bq's session settings.
pub async fn connect_sql(source: &SourceArgs, application_name: &str) -> Result<Client> {
    pg_connect::connect_sql(source, application_name)
        .await
        .map_err(CaptureError::postgres(format!(
            "connecting to {}",
            source.describe()
        )))
}

/// Creates the publication for the given schemas when it does not exist.
pub async fn ensure_publication(
    client: &Client,
    publication: &str,
    schemas: &[String],
) -> Result<()> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(CaptureError::postgres("looking up the publication"))?
        .is_some();
    if exists {
        return Ok(());
    }
    if schemas.is_empty() {
        return Err(CaptureError::Config(
            "no schemas to replicate: set PG2BQ_SCHEMAS (e.g. 'public')".into(),
        ));
    }
    let list = schemas
        .iter()
        .map(|s| quote_ident(s))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "CREATE PUBLICATION {} FOR TABLES IN SCHEMA {list}",
        quote_ident(publication)
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(CaptureError::postgres(format!(
            "creating publication {publication}"
        )))?;
    tracing::info!(publication, schemas = %list, "created publication");
    Ok(())
}

/// Creates the logical replication slot when it does not exist, and checks that an existing one
/// can be used: right plugin and database, not invalidated, not held by another capture.
pub async fn ensure_slot(client: &Client, slot: &str, database: &str) -> Result<()> {
    let row = client
        .query_opt(
            "SELECT plugin::text, database::text, active_pid, wal_status \
             FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(CaptureError::postgres("looking up the replication slot"))?;
    let Some(row) = row else {
        client
            .query_one("SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')", &[&slot])
            .await
            .map_err(CaptureError::postgres(format!("creating replication slot {slot}")))?;
        tracing::info!(slot, "created logical replication slot");
        return Ok(());
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
            "slot '{slot}' was invalidated: PostgreSQL removed WAL it still needed \
             (max_slot_wal_keep_size). Drop it with SELECT pg_drop_replication_slot('{slot}'), \
             then restart capture and backfill the tables again"
        )));
    }
    if let Some(pid) = active_pid {
        return Err(CaptureError::Slot(format!(
            "slot '{slot}' is in use by another process (pid {pid}); only one capture may stream from a slot"
        )));
    }
    Ok(())
}
