//! The error type of the shared model.

/// Errors of the shared model: configuration, wire format and value parsing.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A configuration value is missing or wrong; the message names the setting and the fix.
    #[error("configuration: {0}")]
    Config(String),
    /// A change batch could not be read: not JSON, wrong shape or unknown version.
    #[error("change batch: {0}")]
    Wire(String),
    /// A log sequence number or change sequence number has the wrong form.
    #[error("position: {0}")]
    Position(String),
    /// A connection to the source failed: which one, the driver's message and, when the cause
    /// is recognised, the fix.
    #[error("connecting to {target}: {problem}{}", fix.as_deref().map(|f| format!("; {f}")).unwrap_or_default())]
    Connect {
        /// `user@host:port/database (kind, sslmode=...)`.
        target: String,
        /// What the driver reported.
        problem: String,
        /// What to change, if known.
        fix: Option<String>,
    },
}

impl CoreError {
    /// Whether the error comes from the settings (retrying cannot help).
    pub fn is_config(&self) -> bool {
        matches!(self, CoreError::Config(_))
    }
}

/// Result with [`CoreError`].
pub type Result<T> = std::result::Result<T, CoreError>;
