//! Logging set-up shared by every binary: Cloud Logging JSON in GCP, readable text locally.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::prelude::*;

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (local runs).
    Text,
    /// Cloud Logging structured JSON on stdout (tracing-stackdriver).
    Json,
}

impl LogFormat {
    /// `PG2BQ_LOG_FORMAT=json|text` decides; otherwise JSON when running on Cloud Run
    /// (`K_SERVICE` or `CLOUD_RUN_WORKER_POOL` is set), text elsewhere.
    pub fn from_env() -> Self {
        match std::env::var("PG2BQ_LOG_FORMAT").ok().as_deref() {
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            _ if std::env::var_os("K_SERVICE").is_some()
                || std::env::var_os("CLOUD_RUN_WORKER_POOL").is_some() =>
            {
                LogFormat::Json
            }
            _ => LogFormat::Text,
        }
    }
}

/// Installs the global subscriber of a service. The level filter comes from `RUST_LOG`
/// (default `info`).
pub fn init() {
    install("info", BoxMakeWriter::new(std::io::stdout));
}

/// Installs the global subscriber of the CLI: warnings and errors only unless `RUST_LOG` says
/// otherwise, on stderr, so that stdout holds only the command's output (`--json` included).
pub fn init_cli() {
    install("warn", BoxMakeWriter::new(std::io::stderr));
}

fn install(default_level: &str, writer: BoxMakeWriter) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match LogFormat::from_env() {
        LogFormat::Json => registry
            .with(tracing_stackdriver::layer().with_writer(writer))
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_writer(writer),
            )
            .try_init(),
    };
    // A second call (tests) keeps the first subscriber.
    let _ = installed;
}
