//! Counters shared by every source: what was read, what was emitted, and every record that
//! was dropped or altered, with its reason, so that silent data loss is visible.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// One counter of [`SourceStats`]; `name()` is the key in [`SourceStats::snapshot`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    /// Lines read from tailed files.
    LinesRead,
    /// Signals handed to the channel.
    RecordsEmitted,
    /// Lines whose bytes were not UTF-8 (replaced lossily, still emitted).
    InvalidUtf8,
    /// Lines longer than the limit (truncated, the rest skipped).
    LineTooLong,
    /// JSON lines that did not decode into the expected record (skipped).
    MalformedJson,
    /// Lines of a Prometheus exposition that did not parse (skipped).
    MalformedMetricLine,
    /// Scrapes that failed (connection, timeout, HTTP status, oversized body).
    ScrapeFailed,
    /// A `file_sd` file that was missing or malformed (previous targets kept).
    FileSdError,
    /// A pid file that was empty, not a number or unreadable (skipped).
    PidFileInvalid,
    /// A pid file naming a process that no longer exists (skipped).
    ProcessVanished,
    /// A file that could not be opened or read.
    ReadError,
    /// Continuation lines dropped because a record grew past its bound.
    ContinuationDropped,
}

impl Counter {
    pub const ALL: [Counter; 12] = [
        Counter::LinesRead,
        Counter::RecordsEmitted,
        Counter::InvalidUtf8,
        Counter::LineTooLong,
        Counter::MalformedJson,
        Counter::MalformedMetricLine,
        Counter::ScrapeFailed,
        Counter::FileSdError,
        Counter::PidFileInvalid,
        Counter::ProcessVanished,
        Counter::ReadError,
        Counter::ContinuationDropped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::LinesRead => "lines_read",
            Counter::RecordsEmitted => "records_emitted",
            Counter::InvalidUtf8 => "invalid_utf8",
            Counter::LineTooLong => "line_too_long",
            Counter::MalformedJson => "malformed_json",
            Counter::MalformedMetricLine => "malformed_metric_line",
            Counter::ScrapeFailed => "scrape_failed",
            Counter::FileSdError => "file_sd_error",
            Counter::PidFileInvalid => "pid_file_invalid",
            Counter::ProcessVanished => "process_vanished",
            Counter::ReadError => "read_error",
            Counter::ContinuationDropped => "continuation_dropped",
        }
    }

    fn index(self) -> usize {
        // ALL is in declaration order, so the discriminant is the index.
        self as usize
    }
}

/// Atomic counters, cheap to bump from any task.
#[derive(Debug)]
pub struct SourceStats {
    counts: [AtomicU64; Counter::ALL.len()],
}

impl Default for SourceStats {
    fn default() -> Self {
        SourceStats {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl SourceStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn incr(&self, counter: Counter) {
        self.add(counter, 1);
    }

    pub fn add(&self, counter: Counter, n: u64) {
        self.counts[counter.index()].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, counter: Counter) -> u64 {
        self.counts[counter.index()].load(Ordering::Relaxed)
    }

    /// Every counter by name, zeros included, so dashboards see a stable set of keys.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        Counter::ALL
            .iter()
            .map(|c| (c.name().to_string(), self.get(*c)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_independent_and_named() {
        let s = SourceStats::new();
        s.incr(Counter::LineTooLong);
        s.add(Counter::LinesRead, 5);
        let snap = s.snapshot();
        assert_eq!(snap["line_too_long"], 1);
        assert_eq!(snap["lines_read"], 5);
        assert_eq!(snap["invalid_utf8"], 0);
        assert_eq!(snap.len(), Counter::ALL.len());
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}
