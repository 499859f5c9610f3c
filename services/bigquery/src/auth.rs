//! Access tokens for BigQuery: Application Default Credentials in GCP, none for an emulator.

use crate::error::{BigQueryError, Result};
use google_cloud_auth::credentials::{AccessTokenCredentials, Builder};

const BIGQUERY_SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

/// Where bearer tokens come from.
#[derive(Clone)]
pub enum TokenSource {
    /// No token (local emulator).
    None,
    /// Application Default Credentials (the service account on Cloud Run).
    Google(AccessTokenCredentials),
}

impl TokenSource {
    /// Application Default Credentials with the BigQuery scope.
    pub fn google() -> Result<Self> {
        Self::google_for(BIGQUERY_SCOPE)
    }

    /// Application Default Credentials with `scope` (Pub/Sub's, for the CLI's publishing).
    pub fn google_for(scope: &str) -> Result<Self> {
        let credentials = Builder::default()
            .with_scopes([scope])
            .build_access_token_credentials()
            .map_err(|e| {
                BigQueryError::Config(format!(
                    "no Google credentials ({e}); on GCP run with a service account, locally \
                     point PG2BQ_BQ_*_ENDPOINT and PUBSUB_EMULATOR_HOST at the emulators"
                ))
            })?;
        Ok(TokenSource::Google(credentials))
    }

    /// The `Authorization` header value, if any.
    pub async fn authorization(&self) -> Result<Option<String>> {
        match self {
            TokenSource::None => Ok(None),
            TokenSource::Google(credentials) => {
                let token = credentials.access_token().await.map_err(|e| {
                    BigQueryError::Transient(format!("cannot get an access token: {e}"))
                })?;
                Ok(Some(format!("Bearer {}", token.token)))
            }
        }
    }
}

impl TokenSource {
    /// No token for an emulator target, Application Default Credentials otherwise.
    pub fn for_target(target: &pg2bq_core::config::TargetArgs) -> Result<Self> {
        if target.is_emulator() {
            Ok(TokenSource::None)
        } else {
            TokenSource::google()
        }
    }
}
