//! `pg2bq deadletter list|replay`: the change batches on the dead-letter topic, and publishing
//! them again to the stream's topic once the cause is fixed. The writer forwards there the
//! messages it can never write, with the reason (attributes `dead_letter_*`); a subscription
//! given a dead-letter policy by hand has Pub/Sub move messages there too (attributes
//! `CloudPubSubDeadLetter*`). Both kinds are read alike.
//!
//! Both read the dead-letter topic's pull subscription ([`Subscriber`]). Every message pulled is
//! leased for [`HOLD_SECS`], so that later pulls of the same run return the others; what a run
//! does not consume is released at its end (a negative acknowledgement), so `list` leaves the
//! subscription as it found it unless asked to acknowledge. `replay` publishes each message it
//! takes to the stream's topic with its own data and attributes (a claim check keeps its
//! reference), and acknowledges it on the dead-letter subscription only once Pub/Sub accepted the
//! publish: an interruption replays a message twice at worst, which is harmless because the
//! newest sequence number per key wins.

use crate::error::{CliError, Result};
use crate::pubsub::{Outgoing, Publisher, Received, Subscriber};
use pg2bq_core::wire::attributes;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// Attributes Pub/Sub adds to a message it dead-letters.
pub mod pubsub_attributes {
    /// Every attribute Pub/Sub adds starts with this.
    pub const PREFIX: &str = "CloudPubSubDeadLetter";
    /// Deliveries of the message before it was dead-lettered.
    pub const DELIVERY_COUNT: &str = "CloudPubSubDeadLetterSourceDeliveryCount";
    /// The subscription that gave up on it.
    pub const SUBSCRIPTION: &str = "CloudPubSubDeadLetterSourceSubscription";
    /// When it was first published to the stream's topic.
    pub const TOPIC_PUBLISH_TIME: &str = "CloudPubSubDeadLetterSourceTopicPublishTime";
}

/// How long a run holds each message it pulled and has not consumed.
pub const HOLD_SECS: u32 = 300;

/// Messages pulled at once.
const PAGE: usize = 500;

/// The pause between pulls that found nothing.
const PULL_AGAIN: Duration = Duration::from_millis(500);

/// The dead-letter subscription of a stream whose topic is `topic`, as Terraform names it:
/// `<topic>-dead-letter-pull`.
pub fn default_subscription(topic: &str) -> String {
    format!("{topic}-dead-letter-pull")
}

/// One dead-lettered message, as `list` and `replay` show it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLettered {
    /// Its id on the dead-letter topic.
    pub message_id: String,
    /// `schema.table` of its changes (attribute `table`), if it has one.
    pub table: Option<String>,
    /// Number of changes (attribute `changes`).
    pub changes: Option<u64>,
    /// Sequence number of the first change.
    pub first_seq: Option<String>,
    /// Sequence number of the last change.
    pub last_seq: Option<String>,
    /// Why it was dead-lettered: the writer's error, when the writer forwarded it.
    pub error: Option<String>,
    /// The kind of that error (`bad_batch`, `unwritable`, ...).
    pub kind: Option<String>,
    /// Deliveries before it was dead-lettered, when Pub/Sub counted them.
    pub delivery_attempts: Option<u32>,
    /// The subscription it was pushed from (its short name).
    pub source_subscription: Option<String>,
    /// When capture (or a retry) published it to the stream's topic.
    pub published: Option<String>,
    /// When Pub/Sub moved it to the dead-letter topic.
    pub dead_lettered: String,
    /// The Cloud Storage object of a claim check: the batch waits there.
    pub claim: Option<String>,
    /// How many times `replay` already published it again.
    pub replayed: u32,
    /// Every attribute, Pub/Sub's included.
    pub attributes: BTreeMap<String, String>,
}

impl DeadLettered {
    /// Reads what a pulled message says about itself.
    pub fn from_received(message: &Received) -> Self {
        let get = |name: &str| message.attributes.get(name).cloned();
        DeadLettered {
            message_id: message.message_id.clone(),
            table: get(attributes::TABLE),
            changes: get(attributes::CHANGES).and_then(|c| c.parse().ok()),
            first_seq: get(attributes::FIRST_SEQ),
            last_seq: get(attributes::LAST_SEQ),
            error: get(attributes::DEAD_LETTER_ERROR),
            kind: get(attributes::DEAD_LETTER_KIND),
            delivery_attempts: get(pubsub_attributes::DELIVERY_COUNT)
                .or_else(|| get(attributes::DEAD_LETTER_ATTEMPT))
                .and_then(|c| c.parse().ok()),
            source_subscription: get(pubsub_attributes::SUBSCRIPTION)
                .or_else(|| get(attributes::DEAD_LETTER_SUBSCRIPTION))
                .map(|s| s.rsplit('/').next().unwrap_or_default().to_owned()),
            published: get(pubsub_attributes::TOPIC_PUBLISH_TIME)
                .or_else(|| get(attributes::DEAD_LETTER_PUBLISHED)),
            dead_lettered: message.publish_time.clone(),
            claim: get(attributes::CLAIM),
            replayed: replay_count(message),
            attributes: message.attributes.clone(),
        }
    }
}

fn replay_count(message: &Received) -> u32 {
    message
        .attributes
        .get(attributes::REPLAYED)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The message that replays `message`: its data and attributes as capture (or a retry) published
/// them, without those Pub/Sub or the writer added when dead-lettering it, with [`attributes::REPLAYED`]
/// counted up and [`attributes::REPLAY_RUN`] set to `run`.
pub fn replay_message(message: &Received, run: &str) -> Outgoing {
    let mut attributes: BTreeMap<String, String> = message
        .attributes
        .iter()
        .filter(|(name, _)| {
            !name.starts_with(pubsub_attributes::PREFIX) && !attributes::is_dead_letter(name)
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    attributes.insert(
        attributes::REPLAYED.to_owned(),
        (replay_count(message) + 1).to_string(),
    );
    attributes.insert(attributes::REPLAY_RUN.to_owned(), run.to_owned());
    Outgoing {
        data: message.data.clone(),
        attributes,
    }
}

/// Which messages a run takes.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only those of this `schema.table`.
    pub table: Option<String>,
    /// At most this many.
    pub limit: Option<usize>,
    /// Not those that carry this [`attributes::REPLAY_RUN`] (the running replay's own).
    pub skip_run: Option<String>,
}

impl Filter {
    fn takes(&self, message: &Received) -> bool {
        let attribute = |name: &str| message.attributes.get(name).map(String::as_str);
        self.table
            .as_deref()
            .is_none_or(|t| attribute(attributes::TABLE) == Some(t))
            && self
                .skip_run
                .as_deref()
                .is_none_or(|run| attribute(attributes::REPLAY_RUN) != Some(run))
    }
}

/// A pass over the subscription: pulls page by page, leases what it pulls, hands over the
/// messages the filter takes and holds the others until [`Scan::release`].
struct Scan<'a> {
    subscriber: &'a Subscriber,
    filter: &'a Filter,
    wait: Duration,
    seen: HashSet<String>,
    held: Vec<String>,
    taken: usize,
    left: usize,
}

impl<'a> Scan<'a> {
    fn new(subscriber: &'a Subscriber, filter: &'a Filter, wait: Duration) -> Self {
        Scan {
            subscriber,
            filter,
            wait,
            seen: HashSet::new(),
            held: Vec::new(),
            taken: 0,
            left: 0,
        }
    }

    /// The next messages the filter takes; empty once the subscription has had none left for
    /// this run during `wait` (or the limit is reached).
    async fn next(&mut self) -> Result<Vec<Received>> {
        let mut empty_since: Option<Instant> = None;
        loop {
            let room = self
                .filter
                .limit
                .map_or(PAGE, |l| l.saturating_sub(self.taken));
            if room == 0 {
                return Ok(Vec::new());
            }
            let page = self.subscriber.pull(PAGE.min(room)).await?;
            if page.is_empty() {
                let since = *empty_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.wait {
                    return Ok(Vec::new());
                }
                tokio::time::sleep(PULL_AGAIN).await;
                continue;
            }
            empty_since = None;
            let ack_ids: Vec<String> = page.iter().map(|m| m.ack_id.clone()).collect();
            self.subscriber
                .modify_ack_deadline(&ack_ids, HOLD_SECS)
                .await?;
            let mut taken = Vec::new();
            for message in page {
                let new = self.seen.insert(message.message_id.clone());
                if new && self.filter.takes(&message) && taken.len() < room {
                    taken.push(message);
                } else {
                    if new {
                        self.left += 1;
                    }
                    self.held.push(message.ack_id);
                }
            }
            if !taken.is_empty() {
                self.taken += taken.len();
                return Ok(taken);
            }
        }
    }

    /// Keeps `messages` until the end of the run, then releases them with the others.
    fn hold(&mut self, messages: &[Received]) {
        self.held.extend(messages.iter().map(|m| m.ack_id.clone()));
    }

    /// Releases every message held: the next pull, of anyone, gets them.
    async fn release(&mut self) -> Result<()> {
        let held = std::mem::take(&mut self.held);
        self.subscriber.modify_ack_deadline(&held, 0).await
    }
}

/// What `list` found.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// The messages the filter took, by table and sequence number.
    pub messages: Vec<DeadLettered>,
    /// Messages of the subscription it saw and did not take (other tables; a run with a limit
    /// stops looking once it is reached).
    pub others: usize,
    /// Whether they were acknowledged (removed from the subscription).
    pub acknowledged: bool,
}

/// Lists the dead-lettered messages the filter takes, waiting up to `wait` for each pull. They
/// stay in the subscription, unless `acknowledge`: then they are removed, for good.
pub async fn list(
    subscriber: &Subscriber,
    filter: &Filter,
    wait: Duration,
    acknowledge: bool,
) -> Result<Listing> {
    let mut scan = Scan::new(subscriber, filter, wait);
    let outcome = list_pages(&mut scan, acknowledge).await;
    let released = scan.release().await;
    let mut messages = outcome?;
    released?;
    messages.sort_by(|a, b| (&a.table, &a.first_seq).cmp(&(&b.table, &b.first_seq)));
    Ok(Listing {
        messages,
        others: scan.left,
        acknowledged: acknowledge,
    })
}

async fn list_pages(scan: &mut Scan<'_>, acknowledge: bool) -> Result<Vec<DeadLettered>> {
    let mut listed = Vec::new();
    loop {
        let page = scan.next().await?;
        if page.is_empty() {
            return Ok(listed);
        }
        listed.extend(page.iter().map(DeadLettered::from_received));
        if acknowledge {
            let ack_ids: Vec<String> = page.iter().map(|m| m.ack_id.clone()).collect();
            scan.subscriber.acknowledge(&ack_ids).await?;
        } else {
            scan.hold(&page);
        }
    }
}

/// What `replay` did.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    /// The messages published again to the stream's topic and acknowledged.
    pub replayed: Vec<DeadLettered>,
    /// Messages of the subscription it saw and left there (other tables; a run with a limit
    /// stops looking once it is reached).
    pub others: usize,
    /// The id of this run (attribute `replay_run` of what it published).
    pub run: String,
}

/// Publishes the dead-lettered messages the filter takes to the stream's topic with
/// `publisher`, and acknowledges each on the dead-letter subscription once its publish
/// succeeded. A failed publish stops the run: what it had not published stays in the
/// subscription.
pub async fn replay(
    subscriber: &Subscriber,
    publisher: &Publisher,
    filter: &Filter,
    wait: Duration,
) -> Result<Replay> {
    let run = run_id();
    let filter = Filter {
        skip_run: Some(run.clone()),
        ..filter.clone()
    };
    let mut scan = Scan::new(subscriber, &filter, wait);
    let mut replayed = Vec::new();
    let outcome = replay_pages(&mut scan, &run, publisher, &mut replayed).await;
    let released = scan.release().await;
    outcome?;
    released?;
    Ok(Replay {
        replayed,
        others: scan.left,
        run,
    })
}

async fn replay_pages(
    scan: &mut Scan<'_>,
    run: &str,
    publisher: &Publisher,
    replayed: &mut Vec<DeadLettered>,
) -> Result<()> {
    loop {
        let page = scan.next().await?;
        if page.is_empty() {
            return Ok(());
        }
        let outgoing: Vec<Outgoing> = page.iter().map(|m| replay_message(m, run)).collect();
        if let Err(e) = publisher.publish(&outgoing).await {
            scan.hold(&page);
            return Err(e);
        }
        let ack_ids: Vec<String> = page.iter().map(|m| m.ack_id.clone()).collect();
        if let Err(e) = scan.subscriber.acknowledge(&ack_ids).await {
            return Err(CliError::Config(format!(
                "published {} messages again but could not acknowledge them on {}: {e}. They \
                 stay there, and a later replay publishes them once more (harmless: the newest \
                 change per key wins)",
                page.len(),
                scan.subscriber.path()
            )));
        }
        replayed.extend(page.iter().map(DeadLettered::from_received));
    }
}

/// A name for one replay run: its start time and process.
fn run_id() -> String {
    format!("{:x}-{}", pg2bq_core::civil::now_us(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(attributes: &[(&str, &str)]) -> Received {
        Received {
            ack_id: "a".into(),
            message_id: "9".into(),
            publish_time: "2026-01-02T03:04:06Z".into(),
            data: b"{\"claim\":\"gs://b/o\",\"bytes\":3}".to_vec(),
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn dead_lettered_claim() -> Received {
        received(&[
            ("table", "s.t"),
            ("changes", "12"),
            ("first_seq", "0000000000000010/0000000000000001"),
            ("last_seq", "0000000000000010/000000000000000C"),
            ("encoding", "json"),
            ("claim", "gs://b/o"),
            ("CloudPubSubDeadLetterSourceDeliveryCount", "5"),
            ("CloudPubSubDeadLetterSourceSubscription", "t-push"),
            ("CloudPubSubDeadLetterSourceSubscriptionProject", "p"),
            (
                "CloudPubSubDeadLetterSourceTopicPublishTime",
                "2026-01-02T03:04:05Z",
            ),
        ])
    }

    #[test]
    fn a_dead_lettered_message_shows_its_batch_and_what_pub_sub_attached() {
        let shown = DeadLettered::from_received(&dead_lettered_claim());
        assert_eq!(shown.table.as_deref(), Some("s.t"));
        assert_eq!(shown.changes, Some(12));
        assert_eq!(
            shown.last_seq.as_deref(),
            Some("0000000000000010/000000000000000C")
        );
        assert_eq!(shown.delivery_attempts, Some(5));
        assert_eq!(shown.source_subscription.as_deref(), Some("t-push"));
        assert_eq!(shown.published.as_deref(), Some("2026-01-02T03:04:05Z"));
        assert_eq!(shown.dead_lettered, "2026-01-02T03:04:06Z");
        assert_eq!(shown.claim.as_deref(), Some("gs://b/o"));
        assert_eq!(shown.replayed, 0);
    }

    #[test]
    fn a_message_the_writer_forwarded_shows_its_reason_and_replays_without_it() {
        let forwarded = received(&[
            ("table", "s.t"),
            ("changes", "3"),
            ("dead_letter_error", "bad batch: no columns"),
            ("dead_letter_kind", "bad_batch"),
            (
                "dead_letter_subscription",
                "projects/p/subscriptions/t-push",
            ),
            ("dead_letter_published", "2026-01-02T03:04:05Z"),
            ("dead_letter_message_id", "77"),
        ]);
        let shown = DeadLettered::from_received(&forwarded);
        assert_eq!(shown.error.as_deref(), Some("bad batch: no columns"));
        assert_eq!(shown.kind.as_deref(), Some("bad_batch"));
        assert_eq!(shown.source_subscription.as_deref(), Some("t-push"));
        assert_eq!(shown.published.as_deref(), Some("2026-01-02T03:04:05Z"));
        assert_eq!(shown.delivery_attempts, None);
        let replay = replay_message(&forwarded, "r");
        assert!(
            replay
                .attributes
                .keys()
                .all(|k| !k.starts_with("dead_letter_")),
            "{:?}",
            replay.attributes
        );
        assert_eq!(replay.attributes["table"], "s.t");
    }

    #[test]
    fn a_replay_keeps_data_and_attributes_but_not_pub_subs_and_counts_itself() {
        let original = dead_lettered_claim();
        let once = replay_message(&original, "r1");
        assert_eq!(
            once.data, original.data,
            "the claim check is sent as it was"
        );
        assert_eq!(once.attributes["claim"], "gs://b/o");
        assert_eq!(once.attributes["table"], "s.t");
        assert_eq!(
            once.attributes["first_seq"],
            original.attributes["first_seq"]
        );
        assert!(
            once.attributes
                .keys()
                .all(|k| !k.starts_with("CloudPubSubDeadLetter")),
            "{:?}",
            once.attributes
        );
        assert_eq!(once.attributes["replayed"], "1");
        assert_eq!(once.attributes["replay_run"], "r1");
        let mut again = original.clone();
        again.attributes = once.attributes.clone();
        assert_eq!(replay_message(&again, "r2").attributes["replayed"], "2");
    }

    #[test]
    fn the_filter_takes_a_table_and_skips_the_running_replays_own_messages() {
        let message = dead_lettered_claim();
        let all = Filter::default();
        assert!(all.takes(&message));
        let other = Filter {
            table: Some("s.u".into()),
            ..Filter::default()
        };
        assert!(!other.takes(&message));
        let mine = Filter {
            table: Some("s.t".into()),
            skip_run: Some("r1".into()),
            ..Filter::default()
        };
        assert!(mine.takes(&message));
        let replayed = received(&[("table", "s.t"), ("replay_run", "r1")]);
        assert!(!mine.takes(&replayed), "replayed by this run already");
    }

    #[test]
    fn the_default_subscription_is_terraforms_name() {
        assert_eq!(
            default_subscription("pg2bq-changes"),
            "pg2bq-changes-dead-letter-pull"
        );
    }
}
