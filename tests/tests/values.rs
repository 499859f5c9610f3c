//! Property test of value conversion, end to end: values of every type of
//! `services/core/docs/type-mapping.md` are generated across the type's whole range from a seed,
//! printed by PostgreSQL itself (over a connection with pg2bq's session settings), converted by
//! pg2bq, and compared with the documented mapping computed independently from the generated
//! ground truth (microseconds as `i128` clamped by the rule, decimals rounded with big-integer
//! arithmetic, texts formatted here, ...), never by running pg2bq's parsers on it.
//!
//! The seed is printed; `PG2BQ_VALUES_SEED=<seed> cargo test -p pg2bq-e2e --test values` replays
//! a run. Column types are read with pg2bq's catalogue reader, so domains and enums are named as
//! capture names them. Needs the local stack's PostgreSQL.

use pg2bq_core::bq_types::{BqType, bq_type_for};
use pg2bq_core::bq_values::{Adjustment, BqValue, convert_with_adjustment};
use pg2bq_core::pg_connect::connect_sql;
use pg2bq_core::wire::ColumnSpec;
use pg2bq_e2e::pipeline::recreate_database;
use pg2bq_e2e::stack::Stack;
use pg2bq_source::catalog::Catalog;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

const DATABASE: &str = "e2e_values";

/// Values generated per column (plus each type's fixed extremes).
const VALUES: usize = 300;

const SCHEMA: &str = r#"
CREATE SCHEMA v;
CREATE TYPE v.mood AS ENUM ('sad', 'happy', 'with space', 'quote''s "q"', 'émoji 😀', 'NULL', 'a,b{c}');
CREATE DOMAIN v.cents AS numeric(10, 2);
CREATE DOMAIN v.posint AS int4 CHECK (VALUE > 0);
CREATE DOMAIN v.day AS date;
CREATE DOMAIN v.tags AS text[];
CREATE TABLE v.t (
    i2 smallint, i4 integer, i8 bigint, o oid, f4 real, f8 double precision,
    n numeric, n_num numeric(38, 9), n_small numeric(5, 2), n_big numeric(76, 38),
    n_str numeric(100, 50), m money, b boolean, t text, vc varchar(100), c char(5), u uuid,
    e v.mood, ip inet, cd cidr, mac macaddr, by bytea, d date, tm time, ts timestamp,
    tz timestamptz, tt timetz, iv interval, j json, jb jsonb, bits varbit, x xml,
    a_i8 int8[], a_t text[], a_f8 float8[], a_b bool[], a_n numeric[], a_d date[], a_jb jsonb[],
    dom_n v.cents, dom_i v.posint, dom_d v.day, dom_a v.tags
);
CREATE PUBLICATION e2e_values FOR TABLE v.t;
"#;

/// The labels of `v.mood`, in order.
const MOOD: &[&str] = &[
    "sad",
    "happy",
    "with space",
    "quote's \"q\"",
    "émoji 😀",
    "NULL",
    "a,b{c}",
];

/// Days since 1970-01-01 of PostgreSQL's first and last date (4714-11-24 BC, 5874897-12-31).
const PG_MIN_DAYS: i64 = -2_440_588;
const PG_MAX_DAYS: i64 = 2_145_042_905;
/// Microseconds since 1970 of PostgreSQL's first and last timestamp (4714-11-24 00:00 BC,
/// 294276-12-31 23:59:59.999999).
const PG_MIN_US: i128 = -210_866_803_200_000_000;
const PG_MAX_US: i128 = 9_224_318_015_999_999_999;
/// BigQuery's DATE and TIMESTAMP range: 0001-01-01 to 9999-12-31 23:59:59.999999.
const BQ_MIN_DAYS: i64 = -719_162;
const BQ_MAX_DAYS: i64 = 2_932_896;
const DAY_US: i128 = 86_400_000_000;
const BQ_MIN_US: i128 = BQ_MIN_DAYS as i128 * DAY_US;
const BQ_MAX_US: i128 = (BQ_MAX_DAYS as i128 + 1) * DAY_US - 1;

/// SplitMix64: small, seedable, good enough to spread values.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: i128, hi: i128) -> i128 {
        let span = (hi - lo) as u128 + 1;
        let wide = (u128::from(self.next()) << 64) | u128::from(self.next());
        lo + (wide % span) as i128
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }

    /// A value in `lo..=hi`: often an extreme or near one, often small, else anywhere.
    fn spread(&mut self, lo: i128, hi: i128) -> i128 {
        match self.below(10) {
            0 => self.pick(&[lo, hi, lo + 1, hi - 1]),
            1..=3 => {
                let magnitude = i128::from(self.next() >> self.below(64));
                let v = if self.chance(50) {
                    -magnitude
                } else {
                    magnitude
                };
                v.clamp(lo, hi)
            }
            _ => self.between(lo, hi),
        }
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    /// Text of any kind: quotes, backslashes, separators, whitespace, accents, emoji, CJK,
    /// combining marks, control characters (not NUL).
    fn text(&mut self, max_chars: usize) -> String {
        const PIECES: &[&str] = &[
            "a", "Z", "0", " ", "  ", "\t", "\n", "\r", "\"", "'", "\\", ",", "{", "}", "(", ")",
            "NULL", "null", "é", "ß", "😀", "中文", "e\u{301}", "\u{1}", "\u{7f}", "\u{a0}",
            "\u{2028}", "$", "%", "|", "∅",
        ];
        let len = match self.below(10) {
            0 => 0,
            1..=7 => (self.below(12) as usize).min(max_chars),
            _ => self.below(max_chars as u64 + 1) as usize,
        };
        let mut out = String::new();
        while out.chars().count() < len {
            let piece = self.pick(PIECES);
            if out.chars().count() + piece.chars().count() > len {
                out.push('x');
            } else {
                out.push_str(piece);
            }
        }
        out
    }
}

/// What pg2bq must make of a value.
enum Want {
    /// Exactly this value.
    Exact(BqValue),
    /// FLOAT64 with these bits (any NaN for NaN).
    Float(f64),
    /// FLOAT64 that is this float4 (any NaN for NaN).
    Float4(f32),
    /// NUMERIC or BIGNUMERIC text equal to this plain decimal (compared without trailing zeros).
    Decimal(String),
    /// JSON text equal to this value.
    Json(Json),
    /// Exactly this JSON text (serde_json's form of the expected value).
    JsonText(String),
    /// The text PostgreSQL printed, which must satisfy the check.
    TextThat(fn(&str, &str) -> bool, String),
    /// An error: BigQuery cannot hold the value.
    Error,
}

/// One generated value: the text PostgreSQL printed is paired with what it must become.
struct Expect {
    want: Want,
    adjustment: Option<Adjustment>,
    truth: String,
}

fn exact(value: BqValue, truth: impl std::fmt::Debug) -> Expect {
    Expect {
        want: Want::Exact(value),
        adjustment: None,
        truth: format!("{truth:?}"),
    }
}

struct Run {
    sql: Client,
    columns: BTreeMap<String, ColumnSpec>,
    failures: Vec<String>,
    checked: usize,
    adjusted: BTreeMap<Adjustment, usize>,
    errors: usize,
    lines: Vec<String>,
}

impl Run {
    /// PostgreSQL's output text of `expr` for each row of the parameter arrays, which are
    /// unnested side by side as `x`, `y`, `z`.
    async fn render(&self, expr: &str, params: &[(&str, &(dyn ToSql + Sync))]) -> Vec<String> {
        let names = ["x", "y", "z"];
        let arrays: Vec<String> = params
            .iter()
            .enumerate()
            .map(|(i, (t, _))| format!("${}::{t}[]", i + 1))
            .collect();
        let sql = format!(
            "SELECT concat({expr}) FROM unnest({}) WITH ORDINALITY AS u({}, i) ORDER BY i",
            arrays.join(", "),
            names[..params.len()].join(", ")
        );
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(_, v)| *v).collect();
        self.sql
            .query(&sql, &values)
            .await
            .unwrap_or_else(|e| panic!("rendering with {sql}: {e}"))
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// Converts each text as column `column` and checks it against its expectation.
    fn check(&mut self, column: &str, texts: &[String], expected: Vec<Expect>) {
        assert_eq!(texts.len(), expected.len(), "{column}");
        let spec = self.columns[column].clone();
        let bq_type = bq_type_for(&spec.pg_type, spec.type_modifier);
        let mut adjusted = 0;
        for (text, expect) in texts.iter().zip(expected) {
            self.checked += 1;
            let result = convert_with_adjustment(&spec.pg_type, bq_type, text);
            let ok = match (&expect.want, &result) {
                (Want::Error, Err(_)) => {
                    self.errors += 1;
                    true
                }
                (Want::Error, Ok(_)) | (_, Err(_)) => false,
                (want, Ok(converted)) => {
                    if let Some(rule) = converted.adjustment {
                        adjusted += 1;
                        *self.adjusted.entry(rule).or_default() += 1;
                    }
                    converted.adjustment == expect.adjustment
                        && matches(want, &converted.value, text)
                }
            };
            if !ok {
                self.failures.push(format!(
                    "{column} ({} as {bq_type}): PostgreSQL printed {} for {}; pg2bq made {}, \
                     expected {} with {:?}",
                    spec.pg_type,
                    clip(&format!("{text:?}")),
                    clip(&expect.truth),
                    clip(&format!("{result:?}")),
                    clip(&describe(&expect.want)),
                    expect.adjustment
                ));
            }
        }
        self.lines.push(format!(
            "  {column:<8} {:<13} → {:<10} {:>6} values, {adjusted:>4} adjusted",
            spec.pg_type,
            bq_type.name(),
            texts.len()
        ));
    }
}

/// At most 300 characters of a text, for messages.
fn clip(text: &str) -> String {
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn describe(want: &Want) -> String {
    match want {
        Want::Exact(v) => format!("{v:?}"),
        Want::Float(f) => format!("Float64({f:?})"),
        Want::Float4(f) => format!("the float4 {f:?}"),
        Want::Decimal(d) => format!("decimal {d}"),
        Want::Json(j) => format!("JSON {j}"),
        Want::JsonText(j) => format!("JSON text {j}"),
        Want::TextThat(_, what) => what.clone(),
        Want::Error => "an error".to_owned(),
    }
}

fn matches(want: &Want, value: &BqValue, pg_text: &str) -> bool {
    match (want, value) {
        (Want::Exact(expected), value) => expected == value,
        (Want::Float(expected), BqValue::Float64(got)) => {
            (expected.is_nan() && got.is_nan()) || expected.to_bits() == got.to_bits()
        }
        (Want::Float4(expected), BqValue::Float64(got)) => {
            (expected.is_nan() && got.is_nan()) || (*got as f32).to_bits() == expected.to_bits()
        }
        (Want::Decimal(expected), BqValue::Text(got)) => normalise_decimal(got) == *expected,
        (Want::Json(expected), BqValue::Text(got)) => {
            serde_json::from_str::<Json>(got).is_ok_and(|v| v == *expected)
        }
        // pg2bq serialises arrays itself: the text is exact.
        (Want::JsonText(expected), BqValue::Text(got)) => got == expected,
        (Want::TextThat(check, _), BqValue::Text(got)) => got == pg_text && check(got, pg_text),
        _ => false,
    }
}

/// A plain decimal without leading zeros, trailing zeros after the point, or minus zero.
fn normalise_decimal(text: &str) -> String {
    let (negative, body) = match text.strip_prefix('-') {
        Some(body) => (true, body),
        None => (false, text),
    };
    let (integer, fraction) = body.split_once('.').unwrap_or((body, ""));
    let integer = integer.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let integer = if integer.is_empty() { "0" } else { integer };
    let zero = integer == "0" && fraction.is_empty();
    let sign = if negative && !zero { "-" } else { "" };
    if fraction.is_empty() {
        format!("{sign}{integer}")
    } else {
        format!("{sign}{integer}.{fraction}")
    }
}

/// A non-negative big integer in base 10^9, little-endian, for the decimal rules.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Big(Vec<u32>);

const LIMB: u64 = 1_000_000_000;

impl Big {
    fn from_decimal(digits: &str) -> Big {
        let mut n = Big(vec![]);
        for d in digits.bytes() {
            n.mul_add(10, u32::from(d - b'0'));
        }
        n
    }

    fn mul_add(&mut self, factor: u32, add: u32) {
        let mut carry = u64::from(add);
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(factor) + carry;
            *limb = (v % LIMB) as u32;
            carry = v / LIMB;
        }
        while carry > 0 {
            self.0.push((carry % LIMB) as u32);
            carry /= LIMB;
        }
        self.trim();
    }

    /// Divides by `divisor` (≤ 10^9), returning whether there was a remainder.
    fn div(&mut self, divisor: u32) -> bool {
        let mut rest = 0u64;
        for limb in self.0.iter_mut().rev() {
            let v = rest * LIMB + u64::from(*limb);
            *limb = (v / u64::from(divisor)) as u32;
            rest = v % u64::from(divisor);
        }
        self.trim();
        rest != 0
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn to_decimal(&self) -> String {
        let mut n = self.clone();
        let mut digits = Vec::new();
        while !n.is_zero() {
            let mut rest = 0u64;
            for limb in n.0.iter_mut().rev() {
                let v = rest * LIMB + u64::from(*limb);
                *limb = (v / 10) as u32;
                rest = v % 10;
            }
            n.trim();
            digits.push(b'0' + rest as u8);
        }
        if digits.is_empty() {
            digits.push(b'0');
        }
        digits.reverse();
        String::from_utf8(digits).unwrap()
    }

    fn less_or_equal(&self, other: &Big) -> bool {
        if self.0.len() != other.0.len() {
            return self.0.len() < other.0.len();
        }
        for (a, b) in self.0.iter().rev().zip(other.0.iter().rev()) {
            if a != b {
                return a < b;
            }
        }
        true
    }
}

/// A generated decimal: sign, integer digits, fraction digits (as typed, zeros included).
#[derive(Debug, Clone)]
struct Dec {
    negative: bool,
    integer: String,
    fraction: String,
}

impl Dec {
    /// As typed into PostgreSQL (sometimes with leading zeros).
    fn input(&self, rng: &mut Rng) -> String {
        let zeros = if rng.chance(10) { "00" } else { "" };
        let integer = if self.integer.is_empty() {
            "0"
        } else {
            &self.integer
        };
        let sign = if self.negative { "-" } else { "" };
        if self.fraction.is_empty() {
            format!("{sign}{zeros}{integer}")
        } else {
            format!("{sign}{zeros}{integer}.{}", self.fraction)
        }
    }

    fn is_zero(&self) -> bool {
        self.integer
            .bytes()
            .chain(self.fraction.bytes())
            .all(|b| b == b'0')
    }

    /// PostgreSQL's output: no leading zeros, the typed fraction digits, no minus zero.
    fn postgres_text(&self) -> String {
        let integer = self.integer.trim_start_matches('0');
        let integer = if integer.is_empty() { "0" } else { integer };
        let sign = if self.negative && !self.is_zero() {
            "-"
        } else {
            ""
        };
        if self.fraction.is_empty() {
            format!("{sign}{integer}")
        } else {
            format!("{sign}{integer}.{}", self.fraction)
        }
    }

    /// The documented rule for a column of `scale` digits after the point whose values must lie
    /// within ±`limit`·10^-scale: rounded half away from zero, an error beyond the limit.
    fn expected(&self, scale: usize, limit: &Big) -> (Want, Option<Adjustment>) {
        let mut n = Big::from_decimal(&format!("{}{}", self.integer, self.fraction));
        let mut changed = false;
        if self.fraction.len() > scale {
            // round(n / 10^k) = floor((floor(2n / 10^k) + 1) / 2)
            let exact = n.clone();
            n.mul_add(2, 0);
            let mut k = self.fraction.len() - scale;
            while k > 0 {
                let step = k.min(9);
                n.div(10u32.pow(step as u32));
                k -= step;
            }
            n.mul_add(1, 1);
            n.div(2);
            // Whether rounding changed the value: n·10^k ≠ the exact value.
            let mut back = n.clone();
            for _ in 0..self.fraction.len() - scale {
                back.mul_add(10, 0);
            }
            changed = back != exact;
        } else {
            for _ in 0..scale - self.fraction.len() {
                n.mul_add(10, 0);
            }
        }
        if !n.less_or_equal(limit) {
            return (Want::Error, None);
        }
        let digits = format!("{:0>width$}", n.to_decimal(), width = scale + 1);
        let (integer, fraction) = digits.split_at(digits.len() - scale);
        let sign = if self.negative { "-" } else { "" };
        let text = normalise_decimal(&format!("{sign}{integer}.{fraction}"));
        (Want::Decimal(text), changed.then_some(Adjustment::Rounded))
    }
}

/// 2^255 − 1 and 2^255 (BIGNUMERIC's limits times 10^38), and 10^38 − 1 (NUMERIC's, times 10^9).
fn limits() -> (Big, Big, Big) {
    let mut power = Big::from_decimal("1");
    for _ in 0..255 {
        power.mul_add(2, 0);
    }
    let min = power.clone();
    let max = Big::from_decimal(&{
        // 2^255 − 1: decrement the decimal digits.
        let mut digits = power.to_decimal().into_bytes();
        let mut i = digits.len() - 1;
        while digits[i] == b'0' {
            digits[i] = b'9';
            i -= 1;
        }
        digits[i] -= 1;
        String::from_utf8(digits).unwrap()
    });
    (max, min, Big::from_decimal(&"9".repeat(38)))
}

fn random_dec(rng: &mut Rng, max_integer: usize, max_fraction: usize) -> Dec {
    let len = |rng: &mut Rng, max: usize| -> usize {
        let choices = [0, 1, 9, 18, 29, 38, 39, 40, 60, 200, 1000];
        let pick = match rng.below(3) {
            0 => rng.pick(&choices),
            _ => rng.below(41) as usize,
        };
        pick.min(max)
    };
    let integer_len = len(rng, max_integer);
    let fraction_len = len(rng, max_fraction);
    Dec {
        negative: rng.chance(50),
        integer: rng.digits(integer_len),
        fraction: rng.digits(fraction_len),
    }
}

/// Year, month, day of days since 1970-01-01 (year 0 = 1 BC), by whole 400-year cycles and then
/// year by year and month by month.
fn civil(days: i64) -> (i64, u32, u32) {
    const CYCLE: i64 = 146_097;
    // 2000-03-01 starts a 400-year cycle; count from there.
    let from_2000 = days - 11_017;
    let cycles = from_2000.div_euclid(CYCLE);
    let mut rest = from_2000.rem_euclid(CYCLE);
    let mut year = 2000 + 400 * cycles; // years starting 1 March
    loop {
        let next_is_leap = leap(year + 1);
        let len = if next_is_leap { 366 } else { 365 };
        if rest < len {
            break;
        }
        rest -= len;
        year += 1;
    }
    let months = [
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
        31,
        if leap(year + 1) { 29 } else { 28 },
    ];
    let mut month = 0;
    while rest >= months[month] {
        rest -= months[month];
        month += 1;
    }
    let (year, month) = if month >= 10 {
        (year + 1, month as u32 - 9)
    } else {
        (year, month as u32 + 3)
    };
    (year, month, rest as u32 + 1)
}

fn leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// A date as PostgreSQL prints it under DateStyle ISO.
fn date_text(days: i64) -> String {
    let (year, month, day) = civil(days);
    if year <= 0 {
        format!("{:04}-{month:02}-{day:02} BC", 1 - year)
    } else {
        format!("{year:04}-{month:02}-{day:02}")
    }
}

/// `HH:MM:SS.ffffff`, as pg2bq writes TIME and the time of DATETIME.
fn time_text(micros: i128) -> String {
    let secs = micros / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        micros % 1_000_000
    )
}

/// A date or timestamp: ±infinity, or days or microseconds since 1970-01-01.
enum When {
    Infinity,
    MinusInfinity,
    At(i128),
}

fn random_instant(rng: &mut Rng, unit: i128, lo: i128, hi: i128) -> When {
    match rng.below(20) {
        0 => When::Infinity,
        1 => When::MinusInfinity,
        2..=3 => {
            let edge = rng.pick(&[BQ_MIN_US / unit, (BQ_MAX_US + 1) / unit]);
            When::At((edge + rng.between(-3, 2)).clamp(lo, hi))
        }
        4..=10 => When::At(rng.between(BQ_MIN_US / unit, BQ_MAX_US / unit)),
        _ => When::At(rng.spread(lo, hi)),
    }
}

/// The documented rule for an instant in `unit`s: clamped to BigQuery's range.
fn clamp_instant(at: &When, unit: i128) -> (i128, Option<Adjustment>) {
    let (min, max) = (BQ_MIN_US / unit, BQ_MAX_US / unit);
    match at {
        When::Infinity => (max, Some(Adjustment::InfinityToMax)),
        When::MinusInfinity => (min, Some(Adjustment::MinusInfinityToMin)),
        When::At(v) if *v > max => (max, Some(Adjustment::ClampedToMax)),
        When::At(v) if *v < min => (min, Some(Adjustment::ClampedToMin)),
        When::At(v) => (*v, None),
    }
}

/// A random JSON value without NUL characters (which jsonb refuses).
fn random_json(rng: &mut Rng, depth: u32) -> Json {
    match rng.below(if depth >= 3 { 5 } else { 7 }) {
        0 => Json::Null,
        1 => Json::Bool(rng.chance(50)),
        2 => json!(rng.spread(i128::from(i64::MIN), i128::from(i64::MAX)) as i64),
        3 => json!(rng.between(-1_000_000_000, 1_000_000_000) as f64 / 1000.0),
        4 => Json::String(rng.text(20).replace('\0', "")),
        5 => Json::Array(
            (0..rng.below(5))
                .map(|_| random_json(rng, depth + 1))
                .collect(),
        ),
        _ => Json::Object(
            (0..rng.below(5))
                .map(|_| (rng.text(8), random_json(rng, depth + 1)))
                .collect(),
        ),
    }
}

/// A PostgreSQL array literal of `items`, each quoted (or NULL), nested as given.
fn array_literal(items: &[Option<String>]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|item| match item {
            None => "NULL".to_owned(),
            Some(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// Arrays of one element type: literals to cast, and the JSON pg2bq must write. Every fifth is
/// two-dimensional, some have lower bounds other than 1, one is huge.
fn arrays(
    rng: &mut Rng,
    count: usize,
    mut element: impl FnMut(&mut Rng) -> (Option<String>, Json),
) -> (Vec<String>, Vec<Expect>) {
    let mut literals = Vec::new();
    let mut expected = Vec::new();
    for k in 0..count {
        let (literal, value) = if k % 5 == 4 {
            let (rows, cols) = (1 + rng.below(3) as usize, 1 + rng.below(4) as usize);
            let mut outer = Vec::new();
            let mut json_rows = Vec::new();
            for _ in 0..rows {
                let (items, values): (Vec<_>, Vec<_>) = (0..cols).map(|_| element(rng)).unzip();
                outer.push(array_literal(&items));
                json_rows.push(Json::Array(values));
            }
            (format!("{{{}}}", outer.join(",")), Json::Array(json_rows))
        } else {
            let len = if k == 0 {
                50_000
            } else {
                rng.below(12) as usize
            };
            let (items, values): (Vec<_>, Vec<_>) = (0..len).map(|_| element(rng)).unzip();
            let literal = array_literal(&items);
            let literal = if k % 7 == 3 && !items.is_empty() {
                format!("[0:{}]={literal}", items.len() - 1)
            } else {
                literal
            };
            (literal, Json::Array(values))
        };
        literals.push(literal);
        expected.push(Expect {
            truth: value.to_string(),
            want: Want::JsonText(value.to_string()),
            adjustment: None,
        });
    }
    (literals, expected)
}

fn float_value(rng: &mut Rng) -> f64 {
    match rng.below(10) {
        0 => rng.pick(&[
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
        ]),
        1..=5 => f64::from_bits(rng.next()),
        _ => (rng.next() as f64 / 2f64.powi(64) - 0.5) * 10f64.powi(rng.between(-30, 30) as i32),
    }
}

fn float_json(v: f64) -> Json {
    if v.is_nan() {
        json!("NaN")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        Json::Number(serde_json::Number::from_f64(v).unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_converts_as_documented_across_its_whole_range() {
    let seed = std::env::var("PG2BQ_VALUES_SEED")
        .ok()
        .map(|s| s.parse::<u64>().expect("PG2BQ_VALUES_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("values property test: seed {seed} (replay: PG2BQ_VALUES_SEED={seed})");
    let started = Instant::now();
    let stack = Stack::from_env();
    recreate_database(&stack, DATABASE).await;
    let sql = connect_sql(&stack.source(DATABASE), "pg2bq-e2e-values")
        .await
        .expect("connect");
    sql.batch_execute(SCHEMA).await.expect("schema");
    let tables = Catalog::new()
        .publication_tables(&sql, DATABASE)
        .await
        .expect("catalogue");
    let columns = tables[0]
        .column_specs()
        .into_iter()
        .map(|c| (c.name.clone(), c))
        .collect();
    let mut run = Run {
        sql,
        columns,
        failures: Vec::new(),
        checked: 0,
        adjusted: BTreeMap::new(),
        errors: 0,
        lines: Vec::new(),
    };
    let mut rng = Rng(seed);

    integers(&mut run, &mut rng).await;
    floats(&mut run, &mut rng).await;
    numerics(&mut run, &mut rng).await;
    texts(&mut run, &mut rng).await;
    identifiers(&mut run, &mut rng).await;
    instants(&mut run, &mut rng).await;
    times(&mut run, &mut rng).await;
    intervals(&mut run, &mut rng).await;
    documents(&mut run, &mut rng).await;
    array_columns(&mut run, &mut rng).await;

    let mut summary = String::new();
    for line in &run.lines {
        let _ = writeln!(summary, "{line}");
    }
    eprintln!(
        "{summary}  {} values in {:.1?}: adjusted {:?}, {} refused as documented (seed {seed})",
        run.checked,
        started.elapsed(),
        run.adjusted,
        run.errors
    );
    assert!(
        run.failures.is_empty(),
        "{} of {} values differ from the documented mapping (replay with PG2BQ_VALUES_SEED={seed}):\n{}",
        run.failures.len(),
        run.checked,
        run.failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    for rule in Adjustment::ALL {
        assert!(
            run.adjusted.contains_key(&rule),
            "no value exercised {rule} (seed {seed})"
        );
    }
}

async fn integers(run: &mut Run, rng: &mut Rng) {
    for (column, cast, lo, hi) in [
        ("i2", "int2", i128::from(i16::MIN), i128::from(i16::MAX)),
        ("i4", "int4", i128::from(i32::MIN), i128::from(i32::MAX)),
        ("i8", "int8", i128::from(i64::MIN), i128::from(i64::MAX)),
        ("o", "oid", 0, i128::from(u32::MAX)),
        ("dom_i", "v.posint", 1, i128::from(i32::MAX)),
    ] {
        let mut values: Vec<i64> = vec![lo as i64, hi as i64];
        values.extend((0..VALUES).map(|_| rng.spread(lo, hi) as i64));
        let texts = run
            .render(&format!("x::{cast}"), &[("int8", &values)])
            .await;
        let expected = values
            .iter()
            .map(|v| exact(BqValue::Int64(*v), v))
            .collect();
        run.check(column, &texts, expected);
    }
    let values: Vec<bool> = (0..VALUES).map(|_| rng.chance(50)).collect();
    let texts = run.render("x", &[("bool", &values)]).await;
    let expected = values.iter().map(|v| exact(BqValue::Bool(*v), v)).collect();
    run.check("b", &texts, expected);
}

async fn floats(run: &mut Run, rng: &mut Rng) {
    let values: Vec<f64> = (0..VALUES).map(|_| float_value(rng)).collect();
    let texts = run.render("x", &[("float8", &values)]).await;
    let expected = values
        .iter()
        .map(|v| Expect {
            want: Want::Float(*v),
            adjustment: None,
            truth: format!("{v:?}"),
        })
        .collect();
    run.check("f8", &texts, expected);

    // float4 is written as the double its shortest text denotes: that double is the float4.
    let singles: Vec<f32> = (0..VALUES)
        .map(|_| match rng.below(4) {
            0 => float_value(rng) as f32,
            _ => f32::from_bits(rng.next() as u32),
        })
        .collect();
    let values: Vec<f64> = singles.iter().map(|v| f64::from(*v)).collect();
    let texts = run.render("x::float4", &[("float8", &values)]).await;
    let expected = singles
        .iter()
        .map(|v| Expect {
            want: Want::Float4(*v),
            adjustment: None,
            truth: format!("{v:?}f32"),
        })
        .collect();
    run.check("f4", &texts, expected);
}

async fn numerics(run: &mut Run, rng: &mut Rng) {
    let (big_max, big_min, numeric_max) = limits();
    let big_max_text =
        "578960446186580977117854925043439539266.34992332820282019728792003956564819967";
    let split = |text: &str, negative: bool| {
        let (integer, fraction) = text.split_once('.').unwrap();
        Dec {
            negative,
            integer: integer.to_owned(),
            fraction: fraction.to_owned(),
        }
    };
    // Unconstrained numeric: BIGNUMERIC, whatever PostgreSQL holds (1000-digit values too).
    let mut decs: Vec<Option<Dec>> = vec![None, None, None];
    let mut max_beyond = split(big_max_text, false);
    max_beyond.fraction.push('5');
    let mut tie = split(&format!("1.{}5", "0".repeat(38)), true);
    tie.fraction.push_str("000");
    let nines = split(&format!("9.{}", "9".repeat(45)), false);
    let last = |digit: char| format!("{}{digit}", &big_max_text[..big_max_text.len() - 1]);
    decs.extend(
        [
            split(big_max_text, false),
            split(&last('8'), true),
            split(&last('8'), false),
            split(&last('9'), true),
            max_beyond,
            tie,
            nines,
        ]
        .into_iter()
        .map(Some),
    );
    decs.extend((0..VALUES).map(|_| Some(random_dec(rng, 1000, 1000))));
    let specials = ["NaN", "Infinity", "-Infinity"];
    let inputs: Vec<String> = decs
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            None => specials[i].to_owned(),
            Some(d) => d.input(rng),
        })
        .collect();
    let texts = run.render("x::numeric", &[("text", &inputs)]).await;
    let expected = decs
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            None => Expect {
                want: Want::Exact(BqValue::Null),
                adjustment: Some(if i == 0 {
                    Adjustment::NanToNull
                } else {
                    Adjustment::InfinityToNull
                }),
                truth: specials[i].to_owned(),
            },
            Some(d) => {
                let limit = if d.negative { &big_min } else { &big_max };
                let (want, adjustment) = d.expected(38, limit);
                Expect {
                    want,
                    adjustment,
                    truth: format!("{:.300}", d.postgres_text()),
                }
            }
        })
        .collect();
    run.check("n", &texts, expected);

    // Constrained numerics hold only what fits their type: never adjusted but for NaN.
    for (column, cast, precision, scale) in [
        ("n_num", "numeric(38, 9)", 38, 9),
        ("n_small", "numeric(5, 2)", 5, 2),
        ("dom_n", "v.cents", 10, 2),
        ("n_big", "numeric(76, 38)", 76, 38),
        ("n_str", "numeric(100, 50)", 100, 50),
    ] {
        let spec = &run.columns[column];
        let bq_type = bq_type_for(&spec.pg_type, spec.type_modifier);
        let mut decs: Vec<Option<Dec>> = vec![None];
        decs.push(Some(Dec {
            negative: true,
            integer: "9".repeat(precision - scale),
            fraction: "9".repeat(scale),
        }));
        decs.extend((0..VALUES).map(|_| Some(random_dec(rng, precision - scale, scale))));
        let inputs: Vec<String> = decs
            .iter()
            .map(|d| d.as_ref().map_or("NaN".to_owned(), |d| d.input(rng)))
            .collect();
        let texts = run
            .render(&format!("x::{cast}"), &[("text", &inputs)])
            .await;
        let expected = decs
            .iter()
            .map(|d| match (d, bq_type) {
                (None, BqType::String) => exact(BqValue::Text("NaN".into()), "NaN"),
                (None, _) => Expect {
                    want: Want::Exact(BqValue::Null),
                    adjustment: Some(Adjustment::NanToNull),
                    truth: "NaN".into(),
                },
                (Some(d), BqType::String) => {
                    // PostgreSQL prints numeric(p,s) with exactly s digits after the point.
                    let padded = Dec {
                        fraction: format!("{:0<scale$}", d.fraction),
                        ..d.clone()
                    };
                    exact(BqValue::Text(padded.postgres_text()), d)
                }
                (Some(d), bq_type) => {
                    let (scale, limit) = if bq_type == BqType::Numeric {
                        (9, &numeric_max)
                    } else {
                        (38, if d.negative { &big_min } else { &big_max })
                    };
                    let (want, adjustment) = d.expected(scale, limit);
                    Expect {
                        want,
                        adjustment,
                        truth: d.postgres_text(),
                    }
                }
            })
            .collect();
        run.check(column, &texts, expected);
    }

    // money: every amount, the limits included, as an exact NUMERIC.
    let mut cents: Vec<i64> = vec![i64::MIN, i64::MAX, 0, -1];
    cents
        .extend((0..VALUES).map(|_| rng.spread(i128::from(i64::MIN), i128::from(i64::MAX)) as i64));
    let texts = run
        .render("(x::numeric * 0.01)::money", &[("int8", &cents)])
        .await;
    let expected = cents
        .iter()
        .map(|c| {
            let magnitude = i128::from(*c).unsigned_abs();
            let sign = if *c < 0 { "-" } else { "" };
            let decimal = format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100);
            Expect {
                want: Want::Decimal(normalise_decimal(&decimal)),
                adjustment: None,
                truth: decimal,
            }
        })
        .collect();
    run.check("m", &texts, expected);
}

async fn texts(run: &mut Run, rng: &mut Rng) {
    let mut values: Vec<String> = (0..VALUES).map(|_| rng.text(100)).collect();
    values.push("x".repeat(200_000));
    values.push(String::new());
    let texts = run.render("x", &[("text", &values)]).await;
    let expected = values
        .iter()
        .map(|v| exact(BqValue::Text(v.clone()), format!("{v:.100}")))
        .collect();
    run.check("t", &texts, expected);

    let values: Vec<String> = (0..VALUES).map(|_| rng.text(100)).collect();
    let texts = run.render("x::varchar(100)", &[("text", &values)]).await;
    let expected = values
        .iter()
        .map(|v| exact(BqValue::Text(v.clone()), v))
        .collect();
    run.check("vc", &texts, expected);

    // char(5) keeps its padding.
    let values: Vec<String> = (0..VALUES).map(|_| rng.text(5)).collect();
    let texts = run.render("x::char(5)", &[("text", &values)]).await;
    let expected = values
        .iter()
        .map(|v| {
            let pad = " ".repeat(5 - v.chars().count());
            exact(BqValue::Text(format!("{v}{pad}")), v)
        })
        .collect();
    run.check("c", &texts, expected);

    let labels: Vec<i32> = (0..VALUES)
        .map(|_| 1 + rng.below(MOOD.len() as u64) as i32)
        .collect();
    let texts = run
        .render("(enum_range(NULL::v.mood))[x]", &[("int4", &labels)])
        .await;
    let expected = labels
        .iter()
        .map(|i| exact(BqValue::Text(MOOD[*i as usize - 1].to_owned()), i))
        .collect();
    run.check("e", &texts, expected);

    let values: Vec<String> = (0..VALUES)
        .map(|_| {
            let len = rng.below(80) as usize;
            (0..len)
                .map(|_| if rng.chance(50) { '1' } else { '0' })
                .collect()
        })
        .collect();
    let texts = run.render("x::varbit", &[("text", &values)]).await;
    let expected = values
        .iter()
        .map(|v| exact(BqValue::Text(v.clone()), v))
        .collect();
    run.check("bits", &texts, expected);

    let values: Vec<String> = (0..VALUES)
        .map(|_| {
            let body: String = (0..rng.below(20))
                .map(|_| char::from(b'a' + rng.below(26) as u8))
                .collect();
            format!("<r a=\"1\">{body}<e/>&amp;</r>")
        })
        .collect();
    let texts = run.render("x::xml", &[("text", &values)]).await;
    let expected = values
        .iter()
        .map(|v| exact(BqValue::Text(v.clone()), v))
        .collect();
    run.check("x", &texts, expected);

    let mut values: Vec<Vec<u8>> = (0..VALUES)
        .map(|_| (0..rng.below(64)).map(|_| rng.next() as u8).collect())
        .collect();
    values.push((0..200_000).map(|_| rng.next() as u8).collect());
    let texts = run.render("x", &[("bytea", &values)]).await;
    let expected = values
        .iter()
        .map(|v| exact(BqValue::Bytes(v.clone()), v.len()))
        .collect();
    run.check("by", &texts, expected);
}

async fn identifiers(run: &mut Run, rng: &mut Rng) {
    // uuid: typed in any accepted form, printed lowercase with hyphens.
    let ids: Vec<u128> = (0..VALUES)
        .map(|_| (u128::from(rng.next()) << 64) | u128::from(rng.next()))
        .collect();
    let canonical = |id: &u128| {
        let hex = format!("{id:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    };
    let inputs: Vec<String> = ids
        .iter()
        .map(|id| match rng.below(3) {
            0 => canonical(id).to_uppercase(),
            1 => format!("{{{:032x}}}", id),
            _ => canonical(id),
        })
        .collect();
    let texts = run.render("x::uuid", &[("text", &inputs)]).await;
    let expected = ids
        .iter()
        .map(|id| exact(BqValue::Text(canonical(id)), id))
        .collect();
    run.check("u", &texts, expected);

    // macaddr: typed in several forms, printed as xx:xx:xx:xx:xx:xx.
    let macs: Vec<[u8; 6]> = (0..VALUES)
        .map(|_| rng.next().to_be_bytes()[..6].try_into().unwrap())
        .collect();
    let inputs: Vec<String> = macs
        .iter()
        .map(|m| {
            let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
            match rng.below(3) {
                0 => format!("{}:{}", &hex[..6], &hex[6..]),
                1 => format!("{}.{}.{}", &hex[..4], &hex[4..8], &hex[8..]).to_uppercase(),
                _ => m
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join("-"),
            }
        })
        .collect();
    let texts = run.render("x::macaddr", &[("text", &inputs)]).await;
    let expected = macs
        .iter()
        .map(|m| {
            let text = m
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":");
            exact(BqValue::Text(text), m)
        })
        .collect();
    run.check("mac", &texts, expected);

    // inet and cidr: IPv4 formatted here; IPv6 (whose compression PostgreSQL chooses) read
    // back and compared with the generated address and prefix.
    for (column, cidr) in [("ip", false), ("cd", true)] {
        let mut inputs = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..VALUES {
            if rng.chance(50) {
                let prefix = rng.below(33) as u32;
                let mut address = rng.next() as u32;
                if cidr {
                    address &= u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
                }
                let address = Ipv4Addr::from(address);
                inputs.push(format!("{address}/{prefix}"));
                let text = if prefix == 32 && !cidr {
                    address.to_string()
                } else {
                    format!("{address}/{prefix}")
                };
                expected.push(exact(BqValue::Text(text), (address, prefix)));
            } else {
                let prefix = rng.below(129) as u32;
                let mut words = [0u16; 8];
                for w in &mut words {
                    *w = if rng.chance(40) { 0 } else { rng.next() as u16 };
                }
                let mut address = u128::from(Ipv6Addr::from(words));
                if cidr {
                    address &= u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
                }
                let address = Ipv6Addr::from(address);
                inputs.push(format!("{address}/{prefix}"));
                let truth = format!("{address}/{prefix}");
                let check: fn(&str, &str) -> bool = if cidr || prefix != 128 {
                    |got, _| ipv6_with_prefix(got)
                } else {
                    |got, _| !got.contains('/') && got.parse::<Ipv6Addr>().is_ok()
                };
                expected.push(Expect {
                    want: Want::TextThat(check, format!("PostgreSQL's text of {truth}")),
                    adjustment: None,
                    truth,
                });
            }
        }
        let cast = if cidr { "cidr" } else { "inet" };
        let texts = run
            .render(&format!("x::{cast}"), &[("text", &inputs)])
            .await;
        // The IPv6 texts must denote the generated address and prefix.
        for ((text, input), expect) in texts.iter().zip(&inputs).zip(&expected) {
            if matches!(expect.want, Want::TextThat(..)) {
                let (address, prefix) = input.split_once('/').unwrap();
                let (got_address, got_prefix) = text.split_once('/').unwrap_or((text, "128"));
                if got_address.parse::<Ipv6Addr>().ok() != address.parse().ok()
                    || got_prefix != prefix
                {
                    run.failures
                        .push(format!("{column}: PostgreSQL printed {text} for {input}"));
                }
            }
        }
        run.check(column, &texts, expected);
    }
}

fn ipv6_with_prefix(text: &str) -> bool {
    text.split_once('/')
        .is_some_and(|(a, p)| a.parse::<Ipv6Addr>().is_ok() && p.parse::<u8>().is_ok())
}

async fn instants(run: &mut Run, rng: &mut Rng) {
    // Dates: 4714-11-24 BC to 5874897-12-31, and ±infinity.
    for column in ["d", "dom_d"] {
        let cast = if column == "d" { "date" } else { "v.day" };
        let mut days: Vec<When> = vec![
            When::At(i128::from(PG_MIN_DAYS)),
            When::At(i128::from(PG_MAX_DAYS)),
        ];
        days.extend((0..VALUES).map(|_| {
            random_instant(
                rng,
                DAY_US,
                i128::from(PG_MIN_DAYS),
                i128::from(PG_MAX_DAYS),
            )
        }));
        let params: Vec<i64> = days.iter().map(sentinel).collect();
        let texts = run
            .render(
                &format!(
                    "CASE WHEN x = {} THEN 'infinity'::{cast} WHEN x = {} THEN '-infinity'::{cast} \
                     ELSE (date '1970-01-01' + x::int4)::{cast} END",
                    i64::MAX,
                    i64::MIN
                ),
                &[("int8", &params)],
            )
            .await;
        let expected = days
            .iter()
            .map(|at| {
                let (days, adjustment) = clamp_instant(at, DAY_US);
                Expect {
                    want: Want::Exact(BqValue::Date(days as i32)),
                    adjustment,
                    truth: format!("{:?}", sentinel(at)),
                }
            })
            .collect();
        run.check(column, &texts, expected);
    }

    // Timestamps with and without time zone: 4714 BC to 294276 AD, and ±infinity.
    let mut instants: Vec<When> = vec![When::At(PG_MIN_US), When::At(PG_MAX_US)];
    instants.extend((0..VALUES).map(|_| random_instant(rng, 1, PG_MIN_US, PG_MAX_US)));
    let (days, micros): (Vec<i64>, Vec<i64>) = instants
        .iter()
        .map(|at| match at {
            When::At(us) => (us.div_euclid(DAY_US) as i64, us.rem_euclid(DAY_US) as i64),
            other => (sentinel(other), 0),
        })
        .unzip();
    for (column, start, cast) in [
        ("ts", "timestamp '1970-01-01'", "timestamp"),
        ("tz", "timestamptz '1970-01-01 00:00:00+00'", "timestamptz"),
    ] {
        let texts = run
            .render(
                &format!(
                    "CASE WHEN x = {} THEN 'infinity'::{cast} WHEN x = {} THEN '-infinity'::{cast} \
                     ELSE {start} + x * interval '1 day' + y * interval '1 microsecond' END",
                    i64::MAX,
                    i64::MIN
                ),
                &[("int8", &days), ("int8", &micros)],
            )
            .await;
        let expected = instants
            .iter()
            .map(|at| {
                let (us, adjustment) = clamp_instant(at, 1);
                let value = if cast == "timestamp" {
                    let day = us.div_euclid(DAY_US) as i64;
                    let text = format!("{} {}", date_text(day), time_text(us.rem_euclid(DAY_US)));
                    BqValue::Text(text)
                } else {
                    BqValue::Timestamp(us as i64)
                };
                Expect {
                    want: Want::Exact(value),
                    adjustment,
                    truth: match at {
                        When::At(us) => format!("{us} µs"),
                        other => format!("{:?}", sentinel(other)),
                    },
                }
            })
            .collect();
        run.check(column, &texts, expected);
    }
}

/// The parameter of an instant: its value, or i64::MAX / i64::MIN for ±infinity.
fn sentinel(at: &When) -> i64 {
    match at {
        When::Infinity => i64::MAX,
        When::MinusInfinity => i64::MIN,
        When::At(v) => *v as i64,
    }
}

async fn times(run: &mut Run, rng: &mut Rng) {
    let day = DAY_US as i64;
    let mut micros: Vec<i64> = vec![0, day - 1, day, day];
    micros.extend((0..VALUES).map(|_| match rng.below(10) {
        0 => day,
        _ => rng.between(0, DAY_US - 1) as i64,
    }));
    let texts = run
        .render(
            &format!(
                "CASE WHEN x = {day} THEN '24:00:00'::time \
                 ELSE time '00:00' + x * interval '1 microsecond' END"
            ),
            &[("int8", &micros)],
        )
        .await;
    let expected = micros
        .iter()
        .map(|us| Expect {
            want: Want::Exact(BqValue::Text(time_text(i128::from(*us.min(&(day - 1)))))),
            adjustment: (*us == day).then_some(Adjustment::TimeOf2400),
            truth: format!("{us} µs"),
        })
        .collect();
    run.check("tm", &texts, expected);

    // timetz: any time of day (24:00:00 too) at any offset PostgreSQL allows (±15:59:59),
    // typed fully spelled out and printed in PostgreSQL's short form; kept as STRING.
    let mut inputs = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..VALUES {
        let us = if rng.chance(5) {
            DAY_US
        } else {
            rng.between(0, DAY_US - 1)
        };
        let offset = match rng.below(4) {
            0 => 0,
            1 => rng.between(-15, 15) * 3600,
            2 => rng.between(-15 * 4, 15 * 4) * 900,
            _ => rng.between(-57_599, 57_599),
        };
        let sign = if offset < 0 { '-' } else { '+' };
        let o = offset.abs();
        let (oh, om, os) = (o / 3600, o / 60 % 60, o % 60);
        let clock = time_text(us);
        inputs.push(format!("{clock}{sign}{oh:02}:{om:02}:{os:02}"));
        let (hms, fraction) = clock.split_once('.').unwrap();
        let fraction = fraction.trim_end_matches('0');
        let mut text = hms.to_owned();
        if !fraction.is_empty() {
            text.push('.');
            text.push_str(fraction);
        }
        let _ = write!(text, "{sign}{oh:02}");
        if om != 0 || os != 0 {
            let _ = write!(text, ":{om:02}");
        }
        if os != 0 {
            let _ = write!(text, ":{os:02}");
        }
        expected.push(exact(BqValue::Text(text), (us, offset)));
    }
    let texts = run.render("x::timetz", &[("text", &inputs)]).await;
    run.check("tt", &texts, expected);
}

async fn intervals(run: &mut Run, rng: &mut Rng) {
    // Any months, days and microseconds, typed as PostgreSQL's verbose form and printed in ISO
    // 8601 (IntervalStyle iso_8601); kept as STRING. From PostgreSQL 17 on, the largest and the
    // smallest interval are `infinity` and `-infinity`, printed (and kept) so.
    let version: i32 = run
        .sql
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .expect("server_version_num")
        .get(0);
    let mut inputs = Vec::new();
    let mut expected = Vec::new();
    for k in 0..VALUES {
        let (months, days, micros) = match k {
            0 => (0, 0, 0),
            1 => (
                i128::from(i32::MAX),
                i128::from(i32::MAX),
                i128::from(i64::MAX),
            ),
            2 => (
                i128::from(i32::MIN),
                i128::from(i32::MIN),
                i128::from(i64::MIN),
            ),
            _ => (
                if rng.chance(30) {
                    0
                } else {
                    rng.spread(i128::from(i32::MIN), i128::from(i32::MAX))
                },
                if rng.chance(30) {
                    0
                } else {
                    rng.spread(i128::from(i32::MIN), i128::from(i32::MAX))
                },
                if rng.chance(20) {
                    0
                } else {
                    rng.spread(i128::from(i64::MIN), i128::from(i64::MAX))
                },
            ),
        };
        let hours = micros / 3_600_000_000;
        let rest = micros % 3_600_000_000;
        let sign = if rest < 0 { "-" } else { "" };
        let rest_abs = rest.abs();
        inputs.push(format!(
            "{months} months {days} days {hours} hours {sign}{}.{:06} seconds",
            rest_abs / 1_000_000,
            rest_abs % 1_000_000
        ));
        let text = match k {
            1 if version >= 170_000 => "infinity".to_owned(),
            2 if version >= 170_000 => "-infinity".to_owned(),
            _ => iso_interval(months, days, micros),
        };
        expected.push(exact(BqValue::Text(text), (months, days, micros)));
    }
    let texts = run.render("x::interval", &[("text", &inputs)]).await;
    run.check("iv", &texts, expected);
}

/// PostgreSQL's ISO 8601 form of an interval: fields truncated toward zero, each with its own
/// sign, zero fields left out, `PT0S` for zero.
fn iso_interval(months: i128, days: i128, micros: i128) -> String {
    if months == 0 && days == 0 && micros == 0 {
        return "PT0S".to_owned();
    }
    let mut out = "P".to_owned();
    let part = |out: &mut String, value: i128, unit: char| {
        if value != 0 {
            let _ = write!(out, "{value}{unit}");
        }
    };
    part(&mut out, months / 12, 'Y');
    part(&mut out, months % 12, 'M');
    part(&mut out, days, 'D');
    let hours = micros / 3_600_000_000;
    let minutes = micros % 3_600_000_000 / 60_000_000;
    let seconds = micros % 60_000_000 / 1_000_000;
    let fraction = micros % 1_000_000;
    if micros != 0 {
        out.push('T');
    }
    part(&mut out, hours, 'H');
    part(&mut out, minutes, 'M');
    if seconds != 0 || fraction != 0 {
        if seconds < 0 || fraction < 0 {
            out.push('-');
        }
        let _ = write!(out, "{}", seconds.abs());
        if fraction != 0 {
            let digits = format!("{:06}", fraction.abs());
            let _ = write!(out, ".{}", digits.trim_end_matches('0'));
        }
        out.push('S');
    }
    out
}

async fn documents(run: &mut Run, rng: &mut Rng) {
    let values: Vec<Json> = (0..VALUES).map(|_| random_json(rng, 0)).collect();
    let inputs: Vec<String> = values.iter().map(Json::to_string).collect();
    for (column, cast) in [("j", "json"), ("jb", "jsonb")] {
        let texts = run
            .render(&format!("x::{cast}"), &[("text", &inputs)])
            .await;
        // JSON is written as PostgreSQL's text (json keeps the input as typed).
        let expected = values
            .iter()
            .zip(&inputs)
            .map(|(v, input)| Expect {
                want: Want::Json(v.clone()),
                adjustment: None,
                truth: format!("{input:.200}"),
            })
            .collect();
        if cast == "json" {
            for (text, input) in texts.iter().zip(&inputs) {
                if text != input {
                    run.failures
                        .push(format!("json: printed {text} for {input}"));
                }
            }
        }
        run.check(column, &texts, expected);
    }
}

async fn array_columns(run: &mut Run, rng: &mut Rng) {
    let count = VALUES / 3;
    let (literals, expected) = arrays(rng, count, |rng| {
        if rng.chance(15) {
            return (None, Json::Null);
        }
        let v = rng.spread(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        (Some(v.to_string()), json!(v))
    });
    let texts = run.render("x::int8[]", &[("text", &literals)]).await;
    run.check("a_i8", &texts, expected);

    for (column, cast) in [("a_t", "text[]"), ("dom_a", "v.tags")] {
        let (literals, expected) = arrays(rng, count, |rng| {
            if rng.chance(15) {
                return (None, Json::Null);
            }
            let s = rng.text(30);
            (Some(s.clone()), Json::String(s))
        });
        let texts = run
            .render(&format!("x::{cast}"), &[("text", &literals)])
            .await;
        run.check(column, &texts, expected);
    }

    let (literals, expected) = arrays(rng, count, |rng| {
        if rng.chance(15) {
            return (None, Json::Null);
        }
        let v = float_value(rng);
        let text = if v.is_nan() {
            "NaN".to_owned()
        } else if v.is_infinite() {
            (if v > 0.0 { "Infinity" } else { "-Infinity" }).to_owned()
        } else {
            format!("{v:e}")
        };
        (Some(text), float_json(v))
    });
    let texts = run.render("x::float8[]", &[("text", &literals)]).await;
    run.check("a_f8", &texts, expected);

    let (literals, expected) = arrays(rng, count, |rng| {
        if rng.chance(15) {
            return (None, Json::Null);
        }
        let v = rng.chance(50);
        (Some(v.to_string()), Json::Bool(v))
    });
    let texts = run.render("x::bool[]", &[("text", &literals)]).await;
    run.check("a_b", &texts, expected);

    // numeric elements stay PostgreSQL's text, whatever their size (no rule applies).
    let (literals, expected) = arrays(rng, count, |rng| match rng.below(20) {
        0 => (None, Json::Null),
        1 => (Some("NaN".into()), json!("NaN")),
        2 => (Some("-Infinity".into()), json!("-Infinity")),
        _ => {
            let d = random_dec(rng, 60, 60);
            (Some(d.input(rng)), Json::String(d.postgres_text()))
        }
    });
    let texts = run.render("x::numeric[]", &[("text", &literals)]).await;
    run.check("a_n", &texts, expected);

    // date elements stay PostgreSQL's text, even beyond BigQuery's range.
    let (literals, expected) = arrays(rng, count, |rng| match rng.below(20) {
        0 => (None, Json::Null),
        1 => (Some("infinity".into()), json!("infinity")),
        _ => {
            let days = rng.spread(i128::from(PG_MIN_DAYS), i128::from(PG_MAX_DAYS)) as i64;
            let text = date_text(days);
            (Some(text.clone()), Json::String(text))
        }
    });
    let texts = run.render("x::date[]", &[("text", &literals)]).await;
    run.check("a_d", &texts, expected);

    // jsonb elements are embedded as JSON (a JSON null and a NULL element are both null).
    let (literals, expected) = arrays(rng, count, |rng| {
        if rng.chance(15) {
            return (None, Json::Null);
        }
        let v = random_json(rng, 1);
        (Some(v.to_string()), v)
    });
    let texts = run.render("x::jsonb[]", &[("text", &literals)]).await;
    run.check("a_jb", &texts, expected);
}
