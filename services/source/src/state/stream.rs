//! The stream of a slot: its record in `<schema>.slots` and its desired state.
//!
//! `pg2bq stream create` records a stream `created`, without a slot; capture waits until
//! `stream start` makes it `running`, then creates the slot and records its position. A record
//! with a position whose slot is gone means the slot was dropped and its changes lost.

use super::StateStore;
use crate::error::{Result, SourceError};
use serde::Serialize;
use tokio_postgres::Client;

/// What the stream should be doing, as `pg2bq stream` set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    /// Created by `pg2bq stream create`, not started: capture waits and holds no slot.
    Created,
    /// Streaming.
    Running,
    /// Paused: capture reads nothing, the slot keeps every change.
    Paused,
}

impl DesiredState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredState::Created => "created",
            DesiredState::Running => "running",
            DesiredState::Paused => "paused",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "created" => DesiredState::Created,
            "paused" => DesiredState::Paused,
            _ => DesiredState::Running,
        }
    }
}

/// The record of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// When the record (or the slot) was created.
    pub created_at: String,
    /// The slot's position when capture created it; `None` before the first start.
    pub created_lsn: Option<String>,
    /// What the stream should do.
    pub desired_state: DesiredState,
}

/// The protection of columns a stream's tables were published with (`PG2BQ_PROTECT`): per
/// table, `column:method` of its protected columns (empty: none) and, when some are hashed,
/// the key's check value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RecordedProtection {
    /// `schema.table` to its protection.
    #[serde(default)]
    pub tables: std::collections::BTreeMap<String, String>,
}

/// The stream's record joined with its slot, for `pg2bq stream status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOverview {
    /// What the stream should do.
    pub desired_state: DesiredState,
    /// Whether a process holds the slot now.
    pub slot_active: bool,
    /// The slot's confirmed position.
    pub confirmed_lsn: Option<String>,
    /// WAL bytes the slot holds back.
    pub slot_lag_bytes: Option<i64>,
}

impl StateStore {
    /// The stream's record, if there is one.
    pub async fn stream(&self, client: &Client) -> Result<Option<StreamRecord>> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT created_at::text, created_lsn::text, desired_state FROM {} WHERE slot_name = $1",
                    self.table("slots")
                ),
                &[&self.slot],
            )
            .await
            .map_err(SourceError::postgres("reading the stream's record"))?;
        Ok(row.map(|row| StreamRecord {
            created_at: row.get(0),
            created_lsn: row.get(1),
            desired_state: DesiredState::parse(row.get(2)),
        }))
    }

    /// Records a new stream, not started. Refuses (with the fix) if one exists for the slot.
    pub async fn create_stream(&self, client: &Client) -> Result<()> {
        let inserted = client
            .execute(
                &format!(
                    "INSERT INTO {} (slot_name, created_lsn, desired_state) VALUES ($1, NULL, $2) \
                     ON CONFLICT (slot_name) DO NOTHING",
                    self.table("slots")
                ),
                &[&self.slot, &DesiredState::Created.as_str()],
            )
            .await
            .map_err(SourceError::postgres("recording the stream"))?;
        if inserted == 0 {
            return Err(SourceError::Catalog(format!(
                "a stream on slot '{}' exists already; see `pg2bq stream status`, or name another slot with --slot",
                self.slot
            )));
        }
        Ok(())
    }

    /// Records that capture created the slot at `lsn` (a new stream started, or one recreated).
    pub async fn record_slot_created(&self, client: &Client, lsn: &str) -> Result<()> {
        client
            .execute(
                &format!(
                    "INSERT INTO {} (slot_name, created_lsn) VALUES ($1, $2::text::pg_lsn) \
                     ON CONFLICT (slot_name) DO UPDATE SET created_at = now(), created_lsn = EXCLUDED.created_lsn",
                    self.table("slots")
                ),
                &[&self.slot, &lsn],
            )
            .await
            .map_err(SourceError::postgres("recording the slot"))?;
        Ok(())
    }

    /// The protection of columns recorded for the stream, and whether its slot was ever
    /// created; `None` without a record of the stream.
    pub async fn recorded_protection(
        &self,
        client: &Client,
    ) -> Result<Option<(Option<RecordedProtection>, bool)>> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT protection, created_lsn IS NOT NULL FROM {} WHERE slot_name = $1",
                    self.table("slots")
                ),
                &[&self.slot],
            )
            .await
            .map_err(SourceError::postgres("reading the stream's protection"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let recorded = row
            .get::<_, Option<serde_json::Value>>(0)
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| {
                SourceError::Catalog(format!(
                    "the stream's recorded protection is unreadable: {e}"
                ))
            })?;
        Ok(Some((recorded, row.get(1))))
    }

    /// Records the protection of `protection`'s tables (others keep theirs), making the
    /// stream's record if there is none yet.
    pub async fn record_protection(
        &self,
        client: &Client,
        protection: &RecordedProtection,
    ) -> Result<()> {
        let json = serde_json::to_value(protection).expect("a protection record serialises");
        client
            .execute(
                &format!(
                    "INSERT INTO {slots} (slot_name, protection) VALUES ($1, $2) \
                     ON CONFLICT (slot_name) DO UPDATE SET protection = jsonb_build_object( \
                       'tables', coalesce({slots}.protection -> 'tables', '{{}}'::jsonb) \
                                 || (EXCLUDED.protection -> 'tables'))",
                    slots = self.table("slots")
                ),
                &[&self.slot, &json],
            )
            .await
            .map_err(SourceError::postgres("recording the stream's protection"))?;
        Ok(())
    }

    /// Sets the desired state; returns `false` if there is no stream on the slot.
    pub async fn set_desired_state(&self, client: &Client, state: DesiredState) -> Result<bool> {
        let updated = client
            .execute(
                &format!(
                    "UPDATE {} SET desired_state = $2 WHERE slot_name = $1",
                    self.table("slots")
                ),
                &[&self.slot, &state.as_str()],
            )
            .await
            .map_err(SourceError::postgres(format!(
                "setting the stream to {}",
                state.as_str()
            )))?;
        Ok(updated > 0)
    }

    /// Forgets everything about the stream: its record, backfill state and table activity.
    pub async fn delete_stream(&self, client: &Client) -> Result<()> {
        for table in [
            "backfill_ranges",
            "backfill_tables",
            "table_activity",
            "slots",
        ] {
            client
                .execute(
                    &format!("DELETE FROM {} WHERE slot_name = $1", self.table(table)),
                    &[&self.slot],
                )
                .await
                .map_err(SourceError::postgres(format!(
                    "deleting the stream's state in {}",
                    self.schema
                )))?;
        }
        Ok(())
    }

    /// The stream's record with its slot's position and lag; `None` without a record.
    pub async fn overview(&self, client: &Client) -> Result<Option<StreamOverview>> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT s.desired_state, COALESCE(r.active, false), r.confirmed_flush_lsn::text, \
                            pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), r.confirmed_flush_lsn)::bigint \
                     FROM {} s LEFT JOIN pg_catalog.pg_replication_slots r ON r.slot_name = s.slot_name \
                     WHERE s.slot_name = $1",
                    self.table("slots")
                ),
                &[&self.slot],
            )
            .await
            .map_err(SourceError::postgres(
                "reading the stream status (has the stream been created?)",
            ))?;
        Ok(row.map(|row| StreamOverview {
            desired_state: DesiredState::parse(row.get(0)),
            slot_active: row.get(1),
            confirmed_lsn: row.get(2),
            slot_lag_bytes: row.get(3),
        }))
    }
}
