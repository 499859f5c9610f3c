//! The writer's settings: flags or environment variables.

use pg2bq_core::config::TargetArgs;

/// How push requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PushAuth {
    /// Verify the Google-signed OIDC token of each push request.
    Oidc,
    /// Accept every request (the local emulator sends no token).
    None,
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
    /// Run the staged MERGE of written tables every this many milliseconds (0: only on `/merge`).
    #[arg(long, env = "PG2BQ_MERGE_INTERVAL_MS", default_value_t = 0)]
    pub merge_interval_ms: u64,
}
