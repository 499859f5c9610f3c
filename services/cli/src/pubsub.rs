//! Pub/Sub over its REST API, with the caller's credentials: publishing to the stream's topic
//! (`pg2bq quarantine retry`, `pg2bq deadletter replay`) and pulling from a subscription
//! (`pg2bq deadletter list|replay`). The CLI needs no gRPC stack for the few messages it moves.

use crate::error::{CliError, Result};
use base64::Engine;
use pg2bq_bigquery::auth::TokenSource;
use pg2bq_core::config::PubSubArgs;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::time::Duration;

const PUBSUB_SCOPE: &str = "https://www.googleapis.com/auth/pubsub";

/// Most bytes of message data in one publish request (Pub/Sub takes 10 MB).
const MAX_REQUEST_BYTES: usize = 7 << 20;

/// Most acknowledgement ids in one `acknowledge` or `modifyAckDeadline` request.
const MAX_ACK_IDS: usize = 500;

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Its data.
    pub data: Vec<u8>,
    /// Its attributes.
    pub attributes: BTreeMap<String, String>,
}

/// A message pulled from a subscription, leased to the caller until its deadline.
#[derive(Debug, Clone)]
pub struct Received {
    /// What acknowledges it, or changes its deadline.
    pub ack_id: String,
    /// Its id (Pub/Sub's, on the subscription's topic).
    pub message_id: String,
    /// When it was published to the subscription's topic (RFC 3339).
    pub publish_time: String,
    /// Its data.
    pub data: Vec<u8>,
    /// Its attributes.
    pub attributes: BTreeMap<String, String>,
}

/// The REST endpoint and the credentials of every call.
struct Rest {
    http: reqwest::Client,
    base: String,
    tokens: TokenSource,
}

impl Rest {
    /// The emulator's endpoint when `PUBSUB_EMULATOR_HOST` is set, Google's (with Application
    /// Default Credentials) otherwise.
    fn new(args: &PubSubArgs) -> Result<Self> {
        if args.project.trim().is_empty() {
            return Err(CliError::Config(
                "no Google Cloud project for Pub/Sub: set PG2BQ_PROJECT".into(),
            ));
        }
        let (base, tokens) = match args.emulator_host() {
            Some(host) => (format!("http://{host}"), TokenSource::None),
            None => (
                "https://pubsub.googleapis.com".to_owned(),
                TokenSource::google_for(PUBSUB_SCOPE)
                    .map_err(CliError::bigquery("Pub/Sub credentials"))?,
            ),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CliError::Config(format!("cannot build an HTTP client: {e}")))?;
        Ok(Rest { http, base, tokens })
    }

    /// Posts `body` to `<base>/v1/<path>`; returns the answer. `needs` names the permission a
    /// refusal asks for.
    async fn post(&self, path: &str, body: &Json, needs: &str) -> Result<Json> {
        let url = format!("{}/v1/{path}", self.base);
        let mut request = self.http.post(&url).json(body);
        if let Some(authorization) = self
            .tokens
            .authorization()
            .await
            .map_err(CliError::bigquery("a Pub/Sub access token"))?
        {
            request = request.header("authorization", authorization);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CliError::Config(format!("calling {url}: {e}")))?;
        let status = response.status();
        let answer: Json = response.json().await.unwrap_or(Json::Null);
        if !status.is_success() {
            let fix = match status.as_u16() {
                401 | 403 => format!("; the caller needs {needs}"),
                404 => "; check PG2BQ_PROJECT and the names (PG2BQ_TOPIC, \
                        PG2BQ_DEADLETTER_SUBSCRIPTION)"
                    .to_owned(),
                _ => String::new(),
            };
            return Err(CliError::Config(format!(
                "{url} failed ({status}): {answer}{fix}"
            )));
        }
        Ok(answer)
    }
}

/// Publishes to one topic.
pub struct Publisher {
    rest: Rest,
    path: String,
}

impl Publisher {
    /// A publisher of the topic `args` names: the emulator's when `PUBSUB_EMULATOR_HOST` is
    /// set, Google's (with Application Default Credentials) otherwise.
    pub fn new(args: &PubSubArgs) -> Result<Self> {
        Ok(Publisher {
            rest: Rest::new(args)?,
            path: format!("{}:publish", args.topic_path()),
        })
    }

    /// Publishes the messages (in requests under Pub/Sub's limits); returns their ids.
    pub async fn publish(&self, messages: &[Outgoing]) -> Result<Vec<String>> {
        let mut ids = Vec::with_capacity(messages.len());
        let mut start = 0;
        while start < messages.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < messages.len() && end - start < 1000 {
                let size = messages[end].data.len();
                if end > start && bytes + size > MAX_REQUEST_BYTES {
                    break;
                }
                bytes += size;
                end += 1;
            }
            ids.extend(self.publish_request(&messages[start..end]).await?);
            start = end;
        }
        Ok(ids)
    }

    async fn publish_request(&self, messages: &[Outgoing]) -> Result<Vec<String>> {
        let encode = |m: &Outgoing| {
            json!({
                "data": base64::engine::general_purpose::STANDARD.encode(&m.data),
                "attributes": m.attributes,
            })
        };
        let body = json!({ "messages": messages.iter().map(encode).collect::<Vec<_>>() });
        let answer = self
            .rest
            .post(&self.path, &body, "roles/pubsub.publisher on the topic")
            .await?;
        Ok(answer["messageIds"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// Pulls from one subscription, and acknowledges or releases what it pulled.
pub struct Subscriber {
    rest: Rest,
    path: String,
}

const CONSUME: &str = "roles/pubsub.subscriber on the subscription";

impl Subscriber {
    /// A subscriber of `subscription` (a name in `args.project`, or a whole
    /// `projects/<p>/subscriptions/<s>` path), on the emulator or Google as for [`Publisher`].
    pub fn new(args: &PubSubArgs, subscription: &str) -> Result<Self> {
        let path = if subscription.starts_with("projects/") {
            subscription.to_owned()
        } else {
            format!("projects/{}/subscriptions/{subscription}", args.project)
        };
        Ok(Subscriber {
            rest: Rest::new(args)?,
            path,
        })
    }

    /// `projects/<p>/subscriptions/<s>`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Pulls up to `max` messages, without waiting for any. Pub/Sub may answer with fewer than
    /// are available, or none: pull again to be sure. (A pull that waits would be cut short by
    /// the caller when nothing comes, and Pub/Sub would then lease what it delivers to that
    /// abandoned pull, hiding it from the next pulls for its acknowledgement deadline.)
    pub async fn pull(&self, max: usize) -> Result<Vec<Received>> {
        let body = json!({ "maxMessages": max, "returnImmediately": true });
        let path = format!("{}:pull", self.path);
        let answer = self.rest.post(&path, &body, CONSUME).await?;
        let pulled: PullAnswer = serde_json::from_value(answer)
            .map_err(|e| CliError::Config(format!("unexpected answer of {path}: {e}")))?;
        pulled
            .received_messages
            .into_iter()
            .map(|m| {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(m.message.data.as_bytes())
                    .map_err(|e| {
                        CliError::Config(format!(
                            "message {} of {} has data that is not base64: {e}",
                            m.message.message_id, self.path
                        ))
                    })?;
                Ok(Received {
                    ack_id: m.ack_id,
                    message_id: m.message.message_id,
                    publish_time: m.message.publish_time,
                    data,
                    attributes: m.message.attributes,
                })
            })
            .collect()
    }

    /// Acknowledges messages: the subscription forgets them.
    pub async fn acknowledge(&self, ack_ids: &[String]) -> Result<()> {
        for chunk in ack_ids.chunks(MAX_ACK_IDS) {
            let body = json!({ "ackIds": chunk });
            self.rest
                .post(&format!("{}:acknowledge", self.path), &body, CONSUME)
                .await?;
        }
        Ok(())
    }

    /// Sets the lease of messages to `seconds` from now; 0 releases them at once to the next
    /// pull (a negative acknowledgement).
    pub async fn modify_ack_deadline(&self, ack_ids: &[String], seconds: u32) -> Result<()> {
        for chunk in ack_ids.chunks(MAX_ACK_IDS) {
            let body = json!({ "ackIds": chunk, "ackDeadlineSeconds": seconds });
            self.rest
                .post(&format!("{}:modifyAckDeadline", self.path), &body, CONSUME)
                .await?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullAnswer {
    #[serde(default)]
    received_messages: Vec<PulledMessage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PulledMessage {
    ack_id: String,
    message: MessageBody,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageBody {
    #[serde(default)]
    data: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    message_id: String,
    #[serde(default)]
    publish_time: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_answer_is_read_with_and_without_messages() {
        let empty: PullAnswer = serde_json::from_value(json!({})).unwrap();
        assert!(empty.received_messages.is_empty());
        let answer: PullAnswer = serde_json::from_value(json!({"receivedMessages": [{
            "ackId": "a1",
            "message": {"data": "aGk=", "attributes": {"table": "s.t"}, "messageId": "7",
                        "publishTime": "2026-01-02T03:04:05.678Z"}
        }]}))
        .unwrap();
        let m = &answer.received_messages[0];
        assert_eq!(m.ack_id, "a1");
        assert_eq!(m.message.attributes["table"], "s.t");
        assert_eq!(m.message.publish_time, "2026-01-02T03:04:05.678Z");
    }
}
