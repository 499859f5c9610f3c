//! Claim checks: a batch whose message body would be too big for Pub/Sub (10 MB a message) is
//! written to a Cloud Storage object first, and the message carries a reference to it.
//!
//! The object is complete before the message is published, so the confirm-after-ack rule holds
//! unchanged: Pub/Sub's acknowledgement of the reference means the batch is stored. Names are
//! unique per upload (`batches/<schema.table>/<first seq>-<time>-<n>.json[.gz]`), so a
//! session that sends the batch again makes a new object, and an upload retried after a lost
//! answer finds its own object. The writer deletes the object once the batch is written; the
//! bucket's lifecycle rule removes what is left (README, "Big changes").

use crate::error::{CaptureError, Result};
use pg2bq_core::cloud_storage::{CloudStorage, ObjectUri};
use pg2bq_core::wire::{ClaimCheck, TableId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The largest message body published as it is: below Pub/Sub's 10 MB message limit, with room
/// for the attributes and the request around it.
pub const DEFAULT_THRESHOLD: usize = 9_000_000;
/// The largest threshold accepted.
pub const MAX_THRESHOLD: usize = 9_500_000;

/// Where claim checks go.
#[derive(Debug, Clone, Default)]
pub struct ClaimSettings {
    /// The bucket; without one, a batch over the threshold stops capture with the fix.
    pub bucket: Option<String>,
    /// Message bodies larger than this many bytes travel by claim check.
    pub threshold: usize,
    /// `STORAGE_EMULATOR_HOST`, when running locally.
    pub emulator_host: Option<String>,
}

/// Writes batch bodies to objects of one bucket.
pub struct ClaimStore {
    storage: CloudStorage,
    bucket: String,
    retry_for: Duration,
    uploads: AtomicU64,
}

impl ClaimStore {
    /// A store in `bucket`; transient failures are retried for `retry_for`.
    pub fn new(settings: &ClaimSettings, bucket: &str, retry_for: Duration) -> Result<Self> {
        let storage = CloudStorage::new(settings.emulator_host.as_deref())
            .map_err(|e| CaptureError::Config(format!("claim checks (PG2BQ_CLAIM_BUCKET): {e}")))?;
        Ok(ClaimStore {
            storage,
            bucket: bucket.to_owned(),
            retry_for,
            uploads: AtomicU64::new(0),
        })
    }

    /// A new object for the body of a batch of `source` starting at `first_seq`.
    pub fn object_for(&self, source: &TableId, first_seq: &str, gzip: bool) -> ObjectUri {
        let n = self.uploads.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        ObjectUri {
            bucket: self.bucket.clone(),
            name: object_name(source, first_seq, nanos, n, gzip),
        }
    }

    /// Uploads `body` to `object`, retrying transient failures; returns the claim check that the
    /// message carries.
    pub async fn put(&self, object: &ObjectUri, body: Vec<u8>) -> Result<ClaimCheck> {
        let bytes = body.len() as u64;
        let started = Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            match self.storage.create(object, body.clone()).await {
                Ok(()) => {
                    return Ok(ClaimCheck {
                        claim: object.to_string(),
                        bytes,
                    });
                }
                Err(e) if !e.is_transient() => {
                    return Err(CaptureError::Config(format!(
                        "cannot write the claim check {object}: {e}; capture needs \
                         roles/storage.objectCreator on the bucket (PG2BQ_CLAIM_BUCKET)"
                    )));
                }
                Err(e) if started.elapsed() + wait > self.retry_for => {
                    return Err(CaptureError::Publish(format!(
                        "writing the claim check {object} failed for {}s: {e}",
                        started.elapsed().as_secs()
                    )));
                }
                Err(e) => {
                    tracing::warn!(object = %object, error = %e, "claim check upload failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

/// `batches/<schema.table>/<first seq>-<nanos>-<n>.json[.gz]`, with the `/` of sequence numbers
/// written as `.`.
fn object_name(source: &TableId, first_seq: &str, nanos: u128, n: u64, gzip: bool) -> String {
    format!(
        "batches/{source}/{}-{nanos}-{n}.json{}",
        first_seq.replace('/', "."),
        if gzip { ".gz" } else { "" }
    )
}

/// The error of a batch too big for a message when no bucket is set: capture stops with the fix.
pub fn too_big(
    source: &TableId,
    changes: usize,
    first_seq: &str,
    bytes: usize,
    threshold: usize,
) -> CaptureError {
    CaptureError::Config(format!(
        "a batch of {} change(s) of {} from {} is {bytes} bytes, more than a Pub/Sub message \
         takes (PG2BQ_CLAIM_THRESHOLD_BYTES = {threshold}; Pub/Sub's limit is 10 MB): set \
         PG2BQ_CLAIM_BUCKET to a Cloud Storage bucket that capture may write and the writer may \
         read and delete in, and such batches travel there (README, \"Big changes\")",
        changes, source, first_seq
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &str = "0000000002284C90/0000000000000001";

    fn source() -> TableId {
        TableId {
            schema: "shop".into(),
            table: "orders".into(),
        }
    }

    #[test]
    fn names_objects_by_table_and_first_change() {
        assert_eq!(
            object_name(&source(), FIRST, 17, 3, false),
            "batches/shop.orders/0000000002284C90.0000000000000001-17-3.json"
        );
        assert!(object_name(&source(), FIRST, 17, 3, true).ends_with("-17-3.json.gz"));
    }

    #[test]
    fn a_too_big_batch_without_a_bucket_names_the_setting() {
        let e = too_big(&source(), 1, FIRST, 12_000_000, DEFAULT_THRESHOLD);
        assert!(matches!(e, CaptureError::Config(_)), "{e}");
        let text = e.to_string();
        assert!(text.contains("PG2BQ_CLAIM_BUCKET"), "{text}");
        assert!(text.contains("shop.orders"), "{text}");
    }
}
