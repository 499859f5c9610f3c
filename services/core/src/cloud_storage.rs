//! The Cloud Storage calls of claim checks, over the JSON API: capture uploads a change batch too
//! big for a Pub/Sub message; the writer downloads it and deletes it once written.
//!
//! In GCP the calls carry Application Default Credentials; against an emulator
//! (`STORAGE_EMULATOR_HOST`, the variable Google's own clients read) they carry none.

use reqwest::{Method, StatusCode, Url};
use std::time::Duration;

/// The Cloud Storage JSON API.
const ENDPOINT: &str = "https://storage.googleapis.com";
/// Reading, creating and deleting objects.
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

/// What went wrong with a Cloud Storage call, and whether retrying can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// Unavailable, overloaded, timed out, or no access token right now: retrying should succeed.
    #[error("Cloud Storage unavailable: {0}")]
    Transient(String),
    /// Refused (not allowed, no such bucket, a bad name): retrying will not help until someone
    /// fixes it.
    #[error("Cloud Storage refused: {0}")]
    Permanent(String),
}

impl StorageError {
    /// Whether retrying later should succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Transient(_))
    }

    fn of_status(what: &str, status: StatusCode, body: &str) -> Self {
        let message = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| body.chars().take(300).collect());
        let text = format!("{what}: HTTP {status}: {message}");
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            StorageError::Transient(text)
        } else {
            StorageError::Permanent(text)
        }
    }
}

/// Result with [`StorageError`].
pub type Result<T> = std::result::Result<T, StorageError>;

/// A `gs://bucket/object` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUri {
    /// The bucket.
    pub bucket: String,
    /// The object's name within it.
    pub name: String,
}

impl ObjectUri {
    /// Reads `gs://bucket/name`.
    pub fn parse(uri: &str) -> Option<Self> {
        let (bucket, name) = uri.strip_prefix("gs://")?.split_once('/')?;
        (!bucket.is_empty() && !name.is_empty()).then(|| ObjectUri {
            bucket: bucket.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl std::fmt::Display for ObjectUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gs://{}/{}", self.bucket, self.name)
    }
}

/// A Cloud Storage client (or an emulator's).
#[derive(Clone)]
pub struct CloudStorage {
    http: reqwest::Client,
    endpoint: String,
    credentials: Option<google_cloud_auth::credentials::AccessTokenCredentials>,
}

impl CloudStorage {
    /// A client of the emulator at `emulator_host` (`http://host:port`, or `host:port`), or of
    /// Cloud Storage with Application Default Credentials when it is `None`.
    pub fn new(emulator_host: Option<&str>) -> std::result::Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .connect_timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let (endpoint, credentials) = match emulator_host.map(str::trim).filter(|h| !h.is_empty()) {
            Some(host) if host.contains("://") => (host.trim_end_matches('/').to_owned(), None),
            Some(host) => (format!("http://{}", host.trim_end_matches('/')), None),
            None => {
                let credentials = google_cloud_auth::credentials::Builder::default()
                    .with_scopes([SCOPE])
                    .build_access_token_credentials()
                    .map_err(|e| {
                        format!(
                            "no Google credentials for Cloud Storage ({e}); on GCP run with a \
                             service account, locally set STORAGE_EMULATOR_HOST"
                        )
                    })?;
                (ENDPOINT.to_owned(), Some(credentials))
            }
        };
        Url::parse(&endpoint)
            .map_err(|e| format!("bad Cloud Storage endpoint '{endpoint}': {e}"))?;
        Ok(CloudStorage {
            http,
            endpoint,
            credentials,
        })
    }

    /// The endpoint the client calls.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `<endpoint>/<prefix>/b/<bucket>/o[/<name>]`, each segment escaped.
    fn url(&self, prefix: &[&str], bucket: &str, name: Option<&str>) -> Url {
        let mut url = Url::parse(&self.endpoint).expect("checked in new");
        {
            let mut segments = url.path_segments_mut().expect("an http(s) URL");
            segments.pop_if_empty();
            segments.extend(prefix).push("b").push(bucket).push("o");
            if let Some(name) = name {
                segments.push(name);
            }
        }
        url
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let what = format!("{method} {}", url.path());
        let mut request = self.http.request(method, url);
        if let Some(credentials) = &self.credentials {
            let token = credentials
                .access_token()
                .await
                .map_err(|e| StorageError::Transient(format!("{what}: no access token: {e}")))?;
            request = request.bearer_auth(token.token);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| StorageError::Transient(format!("{what}: {e}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| StorageError::Transient(format!("{what}: reading the answer: {e}")))?;
        Ok((status, bytes.to_vec()))
    }

    /// Creates `object` with `body`, only if no object of that name exists. An object already
    /// there counts as created: names are unique per upload, so it is this upload's own object,
    /// written by an attempt whose answer was lost.
    pub async fn create(&self, object: &ObjectUri, body: Vec<u8>) -> Result<()> {
        let mut url = self.url(&["upload", "storage", "v1"], &object.bucket, None);
        url.query_pairs_mut()
            .append_pair("uploadType", "media")
            .append_pair("name", &object.name)
            .append_pair("ifGenerationMatch", "0");
        let (status, answer) = self.send(Method::POST, url, Some(body)).await?;
        if status.is_success() || status == StatusCode::PRECONDITION_FAILED {
            Ok(())
        } else {
            Err(StorageError::of_status(
                &format!("creating {object}"),
                status,
                &String::from_utf8_lossy(&answer),
            ))
        }
    }

    /// The content of `object`, or `None` if there is no such object.
    pub async fn read(&self, object: &ObjectUri) -> Result<Option<Vec<u8>>> {
        let mut url = self.url(&["storage", "v1"], &object.bucket, Some(&object.name));
        url.query_pairs_mut().append_pair("alt", "media");
        let (status, answer) = self.send(Method::GET, url, None).await?;
        match status {
            s if s.is_success() => Ok(Some(answer)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(StorageError::of_status(
                &format!("reading {object}"),
                status,
                &String::from_utf8_lossy(&answer),
            )),
        }
    }

    /// Deletes `object`; returns false if there was no such object.
    pub async fn delete(&self, object: &ObjectUri) -> Result<bool> {
        let url = self.url(&["storage", "v1"], &object.bucket, Some(&object.name));
        let (status, answer) = self.send(Method::DELETE, url, None).await?;
        match status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(StorageError::of_status(
                &format!("deleting {object}"),
                status,
                &String::from_utf8_lossy(&answer),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_object_uris() {
        let uri = ObjectUri::parse("gs://b/batches/s.t/x.json").unwrap();
        assert_eq!(uri.bucket, "b");
        assert_eq!(uri.name, "batches/s.t/x.json");
        assert_eq!(uri.to_string(), "gs://b/batches/s.t/x.json");
        for bad in ["b/x", "gs://b", "gs://b/", "gs:///x", "s3://b/x"] {
            assert_eq!(ObjectUri::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn escapes_object_names_in_one_segment() {
        let storage = CloudStorage::new(Some("127.0.0.1:9")).unwrap();
        assert_eq!(storage.endpoint(), "http://127.0.0.1:9");
        let url = storage.url(&["storage", "v1"], "b", Some("batches/s.t/0/1 x#?.json"));
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/storage/v1/b/b/o/batches%2Fs.t%2F0%2F1%20x%23%3F.json"
        );
        let with_scheme = CloudStorage::new(Some("http://localhost:9023/")).unwrap();
        assert_eq!(with_scheme.endpoint(), "http://localhost:9023");
    }

    #[test]
    fn server_errors_are_transient_refusals_are_not() {
        let e = StorageError::of_status(
            "x",
            StatusCode::FORBIDDEN,
            r#"{"error":{"message":"no access"}}"#,
        );
        assert_eq!(
            e,
            StorageError::Permanent("x: HTTP 403 Forbidden: no access".into())
        );
        assert!(StorageError::of_status("x", StatusCode::SERVICE_UNAVAILABLE, "").is_transient());
        assert!(StorageError::of_status("x", StatusCode::TOO_MANY_REQUESTS, "").is_transient());
    }
}
