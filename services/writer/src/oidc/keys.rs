//! The cache of Google's token signing keys (a JSON Web Key Set fetched over HTTPS).
//!
//! Keys are fetched on first use and refreshed once older than the response's
//! `Cache-Control: max-age`. A token naming an unknown `kid` (key rotation) triggers at most one
//! refetch per [`Timing::kid_refetch`]; a failed fetch is not retried for
//! [`Timing::retry_after_failure`] and the keys already held keep being used meanwhile. All
//! requests share one cache, and only one fetch runs at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use reqwest::header::{AGE, CACHE_CONTROL, HeaderMap};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

use super::OidcError;
use super::bearer::printable;

/// How long keys are trusted and how often they may be fetched.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Freshness when the response has no `Cache-Control: max-age`.
    pub default_max_age: Duration,
    /// Minimum time between two fetches triggered by unknown `kid`s; also the minimum freshness.
    pub kid_refetch: Duration,
    /// No fetch is tried this long after a failed one.
    pub retry_after_failure: Duration,
    /// Timeout of one fetch.
    pub fetch_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            default_max_age: Duration::from_secs(3600),
            kid_refetch: Duration::from_secs(30),
            retry_after_failure: Duration::from_secs(5),
            fetch_timeout: Duration::from_secs(10),
        }
    }
}

/// What the cache holds.
#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<DecodingKey>>,
    fetched_at: Option<Instant>,
    fresh_for: Duration,
    last_kid_refetch: Option<Instant>,
    last_failure: Option<(Instant, String)>,
}

/// Why a fetch is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    Stale,
    UnknownKid,
}

fn within(at: Option<Instant>, now: Instant, window: Duration) -> bool {
    at.is_some_and(|at| now.saturating_duration_since(at) < window)
}

impl State {
    /// Whether a token signed by `kid` needs a fetch first, and why.
    fn needs(&self, kid: &str, now: Instant, timing: &Timing) -> Option<Fetch> {
        let failed_at = self.last_failure.as_ref().map(|(at, _)| *at);
        if within(failed_at, now, timing.retry_after_failure) {
            return None;
        }
        if !within(self.fetched_at, now, self.fresh_for) {
            return Some(Fetch::Stale);
        }
        if !self.keys.contains_key(kid) && !within(self.last_kid_refetch, now, timing.kid_refetch) {
            return Some(Fetch::UnknownKid);
        }
        None
    }

    /// The key `kid`, or why there is none.
    fn lookup(&self, kid: &str, url: &str) -> Result<Arc<DecodingKey>, OidcError> {
        if let Some(key) = self.keys.get(kid) {
            return Ok(key.clone());
        }
        let failure = self.last_failure.as_ref().map(|(_, e)| e.as_str());
        match (self.fetched_at, failure) {
            (None, failure) => Err(OidcError::KeysUnavailable(format!(
                "cannot fetch the key set from {url}: {}",
                failure.unwrap_or("no fetch attempted yet")
            ))),
            (Some(_), Some(failure)) => Err(OidcError::KeysUnavailable(format!(
                "no cached key has kid '{}' and refreshing the keys from {url} failed: {failure}",
                printable(kid)
            ))),
            (Some(_), None) => Err(OidcError::Rejected(format!(
                "no Google signing key has kid '{}'",
                printable(kid)
            ))),
        }
    }
}

/// Google's signing keys, shared by all requests.
pub(crate) struct KeyCache {
    url: String,
    http: Result<reqwest::Client, String>,
    timing: Timing,
    state: RwLock<State>,
    fetching: Mutex<()>,
}

impl KeyCache {
    /// A cache of the key set at `url`; nothing is fetched yet.
    pub fn new(url: String, timing: Timing) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timing.fetch_timeout)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"));
        KeyCache {
            url,
            http,
            timing,
            state: RwLock::new(State::default()),
            fetching: Mutex::new(()),
        }
    }

    /// The verification key named `kid`, fetching the key set first if needed.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, OidcError> {
        {
            let state = self.state.read().await;
            if state.needs(kid, Instant::now(), &self.timing).is_none() {
                return state.lookup(kid, &self.url);
            }
        }
        let _one_fetch_at_a_time = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        let reason = {
            let state = self.state.read().await;
            match state.needs(kid, Instant::now(), &self.timing) {
                None => return state.lookup(kid, &self.url),
                Some(reason) => reason,
            }
        };
        let started = Instant::now();
        let fetched = self.fetch().await;
        let mut state = self.state.write().await;
        if reason == Fetch::UnknownKid {
            state.last_kid_refetch = Some(started);
        }
        match fetched {
            Ok((keys, fresh_for)) => {
                tracing::info!(
                    url = %self.url, keys = keys.len(), fresh_for_secs = fresh_for.as_secs(),
                    reason = ?reason, "fetched Google's token signing keys"
                );
                state.keys = keys;
                state.fetched_at = Some(started);
                state.fresh_for = fresh_for.max(self.timing.kid_refetch);
                state.last_failure = None;
            }
            Err(error) => {
                tracing::warn!(
                    url = %self.url, cached_keys = state.keys.len(), reason = ?reason,
                    "cannot fetch Google's token signing keys: {error}"
                );
                state.last_failure = Some((Instant::now(), error));
            }
        }
        state.lookup(kid, &self.url)
    }

    /// One GET of the key set: its usable keys by `kid`, and how long they stay fresh.
    async fn fetch(&self) -> Result<(HashMap<String, Arc<DecodingKey>>, Duration), String> {
        let http = self.http.as_ref().map_err(Clone::clone)?;
        let response = http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the key set endpoint answered HTTP {status}"));
        }
        let fresh_for = freshness(response.headers()).unwrap_or(self.timing.default_max_age);
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("the key set is not JSON: {e}"))?;
        let keys = parse_key_set(&body)?;
        Ok((keys, fresh_for))
    }
}

/// `max-age` of the `Cache-Control` header, less the `Age` the response already has.
pub(crate) fn freshness(headers: &HeaderMap) -> Option<Duration> {
    let cache_control = headers.get(CACHE_CONTROL)?.to_str().ok()?;
    let max_age: u64 = cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| value.trim().trim_matches('"').parse().ok())?
    })?;
    let age: u64 = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Some(Duration::from_secs(max_age.saturating_sub(age)))
}

/// The RSA signature keys of a JWKS document by `kid`; other keys are skipped.
fn parse_key_set(body: &Value) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
    let entries = body
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the key set has no 'keys' array")?;
    let mut keys = HashMap::new();
    for entry in entries {
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            continue;
        };
        let usable = matches!(jwk.algorithm, AlgorithmParameters::RSA(_))
            && matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256))
            && matches!(
                jwk.common.public_key_use,
                None | Some(PublicKeyUse::Signature)
            );
        let (Some(kid), true) = (jwk.common.key_id.clone(), usable) else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.insert(kid, Arc::new(key));
        }
    }
    if keys.is_empty() {
        return Err(format!(
            "the key set has no usable RS256 key among its {} entries",
            entries.len()
        ));
    }
    Ok(keys)
}
