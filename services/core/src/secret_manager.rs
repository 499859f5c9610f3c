//! Secrets named by a Secret Manager reference (`projects/<p>/secrets/<s>/versions/<v>`), read
//! with Application Default Credentials.
//!
//! On Cloud Run the platform puts secrets into the environment itself; a reference is for the
//! CLI and for hosts where that is not done. The value is held as a [`Secret`] and never logged.

use crate::config::Secret;
use crate::error::{CoreError, Result};
use base64::Engine;

/// The Secret Manager API.
const ENDPOINT: &str = "https://secretmanager.googleapis.com/v1";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A checked reference to one version of a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretReference(String);

impl SecretReference {
    /// Checks `text`: `projects/<p>/secrets/<s>/versions/<v>`, or without `/versions/<v>`
    /// (meaning `latest`).
    pub fn parse(text: &str) -> Result<Self> {
        let parts: Vec<&str> = text.trim().split('/').collect();
        let well_formed = |parts: &[&str]| {
            parts.len() >= 4
                && parts[0] == "projects"
                && parts[2] == "secrets"
                && parts.iter().all(|p| !p.is_empty())
        };
        match parts.len() {
            4 if well_formed(&parts) => Ok(SecretReference(format!(
                "{}/versions/latest",
                parts.join("/")
            ))),
            6 if well_formed(&parts) && parts[4] == "versions" => {
                Ok(SecretReference(parts.join("/")))
            }
            _ => Err(CoreError::Config(format!(
                "'{text}' is not a Secret Manager reference; write projects/<project>/secrets/<name>/versions/<version> \
                 (or .../versions/latest)"
            ))),
        }
    }

    /// The resource name, `projects/…/versions/…`.
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Reads the secret version through the Secret Manager API.
pub async fn access(reference: &SecretReference) -> Result<Secret> {
    let failure = |what: String| {
        CoreError::Config(format!(
            "cannot read secret {}: {what}; the caller needs roles/secretmanager.secretAccessor on it, \
             or set the value in the environment instead",
            reference.name()
        ))
    };
    let credentials = google_cloud_auth::credentials::Builder::default()
        .with_scopes([SCOPE])
        .build_access_token_credentials()
        .map_err(|e| failure(format!("no Google credentials ({e})")))?;
    let token = credentials
        .access_token()
        .await
        .map_err(|e| failure(format!("no access token ({e})")))?;
    let response = reqwest::Client::new()
        .get(format!("{ENDPOINT}/{}:access", reference.name()))
        .bearer_auth(&token.token)
        .send()
        .await
        .map_err(|e| failure(e.to_string()))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| failure(e.to_string()))?;
    if !status.is_success() {
        return Err(failure(format!("HTTP {status}: {}", error_message(&body))));
    }
    payload(&body).map_err(failure)
}

/// The secret's value from an `:access` response body.
fn payload(body: &str) -> std::result::Result<Secret, String> {
    let json: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("unexpected answer ({e})"))?;
    let data = json
        .pointer("/payload/data")
        .and_then(serde_json::Value::as_str)
        .ok_or("the answer has no payload")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| "the payload is not base64".to_owned())?;
    let text = String::from_utf8(bytes).map_err(|_| "the payload is not UTF-8 text".to_owned())?;
    // A secret stored from a file often ends with a newline that is not part of the password.
    Ok(Secret::from(text.trim_end_matches(['\r', '\n']).to_owned()))
}

/// The `error.message` of a Google API error body, or the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_checked_and_default_to_latest() {
        assert_eq!(
            SecretReference::parse("projects/p/secrets/pw")
                .unwrap()
                .name(),
            "projects/p/secrets/pw/versions/latest"
        );
        assert_eq!(
            SecretReference::parse("projects/p/secrets/pw/versions/3")
                .unwrap()
                .name(),
            "projects/p/secrets/pw/versions/3"
        );
        for wrong in [
            "pw",
            "projects/p/secret/pw",
            "projects//secrets/pw",
            "projects/p/secrets/pw/version/1",
        ] {
            let message = SecretReference::parse(wrong).unwrap_err().to_string();
            assert!(
                message.contains("projects/<project>/secrets/<name>"),
                "{message}"
            );
        }
    }

    #[test]
    fn payloads_decode_without_the_trailing_newline() {
        let body = r#"{"name":"projects/1/secrets/pw/versions/2","payload":{"data":"czNjcjN0Cg==","dataCrc32c":"1"}}"#;
        assert_eq!(payload(body).unwrap().expose(), "s3cr3t");
        assert!(payload(r#"{"payload":{"data":"***"}}"#).is_err());
        assert!(payload("{}").is_err());
    }

    #[test]
    fn api_errors_show_their_message() {
        let body = r#"{"error":{"code":403,"message":"Permission denied on secret","status":"PERMISSION_DENIED"}}"#;
        assert_eq!(error_message(body), "Permission denied on secret");
    }
}
