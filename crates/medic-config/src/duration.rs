//! Durations as people write them: `500ms`, `10s`, `5m`, `1h`, `1h30m`.

use std::time::Duration;

const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Parses a duration made of whole-number parts with units `h`, `m`, `s`, `ms`, largest first
/// (`1h30m`, `2m5s`, `1s500ms`). A bare number is refused: its unit would be a guess.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let trimmed = s.trim();
    let excerpt = crate::node::excerpt(trimmed);
    let text = excerpt.as_str();
    if text.is_empty() {
        return Err("empty duration: expected a number with a unit, e.g. `10s`".into());
    }
    if trimmed.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!(
            "duration `{text}` has no unit: expected e.g. `{text}s` or `{text}ms` (units: h, m, s, ms)"
        ));
    }
    let mut total_ms: u64 = 0;
    let mut last_rank: Option<usize> = None;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad(text));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.chars().take_while(char::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(unit_len);
        let Some(rank) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(bad(text));
        };
        if last_rank.is_some_and(|r| rank <= r) {
            return Err(format!(
                "duration `{text}` repeats a unit or puts a smaller one first: expected largest unit first, e.g. `1h30m`"
            ));
        }
        last_rank = Some(rank);
        let value: u64 = number.parse().map_err(|_| too_big(text))?;
        let part = value
            .checked_mul(UNITS[rank].1)
            .ok_or_else(|| too_big(text))?;
        total_ms = total_ms.checked_add(part).ok_or_else(|| too_big(text))?;
        rest = after;
    }
    Ok(Duration::from_millis(total_ms))
}

fn bad(text: &str) -> String {
    format!(
        "invalid duration `{text}`: expected whole numbers with units h, m, s or ms, e.g. `500ms`, `10s`, `5m`, `1h30m`"
    )
}

fn too_big(text: &str) -> String {
    format!("duration `{text}` is too large: expected at most a few years")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_unit_and_combinations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1s250ms"), Ok(Duration::from_millis(1250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bare_numbers_get_a_hint() {
        let e = parse_duration("10").unwrap_err();
        assert!(e.contains("has no unit") && e.contains("`10s`"), "{e}");
        assert!(parse_duration("1.5").unwrap_err().contains("no unit"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "s", "10x", "1.5s", "-1s", "10 s", "5m1h", "1s1s", "ms10", "1d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn rejects_overflow() {
        assert!(
            parse_duration("99999999999999999999s")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse_duration("18446744073709551615h")
                .unwrap_err()
                .contains("too large")
        );
    }
}
