//! The stream's protection (`PG2BQ_PROTECT` and its key) is recorded when the stream starts;
//! capture refuses to start with another one, since BigQuery would then hold clear and
//! protected values of a column side by side. `pg2bq backfill <table> --recreate` records a
//! new protection, with the table's BigQuery tables made again.

use crate::error::{CaptureError, Result};
use pg2bq_core::protect::Protection;
use pg2bq_source::state::StateStore;
use tokio_postgres::Client;

/// Records the protection of a stream that has none recorded; refuses, with the fix, one that
/// differs from the recorded one.
pub async fn check(client: &Client, state: &StateStore, protection: &Protection) -> Result<()> {
    let current = protection.fingerprint();
    let recorded = match state.recorded_protection(client).await? {
        Some((Some(recorded), _)) => recorded,
        // A stream that streamed before protection was recorded had none.
        Some((None, true)) => String::new(),
        Some((None, false)) | None => {
            state.record_protection(client, &current).await?;
            return Ok(());
        }
    };
    if recorded == current {
        return Ok(());
    }
    let describe = |p: &str| {
        if p.is_empty() {
            "no protection".to_owned()
        } else {
            format!("`{p}`")
        }
    };
    Err(CaptureError::Config(format!(
        "PG2BQ_PROTECT or its key changed since the stream started: it protected {}, now {}. \
         BigQuery would hold clear and protected values side by side. Put PG2BQ_PROTECT and \
         PG2BQ_PROTECT_KEY back as they were; or, to change protection, run `pg2bq backfill \
         <schema.table> --recreate` with the new settings for every table whose protection \
         changes (it records the new protection and copies the table into new BigQuery \
         tables), then start capture",
        describe(&recorded),
        describe(&current)
    )))
}
