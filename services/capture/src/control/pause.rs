//! The stream's desired state (`running` or `paused`), set by `pg2bq stream pause|resume` in the
//! state schema and followed by capture within a second. While paused, capture reads nothing
//! from the slot, so nothing is confirmed and the slot does not advance; resuming catches up.

use pg2bq_core::config::SourceArgs;
use pg2bq_core::pg_connect::connect_sql;
use pg2bq_source::state::StateStore;
use pg2bq_source::state::stream::DesiredState;
use std::time::Duration;
use tokio::sync::watch;
use tokio_postgres::Client;

/// Starts following the stream's desired state; the receiver reads `true` while paused.
pub fn follow(source: SourceArgs, state: StateStore) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut client: Option<Client> = None;
        loop {
            if client.as_ref().is_none_or(Client::is_closed) {
                client = connect_sql(&source, "pg2bq-capture-state").await.ok();
            }
            if let Some(sql) = &client
                && let Ok(Some(record)) = state.stream(sql).await
            {
                let paused = record.desired_state == DesiredState::Paused;
                if *tx.borrow() != paused {
                    tracing::info!(slot = state.slot(), paused, "stream desired state changed");
                    let _ = tx.send(paused);
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    rx
}
