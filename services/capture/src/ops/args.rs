//! Capture's settings: flags or environment variables.

use crate::backfill::BackfillMode;
use crate::error::{CaptureError, Result};
use crate::pipeline::batcher::BatchLimits;
use crate::sinks::claim::{ClaimSettings, MAX_THRESHOLD};
use crate::sinks::{Compression, SinkKind, SinkSettings};
use pg2bq_core::config::{MergeStrategy, PubSubArgs, SelectionArgs, SourceArgs, StreamArgs};
use pg2bq_core::protect::ProtectArgs;
use pg2bq_core::selection::TableSelection;
use std::time::Duration;

/// pg2bq capture: streams changes of a PostgreSQL database to Pub/Sub.
#[derive(Debug, clap::Parser)]
#[command(name = "capture", version)]
pub struct CaptureArgs {
    /// The source database.
    #[command(flatten)]
    pub source: SourceArgs,
    /// The stream's slot, publication and state schema.
    #[command(flatten)]
    pub stream: StreamArgs,
    /// The replicated tables.
    #[command(flatten)]
    pub tables: SelectionArgs,
    /// The Pub/Sub topic of change batches.
    #[command(flatten)]
    pub pubsub: PubSubArgs,
    /// The columns hashed or masked before they leave capture, and the key.
    #[command(flatten)]
    pub protect: ProtectArgs,
    /// How the writer mirrors tables (`PG2BQ_MERGE_STRATEGY`, the writer's setting): under
    /// `native`, which cannot remove older rows, a table copied again gets new BigQuery tables
    /// instead of a sweep of the rows deleted since the last copy.
    #[arg(long, env = "PG2BQ_MERGE_STRATEGY", value_enum, default_value_t = MergeStrategy::Auto)]
    pub merge_strategy: MergeStrategy,
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
    /// Backfill of existing rows: `all` tables of the publication (but the excluded ones) or `none`.
    #[arg(long, env = "PG2BQ_BACKFILL", value_enum, default_value_t = BackfillMode::All)]
    pub backfill: BackfillMode,
    /// Tables whose existing rows are not backfilled (patterns as for `--include`).
    #[arg(
        long,
        env = "PG2BQ_BACKFILL_EXCLUDE",
        default_value = "",
        value_delimiter = ','
    )]
    pub backfill_exclude: Vec<String>,
    /// Ranges copied at once, each over its own connection.
    #[arg(long, env = "PG2BQ_BACKFILL_CONCURRENCY", default_value_t = 2)]
    pub backfill_concurrency: usize,
    /// Blocks (8 KiB pages) per backfill range.
    #[arg(long, env = "PG2BQ_BACKFILL_RANGE_BLOCKS", default_value_t = 4096)]
    pub backfill_range_blocks: i64,
    /// Where batches go: `pubsub`, or `null` (benchmarks and diagnostics only: batches are
    /// encoded and acknowledged without being sent, so their changes are lost).
    #[arg(long, env = "PG2BQ_PUBLISHER", value_enum, default_value_t = SinkKind::Pubsub)]
    pub publisher: SinkKind,
    /// Compression of message bodies: `none` or `gzip`.
    #[arg(long, env = "PG2BQ_COMPRESSION", value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// Cloud Storage bucket of claim checks: a batch too big for a Pub/Sub message is written
    /// there and the message carries its name. Without one, such a batch stops capture.
    #[arg(long, env = "PG2BQ_CLAIM_BUCKET")]
    pub claim_bucket: Option<String>,
    /// Message bodies larger than this many bytes travel by claim check (at most 9500000).
    #[arg(long, env = "PG2BQ_CLAIM_THRESHOLD_BYTES", default_value_t = crate::sinks::claim::DEFAULT_THRESHOLD)]
    pub claim_threshold_bytes: usize,
    /// `host:port` of the Cloud Storage emulator, when running locally.
    #[arg(long, env = "STORAGE_EMULATOR_HOST")]
    pub storage_emulator_host: Option<String>,
    /// Seconds between heartbeats (logical decoding messages that let the slot advance while the
    /// replicated tables are idle); 0 disables them.
    #[arg(long, env = "PG2BQ_HEARTBEAT_SECS", default_value_t = 10)]
    pub heartbeat_secs: u64,
    /// Seconds between checks that the publication lists exactly the selected tables.
    #[arg(long, env = "PG2BQ_PUBLICATION_REFRESH_SECS", default_value_t = 30)]
    pub publication_refresh_secs: u64,
    /// Longest wait between reconnection attempts after the source or Pub/Sub failed, in seconds.
    #[arg(long, env = "PG2BQ_RECONNECT_MAX_SECS", default_value_t = 30)]
    pub reconnect_max_secs: u64,
    /// Seconds between structured metric log lines (0: none).
    #[arg(long, env = "PG2BQ_METRICS_LOG_SECS", default_value_t = 60)]
    pub metrics_log_secs: u64,
    /// Port of the `/healthz` and `/metrics` endpoint (0: none).
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

    /// Where batches go, from the settings.
    pub fn sink(&self) -> SinkSettings {
        SinkSettings {
            kind: self.publisher,
            topic: self.pubsub.topic_path(),
            emulator_host: self.pubsub.emulator_host().map(str::to_owned),
            retry_for: Duration::from_secs(self.publish_retry_secs),
            compression: self.compression,
            claims: ClaimSettings {
                bucket: self
                    .claim_bucket
                    .as_deref()
                    .map(str::trim)
                    .filter(|b| !b.is_empty())
                    .map(str::to_owned),
                threshold: self.claim_threshold_bytes,
                emulator_host: self.storage_emulator_host.clone(),
            },
        }
    }

    /// The tables excluded from backfill, if any.
    pub fn backfill_exclusions(&self) -> Result<Option<TableSelection>> {
        if self.backfill_exclude.iter().all(|p| p.trim().is_empty()) {
            return Ok(None);
        }
        TableSelection::new(&self.backfill_exclude, Vec::<String>::new())
            .map(Some)
            .map_err(|e| CaptureError::Config(e.to_string()))
    }

    /// Refuses settings capture cannot run with.
    pub fn check(&self) -> Result<()> {
        if self.pubsub.project.trim().is_empty() && self.publisher == SinkKind::Pubsub {
            return Err(CaptureError::Config(
                "no Google Cloud project for the Pub/Sub topic: set PG2BQ_PROJECT (or `project` \
                 in the [target] section of the configuration file)"
                    .into(),
            ));
        }
        if self.claim_threshold_bytes == 0 || self.claim_threshold_bytes > MAX_THRESHOLD {
            return Err(CaptureError::Config(format!(
                "PG2BQ_CLAIM_THRESHOLD_BYTES = {} must be between 1 and {MAX_THRESHOLD} (Pub/Sub \
                 takes messages of at most 10 MB)",
                self.claim_threshold_bytes
            )));
        }
        Ok(())
    }

    /// The table selection from the include and exclude patterns.
    pub fn selection(&self) -> Result<TableSelection> {
        self.tables
            .selection()
            .map_err(|e| CaptureError::Config(e.to_string()))
    }
}
