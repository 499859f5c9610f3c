//! The error type of the writer, with the HTTP answer each kind gets.

use axum::http::StatusCode;
use pg2bq_bigquery::BigQueryError;

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
    /// A BigQuery call failed; the client's error says whether retrying later should succeed.
    #[error(transparent)]
    BigQuery(#[from] BigQueryError),
    /// The writer's own settings are wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// Reading a claim check's object failed.
    #[error("claim check: {0}")]
    Storage(#[from] pg2bq_core::cloud_storage::StorageError),
}

impl WriterError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            WriterError::BadEnvelope(_) | WriterError::BadBatch(_) => StatusCode::BAD_REQUEST,
            WriterError::Unwritable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WriterError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            WriterError::Forbidden(_) => StatusCode::FORBIDDEN,
            WriterError::AuthUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            WriterError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
            // A refusal (no permission, no bucket) is the deployment's to fix: answered like a
            // wrong setting, so that Pub/Sub keeps the message meanwhile.
            WriterError::Storage(e) if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            WriterError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            WriterError::BigQuery(e) => match e {
                BigQueryError::Transient(_) => StatusCode::SERVICE_UNAVAILABLE,
                BigQueryError::Permanent(_)
                | BigQueryError::Invalid(_)
                | BigQueryError::RowRefused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                BigQueryError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
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
            WriterError::Config(_) => "config",
            WriterError::Storage(e) if e.is_transient() => "storage_transient",
            WriterError::Storage(_) => "storage_refused",
            WriterError::BigQuery(e) => match e {
                BigQueryError::Transient(_) => "bigquery_transient",
                BigQueryError::Permanent(_) => "bigquery_permanent",
                BigQueryError::RowRefused { .. } | BigQueryError::Invalid(_) => "unwritable",
                BigQueryError::Config(_) => "config",
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigquery_errors_are_answered_by_their_kind() {
        let answer = |e: BigQueryError| {
            let e = WriterError::from(e);
            (e.status(), e.kind())
        };
        assert_eq!(
            answer(BigQueryError::Transient("x".into())),
            (StatusCode::SERVICE_UNAVAILABLE, "bigquery_transient")
        );
        assert_eq!(
            answer(BigQueryError::Permanent("x".into())),
            (StatusCode::UNPROCESSABLE_ENTITY, "bigquery_permanent")
        );
        let refused = BigQueryError::RowRefused {
            stream: "s".into(),
            index: 0,
            message: "m".into(),
        };
        assert_eq!(
            answer(refused),
            (StatusCode::UNPROCESSABLE_ENTITY, "unwritable")
        );
        assert_eq!(
            answer(BigQueryError::Config("x".into())),
            (StatusCode::INTERNAL_SERVER_ERROR, "config")
        );
    }
}
