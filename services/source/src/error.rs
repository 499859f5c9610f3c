//! The error type of the source crate: every error says whether retrying can cure it.

/// An error reading or writing the source database.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A statement failed.
    #[error("{context}: {}", pg2bq_core::connect_error::with_causes(.source))]
    Postgres {
        /// What was being done.
        context: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The catalogue holds something pg2bq cannot use; the message says what and the fix.
    #[error("{0}")]
    Catalog(String),
    /// The stream's settings contradict what the source holds, and no retry can mend that;
    /// the message says what and the fix.
    #[error("{0}")]
    Setting(String),
    /// The state schema is newer than this build understands.
    #[error("{0}")]
    StateVersion(String),
}

impl SourceError {
    /// Wraps a driver error with what was being done.
    pub fn postgres(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |source| SourceError::Postgres { context, source }
    }

    /// Whether retrying later may succeed: a lost connection, a server shutting down, a
    /// serialisation failure or deadlock, too few resources. Privilege, syntax and catalogue
    /// errors are permanent until someone fixes them.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Postgres { source, .. } => {
                if source.is_closed() {
                    return true;
                }
                match source.code() {
                    // No server error: an I/O failure on the connection.
                    None => true,
                    Some(code) => {
                        let code = code.code();
                        ["08", "40", "53", "57", "58"]
                            .iter()
                            .any(|class| code.starts_with(class))
                    }
                }
            }
            SourceError::Catalog(_) | SourceError::Setting(_) | SourceError::StateVersion(_) => {
                false
            }
        }
    }
}

/// Result with [`SourceError`].
pub type Result<T> = std::result::Result<T, SourceError>;
