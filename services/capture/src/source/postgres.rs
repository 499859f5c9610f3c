//! The replication stream of a PostgreSQL slot as [`SourceEvent`]s.

use super::connection::{Session, open, replication_config};
use super::pgoutput::{self, PgOutputMessage};
use super::relations::Relations;
use super::shapes::Shapes;
use super::{ChangeSource, HEARTBEAT_PREFIX, SourceEvent};
use crate::error::{CaptureError, Result};
use pg2bq_core::column_rules::ColumnRules;
use pg2bq_core::config::SourceArgs;
use pg2bq_core::lsn::Lsn;
use pg2bq_core::pg_types::session_options;
use pg2bq_core::wire::Op;
use pgwire_replication::{ReplicationClient, ReplicationEvent};
use std::time::Duration;

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// How often the client reports the confirmed position to the server.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// A started replication stream of a slot, decoding pgoutput and resolving its tables.
pub struct PgChangeSource {
    client: ReplicationClient,
    relations: Relations,
    /// The event being translated: kept until its translation finished, so that a cancelled
    /// call loses nothing.
    pending: Option<ReplicationEvent>,
}

impl PgChangeSource {
    /// Starts replication from `slot`'s confirmed position with `publication`; `catalog` is an
    /// SQL connection to the same database, for resolving types.
    pub async fn start(
        source: &SourceArgs,
        slot: &str,
        publication: &str,
        catalog: tokio_postgres::Client,
        shapes: Shapes,
        rules: ColumnRules,
    ) -> Result<Self> {
        let config = replication_config(source, slot, publication, "pg2bq-capture")
            .with_options(session_options())
            .with_status_interval(STATUS_INTERVAL);
        let client = open(source, config, Session::Streaming).await?;
        Ok(PgChangeSource {
            client,
            relations: Relations::new(catalog, shapes, rules),
            pending: None,
        })
    }
}

impl ChangeSource for PgChangeSource {
    async fn next_event(&mut self) -> Result<Option<SourceEvent>> {
        if self.pending.is_none() {
            let received = self
                .client
                .recv()
                .await
                .map_err(CaptureError::replication("receiving"))?;
            match received {
                Some(event) => self.pending = Some(event),
                None => return Ok(None),
            }
        }
        let raw = self.pending.as_ref().expect("an event is pending");
        let event = translate(&mut self.relations, raw).await?;
        self.pending = None;
        Ok(Some(event))
    }

    fn confirm(&mut self, lsn: Lsn) {
        self.client
            .update_applied_lsn(pgwire_replication::Lsn::from_u64(lsn.0));
    }

    async fn close(mut self) -> Result<()> {
        // The client sends the confirmed position within its status interval: give it that long.
        tokio::time::sleep(STATUS_INTERVAL + Duration::from_millis(200)).await;
        self.client
            .shutdown()
            .await
            .map_err(CaptureError::replication("closing the stream"))
    }
}

async fn translate(relations: &mut Relations, event: &ReplicationEvent) -> Result<SourceEvent> {
    Ok(match event {
        ReplicationEvent::Begin {
            final_lsn,
            xid,
            commit_time_micros,
        } => {
            relations.begin(Lsn(final_lsn.as_u64()));
            SourceEvent::Begin {
                commit_lsn: Lsn(final_lsn.as_u64()),
                commit_time_us: commit_time_micros.saturating_add(PG_EPOCH_OFFSET_US),
                xid: *xid,
            }
        }
        ReplicationEvent::Commit { lsn, end_lsn, .. } => SourceEvent::Commit {
            commit_lsn: Lsn(lsn.as_u64()),
            end_lsn: Lsn(end_lsn.as_u64()),
        },
        ReplicationEvent::XLogData { data, .. } => {
            message(relations, pgoutput::decode(data)?).await?
        }
        ReplicationEvent::Message {
            prefix,
            lsn,
            transactional,
            ..
        } => {
            if prefix == HEARTBEAT_PREFIX && !transactional {
                SourceEvent::Heartbeat {
                    lsn: Lsn(lsn.as_u64()),
                }
            } else {
                tracing::debug!(prefix, "logical decoding message");
                SourceEvent::Other
            }
        }
        ReplicationEvent::KeepAlive { wal_end, .. } => SourceEvent::KeepAlive {
            wal_end: Lsn(wal_end.as_u64()),
        },
        ReplicationEvent::StoppedAt { reached } => {
            tracing::info!(%reached, "replication stopped at the requested position");
            SourceEvent::Other
        }
    })
}

async fn message(relations: &mut Relations, message: PgOutputMessage) -> Result<SourceEvent> {
    Ok(match message {
        PgOutputMessage::Relation {
            relation_id,
            namespace,
            name,
            replica_identity,
            columns,
        } => {
            let (info, control) = relations
                .apply(relation_id, namespace, name, replica_identity, &columns)
                .await?;
            tracing::debug!(table = %info.table, columns = info.columns.len(), generation = info.generation, "relation");
            SourceEvent::Relation {
                relation_id,
                info,
                control,
            }
        }
        PgOutputMessage::Insert { relation_id, new } => SourceEvent::Change {
            relation_id,
            info: relations.get(relation_id)?,
            op: Op::Insert,
            new: Some(relations.kept(relation_id, new)),
            old: None,
        },
        PgOutputMessage::Update {
            relation_id,
            old,
            new,
        } => {
            let info = relations.get(relation_id)?;
            let mut new = relations.kept(relation_id, new);
            let old = old.map(|old| relations.kept(relation_id, old));
            info.fill_unchanged_toast(&mut new, old.as_deref());
            relations
                .fill_moved_toast(relation_id, &info, old.as_deref(), &mut new)
                .await?;
            SourceEvent::Change {
                relation_id,
                info,
                op: Op::Update,
                new: Some(new),
                old,
            }
        }
        PgOutputMessage::Delete { relation_id, old } => SourceEvent::Change {
            relation_id,
            info: relations.get(relation_id)?,
            op: Op::Delete,
            new: None,
            old: Some(relations.kept(relation_id, old)),
        },
        PgOutputMessage::Truncate { relation_ids, .. } => SourceEvent::Truncate {
            relations: relation_ids
                .into_iter()
                .map(|id| Ok((id, relations.get(id)?)))
                .collect::<Result<_>>()?,
        },
        PgOutputMessage::Type { .. } | PgOutputMessage::Origin { .. } => SourceEvent::Other,
    })
}
