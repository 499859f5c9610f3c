//! The full comparison: every row of both sides (or of a sample, or of some key buckets) is read,
//! brought to one canonical text per value (see [`crate::canonical`]), and the two sides are
//! compared as multisets, so order does not matter. A changed row shows as one missing and one
//! extra row, and differing rows are named; for a table with a key, the missing and extra rows
//! that share a key are also counted as rows of different values ([`RowDiff::different`]).

use super::sql::{Dialect, RowFilter, Shape};
use crate::canonical;
use crate::error::{CliError, Result};
use pg2bq_bigquery::rest::RestClient;
use pg2bq_core::bq_naming::quote_column;
use pg2bq_core::bq_types::BqType;
use pg2bq_core::bq_values::Adjustment;
use pg2bq_core::pg_connect::quote_ident;
use std::collections::BTreeMap;
use tokio_postgres::{Client, SimpleQueryMessage};

/// How many differing rows a report shows per table.
pub const SHOWN_DIFFERENCES: usize = 5;

/// Source values the writer adjusts by a documented rule, per column position and rule.
pub type AdjustedCounts = BTreeMap<(usize, Adjustment), u64>;

/// The outcome of comparing rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowDiff {
    /// Rows read from the source.
    pub source_rows: usize,
    /// Rows read from BigQuery.
    pub bigquery_rows: usize,
    /// Source rows BigQuery lacks.
    pub missing: usize,
    /// BigQuery rows the source lacks.
    pub extra: usize,
    /// Of the missing and extra rows, pairs with the same key (a table with a key only): rows
    /// present on both sides with different values. Each also counts once in `missing` and
    /// once in `extra`.
    pub different: usize,
    /// A few of the differing rows, canonical form.
    pub examples: Vec<String>,
    /// Source values of the compared rows that the writer adjusts by a documented rule.
    pub adjusted: AdjustedCounts,
}

/// Reads the rows `filter` selects on both sides and compares them. A source failure is an
/// error; a BigQuery failure is returned as `Ok(Err(why))`, for the report.
pub async fn compare(
    source: &Client,
    bigquery: &RestClient,
    shape: &Shape,
    filter: &RowFilter,
) -> Result<std::result::Result<RowDiff, String>> {
    let (source_rows, adjusted) = read_source(source, shape, filter).await?;
    let bigquery_rows = match read_bigquery(bigquery, shape, filter).await {
        Ok(rows) => rows,
        Err(e) => return Ok(Err(e)),
    };
    let key = shape.table.columns.iter().any(|c| c.key).then(|| {
        shape
            .table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.key)
            .map(|(i, _)| i)
            .collect::<Vec<usize>>()
    });
    let source_rows = joined(source_rows, key.as_deref());
    let bigquery_rows = joined(bigquery_rows, key.as_deref());
    Ok(Ok(RowDiff {
        adjusted,
        ..diff(&source_rows, &bigquery_rows)
    }))
}

/// Reads the rows with the simple query protocol, so that each value comes in its type's
/// output form, exactly as the replication stream sends it (a `::text` cast would, for example,
/// strip the padding of `char(n)`). Also counts the values the writer adjusts by a rule.
async fn read_source(
    source: &Client,
    shape: &Shape,
    filter: &RowFilter,
) -> Result<(Vec<Vec<String>>, AdjustedCounts)> {
    let columns: Vec<String> = shape
        .table
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}{}",
        columns.join(", "),
        shape.from(Dialect::Postgres, ""),
        filter.where_clause(Dialect::Postgres, shape)
    );
    let messages = source
        .simple_query(&sql)
        .await
        .map_err(CliError::postgres(format!("reading {}", shape.table.id)))?;
    let mut adjusted = AdjustedCounts::new();
    let rows = messages
        .iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .map(|row| {
            let values: Vec<String> = shape
                .columns()
                .enumerate()
                .map(|(i, (c, t))| {
                    // A protected value is compared as the text capture publishes for it.
                    let protected = shape
                        .protection
                        .as_ref()
                        .and_then(|p| p.protect(i, row.get(i)?.as_bytes()));
                    if protected.is_some() || shape.is_protected(i) {
                        return canonical::from_postgres("text", t, protected.as_deref());
                    }
                    let (value, rule) =
                        canonical::from_postgres_adjusted(&c.pg_type, t, row.get(i));
                    if let Some(rule) = rule {
                        *adjusted.entry((i, rule)).or_default() += 1;
                    }
                    value
                })
                .collect();
            values
        })
        .collect();
    Ok((rows, adjusted))
}

async fn read_bigquery(
    bigquery: &RestClient,
    shape: &Shape,
    filter: &RowFilter,
) -> std::result::Result<Vec<Vec<String>>, String> {
    let select: Vec<String> = shape
        .bq_columns
        .iter()
        .zip(shape.types.iter().copied())
        .map(|(name, t)| bigquery_expression(name, t))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}{}",
        select.join(", "),
        shape.from(Dialect::BigQuery, bigquery.project()),
        filter.where_clause(Dialect::BigQuery, shape)
    );
    let answer = bigquery.query(&sql).await.map_err(|e| e.to_string())?;
    Ok(answer
        .rows
        .iter()
        .map(|row| {
            let values: Vec<String> = row
                .iter()
                .zip(&shape.types)
                .map(|(v, t)| canonical::from_bigquery(*t, v.as_deref()))
                .collect();
            values
        })
        .collect())
}

/// A canonical row: its values joined, and its key's values (when the table has a key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalRow {
    /// The values, joined by ` | `.
    pub text: String,
    /// The key's values, joined by a character no canonical value contains unescaped.
    pub key: Option<String>,
}

/// The rows as [`CanonicalRow`]s, with the key at `key` (positions), if given.
fn joined(rows: Vec<Vec<String>>, key: Option<&[usize]>) -> Vec<CanonicalRow> {
    rows.into_iter()
        .map(|values| CanonicalRow {
            key: key.map(|positions| {
                positions
                    .iter()
                    .map(|&i| values.get(i).map(String::as_str).unwrap_or_default())
                    .collect::<Vec<&str>>()
                    .join("\u{1f}")
            }),
            text: values.join(" | "),
        })
        .collect()
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

/// Compares two multisets of canonical rows; rows of the same key left on both sides count as
/// [`RowDiff::different`].
pub fn diff(source: &[CanonicalRow], bigquery: &[CanonicalRow]) -> RowDiff {
    let mut result = RowDiff {
        source_rows: source.len(),
        bigquery_rows: bigquery.len(),
        ..RowDiff::default()
    };
    let mut counts: BTreeMap<&str, (i64, Option<&str>)> = BTreeMap::new();
    for row in source {
        counts.entry(&row.text).or_insert((0, row.key.as_deref())).0 += 1;
    }
    for row in bigquery {
        counts.entry(&row.text).or_insert((0, row.key.as_deref())).0 -= 1;
    }
    // Per key of the rows left over: how many are left in the source and in BigQuery.
    let mut left: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (row, (count, key)) in counts {
        if count > 0 {
            result.missing += count as usize;
        } else if count < 0 {
            result.extra += (-count) as usize;
        }
        if let (Some(key), true) = (key, count != 0) {
            let entry = left.entry(key).or_default();
            if count > 0 {
                entry.0 += count as usize;
            } else {
                entry.1 += (-count) as usize;
            }
        }
        if count != 0 && result.examples.len() < SHOWN_DIFFERENCES {
            let side = if count > 0 {
                "only in source"
            } else {
                "only in BigQuery"
            };
            result.examples.push(format!("{side}: {row}"));
        }
    }
    result.different = left.values().map(|(s, b)| (*s).min(*b)).sum();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(values: &[&[&str]], key: Option<&[usize]>) -> Vec<CanonicalRow> {
        joined(
            values
                .iter()
                .map(|r| r.iter().map(|v| v.to_string()).collect())
                .collect(),
            key,
        )
    }

    #[test]
    fn diff_counts_missing_and_extra_as_multisets() {
        let source = rows(&[&["a"], &["b"], &["b"]], None);
        let bigquery = rows(&[&["b"], &["a"], &["c"]], None);
        let result = diff(&source, &bigquery);
        assert_eq!((result.missing, result.extra, result.different), (1, 1, 0));
        assert_eq!((result.source_rows, result.bigquery_rows), (3, 3));
        assert_eq!(
            result.examples,
            vec!["only in source: b", "only in BigQuery: c"]
        );
    }

    #[test]
    fn rows_of_one_key_on_both_sides_are_different_values() {
        let key: &[usize] = &[0];
        let source = rows(
            &[&["1", "x"], &["2", "y"], &["3", "z"], &["4", "w"]],
            Some(key),
        );
        let bigquery = rows(
            &[&["1", "x"], &["2", "changed"], &["4", "w"], &["5", "v"]],
            Some(key),
        );
        let result = diff(&source, &bigquery);
        // 2 differs, 3 is missing, 5 is extra.
        assert_eq!((result.missing, result.extra, result.different), (2, 2, 1));
    }
}
