//! The freshness probe: the one-row table `<state schema>.freshness_probe` that
//! `pg2bq validate --freshness` updates and times through the pipeline. Unlike the other state
//! tables it is replicated: capture keeps it in the publication whenever it exists.

use super::StateStore;
use crate::catalog::tables::quoted;
use crate::error::{Result, SourceError};
use pg2bq_core::probe::freshness_probe;
use pg2bq_core::wire::TableId;
use tokio_postgres::Client;

impl StateStore {
    /// The probe table of this state schema.
    pub fn probe_table(&self) -> TableId {
        freshness_probe(&self.schema)
    }

    /// Creates the probe table and its row if missing; returns whether the table was created.
    pub async fn ensure_probe(&self, client: &Client) -> Result<bool> {
        let id = self.probe_table();
        let table = quoted(&id);
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .map_err(SourceError::postgres(format!("looking up {id}")))?
            .get(0);
        if !exists {
            client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {table} (id int PRIMARY KEY, probed_at timestamptz NOT NULL)"
                ))
                .await
                .map_err(SourceError::postgres(format!(
                    "creating the freshness probe {id} (the state schema exists once the stream is \
                     created; this needs CREATE on it)"
                )))?;
        }
        client
            .batch_execute(&format!(
                "INSERT INTO {table} VALUES (1, clock_timestamp()) ON CONFLICT (id) DO NOTHING"
            ))
            .await
            .map_err(SourceError::postgres(format!(
                "adding the probe row to {id}"
            )))?;
        Ok(!exists)
    }

    /// Moves the probe row's time forward (at least by a microsecond); returns the new time in
    /// microseconds since the Unix epoch.
    pub async fn touch_probe(&self, client: &Client) -> Result<i64> {
        let id = self.probe_table();
        let sql = format!(
            "UPDATE {} SET probed_at = greatest(clock_timestamp(), probed_at + interval '1 microsecond') \
             WHERE id = 1 RETURNING (extract(epoch FROM probed_at) * 1000000)::bigint",
            quoted(&id)
        );
        Ok(client
            .query_one(&sql, &[])
            .await
            .map_err(SourceError::postgres(format!(
                "updating the probe row of {id}"
            )))?
            .get(0))
    }
}
