//! Where replication events come from: the seam between PostgreSQL and the pipeline.
//!
//! - [`connection`]: replication connections with the source's TLS settings.
//! - `pgoutput`: the decoder of pgoutput messages.
//! - `relations`: the tables seen in the stream, with types resolved to canonical names.
//! - `shapes`: what a table's new shape means for BigQuery (in place, copy again, or a new
//!   generation of its tables), and the generation of each change.
//! - `postgres`: `postgres::PgChangeSource`, which turns a replication connection's messages
//!   into [`SourceEvent`]s.
//!
//! The pipeline sees only [`SourceEvent`]s: transactions, resolved row changes, and positions it
//! may confirm when nothing is pending. It tells the source what is durable with
//! [`ChangeSource::confirm`].

pub mod connection;
pub(crate) mod pgoutput;
pub(crate) mod postgres;
pub(crate) mod relations;
pub(crate) mod shapes;

use crate::error::Result;
use pg2bq_core::lsn::Lsn;
use pg2bq_core::wire::{Op, TableControl, Value};
use relations::RelationInfo;
use std::future::Future;
use std::sync::Arc;

/// Prefix of capture's heartbeat messages (non-transactional logical decoding messages).
pub const HEARTBEAT_PREFIX: &str = "pg2bq.heartbeat";

/// One event of the replication stream, decoded and with its table resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// A transaction starts; its changes follow.
    Begin {
        /// LSN of the transaction's commit record.
        commit_lsn: Lsn,
        /// Commit time, microseconds since the Unix epoch.
        commit_time_us: i64,
        /// Transaction id.
        xid: u32,
    },
    /// The open transaction committed.
    Commit {
        /// LSN of the commit record.
        commit_lsn: Lsn,
        /// LSN just past it: the position to confirm once the transaction is durable.
        end_lsn: Lsn,
    },
    /// A table's (new) description; its earlier changes were of the previous shape.
    Relation {
        /// Table OID.
        relation_id: u32,
        /// The table as from now on.
        info: Arc<RelationInfo>,
        /// The control message that starts the table's new generation, to publish before its
        /// next changes.
        control: Option<TableControl>,
    },
    /// An INSERT, UPDATE or DELETE of the open transaction.
    Change {
        /// Table OID.
        relation_id: u32,
        /// The table.
        info: Arc<RelationInfo>,
        /// `Insert`, `Update` or `Delete`.
        op: Op,
        /// The new row (insert, update).
        new: Option<Vec<Value>>,
        /// The old key or row (delete; update when PostgreSQL sent it).
        old: Option<Vec<Value>>,
    },
    /// TRUNCATE of tables, in the open transaction.
    Truncate {
        /// The tables.
        relations: Vec<(u32, Arc<RelationInfo>)>,
    },
    /// A heartbeat passed: a position with nothing of the stream's before it but what was sent.
    Heartbeat {
        /// Its LSN.
        lsn: Lsn,
    },
    /// The server's keepalive: the end of the WAL it has sent.
    KeepAlive {
        /// The server's WAL end.
        wal_end: Lsn,
    },
    /// Something the pipeline does not act on (an origin, a type, another message).
    Other,
}

/// Where replication events come from.
pub trait ChangeSource: Send {
    /// The next event, or `None` when the server ended the stream. Cancel-safe: an event being
    /// read when the future is dropped is returned by the next call.
    fn next_event(&mut self) -> impl Future<Output = Result<Option<SourceEvent>>> + Send;

    /// Tells the source that every change up to `lsn` is durable downstream (the slot may move).
    fn confirm(&mut self, lsn: Lsn);

    /// Ends the stream after the last confirmation was delivered.
    fn close(self) -> impl Future<Output = Result<()>> + Send;
}
