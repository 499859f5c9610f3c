//! Replication connections to the source (the streaming one and the backfill's snapshot
//! sessions), with the source's TLS settings.

use crate::error::Result;
use pg2bq_core::config::SourceArgs;
use pg2bq_core::connect_error::{connect_error, with_causes};
use pg2bq_core::pg_tls::{TlsPlan, Verify};
use pg2bq_core::pg_tls_probe;
use pg2bq_core::pg_types::CLIENT_ENCODING_STATEMENT;
use pgwire_replication::{PgWireError, ReplicationClient, ReplicationConfig, SslMode, TlsConfig};

/// What the session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// START_REPLICATION from the configured slot; returned once the server streams.
    Streaming,
    /// Replication commands first (`simple_query`); returned once authenticated.
    Gated,
}

/// The connection settings of `source` for `slot` and `publication`, TLS included.
pub fn replication_config(
    source: &SourceArgs,
    slot: &str,
    publication: &str,
    application_name: &str,
) -> ReplicationConfig {
    ReplicationConfig::new(
        source.host.clone(),
        source.user.clone(),
        source.password.expose().to_owned(),
        source.database.clone(),
        slot.to_owned(),
        publication.to_owned(),
    )
    .with_port(source.port)
    .with_application_name(application_name)
}

/// Opens a replication session with the source's TLS settings. With `sslmode=prefer`, a failed
/// handshake is retried without TLS, as libpq does. Errors name the problem and the fix; a
/// settings error (a missing CA file, say) is a configuration error.
pub async fn open(
    source: &SourceArgs,
    config: ReplicationConfig,
    session: Session,
) -> Result<ReplicationClient> {
    let plan = source.tls.plan(&source.host)?;
    let tls = tls_config(source, plan).await?;
    let fallback = matches!(
        plan,
        TlsPlan::Tls {
            fallback_to_plain: true,
            ..
        }
    );
    let outcome = match attempt(config.clone().with_tls(tls), session).await {
        Err(e) if fallback && is_handshake_failure(&e) => {
            tracing::debug!(error = %e, "TLS handshake failed; sslmode=prefer retries without TLS");
            attempt(config.with_tls(TlsConfig::disabled()), session).await
        }
        other => other,
    };
    outcome.map_err(|e| connect_error(source, "replication", with_causes(&e)).into())
}

async fn attempt(
    config: ReplicationConfig,
    session: Session,
) -> std::result::Result<ReplicationClient, PgWireError> {
    match session {
        Session::Streaming => {
            let mut client = ReplicationClient::connect_gated(config).await?;
            // Before START_REPLICATION: on a SQL_ASCII database, text that is not UTF-8 must
            // reach capture as bytes instead of stopping the stream.
            client.simple_query(CLIENT_ENCODING_STATEMENT).await?;
            client.start().await?;
            client.wait_started().await?;
            Ok(client)
        }
        Session::Gated => {
            let mut client = ReplicationClient::connect_gated(config).await?;
            // The first command completes the connection and authentication (or reports why not).
            client.identify_system().await?;
            Ok(client)
        }
    }
}

/// pgwire-replication's TLS settings for `plan`. The certificate and key files are read here
/// first (and dropped) so that a wrong file is reported as a settings error, in pg2bq's words.
async fn tls_config(source: &SourceArgs, plan: TlsPlan) -> Result<TlsConfig> {
    let TlsPlan::Tls {
        fallback_to_plain,
        verify,
    } = plan
    else {
        return Ok(TlsConfig::disabled());
    };
    source.tls.client_config(verify)?;
    let mut tls = TlsConfig {
        mode: match verify {
            Verify::Nothing if fallback_to_plain => SslMode::Prefer,
            Verify::Nothing => SslMode::Require,
            Verify::Chain => SslMode::VerifyCa,
            Verify::ChainAndHost => SslMode::VerifyFull,
        },
        ca_pem_path: source.tls.sslrootcert.clone(),
        ..TlsConfig::default()
    };
    if let (Some(cert), Some(key)) = (&source.tls.sslcert, &source.tls.sslkey) {
        tls = tls.with_client_cert(cert, key);
    }
    // An address as host: rustls checks it against the certificate's IP names (the crate
    // refuses verify-full with an address unless the server name is given explicitly).
    if source.host.parse::<std::net::IpAddr>().is_ok() {
        tls = tls.with_sni_hostname(source.host.clone());
    }
    // The client checks the name even in verify-ca (see `pg_tls_probe`): give it one that the
    // certificate lists.
    if verify == Verify::Chain
        && let Some(name) = pg_tls_probe::name_to_check(source).await?
    {
        tls = tls.with_sni_hostname(name);
    }
    Ok(tls)
}

fn is_handshake_failure(error: &PgWireError) -> bool {
    matches!(error, PgWireError::Tls(message) if message.starts_with("TLS handshake failed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg2bq_core::config::Secret;
    use pg2bq_core::pg_tls::{SslMode as Mode, TlsArgs};

    fn source(host: &str, sslmode: Mode) -> SourceArgs {
        SourceArgs {
            host: host.into(),
            port: 5432,
            user: "u".into(),
            password: Secret::default(),
            password_secret: None,
            database: "d".into(),
            tls: TlsArgs {
                sslmode,
                ..TlsArgs::default()
            },
        }
    }

    async fn tls(host: &str, mode: Mode) -> TlsConfig {
        let s = source(host, mode);
        tls_config(&s, s.tls.plan(host).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn modes_map_onto_the_replication_client() {
        assert_eq!(tls("db", Mode::Disable).await.mode, SslMode::Disable);
        assert_eq!(tls("db", Mode::Prefer).await.mode, SslMode::Prefer);
        assert_eq!(tls("db", Mode::Require).await.mode, SslMode::Require);
        assert_eq!(tls("/run/pg", Mode::Require).await.mode, SslMode::Disable);
        assert_eq!(
            tls("10.0.0.5", Mode::Require).await.sni_hostname.as_deref(),
            Some("10.0.0.5")
        );
    }
}
