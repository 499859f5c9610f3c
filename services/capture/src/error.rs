//! The error type of the capture service.

use pg2bq_core::CoreError;
use pgwire_replication::PgWireError;

/// Errors of capture, each with the context needed to act on it.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A setting is missing or wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// Connecting to the source failed, or its settings are wrong; the message names the fix.
    #[error(transparent)]
    Source(#[from] CoreError),
    /// Reading the catalogue or pg2bq's state schema failed.
    #[error(transparent)]
    State(#[from] pg2bq_source::SourceError),
    /// A SQL statement on the source failed.
    #[error("{context}: {}", pg2bq_core::connect_error::with_causes(.source))]
    Postgres {
        /// What capture was doing.
        context: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The replication connection failed.
    #[error("replication stream: {context}: {source}")]
    Replication {
        /// What capture was doing.
        context: String,
        /// The replication client's error.
        #[source]
        source: PgWireError,
    },
    /// The replication slot cannot be used; the message says how to recover.
    #[error("replication slot: {0}")]
    Slot(String),
    /// A pgoutput message could not be decoded.
    #[error("decoding: {0}")]
    Decode(String),
    /// Publishing to Pub/Sub failed after retries.
    #[error("publishing to Pub/Sub: {0}")]
    Publish(String),
    /// The health endpoint could not be served.
    #[error("health endpoint: {0}")]
    Health(String),
}

impl CaptureError {
    /// Wraps a driver error with what capture was doing.
    pub fn postgres(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |source| CaptureError::Postgres { context, source }
    }

    /// Wraps a replication client error with what capture was doing.
    pub fn replication(context: impl Into<String>) -> impl FnOnce(PgWireError) -> Self {
        let context = context.into();
        move |source| CaptureError::Replication { context, source }
    }
}

/// Result with [`CaptureError`].
pub type Result<T> = std::result::Result<T, CaptureError>;
