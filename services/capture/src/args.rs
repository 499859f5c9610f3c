//! Capture's settings: flags or environment variables.

use crate::batcher::BatchLimits;
use crate::publisher::PublisherSettings;
use pg2bq_core::config::SourceArgs;
use std::time::Duration;

/// pg2bq capture: streams changes of a PostgreSQL database to Pub/Sub.
#[derive(Debug, clap::Parser)]
#[command(name = "capture", version)]
pub struct CaptureArgs {
    /// The source database.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Logical replication slot (created when absent).
    #[arg(long, env = "PG2BQ_SLOT", default_value = "pg2bq")]
    pub slot: String,
    /// Publication (created when absent, for the schemas below).
    #[arg(long, env = "PG2BQ_PUBLICATION", default_value = "pg2bq")]
    pub publication: String,
    /// Schemas whose tables the publication covers, comma-separated.
    #[arg(
        long,
        env = "PG2BQ_SCHEMAS",
        default_value = "public",
        value_delimiter = ','
    )]
    pub schemas: Vec<String>,
    /// Google Cloud project of the Pub/Sub topic.
    #[arg(long, env = "PG2BQ_PROJECT")]
    pub project: String,
    /// Pub/Sub topic for change batches.
    #[arg(long, env = "PG2BQ_TOPIC", default_value = "pg2bq-changes")]
    pub topic: String,
    /// `host:port` of the Pub/Sub emulator; unset in GCP.
    #[arg(long, env = "PUBSUB_EMULATOR_HOST")]
    pub pubsub_emulator_host: Option<String>,
    /// Most changes in one message.
    #[arg(long, env = "PG2BQ_BATCH_MAX_ROWS", default_value_t = 1000)]
    pub batch_max_rows: usize,
    /// Most bytes in one message (Pub/Sub's limit is 10 MB).
    #[arg(long, env = "PG2BQ_BATCH_MAX_BYTES", default_value_t = 4_000_000)]
    pub batch_max_bytes: usize,
    /// Longest wait of a change before its batch is published, in milliseconds.
    #[arg(long, env = "PG2BQ_BATCH_MAX_DELAY_MS", default_value_t = 100)]
    pub batch_max_delay_ms: u64,
    /// Most bytes published and not yet acknowledged before reading pauses.
    #[arg(long, env = "PG2BQ_MAX_UNACKED_BYTES", default_value_t = 64 << 20)]
    pub max_unacked_bytes: usize,
    /// How long a message is retried before capture stops (and restarts from the slot).
    #[arg(long, env = "PG2BQ_PUBLISH_RETRY_SECS", default_value_t = 120)]
    pub publish_retry_secs: u64,
    /// Port of the `/healthz` endpoint (0: none).
    #[arg(long, env = "PG2BQ_HEALTH_PORT", default_value_t = 0)]
    pub health_port: u16,
    /// Serve `/healthz` on all interfaces instead of loopback.
    #[arg(long, env = "PG2BQ_HEALTH_PUBLIC", default_value_t = false)]
    pub health_public: bool,
}

impl CaptureArgs {
    /// Batch limits from the settings.
    pub fn batch_limits(&self) -> BatchLimits {
        BatchLimits {
            max_rows: self.batch_max_rows.max(1),
            max_bytes: self.batch_max_bytes.clamp(1024, 9_000_000),
            max_delay: Duration::from_millis(self.batch_max_delay_ms),
        }
    }

    /// Publisher settings from the settings.
    pub fn publisher(&self) -> PublisherSettings {
        PublisherSettings {
            topic: format!("projects/{}/topics/{}", self.project, self.topic),
            emulator_host: self.pubsub_emulator_host.clone().filter(|h| !h.is_empty()),
            retry_for: Duration::from_secs(self.publish_retry_secs),
        }
    }
}
