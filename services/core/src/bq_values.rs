//! Conversion of PostgreSQL text values to BigQuery values, as documented in
//! `services/core/docs/type-mapping.md`. The writer encodes the result into proto rows; validation compares
//! the same results on both sides.
//!
//! Every value of every PostgreSQL type converts without panicking or wrapping, and any other
//! text is an error. What BigQuery cannot hold as it is gets written by a documented rule (an
//! [`Adjustment`]), which [`convert_with_adjustment`] reports so that the writer can count it and
//! `validate` can show it: `±infinity` dates and timestamps and those outside years 1 to 9999
//! are clamped, numeric `NaN` and `±Infinity` become NULL, decimals with more digits after the
//! point than the column keeps are rounded half away from zero, `time` 24:00:00 becomes
//! 23:59:59.999999. A decimal whose integer part the column cannot hold is an error.

#![warn(clippy::arithmetic_side_effects)]

use crate::bq_types::BqType;
use crate::civil::{
    DAY_US, MAX_DATE_DAYS, MAX_TIMESTAMP_US, MIN_DATE_DAYS, MIN_TIMESTAMP_US, format_time_of_day,
    format_timestamp_us, parse_date, parse_time_of_day, parse_timestamp, parse_timestamptz,
};
use crate::pg_array::parse_array;
use serde::Serialize;
use std::fmt;

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

/// A documented rule by which a value BigQuery cannot hold as it is was written differently.
/// Each is counted by the writer (`pg2bq_writer_values_adjusted_total{table, rule}`) and reported
/// by `pg2bq validate`; see `services/core/docs/type-mapping.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Adjustment {
    /// A date or timestamp `infinity` became BigQuery's largest value (9999-12-31, or
    /// 9999-12-31 23:59:59.999999).
    InfinityToMax,
    /// A date or timestamp `-infinity` became BigQuery's smallest value (0001-01-01, or
    /// 0001-01-01 00:00:00).
    MinusInfinityToMin,
    /// A date or timestamp after 9999-12-31 23:59:59.999999 became BigQuery's largest value.
    ClampedToMax,
    /// A date or timestamp before 0001-01-01 (a BC date) became BigQuery's smallest value.
    ClampedToMin,
    /// A numeric `NaN` became NULL (NUMERIC and BIGNUMERIC hold no NaN).
    NanToNull,
    /// A numeric `Infinity` or `-Infinity` became NULL.
    InfinityToNull,
    /// A decimal with more digits after the point than the column keeps (9 for NUMERIC, 38 for
    /// BIGNUMERIC) was rounded half away from zero, as BigQuery rounds.
    Rounded,
    /// A `time` of 24:00:00 became 23:59:59.999999 (BigQuery's TIME ends there).
    #[serde(rename = "time_of_2400")]
    TimeOf2400,
}

impl Adjustment {
    /// Every rule, in a fixed order.
    pub const ALL: [Adjustment; 8] = [
        Adjustment::InfinityToMax,
        Adjustment::MinusInfinityToMin,
        Adjustment::ClampedToMax,
        Adjustment::ClampedToMin,
        Adjustment::NanToNull,
        Adjustment::InfinityToNull,
        Adjustment::Rounded,
        Adjustment::TimeOf2400,
    ];

    /// The rule's name, as metric label and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Adjustment::InfinityToMax => "infinity_to_max",
            Adjustment::MinusInfinityToMin => "minus_infinity_to_min",
            Adjustment::ClampedToMax => "clamped_to_max",
            Adjustment::ClampedToMin => "clamped_to_min",
            Adjustment::NanToNull => "nan_to_null",
            Adjustment::InfinityToNull => "infinity_to_null",
            Adjustment::Rounded => "rounded",
            Adjustment::TimeOf2400 => "time_of_2400",
        }
    }

    /// What the rule does, in a few words.
    pub fn description(self) -> &'static str {
        match self {
            Adjustment::InfinityToMax => "infinity written as BigQuery's largest value",
            Adjustment::MinusInfinityToMin => "-infinity written as BigQuery's smallest value",
            Adjustment::ClampedToMax => "after year 9999, written as BigQuery's largest value",
            Adjustment::ClampedToMin => "before year 1, written as BigQuery's smallest value",
            Adjustment::NanToNull => "numeric NaN written as NULL",
            Adjustment::InfinityToNull => "numeric ±Infinity written as NULL",
            Adjustment::Rounded => {
                "more digits after the point than the column keeps, rounded half away from zero"
            }
            Adjustment::TimeOf2400 => "24:00:00 written as 23:59:59.999999",
        }
    }

    /// The rules that can apply to values of `pg_type` written as `bq_type`.
    pub fn rules_for(pg_type: &str, bq_type: BqType) -> &'static [Adjustment] {
        const INSTANTS: &[Adjustment] = &[
            Adjustment::InfinityToMax,
            Adjustment::MinusInfinityToMin,
            Adjustment::ClampedToMax,
            Adjustment::ClampedToMin,
        ];
        const DECIMALS: &[Adjustment] = &[
            Adjustment::NanToNull,
            Adjustment::InfinityToNull,
            Adjustment::Rounded,
        ];
        match bq_type {
            BqType::Date | BqType::Datetime | BqType::Timestamp => INSTANTS,
            BqType::Time => &[Adjustment::TimeOf2400],
            BqType::Numeric | BqType::BigNumeric if pg_type == "numeric" => DECIMALS,
            _ => &[],
        }
    }
}

impl fmt::Display for Adjustment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A converted value, and the rule it was adjusted by, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The value to write.
    pub value: BqValue,
    /// The documented rule that changed it, or `None` when it is exactly the source value.
    pub adjustment: Option<Adjustment>,
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

/// Converts PostgreSQL's text form of a value of `pg_type` to a value of `bq_type`; see
/// [`convert_with_adjustment`], which also tells which rule adjusted the value.
pub fn convert(pg_type: &str, bq_type: BqType, text: &str) -> Result<BqValue, ValueError> {
    convert_with_adjustment(pg_type, bq_type, text).map(|c| c.value)
}

/// Converts PostgreSQL's text form of a value of `pg_type` to a value of `bq_type`, and tells
/// by which [`Adjustment`] rule, if any, the value written differs from the source value.
///
/// Values outside BigQuery's range are defined, never dropped silently: `±infinity` dates and
/// timestamps become BigQuery's largest and smallest values, and so do those after year 9999
/// or before year 1; numeric `NaN` and `±Infinity` become NULL (NUMERIC holds no such values;
/// FLOAT64 keeps them); decimals are rounded half away from zero to the column's scale;
/// `time` 24:00:00 becomes 23:59:59.999999. A decimal whose integer part the column cannot
/// hold, and any text that is not a value of the type, is an error.
pub fn convert_with_adjustment(
    pg_type: &str,
    bq_type: BqType,
    text: &str,
) -> Result<Converted, ValueError> {
    let fail = |reason| ValueError {
        value: truncate(text),
        pg_type: pg_type.to_owned(),
        bq_type,
        reason,
    };
    let exact = |value| Converted {
        value,
        adjustment: None,
    };
    let converted = match bq_type {
        BqType::Int64 => exact(BqValue::Int64(
            text.parse().map_err(|_| fail("not an integer"))?,
        )),
        BqType::Float64 => exact(BqValue::Float64(
            text.parse().map_err(|_| fail("not a number"))?,
        )),
        BqType::Bool => match text {
            "t" | "true" => exact(BqValue::Bool(true)),
            "f" | "false" => exact(BqValue::Bool(false)),
            _ => return Err(fail("not a boolean")),
        },
        BqType::Numeric | BqType::BigNumeric => numeric(pg_type, bq_type, text).map_err(fail)?,
        BqType::Bytes => exact(BqValue::Bytes(
            bytea(text).ok_or_else(|| fail("not a hex bytea value"))?,
        )),
        BqType::Date => date(text).ok_or_else(|| fail("not an ISO date"))?,
        BqType::Timestamp => {
            let (micros, adjustment) = instant(text, parse_timestamptz)
                .ok_or_else(|| fail("not an ISO timestamp with zone"))?;
            Converted {
                value: BqValue::Timestamp(micros),
                adjustment,
            }
        }
        BqType::Datetime => {
            let (micros, adjustment) =
                instant(text, parse_timestamp).ok_or_else(|| fail("not an ISO timestamp"))?;
            Converted {
                value: BqValue::Text(format_timestamp_us(micros)),
                adjustment,
            }
        }
        BqType::Time => time(text).ok_or_else(|| fail("not a time of day"))?,
        BqType::Json if pg_type.ends_with("[]") => {
            let element_type = pg_type.trim_end_matches("[]");
            let array =
                parse_array(text, element_type).ok_or_else(|| fail("not an array literal"))?;
            exact(BqValue::Text(array.to_string()))
        }
        BqType::String | BqType::Json => exact(BqValue::Text(text.to_owned())),
    };
    Ok(converted)
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", text.get(..at).unwrap_or_default()),
        None => text.to_owned(),
    }
}

/// BIGNUMERIC's largest value, (2^255 − 1)·10^-38, as digits without the point.
const BIGNUMERIC_MAX_DIGITS: &str =
    "57896044618658097711785492504343953926634992332820282019728792003956564819967";
/// The magnitude of BIGNUMERIC's smallest value, 2^255·10^-38, as digits without the point.
const BIGNUMERIC_MIN_DIGITS: &str =
    "57896044618658097711785492504343953926634992332820282019728792003956564819968";
/// BIGNUMERIC's largest value, (2^255 − 1)·10^-38.
pub const BIGNUMERIC_MAX: &str =
    "578960446186580977117854925043439539266.34992332820282019728792003956564819967";
/// BIGNUMERIC's smallest value, −2^255·10^-38.
pub const BIGNUMERIC_MIN: &str =
    "-578960446186580977117854925043439539266.34992332820282019728792003956564819968";
/// Digits after the point BigQuery's NUMERIC keeps.
pub const NUMERIC_SCALE: usize = 9;
/// Digits before the point BigQuery's NUMERIC holds.
pub const NUMERIC_INTEGER_DIGITS: usize = 29;
/// Digits after the point BigQuery's BIGNUMERIC keeps.
pub const BIGNUMERIC_SCALE: usize = 38;

/// Why a decimal cannot be written.
const TOO_LARGE_FOR_NUMERIC: &str =
    "its integer part has more than 29 digits, more than NUMERIC holds";
const TOO_LARGE_FOR_BIGNUMERIC: &str = "it is outside BIGNUMERIC's range (-2^255·10^-38 to \
     (2^255-1)·10^-38, about ±5.79e38): its integer part is too large";

/// A decimal in plain notation: sign, integer digits without leading zeros, fraction digits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    integer: String,
    fraction: String,
}

impl Decimal {
    /// `[-]digits[.digits]`, nothing else.
    fn parse(text: &str) -> Option<Decimal> {
        let (negative, body) = match text.strip_prefix('-') {
            Some(body) => (true, body),
            None => (false, text),
        };
        let (integer, fraction) = body.split_once('.').unwrap_or((body, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let fraction_ok = !body.contains('.') || !fraction.is_empty();
        if integer.is_empty() || !all_digits(integer) || !all_digits(fraction) || !fraction_ok {
            return None;
        }
        Some(Decimal {
            negative,
            integer: integer.trim_start_matches('0').to_owned(),
            fraction: fraction.to_owned(),
        })
    }

    /// Rounds half away from zero to `scale` digits after the point; whether the value changed.
    fn round(&mut self, scale: usize) -> Option<bool> {
        let Some(dropped) = self.fraction.get(scale..) else {
            return Some(false);
        };
        let changed = dropped.bytes().any(|b| b != b'0');
        let up = dropped.bytes().next().is_some_and(|b| b >= b'5');
        self.fraction.truncate(scale);
        if up {
            let mut digits: Vec<u8> = format!("{}{}", self.integer, self.fraction).into_bytes();
            let mut carry = true;
            for digit in digits.iter_mut().rev() {
                if *digit == b'9' {
                    *digit = b'0';
                } else {
                    *digit = digit.checked_add(1)?;
                    carry = false;
                    break;
                }
            }
            if carry {
                digits.insert(0, b'1');
            }
            let split = digits.len().checked_sub(scale)?;
            let fraction = digits.split_off(split);
            self.integer = String::from_utf8(digits).ok()?;
            self.fraction = String::from_utf8(fraction).ok()?;
        }
        Some(changed)
    }

    fn is_zero(&self) -> bool {
        self.integer.is_empty() && self.fraction.bytes().all(|b| b == b'0')
    }

    /// Whether the value lies within BIGNUMERIC's range (its fraction has at most 38 digits).
    fn fits_bignumeric(&self) -> bool {
        let scaled = format!("{}{:0<38}", self.integer, self.fraction);
        let scaled = scaled.trim_start_matches('0');
        let bound = if self.negative {
            BIGNUMERIC_MIN_DIGITS
        } else {
            BIGNUMERIC_MAX_DIGITS
        };
        (scaled.len(), scaled) <= (bound.len(), bound)
    }

    /// Plain notation without trailing zeros after the point and without minus zero.
    fn text(&self) -> String {
        let integer = if self.integer.is_empty() {
            "0"
        } else {
            &self.integer
        };
        let fraction = self.fraction.trim_end_matches('0');
        let sign = if self.negative && !self.is_zero() {
            "-"
        } else {
            ""
        };
        if fraction.is_empty() {
            format!("{sign}{integer}")
        } else {
            format!("{sign}{integer}.{fraction}")
        }
    }
}

/// A `numeric` or `money` value as NUMERIC or BIGNUMERIC text: NaN and infinities become NULL,
/// more digits after the point than the type keeps are rounded half away from zero, an integer
/// part the type cannot hold is an error.
fn numeric(pg_type: &str, bq_type: BqType, text: &str) -> Result<Converted, &'static str> {
    let null = |adjustment| {
        Ok(Converted {
            value: BqValue::Null,
            adjustment: Some(adjustment),
        })
    };
    match text {
        "NaN" => return null(Adjustment::NanToNull),
        "Infinity" | "-Infinity" => return null(Adjustment::InfinityToNull),
        _ => {}
    }
    let cleaned = if pg_type == "money" {
        money_digits(text).ok_or("not a money amount")?
    } else {
        text.to_owned()
    };
    let mut decimal = Decimal::parse(&cleaned).ok_or("not a decimal number")?;
    let scale = match bq_type {
        BqType::Numeric => NUMERIC_SCALE,
        _ => BIGNUMERIC_SCALE,
    };
    let longer = decimal.fraction.len() > scale;
    let rounded = decimal.round(scale).ok_or("not a decimal number")?;
    let fits = match bq_type {
        BqType::Numeric => decimal.integer.len() <= NUMERIC_INTEGER_DIGITS,
        _ => decimal.fits_bignumeric(),
    };
    if !fits {
        return Err(match bq_type {
            BqType::Numeric => TOO_LARGE_FOR_NUMERIC,
            _ => TOO_LARGE_FOR_BIGNUMERIC,
        });
    }
    Ok(Converted {
        // A value kept exactly keeps its text (trailing zeros included).
        value: BqValue::Text(if longer { decimal.text() } else { cleaned }),
        adjustment: rounded.then_some(Adjustment::Rounded),
    })
}

/// Money prints with a currency symbol and group separators (`-$1,234.56` with lc_monetary C):
/// keeps the sign, the digits and the point.
fn money_digits(text: &str) -> Option<String> {
    let negative = text.starts_with('-') || text.starts_with('(');
    let digits: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    if digits.is_empty() {
        return None;
    }
    Some(if negative {
        format!("-{digits}")
    } else {
        digits
    })
}

fn bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    let nibble = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    hex.chunks_exact(2)
        .map(|pair| {
            let high = nibble(*pair.first()?)?;
            let low = nibble(*pair.get(1)?)?;
            high.checked_mul(16)?.checked_add(low)
        })
        .collect()
}

fn date(text: &str) -> Option<Converted> {
    let (days, adjustment) = match text {
        "infinity" => (MAX_DATE_DAYS, Some(Adjustment::InfinityToMax)),
        "-infinity" => (MIN_DATE_DAYS, Some(Adjustment::MinusInfinityToMin)),
        _ => {
            let days = parse_date(text)?;
            if days > i64::from(MAX_DATE_DAYS) {
                (MAX_DATE_DAYS, Some(Adjustment::ClampedToMax))
            } else if days < i64::from(MIN_DATE_DAYS) {
                (MIN_DATE_DAYS, Some(Adjustment::ClampedToMin))
            } else {
                (i32::try_from(days).ok()?, None)
            }
        }
    };
    Some(Converted {
        value: BqValue::Date(days),
        adjustment,
    })
}

/// Microseconds since the epoch of a timestamp text (parsed by `parse`), within BigQuery's
/// range, with the rule that brought it there.
fn instant(text: &str, parse: fn(&str) -> Option<i128>) -> Option<(i64, Option<Adjustment>)> {
    Some(match text {
        "infinity" => (MAX_TIMESTAMP_US, Some(Adjustment::InfinityToMax)),
        "-infinity" => (MIN_TIMESTAMP_US, Some(Adjustment::MinusInfinityToMin)),
        _ => {
            let micros = parse(text)?;
            if micros > i128::from(MAX_TIMESTAMP_US) {
                (MAX_TIMESTAMP_US, Some(Adjustment::ClampedToMax))
            } else if micros < i128::from(MIN_TIMESTAMP_US) {
                (MIN_TIMESTAMP_US, Some(Adjustment::ClampedToMin))
            } else {
                (i64::try_from(micros).ok()?, None)
            }
        }
    })
}

/// BigQuery's last TIME, 23:59:59.999999, in microseconds.
const LAST_TIME_US: i64 = 86_399_999_999;

fn time(text: &str) -> Option<Converted> {
    let micros = parse_time_of_day(text)?;
    let (micros, adjustment) = if micros >= DAY_US {
        (LAST_TIME_US, Some(Adjustment::TimeOf2400))
    } else {
        (micros, None)
    };
    Some(Converted {
        value: BqValue::Text(format_time_of_day(micros)),
        adjustment,
    })
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

    fn adjusted(pg: &str, bq: BqType, text: &str) -> (BqValue, Option<Adjustment>) {
        let c = convert_with_adjustment(pg, bq, text).unwrap();
        (c.value, c.adjustment)
    }

    #[test]
    fn instants_outside_bigquery_are_clamped_and_reported() {
        use Adjustment::*;
        let max_datetime = BqValue::Text("9999-12-31 23:59:59.999999".into());
        let min_datetime = BqValue::Text("0001-01-01 00:00:00.000000".into());
        for (pg, bq, text, value, adjustment) in [
            (
                "date",
                BqType::Date,
                "infinity",
                BqValue::Date(MAX_DATE_DAYS),
                Some(InfinityToMax),
            ),
            (
                "date",
                BqType::Date,
                "-infinity",
                BqValue::Date(MIN_DATE_DAYS),
                Some(MinusInfinityToMin),
            ),
            (
                "date",
                BqType::Date,
                "5874897-12-31",
                BqValue::Date(MAX_DATE_DAYS),
                Some(ClampedToMax),
            ),
            (
                "date",
                BqType::Date,
                "4714-11-24 BC",
                BqValue::Date(MIN_DATE_DAYS),
                Some(ClampedToMin),
            ),
            (
                "date",
                BqType::Date,
                "9999-12-31",
                BqValue::Date(MAX_DATE_DAYS),
                None,
            ),
            (
                "date",
                BqType::Date,
                "0001-01-01",
                BqValue::Date(MIN_DATE_DAYS),
                None,
            ),
            (
                "timestamp",
                BqType::Datetime,
                "294276-12-31 23:59:59.999999",
                max_datetime.clone(),
                Some(ClampedToMax),
            ),
            (
                "timestamp",
                BqType::Datetime,
                "10000-01-01 00:00:00",
                max_datetime.clone(),
                Some(ClampedToMax),
            ),
            (
                "timestamp",
                BqType::Datetime,
                "9999-12-31 23:59:59.999999",
                max_datetime.clone(),
                None,
            ),
            (
                "timestamp",
                BqType::Datetime,
                "4714-11-24 00:00:00 BC",
                min_datetime.clone(),
                Some(ClampedToMin),
            ),
            (
                "timestamp",
                BqType::Datetime,
                "infinity",
                max_datetime,
                Some(InfinityToMax),
            ),
            (
                "timestamp",
                BqType::Datetime,
                "-infinity",
                min_datetime,
                Some(MinusInfinityToMin),
            ),
            (
                "timestamptz",
                BqType::Timestamp,
                "294276-12-31 23:59:59.999999+00",
                BqValue::Timestamp(MAX_TIMESTAMP_US),
                Some(ClampedToMax),
            ),
            (
                "timestamptz",
                BqType::Timestamp,
                "4714-11-24 00:00:00+00 BC",
                BqValue::Timestamp(MIN_TIMESTAMP_US),
                Some(ClampedToMin),
            ),
            (
                "timestamptz",
                BqType::Timestamp,
                "0001-01-01 00:00:00+00",
                BqValue::Timestamp(MIN_TIMESTAMP_US),
                None,
            ),
            (
                "timestamptz",
                BqType::Timestamp,
                "0001-01-01 00:00:00+01",
                BqValue::Timestamp(MIN_TIMESTAMP_US),
                Some(ClampedToMin),
            ),
            (
                "timestamptz",
                BqType::Timestamp,
                "-infinity",
                BqValue::Timestamp(MIN_TIMESTAMP_US),
                Some(MinusInfinityToMin),
            ),
            (
                "time",
                BqType::Time,
                "24:00:00",
                BqValue::Text("23:59:59.999999".into()),
                Some(TimeOf2400),
            ),
            (
                "time",
                BqType::Time,
                "23:59:59.999999",
                BqValue::Text("23:59:59.999999".into()),
                None,
            ),
        ] {
            assert_eq!(adjusted(pg, bq, text), (value, adjustment), "{pg} {text}");
        }
    }

    #[test]
    fn numerics_beyond_bigquery_are_nulled_rounded_or_refused() {
        use Adjustment::*;
        let big = |text: &str| adjusted("numeric", BqType::BigNumeric, text);
        let text = |s: &str| BqValue::Text(s.to_owned());
        assert_eq!(big("NaN"), (BqValue::Null, Some(NanToNull)));
        assert_eq!(big("Infinity"), (BqValue::Null, Some(InfinityToNull)));
        assert_eq!(big("-Infinity"), (BqValue::Null, Some(InfinityToNull)));
        // 38 digits after the point are kept; the 39th rounds half away from zero.
        let kept = format!("0.{}", "1".repeat(38));
        assert_eq!(big(&kept), (text(&kept), None));
        assert_eq!(
            big(&format!("0.{}5", "0".repeat(38))),
            (text(&format!("0.{}1", "0".repeat(37))), Some(Rounded))
        );
        assert_eq!(
            big(&format!("-0.{}49999", "0".repeat(38))),
            (text("0"), Some(Rounded))
        );
        assert_eq!(
            big(&format!("-9.{}5", "9".repeat(38))),
            (text("-10"), Some(Rounded))
        );
        // Zeros beyond the scale change nothing.
        assert_eq!(big(&format!("1.5{}", "0".repeat(60))), (text("1.5"), None));
        // BIGNUMERIC's exact limits, and one step beyond them.
        let (max, min) = (BIGNUMERIC_MAX, BIGNUMERIC_MIN);
        assert_eq!(max.replace('.', ""), BIGNUMERIC_MAX_DIGITS);
        assert_eq!(min.replace(['.', '-'], ""), BIGNUMERIC_MIN_DIGITS);
        assert_eq!(big(max), (text(max), None));
        assert_eq!(big(min), (text(min), None));
        let beyond_max = format!("{}8", &max[..max.len() - 1]);
        let beyond_min = format!("{}9", &min[..min.len() - 1]);
        assert!(big_err(&beyond_max).contains("outside BIGNUMERIC"));
        assert!(big_err(&beyond_min).contains("outside BIGNUMERIC"));
        assert_eq!(
            big(&format!("{max}4")),
            (text(max), Some(Rounded)),
            "rounding down stays within range"
        );
        assert!(big_err(&format!("{max}5")).contains("outside BIGNUMERIC"));
        // A 1000-digit integer part cannot be held; a 1000-digit fraction is rounded.
        assert!(big_err(&"9".repeat(1000)).contains("outside BIGNUMERIC"));
        assert_eq!(
            big(&format!("1.{}", "3".repeat(1000))),
            (text(&format!("1.{}", "3".repeat(38))), Some(Rounded))
        );
        // NUMERIC: 9 digits after the point, 29 before.
        let num = |t: &str| adjusted("numeric", BqType::Numeric, t);
        assert_eq!(num("1.0000000005"), (text("1.000000001"), Some(Rounded)));
        let largest = format!("{}.{}", "9".repeat(29), "9".repeat(9));
        assert_eq!(num(&largest), (text(&largest), None));
        assert!(
            convert(
                "numeric",
                BqType::Numeric,
                &format!("{}.{}5", "9".repeat(29), "9".repeat(9))
            )
            .is_err()
        );
        for garbage in [
            "", "-", ".", "1.", ".5", "1..2", "1e5", "+1", "--1", "1 ", "١",
        ] {
            assert!(
                convert("numeric", BqType::BigNumeric, garbage).is_err(),
                "{garbage:?}"
            );
        }
    }

    fn big_err(text: &str) -> String {
        convert("numeric", BqType::BigNumeric, text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn money_limits_convert_exactly() {
        for (money, numeric) in [
            ("$92,233,720,368,547,758.07", "92233720368547758.07"),
            ("-$92,233,720,368,547,758.08", "-92233720368547758.08"),
            ("$0.00", "0.00"),
            ("-$0.01", "-0.01"),
        ] {
            assert_eq!(
                adjusted("money", BqType::Numeric, money),
                (BqValue::Text(numeric.into()), None)
            );
        }
        assert!(convert("money", BqType::Numeric, "$").is_err());
        assert!(convert("money", BqType::Numeric, "$1.2.3").is_err());
    }

    /// numeric(p,s) becomes NUMERIC when s ≤ 9 and p − s ≤ 29, BIGNUMERIC when s ≤ 38 and
    /// p − s ≤ 38: every value of such a column fits without rounding. The values of
    /// numeric(p,s) are bounded by ±(10^(p−s) − 10^−s) with at most s digits after the point,
    /// so checking those extremes (and the smallest step) for every (p,s) proves it.
    #[test]
    fn constrained_numerics_always_fit_their_bigquery_type() {
        use crate::bq_types::bq_type_for;
        for precision in 1..=1000u32 {
            for scale in 0..=precision {
                let modifier = i32::try_from((precision << 16 | scale) + 4).unwrap();
                let bq = bq_type_for("numeric", modifier);
                if bq == BqType::String {
                    continue;
                }
                let integer = "9".repeat((precision - scale) as usize);
                let integer = if integer.is_empty() {
                    "0".to_owned()
                } else {
                    integer
                };
                let fraction = "9".repeat(scale as usize);
                let point = if scale > 0 { "." } else { "" };
                let step = if scale > 0 {
                    format!("0.{}1", "0".repeat(scale as usize - 1))
                } else {
                    "1".to_owned()
                };
                for text in [
                    format!("{integer}{point}{fraction}"),
                    format!("-{integer}{point}{fraction}"),
                    step.clone(),
                    format!("-{step}"),
                ] {
                    assert_eq!(
                        adjusted("numeric", bq, &text),
                        (BqValue::Text(text.clone()), None),
                        "numeric({precision},{scale}) as {bq}"
                    );
                }
                assert!(precision <= 76, "numeric({precision},{scale}) is {bq}");
            }
        }
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        for (pg, bq, text) in [
            (
                "timestamptz",
                BqType::Timestamp,
                "2024-01-01 00:00:00+99999999999999999999",
            ),
            (
                "timestamptz",
                BqType::Timestamp,
                "2024-01-01 00:00:00+9999999999",
            ),
            ("date", BqType::Date, "9223372036854775807-01-01"),
            ("date", BqType::Date, "9223372036854775807-01-01 BC"),
            (
                "timestamp",
                BqType::Datetime,
                "9223372036854775807-12-31 23:59:59",
            ),
            ("date", BqType::Date, "2024-02-30"),
            ("time", BqType::Time, "25:00:00"),
            ("time", BqType::Time, "12:00:00.-5"),
            ("bytea", BqType::Bytes, "\\xaé1"),
            ("bytea", BqType::Bytes, "\\x+f"),
            ("int8", BqType::Int64, "9223372036854775808"),
            ("int4[]", BqType::Json, &"{".repeat(100_000)),
        ] {
            assert!(convert(pg, bq, text).is_err(), "{pg} {text:.40}");
        }
    }

    #[test]
    fn rules_have_stable_names() {
        for rule in Adjustment::ALL {
            assert_eq!(
                serde_json::to_value(rule).unwrap(),
                serde_json::Value::String(rule.name().to_owned())
            );
        }
        assert_eq!(
            Adjustment::rules_for("numeric", BqType::BigNumeric),
            &[
                Adjustment::NanToNull,
                Adjustment::InfinityToNull,
                Adjustment::Rounded
            ]
        );
        assert!(Adjustment::rules_for("money", BqType::Numeric).is_empty());
        assert!(Adjustment::rules_for("int4[]", BqType::Json).is_empty());
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
