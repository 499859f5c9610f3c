//! Publishing to the stream's Pub/Sub topic over Pub/Sub's REST API (`pg2bq quarantine retry`):
//! the CLI needs no gRPC stack for the few messages it sends.

use crate::error::{CliError, Result};
use base64::Engine;
use pg2bq_bigquery::auth::TokenSource;
use pg2bq_core::config::PubSubArgs;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::time::Duration;

const PUBSUB_SCOPE: &str = "https://www.googleapis.com/auth/pubsub";

/// Most bytes of message data in one publish request (Pub/Sub takes 10 MB).
const MAX_REQUEST_BYTES: usize = 7 << 20;

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Its data.
    pub data: Vec<u8>,
    /// Its attributes.
    pub attributes: BTreeMap<String, String>,
}

/// Publishes to one topic.
pub struct Publisher {
    http: reqwest::Client,
    url: String,
    tokens: TokenSource,
}

impl Publisher {
    /// A publisher of the topic `args` names: the emulator's when `PUBSUB_EMULATOR_HOST` is
    /// set, Google's (with Application Default Credentials) otherwise.
    pub fn new(args: &PubSubArgs) -> Result<Self> {
        if args.project.trim().is_empty() {
            return Err(CliError::Config(
                "no Google Cloud project for the Pub/Sub topic: set PG2BQ_PROJECT".into(),
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
        Ok(Publisher {
            http,
            url: format!("{base}/v1/{}:publish", args.topic_path()),
            tokens,
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
        let mut request = self.http.post(&self.url).json(&body);
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
            .map_err(|e| CliError::Config(format!("publishing to {}: {e}", self.url)))?;
        let status = response.status();
        let answer: Json = response.json().await.unwrap_or(Json::Null);
        if !status.is_success() {
            return Err(CliError::Config(format!(
                "publishing to {} failed ({status}): {answer}; the caller needs roles/pubsub.publisher on the topic",
                self.url
            )));
        }
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
