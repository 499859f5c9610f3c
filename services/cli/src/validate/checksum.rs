//! The checksum comparison, computed inside each database: no row is downloaded.
//!
//! Each row's canonical values (see [`super::sql`]) are hashed with MD5; 112 bits of the hash
//! are summed in four 28-bit parts, per bucket of the key's hash. Sums are order-independent and,
//! unlike XOR, count duplicates. The table's checksum is the sum of the row hashes modulo 2^112;
//! the buckets narrow a difference down to the keys in the buckets that differ.

use super::full::AdjustedCounts;
use super::sql::{BUCKETS, Dialect, RowFilter, Shape, adjustments_query, checksum_query};
use crate::error::{CliError, Result};
use pg2bq_bigquery::rest::RestClient;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Row count and sums of the four 28-bit hash parts of one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketSums {
    /// Rows in the bucket.
    pub rows: u64,
    /// Sums of the hash parts.
    pub sums: [u128; 4],
}

/// Sums per bucket number.
pub type Buckets = BTreeMap<u32, BucketSums>;

/// The checksum part of a table's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChecksumSummary {
    /// The source's checksum: the sum of its rows' 112-bit hashes modulo 2^112, in hex.
    pub source: String,
    /// BigQuery's checksum, computed the same way.
    pub bigquery: String,
    /// Key buckets whose rows differ, of [`BUCKETS`].
    pub differing_buckets: usize,
    /// Whether the rows of the differing buckets were compared in full, so that the report
    /// counts and names them.
    pub rows_listed: bool,
}

impl ChecksumSummary {
    /// Whether the two sides' checksums are equal.
    pub fn matches(&self) -> bool {
        self.source == self.bigquery && self.differing_buckets == 0
    }
}

/// The source's sums per bucket.
pub async fn source_buckets(source: &Client, shape: &Shape, filter: &RowFilter) -> Result<Buckets> {
    let sql = checksum_query(Dialect::Postgres, shape, "", filter);
    let messages = source
        .simple_query(&sql)
        .await
        .map_err(CliError::postgres(format!(
            "checksumming {}",
            shape.table.id
        )))?;
    let mut buckets = Buckets::new();
    for message in &messages {
        if let SimpleQueryMessage::Row(row) = message {
            let values: Vec<Option<&str>> = (0..6).map(|i| row.get(i)).collect();
            let (bucket, sums) = parse_bucket(&values).ok_or_else(|| {
                CliError::Config(format!(
                    "unexpected checksum row from PostgreSQL for {}: {values:?}",
                    shape.table.id
                ))
            })?;
            buckets.insert(bucket, sums);
        }
    }
    Ok(buckets)
}

/// The source values the writer adjusts by a documented rule, counted in PostgreSQL per column
/// and rule (see [`adjustments_query`]); nothing is downloaded.
pub async fn source_adjustments(
    source: &Client,
    shape: &Shape,
    filter: &RowFilter,
) -> Result<AdjustedCounts> {
    let mut adjusted = AdjustedCounts::new();
    let Some((sql, counted)) = adjustments_query(shape, filter) else {
        return Ok(adjusted);
    };
    let messages = source
        .simple_query(&sql)
        .await
        .map_err(CliError::postgres(format!(
            "counting adjusted values of {}",
            shape.table.id
        )))?;
    for message in &messages {
        if let SimpleQueryMessage::Row(row) = message {
            for (i, key) in counted.iter().enumerate() {
                let count: u64 = row.get(i).and_then(|v| v.parse().ok()).ok_or_else(|| {
                    CliError::Config(format!(
                        "unexpected count of adjusted values from PostgreSQL for {}",
                        shape.table.id
                    ))
                })?;
                if count > 0 {
                    adjusted.insert(*key, count);
                }
            }
        }
    }
    Ok(adjusted)
}

/// BigQuery's sums per bucket, or why they could not be computed.
pub async fn bigquery_buckets(
    bigquery: &RestClient,
    shape: &Shape,
    filter: &RowFilter,
) -> std::result::Result<Buckets, String> {
    let sql = checksum_query(Dialect::BigQuery, shape, bigquery.project(), filter);
    let answer = bigquery.query(&sql).await.map_err(|e| e.to_string())?;
    let mut buckets = Buckets::new();
    for row in &answer.rows {
        let values: Vec<Option<&str>> = row.iter().map(Option::as_deref).collect();
        let (bucket, sums) = parse_bucket(&values)
            .ok_or_else(|| format!("unexpected checksum row from BigQuery: {values:?}"))?;
        buckets.insert(bucket, sums);
    }
    Ok(buckets)
}

/// `bucket, rows, s1, s2, s3, s4` as text.
fn parse_bucket(values: &[Option<&str>]) -> Option<(u32, BucketSums)> {
    let number = |i: usize| values.get(i).copied().flatten()?.parse::<u128>().ok();
    let bucket = u32::try_from(number(0)?).ok()?;
    let rows = u64::try_from(number(1)?).ok()?;
    let sums = [number(2)?, number(3)?, number(4)?, number(5)?];
    Some((bucket, BucketSums { rows, sums }))
}

/// Total rows and the checksum (hex) of a table's buckets.
pub fn fingerprint(buckets: &Buckets) -> (u64, String) {
    let mut rows = 0u64;
    let mut total = 0u128;
    for sums in buckets.values() {
        rows += sums.rows;
        let [a, b, c, d] = sums.sums;
        let bucket = (a << 84)
            .wrapping_add(b << 56)
            .wrapping_add(c << 28)
            .wrapping_add(d);
        total = total.wrapping_add(bucket);
    }
    (rows, format!("{:028x}", total & ((1u128 << 112) - 1)))
}

/// Buckets whose counts or sums differ, and how many rows they hold on the larger side.
pub fn differing(source: &Buckets, bigquery: &Buckets) -> (Vec<u32>, u64) {
    let keys: BTreeSet<u32> = source.keys().chain(bigquery.keys()).copied().collect();
    let mut buckets = Vec::new();
    let mut rows = 0;
    for key in keys {
        let (a, b) = (
            source.get(&key).copied().unwrap_or_default(),
            bigquery.get(&key).copied().unwrap_or_default(),
        );
        if a != b {
            buckets.push(key);
            rows += a.rows.max(b.rows);
        }
    }
    debug_assert!(buckets.iter().all(|b| *b < BUCKETS));
    (buckets, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(rows: u64, s: [u128; 4]) -> BucketSums {
        BucketSums { rows, sums: s }
    }

    #[test]
    fn parses_bucket_rows_of_either_side() {
        let row = [
            Some("7"),
            Some("2"),
            Some("1"),
            Some("2"),
            Some("3"),
            Some("536870910"),
        ];
        assert_eq!(
            parse_bucket(&row),
            Some((7, sums(2, [1, 2, 3, 536_870_910])))
        );
        assert_eq!(parse_bucket(&[Some("x")]), None);
    }

    #[test]
    fn the_fingerprint_is_the_sum_of_hashes_and_buckets_locate_differences() {
        let a: Buckets = [(1, sums(1, [1, 0, 0, 0])), (2, sums(2, [0, 0, 0, 5]))].into();
        let mut b = a.clone();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a).0, 3);
        assert_eq!(fingerprint(&a).1, format!("{:028x}", (1u128 << 84) + 5));
        b.insert(2, sums(2, [0, 0, 0, 6]));
        b.insert(9, sums(4, [0; 4]));
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(differing(&a, &b), (vec![2, 9], 6));
    }
}
