//! Background upkeep on an ordinary SQL connection: heartbeats, slot lag, and keeping the
//! publication in step with the table selection.
//!
//! A heartbeat is a non-transactional logical decoding message in the source database. It flows
//! through the slot like a change, so capture has a position to confirm even when the replicated
//! tables are idle and the server writes WAL elsewhere; without it the slot would hold that WAL.

use super::table_events::TableEvents;
use crate::error::Result;
use crate::ops::metrics::CaptureMetrics;
use crate::source::HEARTBEAT_PREFIX;
use pg2bq_core::config::{SourceArgs, StreamArgs};
use pg2bq_core::pg_connect::connect_sql;
use pg2bq_core::selection::TableSelection;
use pg2bq_source::publication;
use pg2bq_source::state::StateStore;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Client;

/// What the maintenance task does, and how often.
pub struct Maintenance {
    /// The source.
    pub source: SourceArgs,
    /// The stream's slot (whose lag is measured), publication (kept in step with `selection`)
    /// and state schema.
    pub stream: StreamArgs,
    /// Tables to replicate.
    pub selection: TableSelection,
    /// Period of heartbeats and lag measurements (zero: no heartbeats).
    pub heartbeat: Duration,
    /// Period of publication checks.
    pub publication_refresh: Duration,
    /// What happens to tables outside the row changes, checked with the publication.
    pub events: TableEvents,
}

impl Maintenance {
    /// Runs forever in the background; a lost connection is re-opened on the next round.
    pub fn spawn(mut self, metrics: Arc<CaptureMetrics>) {
        tokio::spawn(async move {
            let period = if self.heartbeat.is_zero() {
                self.publication_refresh
            } else {
                self.heartbeat.min(self.publication_refresh)
            };
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut client: Option<Client> = None;
            let mut since_refresh = Duration::ZERO;
            let state = StateStore::new(&self.stream.state_schema, &self.stream.slot);
            loop {
                tick.tick().await;
                since_refresh += period;
                if client.as_ref().is_none_or(Client::is_closed) {
                    client = connect_sql(&self.source, "pg2bq-capture-maintenance")
                        .await
                        .ok();
                }
                let Some(sql) = client.as_ref() else { continue };
                if !self.heartbeat.is_zero()
                    && let Err(e) = self.beat(sql, &metrics).await
                {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
                if let Err(e) = metrics.tables.flush(sql, &state).await {
                    tracing::warn!(error = %e, "recording table activity failed");
                }
                if since_refresh >= self.publication_refresh {
                    since_refresh = Duration::ZERO;
                    match publication::reconcile(
                        sql,
                        &self.stream.publication,
                        &self.selection,
                        &self.stream.state_schema,
                    )
                    .await
                    {
                        Ok(reconciled) => {
                            if let Err(e) = self.events.round(sql, &reconciled).await {
                                tracing::warn!(error = %e, "checking the tables failed");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "publication check failed"),
                    }
                }
            }
        });
    }

    async fn beat(&self, sql: &Client, metrics: &CaptureMetrics) -> Result<()> {
        sql.execute(
            "SELECT pg_catalog.pg_logical_emit_message(false, $1, $2)",
            &[&HEARTBEAT_PREFIX, &self.stream.slot],
        )
        .await
        .map_err(crate::error::CaptureError::postgres("emitting a heartbeat"))?;
        let lag = sql
            .query_opt(
                "SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)::bigint \
                 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
                &[&self.stream.slot],
            )
            .await
            .map_err(crate::error::CaptureError::postgres("measuring slot lag"))?
            .and_then(|row| row.get::<_, Option<i64>>(0));
        if let Some(lag) = lag {
            metrics.set_slot_lag_bytes(lag);
        }
        Ok(())
    }
}
