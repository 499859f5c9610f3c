//! `pg2bq validate`: each source table against its BigQuery mirror.
//!
//! A table is compared in one of two ways:
//! - **full** ([`full`]): both sides' rows are read and compared as multisets of canonical rows,
//!   which names the rows that differ. Exact for every type, but every row is downloaded.
//! - **checksum** ([`checksum`]): each database computes a row count and an order-independent
//!   checksum of canonical row texts ([`sql`]) per key bucket; nothing is downloaded. When the
//!   checksums differ and the differing buckets hold few rows, those rows are compared in full
//!   and named. JSON columns enter the checksum coarsely, and reports name them.
//!
//! Either way, the report counts the source values that the writer adjusts by a documented
//! rule (clamped dates and timestamps, NULL for numeric NaN, rounded decimals, ...; see
//! `services/core/docs/type-mapping.md`), per column and rule: such values are written as the
//! rule says and compare equal, so they are no difference, but the report says so.
//!
//! `auto` compares tables of up to `full_compare_max_rows` rows in full and checksums larger
//! ones. Either way can be limited to a deterministic sample of the keys, chosen identically on
//! both sides. The freshness probe ([`freshness`]) times a change through the pipeline.

pub mod checksum;
pub mod disagreement;
pub mod freshness;
pub mod full;
pub mod protected;
pub mod sql;

use crate::error::{CliError, Result};
use checksum::ChecksumSummary;
use full::AdjustedCounts;
use pg2bq_bigquery::rest::RestClient;
use pg2bq_core::bq_naming::{DatasetLayout, IS_DELETED_COLUMN};
use pg2bq_core::bq_values::Adjustment;
use pg2bq_core::column_rules::ColumnRules;
use pg2bq_core::probe::freshness_probe;
use pg2bq_core::protect::Protection;
use pg2bq_source::catalog::Catalog;
use serde::Serialize;
use sql::{ComparedTable, Dialect, RowFilter, Shape};
use std::collections::HashSet;
use std::io::Write;
use tokio_postgres::Client;

/// How tables are to be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Full up to --full-compare-max-rows rows, checksum for larger tables.
    Auto,
    /// Read every row of both sides and name the rows that differ (exact for every type).
    Full,
    /// Count and checksum inside each database, nothing downloaded; differing rows are named
    /// when few; JSON and array columns are compared coarsely (the report names them).
    Checksum,
}

/// How a table was compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Rows read from both sides and compared.
    Full,
    /// Counts and checksums computed in each database.
    Checksum,
}

/// What `validate` does.
#[derive(Debug, Clone)]
pub struct Options {
    /// How tables are compared.
    pub mode: Mode,
    /// Largest number of rows compared in full: the limit of `auto`, and of listing the rows of
    /// differing checksum buckets.
    pub full_compare_max_rows: u64,
    /// Compare only this percentage of each table's keys (None: all).
    pub sample_percent: Option<f64>,
    /// pg2bq's state schema (its freshness probe table is not compared).
    pub state_schema: String,
    /// Show progress on stderr.
    pub progress: bool,
    /// The columns and rows replicated of each table: excluded columns are not compared, and
    /// only the rows of a table's row filter are.
    pub columns: ColumnRules,
    /// The columns capture protects (`PG2BQ_PROTECT` and its key): compared protected.
    pub protection: Protection,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Auto,
            full_compare_max_rows: 100_000,
            sample_percent: None,
            state_schema: "pg2bq".to_owned(),
            progress: false,
            columns: ColumnRules::default(),
            protection: Protection::default(),
        }
    }
}

/// Source values of one column that the writer adjusts by one documented rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdjustedValues {
    /// The source column.
    pub column: String,
    /// The rule (its name, e.g. `clamped_to_max`).
    pub rule: Adjustment,
    /// How many of the compared source values it applies to.
    pub values: u64,
    /// What the rule writes.
    pub description: &'static str,
}

/// The comparison of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// `schema.table` in the source.
    pub table: String,
    /// `dataset.table` in BigQuery.
    pub bigquery_table: String,
    /// How the table was compared.
    pub method: Method,
    /// The percentage of keys compared, when sampled.
    pub sample_percent: Option<f64>,
    /// Rows compared in the source.
    pub source_rows: usize,
    /// Rows compared in BigQuery (`None` if the table does not exist or cannot be read).
    pub bigquery_rows: Option<usize>,
    /// Source rows BigQuery lacks (as far as rows were compared).
    pub missing: usize,
    /// BigQuery rows the source lacks (as far as rows were compared).
    pub extra: usize,
    /// Of the missing and extra rows, pairs with the same key: rows on both sides with
    /// different values (each also counts in `missing` and in `extra`). Tables with a key only.
    pub different: usize,
    /// The checksums, when the table was checksummed.
    pub checksum: Option<ChecksumSummary>,
    /// Columns the checksum compares only coarsely, with how.
    pub coarse_columns: Vec<String>,
    /// A few of the differing rows, canonical form.
    pub examples: Vec<String>,
    /// Source values (of the compared rows) the writer adjusts by a documented rule: they match
    /// as adjusted, and are listed here so that no adjustment goes unseen.
    pub adjusted: Vec<AdjustedValues>,
    /// Why BigQuery could not be compared, if it could not.
    pub error: Option<String>,
}

impl TableReport {
    fn new(shape: &Shape, options: &Options) -> Self {
        TableReport {
            table: shape.table.id.to_string(),
            bigquery_table: format!("{}.{}", shape.target.dataset, shape.target.table),
            method: Method::Full,
            sample_percent: options.sample_percent.filter(|p| *p < 100.0),
            source_rows: 0,
            bigquery_rows: None,
            missing: 0,
            extra: 0,
            different: 0,
            checksum: None,
            coarse_columns: Vec::new(),
            examples: Vec::new(),
            adjusted: Vec::new(),
            error: None,
        }
    }

    /// Names the columns of counted adjustments.
    fn set_adjusted(&mut self, shape: &Shape, counts: &AdjustedCounts) {
        self.adjusted = counts
            .iter()
            .map(|((i, rule), values)| AdjustedValues {
                column: shape
                    .table
                    .columns
                    .get(*i)
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                rule: *rule,
                values: *values,
                description: rule.description(),
            })
            .collect();
    }

    /// Whether BigQuery equals the source.
    pub fn matches(&self) -> bool {
        self.error.is_none()
            && self.missing == 0
            && self.extra == 0
            && self.bigquery_rows == Some(self.source_rows)
            && self.checksum.as_ref().is_none_or(ChecksumSummary::matches)
    }
}

/// Compares every table of the publication with the default options.
pub async fn validate(
    source: &Client,
    publication: &str,
    bigquery: &RestClient,
    layout: &DatasetLayout,
) -> Result<Vec<TableReport>> {
    validate_with(source, publication, bigquery, layout, &Options::default()).await
}

/// Compares every table of the publication (except the freshness probe).
pub async fn validate_with(
    source: &Client,
    publication: &str,
    bigquery: &RestClient,
    layout: &DatasetLayout,
    options: &Options,
) -> Result<Vec<TableReport>> {
    let probe = freshness_probe(&options.state_schema);
    let tables: Vec<ComparedTable> = Catalog::with_rules(options.columns.clone())
        .publication_tables(source, publication)
        .await?
        .iter()
        .filter(|t| t.id != probe)
        .map(ComparedTable::from)
        .collect();
    if tables.is_empty() {
        return Err(CliError::Config(format!(
            "publication '{publication}' has no tables (or does not exist): nothing to validate"
        )));
    }
    let filter = RowFilter::sampled(options.sample_percent);
    let count = tables.len();
    let mut reports = Vec::with_capacity(count);
    for (i, table) in tables.into_iter().enumerate() {
        if options.progress {
            eprint!("\r\x1b[Kvalidating {} ({}/{count})…", table.id, i + 1);
            let _ = std::io::stderr().flush();
        }
        let mut shape =
            Shape::new(table.clone(), layout.names(&table.id)).protected(&options.protection);
        reports.push(validate_table(source, bigquery, &mut shape, options, &filter).await?);
    }
    if options.progress {
        eprint!("\r\x1b[K");
    }
    Ok(reports)
}

async fn validate_table(
    source: &Client,
    bigquery: &RestClient,
    shape: &mut Shape,
    options: &Options,
    filter: &RowFilter,
) -> Result<TableReport> {
    let mut report = TableReport::new(shape, options);
    match bigquery_problem(bigquery, shape).await {
        Err(problem) => {
            report.error = Some(problem);
            return Ok(report);
        }
        Ok(soft_deletes) => shape.soft_deletes = soft_deletes,
    }
    let shape = &*shape;
    report.method = choose_method(source, shape, options).await?;
    match report.method {
        Method::Full => match full::compare(source, bigquery, shape, filter).await? {
            Ok(diff) => {
                report.source_rows = diff.source_rows;
                report.bigquery_rows = Some(diff.bigquery_rows);
                report.missing = diff.missing;
                report.extra = diff.extra;
                report.different = diff.different;
                report.examples = diff.examples;
                report.set_adjusted(shape, &diff.adjusted);
            }
            Err(e) => report.error = Some(e),
        },
        Method::Checksum => {
            compare_checksums(source, bigquery, shape, options, filter, &mut report).await?
        }
    }
    Ok(report)
}

/// Why the mirror cannot be compared (it is missing, lacks columns, or cannot be read), or
/// whether it keeps deleted rows, marked (soft deletes).
async fn bigquery_problem(
    bigquery: &RestClient,
    shape: &Shape,
) -> std::result::Result<bool, String> {
    let fields = match bigquery.table_schema(&shape.target).await {
        Err(e) => return Err(e.to_string()),
        Ok(None) => {
            return Err(format!(
                "table {}.{} does not exist in BigQuery",
                shape.target.dataset, shape.target.table
            ));
        }
        Ok(Some(fields)) => fields,
    };
    let present: HashSet<String> = fields.iter().map(|f| f.name.to_lowercase()).collect();
    let lacking: Vec<String> = shape
        .bq_columns
        .iter()
        .filter(|name| !present.contains(&name.to_lowercase()))
        .cloned()
        .collect();
    if !lacking.is_empty() {
        return Err(format!(
            "the BigQuery table lacks column(s) {}",
            lacking.join(", ")
        ));
    }
    Ok(present.contains(IS_DELETED_COLUMN))
}

/// `auto`: full if the rows to compare are at most `full_compare_max_rows`, counted up to that
/// limit (and, for a sample of a larger table, estimated from the planner's row count).
async fn choose_method(source: &Client, shape: &Shape, options: &Options) -> Result<Method> {
    match options.mode {
        Mode::Full => return Ok(Method::Full),
        Mode::Checksum => return Ok(Method::Checksum),
        Mode::Auto => {}
    }
    let limit = options.full_compare_max_rows;
    let sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM {} LIMIT {}) AS r",
        shape.from(Dialect::Postgres, ""),
        limit.saturating_add(1)
    );
    let rows: i64 = source
        .query_one(&sql, &[])
        .await
        .map_err(CliError::postgres(format!("counting {}", shape.table.id)))?
        .get(0);
    if rows as u64 <= limit {
        return Ok(Method::Full);
    }
    let Some(percent) = options.sample_percent.filter(|p| *p < 100.0) else {
        return Ok(Method::Checksum);
    };
    let estimate = shape.table.rows_estimated as f64;
    let sampled = estimate.max(rows as f64) * percent / 100.0;
    Ok(if sampled <= limit as f64 {
        Method::Full
    } else {
        Method::Checksum
    })
}

async fn compare_checksums(
    source: &Client,
    bigquery: &RestClient,
    shape: &Shape,
    options: &Options,
    filter: &RowFilter,
    report: &mut TableReport,
) -> Result<()> {
    report.coarse_columns = shape.coarse_columns();
    let source_buckets = checksum::source_buckets(source, shape, filter).await?;
    let adjusted = checksum::source_adjustments(source, shape, filter).await?;
    report.set_adjusted(shape, &adjusted);
    let bigquery_buckets = match checksum::bigquery_buckets(bigquery, shape, filter).await {
        Ok(buckets) => buckets,
        Err(e) => {
            report.error = Some(e);
            return Ok(());
        }
    };
    let (source_rows, source_sum) = checksum::fingerprint(&source_buckets);
    let (bigquery_rows, bigquery_sum) = checksum::fingerprint(&bigquery_buckets);
    report.source_rows = source_rows as usize;
    report.bigquery_rows = Some(bigquery_rows as usize);
    let (buckets, rows) = checksum::differing(&source_buckets, &bigquery_buckets);
    let mut summary = ChecksumSummary {
        source: source_sum,
        bigquery: bigquery_sum,
        differing_buckets: buckets.len(),
        rows_listed: false,
    };
    if !buckets.is_empty() && rows <= options.full_compare_max_rows {
        let narrowed = RowFilter {
            sample: filter.sample,
            buckets: Some(buckets),
        };
        match full::compare(source, bigquery, shape, &narrowed).await? {
            Ok(diff) => {
                summary.rows_listed = true;
                report.missing = diff.missing;
                report.extra = diff.extra;
                report.different = diff.different;
                report.examples = diff.examples;
                if diff.missing == 0 && diff.extra == 0 {
                    report.examples.push(
                        "the rows of the differing buckets compare equal in full: the two \
                         databases' canonical forms of some value disagree"
                            .to_owned(),
                    );
                    report
                        .examples
                        .extend(disagreement::find(source, bigquery, shape, &narrowed).await?);
                }
            }
            Err(e) => report.error = Some(e),
        }
    }
    report.checksum = Some(summary);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> TableReport {
        TableReport {
            table: "t".into(),
            bigquery_table: "d.t".into(),
            method: Method::Checksum,
            sample_percent: None,
            source_rows: 3,
            bigquery_rows: Some(3),
            missing: 0,
            extra: 0,
            different: 0,
            checksum: None,
            coarse_columns: vec![],
            examples: vec![],
            adjusted: vec![],
            error: None,
        }
    }

    #[test]
    fn a_report_matches_only_when_counts_rows_and_checksums_agree() {
        assert!(report().matches());
        let mut differing = report();
        differing.checksum = Some(ChecksumSummary {
            source: "a".into(),
            bigquery: "b".into(),
            differing_buckets: 1,
            rows_listed: false,
        });
        assert!(!differing.matches());
        let mut counted = report();
        counted.bigquery_rows = Some(2);
        assert!(!counted.matches());
        let mut unreadable = report();
        unreadable.error = Some("no table".into());
        assert!(!unreadable.matches());
        let mut adjusted = report();
        adjusted.adjusted.push(AdjustedValues {
            column: "d".into(),
            rule: Adjustment::InfinityToMax,
            values: 2,
            description: Adjustment::InfinityToMax.description(),
        });
        assert!(adjusted.matches(), "adjusted values are no difference");
    }
}
