//! Time as integer milliseconds since the Unix epoch: cheap to compare and subtract in
//! detectors, and printed as RFC 3339 for people.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch (UTC).
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Ts(pub i64);

impl Ts {
    pub fn now() -> Ts {
        Ts(chrono::Utc::now().timestamp_millis())
    }
    pub fn from_secs_f64(s: f64) -> Ts {
        Ts((s * 1000.0).round() as i64)
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    pub fn plus_ms(self, ms: i64) -> Ts {
        Ts(self.0.saturating_add(ms))
    }
    pub fn plus_secs(self, s: f64) -> Ts {
        self.plus_ms((s * 1000.0).round() as i64)
    }
    /// Seconds from `earlier` to `self` (negative when `earlier` is later).
    pub fn secs_since(self, earlier: Ts) -> f64 {
        self.0.saturating_sub(earlier.0) as f64 / 1000.0
    }
    pub fn to_rfc3339(self) -> String {
        match chrono::DateTime::from_timestamp_millis(self.0) {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            None => format!("{}ms", self.0),
        }
    }
    /// Time of day, `HH:MM:SS.mmm`, for timelines.
    pub fn clock_time(self) -> String {
        match chrono::DateTime::from_timestamp_millis(self.0) {
            Some(t) => t.format("%H:%M:%S%.3f").to_string(),
            None => format!("{}ms", self.0),
        }
    }
    /// Parse an RFC 3339 timestamp.
    pub fn parse_rfc3339(s: &str) -> Option<Ts> {
        chrono::DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| Ts(t.timestamp_millis()))
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Where "now" comes from; tests use [`ManualClock`].
pub trait Clock: Send + Sync {
    fn now(&self) -> Ts;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Ts {
        Ts::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Ts) -> Self {
        ManualClock(AtomicI64::new(start.0))
    }
    pub fn set(&self, t: Ts) {
        self.0.store(t.0, Ordering::SeqCst)
    }
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Ts {
        Ts(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = Ts(1_700_000_000_123);
        assert_eq!(Ts::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(Ts::parse_rfc3339("not a time"), None);
    }

    #[test]
    fn arithmetic() {
        let t = Ts(10_000);
        assert_eq!(t.plus_secs(1.5), Ts(11_500));
        assert_eq!(Ts(11_500).secs_since(t), 1.5);
        let c = ManualClock::new(t);
        c.advance_ms(5);
        assert_eq!(c.now(), Ts(10_005));
    }
}
