//! Publishing change batches to Pub/Sub.

use crate::batcher::ReadyBatch;
use crate::error::{CaptureError, Result};
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt};
use google_cloud_pubsub::client::Publisher;
use google_cloud_pubsub::model::Message;
use pg2bq_core::lsn::Lsn;
use pg2bq_core::wire::{TableId, WIRE_VERSION, attributes};
use std::future::Future;
use std::io::Write;
use std::time::{Duration, Instant};

/// Compression of message bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// Plain JSON (`encoding` = `json`).
    None,
    /// Gzip-compressed JSON (`encoding` = `json+gzip`).
    Gzip,
}

impl Compression {
    /// The `encoding` attribute value.
    pub fn encoding(self) -> &'static str {
        match self {
            Compression::None => "json",
            Compression::Gzip => "json+gzip",
        }
    }

    fn apply(self, json: Vec<u8>) -> Vec<u8> {
        match self {
            Compression::None => json,
            Compression::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(json.len() / 4),
                    flate2::Compression::fast(),
                );
                encoder.write_all(&json).expect("writing to memory");
                encoder.finish().expect("writing to memory")
            }
        }
    }
}

/// Where batches go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PublisherKind {
    /// Pub/Sub (or its emulator).
    Pubsub,
    /// Nowhere: every batch is encoded as for Pub/Sub and acknowledged at once without being
    /// sent. A benchmark and diagnostic switch (capture's own cost without Pub/Sub's); it loses
    /// every change, since the slot advances past them.
    Null,
}

/// Where to publish.
#[derive(Debug, Clone)]
pub struct PublisherSettings {
    /// Pub/Sub, or the null publisher of benchmarks.
    pub kind: PublisherKind,
    /// `projects/<project>/topics/<topic>`.
    pub topic: String,
    /// `host:port` of the Pub/Sub emulator, when running locally.
    pub emulator_host: Option<String>,
    /// How long one message may be retried before capture gives up (and restarts from the slot).
    pub retry_for: Duration,
    /// Compression of message bodies.
    pub compression: Compression,
}

/// The outcome of one publish: the batch's hold on confirmation, its size, and the result.
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
    /// Time from publish to acknowledgement.
    pub latency: Duration,
    /// Message id, or why it failed.
    pub result: Result<String>,
}

/// Sends batches as Pub/Sub messages with their attributes. Clones share one client.
#[derive(Clone)]
pub struct BatchPublisher {
    /// `None`: the null publisher.
    publisher: Option<Publisher>,
    compression: Compression,
}

impl BatchPublisher {
    /// Connects to Pub/Sub (or the emulator).
    pub async fn connect(settings: &PublisherSettings) -> Result<Self> {
        if settings.kind == PublisherKind::Null {
            tracing::warn!(
                "PG2BQ_PUBLISHER=null: batches are acknowledged without being sent (benchmarks only)"
            );
            return Ok(BatchPublisher {
                publisher: None,
                compression: settings.compression,
            });
        }
        let retry = Aip194Strict.with_time_limit(settings.retry_for);
        let mut builder = Publisher::builder(settings.topic.clone())
            .set_delay_threshold(Duration::from_millis(5))
            .with_retry_policy(retry);
        if let Some(host) = &settings.emulator_host {
            builder = builder
                .with_endpoint(format!("http://{host}"))
                .with_credentials(
                    google_cloud_auth::credentials::anonymous::Builder::new().build(),
                );
        }
        let publisher = builder.build().await.map_err(|e| {
            CaptureError::Publish(format!(
                "cannot create a publisher for {}: {e}",
                settings.topic
            ))
        })?;
        Ok(BatchPublisher {
            publisher: Some(publisher),
            compression: settings.compression,
        })
    }

    /// Publishes a batch; the returned future resolves when Pub/Sub acknowledged it.
    pub fn publish(
        &self,
        ready: ReadyBatch,
    ) -> (usize, impl Future<Output = Published> + Send + 'static) {
        self.publish_encoded(EncodedBatch::of(&ready))
    }

    /// Publishes a batch already encoded as JSON.
    pub fn publish_encoded(
        &self,
        batch: EncodedBatch,
    ) -> (usize, impl Future<Output = Published> + Send + 'static) {
        let data = self.compression.apply(batch.json);
        let bytes = data.len();
        let changes = batch.changes;
        let table = batch.source.to_string();
        let message = Message::new().set_data(data).set_attributes([
            (attributes::TABLE, table.clone()),
            (attributes::VERSION, WIRE_VERSION.to_string()),
            (attributes::CHANGES, changes.to_string()),
            (attributes::FIRST_SEQ, batch.first_seq),
            (attributes::LAST_SEQ, batch.last_seq),
            (attributes::ENCODING, self.compression.encoding().to_owned()),
        ]);
        let pending = self.publisher.as_ref().map(|p| p.publish(message));
        let (min_commit_lsn, oldest_commit_us, newest_commit_us) = (
            batch.min_commit_lsn,
            batch.oldest_commit_us,
            batch.newest_commit_us,
        );
        let table_id = batch.source;
        let started = Instant::now();
        let future = async move {
            let result = match pending {
                Some(pending) => pending.await.map_err(|e| {
                    CaptureError::Publish(format!("batch of {changes} changes of {table}: {e}"))
                }),
                None => Ok("null".to_owned()),
            };
            Published {
                min_commit_lsn,
                bytes,
                changes,
                oldest_commit_us,
                newest_commit_us,
                table: table_id,
                latency: started.elapsed(),
                result,
            }
        };
        (bytes, future)
    }
}

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
    /// Smallest commit LSN of the changes.
    pub min_commit_lsn: Lsn,
    /// Commit time of the oldest change, microseconds since the Unix epoch.
    pub oldest_commit_us: i64,
    /// Commit time of the newest change, microseconds since the Unix epoch.
    pub newest_commit_us: i64,
}

impl EncodedBatch {
    /// Encodes a closed batch.
    pub fn of(ready: &ReadyBatch) -> Self {
        let batch = &ready.batch;
        let seq = |change: Option<&pg2bq_core::wire::Change>| {
            change.map(|c| c.seq.to_string()).unwrap_or_default()
        };
        let commit_times = batch.changes.iter().map(|c| c.commit_time_us);
        EncodedBatch {
            source: batch.source.clone(),
            json: batch.to_json(),
            changes: batch.changes.len(),
            first_seq: seq(batch.changes.first()),
            last_seq: seq(batch.changes.last()),
            min_commit_lsn: ready.min_commit_lsn,
            oldest_commit_us: commit_times.clone().min().unwrap_or(0),
            newest_commit_us: commit_times.max().unwrap_or(0),
        }
    }
}
