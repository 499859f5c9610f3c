//! Claim checks: a change batch too big for a Pub/Sub message waits in a Cloud Storage object,
//! and its message names the object (capture's `sinks/claim.rs`). The writer reads the object,
//! writes the batch like any other, and deletes the object once the batch is written.
//!
//! A missing object is a batch already written: only the writer deletes an object, and only
//! after its batch was written (the message was then delivered again, or by two pushes at once).
//! The one other way an object goes is the bucket's lifecycle rule, whose age must exceed how
//! long a message can wait (the subscription's retention, and the time to replay a dead-lettered
//! message); see README, "Big changes".

use crate::error::{Result, WriterError};
use pg2bq_core::cloud_storage::{CloudStorage, ObjectUri};
use pg2bq_core::wire::ClaimCheck;

/// The largest claim-check object read: a batch of this size holds rows far beyond BigQuery's
/// row size limit (100 MB), and holding more in memory would risk the writer itself.
pub const MAX_CLAIM_BYTES: u64 = 1 << 30;

/// Reads and deletes claim-check objects.
pub struct ClaimReader {
    storage: std::result::Result<CloudStorage, String>,
    bucket: Option<String>,
}

impl ClaimReader {
    /// A reader of Cloud Storage (or the emulator at `emulator_host`); with `bucket`, objects of
    /// other buckets are refused.
    pub fn new(emulator_host: Option<&str>, bucket: Option<&str>) -> Self {
        ClaimReader {
            storage: CloudStorage::new(emulator_host),
            bucket: bucket
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(str::to_owned),
        }
    }

    /// The object of `check`, checked against the settings.
    pub fn object(&self, check: &ClaimCheck) -> Result<ObjectUri> {
        let object = ObjectUri::parse(&check.claim).ok_or_else(|| {
            WriterError::BadBatch(format!(
                "claim check '{}' is not a gs://bucket/object address",
                check.claim
            ))
        })?;
        if let Some(bucket) = &self.bucket
            && &object.bucket != bucket
        {
            return Err(WriterError::BadBatch(format!(
                "claim check {object} is not in the claim bucket {bucket} (PG2BQ_CLAIM_BUCKET)"
            )));
        }
        if check.bytes > MAX_CLAIM_BYTES {
            return Err(WriterError::BadBatch(format!(
                "claim check {object} is {} bytes; the writer reads at most {MAX_CLAIM_BYTES}",
                check.bytes
            )));
        }
        Ok(object)
    }

    fn storage(&self) -> Result<&CloudStorage> {
        self.storage
            .as_ref()
            .map_err(|e| WriterError::Config(format!("cannot read claim checks: {e}")))
    }

    /// The batch body of `check`, or `None` if its object is gone (the batch was written).
    pub async fn read(&self, check: &ClaimCheck) -> Result<Option<Vec<u8>>> {
        let object = self.object(check)?;
        let Some(body) = self.storage()?.read(&object).await? else {
            return Ok(None);
        };
        if body.len() as u64 != check.bytes {
            return Err(WriterError::BadBatch(format!(
                "claim check {object} holds {} bytes, its message says {}",
                body.len(),
                check.bytes
            )));
        }
        Ok(Some(body))
    }

    /// Deletes the object of a written batch. A failure is logged, not returned: the batch is
    /// written, and the bucket's lifecycle rule removes the object later.
    pub async fn delete(&self, check: &ClaimCheck) {
        let outcome = match (self.object(check), self.storage()) {
            (Ok(object), Ok(storage)) => storage.delete(&object).await.map_err(WriterError::from),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        if let Err(e) = outcome {
            tracing::warn!(
                object = %check.claim,
                error = %e,
                "cannot delete the claim check of a written batch; the bucket's lifecycle rule \
                 will (the writer needs storage.objects.delete on the claim bucket)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_other_buckets_and_bad_addresses() {
        let reader = ClaimReader::new(Some("127.0.0.1:9"), Some("claims"));
        let check = |claim: &str, bytes| ClaimCheck {
            claim: claim.into(),
            bytes,
        };
        assert!(
            reader
                .object(&check("gs://claims/batches/x.json", 10))
                .is_ok()
        );
        for bad in [
            check("gs://other/batches/x.json", 10),
            check("claims/x.json", 10),
            check("gs://claims/x.json", MAX_CLAIM_BYTES + 1),
        ] {
            let e = reader.object(&bad).unwrap_err();
            assert!(matches!(e, WriterError::BadBatch(_)), "{e}");
        }
        let any = ClaimReader::new(Some("127.0.0.1:9"), None);
        assert!(any.object(&check("gs://other/x.json", 1)).is_ok());
    }
}
