//! The error type of the writer, with the HTTP answer each kind gets.

use axum::http::StatusCode;

/// Errors of the writer. Permanent ones are answered with a 4xx so that Pub/Sub dead-letters the
/// message after its attempts; transient ones with a 5xx so that Pub/Sub retries with backoff.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The push request is not a valid Pub/Sub push envelope.
    #[error("malformed push request: {0}")]
    BadEnvelope(String),
    /// The message is not a valid change batch (not JSON, bad base64, unknown version, ...).
    #[error("malformed change batch: {0}")]
    BadBatch(String),
    /// A value or a schema change cannot be written correctly.
    #[error("cannot write: {0}")]
    Unwritable(String),
    /// The request carries no valid credentials.
    #[error("unauthenticated request: {0}")]
    Unauthenticated(String),
    /// The request's credentials are valid but not accepted here.
    #[error("forbidden request: {0}")]
    Forbidden(String),
    /// The keys to verify credentials with cannot be had right now.
    #[error("cannot verify the request now: {0}")]
    AuthUnavailable(String),
    /// BigQuery refused the request permanently.
    #[error("BigQuery refused: {0}")]
    BigQueryPermanent(String),
    /// BigQuery is unavailable or overloaded; retrying later should succeed.
    #[error("BigQuery unavailable: {0}")]
    BigQueryTransient(String),
    /// The writer's own settings are wrong.
    #[error("configuration: {0}")]
    Config(String),
}

impl WriterError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            WriterError::BadEnvelope(_) | WriterError::BadBatch(_) => StatusCode::BAD_REQUEST,
            WriterError::Unwritable(_) | WriterError::BigQueryPermanent(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            WriterError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            WriterError::Forbidden(_) => StatusCode::FORBIDDEN,
            WriterError::BigQueryTransient(_) | WriterError::AuthUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            WriterError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short name of the kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            WriterError::BadEnvelope(_) => "bad_envelope",
            WriterError::BadBatch(_) => "bad_batch",
            WriterError::Unwritable(_) => "unwritable",
            WriterError::Unauthenticated(_) => "unauthenticated",
            WriterError::Forbidden(_) => "forbidden",
            WriterError::AuthUnavailable(_) => "auth_unavailable",
            WriterError::BigQueryPermanent(_) => "bigquery_permanent",
            WriterError::BigQueryTransient(_) => "bigquery_transient",
            WriterError::Config(_) => "config",
        }
    }
}

/// Result with [`WriterError`].
pub type Result<T> = std::result::Result<T, WriterError>;

impl From<crate::oidc::OidcError> for WriterError {
    fn from(error: crate::oidc::OidcError) -> Self {
        match error {
            crate::oidc::OidcError::Rejected(_) => WriterError::Forbidden(error.to_string()),
            crate::oidc::OidcError::KeysUnavailable(_) => {
                WriterError::AuthUnavailable(error.to_string())
            }
            _ => WriterError::Unauthenticated(error.to_string()),
        }
    }
}
