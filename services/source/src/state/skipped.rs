//! Selected tables the publication leaves out because publishing them would make the
//! application's UPDATE and DELETE fail (see [`crate::catalog::publishable`]). Capture records
//! them at every publication check; `pg2bq stream status` shows them with the fix.

use super::StateStore;
use crate::catalog::{Unpublishable, table_id};
use crate::error::{Result, SourceError};
use pg2bq_core::wire::TableId;
use tokio_postgres::Client;

/// A skipped table as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedTable {
    /// The table.
    pub table: TableId,
    /// Why it is not replicated.
    pub reason: String,
    /// How to make it replicable.
    pub fix: String,
    /// Since when, microseconds since the Unix epoch.
    pub since_us: i64,
}

impl StateStore {
    /// Records the tables skipped now: new ones are added, the others' records kept (with their
    /// first time), tables no longer skipped forgotten.
    pub async fn record_skipped(&self, client: &Client, skipped: &[Unpublishable]) -> Result<()> {
        let schemas: Vec<&str> = skipped.iter().map(|s| s.table.schema.as_str()).collect();
        let names: Vec<&str> = skipped.iter().map(|s| s.table.table.as_str()).collect();
        let reasons: Vec<&str> = skipped.iter().map(|s| s.reason.as_str()).collect();
        let fixes: Vec<&str> = skipped.iter().map(|s| s.fix.as_str()).collect();
        client
            .execute(
                &format!(
                    "WITH now_skipped AS ( \
                         SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) \
                             AS n(schema_name, table_name, reason, fix)), \
                     gone AS ( \
                         DELETE FROM {t} s WHERE s.slot_name = $1 AND NOT EXISTS ( \
                             SELECT 1 FROM now_skipped n \
                             WHERE n.schema_name = s.schema_name AND n.table_name = s.table_name)) \
                     INSERT INTO {t} AS s (slot_name, schema_name, table_name, reason, fix) \
                     SELECT $1, schema_name, table_name, reason, fix FROM now_skipped \
                     ON CONFLICT (slot_name, schema_name, table_name) \
                     DO UPDATE SET reason = EXCLUDED.reason, fix = EXCLUDED.fix",
                    t = self.table("skipped_tables")
                ),
                &[&self.slot, &schemas, &names, &reasons, &fixes],
            )
            .await
            .map_err(SourceError::postgres("recording the skipped tables"))?;
        Ok(())
    }

    /// The tables skipped at the last publication check, by schema and name.
    pub async fn skipped(&self, client: &Client) -> Result<Vec<SkippedTable>> {
        let rows = client
            .query(
                &format!(
                    "SELECT schema_name, table_name, reason, fix, \
                            (EXTRACT(EPOCH FROM since) * 1000000)::bigint \
                     FROM {} WHERE slot_name = $1 ORDER BY 1, 2",
                    self.table("skipped_tables")
                ),
                &[&self.slot],
            )
            .await
            .map_err(SourceError::postgres("reading the skipped tables"))?;
        Ok(rows
            .iter()
            .map(|r| SkippedTable {
                table: table_id(r),
                reason: r.get(2),
                fix: r.get(3),
                since_us: r.get(4),
            })
            .collect())
    }
}
