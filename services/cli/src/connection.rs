//! The connection checks of `pg2bq profile test source`: reaching the server, and whether the
//! session is encrypted (as the server sees it, in `pg_stat_ssl`).

use crate::error::{CliError, Result};
use crate::profile::{Check, Outcome};
use pg2bq_core::CoreError;
use pg2bq_core::config::SourceArgs;
use pg2bq_core::pg_tls::{TlsPlan, Verify};
use tokio_postgres::Client;

/// The fix when a connection fails for a cause that is not recognised.
const GENERIC_FIX: &str = "check PG2BQ_PG_HOST, PG2BQ_PG_PORT, PG2BQ_PG_USER, PG2BQ_PG_DATABASE and PG2BQ_PG_PASSWORD, the PG2BQ_PG_SSL* settings, and that the server accepts this client (pg_hba.conf, firewall)";

/// The check of a connection that could not be opened.
pub fn connection_failed(error: &CoreError) -> Check {
    let (detail, fix) = match error {
        CoreError::Connect {
            target,
            problem,
            fix,
        } => (
            format!("cannot connect to {target}: {problem}"),
            Some(fix.clone().unwrap_or_else(|| GENERIC_FIX.to_owned())),
        ),
        // Settings errors carry their fix in the message.
        other => (other.to_string(), None),
    };
    Check {
        name: "connection".into(),
        outcome: Outcome::Fail,
        detail,
        fix,
    }
}

/// What the server reports about the session's TLS.
#[derive(Debug, Clone, Default)]
pub struct SessionTls {
    /// Whether the session is encrypted.
    pub encrypted: bool,
    /// The TLS version, e.g. `TLSv1.3`.
    pub version: Option<String>,
    /// The cipher suite.
    pub cipher: Option<String>,
}

/// Reads the session's TLS state from `pg_stat_ssl`.
pub async fn session_tls(sql: &Client) -> Result<SessionTls> {
    let row = sql
        .query_opt(
            "SELECT ssl, version, cipher FROM pg_catalog.pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(CliError::postgres("reading pg_stat_ssl"))?;
    Ok(row
        .map(|r| SessionTls {
            encrypted: r.get(0),
            version: r.get(1),
            cipher: r.get(2),
        })
        .unwrap_or_default())
}

/// Evaluates the session's encryption against the settings that opened it.
pub fn encryption_check(source: &SourceArgs, tls: &SessionTls) -> Check {
    let check = |outcome, detail: String, fix: Option<&str>| Check {
        name: "encryption".into(),
        outcome,
        detail,
        fix: fix.map(str::to_owned),
    };
    let mode = source.tls.sslmode.as_str();
    if tls.encrypted {
        let how = format!(
            "TLS ({}, {})",
            tls.version.as_deref().unwrap_or("?"),
            tls.cipher.as_deref().unwrap_or("?")
        );
        return match source.tls.plan(&source.host) {
            Ok(TlsPlan::Tls {
                verify: Verify::ChainAndHost,
                ..
            }) => check(
                Outcome::Pass,
                format!(
                    "{how}; the server's certificate is signed by PG2BQ_PG_SSLROOTCERT's CA and names the host (sslmode={mode})"
                ),
                None,
            ),
            Ok(TlsPlan::Tls {
                verify: Verify::Chain,
                ..
            }) => check(
                Outcome::Pass,
                format!(
                    "{how}; the server's certificate is signed by PG2BQ_PG_SSLROOTCERT's CA (sslmode={mode}; the host name is not checked)"
                ),
                None,
            ),
            _ => check(
                Outcome::Warn,
                format!("{how}, but the server's certificate is not checked (sslmode={mode})"),
                Some(VERIFY_FIX),
            ),
        };
    }
    if source.host.starts_with('/') {
        check(
            Outcome::Pass,
            "not encrypted: a Unix socket (local)".into(),
            None,
        )
    } else if is_loopback(&source.host) {
        check(
            Outcome::Pass,
            format!("not encrypted: a local connection to {}", source.host),
            None,
        )
    } else {
        check(
            Outcome::Warn,
            format!(
                "not encrypted (sslmode={mode}): passwords and rows cross the network in the clear"
            ),
            Some(
                "enable ssl on the server, then set PG2BQ_PG_SSLMODE=verify-full and PG2BQ_PG_SSLROOTCERT to the server's CA (Cloud SQL: or connect through the Cloud SQL Auth Proxy)",
            ),
        )
    }
}

const VERIFY_FIX: &str = "set PG2BQ_PG_SSLMODE=verify-full and PG2BQ_PG_SSLROOTCERT to the PEM file of the server's CA (Cloud SQL: the instance's server CA certificate)";

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg2bq_core::config::Secret;
    use pg2bq_core::pg_tls::{SslMode, TlsArgs};

    fn source(host: &str, sslmode: SslMode, root: bool) -> SourceArgs {
        SourceArgs {
            host: host.into(),
            port: 5432,
            user: "u".into(),
            password: Secret::default(),
            password_secret: None,
            database: "d".into(),
            tls: TlsArgs {
                sslmode,
                sslrootcert: root.then(|| "ca.pem".into()),
                ..TlsArgs::default()
            },
        }
    }

    #[test]
    fn encryption_is_judged_by_what_was_checked() {
        let tls = SessionTls {
            encrypted: true,
            version: Some("TLSv1.3".into()),
            cipher: Some("TLS_AES_256_GCM_SHA384".into()),
        };
        let verified = encryption_check(&source("db", SslMode::VerifyFull, true), &tls);
        assert_eq!(verified.outcome, Outcome::Pass);
        assert!(
            verified
                .detail
                .starts_with("TLS (TLSv1.3, TLS_AES_256_GCM_SHA384)")
        );
        let unchecked = encryption_check(&source("db", SslMode::Require, false), &tls);
        assert_eq!(unchecked.outcome, Outcome::Warn);
        let plain = SessionTls::default();
        assert_eq!(
            encryption_check(&source("db.internal", SslMode::Prefer, false), &plain).outcome,
            Outcome::Warn
        );
        assert_eq!(
            encryption_check(&source("127.0.0.1", SslMode::Prefer, false), &plain).outcome,
            Outcome::Pass
        );
    }
}
