//! Canonical values computed inside each database, so that a table can be checksummed, sampled
//! and split into buckets without downloading its rows.
//!
//! Every column becomes one text per value, the same text in PostgreSQL and in BigQuery for the
//! value the writer wrote (it follows [`pg2bq_core::bq_values::convert`]: clamped dates and
//! timestamps, NaN numerics as NULL, `float4` read through its text):
//!
//! | BigQuery type | canonical text |
//! |---|---|
//! | INT64 | the decimal integer |
//! | FLOAT64 | `%.16e` (17 significant digits, exact for every double), `0`, `nan`, `inf`, `-inf` |
//! | NUMERIC, BIGNUMERIC | plain decimal without trailing zeros after the point, rounded to 9 or 38 places as the writer rounds |
//! | BOOL | `true`, `false` |
//! | STRING | PostgreSQL's output form (`char(n)` padding kept) |
//! | BYTES | lowercase hex |
//! | DATE | days since 1970-01-01 |
//! | TIMESTAMP, DATETIME | microseconds since 1970-01-01 00:00 (UTC for TIMESTAMP) |
//! | TIME | microseconds since midnight |
//! | JSON | coarse, see below |
//!
//! Each value is then framed as `<length>:<text>` (NULL as `~`), so that the concatenation of a
//! row's values is unambiguous, and a row is hashed with MD5, which both databases have.
//!
//! JSON (and arrays, which become JSON) cannot be normalised identically in SQL: PostgreSQL's
//! `jsonb` orders keys by length and keeps numbers as written (`2.50`), BigQuery orders and
//! formats them its own way, and bqemulator keeps the writer's key order. A JSON column
//! therefore enters a checksum coarsely — its JSON type, the length of an array or the key
//! count of an object, the value of a string or boolean — and every report names such columns.
//! The full comparison compares JSON exactly.
//!
//! Numbers come out of bqemulator in its own forms (NUMERIC with 9 decimals, BIGNUMERIC columns
//! are STRING): the decimal normalisation above absorbs both.
//!
//! A protected column (`PG2BQ_PROTECT`, see [`pg2bq_core::protect`]) is STRING in BigQuery and
//! holds hashes or masks, which PostgreSQL cannot compute without the key: it enters checksums
//! and key hashes only as NULL or not (reports name it), and the full comparison protects the
//! source's values in Rust and compares them exactly.
//!
//! Values the writer adjusts by a documented rule (see [`Adjustment`]) are counted in the
//! source by [`adjustments_query`], one `count(*) FILTER (WHERE ...)` per column and rule.

use super::protected::COARSE_PROTECTED;
use pg2bq_core::bq_naming::{BqTableName, IS_DELETED_COLUMN, TableNames, quote_column};
use pg2bq_core::bq_types::{BqType, bq_type_for};
use pg2bq_core::bq_values::{Adjustment, BIGNUMERIC_MAX, BIGNUMERIC_MIN};
use pg2bq_core::civil::{MAX_DATE_DAYS, MAX_TIMESTAMP_US, MIN_DATE_DAYS, MIN_TIMESTAMP_US};
use pg2bq_core::pg_connect::quote_ident;
use pg2bq_core::protect::TableProtection;
use pg2bq_core::wire::{ColumnSpec, TableId};

/// Buckets a table's rows are spread over by the hash of their key.
pub const BUCKETS: u32 = 256;

/// Resolution of sampling: a sample keeps rows whose key hash modulo this is below the sample's
/// share of it (1 = 0.01 %).
pub const SAMPLE_SCALE: u32 = 10_000;

/// Marker of NULL in framed values (a framed value starts with a digit).
const NULL_FRAME: &str = "~";

/// The SQL dialect an expression is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL, over the source table.
    Postgres,
    /// GoogleSQL, over the mirror table.
    BigQuery,
}

/// A source table as validate compares it: its replicated columns, as the catalogue reader
/// describes them.
#[derive(Debug, Clone)]
pub struct ComparedTable {
    /// Schema and name.
    pub id: TableId,
    /// Columns in pgoutput's order, with canonical types and key flags.
    pub columns: Vec<ColumnSpec>,
    /// The planner's row estimate (-1: never analysed).
    pub rows_estimated: i64,
    /// The rows replicated (`PG2BQ_ROW_FILTERS`): only these are compared.
    pub row_filter: Option<String>,
}

impl From<&pg2bq_source::catalog::SourceTable> for ComparedTable {
    fn from(table: &pg2bq_source::catalog::SourceTable) -> Self {
        ComparedTable {
            id: table.id.clone(),
            columns: table.column_specs(),
            rows_estimated: table.rows_estimated,
            row_filter: table.row_filter.clone(),
        }
    }
}

/// A source table with the BigQuery name and type of each column and its mirror.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The source table.
    pub table: ComparedTable,
    /// The BigQuery type of each column, in order.
    pub types: Vec<BqType>,
    /// The BigQuery name of each column, in order.
    pub bq_columns: Vec<String>,
    /// The mirror table.
    pub target: BqTableName,
    /// The mirror keeps deleted rows, marked (soft deletes): only the others are compared.
    pub soft_deletes: bool,
    /// The table's protected columns, if any.
    pub protection: Option<TableProtection>,
}

impl Shape {
    /// The shape of `table` written with `names` (the layout's names of the table,
    /// [`pg2bq_core::bq_naming::DatasetLayout::names`]; a bare target table keeps every column's
    /// name by the naming rule).
    pub fn new(table: ComparedTable, names: impl Into<TableNames>) -> Self {
        let names = names.into();
        let types = table
            .columns
            .iter()
            .map(|c| bq_type_for(&c.pg_type, c.type_modifier))
            .collect();
        let bq_columns = table
            .columns
            .iter()
            .map(|c| names.column(&c.name))
            .collect();
        Shape {
            table,
            types,
            bq_columns,
            target: names.target,
            soft_deletes: false,
            protection: None,
        }
    }

    /// Columns with their BigQuery types.
    pub fn columns(&self) -> impl Iterator<Item = (&ColumnSpec, BqType)> {
        self.table.columns.iter().zip(self.types.iter().copied())
    }

    /// Positions of the key columns; every column when the table has no primary key.
    pub fn key_positions(&self) -> Vec<usize> {
        let key: Vec<usize> = (0..self.table.columns.len())
            .filter(|i| self.table.columns[*i].key)
            .collect();
        if key.is_empty() {
            (0..self.table.columns.len()).collect()
        } else {
            key
        }
    }

    /// The table in `FROM`: `"schema"."table"`, or `` `project.dataset.table` ``.
    pub fn from(&self, dialect: Dialect, project: &str) -> String {
        match dialect {
            Dialect::Postgres => {
                let table = format!(
                    "{}.{}",
                    quote_ident(&self.table.id.schema),
                    quote_ident(&self.table.id.table)
                );
                match &self.table.row_filter {
                    Some(row_filter) => {
                        format!("(SELECT * FROM {table} WHERE ({row_filter})) AS replicated")
                    }
                    None => table,
                }
            }
            Dialect::BigQuery if self.soft_deletes => format!(
                "(SELECT * FROM {} WHERE {} IS NOT TRUE)",
                self.target.quoted(project),
                quote_column(IS_DELETED_COLUMN)
            ),
            Dialect::BigQuery => self.target.quoted(project),
        }
    }

    /// Columns whose checksum is coarse, each with the reason.
    pub fn coarse_columns(&self) -> Vec<String> {
        self.columns()
            .enumerate()
            .filter_map(|(i, (c, t))| {
                if self.is_protected(i) {
                    Some(format!("{}: protected, {COARSE_PROTECTED}", c.name))
                } else {
                    (t == BqType::Json)
                        .then(|| format!("{}: {} as JSON, {COARSE_JSON}", c.name, c.pg_type))
                }
            })
            .collect()
    }
}

/// How a JSON column enters a checksum.
pub const COARSE_JSON: &str =
    "checksummed only by JSON type, array length, key count and string or boolean value";

/// Which rows take part: a deterministic sample by key hash, and a set of key buckets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowFilter {
    /// Rows whose key hash modulo [`SAMPLE_SCALE`] is below this (None: every row).
    pub sample: Option<u32>,
    /// Only rows in these buckets (None: every bucket).
    pub buckets: Option<Vec<u32>>,
}

impl RowFilter {
    /// A filter keeping `percent` % of the rows (100 or more keeps all).
    pub fn sampled(percent: Option<f64>) -> Self {
        let sample = percent
            .map(|p| (p * f64::from(SAMPLE_SCALE) / 100.0).round() as u32)
            .filter(|share| *share < SAMPLE_SCALE);
        RowFilter {
            sample,
            buckets: None,
        }
    }

    /// The condition on a key hash (hex MD5) expression, or None when every row takes part.
    pub fn condition(&self, dialect: Dialect, key_hash: &str) -> Option<String> {
        let mut conditions = Vec::new();
        if let Some(share) = self.sample {
            let value = hex_int(dialect, key_hash, 1, 7);
            conditions.push(match dialect {
                Dialect::Postgres => format!("{value} % {SAMPLE_SCALE} < {share}"),
                Dialect::BigQuery => format!("MOD({value}, {SAMPLE_SCALE}) < {share}"),
            });
        }
        if let Some(buckets) = &self.buckets {
            let list: Vec<String> = buckets.iter().map(u32::to_string).collect();
            conditions.push(format!(
                "{} IN ({})",
                bucket(dialect, key_hash),
                list.join(", ")
            ));
        }
        (!conditions.is_empty()).then(|| conditions.join(" AND "))
    }

    /// ` WHERE ...` over the table's own columns, or nothing.
    pub fn where_clause(&self, dialect: Dialect, shape: &Shape) -> String {
        let key_values: Vec<String> = shape
            .key_positions()
            .into_iter()
            .map(|i| shape.canonical(dialect, i))
            .collect();
        match self.condition(dialect, &md5_hex(dialect, &frame_all(dialect, &key_values))) {
            Some(condition) => format!(" WHERE {condition}"),
            None => String::new(),
        }
    }
}

/// The bucket (0..[`BUCKETS`]) of a key hash expression.
pub fn bucket(dialect: Dialect, key_hash: &str) -> String {
    hex_int(dialect, key_hash, 8, 2)
}

/// The query giving, per bucket, the row count and four sums of 28-bit parts of the rows'
/// hashes: `bucket, rows, s1, s2, s3, s4`. Sums of parts never overflow INT64 below 2^35 rows.
pub fn checksum_query(
    dialect: Dialect,
    shape: &Shape,
    project: &str,
    filter: &RowFilter,
) -> String {
    let parts: Vec<String> = (0..4)
        .map(|p| format!("{} AS p{p}", hex_int(dialect, "r", 1 + 7 * p, 7)))
        .collect();
    let (count, cast) = match dialect {
        Dialect::Postgres => ("count(*)", "::text"),
        Dialect::BigQuery => ("COUNT(*)", ""),
    };
    let sums: Vec<String> = (0..4).map(|p| format!("SUM(p{p}){cast}")).collect();
    format!(
        "SELECT b, {count}{cast}, {} FROM (SELECT {} AS b, {} FROM ({}) AS h{}) AS p GROUP BY b",
        sums.join(", "),
        bucket(dialect, "k"),
        parts.join(", "),
        hashed_rows(dialect, shape, project),
        where_hash(dialect, filter)
    )
}

/// The query giving each row's key hash and canonical values: `k, v0, v1, ...`.
pub fn canonical_rows_query(
    dialect: Dialect,
    shape: &Shape,
    project: &str,
    filter: &RowFilter,
) -> String {
    let values: Vec<String> = (0..shape.table.columns.len())
        .map(|i| format!("v{i}"))
        .collect();
    format!(
        "SELECT k, {} FROM ({}) AS h{}",
        values.join(", "),
        hashed_rows(dialect, shape, project),
        where_hash(dialect, filter)
    )
}

/// ` WHERE <filter on k>`, or nothing.
fn where_hash(dialect: Dialect, filter: &RowFilter) -> String {
    filter
        .condition(dialect, "k")
        .map(|c| format!(" WHERE {c}"))
        .unwrap_or_default()
}

/// Rows as `k` (hex MD5 of the framed key values), `r` (of all values) and `v0, v1, ...` (the
/// canonical values).
fn hashed_rows(dialect: Dialect, shape: &Shape, project: &str) -> String {
    let values: Vec<String> = (0..shape.table.columns.len())
        .map(|i| format!("{} AS v{i}", shape.canonical(dialect, i)))
        .collect();
    let all: Vec<String> = (0..values.len()).map(|i| format!("v{i}")).collect();
    let key: Vec<String> = shape
        .key_positions()
        .into_iter()
        .map(|i| format!("v{i}"))
        .collect();
    format!(
        "SELECT {} AS k, {} AS r, {} FROM (SELECT {} FROM {}) AS v",
        md5_hex(dialect, &frame_all(dialect, &key)),
        md5_hex(dialect, &frame_all(dialect, &all)),
        all.join(", "),
        values.join(", "),
        shape.from(dialect, project)
    )
}

/// The column at `position` of a shape as referenced in the dialect.
pub fn column_ref(dialect: Dialect, shape: &Shape, position: usize) -> String {
    match dialect {
        Dialect::Postgres => quote_ident(&shape.table.columns[position].name),
        Dialect::BigQuery => quote_column(&shape.bq_columns[position]),
    }
}

/// The concatenation of framed values (each `<length>:<text>`, NULL as `~`).
fn frame_all(dialect: Dialect, values: &[String]) -> String {
    let framed: Vec<String> = values
        .iter()
        .map(|v| match dialect {
            Dialect::Postgres => {
                format!("coalesce(length({v})::text || ':' || {v}, '{NULL_FRAME}')")
            }
            Dialect::BigQuery => {
                format!("IFNULL(CONCAT(CAST(LENGTH({v}) AS STRING), ':', {v}), '{NULL_FRAME}')")
            }
        })
        .collect();
    if framed.is_empty() {
        return "''".to_owned();
    }
    framed.join(" || ")
}

/// Lowercase hex MD5 of a text's UTF-8 bytes.
fn md5_hex(dialect: Dialect, text: &str) -> String {
    match dialect {
        Dialect::Postgres => format!("md5(convert_to({text}, 'UTF8'))"),
        Dialect::BigQuery => format!("TO_HEX(MD5({text}))"),
    }
}

/// The integer of `len` hex digits of `hex` from position `start` (1-based).
fn hex_int(dialect: Dialect, hex: &str, start: usize, len: usize) -> String {
    match dialect {
        Dialect::Postgres => format!(
            "('x' || substr({hex}, {start}, {len}))::bit({})::bigint",
            len * 4
        ),
        Dialect::BigQuery => {
            format!("CAST(CONCAT('0x', SUBSTR({hex}, {start}, {len})) AS INT64)")
        }
    }
}

/// The canonical text of a column's value (NULL stays NULL); see the module documentation.
pub fn value(dialect: Dialect, c: &str, pg_type: &str, bq_type: BqType) -> String {
    match dialect {
        Dialect::Postgres => postgres_value(c, pg_type, bq_type),
        Dialect::BigQuery => bigquery_value(c, bq_type),
    }
}

/// Strips trailing zeros after a decimal point, and a trailing point.
fn trimmed_decimal(dialect: Dialect, s: &str) -> String {
    match dialect {
        Dialect::Postgres => {
            format!("CASE WHEN strpos({s}, '.') > 0 THEN rtrim(rtrim({s}, '0'), '.') ELSE {s} END")
        }
        Dialect::BigQuery => {
            format!("CASE WHEN STRPOS({s}, '.') > 0 THEN RTRIM(RTRIM({s}, '0'), '.') ELSE {s} END")
        }
    }
}

fn postgres_value(c: &str, pg_type: &str, bq_type: BqType) -> String {
    match bq_type {
        BqType::Int64 => format!("{c}::text"),
        BqType::Float64 => {
            // float4 is written as the double its text denotes, not as its exact binary value.
            let v = if pg_type == "float4" {
                format!("{c}::text::float8")
            } else {
                format!("{c}::float8")
            };
            format!(
                "CASE WHEN {v} IS NULL THEN NULL WHEN {v} = 'NaN'::float8 THEN 'nan' \
                 WHEN {v} = 'Infinity'::float8 THEN 'inf' WHEN {v} = '-Infinity'::float8 THEN '-inf' \
                 WHEN {v} = 0 THEN '0' ELSE btrim(to_char({v}, '9.9999999999999999EEEE')) END"
            )
        }
        BqType::Numeric | BqType::BigNumeric => {
            // money prints with a currency symbol: its numeric value is what the writer keeps,
            // rounded (half away from zero, as PostgreSQL's round()) to the places BigQuery keeps.
            let n = format!("{c}::numeric");
            format!(
                "CASE WHEN {n} IN ('NaN', 'Infinity', '-Infinity') THEN NULL ELSE {} END",
                trimmed_decimal(
                    Dialect::Postgres,
                    &format!("round({n}, {})::text", decimal_scale(bq_type))
                )
            )
        }
        BqType::Bool => format!("CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' END"),
        // concat() uses the type's output function, as the replication stream does (a ::text
        // cast strips char(n) padding and prints inet masks).
        BqType::String => format!("CASE WHEN {c} IS NULL THEN NULL ELSE concat({c}) END"),
        BqType::Bytes => format!("encode({c}, 'hex')"),
        BqType::Date => format!(
            "CASE WHEN {c} IS NULL THEN NULL WHEN {c} = 'infinity' THEN '{MAX_DATE_DAYS}' \
             WHEN {c} = '-infinity' THEN '{MIN_DATE_DAYS}' \
             ELSE greatest(least({c} - DATE '1970-01-01', {MAX_DATE_DAYS}), {MIN_DATE_DAYS})::text END"
        ),
        BqType::Timestamp | BqType::Datetime => format!(
            "CASE WHEN {c} IS NULL THEN NULL WHEN {c} = 'infinity' THEN '{MAX_TIMESTAMP_US}' \
             WHEN {c} = '-infinity' THEN '{MIN_TIMESTAMP_US}' \
             ELSE greatest(least(extract(epoch FROM {c}) * 1000000, {MAX_TIMESTAMP_US}), {MIN_TIMESTAMP_US})::bigint::text END"
        ),
        // greatest() and least() skip NULLs: every clamp is guarded by IS NULL first.
        BqType::Time => format!(
            "CASE WHEN {c} IS NULL THEN NULL \
             ELSE least((extract(epoch FROM {c}) * 1000000)::bigint, 86399999999)::text END"
        ),
        BqType::Json if pg_type.ends_with("[]") => format!(
            "CASE WHEN {c} IS NULL THEN NULL ELSE 'array:' || coalesce(array_length({c}, 1), 0) END"
        ),
        BqType::Json => {
            let j = format!("{c}::jsonb");
            format!(
                "CASE jsonb_typeof({j}) WHEN 'array' THEN 'array:' || jsonb_array_length({j}) \
                 WHEN 'object' THEN 'object:' || (SELECT count(*) FROM jsonb_object_keys({j})) \
                 WHEN 'string' THEN 'string:' || ({j} #>> '{{}}') \
                 WHEN 'boolean' THEN 'boolean:' || ({j} #>> '{{}}') ELSE jsonb_typeof({j}) END"
            )
        }
    }
}

/// Digits after the point the BigQuery type keeps (NUMERIC 9, BIGNUMERIC 38).
fn decimal_scale(bq_type: BqType) -> usize {
    match bq_type {
        BqType::Numeric => pg2bq_core::bq_values::NUMERIC_SCALE,
        _ => pg2bq_core::bq_values::BIGNUMERIC_SCALE,
    }
}

/// The PostgreSQL condition under which a value of column `c` is written by `rule` (the same
/// classification as [`pg2bq_core::bq_values::convert_with_adjustment`]), or None when the
/// rule cannot apply to the column's type.
pub fn adjustment_condition(c: &str, bq_type: BqType, rule: Adjustment) -> Option<String> {
    let bounds = match bq_type {
        BqType::Date => Some(("'9999-12-31'::date", "'0001-01-01'::date")),
        BqType::Datetime => Some((
            "'9999-12-31 23:59:59.999999'::timestamp",
            "'0001-01-01 00:00:00'::timestamp",
        )),
        BqType::Timestamp => Some((
            "'9999-12-31 23:59:59.999999+00'::timestamptz",
            "'0001-01-01 00:00:00+00'::timestamptz",
        )),
        _ => None,
    };
    let n = format!("{c}::numeric");
    let decimal = matches!(bq_type, BqType::Numeric | BqType::BigNumeric);
    Some(match (rule, bounds) {
        (Adjustment::InfinityToMax, Some(_)) => format!("{c} = 'infinity'"),
        (Adjustment::MinusInfinityToMin, Some(_)) => format!("{c} = '-infinity'"),
        (Adjustment::ClampedToMax, Some((max, _))) => format!("isfinite({c}) AND {c} > {max}"),
        (Adjustment::ClampedToMin, Some((_, min))) => format!("isfinite({c}) AND {c} < {min}"),
        (Adjustment::TimeOf2400, None) if bq_type == BqType::Time => {
            format!("{c} = '24:00:00'::time")
        }
        (Adjustment::NanToNull, None) if decimal => format!("{n} = 'NaN'::numeric"),
        (Adjustment::InfinityToNull, None) if decimal => {
            format!("{n} IN ('Infinity'::numeric, '-Infinity'::numeric)")
        }
        // Rounded, and still within the type's range (beyond it the value is not written).
        (Adjustment::Rounded, None) if bq_type == BqType::Numeric => {
            let scale = decimal_scale(bq_type);
            format!("{n} <> round({n}, {scale}) AND abs(round({n}, {scale})) < 1e29")
        }
        (Adjustment::Rounded, None) if bq_type == BqType::BigNumeric => {
            let scale = decimal_scale(bq_type);
            format!(
                "{n} <> round({n}, {scale}) AND round({n}, {scale}) BETWEEN {BIGNUMERIC_MIN} AND {BIGNUMERIC_MAX}"
            )
        }
        _ => return None,
    })
}

/// The PostgreSQL query counting, among the rows `filter` selects, the values of each column
/// that the writer adjusts by each rule that can apply to it: one text count per returned
/// (column position, rule). None when no column can be adjusted.
pub fn adjustments_query(
    shape: &Shape,
    filter: &RowFilter,
) -> Option<(String, Vec<(usize, Adjustment)>)> {
    let mut counted = Vec::new();
    let mut counts = Vec::new();
    for (i, (column, bq_type)) in shape.columns().enumerate() {
        if shape.is_protected(i) {
            continue;
        }
        for rule in Adjustment::rules_for(&column.pg_type, bq_type) {
            let c = column_ref(Dialect::Postgres, shape, i);
            if let Some(condition) = adjustment_condition(&c, bq_type, *rule) {
                counts.push(format!("(count(*) FILTER (WHERE {condition}))::text"));
                counted.push((i, *rule));
            }
        }
    }
    if counted.is_empty() {
        return None;
    }
    let sql = format!(
        "SELECT {} FROM {}{}",
        counts.join(", "),
        shape.from(Dialect::Postgres, ""),
        filter.where_clause(Dialect::Postgres, shape)
    );
    Some((sql, counted))
}

fn bigquery_value(c: &str, bq_type: BqType) -> String {
    match bq_type {
        BqType::Int64 => format!("CAST({c} AS STRING)"),
        BqType::Float64 => format!(
            "CASE WHEN {c} IS NULL THEN NULL WHEN IS_NAN({c}) THEN 'nan' \
             WHEN IS_INF({c}) AND {c} > 0 THEN 'inf' WHEN IS_INF({c}) THEN '-inf' \
             WHEN {c} = 0 THEN '0' ELSE FORMAT('%.16e', {c}) END"
        ),
        // CAST(... AS STRING) is a no-op on bqemulator's STRING stand-in for BIGNUMERIC.
        BqType::Numeric | BqType::BigNumeric => {
            trimmed_decimal(Dialect::BigQuery, &format!("CAST({c} AS STRING)"))
        }
        BqType::Bool => format!("CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' END"),
        BqType::String => c.to_owned(),
        BqType::Bytes => format!("TO_HEX({c})"),
        BqType::Date => format!("CAST(UNIX_DATE({c}) AS STRING)"),
        BqType::Timestamp => format!("CAST(UNIX_MICROS({c}) AS STRING)"),
        BqType::Datetime => format!(
            "CAST(DATETIME_DIFF({c}, DATETIME '1970-01-01 00:00:00', MICROSECOND) AS STRING)"
        ),
        BqType::Time => {
            format!("CAST(TIME_DIFF({c}, TIME '00:00:00', MICROSECOND) AS STRING)")
        }
        BqType::Json => {
            // bqemulator names scalar types as DuckDB does (varchar, bigint, double, ...).
            let t = format!(
                "CASE LOWER(JSON_TYPE({c})) WHEN 'varchar' THEN 'string' WHEN 'bigint' THEN 'number' \
                 WHEN 'ubigint' THEN 'number' WHEN 'hugeint' THEN 'number' WHEN 'double' THEN 'number' \
                 ELSE LOWER(JSON_TYPE({c})) END"
            );
            format!(
                "CASE {t} \
                 WHEN 'array' THEN CONCAT('array:', CAST(ARRAY_LENGTH(JSON_QUERY_ARRAY({c})) AS STRING)) \
                 WHEN 'object' THEN CONCAT('object:', CAST(ARRAY_LENGTH(JSON_KEYS({c}, 1)) AS STRING)) \
                 WHEN 'string' THEN CONCAT('string:', JSON_VALUE({c})) \
                 WHEN 'boolean' THEN CONCAT('boolean:', JSON_VALUE({c})) ELSE {t} END"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        let column = |name: &str, pg_type: &str, key: bool| ColumnSpec {
            name: name.into(),
            pg_type: pg_type.into(),
            type_modifier: -1,
            key,
        };
        Shape::new(
            ComparedTable {
                id: TableId {
                    schema: "s".into(),
                    table: "t\"x".into(),
                },
                columns: vec![column("id", "int4", true), column("j", "jsonb", false)],
                rows_estimated: -1,
                row_filter: None,
            },
            BqTableName {
                dataset: "d".into(),
                table: "t_x".into(),
            },
        )
    }

    #[test]
    fn sampling_keeps_a_share_of_the_key_hash_range() {
        assert_eq!(RowFilter::sampled(Some(12.5)).sample, Some(1250));
        assert_eq!(RowFilter::sampled(Some(100.0)).sample, None);
        assert_eq!(RowFilter::sampled(None), RowFilter::default());
        let filter = RowFilter {
            sample: Some(1250),
            buckets: Some(vec![3, 7]),
        };
        assert_eq!(
            filter.condition(Dialect::Postgres, "k").unwrap(),
            "('x' || substr(k, 1, 7))::bit(28)::bigint % 10000 < 1250 AND ('x' || substr(k, 8, 2))::bit(8)::bigint IN (3, 7)"
        );
        assert_eq!(
            filter.condition(Dialect::BigQuery, "k").unwrap(),
            "MOD(CAST(CONCAT('0x', SUBSTR(k, 1, 7)) AS INT64), 10000) < 1250 AND CAST(CONCAT('0x', SUBSTR(k, 8, 2)) AS INT64) IN (3, 7)"
        );
        assert_eq!(
            RowFilter::default().where_clause(Dialect::Postgres, &shape()),
            ""
        );
    }

    #[test]
    fn checksum_queries_quote_names_and_hash_the_key_and_the_row() {
        let shape = shape();
        let pg = checksum_query(Dialect::Postgres, &shape, "p", &RowFilter::default());
        assert!(pg.contains("FROM \"s\".\"t\"\"x\""), "{pg}");
        assert!(pg.contains("\"id\"::text AS v0"), "{pg}");
        assert!(
            pg.contains(
                "md5(convert_to(coalesce(length(v0)::text || ':' || v0, '~'), 'UTF8')) AS k"
            ),
            "{pg}"
        );
        let bq = checksum_query(Dialect::BigQuery, &shape, "p", &RowFilter::default());
        assert!(bq.contains("FROM `p.d.t_x`"), "{bq}");
        assert!(bq.contains("CAST(`id` AS STRING) AS v0"), "{bq}");
        assert!(bq.contains("GROUP BY b"), "{bq}");
        assert_eq!(
            shape.coarse_columns(),
            vec![format!("j: jsonb as JSON, {COARSE_JSON}")]
        );
    }

    #[test]
    fn adjusted_values_are_counted_per_column_and_rule() {
        let mut shape = shape();
        let column = |name: &str, pg_type: &str| ColumnSpec {
            name: name.into(),
            pg_type: pg_type.into(),
            type_modifier: -1,
            key: false,
        };
        shape.table.columns = vec![
            column("id", "int4"),
            column("d", "date"),
            column("n", "numeric"),
            column("m", "money"),
            column("at", "time"),
        ];
        shape.types = shape
            .table
            .columns
            .iter()
            .map(|c| bq_type_for(&c.pg_type, c.type_modifier))
            .collect();
        let (sql, counted) = adjustments_query(&shape, &RowFilter::default()).unwrap();
        assert_eq!(counted.len(), 4 + 3 + 1);
        assert_eq!(counted[0], (1, Adjustment::InfinityToMax));
        assert_eq!(counted[7], (4, Adjustment::TimeOf2400));
        assert!(
            sql.contains(
                "(count(*) FILTER (WHERE isfinite(\"d\") AND \"d\" > '9999-12-31'::date))::text"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("\"n\"::numeric <> round(\"n\"::numeric, 38) AND round"),
            "{sql}"
        );
        assert!(sql.ends_with("FROM \"s\".\"t\"\"x\""), "{sql}");
        shape.table.columns.truncate(1);
        shape.types.truncate(1);
        assert!(adjustments_query(&shape, &RowFilter::default()).is_none());
    }

    #[test]
    fn tables_without_a_key_are_keyed_by_every_column() {
        let mut shape = shape();
        shape.table.columns[0].key = false;
        assert_eq!(shape.key_positions(), vec![0, 1]);
    }
}
