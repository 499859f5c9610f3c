//! Calendar arithmetic and parsing of PostgreSQL's ISO date/time text forms.
//!
//! Every function here is total: it takes any text (or any integer) and answers without
//! panicking or wrapping. Arithmetic is checked, and what cannot be computed is `None`.
//! PostgreSQL's own ranges (dates from 4714-11-24 BC to 5874897-12-31, timestamps up to
//! 294276 AD) fit easily; microseconds of a timestamp are computed as `i128`, because PostgreSQL's
//! largest timestamp is beyond `i64` microseconds since 1970.

#![warn(clippy::arithmetic_side_effects)]

/// Microseconds of the largest TIMESTAMP BigQuery holds (9999-12-31 23:59:59.999999 UTC).
pub const MAX_TIMESTAMP_US: i64 = 253_402_300_799_999_999;
/// Microseconds of the smallest TIMESTAMP BigQuery holds (0001-01-01 00:00:00 UTC).
pub const MIN_TIMESTAMP_US: i64 = -62_135_596_800_000_000;
/// Days since the Unix epoch of 9999-12-31.
pub const MAX_DATE_DAYS: i32 = 2_932_896;
/// Days since the Unix epoch of 0001-01-01.
pub const MIN_DATE_DAYS: i32 = -719_162;

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;

/// Days before the first of each month in a year starting on 1 March (so that the leap day is
/// the year's last day): March, April, ..., February.
const DAYS_BEFORE_MONTH_FROM_MARCH: [i64; 12] =
    [0, 31, 61, 92, 122, 153, 184, 214, 245, 275, 306, 337];

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Whether `year` (proleptic Gregorian, 0 = 1 BC) is a leap year.
pub fn is_leap_year(year: i64) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

/// Days in `month` (1..=12) of `year`; 0 for a month out of range.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (year 0 is 1 BC), or `None` when the
/// month or day is out of range or the result does not fit an `i64`.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // Years start on 1 March, so that January and February belong to the previous year.
    let (y, month_index) = if month <= 2 {
        (year.checked_sub(1)?, month.checked_add(9)?)
    } else {
        (year, month.checked_sub(3)?)
    };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400); // 0..=399
    let day_of_year = DAYS_BEFORE_MONTH_FROM_MARCH
        .get(usize::try_from(month_index).ok()?)?
        .checked_add(i64::from(day))?
        .checked_sub(1)?;
    let day_of_era = year_of_era
        .checked_mul(365)?
        .checked_add(year_of_era / 4)?
        .checked_sub(year_of_era / 100)?
        .checked_add(day_of_year)?;
    era.checked_mul(146_097)?
        .checked_add(day_of_era)?
        .checked_sub(719_468)
}

/// Year, month, day of days since the Unix epoch, for any `i64`.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // In i128 every intermediate value below is far from overflowing: |days| < 2^63.
    let z = i128::from(days).saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // 0..=146_096
    let year_of_era = (day_of_era
        .saturating_sub(day_of_era / 1460)
        .saturating_add(day_of_era / 36_524)
        .saturating_sub(day_of_era / 146_096))
        / 365; // 0..=399
    let day_of_year = day_of_era.saturating_sub(
        year_of_era
            .saturating_mul(365)
            .saturating_add(year_of_era / 4)
            .saturating_sub(year_of_era / 100),
    ); // 0..=365
    let month_index = DAYS_BEFORE_MONTH_FROM_MARCH
        .iter()
        .rposition(|first| i128::from(*first) <= day_of_year)
        .unwrap_or(0); // 0..=11
    let first = DAYS_BEFORE_MONTH_FROM_MARCH
        .get(month_index)
        .copied()
        .unwrap_or(0);
    let day = u32::try_from(
        day_of_year
            .saturating_sub(i128::from(first))
            .saturating_add(1),
    )
    .unwrap_or(1);
    let month_index = u32::try_from(month_index).unwrap_or(0);
    let month = if month_index < 10 {
        month_index.saturating_add(3)
    } else {
        month_index.saturating_sub(9)
    };
    let year = year_of_era
        .saturating_add(era.saturating_mul(400))
        .saturating_add(i128::from(month <= 2));
    let year = i64::try_from(year).unwrap_or(if year < 0 { i64::MIN } else { i64::MAX });
    (year, month, day)
}

/// ASCII digits only, at least one.
fn digits(text: &str) -> Option<&str> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then_some(text)
}

/// Exactly two ASCII digits, as a number.
fn two_digits(text: &str) -> Option<u32> {
    match text.as_bytes() {
        [b'0'..=b'9', b'0'..=b'9'] => text.parse().ok(),
        _ => None,
    }
}

/// Splits a trailing ` BC`.
fn strip_bc(text: &str) -> (&str, bool) {
    match text.strip_suffix(" BC") {
        Some(body) => (body, true),
        None => (text, false),
    }
}

/// A date as PostgreSQL prints it under DateStyle ISO: `YYYY-MM-DD`, optionally ` BC` (the
/// year has four or more digits). Returns days since the Unix epoch; `None` for anything else,
/// a day that does not exist, or a year too large to count days of.
pub fn parse_date(text: &str) -> Option<i64> {
    let (body, bc) = strip_bc(text);
    parse_ymd(body, bc)
}

fn parse_ymd(body: &str, bc: bool) -> Option<i64> {
    let mut parts = body.splitn(3, '-');
    let year: i64 = digits(parts.next()?)?.parse().ok()?;
    let month = two_digits(parts.next()?)?;
    let day = two_digits(parts.next()?)?;
    // 1 BC is year 0 of the proleptic calendar; there is no year 0 BC or AD.
    let year = match (bc, year) {
        (_, 0) => return None,
        (true, year) => 1_i64.checked_sub(year)?,
        (false, year) => year,
    };
    days_from_civil(year, month, day)
}

/// A time of day `HH:MM:SS[.ffffff]`; returns microseconds since midnight. `24:00:00` (which
/// PostgreSQL's `time` and `timetz` allow) is 86 400 000 000; nothing later is accepted.
pub fn parse_time_of_day(text: &str) -> Option<i64> {
    let (hms, fraction) = match text.split_once('.') {
        Some((hms, fraction)) => (hms, Some(fraction)),
        None => (text, None),
    };
    let mut parts = hms.splitn(3, ':');
    let hours = two_digits(parts.next()?)?;
    let minutes = two_digits(parts.next()?)?;
    let seconds = two_digits(parts.next()?)?;
    let micros: i64 = match fraction {
        None => 0,
        Some(f) if f.len() <= 6 => format!("{:0<6}", digits(f)?).parse().ok()?,
        Some(_) => return None,
    };
    if hours > 24 || minutes > 59 || seconds > 59 {
        return None;
    }
    if hours == 24 && (minutes, seconds, micros) != (0, 0, 0) {
        return None;
    }
    let seconds = i64::from(hours)
        .checked_mul(3600)?
        .checked_add(i64::from(minutes).checked_mul(60)?)?
        .checked_add(i64::from(seconds))?;
    seconds.checked_mul(1_000_000)?.checked_add(micros)
}

/// Microseconds since the epoch of a day and a time of day, in `i128`: PostgreSQL's range of
/// timestamps exceeds `i64` microseconds since 1970.
fn instant(days: i64, micros_of_day: i64) -> Option<i128> {
    i128::from(days)
        .checked_mul(i128::from(DAY_US))?
        .checked_add(i128::from(micros_of_day))
}

/// A `timestamptz` as printed with TimeZone=UTC and DateStyle ISO, e.g.
/// `2024-01-31 12:34:56.123456+00` (any `±HH[:MM[:SS]]` offset is honoured).
/// Returns microseconds since the Unix epoch.
pub fn parse_timestamptz(text: &str) -> Option<i128> {
    let (body, bc) = strip_bc(text);
    let (date, rest) = body.split_once(' ')?;
    let offset_at = rest.rfind(['+', '-'])?;
    let (time, offset) = rest.split_at(offset_at);
    let offset_us = parse_offset(offset)?;
    let local = instant(parse_ymd(date, bc)?, parse_time_of_day(time)?)?;
    local.checked_sub(i128::from(offset_us))
}

/// A `timestamp` (without time zone) `YYYY-MM-DD HH:MM:SS[.ffffff][ BC]`; microseconds since
/// the Unix epoch as if it were UTC.
pub fn parse_timestamp(text: &str) -> Option<i128> {
    let (body, bc) = strip_bc(text);
    let (date, time) = body.split_once(' ')?;
    instant(parse_ymd(date, bc)?, parse_time_of_day(time)?)
}

/// A UTC offset `±HH[:MM[:SS]]` (hours below 24), as microseconds east of UTC.
pub fn parse_offset(offset: &str) -> Option<i64> {
    let (negative, body) = match offset.as_bytes().first()? {
        b'+' => (false, offset.get(1..)?),
        b'-' => (true, offset.get(1..)?),
        _ => return None,
    };
    let mut parts = body.split(':');
    let hours = two_digits(parts.next()?)?;
    let minutes = parts.next().map_or(Some(0), two_digits)?;
    let seconds = parts.next().map_or(Some(0), two_digits)?;
    if parts.next().is_some() || hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    let seconds = i64::from(hours)
        .checked_mul(3600)?
        .checked_add(i64::from(minutes).checked_mul(60)?)?
        .checked_add(i64::from(seconds))?;
    let micros = seconds.checked_mul(1_000_000)?;
    if negative {
        micros.checked_neg()
    } else {
        Some(micros)
    }
}

/// `HH:MM:SS.ffffff` of microseconds since midnight (taken modulo a day).
pub fn format_time_of_day(micros: i64) -> String {
    let of_day = micros.rem_euclid(DAY_US);
    let secs = of_day / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        of_day % 1_000_000
    )
}

/// Formats microseconds since the epoch as `YYYY-MM-DD HH:MM:SS.ffffff` (UTC).
pub fn format_timestamp_us(micros: i64) -> String {
    let (y, m, d) = civil_from_days(micros.div_euclid(DAY_US));
    format!("{y:04}-{m:02}-{d:02} {}", format_time_of_day(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(11_017));
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        assert_eq!(parse_date("9999-12-31"), Some(i64::from(MAX_DATE_DAYS)));
        assert_eq!(parse_date("0001-01-01"), Some(i64::from(MIN_DATE_DAYS)));
        assert_eq!(
            parse_date("0001-12-31 BC"),
            Some(i64::from(MIN_DATE_DAYS) - 1)
        );
        assert_eq!(parse_date("2024-13-01"), None);
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("0000-01-01"), None);
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
    }

    #[test]
    fn postgres_extremes() {
        // PostgreSQL's smallest and largest dates: Julian days 0 and 2 147 483 493.
        assert_eq!(parse_date("4714-11-24 BC"), Some(-2_440_588));
        assert_eq!(parse_date("5874897-12-31"), Some(2_145_042_905));
        assert_eq!(civil_from_days(-2_440_588), (-4713, 11, 24));
        assert_eq!(civil_from_days(2_145_042_905), (5_874_897, 12, 31));
        // PostgreSQL's largest timestamp is beyond i64 microseconds since 1970.
        let largest = parse_timestamp("294276-12-31 23:59:59.999999").unwrap();
        assert!(largest > i128::from(i64::MAX), "{largest}");
        assert_eq!(
            parse_timestamptz("294276-12-31 23:59:59.999999+00"),
            Some(largest)
        );
        assert_eq!(
            parse_timestamptz("4714-11-24 00:00:00+00 BC"),
            Some(-2_440_588 * i128::from(DAY_US))
        );
        // The extremes of i64 days and years are answered, not overflowed.
        assert!((1..=12).contains(&civil_from_days(i64::MAX).1));
        assert!(civil_from_days(i64::MIN).0 < 0);
        assert_eq!(parse_date("9223372036854775807-01-01"), None);
        assert_eq!(parse_date("9223372036854775807-01-01 BC"), None);
        assert_eq!(parse_date("99999999999999999999-01-01"), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamptz("1970-01-01 00:00:00+00"), Some(0));
        assert_eq!(parse_timestamptz("1970-01-01 01:00:00.5+01"), Some(500_000));
        assert_eq!(
            parse_timestamptz("1970-01-01 00:00:00-05:30"),
            Some(19_800_000_000)
        );
        assert_eq!(
            parse_timestamptz("9999-12-31 23:59:59.999999+00"),
            Some(i128::from(MAX_TIMESTAMP_US))
        );
        assert_eq!(
            parse_timestamp("1970-01-02 00:00:00.000001"),
            Some(86_400_000_001)
        );
        assert_eq!(
            format_timestamp_us(86_400_000_001),
            "1970-01-02 00:00:00.000001"
        );
        assert_eq!(parse_time_of_day("24:00:00"), Some(DAY_US));
        assert_eq!(parse_time_of_day("24:00:00.000001"), None);
        assert_eq!(parse_time_of_day("23:59:60"), None);
        assert_eq!(parse_time_of_day("12:00:00.1234567"), None);
        assert_eq!(parse_time_of_day("12:00:00.+1"), None);
        assert_eq!(
            parse_timestamptz("1970-01-01 00:00:00+99999999999999999999"),
            None
        );
        assert_eq!(parse_timestamptz("1970-01-01 00:00:00+24"), None);
        assert_eq!(parse_offset("-00:00:30"), Some(-30_000_000));
        assert_eq!(format_time_of_day(DAY_US - 1), "23:59:59.999999");
    }
}
