//! Where encoded change batches go: the seam between the pipeline and the outside world.
//!
//! The pipeline (the capture loop and the backfill) hands each closed batch, already encoded as
//! JSON, to a [`BatchSink`] and waits for the [`Published`] outcome before it lets the source
//! position move past the batch's changes. Sinks:
//! - [`pubsub::PubSubSink`]: Pub/Sub (or its emulator); the outcome is Pub/Sub's acknowledgement.
//!   A batch too big for a message goes to Cloud Storage first ([`claim`]), and the message
//!   carries the reference.
//! - [`null::NullSink`]: nowhere, acknowledged at once (benchmarks and diagnostics only).

pub mod claim;
pub mod message;
pub mod null;
pub mod pubsub;

use crate::error::Result;
use pg2bq_core::lsn::Lsn;
use pg2bq_core::wire::TableId;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use message::Compression;

/// A batch encoded as JSON, with what its message attributes and acknowledgement need.
#[derive(Debug)]
pub struct EncodedBatch {
    /// The source table.
    pub source: TableId,
    /// The JSON of the [`pg2bq_core::wire::ChangeBatch`].
    pub json: Vec<u8>,
    /// Number of changes.
    pub changes: usize,
    /// Sequence number of the first change.
    pub first_seq: String,
    /// Sequence number of the last change.
    pub last_seq: String,
    /// Smallest commit LSN of the changes: the batch holds back confirmation of that LSN.
    pub min_commit_lsn: Lsn,
    /// Commit time of the oldest change, microseconds since the Unix epoch.
    pub oldest_commit_us: i64,
    /// Commit time of the newest change, microseconds since the Unix epoch.
    pub newest_commit_us: i64,
}

/// The outcome of one batch sent: its hold on confirmation, its size, and the result.
#[derive(Debug)]
pub struct Published {
    /// Smallest commit LSN in the batch.
    pub min_commit_lsn: Lsn,
    /// Bytes of the message.
    pub bytes: usize,
    /// Number of changes.
    pub changes: usize,
    /// Commit time of the oldest change, microseconds since the Unix epoch.
    pub oldest_commit_us: i64,
    /// Commit time of the newest change, microseconds since the Unix epoch.
    pub newest_commit_us: i64,
    /// The table of the batch.
    pub table: TableId,
    /// Time from sending to acknowledgement.
    pub latency: Duration,
    /// The destination's id of the message, or why it failed.
    pub result: Result<String>,
}

/// A batch on its way: resolves once the destination acknowledged it or gave up.
pub type PublishFuture = Pin<Box<dyn Future<Output = Published> + Send>>;

/// Where encoded batches go.
pub trait BatchSink: Send + Sync {
    /// Sends a batch. Returns the message's size in bytes at once (the in-flight bound counts
    /// it) and a future that resolves when the destination acknowledged the batch or gave up.
    fn send(&self, batch: EncodedBatch) -> (usize, PublishFuture);
}

impl<T: BatchSink + ?Sized> BatchSink for Arc<T> {
    fn send(&self, batch: EncodedBatch) -> (usize, PublishFuture) {
        (**self).send(batch)
    }
}

/// Which sink capture sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SinkKind {
    /// Pub/Sub (or its emulator).
    Pubsub,
    /// Nowhere: every batch is encoded as for Pub/Sub and acknowledged at once without being
    /// sent. A benchmark and diagnostic switch (capture's own cost without Pub/Sub's); it loses
    /// every change, since the slot advances past them.
    Null,
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    /// Pub/Sub, or the null sink of benchmarks.
    pub kind: SinkKind,
    /// `projects/<project>/topics/<topic>`.
    pub topic: String,
    /// `host:port` of the Pub/Sub emulator, when running locally.
    pub emulator_host: Option<String>,
    /// How long one message may be retried before capture gives up (and restarts from the slot).
    pub retry_for: Duration,
    /// Compression of message bodies.
    pub compression: Compression,
    /// Claim checks of batches too big for a message.
    pub claims: claim::ClaimSettings,
}

/// The sink the settings name, shared by the capture loop and the backfill.
pub async fn connect(settings: &SinkSettings) -> Result<Arc<dyn BatchSink>> {
    Ok(match settings.kind {
        SinkKind::Null => Arc::new(null::NullSink::new(settings.compression)),
        SinkKind::Pubsub => Arc::new(pubsub::PubSubSink::connect(settings).await?),
    })
}
