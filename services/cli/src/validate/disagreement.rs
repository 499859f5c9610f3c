//! When checksums differ although the rows behind them compare equal in full, the two
//! databases' canonical SQL forms ([`super::sql`]) disagree on some value. This reads both
//! sides' canonical forms of those rows and names the columns and values that disagree, so the
//! report points at the normalisation instead of at the data.

use super::full::SHOWN_DIFFERENCES;
use super::sql::{Dialect, RowFilter, Shape, canonical_rows_query};
use crate::error::{CliError, Result};
use pg2bq_bigquery::rest::RestClient;
use std::collections::BTreeMap;
use tokio_postgres::{Client, SimpleQueryMessage};

/// Canonical values per key hash.
type Rows = BTreeMap<String, Vec<Option<String>>>;

/// Up to [`SHOWN_DIFFERENCES`] descriptions of values whose canonical forms differ.
pub async fn find(
    source: &Client,
    bigquery: &RestClient,
    shape: &Shape,
    filter: &RowFilter,
) -> Result<Vec<String>> {
    let columns = shape.table.columns.len();
    let sql = canonical_rows_query(Dialect::Postgres, shape, "", filter);
    let messages = source
        .simple_query(&sql)
        .await
        .map_err(CliError::postgres(format!(
            "reading canonical values of {}",
            shape.table.id
        )))?;
    let mut postgres = Rows::new();
    for message in &messages {
        if let SimpleQueryMessage::Row(row) = message {
            let values: Vec<Option<String>> = (0..=columns)
                .map(|i| row.get(i).map(str::to_owned))
                .collect();
            insert(&mut postgres, values);
        }
    }
    let sql = canonical_rows_query(Dialect::BigQuery, shape, bigquery.project(), filter);
    let answer = match bigquery.query(&sql).await {
        Ok(answer) => answer,
        Err(e) => return Ok(vec![format!("reading BigQuery's canonical values: {e}")]),
    };
    let mut bigquery_rows = Rows::new();
    for row in answer.rows {
        insert(&mut bigquery_rows, row);
    }
    Ok(describe(shape, &postgres, &bigquery_rows))
}

fn insert(rows: &mut Rows, mut values: Vec<Option<String>>) {
    if values.is_empty() {
        return;
    }
    let key = values.remove(0).unwrap_or_default();
    rows.entry(key).or_insert(values);
}

fn describe(shape: &Shape, postgres: &Rows, bigquery: &Rows) -> Vec<String> {
    let key_positions = shape.key_positions();
    let mut found = Vec::new();
    for (hash, source_values) in postgres {
        let Some(bigquery_values) = bigquery.get(hash) else {
            continue;
        };
        let key: Vec<String> = key_positions
            .iter()
            .map(|i| {
                let value = source_values.get(*i).cloned().flatten();
                format!(
                    "{}={}",
                    shape.table.columns[*i].name,
                    value.unwrap_or_default()
                )
            })
            .collect();
        for (i, (column, bq_type)) in shape.columns().enumerate() {
            let (a, b) = (source_values.get(i), bigquery_values.get(i));
            if a != b && found.len() < SHOWN_DIFFERENCES {
                found.push(format!(
                    "canonical forms differ: column {} ({bq_type}) at {}: PostgreSQL {:?}, BigQuery {:?}",
                    column.name,
                    key.join(", "),
                    a.cloned().flatten(),
                    b.cloned().flatten()
                ));
            }
        }
    }
    found
}
