//! Tests of what a token must be: format, algorithm, signature and claims.

use serde_json::{Value, json};

use super::test_support::{
    AUDIENCE, EMAIL, JwksServer, Reply, claims_with, jwks, keys, now, settings, sign, unsigned,
    valid_claims,
};
use super::{OidcError, OidcVerifier, VerifiedPush};

const KID: &str = "google-key-1";

/// A verifier of a server publishing the first test key as [`KID`].
async fn setup() -> (JwksServer, OidcVerifier) {
    let body = jwks(&[(&keys()[0], KID)]);
    let server = JwksServer::start(Reply::ok(body, Some("public, max-age=3600"))).await;
    let verifier = OidcVerifier::new(settings(&server.url));
    (server, verifier)
}

async fn verify(verifier: &OidcVerifier, token: &str) -> Result<VerifiedPush, OidcError> {
    verifier.verify(Some(&format!("Bearer {token}"))).await
}

/// Asserts a refusal of `token` as `variant`, with a message containing `expected` and not
/// the token.
fn assert_refused(
    result: Result<VerifiedPush, OidcError>,
    token: &str,
    variant: fn(&OidcError) -> bool,
    expected: &str,
) {
    let error = result.expect_err("the token must be refused");
    let message = error.to_string();
    assert!(variant(&error), "unexpected variant: {error:?}");
    assert!(message.contains(expected), "'{message}' lacks '{expected}'");
    if token.len() > 8 {
        assert!(!message.contains(token), "the message shows the token");
        assert!(
            !format!("{error:?}").contains(token),
            "Debug shows the token"
        );
    }
}

fn rejected(e: &OidcError) -> bool {
    matches!(e, OidcError::Rejected(_))
}

fn malformed(e: &OidcError) -> bool {
    matches!(e, OidcError::Malformed(_))
}

async fn refused_claims(changes: Value, expected: &str) {
    let (_server, verifier) = setup().await;
    let token = sign(&keys()[0], KID, &claims_with(&changes));
    let result = verify(&verifier, &token).await;
    assert_eq!(result.as_ref().map_err(OidcError::status).err(), Some(403));
    assert_refused(result, &token, rejected, expected);
}

#[tokio::test]
async fn a_valid_token_passes_and_yields_the_identity() {
    let (_server, verifier) = setup().await;
    let token = sign(&keys()[0], KID, &valid_claims());
    let push = verify(&verifier, &token).await.unwrap();
    assert_eq!(push.email, EMAIL);
    assert_eq!(push.subject, "112233445566778899000");
    // The short issuer form, an audience list and an email in another case pass too.
    let claims = claims_with(&json!({
        "iss": "accounts.google.com",
        "aud": ["other", AUDIENCE],
        "email": EMAIL.to_uppercase(),
    }));
    let token = sign(&keys()[0], KID, &claims);
    let lower = |p: VerifiedPush| p.email.to_lowercase();
    assert_eq!(verify(&verifier, &token).await.map(lower).unwrap(), EMAIL);
    // The scheme is case-insensitive.
    let token = sign(&keys()[0], KID, &valid_claims());
    let header = format!("bearer {token}");
    assert!(verifier.verify(Some(&header)).await.is_ok());
}

#[tokio::test]
async fn a_wrong_audience_is_rejected() {
    let expected = format!("audience 'https://other.test/push' is not the expected '{AUDIENCE}'");
    refused_claims(json!({ "aud": "https://other.test/push" }), &expected).await;
    refused_claims(json!({ "aud": ["a", "b"] }), "do not include the expected").await;
    refused_claims(json!({ "aud": null }), "no 'aud' claim").await;
}

#[tokio::test]
async fn a_wrong_issuer_is_rejected() {
    let expected = "issuer 'https://evil.test' is not Google";
    refused_claims(json!({ "iss": "https://evil.test" }), expected).await;
    refused_claims(json!({ "iss": null }), "no 'iss' claim").await;
}

#[tokio::test]
async fn expired_and_future_tokens_are_rejected() {
    let now = now();
    let changes = json!({ "iat": now - 7200, "exp": now - 3600 });
    refused_claims(changes, "token expired at").await;
    refused_claims(json!({ "exp": null }), "no 'exp' claim").await;
    refused_claims(json!({ "iat": null }), "no 'iat' claim").await;
    refused_claims(json!({ "iat": now + 600 }), "token issued in the future").await;
    refused_claims(json!({ "nbf": now + 600 }), "token not valid before").await;
    refused_claims(json!({ "exp": now + 30 * 86_400 }), "implausibly far").await;
    // Within the leeway, an expired token still passes.
    let (_server, verifier) = setup().await;
    let claims = claims_with(&json!({ "iat": now - 3630, "exp": now - 30 }));
    assert!(
        verify(&verifier, &sign(&keys()[0], KID, &claims))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_wrong_or_unverified_email_is_rejected() {
    let expected = format!("email 'me@example.com' is not the push service account '{EMAIL}'");
    refused_claims(json!({ "email": "me@example.com" }), &expected).await;
    refused_claims(json!({ "email": null }), "no 'email' claim").await;
    let expected = format!("email '{EMAIL}' is not verified");
    refused_claims(json!({ "email_verified": false }), &expected).await;
    refused_claims(json!({ "email_verified": null }), &expected).await;
    refused_claims(json!({ "sub": null }), "no 'sub' claim").await;
}

#[tokio::test]
async fn unknown_kids_and_bad_signatures_are_rejected() {
    let (_server, verifier) = setup().await;
    let token = sign(&keys()[0], "not-a-google-key", &valid_claims());
    let result = verify(&verifier, &token).await;
    assert_refused(
        result,
        &token,
        rejected,
        "no Google signing key has kid 'not-a-google-key'",
    );

    // Signed with another key under Google's kid.
    let token = sign(&keys()[1], KID, &valid_claims());
    let result = verify(&verifier, &token).await;
    let expected = format!("the signature does not verify with Google's key '{KID}'");
    assert_refused(result, &token, rejected, &expected);

    // A genuine signature over other claims.
    let genuine = sign(&keys()[0], KID, &valid_claims());
    let forged = sign(
        &keys()[1],
        KID,
        &claims_with(&json!({ "email": "me@example.com" })),
    );
    let parts = |t: &str| t.split('.').map(str::to_owned).collect::<Vec<_>>();
    let (genuine, forged) = (parts(&genuine), parts(&forged));
    let token = format!("{}.{}.{}", genuine[0], forged[1], genuine[2]);
    let result = verify(&verifier, &token).await;
    assert_refused(result, &token, rejected, "the signature does not verify");
}

#[tokio::test]
async fn other_algorithms_are_rejected() {
    let (server, verifier) = setup().await;
    let token = unsigned(&json!({ "alg": "none", "kid": KID }), &valid_claims());
    let result = verify(&verifier, &token).await;
    assert_refused(
        result,
        &token,
        rejected,
        "token algorithm 'none' is not the expected 'RS256'",
    );

    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(KID.to_owned());
    let key = jsonwebtoken::EncodingKey::from_secret(b"a shared secret");
    let token = jsonwebtoken::encode(&header, &valid_claims(), &key).unwrap();
    let result = verify(&verifier, &token).await;
    assert_refused(result, &token, rejected, "token algorithm 'HS256' is not");

    let token = unsigned(&json!({ "alg": "RS256" }), &valid_claims());
    let result = verify(&verifier, &token).await;
    assert_refused(result, &token, rejected, "names no signing key ('kid')");
    // None of these needed Google's keys.
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn missing_and_malformed_headers_are_refused() {
    let (server, verifier) = setup().await;
    let missing = verifier.verify(None).await.unwrap_err();
    assert_eq!(missing, OidcError::Missing);
    assert_eq!(missing.status(), 401);
    assert!(missing.to_string().contains("no Authorization header"));

    let token = sign(&keys()[0], KID, &valid_claims());
    let cases = [
        (
            "Basic dXNlcjpwYXNzd29yZA==",
            "uses the 'Basic' scheme, not 'Bearer'",
        ),
        ("", "the Authorization header is empty"),
        ("Bearer", "the Bearer token is empty"),
        ("Bearer    ", "the Bearer token is empty"),
        (
            "Bearer garbage",
            "it has 1 dot-separated parts instead of 3",
        ),
        (
            "Bearer a.b.c.d",
            "it has 4 dot-separated parts instead of 3",
        ),
        ("Bearer !!!.b.c", "the JWT header is not base64url"),
        ("Bearer bm90IGpzb24.b.c", "the JWT header is not JSON"),
        ("Bearer WzFd.b.c", "the JWT header is not a JSON object"),
        ("Bearer e30.b.c", "the JWT header has no 'alg'"),
        (token.as_str(), "is not of the form 'Bearer <token>'"),
    ];
    for (header, expected) in cases {
        let result = verifier.verify(Some(header)).await;
        let token_part = header.strip_prefix("Bearer ").unwrap_or(header);
        assert_eq!(result.as_ref().map_err(OidcError::status).err(), Some(401));
        assert_refused(result, token_part, malformed, expected);
    }
    let long = format!("Bearer {}", "a".repeat(20_000));
    let result = verifier.verify(Some(&long)).await;
    assert_refused(result, &long[7..], malformed, "more than the 16384 allowed");

    // A signed token whose claims are not of the expected types.
    let token = sign(&keys()[0], KID, &claims_with(&json!({ "exp": "tomorrow" })));
    let result = verify(&verifier, &token).await;
    assert_refused(
        result,
        &token,
        malformed,
        "the JWT claims are not of the expected shape",
    );
    assert_eq!(server.hits(), 1);
}

#[test]
fn statuses_and_messages() {
    let cases = [
        (OidcError::Missing, 401, "no Authorization header"),
        (
            OidcError::Malformed("x".into()),
            401,
            "malformed Authorization header: x",
        ),
        (
            OidcError::Rejected("x".into()),
            403,
            "OIDC token rejected: x",
        ),
        (
            OidcError::KeysUnavailable("x".into()),
            503,
            "keys are unavailable: x",
        ),
    ];
    for (error, status, message) in cases {
        assert_eq!(error.status(), status);
        assert!(error.to_string().contains(message), "{error}");
    }
    assert_eq!(super::claims::utc(0), "1970-01-01T00:00:00Z");
    assert_eq!(super::claims::utc(1_709_251_199), "2024-02-29T23:59:59Z");
    assert_eq!(super::claims::utc(-1), "1969-12-31T23:59:59Z");
}
