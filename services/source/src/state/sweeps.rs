//! The sweeps of finished copies: after a table was copied whole, one message tells the writer
//! that rows older than the copy's oldest snapshot and not copied again were deleted at the
//! source since (see [`pg2bq_core::wire::Op::Sweep`]). A copy is swept once, after it finished;
//! a capture that stops in between sweeps at its next backfill round.

use super::StateStore;
use crate::catalog::table_id;
use crate::error::{Result, SourceError};
use pg2bq_core::lsn::Lsn;
use pg2bq_core::wire::TableId;
use tokio_postgres::Client;

/// A finished copy waiting for its sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unswept {
    /// The table.
    pub table: TableId,
    /// The oldest consistent point its ranges were copied at; `None` when nothing was copied
    /// (backfill `none`, or an excluded table), which needs no sweep.
    pub oldest_snapshot: Option<Lsn>,
}

impl StateStore {
    /// Finished copies not swept yet.
    pub async fn unswept(&self, client: &Client) -> Result<Vec<Unswept>> {
        let rows = client
            .query(
                &format!(
                    "SELECT t.schema_name, t.table_name, min(r.snapshot_lsn)::text \
                     FROM {tables} t LEFT JOIN {ranges} r USING (slot_name, schema_name, table_name) \
                     WHERE t.slot_name = $1 AND t.finished_at IS NOT NULL AND t.swept_at IS NULL \
                     GROUP BY 1, 2 ORDER BY 1, 2",
                    tables = self.table("backfill_tables"),
                    ranges = self.table("backfill_ranges"),
                ),
                &[&self.slot],
            )
            .await
            .map_err(SourceError::postgres("listing finished copies to sweep"))?;
        rows.iter()
            .map(|r| {
                let lsn: Option<String> = r.get(2);
                Ok(Unswept {
                    table: table_id(r),
                    oldest_snapshot: lsn
                        .map(|l| Lsn::parse(&l))
                        .transpose()
                        .map_err(|e| SourceError::Catalog(format!("a copy's snapshot: {e}")))?,
                })
            })
            .collect()
    }

    /// Records that the copy of `table` was swept.
    pub async fn mark_swept(&self, client: &Client, table: &TableId) -> Result<()> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET swept_at = now() WHERE slot_name = $1 AND schema_name = $2 \
                     AND table_name = $3 AND finished_at IS NOT NULL",
                    self.table("backfill_tables")
                ),
                &[&self.slot, &table.schema, &table.table],
            )
            .await
            .map_err(SourceError::postgres(format!(
                "recording the sweep of {table}"
            )))?;
        Ok(())
    }
}
