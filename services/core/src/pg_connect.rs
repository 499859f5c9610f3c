//! Ordinary SQL connections to the source, with pg2bq's session settings and TLS.

use crate::config::SourceArgs;
use crate::connect_error::{connect_error, with_causes};
use crate::error::CoreError;
use crate::pg_tls::TlsPlan;
use crate::pg_types::{CLIENT_ENCODING_STATEMENT, NEWER_SESSION_SETTINGS, session_options};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Config, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Opens a SQL connection with the source's TLS settings and pg2bq's session settings
/// ([`crate::pg_types::SESSION_SETTINGS`]); the connection task runs in the background. Errors
/// name the connection, the problem and, when recognised, the fix.
pub async fn connect_sql(source: &SourceArgs, application_name: &str) -> Result<Client, CoreError> {
    let client = connect(source, application_name, true).await?;
    // Settings the oldest supported servers do not know: set where the server knows them.
    let (names, values): (Vec<&str>, Vec<&str>) = NEWER_SESSION_SETTINGS.iter().copied().unzip();
    client
        .execute(
            "SELECT pg_catalog.set_config(s.name, v.value, false) FROM pg_catalog.pg_settings s \
             JOIN unnest($1::text[], $2::text[]) AS v(name, value) ON v.name = s.name",
            &[&names, &values],
        )
        .await
        .map_err(|e| {
            connect_error(
                source,
                "SQL",
                format!("setting pg2bq's session settings: {}", with_causes(&e)),
            )
        })?;
    client
        .batch_execute(CLIENT_ENCODING_STATEMENT)
        .await
        .map_err(|e| {
            connect_error(
                source,
                "SQL",
                format!("setting the client encoding: {}", with_causes(&e)),
            )
        })?;
    Ok(client)
}

/// Opens a SQL connection with the source's TLS settings but without pg2bq's session settings:
/// the session sees the database's, role's and server's own defaults, as applications do. For
/// checks of those defaults only (`pg2bq profile test source`); never read values through it.
pub async fn connect_sql_with_database_defaults(
    source: &SourceArgs,
    application_name: &str,
) -> Result<Client, CoreError> {
    connect(source, application_name, false).await
}

async fn connect(
    source: &SourceArgs,
    application_name: &str,
    pinned: bool,
) -> Result<Client, CoreError> {
    let mut config = Config::new();
    config
        .host(&source.host)
        .port(source.port)
        .user(&source.user)
        .dbname(&source.database)
        .application_name(application_name);
    if pinned {
        config.options(session_options());
    }
    if !source.password.expose().is_empty() {
        config.password(source.password.expose());
    }
    let connected = match source.tls.plan(&source.host)? {
        TlsPlan::Plain => open(config.ssl_mode(SslMode::Disable), NoTls).await,
        TlsPlan::Tls {
            fallback_to_plain,
            verify,
        } => {
            let tls = MakeRustlsConnect::new(source.tls.client_config(verify)?);
            let mode = if fallback_to_plain {
                SslMode::Prefer
            } else {
                SslMode::Require
            };
            match open(config.ssl_mode(mode), tls).await {
                // libpq's prefer: a failed handshake is retried without TLS.
                Err(e) if fallback_to_plain && is_handshake_failure(&e) => {
                    tracing::debug!(error = %e, "TLS handshake failed; sslmode=prefer retries without TLS");
                    open(config.ssl_mode(SslMode::Disable), NoTls).await
                }
                other => other,
            }
        }
    };
    connected.map_err(|e| connect_error(source, "SQL", with_causes(&e)))
}

async fn open<T>(config: &Config, tls: T) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "SQL connection to the source closed");
        }
    });
    Ok(client)
}

/// tokio-postgres reports a failed TLS handshake (not a refusal) as this kind of error.
fn is_handshake_failure(error: &tokio_postgres::Error) -> bool {
    let text = with_causes(error);
    text.starts_with("error performing TLS handshake") && !text.contains("does not support TLS")
}

/// Quotes an identifier for PostgreSQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_identifiers() {
        assert_eq!(super::quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
