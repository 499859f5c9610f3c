//! The Pub/Sub sink: each batch is one message on the stream's topic.

use super::message::{Compression, attributes};
use super::{BatchSink, EncodedBatch, PublishFuture, Published, SinkSettings};
use crate::error::{CaptureError, Result};
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt};
use google_cloud_pubsub::client::Publisher;
use google_cloud_pubsub::model::Message;
use std::time::{Duration, Instant};

/// Sends batches as Pub/Sub messages with their attributes. Clones share one client.
#[derive(Clone)]
pub struct PubSubSink {
    publisher: Publisher,
    compression: Compression,
}

impl PubSubSink {
    /// Connects to Pub/Sub (or the emulator).
    pub async fn connect(settings: &SinkSettings) -> Result<Self> {
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
        Ok(PubSubSink {
            publisher,
            compression: settings.compression,
        })
    }
}

impl BatchSink for PubSubSink {
    fn send(&self, batch: EncodedBatch) -> (usize, PublishFuture) {
        let attributes = attributes(&batch, self.compression);
        let data = self.compression.apply(batch.json);
        let bytes = data.len();
        let message = Message::new().set_data(data).set_attributes(attributes);
        let pending = self.publisher.publish(message);
        let changes = batch.changes;
        let table = batch.source;
        let (min_commit_lsn, oldest_commit_us, newest_commit_us) = (
            batch.min_commit_lsn,
            batch.oldest_commit_us,
            batch.newest_commit_us,
        );
        let started = Instant::now();
        let future = async move {
            let result = pending.await.map_err(|e| {
                CaptureError::Publish(format!("batch of {changes} changes of {table}: {e}"))
            });
            Published {
                min_commit_lsn,
                bytes,
                changes,
                oldest_commit_us,
                newest_commit_us,
                table,
                latency: started.elapsed(),
                result,
            }
        };
        (bytes, Box::pin(future))
    }
}
