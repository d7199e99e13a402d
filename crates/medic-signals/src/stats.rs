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
    /// Compressed files that ended inside a gzip member or were corrupt (lines decoded so far
    /// kept, the rest counted here once per file).
    TruncatedGzip,
    /// Container partial lines (CRI `P`, Docker lines without newline) joined past the bound
    /// (the record is cut there).
    PartialLineOverflow,
    /// Checkpoints that could not be read back (malformed state: the source starts afresh).
    CheckpointError,
    /// Files found replaced since the checkpoint (other inode or head) with no rotated
    /// predecessor: read from their start, what was unread in the old one is lost.
    FileReplaced,
    /// Container log lines that were not CRI or Docker json-file (passed on as plain text).
    MalformedContainerLine,
    /// Lines that did not match the source's `format` (json/regex/loghub/logfmt; kept as
    /// plain text).
    FormatMismatch,
    /// Paths matching a source that are not regular files (directories, sockets; skipped).
    NotAFile,
    /// Syslog messages dropped because the source's queue was full (a flood).
    SyslogOverload,
    /// Syslog messages that were empty or not syslog (skipped).
    SyslogMalformed,
    /// Syslog TCP connections refused because too many were open.
    SyslogConnectionRefused,
    /// Ingest request bodies refused whole: too large, bad gzip/snappy, not JSON/protobuf.
    IngestBodyRejected,
    /// Ingested records that were not a JSON object (skipped).
    IngestRecordRejected,
    /// Ingest requests refused with 503 because the agent's channel was full.
    IngestBackpressure,
    /// remote_write series with no samples or no `__name__` (skipped).
    RemoteWriteSeriesSkipped,
    /// OTLP request bodies refused whole: not valid protobuf/JSON for the request type, or bad gzip.
    OtlpMalformedBody,
    /// OTLP requests refused: a content type or encoding that is neither protobuf nor JSON (gzip/identity).
    OtlpUnsupportedContentType,
    /// OTLP requests refused (413 / gRPC resource exhausted): body over the size limit, compressed or not.
    OtlpBodyTooLarge,
    /// OTLP metric data points dropped: no value, or histogram bucket counts not matching its bounds.
    OtlpInvalidDataPoint,
    /// OTLP sum/histogram data points dropped: delta temporality is not converted to cumulative.
    OtlpUnsupportedDelta,
    /// OTLP exponential histogram data points dropped: not mapped to samples.
    OtlpUnsupportedExpHistogram,
    /// OTLP summary data points dropped: not mapped to samples.
    OtlpUnsupportedSummary,
    /// OTLP metrics with no data (no gauge/sum/histogram at all): dropped.
    OtlpMetricNoData,
    /// OTLP log bodies, attribute values or attribute lists cut at their bound (record still emitted).
    OtlpFieldTruncated,
    /// OTLP records dropped because the agent's channel stayed full (reported as rejected).
    OtlpChannelFull,
    /// OTLP log records accepted.
    OtlpLogRecords,
    /// OTLP metric data points accepted.
    OtlpMetricPoints,
    /// OTLP delta points dropped: not newer than the series' last point, or overlapping it.
    OtlpDeltaOutOfOrder,
    /// OTLP delta series restarted from the point's value (a gap, a new start time, a new
    /// bucket layout): consumers see a counter reset.
    OtlpDeltaReset,
    /// OTLP delta series forgotten to stay under the cap (least recently updated first).
    OtlpDeltaSeriesEvicted,
    /// Kubernetes API requests or watches that could not reach the API server (connection
    /// refused, TLS, timeout); retried with back-off.
    KubeApiUnreachable,
    /// Kubernetes API requests refused with 401/403 (credentials or RBAC); retried with back-off.
    KubeApiForbidden,
    /// Other Kubernetes watch errors (5xx, undecodable objects, server-side watch errors).
    KubeWatchError,
    /// Kubernetes watches that started over with a full list (410 Gone, reconnects).
    KubeRelisted,
}

impl Counter {
    pub const ALL: [Counter; 45] = [
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
        Counter::TruncatedGzip,
        Counter::PartialLineOverflow,
        Counter::CheckpointError,
        Counter::FileReplaced,
        Counter::MalformedContainerLine,
        Counter::FormatMismatch,
        Counter::NotAFile,
        Counter::SyslogOverload,
        Counter::SyslogMalformed,
        Counter::SyslogConnectionRefused,
        Counter::IngestBodyRejected,
        Counter::IngestRecordRejected,
        Counter::IngestBackpressure,
        Counter::RemoteWriteSeriesSkipped,
        Counter::OtlpMalformedBody,
        Counter::OtlpUnsupportedContentType,
        Counter::OtlpBodyTooLarge,
        Counter::OtlpInvalidDataPoint,
        Counter::OtlpUnsupportedDelta,
        Counter::OtlpUnsupportedExpHistogram,
        Counter::OtlpUnsupportedSummary,
        Counter::OtlpMetricNoData,
        Counter::OtlpFieldTruncated,
        Counter::OtlpChannelFull,
        Counter::OtlpLogRecords,
        Counter::OtlpMetricPoints,
        Counter::OtlpDeltaOutOfOrder,
        Counter::OtlpDeltaReset,
        Counter::OtlpDeltaSeriesEvicted,
        Counter::KubeApiUnreachable,
        Counter::KubeApiForbidden,
        Counter::KubeWatchError,
        Counter::KubeRelisted,
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
            Counter::TruncatedGzip => "truncated_gzip",
            Counter::PartialLineOverflow => "partial_line_overflow",
            Counter::CheckpointError => "checkpoint_error",
            Counter::FileReplaced => "file_replaced",
            Counter::MalformedContainerLine => "malformed_container_line",
            Counter::FormatMismatch => "format_mismatch",
            Counter::NotAFile => "not_a_file",
            Counter::SyslogOverload => "syslog_overload",
            Counter::SyslogMalformed => "syslog_malformed",
            Counter::SyslogConnectionRefused => "syslog_connection_refused",
            Counter::IngestBodyRejected => "ingest_body_rejected",
            Counter::IngestRecordRejected => "ingest_record_rejected",
            Counter::IngestBackpressure => "ingest_backpressure",
            Counter::RemoteWriteSeriesSkipped => "remote_write_series_skipped",
            Counter::OtlpMalformedBody => "otlp_malformed_body",
            Counter::OtlpUnsupportedContentType => "otlp_unsupported_content_type",
            Counter::OtlpBodyTooLarge => "otlp_body_too_large",
            Counter::OtlpInvalidDataPoint => "otlp_invalid_data_point",
            Counter::OtlpUnsupportedDelta => "otlp_unsupported_delta",
            Counter::OtlpUnsupportedExpHistogram => "otlp_unsupported_exponential_histogram",
            Counter::OtlpUnsupportedSummary => "otlp_unsupported_summary",
            Counter::OtlpMetricNoData => "otlp_metric_no_data",
            Counter::OtlpFieldTruncated => "otlp_field_truncated",
            Counter::OtlpChannelFull => "otlp_channel_full",
            Counter::OtlpLogRecords => "otlp_log_records",
            Counter::OtlpMetricPoints => "otlp_metric_points",
            Counter::OtlpDeltaOutOfOrder => "otlp_delta_out_of_order",
            Counter::OtlpDeltaReset => "otlp_delta_reset",
            Counter::OtlpDeltaSeriesEvicted => "otlp_delta_series_evicted",
            Counter::KubeApiUnreachable => "kube_api_unreachable",
            Counter::KubeApiForbidden => "kube_api_forbidden",
            Counter::KubeWatchError => "kube_watch_error",
            Counter::KubeRelisted => "kube_relisted",
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
