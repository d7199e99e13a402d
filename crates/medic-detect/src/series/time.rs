//! Timestamps of series files: `YYYY-MM-DD[ T]HH:MM[:SS[.fff]]` (UTC, optional trailing `Z`)
//! or a plain Unix time in seconds (fractions allowed). Parsed by hand: it is on the hot path
//! of `medic detect series` and NAB evaluation, and the formats are fixed.

/// Milliseconds since the Unix epoch, or `None` when `s` is in neither accepted format.
pub fn parse_timestamp_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.strip_suffix('Z').unwrap_or(s);
    if s.is_empty() {
        return None;
    }
    if s.len() >= 10 && s.as_bytes().get(4) == Some(&b'-') {
        return parse_civil(s);
    }
    let secs: f64 = s.parse().ok()?;
    if !secs.is_finite() || secs.abs() > 1e13 {
        return None;
    }
    Some((secs * 1000.0).round() as i64)
}

fn num(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0')))
}

fn parse_civil(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let year = num(b.get(0..4)?)?;
    let month = num(b.get(5..7)?)?;
    let day = num(b.get(8..10)?)?;
    if b.get(7) != Some(&b'-') || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (mut h, mut mi, mut sec, mut ms) = (0, 0, 0, 0);
    if b.len() > 10 {
        if !matches!(b.get(10), Some(b' ' | b'T')) {
            return None;
        }
        h = num(b.get(11..13)?)?;
        if b.get(13) != Some(&b':') {
            return None;
        }
        mi = num(b.get(14..16)?)?;
        let mut rest = b.get(16..)?;
        if let Some(r) = rest.strip_prefix(b":") {
            sec = num(r.get(0..2)?)?;
            rest = r.get(2..)?;
        }
        if let Some(frac) = rest.strip_prefix(b".") {
            let digits = frac.get(..frac.len().min(3))?;
            if !frac.iter().all(u8::is_ascii_digit) {
                return None;
            }
            ms = num(digits)? * 10i64.pow(3 - digits.len() as u32);
        } else if !rest.is_empty() {
            return None;
        }
        if h > 23 || mi > 59 || sec > 60 {
            return None;
        }
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms)
}

/// Days since 1970-01-01 (proleptic Gregorian), Howard Hinnant's algorithm.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_nab_formats_and_unix_seconds() {
        assert_eq!(parse_timestamp_ms("1970-01-01 00:00:00"), Some(0));
        assert_eq!(
            parse_timestamp_ms("2014-07-01 00:30:00"),
            Some(1_404_174_600_000)
        );
        assert_eq!(
            parse_timestamp_ms("2014-07-01 00:30:00.000000"),
            Some(1_404_174_600_000)
        );
        assert_eq!(
            parse_timestamp_ms("2014-07-01T00:30:00.5Z"),
            Some(1_404_174_600_500)
        );
        assert_eq!(parse_timestamp_ms("1404174600"), Some(1_404_174_600_000));
        assert_eq!(parse_timestamp_ms("2014-07-01"), Some(1_404_172_800_000));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for s in [
            "",
            "x",
            "2014-13-01 00:00:00",
            "2014-07-01 25:00:00",
            "2014-07-01 00:00:0x",
            "NaN",
            "inf",
            "2014-07-01X00:00",
            "1e300",
            "2014-07-01 00:00:00.12a",
        ] {
            assert_eq!(parse_timestamp_ms(s), None, "{s}");
        }
    }
}
