//! The claims of a Google-signed ID token and the checks a Pub/Sub push token must pass once
//! its signature is verified: issuer, audience, times and the push service account's email.

use serde::Deserialize;

use super::bearer::printable;
use super::{OidcError, OidcSettings, VerifiedPush};

/// The issuers Google puts in the ID tokens it signs.
pub(crate) const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// Allowed clock difference with Google, in seconds.
pub(crate) const LEEWAY_SECS: i64 = 60;

/// Google's ID tokens live one hour; an expiry further away than this is not believed.
const MAX_LIFETIME_SECS: i64 = 24 * 3600;

/// The claims read from the token; all optional so that a missing one gets a clear message.
#[derive(Debug, Deserialize)]
pub(crate) struct GoogleClaims {
    iss: Option<String>,
    aud: Option<Audience>,
    sub: Option<String>,
    email: Option<String>,
    email_verified: Option<Flag>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
}

/// `aud` is a single string in Google's tokens, but a JWT may carry a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// `email_verified` is a boolean, but some Google tokens have carried the string "true".
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

impl Flag {
    fn is_true(&self) -> bool {
        match self {
            Flag::Bool(b) => *b,
            Flag::Text(s) => s == "true",
        }
    }
}

fn rejected(message: String) -> OidcError {
    OidcError::Rejected(message)
}

fn required<'a, T>(claim: &'a Option<T>, name: &str) -> Result<&'a T, OidcError> {
    claim
        .as_ref()
        .ok_or_else(|| rejected(format!("the token has no '{name}' claim")))
}

/// Checks verified `claims` against `settings` at unix time `now`.
pub(crate) fn check(
    claims: &GoogleClaims,
    settings: &OidcSettings,
    now: i64,
) -> Result<VerifiedPush, OidcError> {
    let iss = required(&claims.iss, "iss")?;
    if !GOOGLE_ISSUERS.contains(&iss.as_str()) {
        return Err(rejected(format!(
            "issuer '{}' is not Google ('{}' or '{}')",
            printable(iss),
            GOOGLE_ISSUERS[0],
            GOOGLE_ISSUERS[1]
        )));
    }

    let expected = &settings.audience;
    match required(&claims.aud, "aud")? {
        Audience::One(aud) if aud == expected => {}
        Audience::Many(auds) if auds.iter().any(|a| a == expected) => {}
        Audience::One(aud) => {
            return Err(rejected(format!(
                "audience '{}' is not the expected '{expected}'",
                printable(aud)
            )));
        }
        Audience::Many(auds) => {
            let auds: Vec<String> = auds.iter().take(5).map(|a| printable(a)).collect();
            return Err(rejected(format!(
                "audiences {auds:?} do not include the expected '{expected}'"
            )));
        }
    }

    check_times(claims, now)?;

    let email = required(&claims.email, "email")?;
    if !email.eq_ignore_ascii_case(&settings.service_account_email) {
        return Err(rejected(format!(
            "email '{}' is not the push service account '{}'",
            printable(email),
            settings.service_account_email
        )));
    }
    if !claims.email_verified.as_ref().is_some_and(Flag::is_true) {
        return Err(rejected(format!(
            "email '{}' is not verified (email_verified is not true)",
            printable(email)
        )));
    }

    let subject = required(&claims.sub, "sub")?;
    Ok(VerifiedPush {
        email: email.clone(),
        subject: subject.clone(),
    })
}

/// `exp` not passed, `iat` and `nbf` not in the future, all within [`LEEWAY_SECS`].
fn check_times(claims: &GoogleClaims, now: i64) -> Result<(), OidcError> {
    let exp = *required(&claims.exp, "exp")?;
    let iat = *required(&claims.iat, "iat")?;
    if exp.saturating_add(LEEWAY_SECS) < now {
        return Err(rejected(format!(
            "token expired at {} ({} s ago)",
            utc(exp),
            now.saturating_sub(exp)
        )));
    }
    if exp > now.saturating_add(MAX_LIFETIME_SECS + LEEWAY_SECS) {
        return Err(rejected(format!(
            "token expiry {} is implausibly far in the future",
            utc(exp)
        )));
    }
    if iat > now.saturating_add(LEEWAY_SECS) {
        return Err(rejected(format!(
            "token issued in the future, at {} ({} s from now)",
            utc(iat),
            iat.saturating_sub(now)
        )));
    }
    if iat > exp {
        return Err(rejected(format!(
            "token issued at {} after its expiry at {}",
            utc(iat),
            utc(exp)
        )));
    }
    if let Some(nbf) = claims.nbf
        && nbf > now.saturating_add(LEEWAY_SECS)
    {
        return Err(rejected(format!("token not valid before {}", utc(nbf))));
    }
    Ok(())
}

/// Unix seconds as an RFC 3339 UTC time (`2024-05-01T12:00:00Z`), for messages.
pub(crate) fn utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
