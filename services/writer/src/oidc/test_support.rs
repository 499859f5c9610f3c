//! Test helpers: RSA keys made once per test binary, a local JWKS server that counts its
//! requests, and Google-like tokens signed with jsonwebtoken.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::OidcSettings;

/// The audience the tests' verifiers expect.
pub const AUDIENCE: &str = "https://writer.test/push";
/// The push service account the tests' verifiers expect.
pub const EMAIL: &str = "pubsub-push@pg2bq-test.iam.gserviceaccount.com";

/// An RSA key pair and its public JWK (without `kid`).
pub struct TestKey {
    /// The private key, to sign tokens with.
    pub encoding: EncodingKey,
    jwk: Jwk,
}

impl TestKey {
    fn generate() -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let pkcs8 = pair.as_der().expect("PKCS#8 encoding");
        let body = STANDARD.encode(pkcs8.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("PEM key");
        let jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("JWK");
        TestKey { encoding, jwk }
    }

    /// The public JWK of this key, published under `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        let mut jwk = self.jwk.clone();
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        serde_json::to_value(jwk).unwrap()
    }
}

/// Two key pairs, generated once per test binary (key generation is slow in debug builds).
pub fn keys() -> &'static [TestKey; 2] {
    static KEYS: OnceLock<[TestKey; 2]> = OnceLock::new();
    KEYS.get_or_init(|| [TestKey::generate(), TestKey::generate()])
}

/// A JWKS document of `(key, kid)` pairs.
pub fn jwks(entries: &[(&TestKey, &str)]) -> Value {
    json!({ "keys": entries.iter().map(|(key, kid)| key.jwk(kid)).collect::<Vec<_>>() })
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a valid Pub/Sub push token.
pub fn valid_claims() -> Value {
    let now = now();
    json!({
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "azp": "112233445566778899000",
        "sub": "112233445566778899000",
        "email": EMAIL,
        "email_verified": true,
        "iat": now - 10,
        "exp": now + 3590,
    })
}

/// `valid_claims()` with `changes` merged in (`null` removes a claim).
pub fn claims_with(changes: &Value) -> Value {
    let mut claims = valid_claims();
    let map = claims.as_object_mut().unwrap();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            map.remove(name);
        } else {
            map.insert(name.clone(), value.clone());
        }
    }
    claims
}

/// `claims` signed RS256 by `key`, with `kid` in the header.
pub fn sign(key: &TestKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

/// An unsigned token with a hand-made `header`.
pub fn unsigned(header: &Value, claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.", part(header), part(claims))
}

/// Settings that expect [`AUDIENCE`] and [`EMAIL`] and fetch keys from `jwks_url`.
pub fn settings(jwks_url: &str) -> OidcSettings {
    OidcSettings {
        audience: AUDIENCE.to_owned(),
        service_account_email: EMAIL.to_owned(),
        jwks_url: jwks_url.to_owned(),
    }
}

/// What the JWKS server answers.
#[derive(Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// `Cache-Control` header, if any.
    pub cache_control: Option<&'static str>,
}

impl Reply {
    /// A 200 with `body` and `Cache-Control: public, max-age=…`.
    pub fn ok(body: Value, cache_control: Option<&'static str>) -> Self {
        Reply {
            status: 200,
            body,
            cache_control,
        }
    }
}

struct Shared {
    hits: AtomicUsize,
    reply: Mutex<Reply>,
}

/// A JWKS server on 127.0.0.1 that counts its requests; it stops with the test's runtime.
pub struct JwksServer {
    /// `http://127.0.0.1:<port>/...` of the key set.
    pub url: String,
    shared: Arc<Shared>,
}

impl JwksServer {
    /// Starts a server answering `reply`.
    pub async fn start(reply: Reply) -> Self {
        let shared = Arc::new(Shared {
            hits: AtomicUsize::new(0),
            reply: Mutex::new(reply),
        });
        let app = axum::Router::new()
            .route("/oauth2/v3/certs", axum::routing::get(answer))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/oauth2/v3/certs", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        JwksServer { url, shared }
    }

    /// Changes what the server answers from now on.
    pub fn set(&self, reply: Reply) {
        *self.shared.reply.lock().unwrap() = reply;
    }

    /// How many requests the server has answered.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }
}

async fn answer(State(shared): State<Arc<Shared>>) -> Response {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    let reply = shared.reply.lock().unwrap().clone();
    let status = StatusCode::from_u16(reply.status).unwrap();
    let mut response = (status, axum::Json(reply.body)).into_response();
    if let Some(cache_control) = reply.cache_control {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        );
    }
    response
}
