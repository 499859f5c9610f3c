//! Property tests of value conversion: random and adversarial text through every parser and
//! every conversion path never panics, and valid values convert as documented.

use crate::bq_types::{BqType, bq_type_for};
use crate::bq_values::{Adjustment, BqValue, Converted, convert_with_adjustment};
use crate::civil::{
    DAY_US, MAX_DATE_DAYS, MAX_TIMESTAMP_US, MIN_DATE_DAYS, MIN_TIMESTAMP_US, civil_from_days,
    days_from_civil, format_timestamp_us, parse_date, parse_offset, parse_time_of_day,
    parse_timestamp, parse_timestamptz,
};
use crate::pg_array::parse_array;
use proptest::prelude::*;

/// Every PostgreSQL type of the type mapping (a domain travels as its base type), arrays too.
const PG_TYPES: &[&str] = &[
    "int2",
    "int4",
    "int8",
    "oid",
    "float4",
    "float8",
    "numeric",
    "money",
    "bool",
    "text",
    "varchar",
    "bpchar",
    "char",
    "name",
    "uuid",
    "enum",
    "inet",
    "cidr",
    "macaddr",
    "macaddr8",
    "xml",
    "tsvector",
    "bit",
    "varbit",
    "bytea",
    "date",
    "time",
    "timetz",
    "timestamp",
    "timestamptz",
    "interval",
    "json",
    "jsonb",
    "int4[]",
    "int8[]",
    "float8[]",
    "bool[]",
    "text[]",
    "numeric[]",
    "jsonb[]",
    "date[]",
    "timestamptz[]",
    "bytea[]",
];

/// numeric type modifiers: unconstrained, NUMERIC, BIGNUMERIC and STRING sized.
const NUMERIC_MODIFIERS: &[i32] = &[
    -1,
    (10 << 16 | 2) + 4,
    (40 << 16 | 12) + 4,
    (100 << 16 | 50) + 4,
];

/// Every BigQuery type, so that each conversion path sees every kind of text.
const BQ_TYPES: &[BqType] = &[
    BqType::Int64,
    BqType::Float64,
    BqType::Numeric,
    BqType::BigNumeric,
    BqType::Bool,
    BqType::String,
    BqType::Bytes,
    BqType::Date,
    BqType::Time,
    BqType::Datetime,
    BqType::Timestamp,
    BqType::Json,
];

/// Characters that PostgreSQL's text forms are made of, to build near-valid garbage.
const ALPHABET: &str = "0123456789-:. +BCx{}\",\\NULLaeEInfityT$()[]=9";

/// Valid-looking values of every kind, including PostgreSQL's extremes.
const SEEDS: &[&str] = &[
    "294276-12-31 23:59:59.999999",
    "294276-12-31 23:59:59.999999+00",
    "4714-11-24 00:00:00 BC",
    "4714-11-24 00:00:00+00 BC",
    "5874897-12-31",
    "4714-11-24 BC",
    "infinity",
    "-infinity",
    "24:00:00",
    "24:00:00-15:59:59",
    "NaN",
    "Infinity",
    "-Infinity",
    "-92233720368547758.08",
    "-$92,233,720,368,547,758.08",
    "$92,233,720,368,547,758.07",
    "P178956970Y7M2147483647DT2562047788H54.775807S",
    "578960446186580977117854925043439539266.34992332820282019728792003956564819967",
    "{{1,2},{3,NULL}}",
    "[0:1]={7,8}",
    "{\"a\\\"b\",NULL,\"\"}",
    "\\x00ff",
    "9223372036854775807",
    "-9223372036854775808",
    "1.7976931348623157e+308",
    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
];

/// Random text: any characters, text over PostgreSQL's alphabet, long digit runs, and seeds
/// with a few characters changed.
fn adversarial() -> impl Strategy<Value = String> {
    let alphabet: Vec<char> = ALPHABET.chars().collect();
    prop_oneof![
        any::<String>(),
        prop::collection::vec(prop::sample::select(alphabet.clone()), 0..40)
            .prop_map(|chars| chars.into_iter().collect()),
        (
            prop::sample::select(vec!["", "-", "0.", "9", "-0."]),
            1..2000usize,
            any::<u8>()
        )
            .prop_map(|(prefix, n, d)| format!(
                "{prefix}{}",
                char::from(b'0' + d % 10).to_string().repeat(n)
            )),
        (
            prop::sample::select(SEEDS.to_vec()),
            prop::collection::vec(
                (any::<prop::sample::Index>(), prop::sample::select(alphabet)),
                0..4
            )
        )
            .prop_map(|(seed, edits)| {
                let mut chars: Vec<char> = seed.chars().collect();
                for (at, c) in edits {
                    let i = at.index(chars.len() + 1);
                    if i < chars.len() && c == '9' {
                        chars.remove(i);
                    } else if i < chars.len() {
                        chars[i] = c;
                    } else {
                        chars.push(c);
                    }
                }
                chars.into_iter().collect()
            }),
    ]
}

/// The value a converted result must hold, whatever it is: within BigQuery's ranges.
fn check_in_range(converted: &Converted) {
    match &converted.value {
        BqValue::Date(d) => assert!((MIN_DATE_DAYS..=MAX_DATE_DAYS).contains(d)),
        BqValue::Timestamp(t) => assert!((MIN_TIMESTAMP_US..=MAX_TIMESTAMP_US).contains(t)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Any text of any column type converts or is refused: never a panic.
    #[test]
    fn any_text_of_any_type_never_panics(text in adversarial()) {
        for pg_type in PG_TYPES {
            let modifiers: &[i32] = if *pg_type == "numeric" { NUMERIC_MODIFIERS } else { &[-1] };
            for modifier in modifiers {
                let bq_type = bq_type_for(pg_type, *modifier);
                if let Ok(converted) = convert_with_adjustment(pg_type, bq_type, &text) {
                    check_in_range(&converted);
                }
            }
        }
        for bq_type in BQ_TYPES {
            if let Ok(converted) = convert_with_adjustment("numeric", *bq_type, &text) {
                check_in_range(&converted);
            }
        }
    }

    /// The parsers themselves, on any text.
    #[test]
    fn parsers_never_panic(text in adversarial()) {
        let _ = parse_date(&text);
        let _ = parse_time_of_day(&text);
        let _ = parse_timestamp(&text);
        let _ = parse_timestamptz(&text);
        let _ = parse_offset(&text);
        for element in ["int8", "float8", "bool", "jsonb", "text"] {
            let _ = parse_array(&text, element);
        }
    }

    /// Day arithmetic is total over every i64 and exact over far more than PostgreSQL's years.
    #[test]
    fn days_round_trip(days in any::<i64>(), near in -4_000_000_000i64..4_000_000_000) {
        let _ = civil_from_days(days);
        let (y, m, d) = civil_from_days(near);
        prop_assert_eq!(days_from_civil(y, m, d), Some(near));
        prop_assert_eq!(days_from_civil(y, m, d.saturating_add(40)), None);
    }

    /// A timestamp anywhere in PostgreSQL's range (4714-11-24 BC to 294276-12-31), printed as PostgreSQL prints it, parses back
    /// to its microseconds, and converts clamped to BigQuery's range by the documented rule.
    #[test]
    fn timestamps_parse_and_clamp(
        micros in -210_866_803_200_000_000i128..=9_224_318_015_999_999_999i128,
    ) {
        let days = i64::try_from(micros.div_euclid(i128::from(DAY_US))).unwrap();
        let of_day = i64::try_from(micros.rem_euclid(i128::from(DAY_US))).unwrap();
        let (year, month, day) = civil_from_days(days);
        let time = &format_timestamp_us(of_day)[11..];
        let (year, bc) = if year <= 0 { (1 - year, " BC") } else { (year, "") };
        let text = format!("{year:04}-{month:02}-{day:02} {time}");
        prop_assert_eq!(parse_timestamp(&format!("{text}{bc}")), Some(micros));
        prop_assert_eq!(parse_timestamptz(&format!("{text}+00{bc}")), Some(micros));
        let converted =
            convert_with_adjustment("timestamptz", BqType::Timestamp, &format!("{text}+00{bc}"))
                .unwrap();
        let (expected, rule) = if micros > i128::from(MAX_TIMESTAMP_US) {
            (MAX_TIMESTAMP_US, Some(Adjustment::ClampedToMax))
        } else if micros < i128::from(MIN_TIMESTAMP_US) {
            (MIN_TIMESTAMP_US, Some(Adjustment::ClampedToMin))
        } else {
            (i64::try_from(micros).unwrap(), None)
        };
        prop_assert_eq!(converted.value, BqValue::Timestamp(expected));
        prop_assert_eq!(converted.adjustment, rule);
    }

    /// Decimals up to 38 significant digits: rounding to 9 places (NUMERIC) agrees with integer
    /// arithmetic, half away from zero, and is reported exactly when the value changes.
    #[test]
    fn decimals_round_half_away_from_zero(mantissa in any::<i128>(), scale in 0u32..=38) {
        let magnitude = mantissa.unsigned_abs().to_string();
        let scale_len = scale as usize;
        let padded = format!("{magnitude:0>width$}", width = scale_len + 1);
        let (integer, fraction) = padded.split_at(padded.len() - scale_len);
        let sign = if mantissa < 0 { "-" } else { "" };
        let point = if scale > 0 { "." } else { "" };
        let text = format!("{sign}{integer}{point}{fraction}");
        let result = convert_with_adjustment("numeric", BqType::Numeric, &text);
        // Expected: |mantissa| / 10^(scale-9), rounded half away from zero.
        let (units, changed) = if scale > 9 {
            let divisor = 10u128.pow(scale - 9);
            let magnitude = mantissa.unsigned_abs();
            let (q, r) = (magnitude / divisor, magnitude % divisor);
            (if r * 2 >= divisor { q + 1 } else { q }, r != 0)
        } else {
            (mantissa.unsigned_abs().saturating_mul(10u128.pow(9 - scale)), false)
        };
        if units >= 10u128.pow(38) {
            prop_assert!(result.is_err(), "{}", text);
            return Ok(());
        }
        let converted = result.unwrap();
        let digits = format!("{units:0>10}");
        let (whole, part) = digits.split_at(digits.len() - 9);
        let whole = whole.trim_start_matches('0');
        let expected = format!(
            "{}{}{}",
            if mantissa < 0 && units > 0 { "-" } else { "" },
            if whole.is_empty() { "0" } else { whole },
            if part.trim_end_matches('0').is_empty() { String::new() } else { format!(".{}", part.trim_end_matches('0')) }
        );
        let BqValue::Text(written) = &converted.value else { panic!("{:?}", converted.value) };
        prop_assert_eq!(normalise(written), expected, "{}", text);
        prop_assert_eq!(converted.adjustment, changed.then_some(Adjustment::Rounded));
    }

    /// Any time of day PostgreSQL prints converts exactly, 24:00:00 by its rule.
    #[test]
    fn times_of_day(micros in 0i64..=DAY_US) {
        let text = if micros == DAY_US {
            "24:00:00".to_owned()
        } else {
            format_timestamp_us(micros)[11..].trim_end_matches('0').trim_end_matches('.').to_owned()
        };
        prop_assert_eq!(parse_time_of_day(&text), Some(micros));
        let converted = convert_with_adjustment("time", BqType::Time, &text).unwrap();
        prop_assert_eq!(converted.adjustment, (micros == DAY_US).then_some(Adjustment::TimeOf2400));
    }

    /// Dates anywhere in PostgreSQL's range.
    #[test]
    fn dates_parse_and_clamp(days in -2_440_588i64..=2_145_042_905) {
        let (year, month, day) = civil_from_days(days);
        let text = if year <= 0 {
            format!("{:04}-{month:02}-{day:02} BC", 1 - year)
        } else {
            format!("{year:04}-{month:02}-{day:02}")
        };
        prop_assert_eq!(parse_date(&text), Some(days));
        let converted = convert_with_adjustment("date", BqType::Date, &text).unwrap();
        let expected = days.clamp(i64::from(MIN_DATE_DAYS), i64::from(MAX_DATE_DAYS));
        prop_assert_eq!(converted.value, BqValue::Date(i32::try_from(expected).unwrap()));
    }
}

/// Plain decimal without trailing zeros after the point.
fn normalise(text: &str) -> String {
    match text.split_once('.') {
        Some((whole, part)) if !part.trim_end_matches('0').is_empty() => {
            format!("{whole}.{}", part.trim_end_matches('0'))
        }
        Some((whole, _)) => whole.to_owned(),
        None => text.to_owned(),
    }
}
