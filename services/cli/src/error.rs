//! The error type of the CLI.

use pg2bq_bigquery::BigQueryError;
use pg2bq_core::CoreError;

/// Errors of the CLI, each naming what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Connecting to the source failed, or its settings are wrong; the message names the fix.
    #[error(transparent)]
    Source(#[from] CoreError),
    /// Reading the catalogue or pg2bq's state schema failed.
    #[error(transparent)]
    State(#[from] pg2bq_source::SourceError),
    /// A SQL statement on the source failed.
    #[error("{context}: {}", pg2bq_core::connect_error::with_causes(.source))]
    Postgres {
        /// What the CLI was doing.
        context: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A BigQuery call failed.
    #[error("{context}: {source}")]
    BigQuery {
        /// What the CLI was doing.
        context: String,
        /// The client's error.
        #[source]
        source: BigQueryError,
    },
    /// A setting is missing or wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// Something awaited did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl CliError {
    /// Wraps a driver error with context.
    pub fn postgres(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |source| CliError::Postgres { context, source }
    }

    /// Wraps a BigQuery error with context.
    pub fn bigquery(context: impl Into<String>) -> impl FnOnce(BigQueryError) -> Self {
        let context = context.into();
        move |source| CliError::BigQuery { context, source }
    }
}

/// Result with [`CliError`].
pub type Result<T> = std::result::Result<T, CliError>;
