//! The Pub/Sub push request body and the change batch inside it, or the claim check that says
//! where in Cloud Storage the batch is (`crate::claims`).

use crate::error::{Result, WriterError};
use base64::Engine;
use pg2bq_core::wire::{ChangeBatch, ClaimCheck, attributes};
use serde::Deserialize;
use std::collections::HashMap;

/// A push request as Pub/Sub (and its emulator) sends it.
#[derive(Debug, Deserialize)]
pub struct PushEnvelope {
    /// The message.
    pub message: PushMessage,
    /// `projects/P/subscriptions/S`.
    #[serde(default)]
    pub subscription: Option<String>,
    /// The delivery attempt, counted by Pub/Sub only under a dead-letter policy.
    #[serde(default, rename = "deliveryAttempt")]
    pub delivery_attempt: Option<u32>,
}

/// The message of a push request. The emulator sends both spellings of the id fields.
#[derive(Debug, Deserialize)]
pub struct PushMessage {
    /// Base64 payload.
    #[serde(default)]
    pub data: Option<String>,
    /// Attributes set by capture.
    #[serde(default)]
    pub attributes: HashMap<String, String>,
    /// Message id.
    #[serde(default, rename = "messageId")]
    pub message_id: Option<String>,
    /// Message id, emulator spelling.
    #[serde(default, rename = "message_id")]
    pub message_id_snake: Option<String>,
    /// When it was published (RFC 3339).
    #[serde(default, rename = "publishTime")]
    pub publish_time: Option<String>,
    /// When it was published, emulator spelling.
    #[serde(default, rename = "publish_time")]
    pub publish_time_snake: Option<String>,
}

impl PushMessage {
    /// Whether `pg2bq quarantine retry` published this message again.
    pub fn is_retry(&self) -> bool {
        self.attributes.contains_key(attributes::RETRY)
    }

    /// When it was published, whichever spelling carried it.
    pub fn publish_time(&self) -> Option<&str> {
        self.publish_time
            .as_deref()
            .or(self.publish_time_snake.as_deref())
    }

    /// The message id, whichever spelling carried it.
    pub fn id(&self) -> &str {
        self.message_id
            .as_deref()
            .or(self.message_id_snake.as_deref())
            .unwrap_or("-")
    }
}

/// Reads the push body and the change batch it carries. A claim check is refused here: its batch
/// is read with [`parse_message`], [`PushMessage::claim`] and [`decode_batch`].
pub fn parse(body: &[u8]) -> Result<(PushMessage, ChangeBatch)> {
    let message = parse_message(body)?;
    if message.claim().is_some() {
        return Err(WriterError::BadBatch(
            "the message is a claim check; its batch is in Cloud Storage".into(),
        ));
    }
    let bytes = message.data()?;
    let batch = decode_batch(&message, &bytes, MAX_BATCH_BYTES)?;
    Ok((message, batch))
}

/// Reads the push body.
pub fn parse_message(body: &[u8]) -> Result<PushMessage> {
    parse_envelope(body).map(|envelope| envelope.message)
}

/// Reads the push body, with the subscription that sent it.
pub fn parse_envelope(body: &[u8]) -> Result<PushEnvelope> {
    serde_json::from_slice(body).map_err(|e| {
        WriterError::BadEnvelope(format!(
            "expected a Pub/Sub push request {{\"message\": {{\"data\": ...}}}}: {e}"
        ))
    })
}

impl PushMessage {
    /// The decoded data of the message.
    pub fn data(&self) -> Result<Vec<u8>> {
        let data = self
            .data
            .as_deref()
            .ok_or_else(|| WriterError::BadEnvelope("the message has no data".into()))?;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| WriterError::BadBatch(format!("message data is not base64: {e}")))
    }

    /// The claim check the message carries, if it is one: its batch waits in Cloud Storage.
    pub fn claim(&self) -> Option<Result<ClaimCheck>> {
        let uri = self.attributes.get(attributes::CLAIM)?;
        Some(self.data().and_then(|data| {
            let check: ClaimCheck = serde_json::from_slice(&data).map_err(|e| {
                WriterError::BadBatch(format!(
                    "claim check {uri}: the body is not a claim check: {e}"
                ))
            })?;
            if &check.claim != uri {
                return Err(WriterError::BadBatch(format!(
                    "claim check names {} in its attribute and {} in its body",
                    uri, check.claim
                )));
            }
            Ok(check)
        }))
    }
}

/// The change batch of a message body (the message's data, or a claim check's object), decoded
/// by the message's `encoding`; a gzip body may inflate to `max_bytes`.
pub fn decode_batch(message: &PushMessage, bytes: &[u8], max_bytes: u64) -> Result<ChangeBatch> {
    let encoding = message
        .attributes
        .get(attributes::ENCODING)
        .map(String::as_str)
        .unwrap_or("json");
    let inflated;
    let bytes = match encoding {
        "json" => bytes,
        "json+gzip" => {
            inflated = gunzip(bytes, max_bytes)?;
            &inflated
        }
        other => {
            return Err(WriterError::BadBatch(format!(
                "encoding '{other}' is not supported by this writer (it reads 'json' and 'json+gzip')"
            )));
        }
    };
    ChangeBatch::from_json(bytes).map_err(|e| WriterError::BadBatch(e.to_string()))
}

/// Largest decompressed batch accepted from a message (a message is at most 10 MB compressed).
pub const MAX_BATCH_BYTES: u64 = 256 << 20;

fn gunzip(bytes: &[u8], max_bytes: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(bytes.len() * 4);
    flate2::read::GzDecoder::new(bytes)
        .take(max_bytes + 1)
        .read_to_end(&mut out)
        .map_err(|e| WriterError::BadBatch(format!("message data is not valid gzip: {e}")))?;
    if out.len() as u64 > max_bytes {
        return Err(WriterError::BadBatch(format!(
            "message data inflates beyond {max_bytes} bytes"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_id_spellings_and_rejects_garbage() {
        let body = br#"{"message":{"data":"bm90IGpzb24=","messageId":"1","message_id":"1"},"subscription":"s"}"#;
        let err = parse(body).unwrap_err();
        assert!(matches!(err, WriterError::BadBatch(_)), "{err}");
        assert!(matches!(
            parse(b"{}").unwrap_err(),
            WriterError::BadEnvelope(_)
        ));
        assert!(matches!(
            parse(br#"{"message":{"data":"%%%"}}"#).unwrap_err(),
            WriterError::BadBatch(_)
        ));
        let msg: PushEnvelope = serde_json::from_slice(body).unwrap();
        assert_eq!(msg.message.id(), "1");
    }

    #[test]
    fn reads_gzip_and_refuses_unknown_encodings() {
        use std::io::Write;
        let batch = br#"{"version":1,"source":{"schema":"s","table":"t"},"columns":[{"name":"id","pg_type":"int4","type_modifier":-1,"key":true}],"changes":[]}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(batch).unwrap();
        let data = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
        let with = |encoding: &str| {
            format!(r#"{{"message":{{"data":"{data}","attributes":{{"encoding":"{encoding}"}}}}}}"#)
        };
        let (_, parsed) = parse(with("json+gzip").as_bytes()).unwrap();
        assert_eq!(parsed.source.table, "t");
        let err = parse(with("zstd").as_bytes()).unwrap_err();
        assert!(err.to_string().contains("'zstd' is not supported"), "{err}");
        assert!(matches!(
            parse(with("json").as_bytes()).unwrap_err(),
            WriterError::BadBatch(_)
        ));
    }
}
