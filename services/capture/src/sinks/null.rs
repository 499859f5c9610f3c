//! The null sink: every batch is encoded and compressed as for Pub/Sub, then acknowledged at
//! once without being sent. A benchmark and diagnostic switch (`PG2BQ_PUBLISHER=null`): it
//! measures capture without Pub/Sub, and loses every change, since the slot moves past them.

use super::message::{Compression, attributes};
use super::{BatchSink, EncodedBatch, PublishFuture, Published};
use std::time::Duration;

/// Acknowledges every batch without sending it.
#[derive(Debug, Clone)]
pub struct NullSink {
    compression: Compression,
}

impl NullSink {
    /// A null sink that still pays for `compression`.
    pub fn new(compression: Compression) -> Self {
        tracing::warn!(
            "PG2BQ_PUBLISHER=null: batches are acknowledged without being sent (benchmarks only)"
        );
        NullSink { compression }
    }
}

impl BatchSink for NullSink {
    fn send(&self, batch: EncodedBatch) -> (usize, PublishFuture) {
        let _ = attributes(&batch, self.compression);
        let bytes = self.compression.apply(batch.json).len();
        let published = Published {
            min_commit_lsn: batch.min_commit_lsn,
            bytes,
            changes: batch.changes,
            oldest_commit_us: batch.oldest_commit_us,
            newest_commit_us: batch.newest_commit_us,
            table: batch.source,
            latency: Duration::ZERO,
            result: Ok("null".to_owned()),
        };
        (bytes, Box::pin(std::future::ready(published)))
    }
}
