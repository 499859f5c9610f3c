//! The Pub/Sub emulator's REST API: topics, push and pull subscriptions (with a dead-letter
//! topic: the emulator dead-letters as Pub/Sub does), pulling messages.

use crate::stack::Stack;
use base64::Engine;
use pg2bq_core::wire::ChangeBatch;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Read;

/// A pulled message.
#[derive(Debug)]
pub struct Pulled {
    /// Attributes.
    pub attributes: HashMap<String, String>,
    /// The change batch (decompressed if needed).
    pub batch: ChangeBatch,
}

/// A pulled message, undecoded.
#[derive(Debug)]
pub struct RawMessage {
    /// Attributes.
    pub attributes: HashMap<String, String>,
    /// Data.
    pub data: Vec<u8>,
}

/// REST client of the emulator for one project.
pub struct PubSub {
    http: reqwest::Client,
    base: String,
    project: String,
}

impl PubSub {
    /// A client of the stack's emulator.
    pub fn new(stack: &Stack) -> Self {
        PubSub {
            http: reqwest::Client::new(),
            base: format!("http://{}/v1/projects/{}", stack.pubsub_host, stack.project),
            project: stack.project.clone(),
        }
    }

    /// Creates a topic (an existing one is kept).
    pub async fn create_topic(&self, topic: &str) {
        let _ = self
            .http
            .put(format!("{}/topics/{topic}", self.base))
            .send()
            .await
            .expect("create topic");
    }

    /// Deletes subscription `name` (nothing if it does not exist).
    pub async fn delete_subscription(&self, name: &str) {
        let _ = self
            .http
            .delete(format!("{}/subscriptions/{name}", self.base))
            .send()
            .await;
    }

    /// Replaces subscription `name` on `topic`: push to `endpoint`, or pull when `None`.
    pub async fn create_subscription(&self, name: &str, topic: &str, endpoint: Option<&str>) {
        self.create_subscription_with(name, topic, endpoint, json!({}))
            .await;
    }

    /// As [`PubSub::create_subscription`], with more of the subscription's fields (e.g.
    /// `retryPolicy`, `deadLetterPolicy`).
    pub async fn create_subscription_with(
        &self,
        name: &str,
        topic: &str,
        endpoint: Option<&str>,
        fields: Value,
    ) {
        let url = format!("{}/subscriptions/{name}", self.base);
        let _ = self.http.delete(&url).send().await;
        let mut body = json!({
            "topic": self.topic_path(topic),
            "ackDeadlineSeconds": 60,
        });
        if let Some(endpoint) = endpoint {
            body["pushConfig"] = json!({"pushEndpoint": endpoint});
        }
        if let (Some(body), Some(fields)) = (body.as_object_mut(), fields.as_object()) {
            body.extend(fields.clone());
        }
        let response = self
            .http
            .put(&url)
            .json(&body)
            .send()
            .await
            .expect("create subscription");
        assert!(
            response.status().is_success(),
            "subscription {name}: {}",
            response.status()
        );
    }

    /// Publishes one message to `topic`.
    pub async fn publish(&self, topic: &str, data: &[u8], attributes: &HashMap<String, String>) {
        let body = json!({"messages": [{
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "attributes": attributes,
        }]});
        let response = self
            .http
            .post(format!("{}/topics/{topic}:publish", self.base))
            .json(&body)
            .send()
            .await
            .expect("publish");
        assert!(
            response.status().is_success(),
            "publish: {}",
            response.status()
        );
    }

    /// `projects/<project>/topics/<topic>`.
    pub fn topic_path(&self, topic: &str) -> String {
        format!("projects/{}/topics/{topic}", self.project)
    }

    /// Pulls and acknowledges up to `max` messages of a pull subscription, as they are.
    pub async fn pull_raw(&self, subscription: &str, max: u32) -> Vec<RawMessage> {
        self.pull_values(subscription, max)
            .await
            .iter()
            .map(|message| RawMessage {
                attributes: serde_json::from_value(message["attributes"].clone())
                    .unwrap_or_default(),
                data: base64::engine::general_purpose::STANDARD
                    .decode(message["data"].as_str().unwrap_or_default())
                    .expect("base64 data"),
            })
            .collect()
    }

    /// Pulls and acknowledges up to `max` messages of a pull subscription.
    pub async fn pull(&self, subscription: &str, max: u32) -> Vec<Pulled> {
        self.pull_values(subscription, max)
            .await
            .iter()
            .map(decode)
            .collect()
    }

    async fn pull_values(&self, subscription: &str, max: u32) -> Vec<Value> {
        let url = format!("{}/subscriptions/{subscription}", self.base);
        let answer: Value = self
            .http
            .post(format!("{url}:pull"))
            .json(&json!({"maxMessages": max, "returnImmediately": true}))
            .send()
            .await
            .expect("pull")
            .json()
            .await
            .expect("pull answer");
        let received = answer["receivedMessages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ack_ids: Vec<Value> = received.iter().map(|m| m["ackId"].clone()).collect();
        if !ack_ids.is_empty() {
            self.http
                .post(format!("{url}:acknowledge"))
                .json(&json!({"ackIds": ack_ids}))
                .send()
                .await
                .expect("acknowledge");
        }
        received.iter().map(|m| m["message"].clone()).collect()
    }
}

fn decode(message: &Value) -> Pulled {
    let attributes: HashMap<String, String> =
        serde_json::from_value(message["attributes"].clone()).unwrap_or_default();
    let data = base64::engine::general_purpose::STANDARD
        .decode(message["data"].as_str().unwrap_or_default())
        .expect("base64 data");
    let json = if attributes.get("encoding").map(String::as_str) == Some("json+gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data.as_slice())
            .read_to_end(&mut out)
            .expect("gzip");
        out
    } else {
        data
    };
    Pulled {
        attributes,
        batch: ChangeBatch::from_json(&json).expect("a change batch"),
    }
}
