//! One canonical text per value, computed the same way from PostgreSQL's text form and from
//! BigQuery's REST form, so that rows can be compared across the two systems.

use base64::Engine;
use pg2bq_core::bq_types::BqType;
use pg2bq_core::bq_values::{Adjustment, BqValue, convert_with_adjustment};
use pg2bq_core::civil::{parse_date, parse_time_of_day, parse_timestamp};

/// Marker of SQL NULL in canonical rows.
pub const NULL: &str = "∅";

/// The canonical text of a PostgreSQL value, as the writer would write it.
pub fn from_postgres(pg_type: &str, bq_type: BqType, text: Option<&str>) -> String {
    from_postgres_adjusted(pg_type, bq_type, text).0
}

/// The canonical text of a PostgreSQL value, as the writer would write it, and the documented
/// rule by which the writer adjusts it, if any.
pub fn from_postgres_adjusted(
    pg_type: &str,
    bq_type: BqType,
    text: Option<&str>,
) -> (String, Option<Adjustment>) {
    let Some(text) = text else {
        return (NULL.to_owned(), None);
    };
    match convert_with_adjustment(pg_type, bq_type, text) {
        Ok(converted) => (of_value(bq_type, &converted.value), converted.adjustment),
        Err(e) => (format!("<unconvertible: {e}>"), None),
    }
}

/// The canonical text of a BigQuery value as the REST API returns it (TIMESTAMP selected as
/// `UNIX_MICROS`, BYTES as base64, JSON as `TO_JSON_STRING`).
pub fn from_bigquery(bq_type: BqType, text: Option<&str>) -> String {
    let Some(text) = text else {
        return NULL.to_owned();
    };
    let value = match bq_type {
        BqType::Int64 => text.parse().ok().map(BqValue::Int64),
        BqType::Float64 => text.parse().ok().map(BqValue::Float64),
        BqType::Bool => Some(BqValue::Bool(text == "true")),
        BqType::Bytes => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .map(BqValue::Bytes),
        BqType::Date => parse_date(text).map(|d| BqValue::Date(d as i32)),
        BqType::Timestamp => text.parse().ok().map(BqValue::Timestamp),
        _ => Some(BqValue::Text(text.to_owned())),
    };
    match value {
        Some(value) => of_value(bq_type, &value),
        None => format!("<unreadable {bq_type}: {text}>"),
    }
}

fn of_value(bq_type: BqType, value: &BqValue) -> String {
    match value {
        BqValue::Null => NULL.to_owned(),
        BqValue::Int64(v) | BqValue::Timestamp(v) => v.to_string(),
        BqValue::Date(v) => v.to_string(),
        // BigQuery does not keep the sign of zero (bqemulator reads -0.0 back as 0.0).
        BqValue::Float64(v) if *v == 0.0 => "0.0".to_owned(),
        BqValue::Float64(v) => format!("{v:?}"),
        BqValue::Bool(v) => v.to_string(),
        BqValue::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        BqValue::Text(t) => text(bq_type, t),
    }
}

fn text(bq_type: BqType, t: &str) -> String {
    match bq_type {
        BqType::Numeric | BqType::BigNumeric => decimal(t),
        BqType::Json => serde_json::from_str::<serde_json::Value>(t)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| t.to_owned()),
        BqType::Datetime => parse_timestamp(&t.replacen('T', " ", 1))
            .map(|us| us.to_string())
            .unwrap_or_else(|| t.to_owned()),
        BqType::Time => parse_time_of_day(t)
            .map(|us| us.to_string())
            .unwrap_or_else(|| t.to_owned()),
        _ => t.to_owned(),
    }
}

/// A decimal in plain notation without trailing zeros after the point, without a lone point,
/// and without minus zero; exponent forms such as `0E-9` or `1.5E+3` are expanded first.
fn decimal(t: &str) -> String {
    let (negative, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((m, e)) => match e.parse::<i64>() {
            Ok(e) => (m, e),
            Err(_) => return t.to_owned(),
        },
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int_part}{frac_part}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return t.to_owned();
    }
    // The decimal point sits after `point` digits; move it by the exponent, padding with zeros.
    let point = int_part.len() as i64 + exponent;
    let (whole, fraction) = if point <= 0 {
        (
            String::new(),
            format!("{}{digits}", "0".repeat((-point) as usize)),
        )
    } else if point as usize >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        (
            digits[..point as usize].to_owned(),
            digits[point as usize..].to_owned(),
        )
    };
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    let plain = if fraction.is_empty() {
        whole.to_owned()
    } else {
        format!("{whole}.{fraction}")
    };
    if negative && plain != "0" {
        format!("-{plain}")
    } else {
        plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_on_common_forms() {
        let same = |pg: &str, bq: BqType, pg_text: &str, bq_text: &str| {
            assert_eq!(
                from_postgres(pg, bq, Some(pg_text)),
                from_bigquery(bq, Some(bq_text)),
                "{pg} {pg_text}"
            );
        };
        same("numeric", BqType::Numeric, "1.50", "1.500000000");
        same("numeric", BqType::Numeric, "-0.00", "0");
        same("numeric", BqType::Numeric, "0", "0E-9");
        same("numeric", BqType::Numeric, "1500", "1.5E+3");
        same("numeric", BqType::Numeric, "-0.0015", "-1.5e-3");
        same(
            "numeric",
            BqType::BigNumeric,
            "12345678901234567890.123456789",
            "12345678901234567890.123456789",
        );
        same(
            "timestamptz",
            BqType::Timestamp,
            "2026-11-24 09:05:55.394165+00",
            "1795511155394165",
        );
        same("bytea", BqType::Bytes, "\\x0102", "AQI=");
        same(
            "jsonb",
            BqType::Json,
            "{\"b\": 1, \"a\": [1, 2]}",
            "{\"a\":[1,2],\"b\":1}",
        );
        same(
            "timestamp",
            BqType::Datetime,
            "2024-02-29 10:11:12.5",
            "2024-02-29T10:11:12.500000",
        );
        same("float8", BqType::Float64, "1", "1.0");
        same("float8", BqType::Float64, "-0", "0.0");
        same("bool", BqType::Bool, "t", "true");
        same("date", BqType::Date, "2024-01-02", "2024-01-02");
        same("date", BqType::Date, "infinity", "9999-12-31");
        same(
            "timestamp",
            BqType::Datetime,
            "294276-12-31 23:59:59.999999",
            "9999-12-31T23:59:59.999999",
        );
        same(
            "numeric",
            BqType::BigNumeric,
            &format!("0.{}", "6".repeat(50)),
            &format!("0.{}7", "6".repeat(37)),
        );
        assert_eq!(
            from_postgres_adjusted("time", BqType::Time, Some("24:00:00")),
            ("86399999999".to_owned(), Some(Adjustment::TimeOf2400))
        );
        assert_ne!(
            from_postgres("text", BqType::String, None),
            from_bigquery(BqType::String, Some(""))
        );
    }
}
