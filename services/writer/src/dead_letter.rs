//! Forwarding a message the writer can never write to the dead-letter topic
//! (`PG2BQ_DEAD_LETTER_TOPIC`), over Pub/Sub's REST API.
//!
//! The push subscription has no dead-letter policy: Pub/Sub's would count an outage's failed
//! deliveries like a bad message's and dead-letter after at most 100 attempts, well within the
//! retention. The writer alone can tell the two apart, so it forwards only what is permanent
//! ([`WriterError::is_permanent`]): the message's data and attributes, plus the reason. Once the
//! topic has it, the push is acknowledged; if the topic cannot be reached, the push fails and
//! Pub/Sub retries it.

use crate::error::{Result, WriterError};
use crate::http::envelope::PushEnvelope;
use base64::Engine;
use pg2bq_bigquery::auth::TokenSource;
use pg2bq_core::wire::attributes;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::time::Duration;

const PUBSUB_SCOPE: &str = "https://www.googleapis.com/auth/pubsub";

/// Pub/Sub takes attribute values of at most 1024 bytes.
const MAX_ATTRIBUTE_BYTES: usize = 1024;

/// A publisher of the dead-letter topic.
pub struct DeadLetter {
    http: reqwest::Client,
    url: String,
    topic: String,
    tokens: TokenSource,
}

impl DeadLetter {
    /// A publisher of `topic` (`name` in `project`, or `projects/P/topics/T`): the emulator's at
    /// `emulator_host` if set, Google's otherwise.
    pub fn new(
        topic: &str,
        project: &str,
        emulator_host: Option<&str>,
        timeout: Duration,
    ) -> Result<Self> {
        let topic = topic_path(topic, project)?;
        let (base, tokens) = match emulator_host.map(str::trim).filter(|h| !h.is_empty()) {
            Some(host) => (format!("http://{host}"), TokenSource::None),
            None => (
                "https://pubsub.googleapis.com".to_owned(),
                TokenSource::google_for(PUBSUB_SCOPE)
                    .map_err(|e| WriterError::Config(format!("dead-letter topic {topic}: {e}")))?,
            ),
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| WriterError::Config(format!("cannot build an HTTP client: {e}")))?;
        Ok(DeadLetter {
            http,
            url: format!("{base}/v1/{topic}:publish"),
            topic,
            tokens,
        })
    }

    /// The topic's full name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publishes the pushed message with the reason it can never be written; returns the id the
    /// dead-letter topic gave it.
    pub async fn forward(&self, envelope: &PushEnvelope, error: &WriterError) -> Result<String> {
        let message = &envelope.message;
        // Data that is not base64 is kept as it came.
        let data = message.data().unwrap_or_else(|_| {
            message
                .data
                .as_deref()
                .unwrap_or_default()
                .as_bytes()
                .to_vec()
        });
        let mut attributes: BTreeMap<String, String> = message
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        attributes.insert(
            attributes::DEAD_LETTER_ERROR.into(),
            cut(&error.to_string()),
        );
        attributes.insert(attributes::DEAD_LETTER_KIND.into(), error.kind().into());
        attributes.insert(attributes::DEAD_LETTER_MESSAGE_ID.into(), cut(message.id()));
        if let Some(subscription) = &envelope.subscription {
            attributes.insert(
                attributes::DEAD_LETTER_SUBSCRIPTION.into(),
                cut(subscription),
            );
        }
        if let Some(published) = message.publish_time() {
            attributes.insert(attributes::DEAD_LETTER_PUBLISHED.into(), cut(published));
        }
        if let Some(attempt) = envelope.delivery_attempt {
            attributes.insert(attributes::DEAD_LETTER_ATTEMPT.into(), attempt.to_string());
        }
        let body = json!({"messages": [{
            "data": base64::engine::general_purpose::STANDARD.encode(&data),
            "attributes": attributes,
        }]});
        let unavailable = |what: String| {
            WriterError::DeadLetter(format!(
                "{}: {what}; the message stays in the subscription and is retried (the writer \
                 needs roles/pubsub.publisher on the topic)",
                self.topic
            ))
        };
        let mut request = self.http.post(&self.url).json(&body);
        let authorization = self
            .tokens
            .authorization()
            .await
            .map_err(|e| unavailable(format!("no access token: {e}")))?;
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let response = request
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status();
        let answer: Json = response.json().await.unwrap_or(Json::Null);
        if !status.is_success() {
            return Err(unavailable(format!("HTTP {status}: {answer}")));
        }
        Ok(answer
            .pointer("/messageIds/0")
            .and_then(Json::as_str)
            .unwrap_or("-")
            .to_owned())
    }
}

/// `projects/<project>/topics/<name>` of a topic given by name or in full.
fn topic_path(topic: &str, project: &str) -> Result<String> {
    let topic = topic.trim();
    let path = if topic.contains('/') {
        topic.to_owned()
    } else {
        format!("projects/{project}/topics/{topic}")
    };
    let parts: Vec<&str> = path.split('/').collect();
    let valid =
        matches!(parts.as_slice(), ["projects", p, "topics", t] if !p.is_empty() && !t.is_empty());
    if !valid {
        return Err(WriterError::Config(format!(
            "PG2BQ_DEAD_LETTER_TOPIC '{topic}' is neither a topic name nor projects/P/topics/T"
        )));
    }
    Ok(path)
}

/// `text` cut to fit an attribute value, at a character boundary.
fn cut(text: &str) -> String {
    if text.len() <= MAX_ATTRIBUTE_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_ATTRIBUTE_BYTES - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_named_or_given_in_full() {
        assert_eq!(
            topic_path("dl", "p").unwrap(),
            "projects/p/topics/dl".to_owned()
        );
        assert_eq!(
            topic_path("projects/q/topics/dl", "p").unwrap(),
            "projects/q/topics/dl".to_owned()
        );
        let error = topic_path("projects/q/dl", "p").unwrap_err().to_string();
        assert!(error.contains("PG2BQ_DEAD_LETTER_TOPIC"), "{error}");
    }

    #[test]
    fn long_reasons_are_cut_to_an_attribute_value() {
        let long = "é".repeat(1000);
        let cut = cut(&long);
        assert!(cut.len() <= MAX_ATTRIBUTE_BYTES && cut.ends_with("..."));
        assert_eq!(super::cut("short"), "short");
    }
}
