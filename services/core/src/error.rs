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
}

/// Result with [`CoreError`].
pub type Result<T> = std::result::Result<T, CoreError>;
