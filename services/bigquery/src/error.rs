//! The error type of the BigQuery client, and the one place that decides which failures are
//! transient.

use reqwest::StatusCode;

/// Errors of the BigQuery client. Each says whether retrying later should succeed
/// ([`BigQueryError::is_transient`]); callers decide what that means for them (the writer answers
/// 503 so that Pub/Sub retries, or 4xx so that it dead-letters the message).
#[derive(Debug, thiserror::Error)]
pub enum BigQueryError {
    /// BigQuery is unavailable or overloaded, or no access token could be had: retrying later
    /// should succeed.
    #[error("BigQuery unavailable: {0}")]
    Transient(String),
    /// BigQuery refused the request (not allowed, missing, a failed precondition): retrying will
    /// not help until someone fixes it.
    #[error("BigQuery refused: {0}")]
    Permanent(String),
    /// BigQuery refused an append for what it carries (invalid argument) without naming a row:
    /// some row of it holds a value BigQuery does not accept.
    #[error("BigQuery refused the rows: {0}")]
    Invalid(String),
    /// BigQuery refused a row of an append (a value its column does not accept): retrying the
    /// same rows will not help.
    #[error("cannot write: {stream}: row {index} refused: {message}")]
    RowRefused {
        /// The stream appended to.
        stream: String,
        /// The row's index among all rows of the append (requests after an accepted one may
        /// have been written: re-appending the other rows can duplicate some, which the write
        /// modes tolerate).
        index: i64,
        /// BigQuery's reason.
        message: String,
    },
    /// The client's own settings are wrong (project, endpoint, credentials).
    #[error("configuration: {0}")]
    Config(String),
}

impl BigQueryError {
    /// Whether retrying later should succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, BigQueryError::Transient(_))
    }

    /// Whether BigQuery refused the content of an append (some rows), rather than the request
    /// itself: appending the other rows alone can succeed.
    pub fn is_content_refusal(&self) -> bool {
        matches!(
            self,
            BigQueryError::Invalid(_) | BigQueryError::RowRefused { .. }
        )
    }

    /// The error of a REST answer with a failure status: 5xx and 429 are transient, every other
    /// status (400, 403, 404, ...) is permanent.
    pub fn from_http_status(status: StatusCode, text: String) -> Self {
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            BigQueryError::Transient(text)
        } else {
            BigQueryError::Permanent(text)
        }
    }

    /// The error of a failed gRPC call: invalid argument refuses the content, permission denied
    /// and failed precondition are permanent, every other code is transient. NotFound stays
    /// transient: a table's default stream can be missing for a moment after the table is
    /// created.
    #[cfg(feature = "storage-write")]
    pub fn from_grpc_code(code: tonic::Code, text: String) -> Self {
        match code {
            tonic::Code::InvalidArgument => BigQueryError::Invalid(text),
            tonic::Code::PermissionDenied | tonic::Code::FailedPrecondition => {
                BigQueryError::Permanent(text)
            }
            _ => BigQueryError::Transient(text),
        }
    }
}

/// Result with [`BigQueryError`].
pub type Result<T> = std::result::Result<T, BigQueryError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_and_throttling_are_transient_other_refusals_permanent() {
        let http = |status| BigQueryError::from_http_status(status, String::new()).is_transient();
        assert!(http(StatusCode::SERVICE_UNAVAILABLE) && http(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(http(StatusCode::TOO_MANY_REQUESTS));
        assert!(!http(StatusCode::BAD_REQUEST) && !http(StatusCode::FORBIDDEN));
        assert!(!http(StatusCode::NOT_FOUND));
        #[cfg(feature = "storage-write")]
        {
            use tonic::Code;
            let grpc = |code| BigQueryError::from_grpc_code(code, String::new()).is_transient();
            assert!(grpc(Code::Unavailable) && grpc(Code::DeadlineExceeded));
            assert!(grpc(Code::NotFound), "a new table's default stream may lag");
            assert!(!grpc(Code::InvalidArgument) && !grpc(Code::PermissionDenied));
            assert!(!grpc(Code::FailedPrecondition));
        }
    }

    #[test]
    fn messages_name_the_kind() {
        assert_eq!(
            BigQueryError::Transient("x".into()).to_string(),
            "BigQuery unavailable: x"
        );
        assert_eq!(
            BigQueryError::Permanent("x".into()).to_string(),
            "BigQuery refused: x"
        );
        let refused = BigQueryError::RowRefused {
            stream: "s".into(),
            index: 3,
            message: "bad".into(),
        };
        assert_eq!(refused.to_string(), "cannot write: s: row 3 refused: bad");
        assert!(!refused.is_transient());
    }
}
