//! Ending an explicit transaction by the outcome of the work done in it.

use tokio_postgres::Client;

/// Commits the open transaction of `client` if `commit`, otherwise rolls it back.
pub async fn end(client: &Client, commit: bool) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(if commit { "COMMIT" } else { "ROLLBACK" })
        .await
}
