//! Taking the JWT out of an `Authorization: Bearer <JWT>` header and reading its (still
//! unverified) JOSE header: the algorithm and the id of the key that signed it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::OidcError;

/// Tokens longer than this are refused before any parsing (Google's are about 1 KiB).
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The only signature algorithm Google uses for the ID tokens of Pub/Sub push.
pub(crate) const EXPECTED_ALG: &str = "RS256";

/// The token carried by an `Authorization` header value of the `Bearer` scheme.
pub(crate) fn bearer_token(header: Option<&str>) -> Result<&str, OidcError> {
    let header = header.ok_or(OidcError::Missing)?.trim();
    if header.is_empty() {
        return Err(OidcError::Malformed(
            "the Authorization header is empty".into(),
        ));
    }
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // The scheme is echoed only when it looks like one: a header made of a bare token must
        // never end up in a log.
        let looks_like_scheme =
            scheme.len() <= 20 && scheme.bytes().all(|b| b.is_ascii_alphabetic());
        return Err(OidcError::Malformed(if looks_like_scheme {
            format!("the Authorization header uses the '{scheme}' scheme, not 'Bearer'")
        } else {
            "the Authorization header is not of the form 'Bearer <token>'".into()
        }));
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(OidcError::Malformed("the Bearer token is empty".into()));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(OidcError::Malformed(format!(
            "the Bearer token is {} bytes long, more than the {MAX_TOKEN_LEN} allowed",
            token.len()
        )));
    }
    Ok(token)
}

/// The parts of a JWT's header that select how it is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JwtHeader {
    /// The id of the signing key, looked up in Google's key set.
    pub kid: String,
}

/// Reads the header of `token`, insisting on `alg: RS256` and a `kid`. Nothing is verified yet.
pub(crate) fn jwt_header(token: &str) -> Result<JwtHeader, OidcError> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(OidcError::Malformed(format!(
            "the Bearer token is not a JWT: it has {} dot-separated parts instead of 3",
            parts.len()
        )));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(parts[0])
        .map_err(|e| OidcError::Malformed(format!("the JWT header is not base64url: {e}")))?;
    let header: Value = serde_json::from_slice(&bytes)
        .map_err(|e| OidcError::Malformed(format!("the JWT header is not JSON: {e}")))?;
    let Some(header) = header.as_object() else {
        return Err(OidcError::Malformed(
            "the JWT header is not a JSON object".into(),
        ));
    };
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        Some(_) => {
            return Err(OidcError::Malformed(
                "the JWT header's 'alg' is not a string".into(),
            ));
        }
        None => return Err(OidcError::Malformed("the JWT header has no 'alg'".into())),
    };
    if alg != EXPECTED_ALG {
        return Err(OidcError::Rejected(format!(
            "token algorithm '{}' is not the expected '{EXPECTED_ALG}'",
            printable(alg)
        )));
    }
    match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => Ok(JwtHeader { kid: kid.clone() }),
        _ => Err(OidcError::Rejected(
            "the JWT header names no signing key ('kid')".into(),
        )),
    }
}

/// `value` cut to a length and character set that is safe to put in a log line.
pub(crate) fn printable(value: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = value
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if value.chars().count() > MAX {
        out.push('…');
    }
    out
}
