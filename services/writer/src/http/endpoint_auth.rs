//! Who may call the writer: Pub/Sub push (on `/push`) and the scheduler (on `/merge`), each
//! identified by the OIDC token of its service account; or anybody, for a local emulator.

use crate::args::{PushAuth, WriterArgs};
use crate::error::{Result, WriterError};
use crate::oidc::{OidcSettings, OidcVerifier};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// The authentication of the writer's endpoints.
pub enum EndpointAuth {
    /// Every request is accepted (the Pub/Sub emulator sends no token).
    Open,
    /// Requests must carry a valid OIDC token of the configured service accounts.
    Oidc {
        /// Verifier of push requests.
        push: OidcVerifier,
        /// Verifier of scheduler calls to `/merge`.
        merge: OidcVerifier,
    },
}

impl EndpointAuth {
    /// The authentication the settings ask for; OIDC needs an audience and a service account.
    pub fn from_args(args: &WriterArgs) -> Result<Self> {
        if args.push_auth == PushAuth::None {
            return Ok(EndpointAuth::Open);
        }
        let missing = |what: &str, variable: &str| {
            WriterError::Config(format!(
                "{what} is required to verify push requests: set {variable} \
                 (or PG2BQ_PUSH_AUTH=none for a local emulator)"
            ))
        };
        let audience = args.push_audience.clone().ok_or_else(|| {
            missing(
                "the push audience (the push endpoint URL)",
                "PG2BQ_PUSH_AUDIENCE",
            )
        })?;
        let account = args.push_service_account.clone().ok_or_else(|| {
            missing(
                "the push service account email",
                "PG2BQ_PUSH_SERVICE_ACCOUNT",
            )
        })?;
        let verifier = |audience: String, account: String| {
            OidcVerifier::new(OidcSettings {
                audience,
                service_account_email: account,
                jwks_url: args.oidc_jwks_url.clone(),
            })
        };
        let merge = verifier(
            args.merge_audience
                .clone()
                .unwrap_or_else(|| audience.clone()),
            args.merge_service_account
                .clone()
                .unwrap_or_else(|| account.clone()),
        );
        Ok(EndpointAuth::Oidc {
            push: verifier(audience, account),
            merge,
        })
    }

    /// Checks a push request.
    pub async fn check_push(&self, headers: &HeaderMap) -> Result<()> {
        match self {
            EndpointAuth::Open => Ok(()),
            EndpointAuth::Oidc { push, .. } => verify(push, headers).await,
        }
    }

    /// Checks a call of `/merge`.
    pub async fn check_merge(&self, headers: &HeaderMap) -> Result<()> {
        match self {
            EndpointAuth::Open => Ok(()),
            EndpointAuth::Oidc { merge, .. } => verify(merge, headers).await,
        }
    }
}

async fn verify(verifier: &OidcVerifier, headers: &HeaderMap) -> Result<()> {
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    verifier.verify(header).await?;
    Ok(())
}
