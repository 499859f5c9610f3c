//! End-to-end freshness: a probe change made in the source and timed until BigQuery shows it.
//!
//! The probe is the one row of `<state schema>.freshness_probe` ([`pg2bq_core::probe`]). The
//! first probe creates the table and adds it to the publication (capture keeps it there), so it
//! needs the rights capture has: CREATE on the state schema and ownership of the publication.
//! Each probe sets the row's `probed_at` to the commit's clock and polls the mirror table until
//! it holds that value or a later one; the figure is the time from the commit's return to the
//! answer that showed it, so it includes capture, Pub/Sub, the writer and (in merge mode) the
//! MERGE into the mirror, plus at most one poll interval.

use crate::error::{CliError, Result};
use pg2bq_bigquery::rest::RestClient;
use pg2bq_core::bq_naming::{BqTableName, DatasetLayout};
use pg2bq_core::config::StreamArgs;
use pg2bq_source::publication;
use pg2bq_source::state::StateStore;
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// Pause between two looks at BigQuery.
const POLL: Duration = Duration::from_millis(200);

/// The measured freshness.
#[derive(Debug, Clone, Serialize)]
pub struct FreshnessReport {
    /// The probe table in the source.
    pub table: String,
    /// Its mirror, `dataset.table`.
    pub bigquery_table: String,
    /// Milliseconds from the probe's commit until BigQuery showed it.
    pub freshness_ms: u64,
    /// Whether this run created the probe table or added it to the publication; a first,
    /// unmeasured probe then created the BigQuery table.
    pub set_up: bool,
}

/// Makes a probe change and times its arrival in BigQuery, giving up after `timeout`.
pub async fn probe(
    source: &Client,
    bigquery: &RestClient,
    layout: &DatasetLayout,
    stream: &StreamArgs,
    timeout: Duration,
) -> Result<FreshnessReport> {
    let state = StateStore::new(&stream.state_schema, &stream.slot);
    let publication = &stream.publication;
    let id = state.probe_table();
    let target = layout.target(&id);
    let created = state.ensure_probe(source).await?;
    let added = publication::ensure_published(source, publication, &id).await?;
    if created || added {
        round(source, &state, bigquery, &target, timeout).await?;
    }
    let elapsed = round(source, &state, bigquery, &target, timeout).await?;
    Ok(FreshnessReport {
        table: id.to_string(),
        bigquery_table: format!("{}.{}", target.dataset, target.table),
        freshness_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        set_up: created || added,
    })
}

/// One probe: update the row, then poll its mirror until it shows the new value.
async fn round(
    source: &Client,
    state: &StateStore,
    bigquery: &RestClient,
    target: &BqTableName,
    timeout: Duration,
) -> Result<Duration> {
    let id = state.probe_table();
    let micros = state.touch_probe(source).await?;
    let committed = Instant::now();
    let check = format!(
        "SELECT COUNT(*) FROM {} WHERE id = 1 AND UNIX_MICROS(probed_at) >= {micros}",
        target.quoted(bigquery.project())
    );
    let mut last_error = None;
    loop {
        match bigquery.query(&check).await {
            Ok(answer) => {
                let count = answer
                    .rows
                    .first()
                    .and_then(|row| row.first().cloned().flatten());
                if count.is_some_and(|n| n != "0") {
                    return Ok(committed.elapsed());
                }
            }
            Err(e) => last_error = Some(e.to_string()),
        }
        if committed.elapsed() >= timeout {
            let detail = last_error
                .map(|e| format!(" (last BigQuery error: {e})"))
                .unwrap_or_default();
            return Err(CliError::Timeout(format!(
                "the freshness probe of {id} did not reach {}.{} within {} s: is capture \
                 streaming, and is the writer receiving and merging?{detail}",
                target.dataset,
                target.table,
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}
