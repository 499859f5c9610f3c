//! The writer's settings: flags or environment variables.

use pg2bq_core::config::TargetArgs;
pub use pg2bq_core::config::{MergeStrategy, WriteModeSetting};

/// How push requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PushAuth {
    /// Verify the Google-signed OIDC token of each push request.
    Oidc,
    /// Accept every request (the local emulator sends no token).
    None,
}

/// Where encoded rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AppendSink {
    /// The Storage Write API.
    Bigquery,
    /// Nowhere: rows are converted and encoded, and the append is skipped (tables are still
    /// created). A benchmark and diagnostic switch: the rows are lost.
    Null,
}

/// pg2bq writer: receives change batches from a Pub/Sub push subscription and writes them to BigQuery.
#[derive(Debug, clap::Parser)]
#[command(name = "writer", version)]
pub struct WriterArgs {
    /// The BigQuery target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Port to listen on (Cloud Run sets PORT).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, env = "PG2BQ_LISTEN_ADDRESS", default_value = "0.0.0.0")]
    pub listen_address: String,
    /// Authentication of push requests.
    #[arg(long, env = "PG2BQ_PUSH_AUTH", value_enum, default_value_t = PushAuth::Oidc)]
    pub push_auth: PushAuth,
    /// Audience of push tokens: the subscription's `oidc_token.audience` (by default the push
    /// endpoint URL). Required with `--push-auth oidc`.
    #[arg(long, env = "PG2BQ_PUSH_AUDIENCE")]
    pub push_audience: Option<String>,
    /// Email of the service account the push subscription signs tokens as. Required with
    /// `--push-auth oidc`.
    #[arg(long, env = "PG2BQ_PUSH_SERVICE_ACCOUNT")]
    pub push_service_account: Option<String>,
    /// Audience of the scheduler's tokens for `/merge` (default: the push audience).
    #[arg(long, env = "PG2BQ_MERGE_AUDIENCE")]
    pub merge_audience: Option<String>,
    /// Email of the service account the scheduler calls `/merge` as (default: the push one).
    #[arg(long, env = "PG2BQ_MERGE_SERVICE_ACCOUNT")]
    pub merge_service_account: Option<String>,
    /// Where the keys that sign the tokens are published.
    #[arg(long, env = "PG2BQ_OIDC_JWKS_URL", default_value = crate::oidc::GOOGLE_JWKS_URL)]
    pub oidc_jwks_url: String,
    /// `merge` (tables mirror the source) or `append-only` (every change is a row).
    #[arg(long, env = "PG2BQ_WRITE_MODE", value_enum, default_value_t = WriteModeSetting::Merge)]
    pub write_mode: WriteModeSetting,
    /// How `merge` mode updates mirror tables.
    #[arg(long, env = "PG2BQ_MERGE_STRATEGY", value_enum, default_value_t = MergeStrategy::Auto)]
    pub merge_strategy: MergeStrategy,
    /// `max_staleness` of native CDC tables, in seconds: how stale a query may read the table.
    #[arg(long, env = "PG2BQ_MAX_STALENESS_SECS", default_value_t = 900)]
    pub max_staleness_secs: u64,
    /// Where rows go: `bigquery`, or `null` (benchmarks and diagnostics only: rows are encoded
    /// and dropped, so the pipeline can be measured without BigQuery's append time).
    #[arg(long, env = "PG2BQ_APPEND_SINK", value_enum, default_value_t = AppendSink::Bigquery)]
    pub append_sink: AppendSink,
    /// Run the staged MERGE of written tables every this many milliseconds (0: only on `/merge`).
    #[arg(long, env = "PG2BQ_MERGE_INTERVAL_MS", default_value_t = 0)]
    pub merge_interval_ms: u64,
    /// Keep merged rows of staging tables this many seconds, then delete them (0: keep every
    /// row): as long as a late delivery can still arrive, i.e. the subscription's message
    /// retention (plus the dead-letter topic's, if batches are replayed from it). A late
    /// delivery older than this could bring back a deleted row.
    #[arg(long, env = "PG2BQ_CHANGE_RETENTION_SECS", default_value_t = 86_400)]
    pub change_retention_secs: u64,
    /// Partitioning of the mirror tables the writer makes, per source table or by default:
    /// `schema.table=day(col); *=ingestion(day)` (see the README's settings).
    #[arg(long, env = "PG2BQ_BQ_PARTITIONING")]
    pub bq_partitioning: Option<String>,
    /// Clustering of the mirror tables the writer makes: `schema.table=a,b; *=key` (the key by
    /// default).
    #[arg(long, env = "PG2BQ_BQ_CLUSTERING")]
    pub bq_clustering: Option<String>,
    /// Mirror tables made from now on keep deleted rows, with `_pg2bq_is_deleted` TRUE and the
    /// deletion's commit time in `_pg2bq_deleted_at`, instead of removing them (staged strategy;
    /// a table keeps the choice it was made with).
    #[arg(long, env = "PG2BQ_SOFT_DELETES", default_value_t = false)]
    pub soft_deletes: bool,
    /// How far before the previous MERGE each MERGE reads staged rows, in seconds: more than an
    /// append may take (PG2BQ_BQ_TIMEOUT_SECS) plus the clock difference between writer
    /// instances, and between them and PostgreSQL.
    #[arg(long, env = "PG2BQ_MERGE_OVERLAP_SECS", default_value_t = 300)]
    pub merge_overlap_secs: u64,
    /// How many tables a MERGE round merges at once.
    #[arg(
        long,
        env = "PG2BQ_MERGE_PARALLELISM",
        default_value_t = 4,
        value_parser = clap::value_parser!(u64).range(1..=64)
    )]
    pub merge_parallelism: u64,
    /// How long a MERGE round starts and waits for MERGEs, in seconds; what is left continues in
    /// the next round. Less than the request timeout of `/merge` (Cloud Scheduler's deadline).
    #[arg(long, env = "PG2BQ_MERGE_ROUND_SECS", default_value_t = 50)]
    pub merge_round_secs: u64,
    /// Deadline of every BigQuery call, in seconds: each REST request, and each wait of an
    /// append (its start, each answer). A call that passes it fails as transient, so the push
    /// is answered 503 and Pub/Sub retries it; a query is waited for at most ten times this.
    #[arg(
        long,
        env = "PG2BQ_BQ_TIMEOUT_SECS",
        default_value_t = 120,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub bq_timeout_secs: u64,
    /// Topic that receives the messages the writer can never write (unreadable batches), with
    /// the reason: a name in PG2BQ_PROJECT or `projects/P/topics/T`. The push subscription then
    /// needs no dead-letter policy, so that an outage of any length is retried. Without it such
    /// a message is answered 4xx and retried until the subscription's retention passes.
    #[arg(long, env = "PG2BQ_DEAD_LETTER_TOPIC")]
    pub dead_letter_topic: Option<String>,
    /// `host:port` of the Pub/Sub emulator (the dead-letter topic's), when running locally.
    #[arg(long, env = "PUBSUB_EMULATOR_HOST")]
    pub pubsub_emulator_host: Option<String>,
    /// Cloud Storage bucket of claim checks (batches too big for a message): when set, claim
    /// checks naming another bucket are refused.
    #[arg(long, env = "PG2BQ_CLAIM_BUCKET")]
    pub claim_bucket: Option<String>,
    /// `host:port` of the Cloud Storage emulator, when running locally.
    #[arg(long, env = "STORAGE_EMULATOR_HOST")]
    pub storage_emulator_host: Option<String>,
    /// For tests only (fault injection; never set in a deployment): answer 400 to every push of
    /// these source tables (comma-separated `schema.table`, read from the message's `table`
    /// attribute), as to a batch the writer cannot read, so that Pub/Sub dead-letters them after
    /// their delivery attempts. Off (empty) by default. The end-to-end test of `pg2bq
    /// deadletter` uses it.
    #[arg(
        long,
        env = "PG2BQ_TEST_REFUSE_TABLES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub test_refuse_tables: Vec<String>,
}
