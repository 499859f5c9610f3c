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
use pg2bq_core::pg_connect::quote_ident;
use pg2bq_core::probe::freshness_probe;
use pg2bq_core::wire::TableId;
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
    publication: &str,
    state_schema: &str,
    timeout: Duration,
) -> Result<FreshnessReport> {
    let id = freshness_probe(state_schema);
    let target = layout.target(&id);
    let created = ensure_table(source, &id).await?;
    let added = ensure_published(source, &id, publication).await?;
    if created || added {
        round(source, bigquery, &id, &target, timeout).await?;
    }
    let elapsed = round(source, bigquery, &id, &target, timeout).await?;
    Ok(FreshnessReport {
        table: id.to_string(),
        bigquery_table: format!("{}.{}", target.dataset, target.table),
        freshness_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        set_up: created || added,
    })
}

fn quoted(id: &TableId) -> String {
    format!("{}.{}", quote_ident(&id.schema), quote_ident(&id.table))
}

/// Creates the probe table and its row if missing; returns whether the table was created.
async fn ensure_table(source: &Client, id: &TableId) -> Result<bool> {
    let exists: bool = source
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2)",
            &[&id.schema, &id.table],
        )
        .await
        .map_err(CliError::postgres(format!("looking up {id}")))?
        .get(0);
    let table = quoted(id);
    if !exists {
        source
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (id int PRIMARY KEY, probed_at timestamptz NOT NULL)"
            ))
            .await
            .map_err(CliError::postgres(format!(
                "creating the freshness probe {id} (the state schema exists once capture has \
                 started; this needs CREATE on it)"
            )))?;
    }
    source
        .batch_execute(&format!(
            "INSERT INTO {table} VALUES (1, clock_timestamp()) ON CONFLICT (id) DO NOTHING"
        ))
        .await
        .map_err(CliError::postgres(format!("adding the probe row to {id}")))?;
    Ok(!exists)
}

/// Adds the probe table to the publication if it is not in it; returns whether it was added.
async fn ensure_published(source: &Client, id: &TableId, publication: &str) -> Result<bool> {
    let published: bool = source
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables \
             WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)",
            &[&publication, &id.schema, &id.table],
        )
        .await
        .map_err(CliError::postgres(format!(
            "looking up publication {publication}"
        )))?
        .get(0);
    if published {
        return Ok(false);
    }
    let sql = format!(
        "ALTER PUBLICATION {} ADD TABLE {}",
        quote_ident(publication),
        quoted(id)
    );
    source
        .batch_execute(&sql)
        .await
        .map_err(CliError::postgres(format!(
            "adding {id} to publication {publication} (this needs the publication's owner)"
        )))?;
    Ok(true)
}

/// One probe: update the row, then poll its mirror until it shows the new value.
async fn round(
    source: &Client,
    bigquery: &RestClient,
    id: &TableId,
    target: &BqTableName,
    timeout: Duration,
) -> Result<Duration> {
    let sql = format!(
        "UPDATE {} SET probed_at = greatest(clock_timestamp(), probed_at + interval '1 microsecond') \
         WHERE id = 1 RETURNING (extract(epoch FROM probed_at) * 1000000)::bigint",
        quoted(id)
    );
    let micros: i64 = source
        .query_one(&sql, &[])
        .await
        .map_err(CliError::postgres(format!(
            "updating the probe row of {id}"
        )))?
        .get(0);
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
