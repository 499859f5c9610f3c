//! Tests of the key cache: one fetch for many requests, refetch on rotation, keeping the old
//! keys when a refresh fails, and 503s when no keys can be had.

use std::time::Duration;

use serde_json::json;

use super::keys::{Timing, freshness};
use super::test_support::{JwksServer, Reply, jwks, keys, settings, sign, valid_claims};
use super::{OidcError, OidcVerifier};

const OLD: &str = "google-key-old";
const NEW: &str = "google-key-new";

async fn verify_with(verifier: &OidcVerifier, kid: &str, key: usize) -> Result<(), OidcError> {
    let token = sign(&keys()[key], kid, &valid_claims());
    let header = format!("Bearer {token}");
    verifier.verify(Some(&header)).await.map(|_| ())
}

#[tokio::test]
async fn keys_are_fetched_once_for_many_verifications() {
    let body = jwks(&[(&keys()[0], OLD)]);
    let server = JwksServer::start(Reply::ok(body, Some("public, max-age=3600"))).await;
    let verifier = OidcVerifier::new(settings(&server.url));
    assert_eq!(server.hits(), 0, "construction must not fetch");

    // Concurrent first requests share one fetch.
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let verifier = verifier.clone();
            tokio::spawn(async move { verify_with(&verifier, OLD, 0).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    for _ in 0..20 {
        verify_with(&verifier, OLD, 0).await.unwrap();
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_zero_max_age_still_does_not_fetch_per_request() {
    let body = jwks(&[(&keys()[0], OLD)]);
    let server = JwksServer::start(Reply::ok(body, Some("no-cache, max-age=0"))).await;
    let verifier = OidcVerifier::new(settings(&server.url));
    for _ in 0..10 {
        verify_with(&verifier, OLD, 0).await.unwrap();
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn stale_keys_are_refreshed() {
    let body = jwks(&[(&keys()[0], OLD)]);
    let server = JwksServer::start(Reply::ok(body, Some("max-age=0"))).await;
    let timing = Timing {
        kid_refetch: Duration::ZERO,
        ..Timing::default()
    };
    let verifier = OidcVerifier::with_timing(settings(&server.url), timing);
    verify_with(&verifier, OLD, 0).await.unwrap();
    verify_with(&verifier, OLD, 0).await.unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn an_unknown_kid_triggers_one_refetch_that_finds_a_rotated_key() {
    let server = JwksServer::start(Reply::ok(jwks(&[(&keys()[0], OLD)]), None)).await;
    let verifier = OidcVerifier::new(settings(&server.url));
    verify_with(&verifier, OLD, 0).await.unwrap();
    assert_eq!(server.hits(), 1);

    // Google rotates: the new key is published, then used.
    let rotated = jwks(&[(&keys()[0], OLD), (&keys()[1], NEW)]);
    server.set(Reply::ok(rotated, None));
    verify_with(&verifier, NEW, 1).await.unwrap();
    verify_with(&verifier, OLD, 0).await.unwrap();
    assert_eq!(server.hits(), 2);

    // Another unknown kid right after is refused without a fetch.
    let error = verify_with(&verifier, "forged", 1).await.unwrap_err();
    assert!(matches!(error, OidcError::Rejected(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("no Google signing key has kid 'forged'")
    );
    for _ in 0..5 {
        assert!(verify_with(&verifier, "forged-too", 1).await.is_err());
    }
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_cached_keys() {
    let body = jwks(&[(&keys()[0], OLD)]);
    let server = JwksServer::start(Reply::ok(body, Some("max-age=0"))).await;
    let timing = Timing {
        kid_refetch: Duration::ZERO,
        retry_after_failure: Duration::from_secs(3600),
        ..Timing::default()
    };
    let verifier = OidcVerifier::with_timing(settings(&server.url), timing);
    verify_with(&verifier, OLD, 0).await.unwrap();

    server.set(Reply {
        status: 500,
        body: json!({ "error": "internal" }),
        cache_control: None,
    });
    verify_with(&verifier, OLD, 0).await.unwrap();
    assert_eq!(server.hits(), 2);
    // No new try right after a failure.
    verify_with(&verifier, OLD, 0).await.unwrap();
    assert_eq!(server.hits(), 2);

    // A kid the old keys lack cannot be decided while the refresh fails: retry later.
    let error = verify_with(&verifier, NEW, 1).await.unwrap_err();
    assert_eq!(error.status(), 503, "{error:?}");
    assert!(error.to_string().contains("HTTP 500"), "{error}");
}

#[tokio::test]
async fn no_keys_at_all_is_a_transient_error() {
    let server = JwksServer::start(Reply {
        status: 503,
        body: json!({}),
        cache_control: None,
    })
    .await;
    let verifier = OidcVerifier::new(settings(&server.url));
    let error = verify_with(&verifier, OLD, 0).await.unwrap_err();
    assert!(matches!(error, OidcError::KeysUnavailable(_)), "{error:?}");
    assert_eq!(error.status(), 503);
    assert!(error.to_string().contains("HTTP 503"), "{error}");
    assert!(error.to_string().contains(&server.url), "{error}");

    // Once the endpoint recovers (and the failure backoff passed), keys are fetched.
    server.set(Reply::ok(jwks(&[(&keys()[0], OLD)]), None));
    let timing = Timing {
        retry_after_failure: Duration::ZERO,
        ..Timing::default()
    };
    let verifier = OidcVerifier::with_timing(settings(&server.url), timing);
    verify_with(&verifier, OLD, 0).await.unwrap();

    // A key set without usable keys, one that is not JSON, and an unreachable server.
    let hmac_only = json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0", "kid": OLD }] });
    server.set(Reply::ok(hmac_only, None));
    let error = verify_with(&OidcVerifier::new(settings(&server.url)), OLD, 0).await;
    assert!(
        format!("{error:?}").contains("no usable RS256 key"),
        "{error:?}"
    );
    server.set(Reply::ok(json!("<html>"), None));
    let error = verify_with(&OidcVerifier::new(settings(&server.url)), OLD, 0).await;
    assert!(
        format!("{error:?}").contains("no 'keys' array"),
        "{error:?}"
    );

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/certs", closed.local_addr().unwrap());
    drop(closed);
    let error = verify_with(&OidcVerifier::new(settings(&url)), OLD, 0).await;
    assert!(
        matches!(error, Err(OidcError::KeysUnavailable(_))),
        "{error:?}"
    );
}

#[test]
fn freshness_follows_cache_control_and_age() {
    let headers = |pairs: &[(&'static str, &'static str)]| {
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    };
    let google = "public, max-age=20581, must-revalidate, no-transform";
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
    assert_eq!(
        secs(freshness(&headers(&[("cache-control", google)]))),
        Some(20581)
    );
    let aged = headers(&[("cache-control", google), ("age", "581")]);
    assert_eq!(secs(freshness(&aged)), Some(20000));
    assert_eq!(
        secs(freshness(&headers(&[("cache-control", "no-store")]))),
        None
    );
    assert_eq!(secs(freshness(&headers(&[]))), None);
}
