//! The Pub/Sub sink: each batch is one message on the stream's topic; a batch too big for a
//! message travels by claim check (`claim.rs`): its body goes to Cloud Storage first, and the
//! message carries the reference.

use super::claim::{self, ClaimStore};
use super::message::{Compression, attributes};
use super::{BatchSink, EncodedBatch, PublishFuture, Published, SinkSettings};
use crate::error::{CaptureError, Result};
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt};
use google_cloud_pubsub::client::Publisher;
use google_cloud_pubsub::model::Message;
use pg2bq_core::wire::attributes::CLAIM;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sends batches as Pub/Sub messages with their attributes. Clones share one client.
#[derive(Clone)]
pub struct PubSubSink {
    publisher: Publisher,
    compression: Compression,
    claim_threshold: usize,
    claims: Option<Arc<ClaimStore>>,
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
        let claims = match &settings.claims.bucket {
            Some(bucket) => Some(Arc::new(ClaimStore::new(
                &settings.claims,
                bucket,
                settings.retry_for,
            )?)),
            None => None,
        };
        Ok(PubSubSink {
            publisher,
            compression: settings.compression,
            claim_threshold: settings.claims.threshold,
            claims,
        })
    }
}

impl BatchSink for PubSubSink {
    fn send(&self, batch: EncodedBatch) -> (usize, PublishFuture) {
        let mut attributes = attributes(&batch, self.compression).to_vec();
        let EncodedBatch {
            source,
            json,
            changes,
            first_seq,
            min_commit_lsn,
            oldest_commit_us,
            newest_commit_us,
            ..
        } = batch;
        let data = self.compression.apply(json);
        let bytes = data.len();
        let started = Instant::now();
        let table = source.clone();
        let published = move |result| Published {
            min_commit_lsn,
            bytes,
            changes,
            oldest_commit_us,
            newest_commit_us,
            table,
            latency: started.elapsed(),
            result,
        };
        if bytes <= self.claim_threshold {
            let message = Message::new().set_data(data).set_attributes(attributes);
            let pending = self.publisher.publish(message);
            let future = async move {
                let result = pending.await.map_err(|e| {
                    CaptureError::Publish(format!("batch of {changes} changes of {source}: {e}"))
                });
                published(result)
            };
            return (bytes, Box::pin(future));
        }
        let Some(claims) = self.claims.clone() else {
            let error = claim::too_big(&source, changes, &first_seq, bytes, self.claim_threshold);
            return (bytes, Box::pin(async move { published(Err(error)) }));
        };
        let object = claims.object_for(&source, &first_seq, self.compression == Compression::Gzip);
        let publisher = self.publisher.clone();
        let future = async move {
            let result = async {
                // The object is complete before the message exists: an acknowledged message
                // always finds its batch.
                let check = claims.put(&object, data).await?;
                attributes.push((CLAIM, check.claim.clone()));
                let body = serde_json::to_vec(&check).expect("a claim check serialises");
                let message = Message::new().set_data(body).set_attributes(attributes);
                let id = publisher.publish(message).await.map_err(|e| {
                    CaptureError::Publish(format!(
                        "claim check {} of {changes} changes of {source}: {e}",
                        check.claim
                    ))
                })?;
                tracing::info!(
                    table = %source,
                    changes,
                    bytes,
                    object = %check.claim,
                    "batch too big for a message: sent by claim check"
                );
                Ok(id)
            }
            .await;
            published(result)
        };
        (bytes, Box::pin(future))
    }
}
