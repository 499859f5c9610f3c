//! The error of an OIDC verification, with the HTTP status it is answered with.
//!
//! Messages name the problem (which claim, which value was expected) but never contain the
//! token itself, so they can be logged and returned to the caller as they are.

/// Why a push request's OIDC token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The request has no `Authorization` header.
    #[error("no Authorization header: the push subscription must send an OIDC token")]
    Missing,
    /// The header is not `Bearer <JWT>` or the token cannot be parsed as a JWT.
    #[error("malformed Authorization header: {0}")]
    Malformed(String),
    /// The token is a JWT but is not acceptable: wrong algorithm, unknown key, bad signature,
    /// wrong issuer, audience or email, expired, ...
    #[error("OIDC token rejected: {0}")]
    Rejected(String),
    /// Google's signing keys could not be fetched, so the token cannot be checked now; retrying
    /// later should succeed.
    #[error("Google's token signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl OidcError {
    /// The HTTP status to answer with: 401 when no usable credentials were sent, 403 when the
    /// credentials are refused, 503 when they cannot be checked now (Pub/Sub retries that).
    pub fn status(&self) -> u16 {
        match self {
            OidcError::Missing | OidcError::Malformed(_) => 401,
            OidcError::Rejected(_) => 403,
            OidcError::KeysUnavailable(_) => 503,
        }
    }

    /// A short name of the kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            OidcError::Missing => "missing",
            OidcError::Malformed(_) => "malformed",
            OidcError::Rejected(_) => "rejected",
            OidcError::KeysUnavailable(_) => "keys_unavailable",
        }
    }
}
