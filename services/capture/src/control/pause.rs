//! The stream's desired state (`running` or `paused`), set by `pg2bq stream pause|resume` in the
//! state schema and followed by capture within a second. While paused, capture reads nothing
//! from the slot, so nothing is confirmed and the slot does not advance; resuming catches up.

use pg2bq_core::config::SourceArgs;
use pg2bq_core::pg_connect::{connect_sql, quote_ident};
use std::time::Duration;
use tokio::sync::watch;
use tokio_postgres::Client;

/// Starts following the desired state of `slot`; the receiver reads `true` while paused.
pub fn follow(source: SourceArgs, state_schema: &str, slot: &str) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let sql = format!(
        "SELECT desired_state = 'paused' FROM {}.slots WHERE slot_name = $1",
        quote_ident(state_schema)
    );
    let slot = slot.to_owned();
    tokio::spawn(async move {
        let mut client: Option<Client> = None;
        loop {
            if client.as_ref().is_none_or(Client::is_closed) {
                client = connect_sql(&source, "pg2bq-capture-state").await.ok();
            }
            if let Some(sql_client) = &client
                && let Ok(Some(row)) = sql_client.query_opt(sql.as_str(), &[&slot]).await
            {
                let paused: bool = row.get(0);
                if *tx.borrow() != paused {
                    tracing::info!(slot, paused, "stream desired state changed");
                    let _ = tx.send(paused);
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    rx
}
