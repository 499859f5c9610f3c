//! Mapping of PostgreSQL column types to BigQuery column types.
//!
//! The table of choices is documented in `services/core/docs/type-mapping.md`; this module is its single
//! implementation, used by the writer to create tables and encode rows and by the CLI to
//! validate and to show what each column becomes.

use crate::pg_types::numeric_precision_scale;
use std::fmt;

/// A BigQuery column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BqType {
    /// INT64.
    Int64,
    /// FLOAT64.
    Float64,
    /// NUMERIC: 38 digits, 9 after the point.
    Numeric,
    /// BIGNUMERIC: 76 digits, 38 after the point.
    BigNumeric,
    /// BOOL.
    Bool,
    /// STRING.
    String,
    /// BYTES.
    Bytes,
    /// DATE.
    Date,
    /// TIME.
    Time,
    /// DATETIME (civil time, no zone).
    Datetime,
    /// TIMESTAMP (an instant, UTC).
    Timestamp,
    /// JSON.
    Json,
}

impl BqType {
    /// The name BigQuery uses in table schemas.
    pub fn name(self) -> &'static str {
        match self {
            BqType::Int64 => "INT64",
            BqType::Float64 => "FLOAT64",
            BqType::Numeric => "NUMERIC",
            BqType::BigNumeric => "BIGNUMERIC",
            BqType::Bool => "BOOL",
            BqType::String => "STRING",
            BqType::Bytes => "BYTES",
            BqType::Date => "DATE",
            BqType::Time => "TIME",
            BqType::Datetime => "DATETIME",
            BqType::Timestamp => "TIMESTAMP",
            BqType::Json => "JSON",
        }
    }

    /// Reads the name BigQuery reports in table schemas (legacy names included).
    pub fn from_schema_name(name: &str) -> Option<Self> {
        Some(match name {
            "INT64" | "INTEGER" => BqType::Int64,
            "FLOAT64" | "FLOAT" => BqType::Float64,
            "NUMERIC" => BqType::Numeric,
            "BIGNUMERIC" => BqType::BigNumeric,
            "BOOL" | "BOOLEAN" => BqType::Bool,
            "STRING" => BqType::String,
            "BYTES" => BqType::Bytes,
            "DATE" => BqType::Date,
            "TIME" => BqType::Time,
            "DATETIME" => BqType::Datetime,
            "TIMESTAMP" => BqType::Timestamp,
            "JSON" => BqType::Json,
            _ => return None,
        })
    }
}

impl fmt::Display for BqType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The BigQuery type a PostgreSQL column becomes.
///
/// Arrays become JSON arrays: BigQuery's ARRAY can hold neither NULL elements, nor a NULL array
/// (it turns into an empty one), nor nested arrays, and which of these occur is only known value
/// by value, after the column's type is fixed; JSON keeps every array exactly. Every type without
/// a BigQuery counterpart (geometric, range, composite, `interval`, `timetz`, network types)
/// becomes STRING with PostgreSQL's text form, so no value is ever dropped.
pub fn bq_type_for(pg_type: &str, type_modifier: i32) -> BqType {
    if pg_type.ends_with("[]") {
        return BqType::Json;
    }
    match pg_type {
        "int2" | "int4" | "int8" | "oid" => BqType::Int64,
        "float4" | "float8" => BqType::Float64,
        "numeric" => numeric_type(type_modifier),
        "money" => BqType::Numeric,
        "bool" => BqType::Bool,
        "bytea" => BqType::Bytes,
        "date" => BqType::Date,
        "time" => BqType::Time,
        "timestamp" => BqType::Datetime,
        "timestamptz" => BqType::Timestamp,
        "json" | "jsonb" => BqType::Json,
        _ => BqType::String,
    }
}

/// NUMERIC when precision and scale fit (≤ 29 integer digits, ≤ 9 decimals), BIGNUMERIC when
/// they fit it (≤ 38 and ≤ 38), STRING beyond; unconstrained `numeric` becomes BIGNUMERIC.
fn numeric_type(type_modifier: i32) -> BqType {
    match numeric_precision_scale(type_modifier) {
        None => BqType::BigNumeric,
        Some((precision, scale)) => {
            let integer_digits = precision.saturating_sub(scale);
            if scale <= 9 && integer_digits <= 29 {
                BqType::Numeric
            } else if scale <= 38 && integer_digits <= 38 {
                BqType::BigNumeric
            } else {
                BqType::String
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(p: i32, s: i32) -> i32 {
        ((p << 16) | s) + 4
    }

    #[test]
    fn maps_scalars() {
        assert_eq!(bq_type_for("int4", -1), BqType::Int64);
        assert_eq!(bq_type_for("timestamptz", -1), BqType::Timestamp);
        assert_eq!(bq_type_for("timestamp", -1), BqType::Datetime);
        assert_eq!(bq_type_for("jsonb", -1), BqType::Json);
        assert_eq!(bq_type_for("uuid", -1), BqType::String);
        assert_eq!(bq_type_for("int4[]", -1), BqType::Json);
    }

    #[test]
    fn chooses_numeric_width_by_precision() {
        assert_eq!(bq_type_for("numeric", numeric(10, 2)), BqType::Numeric);
        assert_eq!(bq_type_for("numeric", numeric(38, 9)), BqType::Numeric);
        assert_eq!(bq_type_for("numeric", numeric(40, 12)), BqType::BigNumeric);
        assert_eq!(bq_type_for("numeric", numeric(100, 50)), BqType::String);
        assert_eq!(bq_type_for("numeric", -1), BqType::BigNumeric);
    }

    #[test]
    fn schema_names_round_trip() {
        for t in [
            BqType::Int64,
            BqType::Json,
            BqType::BigNumeric,
            BqType::Datetime,
        ] {
            assert_eq!(BqType::from_schema_name(t.name()), Some(t));
        }
        assert_eq!(BqType::from_schema_name("INTEGER"), Some(BqType::Int64));
    }
}
