//! The Pub/Sub push request body and the change batch inside it.

use crate::error::{Result, WriterError};
use base64::Engine;
use pg2bq_core::wire::{ChangeBatch, attributes};
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
}

impl PushMessage {
    /// The message id, whichever spelling carried it.
    pub fn id(&self) -> &str {
        self.message_id
            .as_deref()
            .or(self.message_id_snake.as_deref())
            .unwrap_or("-")
    }
}

/// Reads the push body and the change batch it carries.
pub fn parse(body: &[u8]) -> Result<(PushMessage, ChangeBatch)> {
    let envelope: PushEnvelope = serde_json::from_slice(body).map_err(|e| {
        WriterError::BadEnvelope(format!(
            "expected a Pub/Sub push request {{\"message\": {{\"data\": ...}}}}: {e}"
        ))
    })?;
    let message = envelope.message;
    let data = message
        .data
        .as_deref()
        .ok_or_else(|| WriterError::BadEnvelope("the message has no data".into()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| WriterError::BadBatch(format!("message data is not base64: {e}")))?;
    let encoding = message
        .attributes
        .get(attributes::ENCODING)
        .map(String::as_str)
        .unwrap_or("json");
    if encoding != "json" {
        return Err(WriterError::BadBatch(format!(
            "encoding '{encoding}' is not supported by this writer (it reads 'json')"
        )));
    }
    let batch = ChangeBatch::from_json(&bytes).map_err(|e| WriterError::BadBatch(e.to_string()))?;
    Ok((message, batch))
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
}
