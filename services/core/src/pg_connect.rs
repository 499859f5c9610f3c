//! Ordinary SQL connections to the source, with pg2bq's session settings.

use crate::config::SourceArgs;
use crate::pg_types::session_options;
use tokio_postgres::{Client, NoTls};

/// Opens a SQL connection; the connection task runs in the background.
pub async fn connect_sql(
    source: &SourceArgs,
    application_name: &str,
) -> Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&source.host)
        .port(source.port)
        .user(&source.user)
        .dbname(&source.database)
        .application_name(application_name)
        .options(session_options());
    if !source.password.expose().is_empty() {
        config.password(source.password.expose());
    }
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "SQL connection to the source closed");
        }
    });
    Ok(client)
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
