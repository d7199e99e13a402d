//! Wall-clock windows in a time zone (`Mon-Fri 09:00-17:00 America/New_York`): when a policy
//! must not act. People write business hours in their own zone, so the window follows that
//! zone's daylight-saving changes rather than a fixed UTC offset.

use crate::Ts;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Days (bit 0 = Monday), a start and an end in minutes after local midnight, and a zone.
/// An end before the start crosses midnight and belongs to the day it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    days: u8,
    start_min: u16,
    end_min: u16,
    tz_name: String,
    tz: jiff::tz::TimeZone,
}

impl TimeWindow {
    /// `[DAYS] HH:MM-HH:MM [ZONE]`: DAYS a comma list of days or day ranges (`Mon-Fri`,
    /// `Sat,Sun`, `daily`; every day when left out), ZONE an IANA name (UTC when left out).
    pub fn parse(text: &str) -> Result<TimeWindow, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let clock_at = parts
            .iter()
            .position(|p| p.contains(':'))
            .ok_or_else(|| format!("no `HH:MM-HH:MM` range in `{text}`"))?;
        let days = match clock_at {
            0 => 0x7f,
            1 => parse_days(parts[0])?,
            _ => {
                return Err(format!(
                    "expected `[DAYS] HH:MM-HH:MM [ZONE]`, found `{text}`"
                ));
            }
        };
        let (start, end) = parts[clock_at]
            .split_once('-')
            .ok_or_else(|| format!("expected `HH:MM-HH:MM`, found `{}`", parts[clock_at]))?;
        let start_min = parse_clock(start, false)?;
        let end_min = parse_clock(end, true)?;
        if start_min == end_min {
            return Err(format!(
                "`{}` starts and ends at the same minute: the window would be empty",
                parts[clock_at]
            ));
        }
        let tz_name = match &parts[clock_at + 1..] {
            [] => "UTC".to_string(),
            [zone] => (*zone).to_string(),
            more => {
                return Err(format!(
                    "expected one time zone after the hours, found `{}`",
                    more.join(" ")
                ));
            }
        };
        let tz = jiff::tz::TimeZone::get(&tz_name).map_err(|_| {
            format!("unknown time zone `{tz_name}`: expected an IANA name such as `Europe/Berlin` or `UTC`")
        })?;
        Ok(TimeWindow {
            days,
            start_min,
            end_min,
            tz_name,
            tz,
        })
    }

    /// Whether `at` falls inside the window, in the window's zone.
    pub fn contains(&self, at: Ts) -> bool {
        let Ok(ts) = jiff::Timestamp::from_millisecond(at.0) else {
            return false;
        };
        let local = ts.to_zoned(self.tz.clone());
        let day = local.weekday().to_monday_zero_offset() as u8;
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        let on = |d: u8| self.days & (1 << d) != 0;
        if self.start_min < self.end_min {
            on(day) && (self.start_min..self.end_min).contains(&minute)
        } else {
            // Crosses midnight: the evening part today, or the morning part of yesterday's.
            let yesterday = (day + 6) % 7;
            (on(day) && minute >= self.start_min) || (on(yesterday) && minute < self.end_min)
        }
    }
}

impl std::fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.days != 0x7f {
            let names: Vec<&str> = (0..7)
                .filter(|d| self.days & (1 << d) != 0)
                .map(|d| DAY_NAMES[d as usize])
                .collect();
            write!(f, "{} ", names.join(","))?;
        }
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(
            f,
            "{}-{} {}",
            hm(self.start_min),
            hm(self.end_min),
            self.tz_name
        )
    }
}

impl Serialize for TimeWindow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeWindow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        TimeWindow::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn parse_day(name: &str) -> Result<u8, String> {
    DAY_NAMES
        .iter()
        .position(|d| d.eq_ignore_ascii_case(name))
        .map(|d| d as u8)
        .ok_or_else(|| {
            format!(
                "unknown day `{name}`: expected one of {}",
                DAY_NAMES.join(", ")
            )
        })
}

fn parse_days(text: &str) -> Result<u8, String> {
    if text.eq_ignore_ascii_case("daily") {
        return Ok(0x7f);
    }
    let mut days = 0u8;
    for part in text.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (parse_day(from)?, parse_day(to)?);
                // `Fri-Mon` wraps over the weekend.
                let mut d = from;
                loop {
                    days |= 1 << d;
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days |= 1 << parse_day(part)?,
        }
    }
    Ok(days)
}

/// `HH:MM`, minutes after midnight; `24:00` only as an end.
fn parse_clock(text: &str, is_end: bool) -> Result<u16, String> {
    let bad = || format!("invalid time `{text}`: expected `HH:MM` from 00:00 to 23:59");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    match (h, m) {
        (24, 0) if is_end => Ok(24 * 60),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> Ts {
        let t: jiff::Timestamp = rfc3339.parse().unwrap();
        Ts(t.as_millisecond())
    }

    #[test]
    fn business_hours_in_new_york_follow_daylight_saving() {
        let w = TimeWindow::parse("Mon-Fri 09:00-17:00 America/New_York").unwrap();
        // Wednesday 2026-07-15: EDT (UTC-4), so 09:00 local is 13:00 UTC.
        assert!(!w.contains(at("2026-07-15T12:59:00Z")));
        assert!(w.contains(at("2026-07-15T13:00:00Z")));
        assert!(w.contains(at("2026-07-15T20:59:00Z")));
        assert!(!w.contains(at("2026-07-15T21:00:00Z")));
        // Wednesday 2026-01-14: EST (UTC-5), so 09:00 local is 14:00 UTC.
        assert!(!w.contains(at("2026-01-14T13:30:00Z")));
        assert!(w.contains(at("2026-01-14T14:00:00Z")));
        // Saturday.
        assert!(!w.contains(at("2026-07-18T15:00:00Z")));
    }

    #[test]
    fn overnight_windows_belong_to_the_day_they_start() {
        let w = TimeWindow::parse("Fri 22:00-06:00 UTC").unwrap();
        assert!(w.contains(at("2026-07-17T23:00:00Z"))); // Friday night
        assert!(w.contains(at("2026-07-18T05:59:00Z"))); // Saturday morning
        assert!(!w.contains(at("2026-07-18T06:00:00Z")));
        assert!(!w.contains(at("2026-07-16T23:00:00Z"))); // Thursday night
        assert!(!w.contains(at("2026-07-17T05:00:00Z"))); // Friday morning: Thursday's
    }

    #[test]
    fn days_lists_ranges_and_defaults() {
        let w = TimeWindow::parse("00:00-24:00").unwrap();
        assert!(w.contains(at("2026-07-18T12:00:00Z")));
        assert_eq!(w.to_string(), "00:00-24:00 UTC");
        let w = TimeWindow::parse("sat,SUN 10:00-11:00 Europe/Berlin").unwrap();
        assert_eq!(w.to_string(), "Sat,Sun 10:00-11:00 Europe/Berlin");
        let w = TimeWindow::parse("Fri-Mon 10:00-11:00").unwrap();
        assert_eq!(w.to_string(), "Mon,Fri,Sat,Sun 10:00-11:00 UTC");
        let back: TimeWindow = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert_eq!(back, w);
    }

    #[test]
    fn impossible_windows_say_what_is_wrong() {
        for (text, says) in [
            ("Mon-Fri 09:00-09:00 UTC", "empty"),
            ("Mon-Fri 25:00-26:00", "invalid time"),
            ("Mon-Fri 9:60-10:00", "invalid time"),
            ("Mon-Fri 24:00-10:00", "invalid time"),
            ("Mon-Fri 09:00-17:00 Mars/Olympus", "unknown time zone"),
            ("Funday 09:00-17:00", "unknown day"),
            ("Mon-Fri", "no `HH:MM-HH:MM`"),
            ("Mon-Fri 09:00 17:00", "expected `HH:MM-HH:MM`"),
            ("Mon-Fri 09:00-17:00 UTC extra", "one time zone"),
            ("", "no `HH:MM-HH:MM`"),
        ] {
            let err = TimeWindow::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn timestamps_out_of_range_are_outside() {
        let w = TimeWindow::parse("00:00-24:00").unwrap();
        assert!(!w.contains(Ts(i64::MAX)));
    }
}
