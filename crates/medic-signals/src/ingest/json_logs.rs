//! JSON log bodies as log shippers send them over HTTP: NDJSON (Fluent Bit `json_lines`,
//! Vector `ndjson`), a JSON array of objects (Fluent Bit `json`, Vector `json`), or one
//! object (syslog-ng `http()` with a JSON template). Common field names are mapped to
//! message, level, timestamp, service and instance; the rest become redacted fields.

use crate::logparse::{MAX_RAW_BYTES, parse_log_record, parse_timestamp};
use crate::redact::{is_sensitive_key, redact};
use medic_core::{Level, LogLine, Signal, SignalPayload, Ts};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Field names read as the message, in order of preference.
const MESSAGE_KEYS: &[&str] = &[
    "message",
    "msg",
    "log",
    "MESSAGE",
    "@message",
    "short_message",
    "text",
];
const LEVEL_KEYS: &[&str] = &[
    "level",
    "severity",
    "lvl",
    "log.level",
    "loglevel",
    "log_level",
    "levelname",
    "severity_text",
    "PRIORITY",
];
const TIME_KEYS: &[&str] = &[
    "@timestamp",
    "timestamp",
    "time",
    "ts",
    "date",
    "datetime",
    "_SOURCE_REALTIME_TIMESTAMP",
    "__REALTIME_TIMESTAMP",
];
const SERVICE_KEYS: &[&str] = &[
    "service",
    "service.name",
    "service_name",
    "app",
    "application",
    "app_name",
    "appname",
    "program",
    "SYSLOG_IDENTIFIER",
    "kubernetes.labels.app",
    "kubernetes.labels.app.kubernetes.io/name",
    "kubernetes.container_name",
    "kubernetes.pod_name",
];
const INSTANCE_KEYS: &[&str] = &[
    "instance",
    "kubernetes.pod_name",
    "host",
    "hostname",
    "host.name",
    "_HOSTNAME",
];
/// Bounds on what one record may carry into a signal.
const MAX_FIELDS: usize = 64;
const MAX_FIELD_VALUE_BYTES: usize = 4096;
const MAX_DEPTH: usize = 4;

/// What a body held: the records that became signals, and how many were rejected.
#[derive(Debug, Default)]
pub struct JsonLogBatch {
    pub signals: Vec<Signal>,
    /// Lines that were not JSON, or values that were not objects (skipped).
    pub rejected: usize,
    /// Records whose fields were cut to the bounds above.
    pub truncated: usize,
}

/// Why a whole body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonBodyError {
    #[error("body is not UTF-8 JSON: expected NDJSON, a JSON array of objects or one object")]
    NotUtf8,
    #[error("body is a malformed JSON array ({0}): expected an array of objects")]
    MalformedArray(String),
}

/// Who sent it, for signals: the route's source name and an optional fixed service.
pub struct JsonLogContext<'a> {
    pub source: &'a str,
    pub service: Option<&'a str>,
    pub now: Ts,
}

/// Decodes a (decompressed) body. One malformed NDJSON line is counted and skipped; a
/// malformed array refuses the body, since its record boundaries are unknown.
pub fn decode_json_logs(
    body: &[u8],
    cx: &JsonLogContext<'_>,
) -> Result<JsonLogBatch, JsonBodyError> {
    let text = std::str::from_utf8(body).map_err(|_| JsonBodyError::NotUtf8)?;
    let mut batch = JsonLogBatch::default();
    let trimmed = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(trimmed) {
            Ok(v) => push_value(v, cx, &mut batch),
            Err(e) => {
                // Vector and Fluent Bit may also send NDJSON whose lines are arrays.
                if !trimmed.contains('\n') {
                    return Err(JsonBodyError::MalformedArray(e.to_string()));
                }
                decode_lines(trimmed, cx, &mut batch);
            }
        }
        return Ok(batch);
    }
    // One (possibly pretty-printed) object is tried first; a failure means NDJSON.
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        push_value(v, cx, &mut batch);
        return Ok(batch);
    }
    decode_lines(trimmed, cx, &mut batch);
    Ok(batch)
}

fn decode_lines(text: &str, cx: &JsonLogContext<'_>, batch: &mut JsonLogBatch) {
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) => push_value(v, cx, batch),
            Err(_) => batch.rejected += 1,
        }
    }
}

fn push_value(v: Value, cx: &JsonLogContext<'_>, batch: &mut JsonLogBatch) {
    match v {
        Value::Object(map) => {
            let (signal, truncated) = record_to_signal(&map, cx);
            batch.truncated += usize::from(truncated);
            batch.signals.push(signal);
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(map) => {
                        let (signal, truncated) = record_to_signal(&map, cx);
                        batch.truncated += usize::from(truncated);
                        batch.signals.push(signal);
                    }
                    _ => batch.rejected += 1,
                }
            }
        }
        _ => batch.rejected += 1,
    }
}

/// Looks up `key`, either literally or as a dotted path into nested objects
/// (`kubernetes.pod_name`).
fn lookup<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    if let Some(v) = map.get(key) {
        return Some(v);
    }
    let (head, rest) = key.split_once('.')?;
    match map.get(head)? {
        Value::Object(inner) => lookup(inner, rest),
        _ => None,
    }
}

fn first<'v>(
    map: &'v Map<String, Value>,
    keys: &[&'static str],
) -> Option<(&'static str, &'v Value)> {
    keys.iter()
        .find_map(|k| lookup(map, k).filter(|v| !v.is_null()).map(|v| (*k, v)))
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Levels: names, syslog severities (`PRIORITY`, 0–7) and bunyan/pino numbers (10–60).
fn level_of(key: &str, v: &Value) -> Option<Level> {
    match v {
        Value::String(s) => Level::parse(s).or_else(|| {
            s.trim()
                .parse::<i64>()
                .ok()
                .and_then(|n| numeric_level(key, n))
        }),
        Value::Number(n) => numeric_level(key, n.as_i64()?),
        _ => None,
    }
}

fn numeric_level(key: &str, n: i64) -> Option<Level> {
    if key == "PRIORITY" || (0..=7).contains(&n) {
        return Some(super::syslog::severity_level(
            u8::try_from(n.clamp(0, 7)).ok()?,
        ));
    }
    Some(match n {
        i64::MIN..=10 => Level::Trace,
        11..=20 => Level::Debug,
        21..=30 => Level::Info,
        31..=40 => Level::Warn,
        41..=50 => Level::Error,
        _ => Level::Fatal,
    })
}

/// Timestamps: RFC 3339 strings, or epoch numbers in seconds, ms, µs or ns (by magnitude;
/// journald's `__REALTIME_TIMESTAMP` is µs as a string).
fn time_of(v: &Value) -> Option<Ts> {
    let x = match v {
        Value::String(s) => {
            if let Some(t) = parse_timestamp(s) {
                return Some(t);
            }
            s.trim().parse::<f64>().ok()?
        }
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    if !x.is_finite() || x <= 0.0 {
        return None;
    }
    let ms = if x > 1e17 {
        x / 1e6
    } else if x > 1e14 {
        x / 1e3
    } else if x > 1e11 {
        x
    } else {
        x * 1e3
    };
    Some(Ts(ms.round() as i64))
}

fn cut(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// Flattens the other fields into `a.b` keys, bounded in count, depth and value size.
fn flatten(
    prefix: &str,
    map: &Map<String, Value>,
    depth: usize,
    skip: &[&str],
    out: &mut BTreeMap<String, String>,
    truncated: &mut bool,
) {
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if skip.contains(&key.as_str()) {
            continue;
        }
        if out.len() >= MAX_FIELDS {
            *truncated = true;
            return;
        }
        match v {
            Value::Null => {}
            Value::Object(inner) if depth < MAX_DEPTH => {
                flatten(&key, inner, depth + 1, skip, out, truncated)
            }
            other => {
                let text = match other {
                    Value::String(s) => s.clone(),
                    o => o.to_string(),
                };
                let value = if is_sensitive_key(k) {
                    "[REDACTED:secret]".to_string()
                } else {
                    let (c, cut_it) = cut(&text, MAX_FIELD_VALUE_BYTES);
                    *truncated |= cut_it;
                    redact(c).into_owned()
                };
                out.insert(redact(&key).into_owned(), value);
            }
        }
    }
}

/// One JSON object → one log signal (redacted); the bool says whether anything was cut.
pub fn record_to_signal(map: &Map<String, Value>, cx: &JsonLogContext<'_>) -> (Signal, bool) {
    let message_kv = first(map, MESSAGE_KEYS);
    let level_kv = first(map, LEVEL_KEYS);
    let time_kv = first(map, TIME_KEYS);
    let service_kv = first(map, SERVICE_KEYS);
    let instance_kv = first(map, INSTANCE_KEYS);

    let mut truncated = false;
    let raw_json = Value::Object(map.clone()).to_string();
    let (raw, raw_cut) = cut(&raw_json, MAX_RAW_BYTES);
    truncated |= raw_cut;

    let message_text = message_kv.and_then(|(_, v)| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    });
    // A `log` field holding the application's own line (Docker, Fluent Bit tail) still has
    // its timestamp and level in it: parse it as a log line when the object lacks them.
    let (parsed, parsed_ts) = match &message_text {
        Some(t) => {
            let (c, cut_it) = cut(t.trim_end_matches(['\n', '\r']), MAX_RAW_BYTES);
            truncated |= cut_it;
            parse_log_record(c)
        }
        None => (LogLine::default(), None),
    };
    let level = level_kv
        .and_then(|(k, v)| level_of(k, v))
        .unwrap_or(parsed.level);
    let ts = time_kv
        .and_then(|(_, v)| time_of(v))
        .or(parsed_ts)
        .unwrap_or(cx.now);

    let mut skip: Vec<&str> = Vec::new();
    for (k, _) in [message_kv, level_kv, time_kv].into_iter().flatten() {
        skip.push(k);
    }
    let mut fields = parsed.fields;
    flatten("", map, 0, &skip, &mut fields, &mut truncated);

    let service = cx
        .service
        .map(str::to_string)
        .or_else(|| service_kv.and_then(|(_, v)| scalar_string(v)))
        .map(|s| redact(&s).into_owned());
    let instance = instance_kv
        .and_then(|(_, v)| scalar_string(v))
        .map(|s| redact(&s).into_owned());
    let line = LogLine {
        level,
        message: parsed.message,
        continuation: parsed.continuation,
        fields,
        raw: redact(raw).into_owned(),
    };
    let signal = Signal {
        ts,
        source: cx.source.to_string(),
        service,
        instance,
        payload: SignalPayload::Log(line),
    };
    (signal, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> JsonLogContext<'static> {
        JsonLogContext {
            source: "http",
            service: None,
            now: Ts(1),
        }
    }

    fn log(s: &Signal) -> &LogLine {
        match &s.payload {
            SignalPayload::Log(l) => l,
            other => panic!("not a log: {other:?}"),
        }
    }

    #[test]
    fn ndjson_with_a_bad_line_keeps_the_rest() {
        let body = b"{\"msg\":\"a\",\"level\":\"error\",\"service\":\"pay\"}\nnot json\n{\"message\":\"b\"}\n";
        let b = decode_json_logs(body, &cx()).unwrap();
        assert_eq!(b.signals.len(), 2);
        assert_eq!(b.rejected, 1);
        assert_eq!(log(&b.signals[0]).level, Level::Error);
        assert_eq!(b.signals[0].service.as_deref(), Some("pay"));
        assert_eq!(log(&b.signals[1]).message, "b");
    }

    #[test]
    fn fluent_bit_json_array_with_date_and_kubernetes() {
        let body = br#"[{"date":1700000000.5,"log":"2024-01-01T00:00:00Z ERROR boom password=hunter2","kubernetes":{"pod_name":"checkout-7d9","container_name":"checkout"}}, 3]"#;
        let b = decode_json_logs(body, &cx()).unwrap();
        assert_eq!(b.signals.len(), 1);
        assert_eq!(b.rejected, 1);
        let s = &b.signals[0];
        assert_eq!(s.ts, Ts(1_700_000_000_500));
        assert_eq!(s.service.as_deref(), Some("checkout"));
        assert_eq!(s.instance.as_deref(), Some("checkout-7d9"));
        let l = log(s);
        assert_eq!(l.level, Level::Error);
        assert!(!l.message.contains("hunter2"), "{}", l.message);
        assert!(!l.raw.contains("hunter2"));
    }

    #[test]
    fn pretty_single_object_and_journald_names() {
        let body = b"{\n \"MESSAGE\": \"disk full\",\n \"PRIORITY\": \"3\",\n \"SYSLOG_IDENTIFIER\": \"db\",\n \"__REALTIME_TIMESTAMP\": \"1700000000000000\"\n}";
        let b = decode_json_logs(body, &cx()).unwrap();
        assert_eq!(b.signals.len(), 1);
        let s = &b.signals[0];
        assert_eq!(log(s).level, Level::Error);
        assert_eq!(s.service.as_deref(), Some("db"));
        assert_eq!(s.ts, Ts(1_700_000_000_000));
    }

    #[test]
    fn malformed_array_is_refused_and_junk_never_panics() {
        assert!(decode_json_logs(b"[{\"a\":1},", &cx()).is_err());
        assert!(decode_json_logs(b"\xff\xfe", &cx()).is_err());
        let b = decode_json_logs(b"\"just a string\"", &cx()).unwrap();
        assert_eq!((b.signals.len(), b.rejected), (0, 1));
        let deep = "[".repeat(10_000);
        let _ = decode_json_logs(deep.as_bytes(), &cx());
    }
}
