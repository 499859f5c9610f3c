//! What each table's stream did lately: changes published, the newest commit published, the last
//! error. Capture adds to it every heartbeat; `pg2bq stream status` reads it.

use super::StateStore;
use crate::error::{Result, SourceError};
use pg2bq_core::wire::TableId;
use tokio_postgres::Client;

/// Activity of one table since the last record, to add to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityDelta {
    /// Changes published since.
    pub changes: i64,
    /// Commit time of the newest change published, microseconds since the Unix epoch.
    pub newest_commit_us: Option<i64>,
    /// When a change was last published, microseconds since the Unix epoch.
    pub published_at_us: Option<i64>,
    /// The last error since, with its time in microseconds since the Unix epoch.
    pub error: Option<(String, i64)>,
}

/// A table's recorded activity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableActivity {
    /// Changes published since the stream started.
    pub changes: i64,
    /// Commit time of the newest change published, microseconds since the Unix epoch.
    pub last_commit_us: Option<i64>,
    /// When a change was last published, microseconds since the Unix epoch.
    pub last_published_us: Option<i64>,
    /// The last error and its time, microseconds since the Unix epoch.
    pub last_error: Option<(String, i64)>,
}

fn seconds(us: Option<i64>) -> Option<f64> {
    us.filter(|us| *us > 0).map(|us| us as f64 / 1e6)
}

impl StateStore {
    /// Adds a table's activity since the last record.
    pub async fn record_activity(
        &self,
        client: &Client,
        table: &TableId,
        delta: &ActivityDelta,
    ) -> Result<()> {
        let statement = format!(
            "INSERT INTO {t} AS a (slot_name, schema_name, table_name, changes_published, \
                 last_commit_at, last_published_at, last_error, last_error_at) \
             VALUES ($1, $2, $3, $4, to_timestamp($5), to_timestamp($6), $7, to_timestamp($8)) \
             ON CONFLICT (slot_name, schema_name, table_name) DO UPDATE SET \
                 changes_published = a.changes_published + EXCLUDED.changes_published, \
                 last_commit_at = greatest(a.last_commit_at, EXCLUDED.last_commit_at), \
                 last_published_at = greatest(a.last_published_at, EXCLUDED.last_published_at), \
                 last_error = coalesce(EXCLUDED.last_error, a.last_error), \
                 last_error_at = coalesce(EXCLUDED.last_error_at, a.last_error_at)",
            t = self.table("table_activity")
        );
        let (error, error_at) = match &delta.error {
            Some((message, at)) => (Some(message.as_str()), seconds(Some(*at))),
            None => (None, None),
        };
        client
            .execute(
                statement.as_str(),
                &[
                    &self.slot,
                    &table.schema,
                    &table.table,
                    &delta.changes,
                    &seconds(delta.newest_commit_us),
                    &seconds(delta.published_at_us),
                    &error,
                    &error_at,
                ],
            )
            .await
            .map_err(SourceError::postgres("recording table activity"))?;
        Ok(())
    }

    /// Every table's recorded activity.
    pub async fn activity(&self, client: &Client) -> Result<Vec<(TableId, TableActivity)>> {
        let rows = client
            .query(
                &format!(
                    "SELECT schema_name, table_name, changes_published, \
                            (extract(epoch FROM last_commit_at) * 1e6)::bigint, \
                            (extract(epoch FROM last_published_at) * 1e6)::bigint, \
                            last_error, (extract(epoch FROM last_error_at) * 1e6)::bigint \
                     FROM {} WHERE slot_name = $1",
                    self.table("table_activity")
                ),
                &[&self.slot],
            )
            .await
            .map_err(SourceError::postgres(
                "reading table activity (is capture up to date?)",
            ))?;
        Ok(rows
            .iter()
            .map(|row| {
                let error: Option<String> = row.get(5);
                let error_at: Option<i64> = row.get(6);
                let id = crate::catalog::table_id(row);
                (
                    id,
                    TableActivity {
                        changes: row.get(2),
                        last_commit_us: row.get(3),
                        last_published_us: row.get(4),
                        last_error: error.zip(error_at),
                    },
                )
            })
            .collect())
    }
}
