//! OTLP logs and metrics → [`Signal`]s. Transport-free: medic-server's HTTP routes and gRPC
//! services decode a request with the functions here and send what comes back.
//!
//! Logs: one `Signal` per log record (`SignalPayload::Log`), redacted. Metrics: one `Signal`
//! per (resource, scope) batch, its samples named Prometheus-style. Every record that cannot be
//! mapped is counted in [`SourceStats`] with its reason and reported as rejected.
//! Delta sums and histograms are made cumulative with [`DeltaState`], per-series state the
//! receiver keeps across requests (bounded; see there). Exponential histograms and summaries
//! are counted as unsupported, and so is a temporality that is neither delta nor cumulative
//! (`otlp_unsupported_delta`).

use crate::redact::{is_sensitive_key, redact};
use crate::stats::{Counter, SourceStats};
use medic_core::{Level, LogLine, MetricSample, Signal, SignalPayload, Ts};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, NumberDataPoint, metric, number_data_point,
};
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};

pub use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
pub use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};

/// Longest log message kept (bytes); longer bodies are cut and counted.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest attribute value kept (bytes).
pub const MAX_FIELD_BYTES: usize = 4 * 1024;
/// Most fields kept per log record (resource + record attributes).
pub const MAX_FIELDS: usize = 64;
/// Most continuation lines (a multi-line body's lines after the first).
pub const MAX_CONTINUATION_LINES: usize = 200;
/// How deep nested arrays/maps are rendered before `…`.
const MAX_ANY_DEPTH: usize = 8;

/// Why a request body could not be decoded at all.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("malformed otlp protobuf body: expected an encoded {what}: {source}")]
    Protobuf {
        what: &'static str,
        #[source]
        source: prost::DecodeError,
    },
    #[error("malformed otlp json body: expected an {what} object: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// What one request became.
#[derive(Debug, Default)]
pub struct Converted {
    pub signals: Vec<Signal>,
    /// How many records (log records, metric data points) each signal carries, in order, so a
    /// signal the agent cannot take is counted as that many dropped records.
    pub records: Vec<u64>,
    /// Log records or metric data points mapped.
    pub accepted: u64,
    /// Log records or metric data points dropped (each counted with its reason).
    pub rejected: u64,
    /// Why the first rejection happened, for the response's `error_message`.
    pub first_reason: Option<&'static str>,
}

impl Converted {
    fn reject(&mut self, stats: &SourceStats, counter: Counter, n: u64) {
        if n == 0 {
            return;
        }
        stats.add(counter, n);
        self.rejected += n;
        self.first_reason.get_or_insert(counter.name());
    }
}

pub fn decode_logs_protobuf(body: &[u8]) -> Result<ExportLogsServiceRequest, OtlpError> {
    ExportLogsServiceRequest::decode(body).map_err(|source| OtlpError::Protobuf {
        what: "ExportLogsServiceRequest",
        source,
    })
}

pub fn decode_metrics_protobuf(body: &[u8]) -> Result<ExportMetricsServiceRequest, OtlpError> {
    ExportMetricsServiceRequest::decode(body).map_err(|source| OtlpError::Protobuf {
        what: "ExportMetricsServiceRequest",
        source,
    })
}

/// OTLP/JSON: the spec's mapping (lowerCamelCase keys, hex ids, 64-bit ints as strings or
/// numbers), plus what protobuf-JSON parsers accept and opentelemetry-proto's serde does not:
/// snake_case keys, enum names (`SEVERITY_NUMBER_ERROR`), `null` for absent fields.
pub fn decode_logs_json(body: &[u8]) -> Result<ExportLogsServiceRequest, OtlpError> {
    let what = "ExportLogsServiceRequest";
    let v = normalize_json(body).map_err(|source| OtlpError::Json { what, source })?;
    serde_json::from_value(v).map_err(|source| OtlpError::Json { what, source })
}

pub fn decode_metrics_json(body: &[u8]) -> Result<ExportMetricsServiceRequest, OtlpError> {
    let what = "ExportMetricsServiceRequest";
    let v = normalize_json(body).map_err(|source| OtlpError::Json { what, source })?;
    serde_json::from_value(v).map_err(|source| OtlpError::Json { what, source })
}

fn normalize_json(body: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    // serde_json stops at 128 levels of nesting, which bounds the recursion below.
    let mut v: serde_json::Value = serde_json::from_slice(body)?;
    if !v.is_object() {
        // serde would read `[]` as an all-default struct; OTLP/JSON is always an object.
        return Err(serde::de::Error::custom("the body is not a JSON object"));
    }
    fix_json(&mut v);
    Ok(v)
}

fn fix_json(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (k, mut val) in old {
                if val.is_null() {
                    continue;
                }
                let key = if k.contains('_') { camel(&k) } else { k };
                match (key.as_str(), &val) {
                    ("severityNumber", Value::String(s)) => {
                        if let Some(n) =
                            enum_number(s, |s| SeverityNumber::from_str_name(s).map(|e| e as i32))
                        {
                            val = Value::from(n);
                        }
                    }
                    ("aggregationTemporality", Value::String(s)) => {
                        if let Some(n) = enum_number(s, |s| {
                            AggregationTemporality::from_str_name(s).map(|e| e as i32)
                        }) {
                            val = Value::from(n);
                        }
                    }
                    _ => fix_json(&mut val),
                }
                map.insert(key, val);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(fix_json),
        _ => {}
    }
}

fn enum_number(s: &str, by_name: impl Fn(&str) -> Option<i32>) -> Option<i32> {
    by_name(s).or_else(|| s.trim().parse().ok())
}

fn camel(k: &str) -> String {
    let mut out = String::with_capacity(k.len());
    let mut up = false;
    for c in k.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Who a resource is: `service.name`, and `service.instance.id` or `host.name`.
fn identity(attrs: &[KeyValue]) -> (Option<String>, Option<String>) {
    let get = |key: &str| {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .map(|v| any_to_string(v, 0))
            .filter(|s| !s.is_empty())
    };
    let instance = get("service.instance.id").or_else(|| get("host.name"));
    (get("service.name"), instance)
}

fn ns_to_ts(ns: u64) -> Option<Ts> {
    // u64 nanoseconds / 1e6 always fits an i64 of milliseconds.
    (ns > 0).then_some(Ts((ns / 1_000_000) as i64))
}

/// Cuts `s` at `max` bytes on a char boundary; says whether it cut.
fn truncate(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}

/// An AnyValue as text: strings as they are, scalars printed, arrays/maps as JSON-like text.
pub fn any_to_string(v: &AnyValue, depth: usize) -> String {
    let mut out = String::new();
    write_any(&mut out, v.value.as_ref(), depth, false);
    out
}

fn write_any(out: &mut String, v: Option<&any_value::Value>, depth: usize, quoted: bool) {
    use any_value::Value;
    // Bound the work on deeply nested or huge values: stop rendering past the cap.
    if out.len() > MAX_MESSAGE_BYTES {
        return;
    }
    match v {
        // A string-table index only means something to profiles; other signals read it as
        // empty (per the proto's comment).
        None | Some(Value::StringValueStrindex(_)) => {
            out.push_str(if quoted { "null" } else { "" })
        }
        Some(Value::StringValue(s)) if quoted => {
            let _ = write!(out, "{}", serde_json::Value::from(s.as_str()));
        }
        Some(Value::StringValue(s)) => out.push_str(s),
        Some(Value::BoolValue(b)) => {
            let _ = write!(out, "{b}");
        }
        Some(Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::DoubleValue(d)) => {
            let _ = write!(out, "{d}");
        }
        Some(Value::BytesValue(b)) => {
            let hex: String = b
                .iter()
                .take(MAX_FIELD_BYTES)
                .fold(String::new(), |mut s, x| {
                    let _ = write!(s, "{x:02x}");
                    s
                });
            if quoted {
                let _ = write!(out, "\"{hex}\"");
            } else {
                out.push_str(&hex);
            }
        }
        Some(_) if depth >= MAX_ANY_DEPTH => out.push('…'),
        Some(Value::ArrayValue(a)) => {
            out.push('[');
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_any(out, item.value.as_ref(), depth + 1, true);
            }
            out.push(']');
        }
        Some(Value::KvlistValue(kv)) => {
            out.push('{');
            for (i, item) in kv.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}:", serde_json::Value::from(item.key.as_str()));
                write_any(
                    out,
                    item.value.as_ref().and_then(|v| v.value.as_ref()),
                    depth + 1,
                    true,
                );
            }
            out.push('}');
        }
    }
}

fn level_of(rec: &LogRecord) -> Level {
    match rec.severity_number {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21..=24 => Level::Fatal,
        _ => Level::parse(&rec.severity_text).unwrap_or_default(),
    }
}

/// Adds attributes as fields, redacted, within the bounds; says whether any were cut.
fn add_fields(fields: &mut BTreeMap<String, String>, attrs: &[KeyValue]) -> bool {
    let mut cut = false;
    for kv in attrs {
        if fields.len() >= MAX_FIELDS && !fields.contains_key(&kv.key) {
            cut = true;
            continue;
        }
        let mut value = if is_sensitive_key(&kv.key) {
            "[REDACTED:secret]".to_string()
        } else {
            let raw = kv
                .value
                .as_ref()
                .map(|v| any_to_string(v, 0))
                .unwrap_or_default();
            redact(&raw).into_owned()
        };
        cut |= truncate(&mut value, MAX_FIELD_BYTES);
        let mut key = redact(&kv.key).into_owned();
        cut |= truncate(&mut key, MAX_FIELD_BYTES);
        fields.insert(key, value);
    }
    cut
}

/// Log records → one `Log` signal each.
pub fn logs_to_signals(
    req: &ExportLogsServiceRequest,
    source: &str,
    now: Ts,
    stats: &SourceStats,
) -> Converted {
    let mut out = Converted::default();
    for rl in &req.resource_logs {
        let res_attrs = rl
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let (service, instance) = identity(res_attrs);
        for sl in &rl.scope_logs {
            for rec in &sl.log_records {
                let (line, cut) = map_log(rec, res_attrs, sl.scope.as_ref().map(|s| &s.name));
                if cut {
                    stats.incr(Counter::OtlpFieldTruncated);
                }
                let ts = ns_to_ts(rec.time_unix_nano)
                    .or_else(|| ns_to_ts(rec.observed_time_unix_nano))
                    .unwrap_or(now);
                out.signals.push(Signal {
                    ts,
                    source: source.to_string(),
                    service: service.clone(),
                    instance: instance.clone(),
                    payload: SignalPayload::Log(line),
                });
                out.records.push(1);
                out.accepted += 1;
            }
        }
    }
    stats.add(Counter::OtlpLogRecords, out.accepted);
    out
}

fn map_log(rec: &LogRecord, res_attrs: &[KeyValue], scope: Option<&String>) -> (LogLine, bool) {
    let mut body = rec
        .body
        .as_ref()
        .map(|b| any_to_string(b, 0))
        .unwrap_or_default();
    let mut cut = truncate(&mut body, MAX_MESSAGE_BYTES);
    let body = redact(&body).into_owned();
    let mut fields = BTreeMap::new();
    cut |= add_fields(&mut fields, res_attrs);
    cut |= add_fields(&mut fields, &rec.attributes);
    if let Some(scope) = scope.filter(|s| !s.is_empty()) {
        let mut s = redact(scope).into_owned();
        cut |= truncate(&mut s, MAX_FIELD_BYTES);
        fields.insert("otel.scope.name".into(), s);
    }
    if !rec.severity_text.is_empty() {
        let mut s = redact(&rec.severity_text).into_owned();
        cut |= truncate(&mut s, MAX_FIELD_BYTES);
        fields.insert("severity_text".into(), s);
    }
    // Ids are hex in every OTLP rendering; 16 and 8 bytes by spec (cap anyway).
    if !rec.trace_id.is_empty() {
        fields.insert("trace_id".into(), hex_of(&rec.trace_id));
    }
    if !rec.span_id.is_empty() {
        fields.insert("span_id".into(), hex_of(&rec.span_id));
    }
    // Like multi-line file records: first line is the message, the rest continuation.
    let mut lines = body.split('\n');
    let message = lines.next().unwrap_or_default().trim_end_matches('\r');
    let mut continuation = Vec::new();
    for l in lines {
        if continuation.len() >= MAX_CONTINUATION_LINES {
            cut = true;
            break;
        }
        continuation.push(l.trim_end_matches('\r').to_string());
    }
    let mut raw = body.clone();
    truncate(&mut raw, crate::logparse::MAX_RAW_BYTES);
    let line = LogLine {
        level: level_of(rec),
        message: message.to_string(),
        continuation,
        fields,
        raw,
    };
    (line, cut)
}

fn hex_of(b: &[u8]) -> String {
    b.iter().take(32).fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// A Prometheus-style metric name: dots and other characters outside `[a-zA-Z0-9_:]` become
/// `_`, and a leading digit gets a `_` before it.
pub fn prom_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

fn prom_label(name: &str) -> String {
    prom_name(name).replace(':', "_")
}

fn labels_of(attrs: &[KeyValue]) -> BTreeMap<String, String> {
    attrs
        .iter()
        .map(|kv| {
            let mut v = kv
                .value
                .as_ref()
                .map(|v| any_to_string(v, 0))
                .unwrap_or_default();
            truncate(&mut v, MAX_FIELD_BYTES);
            (prom_label(&kv.key), v)
        })
        .collect()
}

fn number_value(p: &NumberDataPoint) -> Option<f64> {
    match p.value? {
        number_data_point::Value::AsDouble(d) => Some(d),
        number_data_point::Value::AsInt(i) => Some(i as f64),
    }
}

/// Prometheus renders bucket bounds as shortest round-trip floats (`0.5`, `10`, `+Inf`).
fn le_of(bound: f64) -> String {
    if bound == f64::INFINITY {
        "+Inf".into()
    } else {
        format!("{bound}")
    }
}

/// Metrics → one `Metrics` signal per (resource, scope) with at least one sample. Delta sums
/// and histograms go through `delta` (the receiver's state, shared by all its requests) and
/// come out cumulative.
pub fn metrics_to_signals(
    req: &ExportMetricsServiceRequest,
    source: &str,
    now: Ts,
    stats: &SourceStats,
    delta: &DeltaState,
) -> Converted {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let delta_t = AggregationTemporality::Delta as i32;
    let mut out = Converted::default();
    for rm in &req.resource_metrics {
        let res_attrs = rm
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let (service, instance) = identity(res_attrs);
        let res_key = attrs_key(res_attrs);
        for sm in &rm.scope_metrics {
            let accepted_before = out.accepted;
            let mut samples = Vec::new();
            let mut latest: Option<u64> = None;
            let mut seen = |t: u64| latest = latest.max(Some(t)).filter(|t| *t > 0);
            for m in &sm.metrics {
                let base = prom_name(&m.name);
                match &m.data {
                    None => out.reject(stats, Counter::OtlpMetricNoData, 1),
                    Some(metric::Data::Gauge(g)) => {
                        for p in &g.data_points {
                            push_number(&mut out, stats, &mut samples, &base, p);
                            seen(p.time_unix_nano);
                        }
                    }
                    Some(metric::Data::Sum(s)) => {
                        let t = s.aggregation_temporality;
                        if t != cumulative && t != delta_t {
                            out.reject(
                                stats,
                                Counter::OtlpUnsupportedDelta,
                                s.data_points.len() as u64,
                            );
                            continue;
                        }
                        let name = if s.is_monotonic && !base.ends_with("_total") {
                            format!("{base}_total")
                        } else {
                            base.clone()
                        };
                        for p in &s.data_points {
                            if t == delta_t {
                                let Some(v) = number_value(p) else {
                                    out.reject(stats, Counter::OtlpInvalidDataPoint, 1);
                                    continue;
                                };
                                let key = series_key(&res_key, &m.name, &p.attributes);
                                let span = (p.start_time_unix_nano, p.time_unix_nano);
                                match delta.add(key, span, Acc::Sum(v), stats) {
                                    Ok(Acc::Sum(total)) => {
                                        let mut p = p.clone();
                                        p.value = Some(number_data_point::Value::AsDouble(total));
                                        push_number(&mut out, stats, &mut samples, &name, &p);
                                    }
                                    Ok(Acc::Hist(_)) => {
                                        out.reject(stats, Counter::OtlpInvalidDataPoint, 1)
                                    }
                                    Err(counter) => out.reject(stats, counter, 1),
                                }
                            } else {
                                push_number(&mut out, stats, &mut samples, &name, p);
                            }
                            seen(p.time_unix_nano);
                        }
                    }
                    Some(metric::Data::Histogram(h)) => {
                        let t = h.aggregation_temporality;
                        if t != cumulative && t != delta_t {
                            out.reject(
                                stats,
                                Counter::OtlpUnsupportedDelta,
                                h.data_points.len() as u64,
                            );
                            continue;
                        }
                        for p in &h.data_points {
                            if t == delta_t {
                                if !histogram_layout_ok(p) {
                                    out.reject(stats, Counter::OtlpInvalidDataPoint, 1);
                                    continue;
                                }
                                let key = series_key(&res_key, &m.name, &p.attributes);
                                let span = (p.start_time_unix_nano, p.time_unix_nano);
                                let d = Acc::Hist(HistAcc {
                                    count: p.count,
                                    sum: p.sum,
                                    buckets: p.bucket_counts.clone(),
                                    bounds: p.explicit_bounds.clone(),
                                });
                                match delta.add(key, span, d, stats) {
                                    Ok(Acc::Hist(total)) => {
                                        let mut p = p.clone();
                                        p.count = total.count;
                                        p.sum = total.sum;
                                        p.bucket_counts = total.buckets;
                                        push_histogram(&mut out, stats, &mut samples, &base, &p);
                                    }
                                    Ok(Acc::Sum(_)) => {
                                        out.reject(stats, Counter::OtlpInvalidDataPoint, 1)
                                    }
                                    Err(counter) => out.reject(stats, counter, 1),
                                }
                            } else {
                                push_histogram(&mut out, stats, &mut samples, &base, p);
                            }
                            seen(p.time_unix_nano);
                        }
                    }
                    Some(metric::Data::ExponentialHistogram(h)) => out.reject(
                        stats,
                        Counter::OtlpUnsupportedExpHistogram,
                        h.data_points.len() as u64,
                    ),
                    Some(metric::Data::Summary(s)) => out.reject(
                        stats,
                        Counter::OtlpUnsupportedSummary,
                        s.data_points.len() as u64,
                    ),
                }
            }
            if !samples.is_empty() {
                out.signals.push(Signal {
                    ts: latest.and_then(ns_to_ts).unwrap_or(now),
                    source: source.to_string(),
                    service: service.clone(),
                    instance: instance.clone(),
                    payload: SignalPayload::Metrics { samples },
                });
                out.records.push(out.accepted - accepted_before);
            }
        }
    }
    stats.add(Counter::OtlpMetricPoints, out.accepted);
    out
}

fn push_number(
    out: &mut Converted,
    stats: &SourceStats,
    samples: &mut Vec<MetricSample>,
    name: &str,
    p: &NumberDataPoint,
) {
    let Some(value) = number_value(p) else {
        out.reject(stats, Counter::OtlpInvalidDataPoint, 1);
        return;
    };
    samples.push(MetricSample {
        name: name.to_string(),
        labels: labels_of(&p.attributes),
        value,
    });
    out.accepted += 1;
}

fn push_histogram(
    out: &mut Converted,
    stats: &SourceStats,
    samples: &mut Vec<MetricSample>,
    base: &str,
    p: &HistogramDataPoint,
) {
    let buckets = &p.bucket_counts;
    let bounds = &p.explicit_bounds;
    if !histogram_layout_ok(p) {
        out.reject(stats, Counter::OtlpInvalidDataPoint, 1);
        return;
    }
    let labels = labels_of(&p.attributes);
    let mut cum: u64 = 0;
    for (i, c) in buckets.iter().enumerate() {
        cum = cum.saturating_add(*c);
        let le = bounds.get(i).copied().unwrap_or(f64::INFINITY);
        let mut l = labels.clone();
        l.insert("le".into(), le_of(le));
        samples.push(MetricSample {
            name: format!("{base}_bucket"),
            labels: l,
            value: cum as f64,
        });
    }
    if buckets.is_empty() {
        // Keeps `_bucket{le="+Inf"} == _count`, which quantile readers rely on.
        let mut l = labels.clone();
        l.insert("le".into(), "+Inf".into());
        samples.push(MetricSample {
            name: format!("{base}_bucket"),
            labels: l,
            value: p.count as f64,
        });
    }
    if let Some(sum) = p.sum {
        samples.push(MetricSample {
            name: format!("{base}_sum"),
            labels: labels.clone(),
            value: sum,
        });
    }
    samples.push(MetricSample {
        name: format!("{base}_count"),
        labels,
        value: p.count as f64,
    });
    out.accepted += 1;
}

/// Per spec: either no buckets at all (count and sum only), or one more count than bounds.
fn histogram_layout_ok(p: &HistogramDataPoint) -> bool {
    let (b, e) = (p.bucket_counts.len(), p.explicit_bounds.len());
    (b == 0 && e == 0) || b == e + 1
}

/// Delta series tracked by default ([`DeltaState::default`]).
pub const DEFAULT_DELTA_SERIES: usize = 10_000;
/// Longest series key kept verbatim; the rest is folded into a hash, so a resource with
/// huge attributes cannot make the state large.
const MAX_KEY_BYTES: usize = 4 * 1024;

/// Running totals that turn OTLP delta points into cumulative ones, shared by every request
/// a receiver handles (a `Mutex` inside; cheap to share behind an `Arc`).
///
/// A series is resource attributes + metric name + point attributes. A point whose
/// `start_time_unix_nano` is the series' last `time_unix_nano` (or 0: unknown) continues
/// it; a later start (a gap: points lost or a restarted exporter) or a change of kind or
/// bucket bounds restarts it from the point's own value (`otlp_delta_reset`). A point not
/// newer than the last one, or starting before it ended, would be counted twice: it is
/// dropped (`otlp_delta_out_of_order`). At most `max_series` series are kept; the least
/// recently updated is forgotten first (`otlp_delta_series_evicted`) and, if it comes back,
/// restarts from its next delta.
#[derive(Debug)]
pub struct DeltaState {
    max_series: usize,
    inner: Mutex<DeltaInner>,
}

#[derive(Debug, Default)]
struct DeltaInner {
    series: HashMap<String, Series>,
    /// Last-update tick → key: the oldest is the first entry.
    by_age: BTreeMap<u64, String>,
    tick: u64,
}

#[derive(Debug)]
struct Series {
    /// End (`time_unix_nano`) of the last delta added.
    end: u64,
    /// Tick of the last update (its key in `by_age`).
    age: u64,
    total: Acc,
}

/// A delta point's value, or a series' running total.
#[derive(Clone, Debug, PartialEq)]
pub enum Acc {
    Sum(f64),
    Hist(HistAcc),
}

#[derive(Clone, Debug, PartialEq)]
pub struct HistAcc {
    pub count: u64,
    /// `None` once any delta came without a sum (until the series restarts).
    pub sum: Option<f64>,
    pub buckets: Vec<u64>,
    pub bounds: Vec<f64>,
}

impl Acc {
    /// Adds `d` when it has the same shape (kind, bucket bounds); false otherwise.
    fn absorb(&mut self, d: &Acc) -> bool {
        match (self, d) {
            (Acc::Sum(t), Acc::Sum(v)) => {
                *t += v;
                true
            }
            (Acc::Hist(t), Acc::Hist(d))
                if t.bounds == d.bounds && t.buckets.len() == d.buckets.len() =>
            {
                t.count = t.count.saturating_add(d.count);
                t.sum = t.sum.zip(d.sum).map(|(a, b)| a + b);
                for (a, b) in t.buckets.iter_mut().zip(&d.buckets) {
                    *a = a.saturating_add(*b);
                }
                true
            }
            _ => false,
        }
    }
}

impl Default for DeltaState {
    fn default() -> Self {
        DeltaState::new(DEFAULT_DELTA_SERIES)
    }
}

impl DeltaState {
    /// State for at most `max_series` series (at least one).
    pub fn new(max_series: usize) -> Self {
        DeltaState {
            max_series: max_series.max(1),
            inner: Mutex::new(DeltaInner::default()),
        }
    }

    /// Series currently tracked.
    pub fn len(&self) -> usize {
        self.lock().series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DeltaInner> {
        // The state stays consistent between statements, so a panic elsewhere while it was
        // held leaves nothing half-done worth refusing requests over.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds one delta point (`span` = start and time, ns) to series `key`; returns the
    /// series' cumulative value, or the counter naming why the point was dropped.
    pub fn add(
        &self,
        key: String,
        span: (u64, u64),
        d: Acc,
        stats: &SourceStats,
    ) -> Result<Acc, Counter> {
        let (start, time) = span;
        if time == 0 || (start != 0 && start > time) {
            return Err(Counter::OtlpInvalidDataPoint);
        }
        let mut g = self.lock();
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(s) = inner.series.get_mut(&key) {
            if time <= s.end || (start != 0 && start < s.end) {
                return Err(Counter::OtlpDeltaOutOfOrder);
            }
            let contiguous = start == 0 || start == s.end;
            if !(contiguous && s.total.absorb(&d)) {
                stats.incr(Counter::OtlpDeltaReset);
                s.total = d;
            }
            s.end = time;
            let old = std::mem::replace(&mut s.age, tick);
            let total = s.total.clone();
            if let Some(k) = inner.by_age.remove(&old) {
                inner.by_age.insert(tick, k);
            }
            return Ok(total);
        }
        while inner.series.len() >= self.max_series {
            let Some((_, oldest)) = inner.by_age.pop_first() else {
                break;
            };
            inner.series.remove(&oldest);
            stats.incr(Counter::OtlpDeltaSeriesEvicted);
        }
        inner.by_age.insert(tick, key.clone());
        inner.series.insert(
            key,
            Series {
                end: time,
                age: tick,
                total: d.clone(),
            },
        );
        Ok(d)
    }
}

/// Attributes in a canonical order (sorted by key), length-prefixed so no two different
/// sets render the same.
fn attrs_key(attrs: &[KeyValue]) -> String {
    let mut kv: Vec<(&str, String)> = attrs
        .iter()
        .map(|kv| {
            let mut v = kv
                .value
                .as_ref()
                .map(|v| any_to_string(v, 0))
                .unwrap_or_default();
            truncate(&mut v, MAX_FIELD_BYTES);
            (kv.key.as_str(), v)
        })
        .collect();
    kv.sort();
    let mut out = String::new();
    for (k, v) in kv {
        let _ = write!(out, "{}:{k}{}:{v}", k.len(), v.len());
    }
    out
}

fn series_key(res_key: &str, name: &str, attrs: &[KeyValue]) -> String {
    let mut key = format!(
        "{}:{res_key}{}:{name}{}",
        res_key.len(),
        name.len(),
        attrs_key(attrs)
    );
    if key.len() > MAX_KEY_BYTES {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        truncate(&mut key, MAX_KEY_BYTES);
        let _ = write!(key, "#{:016x}", h.finish());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, Gauge, Histogram, Metric, ResourceMetrics, ScopeMetrics, Sum,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn resource() -> Option<Resource> {
        Some(Resource {
            attributes: vec![kv("service.name", "checkout"), kv("host.name", "h1")],
            ..Default::default()
        })
    }

    fn logs_req(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource(),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "app".into(),
                        ..Default::default()
                    }),
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn metrics_req(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource(),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn point(v: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
        NumberDataPoint {
            attributes: attrs,
            time_unix_nano: 1_700_000_000_123_000_000,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        }
    }

    fn samples(c: &Converted) -> Vec<MetricSample> {
        c.signals
            .iter()
            .flat_map(|s| match &s.payload {
                SignalPayload::Metrics { samples } => samples.clone(),
                _ => vec![],
            })
            .collect()
    }

    #[test]
    fn log_record_maps_level_body_fields_identity_and_redacts() {
        let rec = LogRecord {
            time_unix_nano: 1_700_000_000_500_000_000,
            severity_number: SeverityNumber::Error as i32,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(
                    "payment failed password=hunter2\n  at frame1".into(),
                )),
            }),
            attributes: vec![kv("http.route", "/pay"), kv("api_key", "abc")],
            trace_id: vec![0xab; 16],
            ..Default::default()
        };
        let stats = SourceStats::new();
        let c = logs_to_signals(&logs_req(vec![rec]), "otlp", Ts(1), &stats);
        assert_eq!((c.accepted, c.rejected), (1, 0));
        let s = &c.signals[0];
        assert_eq!(s.ts, Ts(1_700_000_000_500));
        assert_eq!(s.service.as_deref(), Some("checkout"));
        assert_eq!(s.instance.as_deref(), Some("h1"));
        let SignalPayload::Log(l) = &s.payload else {
            panic!("not a log")
        };
        assert_eq!(l.level, Level::Error);
        assert!(l.message.starts_with("payment failed"), "{}", l.message);
        assert!(!l.message.contains("hunter2"));
        assert_eq!(l.continuation, vec!["  at frame1".to_string()]);
        assert_eq!(l.fields["http.route"], "/pay");
        assert_eq!(l.fields["api_key"], "[REDACTED:secret]");
        assert_eq!(l.fields["service.name"], "checkout");
        assert_eq!(l.fields["otel.scope.name"], "app");
        assert_eq!(l.fields["trace_id"], "ab".repeat(16));
        assert_eq!(stats.get(Counter::OtlpLogRecords), 1);
    }

    #[test]
    fn level_from_text_then_observed_time_then_now() {
        let rec = LogRecord {
            observed_time_unix_nano: 2_000_000,
            severity_text: "WARNING".into(),
            ..Default::default()
        };
        let c = logs_to_signals(
            &logs_req(vec![rec, LogRecord::default()]),
            "o",
            Ts(9),
            &SourceStats::new(),
        );
        let levels: Vec<_> = c
            .signals
            .iter()
            .map(|s| match &s.payload {
                SignalPayload::Log(l) => (s.ts, l.level),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(levels, vec![(Ts(2), Level::Warn), (Ts(9), Level::Info)]);
    }

    #[test]
    fn structured_and_huge_bodies_are_flattened_and_bounded() {
        let nested = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![
                    kv("msg", "hi"),
                    KeyValue {
                        key: "n".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::ArrayValue(ArrayValue {
                                values: vec![AnyValue {
                                    value: Some(any_value::Value::IntValue(3)),
                                }],
                            })),
                        }),
                        ..Default::default()
                    },
                ],
            })),
        };
        assert_eq!(any_to_string(&nested, 0), r#"{"msg":"hi","n":[3]}"#);
        let mut deep = AnyValue::default();
        for _ in 0..50 {
            deep = AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue {
                    values: vec![deep],
                })),
            };
        }
        assert!(any_to_string(&deep, 0).contains('…'));
        let stats = SourceStats::new();
        let big = LogRecord {
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue("é".repeat(MAX_MESSAGE_BYTES))),
            }),
            attributes: (0..200).map(|i| kv(&format!("k{i}"), "v")).collect(),
            ..Default::default()
        };
        let c = logs_to_signals(&logs_req(vec![big]), "o", Ts(0), &stats);
        let SignalPayload::Log(l) = &c.signals[0].payload else {
            panic!()
        };
        assert!(l.message.len() <= MAX_MESSAGE_BYTES);
        assert!(l.fields.len() <= MAX_FIELDS + 4);
        assert_eq!(stats.get(Counter::OtlpFieldTruncated), 1);
    }

    #[test]
    fn gauges_sums_and_histograms_become_prometheus_samples() {
        let gauge = Metric {
            name: "queue.depth".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![point(7.0, vec![kv("queue.name", "q1")])],
            })),
            ..Default::default()
        };
        let counter = Metric {
            name: "http.requests".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![point(12.0, vec![])],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let updown = Metric {
            name: "active".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![point(-2.0, vec![])],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: false,
            })),
            ..Default::default()
        };
        let hist = Metric {
            name: "latency".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    count: 6,
                    sum: Some(3.5),
                    bucket_counts: vec![1, 2, 3],
                    explicit_bounds: vec![0.1, 1.0],
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        };
        let stats = SourceStats::new();
        let c = metrics_to_signals(
            &metrics_req(vec![gauge, counter, updown, hist]),
            "o",
            Ts(0),
            &stats,
            &DeltaState::default(),
        );
        assert_eq!(c.signals.len(), 1, "one signal per (resource, scope)");
        assert_eq!(c.signals[0].ts, Ts(1_700_000_000_123));
        assert_eq!((c.accepted, c.rejected), (4, 0));
        let got: Vec<(String, Option<String>, f64)> = samples(&c)
            .into_iter()
            .map(|s| {
                let extra = s.labels.get("le").or(s.labels.get("queue_name")).cloned();
                (s.name, extra, s.value)
            })
            .collect();
        let want = [
            ("queue_depth", Some("q1"), 7.0),
            ("http_requests_total", None, 12.0),
            ("active", None, -2.0),
            ("latency_bucket", Some("0.1"), 1.0),
            ("latency_bucket", Some("1"), 3.0),
            ("latency_bucket", Some("+Inf"), 6.0),
            ("latency_sum", None, 3.5),
            ("latency_count", None, 6.0),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(n, l, v)| (n.to_string(), l.map(str::to_string), *v))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn unmappable_points_are_counted_with_reasons() {
        // Neither delta nor cumulative: nothing says how to read it.
        let delta = Metric {
            name: "d".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![point(1.0, vec![]), point(2.0, vec![])],
                aggregation_temporality: AggregationTemporality::Unspecified as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let no_value = Metric {
            name: "g".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint::default()],
            })),
            ..Default::default()
        };
        let bad_hist = Metric {
            name: "h".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    bucket_counts: vec![1],
                    explicit_bounds: vec![1.0, 2.0],
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        };
        let exp = Metric {
            name: "e".into(),
            data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![Default::default()],
                aggregation_temporality: 2,
            })),
            ..Default::default()
        };
        let empty = Metric::default();
        let stats = SourceStats::new();
        let c = metrics_to_signals(
            &metrics_req(vec![delta, no_value, bad_hist, exp, empty]),
            "o",
            Ts(0),
            &stats,
            &DeltaState::default(),
        );
        assert!(c.signals.is_empty());
        assert_eq!((c.accepted, c.rejected), (0, 6));
        assert_eq!(c.first_reason, Some("otlp_unsupported_delta"));
        assert_eq!(stats.get(Counter::OtlpUnsupportedDelta), 2);
        assert_eq!(stats.get(Counter::OtlpInvalidDataPoint), 2);
        assert_eq!(stats.get(Counter::OtlpUnsupportedExpHistogram), 1);
        assert_eq!(stats.get(Counter::OtlpMetricNoData), 1);
    }

    #[test]
    fn json_accepts_spec_quirks() {
        let body = br#"{"resourceLogs":[{"resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"api"}},
            {"key":"n","value":{"intValue":"42"}}]},
          "scope_logs":[{"logRecords":[{"timeUnixNano":"1700000000000000000",
            "severityNumber":"SEVERITY_NUMBER_ERROR","severityText":null,
            "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "body":{"stringValue":"boom"}}]}]}]}"#;
        let req = decode_logs_json(body).unwrap();
        let c = logs_to_signals(&req, "o", Ts(0), &SourceStats::new());
        let SignalPayload::Log(l) = &c.signals[0].payload else {
            panic!()
        };
        assert_eq!((l.level, l.message.as_str()), (Level::Error, "boom"));
        assert_eq!(l.fields["n"], "42");
        assert_eq!(l.fields["span_id"], "eee19b7ec3c1b174");
        assert_eq!(c.signals[0].ts, Ts(1_700_000_000_000));

        let body = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
            {"name":"c","sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE",
              "isMonotonic":true,"dataPoints":[{"asInt":"5","timeUnixNano":1}]}},
            {"name":"h","histogram":{"aggregationTemporality":2,"dataPoints":[
              {"count":"3","sum":1.5,"bucketCounts":["1",2],"explicitBounds":[0.5]}]}}]}]}]}"#;
        let req = decode_metrics_json(body).unwrap();
        let c = metrics_to_signals(
            &req,
            "o",
            Ts(0),
            &SourceStats::new(),
            &DeltaState::default(),
        );
        assert_eq!((c.accepted, c.rejected), (2, 0));
        let names: Vec<_> = samples(&c).into_iter().map(|s| (s.name, s.value)).collect();
        assert_eq!(names[0], ("c_total".to_string(), 5.0));
        assert!(names.contains(&("h_bucket".to_string(), 3.0)));
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        for body in [
            &b""[..],
            b"{",
            b"[]",
            b"null",
            b"{\"resourceLogs\":5}",
            b"\xff\xfe",
        ] {
            assert!(decode_logs_json(body).is_err(), "{body:?}");
            let _ = decode_metrics_json(body);
            let _ = decode_logs_protobuf(body);
        }
        assert!(decode_logs_protobuf(b"\x0a\xff\xff\xff\xff\x0f").is_err());
        assert!(decode_metrics_protobuf(b"\x0a\x05abc").is_err());
        // Wrong types in JSON: a string where a list is expected.
        assert!(decode_metrics_json(br#"{"resourceMetrics":"x"}"#).is_err());
    }

    #[test]
    fn truncated_protobuf_at_every_offset_never_panics() {
        let rec = LogRecord {
            time_unix_nano: 5,
            severity_number: 17,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue("x".repeat(300))),
            }),
            attributes: vec![kv("a", "b")],
            ..Default::default()
        };
        let full = logs_req(vec![rec.clone(), rec]).encode_to_vec();
        let stats = SourceStats::new();
        for end in 0..full.len() {
            if let Ok(req) = decode_logs_protobuf(&full[..end]) {
                let _ = logs_to_signals(&req, "o", Ts(0), &stats);
            }
        }
        let m = metrics_req(vec![Metric {
            name: "g".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![point(1.0, vec![kv("k", "v")])],
            })),
            ..Default::default()
        }])
        .encode_to_vec();
        for end in 0..m.len() {
            if let Ok(req) = decode_metrics_protobuf(&m[..end]) {
                let _ = metrics_to_signals(&req, "o", Ts(0), &stats, &DeltaState::default());
            }
        }
        // Garbage: a deterministic byte soup.
        let mut x: u32 = 1;
        let soup: Vec<u8> = (0..4096)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        for w in soup.chunks(97) {
            let _ = decode_logs_protobuf(w);
            let _ = decode_metrics_protobuf(w);
        }
    }

    /// A delta point over (start, end] seconds, with value `v`.
    fn dpoint(v: f64, start: u64, end: u64, attrs: Vec<KeyValue>) -> NumberDataPoint {
        NumberDataPoint {
            attributes: attrs,
            start_time_unix_nano: start * 1_000_000_000,
            time_unix_nano: end * 1_000_000_000,
            value: Some(number_data_point::Value::AsInt(v as i64)),
            ..Default::default()
        }
    }

    fn delta_sum(name: &str, points: Vec<NumberDataPoint>) -> ExportMetricsServiceRequest {
        metrics_req(vec![Metric {
            name: name.into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: points,
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        }])
    }

    /// Sends each request in turn through one state; the values of `name` that came out.
    fn run_deltas(
        reqs: &[ExportMetricsServiceRequest],
        state: &DeltaState,
        stats: &SourceStats,
        name: &str,
    ) -> Vec<f64> {
        reqs.iter()
            .flat_map(|r| samples(&metrics_to_signals(r, "o", Ts(0), stats, state)))
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .collect()
    }

    #[test]
    fn delta_sums_accumulate_across_requests_per_series() {
        let state = DeltaState::default();
        let stats = SourceStats::new();
        let a = || vec![kv("route", "/a")];
        let b = || vec![kv("route", "/b")];
        let reqs = [
            delta_sum(
                "reqs",
                vec![dpoint(5.0, 10, 20, a()), dpoint(1.0, 10, 20, b())],
            ),
            delta_sum("reqs", vec![dpoint(3.0, 20, 30, a())]),
            delta_sum(
                "reqs",
                vec![dpoint(2.0, 30, 40, a()), dpoint(4.0, 20, 40, b())],
            ),
        ];
        assert_eq!(
            run_deltas(&reqs, &state, &stats, "reqs_total"),
            vec![5.0, 1.0, 8.0, 10.0, 5.0]
        );
        assert_eq!(state.len(), 2);
        assert_eq!(stats.get(Counter::OtlpMetricPoints), 5);
        assert_eq!(stats.get(Counter::OtlpDeltaReset), 0);
        // Another resource is another series, even with the same name and attributes.
        let mut other = delta_sum("reqs", vec![dpoint(7.0, 40, 50, a())]);
        other.resource_metrics[0].resource = Some(Resource {
            attributes: vec![kv("service.name", "cart")],
            ..Default::default()
        });
        assert_eq!(
            run_deltas(&[other], &state, &stats, "reqs_total"),
            vec![7.0]
        );
        assert_eq!(state.len(), 3);
    }

    #[test]
    fn delta_series_restarts_on_a_new_start_time_or_a_gap() {
        let state = DeltaState::default();
        let stats = SourceStats::new();
        let reqs = [
            delta_sum("c", vec![dpoint(5.0, 10, 20, vec![])]),
            delta_sum("c", vec![dpoint(3.0, 20, 30, vec![])]),
            // The exporter restarted: its first interval starts later than ours ended.
            delta_sum("c", vec![dpoint(2.0, 35, 40, vec![])]),
            delta_sum("c", vec![dpoint(1.0, 40, 50, vec![])]),
            // Start 0 (unknown): nothing to check but order, so it continues.
            delta_sum("c", vec![dpoint(4.0, 0, 60, vec![])]),
        ];
        assert_eq!(
            run_deltas(&reqs, &state, &stats, "c_total"),
            vec![5.0, 8.0, 2.0, 3.0, 7.0]
        );
        assert_eq!(stats.get(Counter::OtlpDeltaReset), 1);
    }

    #[test]
    fn out_of_order_and_overlapping_delta_points_are_dropped_and_counted() {
        let state = DeltaState::default();
        let stats = SourceStats::new();
        let reqs = [
            delta_sum("c", vec![dpoint(5.0, 10, 20, vec![])]),
            delta_sum("c", vec![dpoint(9.0, 10, 20, vec![])]), // replayed
            delta_sum("c", vec![dpoint(9.0, 0, 15, vec![])]),  // older
            delta_sum("c", vec![dpoint(9.0, 15, 25, vec![])]), // overlaps (15..20 twice)
            delta_sum("c", vec![dpoint(9.0, 30, 25, vec![])]), // starts after it ends
            delta_sum("c", vec![dpoint(9.0, 10, 0, vec![])]),  // no time
            delta_sum("c", vec![dpoint(1.0, 20, 30, vec![])]),
        ];
        let mut rejected = 0;
        let mut values = Vec::new();
        for r in &reqs {
            let c = metrics_to_signals(r, "o", Ts(0), &stats, &state);
            rejected += c.rejected;
            values.extend(samples(&c).into_iter().map(|s| s.value));
        }
        assert_eq!(values, vec![5.0, 6.0]);
        assert_eq!(rejected, 5);
        assert_eq!(stats.get(Counter::OtlpDeltaOutOfOrder), 3);
        assert_eq!(stats.get(Counter::OtlpInvalidDataPoint), 2);
        assert_eq!(stats.get(Counter::OtlpDeltaReset), 0);
    }

    #[test]
    fn delta_series_are_capped_evicting_the_least_recently_updated() {
        let state = DeltaState::new(2);
        let stats = SourceStats::new();
        let s = |k: &str| vec![kv("k", k)];
        let reqs = [
            delta_sum("c", vec![dpoint(1.0, 10, 20, s("a"))]),
            delta_sum("c", vec![dpoint(1.0, 10, 20, s("b"))]),
            // `a` is updated, so `b` is now the least recently updated…
            delta_sum("c", vec![dpoint(1.0, 20, 30, s("a"))]),
            // …and goes when `x` arrives.
            delta_sum("c", vec![dpoint(1.0, 10, 30, s("x"))]),
            delta_sum("c", vec![dpoint(1.0, 30, 40, s("a"))]),
            // `b` returns: forgotten, so it starts again from its delta.
            delta_sum("c", vec![dpoint(1.0, 20, 40, s("b"))]),
        ];
        assert_eq!(
            run_deltas(&reqs, &state, &stats, "c_total"),
            vec![1.0, 1.0, 2.0, 1.0, 3.0, 1.0]
        );
        assert_eq!(state.len(), 2);
        assert_eq!(stats.get(Counter::OtlpDeltaSeriesEvicted), 2);
        // Many distinct series never grow the state past its cap.
        let many: Vec<_> = (0..500)
            .map(|i| delta_sum("c", vec![dpoint(1.0, 10, 20, s(&i.to_string()))]))
            .collect();
        run_deltas(&many, &state, &stats, "c_total");
        assert_eq!(state.len(), 2);
        assert_eq!(stats.get(Counter::OtlpDeltaSeriesEvicted), 502);
    }

    #[test]
    fn delta_histograms_accumulate_and_restart_on_new_bounds() {
        let hist = |start: u64, end: u64, buckets: Vec<u64>, bounds: Vec<f64>| {
            metrics_req(vec![Metric {
                name: "lat".into(),
                data: Some(metric::Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        start_time_unix_nano: start,
                        time_unix_nano: end,
                        count: buckets.iter().sum(),
                        sum: Some(buckets.iter().sum::<u64>() as f64 / 2.0),
                        bucket_counts: buckets,
                        explicit_bounds: bounds,
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                })),
                ..Default::default()
            }])
        };
        let state = DeltaState::default();
        let stats = SourceStats::new();
        let reqs = [
            hist(1, 2, vec![1, 0, 2], vec![0.1, 1.0]),
            hist(2, 3, vec![0, 4, 1], vec![0.1, 1.0]),
            hist(3, 4, vec![5, 5], vec![0.5]),
            hist(4, 5, vec![1, 2, 3], vec![0.1]), // bad layout
        ];
        let counts = run_deltas(&reqs, &state, &stats, "lat_count");
        assert_eq!(counts, vec![3.0, 8.0, 10.0]);
        // Buckets and sum, through a fresh state: running totals per `le`.
        let state = DeltaState::default();
        let buckets: Vec<(String, f64)> = reqs[..2]
            .iter()
            .flat_map(|r| samples(&metrics_to_signals(r, "o", Ts(0), &stats, &state)))
            .filter(|s| s.name == "lat_bucket" || s.name == "lat_sum")
            .map(|s| (s.labels.get("le").cloned().unwrap_or_default(), s.value))
            .collect();
        let want: Vec<(String, f64)> = [
            ("0.1", 1.0),
            ("1", 1.0),
            ("+Inf", 3.0),
            ("", 1.5),
            ("0.1", 1.0),
            ("1", 5.0),
            ("+Inf", 8.0),
            ("", 4.0),
        ]
        .iter()
        .map(|(l, v)| (l.to_string(), *v))
        .collect();
        assert_eq!(buckets, want);
        assert_eq!(stats.get(Counter::OtlpDeltaReset), 1);
        assert_eq!(stats.get(Counter::OtlpInvalidDataPoint), 1);
    }

    #[test]
    fn names_are_prometheus_style() {
        assert_eq!(prom_name("http.server.duration"), "http_server_duration");
        assert_eq!(prom_name("1x"), "_1x");
        assert_eq!(prom_name("a-b/c"), "a_b_c");
        assert_eq!(prom_label("ns:key"), "ns_key");
    }
}
