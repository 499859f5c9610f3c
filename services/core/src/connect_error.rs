//! Failed connections to the source, with what to do about them.
//!
//! The drivers (tokio-postgres for SQL, pgwire-replication for the replication stream) word their
//! errors differently; both are read here for the common causes, each mapped to its fix.

use crate::config::SourceArgs;
use crate::error::CoreError;

/// The error for a failed connection to `source`; `kind` says which connection (`SQL`,
/// `replication`), `problem` is the driver's message.
pub fn connect_error(source: &SourceArgs, kind: &str, problem: String) -> CoreError {
    let fix = fix_for(source, &problem);
    CoreError::Connect {
        target: format!(
            "{} ({kind}, sslmode={})",
            source.describe(),
            source.tls.sslmode.as_str()
        ),
        problem,
        fix,
    }
}

/// An error's message followed by those of its causes (tokio-postgres keeps the server's words
/// and the TLS library's in the causes).
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

/// The fix for a connection failure, if its cause is recognised.
pub fn fix_for(source: &SourceArgs, problem: &str) -> Option<String> {
    let p = problem.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| p.contains(n));
    let root = source
        .tls
        .sslrootcert
        .as_ref()
        .map(|r| format!(" ({})", r.display()))
        .unwrap_or_default();
    let fix = if has(&[
        "does not support tls",
        "does not support ssl",
        "sslrequest rejected",
    ]) {
        "the server does not support SSL: set PG2BQ_PG_SSLMODE=disable (or prefer), or enable ssl on the server (ssl = on, ssl_cert_file, ssl_key_file)".to_owned()
    } else if has(&[
        "unknownissuer",
        "unknown issuer",
        "badsignature",
        "bad signature",
    ]) {
        format!(
            "certificate verify failed: the server's certificate is not signed by a CA in PG2BQ_PG_SSLROOTCERT{root}; set PG2BQ_PG_SSLROOTCERT to the server's CA"
        )
    } else if has(&["not valid for name", "notvalidforname"]) {
        format!(
            "certificate verify failed: the server's certificate does not name the host \"{}\"; set PG2BQ_PG_HOST to a name the certificate lists, or PG2BQ_PG_SSLMODE=verify-ca to check only that its CA signed it",
            source.host
        )
    } else if has(&["expired", "notvalidyet", "not valid yet"]) {
        "certificate verify failed: the server's certificate is outside its validity period; renew it on the server (or correct this machine's clock)".to_owned()
    } else if has(&["requires a valid client certificate"]) {
        "the server asks for a client certificate: set PG2BQ_PG_SSLCERT and PG2BQ_PG_SSLKEY to a certificate signed by a CA of the server's ssl_ca_file, and its key".to_owned()
    } else if has(&["certificate authentication failed"]) {
        format!(
            "the client certificate (PG2BQ_PG_SSLCERT) must name the user \"{}\" as its CN, or pg_ident.conf must map it to that user",
            source.user
        )
    } else if has(&["unknownca", "unknown ca", "alert: badcertificate"]) {
        "the server does not trust the client certificate: PG2BQ_PG_SSLCERT must be signed by a CA of the server's ssl_ca_file".to_owned()
    } else if has(&["pg_hba.conf"]) && has(&["no encryption"]) {
        "the server refuses unencrypted connections from this client: set PG2BQ_PG_SSLMODE=verify-full with PG2BQ_PG_SSLROOTCERT (or require)".to_owned()
    } else if has(&["pg_hba.conf"]) {
        "the server's pg_hba.conf has no line admitting this user, database and address (over SSL: a hostssl line); add one and reload PostgreSQL".to_owned()
    } else if has(&["password authentication failed"]) {
        "check PG2BQ_PG_USER and PG2BQ_PG_PASSWORD".to_owned()
    } else if has(&["connection refused"]) {
        "check PG2BQ_PG_HOST and PG2BQ_PG_PORT, and that PostgreSQL runs and listens there (listen_addresses)".to_owned()
    } else {
        return None;
    };
    Some(fix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::pg_tls::{SslMode, TlsArgs};

    fn source() -> SourceArgs {
        SourceArgs {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "app".into(),
            password: Secret::default(),
            password_secret: None,
            database: "db".into(),
            tls: TlsArgs {
                sslmode: SslMode::VerifyFull,
                sslrootcert: Some("ca.pem".into()),
                ..TlsArgs::default()
            },
        }
    }

    #[test]
    fn common_causes_get_their_fix() {
        let fix = |problem: &str| fix_for(&source(), problem).unwrap_or_default();
        assert!(
            fix("error performing TLS handshake: server does not support TLS")
                .contains("set PG2BQ_PG_SSLMODE=disable")
        );
        assert!(
            fix("tls error: TLS handshake failed: invalid peer certificate: UnknownIssuer")
                .contains("set PG2BQ_PG_SSLROOTCERT to the server's CA")
        );
        assert!(
            fix("invalid peer certificate: certificate not valid for name \"127.0.0.1\"")
                .contains("PG2BQ_PG_SSLMODE=verify-ca")
        );
        assert!(fix("db error: FATAL: pg_hba.conf rejects connection for host \"127.0.0.1\", user \"app\", database \"db\", no encryption").contains("PG2BQ_PG_SSLMODE=verify-full"));
        assert!(
            fix("FATAL: connection requires a valid client certificate")
                .contains("PG2BQ_PG_SSLCERT")
        );
        assert_eq!(fix_for(&source(), "something else"), None);
    }

    #[test]
    fn causes_are_appended_once() {
        let io = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        let outer = std::io::Error::new(std::io::ErrorKind::InvalidData, io);
        assert_eq!(
            with_causes(&outer),
            "invalid peer certificate: UnknownIssuer"
        );
    }

    #[test]
    fn the_error_names_target_mode_problem_and_fix() {
        let e = connect_error(&source(), "SQL", "server does not support TLS".into());
        assert_eq!(
            e.to_string(),
            "connecting to app@127.0.0.1:5432/db (SQL, sslmode=verify-full): server does not support TLS; the server does not support SSL: set PG2BQ_PG_SSLMODE=disable (or prefer), or enable ssl on the server (ssl = on, ssl_cert_file, ssl_key_file)"
        );
    }
}
