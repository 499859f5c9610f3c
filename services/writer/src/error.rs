//! The error type of the writer, with the HTTP answer each kind gets.

use axum::http::StatusCode;
use pg2bq_bigquery::BigQueryError;

/// Errors of the writer. Only a problem of the message itself is permanent
/// ([`WriterError::is_permanent`]): it is answered with a 4xx, or forwarded to the dead-letter
/// topic when the writer has one. Every other error (BigQuery, Cloud Storage, permissions,
/// settings, authentication) is the deployment's or the moment's, answered with a status Pub/Sub
/// retries with backoff until the message's retention passes.
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
    /// A message that can never be written could not be forwarded to the dead-letter topic: it
    /// stays in the subscription and is retried.
    #[error("cannot forward to the dead-letter topic: {0}")]
    DeadLetter(String),
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
            WriterError::DeadLetter(_) => StatusCode::SERVICE_UNAVAILABLE,
            // A refusal (no permission, no bucket) is the deployment's to fix: answered like a
            // wrong setting, so that Pub/Sub keeps the message meanwhile.
            WriterError::Storage(e) if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            WriterError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            WriterError::BigQuery(e) => match e {
                BigQueryError::Transient(_) => StatusCode::SERVICE_UNAVAILABLE,
                // Not allowed, missing, a failed precondition: the deployment's to fix (an
                // expired permission, a deleted dataset), so the message waits meanwhile.
                BigQueryError::Permanent(_) | BigQueryError::Config(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                BigQueryError::Invalid(_) | BigQueryError::RowRefused { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
            },
        }
    }

    /// Whether the message itself can never be written, whatever is fixed around it: it cannot
    /// be read, or BigQuery refuses what it holds where the quarantine cannot take it. Only these
    /// get a 4xx or reach the dead-letter topic; everything else is retried.
    pub fn is_permanent(&self) -> bool {
        match self {
            WriterError::BadEnvelope(_) | WriterError::BadBatch(_) | WriterError::Unwritable(_) => {
                true
            }
            WriterError::BigQuery(e) => e.is_content_refusal(),
            _ => false,
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
            WriterError::DeadLetter(_) => "dead_letter_unavailable",
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
            (StatusCode::INTERNAL_SERVER_ERROR, "bigquery_permanent")
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

    #[test]
    fn only_problems_of_the_message_are_permanent() {
        let permanent = |e: WriterError| (e.is_permanent(), e.status().is_client_error());
        assert_eq!(permanent(WriterError::BadBatch("x".into())), (true, true));
        assert_eq!(permanent(WriterError::Unwritable("x".into())), (true, true));
        assert_eq!(
            permanent(BigQueryError::Invalid("x".into()).into()),
            (true, true)
        );
        // An outage, an expired permission, a wrong setting, an unverifiable token: retried.
        for e in [
            WriterError::from(BigQueryError::Transient("x".into())),
            BigQueryError::Permanent("403 access denied".into()).into(),
            WriterError::Config("x".into()),
            WriterError::AuthUnavailable("x".into()),
            WriterError::DeadLetter("x".into()),
            pg2bq_core::cloud_storage::StorageError::Permanent("x".into()).into(),
        ] {
            assert!(!e.is_permanent(), "{e}");
            assert!(e.status().is_server_error(), "{e}");
        }
        // A caller without valid credentials is refused, and not permanent: Pub/Sub retries a
        // push refused for a token the deployment got wrong.
        let refused = WriterError::Forbidden("x".into());
        assert!(!refused.is_permanent() && refused.status().is_client_error());
    }
}
