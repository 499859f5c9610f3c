//! The Pub/Sub emulator's REST API: topics, push and pull subscriptions (with a dead-letter
//! topic: the emulator dead-letters as Pub/Sub does), pulling messages.

use crate::stack::Stack;
use base64::Engine;
use pg2bq_core::wire::ChangeBatch;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Read;

/// Deliveries of a message before a test's push subscription dead-letters it (Pub/Sub's least).
pub const DEAD_LETTER_ATTEMPTS: u32 = 5;

/// A pulled message.
#[derive(Debug)]
pub struct Pulled {
    /// Attributes.
    pub attributes: HashMap<String, String>,
    /// The change batch (decompressed if needed).
    pub batch: ChangeBatch,
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

    /// Replaces subscription `name` on `topic`: push to `endpoint`, or pull when `None`.
    pub async fn create_subscription(&self, name: &str, topic: &str, endpoint: Option<&str>) {
        let url = format!("{}/subscriptions/{name}", self.base);
        let _ = self.http.delete(&url).send().await;
        let mut body = json!({
            "topic": format!("projects/{}/topics/{topic}", self.project),
            "ackDeadlineSeconds": 60,
        });
        if let Some(endpoint) = endpoint {
            body["pushConfig"] = json!({"pushEndpoint": endpoint});
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

    /// Replaces push subscription `name` on `topic` to `endpoint` with a dead-letter policy: after
    /// [`DEAD_LETTER_ATTEMPTS`] deliveries a message moves to topic `<topic>-dead-letter`, whose
    /// pull subscription `<topic>-dead-letter-pull` (created empty here) keeps it. The emulator
    /// adds the attributes Pub/Sub adds (`CloudPubSubDeadLetterSourceDeliveryCount`, ...).
    ///
    /// No retry policy: the emulator then delivers again at once. Under a retry policy it stops
    /// delivering messages that fail together after 3 or 4 attempts (seen with 5 messages and
    /// 1 to 2 s of backoff), so they are never dead-lettered.
    pub async fn create_push_with_dead_letter(&self, name: &str, topic: &str, endpoint: &str) {
        let dead_letter = format!("{topic}-dead-letter");
        self.create_topic(&dead_letter).await;
        self.create_subscription(&format!("{dead_letter}-pull"), &dead_letter, None)
            .await;
        let url = format!("{}/subscriptions/{name}", self.base);
        let _ = self.http.delete(&url).send().await;
        let body = json!({
            "topic": format!("projects/{}/topics/{topic}", self.project),
            "ackDeadlineSeconds": 60,
            "pushConfig": {"pushEndpoint": endpoint},
            "deadLetterPolicy": {
                "deadLetterTopic": format!("projects/{}/topics/{dead_letter}", self.project),
                "maxDeliveryAttempts": DEAD_LETTER_ATTEMPTS,
            },
        });
        let response = self
            .http
            .put(&url)
            .json(&body)
            .send()
            .await
            .expect("create subscription");
        let status = response.status();
        let answer = response.text().await.unwrap_or_default();
        assert!(
            status.is_success() && answer.contains("deadLetterPolicy"),
            "subscription {name} with a dead-letter policy: {status} {answer}"
        );
    }

    /// Pulls and acknowledges up to `max` messages of a pull subscription.
    pub async fn pull(&self, subscription: &str, max: u32) -> Vec<Pulled> {
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
        received.iter().map(|m| decode(&m["message"])).collect()
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
