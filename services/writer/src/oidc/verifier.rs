//! [`OidcVerifier`]: the whole check of one push request's `Authorization` header.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::bearer::{bearer_token, jwt_header, printable};
use super::claims::{GoogleClaims, check};
use super::keys::{KeyCache, Timing};
use super::{OidcError, OidcSettings, VerifiedPush};

/// Verifies the OIDC tokens Pub/Sub push sends. Cheap to clone: clones share one key cache.
///
/// Construction does no network; Google's keys are fetched on the first verification.
#[derive(Clone)]
pub struct OidcVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    settings: OidcSettings,
    keys: KeyCache,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl OidcVerifier {
    /// A verifier of tokens for `settings`.
    pub fn new(settings: OidcSettings) -> Self {
        Self::with_timing(settings, Timing::default())
    }

    /// A verifier with its key cache's timing set (tests shorten it).
    pub(crate) fn with_timing(settings: OidcSettings, timing: Timing) -> Self {
        // jsonwebtoken picks its crypto backend from its crate features; should another crate
        // of the build enable a second backend, this keeps aws-lc-rs instead of a panic. It
        // fails harmlessly when a backend was already installed.
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        );
        let keys = KeyCache::new(settings.jwks_url.clone(), timing);
        OidcVerifier {
            inner: Arc::new(Inner { settings, keys }),
        }
    }

    /// The settings tokens are checked against.
    pub fn settings(&self) -> &OidcSettings {
        &self.inner.settings
    }

    /// Verifies `authorization_header` (the value of the request's `Authorization` header, if
    /// any): a Google-signed RS256 JWT for the configured audience and push service account.
    pub async fn verify(
        &self,
        authorization_header: Option<&str>,
    ) -> Result<VerifiedPush, OidcError> {
        let token = bearer_token(authorization_header)?;
        let header = jwt_header(token)?;
        let key = self.inner.keys.key(&header.kid).await?;
        let claims = verify_signature(token, &key, &header.kid)?;
        check(&claims, &self.inner.settings, unix_now())
    }
}

/// The claims of `token` once its RS256 signature verifies with `key`. Claims are checked by
/// [`check`], which gives clearer messages than jsonwebtoken's own validation.
fn verify_signature(token: &str, key: &DecodingKey, kid: &str) -> Result<GoogleClaims, OidcError> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    match jsonwebtoken::decode::<GoogleClaims>(token, key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.kind() {
            ErrorKind::InvalidSignature => OidcError::Rejected(format!(
                "the signature does not verify with Google's key '{}'",
                printable(kid)
            )),
            ErrorKind::InvalidAlgorithm => {
                OidcError::Rejected("the token's algorithm does not match its key".into())
            }
            ErrorKind::Json(e) => {
                OidcError::Malformed(format!("the JWT claims are not of the expected shape: {e}"))
            }
            ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
                OidcError::Malformed(format!("the JWT cannot be decoded: {e}"))
            }
            _ => OidcError::Rejected(format!("the token does not verify: {e}")),
        }),
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
