//! Conversion of PostgreSQL text values to BigQuery values, as documented in
//! `services/core/docs/type-mapping.md`. The writer encodes the result into proto rows; validation compares
//! the same results on both sides.

use crate::bq_types::BqType;
use crate::civil::{
    MAX_DATE_DAYS, MAX_TIMESTAMP_US, MIN_DATE_DAYS, MIN_TIMESTAMP_US, format_timestamp_us,
    parse_date, parse_time_of_day, parse_timestamp, parse_timestamptz,
};
use crate::pg_array::parse_array;

/// A value ready to be written to a BigQuery column.
#[derive(Debug, Clone, PartialEq)]
pub enum BqValue {
    /// NULL.
    Null,
    /// INT64.
    Int64(i64),
    /// FLOAT64.
    Float64(f64),
    /// BOOL.
    Bool(bool),
    /// BYTES.
    Bytes(Vec<u8>),
    /// DATE, days since the Unix epoch.
    Date(i32),
    /// TIMESTAMP, microseconds since the Unix epoch.
    Timestamp(i64),
    /// NUMERIC, BIGNUMERIC, STRING, JSON, DATETIME and TIME, in BigQuery's text form.
    Text(String),
}

/// Why a value cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value '{value}' of PostgreSQL type {pg_type} cannot become BigQuery {bq_type}: {reason}")]
pub struct ValueError {
    /// The text.
    pub value: String,
    /// The PostgreSQL type.
    pub pg_type: String,
    /// The BigQuery type.
    pub bq_type: BqType,
    /// What is wrong.
    pub reason: &'static str,
}

/// Converts PostgreSQL's text form of a value of `pg_type` to a value of `bq_type`.
///
/// Values outside BigQuery's range are defined, never dropped silently: `±infinity` dates and
/// timestamps become BigQuery's largest and smallest values; numeric `NaN` and `±Infinity` become
/// NULL (NUMERIC holds no such values; FLOAT64 keeps them).
pub fn convert(pg_type: &str, bq_type: BqType, text: &str) -> Result<BqValue, ValueError> {
    let fail = |reason| ValueError {
        value: truncate(text),
        pg_type: pg_type.to_owned(),
        bq_type,
        reason,
    };
    let value = match bq_type {
        BqType::Int64 => BqValue::Int64(text.parse().map_err(|_| fail("not an integer"))?),
        BqType::Float64 => BqValue::Float64(text.parse().map_err(|_| fail("not a number"))?),
        BqType::Bool => match text {
            "t" | "true" => BqValue::Bool(true),
            "f" | "false" => BqValue::Bool(false),
            _ => return Err(fail("not a boolean")),
        },
        BqType::Numeric | BqType::BigNumeric => {
            numeric(pg_type, text).ok_or_else(|| fail("not a decimal number"))?
        }
        BqType::Bytes => BqValue::Bytes(bytea(text).ok_or_else(|| fail("not a hex bytea value"))?),
        BqType::Date => BqValue::Date(date(text).ok_or_else(|| fail("not an ISO date"))?),
        BqType::Timestamp => BqValue::Timestamp(
            timestamptz(text).ok_or_else(|| fail("not an ISO timestamp with zone"))?,
        ),
        BqType::Datetime => {
            BqValue::Text(datetime(text).ok_or_else(|| fail("not an ISO timestamp"))?)
        }
        BqType::Time => BqValue::Text(time(text).ok_or_else(|| fail("not a time of day"))?),
        BqType::Json if pg_type.ends_with("[]") => {
            let element_type = pg_type.trim_end_matches("[]");
            let array =
                parse_array(text, element_type).ok_or_else(|| fail("not an array literal"))?;
            BqValue::Text(array.to_string())
        }
        BqType::String | BqType::Json => BqValue::Text(text.to_owned()),
    };
    Ok(value)
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn numeric(pg_type: &str, text: &str) -> Option<BqValue> {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") {
        return Some(BqValue::Null);
    }
    let cleaned: String = if pg_type == "money" {
        // Money prints with a currency symbol and group separators: keep sign, digits, point.
        let negative = text.starts_with('-') || text.starts_with('(');
        let digits: String = text
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        if negative {
            format!("-{digits}")
        } else {
            digits
        }
    } else {
        text.to_owned()
    };
    let body = cleaned.strip_prefix('-').unwrap_or(&cleaned);
    let valid = !body.is_empty()
        && body.bytes().filter(|b| *b == b'.').count() <= 1
        && body.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    valid.then_some(BqValue::Text(cleaned))
}

fn bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

fn date(text: &str) -> Option<i32> {
    let days = match text {
        "infinity" => return Some(MAX_DATE_DAYS),
        "-infinity" => return Some(MIN_DATE_DAYS),
        _ => parse_date(text)?,
    };
    Some(days.clamp(i64::from(MIN_DATE_DAYS), i64::from(MAX_DATE_DAYS)) as i32)
}

fn timestamptz(text: &str) -> Option<i64> {
    match text {
        "infinity" => Some(MAX_TIMESTAMP_US),
        "-infinity" => Some(MIN_TIMESTAMP_US),
        _ => Some(parse_timestamptz(text)?.clamp(MIN_TIMESTAMP_US, MAX_TIMESTAMP_US)),
    }
}

fn datetime(text: &str) -> Option<String> {
    let micros = match text {
        "infinity" => MAX_TIMESTAMP_US,
        "-infinity" => MIN_TIMESTAMP_US,
        _ => parse_timestamp(text)?.clamp(MIN_TIMESTAMP_US, MAX_TIMESTAMP_US),
    };
    Some(format_timestamp_us(micros))
}

fn time(text: &str) -> Option<String> {
    let micros = parse_time_of_day(text)?.min(86_400_000_000 - 1);
    let secs = micros / 1_000_000;
    Some(format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        micros % 1_000_000
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(pg: &str, bq: BqType, text: &str) -> BqValue {
        convert(pg, bq, text).unwrap()
    }

    #[test]
    fn scalars() {
        assert_eq!(
            ok("int8", BqType::Int64, "-9223372036854775808"),
            BqValue::Int64(i64::MIN)
        );
        assert_eq!(ok("bool", BqType::Bool, "t"), BqValue::Bool(true));
        assert_eq!(
            ok("bytea", BqType::Bytes, "\\x00ff"),
            BqValue::Bytes(vec![0, 255])
        );
        assert!(matches!(ok("float8", BqType::Float64, "NaN"), BqValue::Float64(f) if f.is_nan()));
        assert_eq!(
            ok("float8", BqType::Float64, "-Infinity"),
            BqValue::Float64(f64::NEG_INFINITY)
        );
    }

    #[test]
    fn numerics_and_money() {
        assert_eq!(
            ok("numeric", BqType::Numeric, "-12.50"),
            BqValue::Text("-12.50".into())
        );
        assert_eq!(ok("numeric", BqType::Numeric, "NaN"), BqValue::Null);
        assert_eq!(
            ok("money", BqType::Numeric, "-$1,234.56"),
            BqValue::Text("-1234.56".into())
        );
        assert!(convert("numeric", BqType::Numeric, "1e5").is_err());
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(ok("date", BqType::Date, "1970-01-02"), BqValue::Date(1));
        assert_eq!(
            ok("date", BqType::Date, "infinity"),
            BqValue::Date(MAX_DATE_DAYS)
        );
        assert_eq!(
            ok("date", BqType::Date, "0100-01-01 BC"),
            BqValue::Date(MIN_DATE_DAYS)
        );
        assert_eq!(
            ok("timestamptz", BqType::Timestamp, "1970-01-01 00:00:01+00"),
            BqValue::Timestamp(1_000_000)
        );
        assert_eq!(
            ok("timestamp", BqType::Datetime, "2024-02-29 10:11:12.5"),
            BqValue::Text("2024-02-29 10:11:12.500000".into())
        );
        assert_eq!(
            ok("time", BqType::Time, "24:00:00"),
            BqValue::Text("23:59:59.999999".into())
        );
    }

    #[test]
    fn arrays_become_json() {
        assert_eq!(
            ok("int4[]", BqType::Json, "{1,NULL}"),
            BqValue::Text("[1,null]".into())
        );
        assert!(convert("int4[]", BqType::Json, "{1").is_err());
    }

    #[test]
    fn errors_name_the_value_and_types() {
        let err = convert("int4", BqType::Int64, "abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "value 'abc' of PostgreSQL type int4 cannot become BigQuery INT64: not an integer"
        );
    }
}
