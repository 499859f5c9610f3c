//! Calendar arithmetic and parsing of PostgreSQL's ISO date/time text forms.

/// Microseconds of the largest TIMESTAMP BigQuery holds (9999-12-31 23:59:59.999999 UTC).
pub const MAX_TIMESTAMP_US: i64 = 253_402_300_799_999_999;
/// Microseconds of the smallest TIMESTAMP BigQuery holds (0001-01-01 00:00:00 UTC).
pub const MIN_TIMESTAMP_US: i64 = -62_135_596_800_000_000;
/// Days since the Unix epoch of 9999-12-31.
pub const MAX_DATE_DAYS: i32 = 2_932_896;
/// Days since the Unix epoch of 0001-01-01.
pub const MIN_DATE_DAYS: i32 = -719_162;

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (any year).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A date as PostgreSQL prints it under DateStyle ISO: `YYYY-MM-DD`, optionally ` BC`.
/// Returns days since the Unix epoch.
pub fn parse_date(text: &str) -> Option<i64> {
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(body) => (body, true),
        None => (text, false),
    };
    let mut parts = body.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // 1 BC is year 0 of the proleptic calendar.
    let year = if bc { 1 - year } else { year };
    Some(days_from_civil(year, month, day))
}

/// A time of day `HH:MM:SS[.ffffff]`; returns microseconds since midnight (24:00:00 allowed).
pub fn parse_time_of_day(text: &str) -> Option<i64> {
    let (hms, fraction) = match text.split_once('.') {
        Some((hms, fraction)) => (hms, Some(fraction)),
        None => (text, None),
    };
    let mut parts = hms.splitn(3, ':');
    let hours: i64 = parts.next()?.parse().ok()?;
    let minutes: i64 = parts.next()?.parse().ok()?;
    let seconds: i64 = parts.next()?.parse().ok()?;
    let micros = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 6 && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<i64>().ok()? * 10_i64.pow(6 - f.len() as u32)
        }
        Some(_) => return None,
    };
    if hours > 24 || minutes > 59 || seconds > 60 {
        return None;
    }
    Some(((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + micros)
}

/// A `timestamptz` as printed with TimeZone=UTC and DateStyle ISO, e.g.
/// `2024-01-31 12:34:56.123456+00` (any `±HH[:MM[:SS]]` offset is honoured).
/// Returns microseconds since the Unix epoch.
pub fn parse_timestamptz(text: &str) -> Option<i64> {
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(body) => (body, true),
        None => (text, false),
    };
    let (date, rest) = body.split_once(' ')?;
    let offset_at = rest.rfind(['+', '-'])?;
    let (time, offset) = rest.split_at(offset_at);
    let offset_us = parse_offset(offset)?;
    let date = if bc {
        format!("{date} BC")
    } else {
        date.to_owned()
    };
    let days = parse_date(&date)?;
    let micros = parse_time_of_day(time)?;
    Some(days * 86_400_000_000 + micros - offset_us)
}

/// A `timestamp` (without time zone) `YYYY-MM-DD HH:MM:SS[.ffffff]`; microseconds since the
/// Unix epoch as if it were UTC.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(body) => (body, true),
        None => (text, false),
    };
    let (date, time) = body.split_once(' ')?;
    let date = if bc {
        format!("{date} BC")
    } else {
        date.to_owned()
    };
    Some(parse_date(&date)? * 86_400_000_000 + parse_time_of_day(time)?)
}

fn parse_offset(offset: &str) -> Option<i64> {
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let mut seconds = 0;
    for (i, part) in offset[1..].split(':').enumerate() {
        let value: i64 = part.parse().ok()?;
        seconds += value * [3600, 60, 1].get(i)?;
    }
    Some(sign * seconds * 1_000_000)
}

/// Formats microseconds since the epoch as `YYYY-MM-DD HH:MM:SS.ffffff` (UTC).
pub fn format_timestamp_us(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let of_day = micros.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    let secs = of_day / 1_000_000;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        of_day % 1_000_000
    )
}

/// Year, month, day of days since the Unix epoch.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
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
            Some(MAX_TIMESTAMP_US)
        );
        assert_eq!(
            parse_timestamp("1970-01-02 00:00:00.000001"),
            Some(86_400_000_001)
        );
        assert_eq!(
            format_timestamp_us(86_400_000_001),
            "1970-01-02 00:00:00.000001"
        );
        assert_eq!(parse_time_of_day("24:00:00"), Some(86_400_000_000));
        assert_eq!(parse_time_of_day("12:00:00.1234567"), None);
    }
}
