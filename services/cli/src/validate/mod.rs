//! `pg2bq validate`: each source table against its BigQuery mirror, row by row.
//!
//! Every value is brought to one canonical text on both sides (see [`crate::canonical`]); the
//! rows of each side are compared as multisets, so order does not matter. A changed row shows as
//! one missing and one extra row.

use crate::canonical;
use crate::catalog::{SourceTable, publication_tables};
use crate::error::{CliError, Result};
use pg2bq_core::bq_naming::{DatasetLayout, column_name, quote_column};
use pg2bq_core::bq_types::{BqType, bq_type_for};
use pg2bq_core::pg_connect::quote_ident;
use pg2bq_writer::bigquery::rest::RestClient;
use serde::Serialize;
use std::collections::BTreeMap;
use tokio_postgres::{Client, SimpleQueryMessage};

/// How many differing rows a report shows per table.
const SHOWN_DIFFERENCES: usize = 5;

/// The comparison of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// `schema.table` in the source.
    pub table: String,
    /// `dataset.table` in BigQuery.
    pub bigquery_table: String,
    /// Rows in the source.
    pub source_rows: usize,
    /// Rows in BigQuery (`None` if the table does not exist or cannot be read).
    pub bigquery_rows: Option<usize>,
    /// Source rows BigQuery lacks.
    pub missing: usize,
    /// BigQuery rows the source lacks.
    pub extra: usize,
    /// A few of the differing rows, canonical form.
    pub examples: Vec<String>,
    /// Why BigQuery could not be read, if it could not.
    pub error: Option<String>,
}

impl TableReport {
    /// Whether BigQuery equals the source.
    pub fn matches(&self) -> bool {
        self.error.is_none()
            && self.missing == 0
            && self.extra == 0
            && self.bigquery_rows == Some(self.source_rows)
    }
}

/// Compares every table of the publication.
pub async fn validate(
    source: &Client,
    publication: &str,
    bigquery: &RestClient,
    layout: &DatasetLayout,
) -> Result<Vec<TableReport>> {
    let tables = publication_tables(source, publication).await?;
    if tables.is_empty() {
        return Err(CliError::Config(format!(
            "publication '{publication}' has no tables (or does not exist): nothing to validate"
        )));
    }
    let mut reports = Vec::with_capacity(tables.len());
    for table in &tables {
        reports.push(validate_table(source, bigquery, layout, table).await?);
    }
    Ok(reports)
}

async fn validate_table(
    source: &Client,
    bigquery: &RestClient,
    layout: &DatasetLayout,
    table: &SourceTable,
) -> Result<TableReport> {
    let target = layout.target(&table.id);
    let types: Vec<BqType> = table
        .columns
        .iter()
        .map(|c| bq_type_for(&c.pg_type, c.type_modifier))
        .collect();
    let source_rows = read_source(source, table, &types).await?;
    let mut report = TableReport {
        table: table.id.to_string(),
        bigquery_table: format!("{}.{}", target.dataset, target.table),
        source_rows: source_rows.len(),
        bigquery_rows: None,
        missing: 0,
        extra: 0,
        examples: Vec::new(),
        error: None,
    };
    let select: Vec<String> = table
        .columns
        .iter()
        .zip(&types)
        .map(|(c, t)| bigquery_expression(&column_name(&c.name), *t))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}",
        select.join(", "),
        target.quoted(bigquery.project())
    );
    let answer = match bigquery.query(&sql).await {
        Ok(answer) => answer,
        Err(e) => {
            report.error = Some(e.to_string());
            return Ok(report);
        }
    };
    let bigquery_rows: Vec<String> = answer
        .rows
        .iter()
        .map(|row| {
            let values: Vec<String> = row
                .iter()
                .zip(&types)
                .map(|(v, t)| canonical::from_bigquery(*t, v.as_deref()))
                .collect();
            values.join(" | ")
        })
        .collect();
    report.bigquery_rows = Some(bigquery_rows.len());
    diff(&source_rows, &bigquery_rows, &mut report);
    Ok(report)
}

/// Reads every row with the simple query protocol, so that each value comes in its type's
/// output form, exactly as the replication stream sends it (a `::text` cast would, for example,
/// strip the padding of `char(n)`).
async fn read_source(
    source: &Client,
    table: &SourceTable,
    types: &[BqType],
) -> Result<Vec<String>> {
    let columns: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let sql = format!(
        "SELECT {} FROM {}.{}",
        columns.join(", "),
        quote_ident(&table.id.schema),
        quote_ident(&table.id.table)
    );
    let messages = source
        .simple_query(&sql)
        .await
        .map_err(CliError::postgres(format!("reading {}", table.id)))?;
    Ok(messages
        .iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .map(|row| {
            let values: Vec<String> = table
                .columns
                .iter()
                .zip(types)
                .enumerate()
                .map(|(i, (c, t))| canonical::from_postgres(&c.pg_type, *t, row.get(i)))
                .collect();
            values.join(" | ")
        })
        .collect())
}

/// The select-list expression whose REST form [`canonical::from_bigquery`] reads.
fn bigquery_expression(column: &str, bq_type: BqType) -> String {
    let c = quote_column(column);
    match bq_type {
        BqType::Timestamp => format!("CAST(UNIX_MICROS({c}) AS STRING)"),
        BqType::Json => format!("TO_JSON_STRING({c})"),
        _ => c,
    }
}

fn diff(source: &[String], bigquery: &[String], report: &mut TableReport) {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for row in source {
        *counts.entry(row).or_default() += 1;
    }
    for row in bigquery {
        *counts.entry(row).or_default() -= 1;
    }
    for (row, count) in counts {
        if count > 0 {
            report.missing += count as usize;
        } else if count < 0 {
            report.extra += (-count) as usize;
        }
        if count != 0 && report.examples.len() < SHOWN_DIFFERENCES {
            let side = if count > 0 {
                "only in source"
            } else {
                "only in BigQuery"
            };
            report.examples.push(format!("{side}: {row}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_counts_missing_and_extra_as_multisets() {
        let mut report = TableReport {
            table: "t".into(),
            bigquery_table: "d.t".into(),
            source_rows: 3,
            bigquery_rows: Some(3),
            missing: 0,
            extra: 0,
            examples: vec![],
            error: None,
        };
        let source = ["a".to_owned(), "b".to_owned(), "b".to_owned()];
        let bigquery = ["b".to_owned(), "a".to_owned(), "c".to_owned()];
        diff(&source, &bigquery, &mut report);
        assert_eq!((report.missing, report.extra), (1, 1));
        assert!(!report.matches());
        assert_eq!(
            report.examples,
            vec!["only in source: b", "only in BigQuery: c"]
        );
    }
}
