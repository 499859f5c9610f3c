//! Verification of the OIDC token Pub/Sub push sends as `Authorization: Bearer <JWT>` when the
//! subscription has `push_config.oidc_token`.
//!
//! The token must be an RS256 JWT signed by one of Google's published keys (selected by its
//! `kid`), issued by `accounts.google.com` for the configured audience, not expired, and carry
//! the verified email of the push service account.
//!
//! Google's keys are shared by all requests: fetched on first use, refreshed once older than
//! their response's `Cache-Control: max-age` (1 h without one), refetched at most once per 30 s
//! when a token names an unknown `kid` (key rotation), and kept in use while a refresh fails.
//!
//! ```no_run
//! # async fn handle(authorization: Option<&str>) {
//! use pg2bq_writer::oidc::{OidcSettings, OidcVerifier};
//!
//! let verifier = OidcVerifier::new(OidcSettings::google(
//!     "https://writer.example.com/push",
//!     "push@my-project.iam.gserviceaccount.com",
//! ));
//! match verifier.verify(authorization).await {
//!     Ok(push) => println!("push from {}", push.email),
//!     Err(e) => println!("answer {}: {e}", e.status()),
//! }
//! # }
//! ```

mod bearer;
mod claims;
mod error;
mod keys;
mod verifier;

#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_keys;

pub use error::OidcError;
pub use verifier::OidcVerifier;

/// Where Google publishes the JSON Web Key Set its ID tokens are signed with.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// What a push request's token must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// The expected `aud` claim: the subscription's `push_config.oidc_token.audience`, or the
    /// push endpoint URL when the subscription sets none.
    pub audience: String,
    /// The expected `email` claim: the subscription's
    /// `push_config.oidc_token.service_account_email`.
    pub service_account_email: String,
    /// The URL of the JSON Web Key Set to verify signatures with, normally [`GOOGLE_JWKS_URL`].
    pub jwks_url: String,
}

impl OidcSettings {
    /// Settings that verify against Google's published keys.
    pub fn google(audience: impl Into<String>, service_account_email: impl Into<String>) -> Self {
        OidcSettings {
            audience: audience.into(),
            service_account_email: service_account_email.into(),
            jwks_url: GOOGLE_JWKS_URL.to_owned(),
        }
    }
}

/// The identity of a push request whose token verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPush {
    /// The `email` claim: the push service account.
    pub email: String,
    /// The `sub` claim: the service account's unique id.
    pub subject: String,
}
