//! Log records: JSON lines and plain text (`<timestamp> <LEVEL> message`), and the joining
//! of multi-line records (stack traces) into one. Everything returned is redacted.

use crate::redact::{is_sensitive_key, redact};
use crate::stats::{Counter, SourceStats};
use chrono::{DateTime, NaiveDateTime};
use medic_core::{Level, LogLine, Ts};
use std::collections::BTreeMap;

/// `LogLine.raw` is cut to this many bytes: the message holds the content, raw is for
/// people looking at an excerpt.
pub const MAX_RAW_BYTES: usize = 16 * 1024;
/// Continuation lines kept per record, and their total size: a runaway trace cannot grow
/// one record without bound.
pub const MAX_CONTINUATION_LINES: usize = 200;
pub const MAX_CONTINUATION_BYTES: usize = 1 << 20;
/// How many tokens after the timestamp may hold the level (`[main] ERROR`, `app: WARN`).
const LEVEL_SEARCH_TOKENS: usize = 4;
const PRIVATE_KEY_PLACEHOLDER: &str = "[REDACTED:private_key]";

/// Parses one line (JSON or plain text) into a redacted [`LogLine`].
pub fn parse_log_line(raw: &str) -> LogLine {
    parse_log_record(raw).0
}

/// Like [`parse_log_line`], also returning the record's own timestamp when it has a
/// readable one.
pub fn parse_log_record(raw: &str) -> (LogLine, Option<Ts>) {
    let trimmed = raw.trim();
    if trimmed.starts_with('{')
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(trimmed)
    {
        return parse_json(raw, map);
    }
    parse_plain(raw)
}

fn bounded_raw(raw: &str) -> String {
    let mut end = raw.len().min(MAX_RAW_BYTES);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    redact(&raw[..end]).into_owned()
}

fn json_to_string(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn level_from_json(v: &serde_json::Value) -> Option<Level> {
    match v {
        serde_json::Value::String(s) => Level::parse(s),
        // bunyan/pino numeric levels
        serde_json::Value::Number(n) => {
            let n = n.as_f64()?;
            Some(match n as i64 {
                i64::MIN..=10 => Level::Trace,
                11..=20 => Level::Debug,
                21..=30 => Level::Info,
                31..=40 => Level::Warn,
                41..=50 => Level::Error,
                _ => Level::Fatal,
            })
        }
        _ => None,
    }
}

fn ts_from_json(v: &serde_json::Value) -> Option<Ts> {
    match v {
        serde_json::Value::String(s) => parse_timestamp(s),
        serde_json::Value::Number(n) => {
            let x = n.as_f64()?;
            if !x.is_finite() || x <= 0.0 {
                return None;
            }
            // Epoch milliseconds are > 1e12 for any date after 2001; smaller is seconds.
            Some(if x > 1e12 {
                Ts(x as i64)
            } else {
                Ts::from_secs_f64(x)
            })
        }
        _ => None,
    }
}

fn parse_json(raw: &str, map: serde_json::Map<String, serde_json::Value>) -> (LogLine, Option<Ts>) {
    let mut level = None;
    let mut message = None;
    let mut ts = None;
    let mut fields = BTreeMap::new();
    for (k, v) in &map {
        match k.to_ascii_lowercase().as_str() {
            "level" | "severity" | "lvl" if level.is_none() => {
                if let Some(l) = level_from_json(v) {
                    level = Some(l);
                    continue;
                }
            }
            "msg" | "message" if message.is_none() => {
                message = Some(json_to_string(v));
                continue;
            }
            "ts" | "time" | "timestamp" | "@timestamp" if ts.is_none() => {
                if let Some(t) = ts_from_json(v) {
                    ts = Some(t);
                    continue;
                }
            }
            _ => {}
        }
        let value = if is_sensitive_key(k) {
            "[REDACTED:secret]".to_string()
        } else {
            redact(&json_to_string(v)).into_owned()
        };
        fields.insert(redact(k).into_owned(), value);
    }
    let line = LogLine {
        level: level.unwrap_or_default(),
        message: redact(message.as_deref().unwrap_or("")).into_owned(),
        continuation: Vec::new(),
        fields,
        raw: bounded_raw(raw),
    };
    (line, ts)
}

/// RFC 3339 / ISO 8601 (with or without zone; without is read as UTC) and
/// `YYYY-MM-DD HH:MM:SS,mmm`.
pub fn parse_timestamp(s: &str) -> Option<Ts> {
    let s = s.trim();
    if s.len() < 19 || !s.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let normalized = s.replace(',', ".");
    if let Ok(t) = DateTime::parse_from_rfc3339(&normalized) {
        return Some(Ts(t.timestamp_millis()));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(&normalized, fmt) {
            return Some(Ts(t.timestamp_millis()));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&normalized, fmt) {
            return Some(Ts(t.and_utc().timestamp_millis()));
        }
    }
    None
}

/// Tokens of `s` with their byte ranges.
fn tokens(s: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let b = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return None;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        Some((start, i))
    })
}

/// A timestamp at the start of the line (one token, two tokens `date time`, or either in
/// brackets): its value and the byte offset where the rest begins.
fn leading_timestamp(line: &str) -> Option<(Ts, usize)> {
    let toks: Vec<(usize, usize)> = tokens(line).take(3).collect();
    let strip = |t: &str| t.trim_matches(|c| c == '[' || c == ']').to_string();
    let first = *toks.first()?;
    if let Some(&second) = toks.get(1) {
        let two = strip(&line[first.0..second.1]);
        if let Some(ts) = parse_timestamp(&two) {
            // `2024-01-02 03:04:05,123 +0000`: a separate zone token is part of it.
            if let Some(&third) = toks.get(2) {
                let with_zone = strip(&line[first.0..third.1]);
                if let Some(tz) = parse_timestamp(&with_zone) {
                    return Some((tz, third.1));
                }
            }
            return Some((ts, second.1));
        }
    }
    parse_timestamp(&strip(&line[first.0..first.1])).map(|ts| (ts, first.1))
}

fn level_token(token: &str) -> Option<Level> {
    let bracketed = token.starts_with(['[', '(', '<']);
    let t = token.trim_matches(|c: char| "[]()<>:|-,".contains(c));
    let t = t
        .strip_prefix("level=")
        .or_else(|| t.strip_prefix("lvl="))
        .unwrap_or(t);
    // Single letters (`I`, `E`) are levels only when bracketed: as bare words they are
    // usually English.
    if t.len() < 3 && !bracketed {
        return None;
    }
    Level::parse(t)
}

fn parse_plain(raw: &str) -> (LogLine, Option<Ts>) {
    let line = raw.trim_end();
    let (ts, rest_at) = match leading_timestamp(line) {
        Some((ts, at)) => (Some(ts), at),
        None => (None, 0),
    };
    let rest = &line[rest_at..];
    let mut level = None;
    let mut message = rest.trim().to_string();
    for (start, end) in tokens(rest).take(LEVEL_SEARCH_TOKENS) {
        if let Some(l) = level_token(&rest[start..end]) {
            level = Some(l);
            let before = rest[..start].trim();
            let after = rest[end..].trim_start_matches([' ', '\t', ':', '-', '|']);
            message = if before.is_empty() {
                after.trim_end().to_string()
            } else {
                format!("{before} {}", after.trim_end())
            };
            break;
        }
    }
    let line = LogLine {
        level: level.unwrap_or_default(),
        message: redact(&message).into_owned(),
        continuation: Vec::new(),
        fields: BTreeMap::new(),
        raw: bounded_raw(raw),
    };
    (line, ts)
}

/// Whether a line continues the previous record (stack frames, tracebacks, the exception
/// line that heads or ends them).
pub fn is_continuation(line: &str) -> bool {
    line.starts_with([' ', '\t'])
        || line.starts_with("at ")
        || line.starts_with("Caused by:")
        || line.starts_with("Traceback")
        || line.starts_with("...")
        || line.starts_with("File \"")
        || is_exception_header(line)
}

/// `java.lang.IllegalStateException: boom`, `payment.gateway.GatewayError: x`,
/// `UpstreamUnavailable: x`: a type name followed by `:`. Java prints it before its frames
/// and Python after its traceback, neither indented. Required: a qualified name (`.`/`::`)
/// with a capitalised last part, or a CamelCase name with two or more capitals, so that
/// ordinary words with a colon (`Starting: x`) still start records.
fn is_exception_header(line: &str) -> bool {
    let Some(first) = line.split_whitespace().next() else {
        return false;
    };
    let Some(name) = first.strip_suffix(':') else {
        return false;
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '$' | ':'))
    {
        return false;
    }
    let last = name.rsplit(['.', ':']).next().unwrap_or("");
    let capitalised = last.starts_with(|c: char| c.is_ascii_uppercase())
        && last.chars().any(|c| c.is_ascii_lowercase());
    let qualified = name.contains('.') || name.contains("::");
    let capitals = last.chars().filter(|c| c.is_ascii_uppercase()).count();
    capitalised && (qualified || capitals >= 2)
}

fn opens_private_key(line: &str) -> bool {
    line.contains("-----BEGIN") && line.contains("PRIVATE KEY") && !line.contains("-----END")
}

/// Joins continuation lines of one file onto the record they belong to. The caller flushes
/// it when no line came for a while (the record is then complete).
#[derive(Debug, Default)]
pub struct RecordJoiner {
    pending: Option<Pending>,
    /// Inside a PEM private key block: its body lines are secrets whatever they look like.
    in_private_key: bool,
}

#[derive(Debug)]
struct Pending {
    first: String,
    continuation: Vec<String>,
    bytes: usize,
}

impl RecordJoiner {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Adds a line; returns the previous record when this line starts a new one.
    pub fn push(&mut self, line: String, stats: &SourceStats) -> Option<(LogLine, Option<Ts>)> {
        if self.in_private_key {
            if line.contains("-----END") {
                self.in_private_key = false;
            }
            match &mut self.pending {
                Some(p) => {
                    if p.continuation.last().map(String::as_str) != Some(PRIVATE_KEY_PLACEHOLDER)
                        && p.first != PRIVATE_KEY_PLACEHOLDER
                    {
                        p.continuation.push(PRIVATE_KEY_PLACEHOLDER.into());
                    }
                }
                None => {
                    self.pending = Some(Pending {
                        first: PRIVATE_KEY_PLACEHOLDER.into(),
                        continuation: Vec::new(),
                        bytes: 0,
                    })
                }
            }
            return None;
        }
        if line.trim().is_empty() {
            return None;
        }
        let opens_key = opens_private_key(&line);
        let finished = match &mut self.pending {
            Some(p) if is_continuation(&line) => {
                if p.continuation.len() >= MAX_CONTINUATION_LINES
                    || p.bytes + line.len() > MAX_CONTINUATION_BYTES
                {
                    stats.incr(Counter::ContinuationDropped);
                } else {
                    p.bytes += line.len();
                    p.continuation.push(line);
                }
                None
            }
            _ => self.pending.replace(Pending {
                first: line,
                continuation: Vec::new(),
                bytes: 0,
            }),
        };
        self.in_private_key = opens_key;
        finished.map(finish)
    }

    /// The pending record, complete as it is.
    pub fn flush(&mut self) -> Option<(LogLine, Option<Ts>)> {
        self.pending.take().map(finish)
    }
}

fn finish(p: Pending) -> (LogLine, Option<Ts>) {
    let (mut line, ts) = parse_log_record(&p.first);
    line.continuation = p
        .continuation
        .iter()
        .map(|c| redact(c).into_owned())
        .collect();
    (line, ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines() {
        let (l, ts) = parse_log_record(
            r#"{"ts":"2024-05-01T10:00:00.250Z","level":"ERROR","msg":"payment failed","order":42,"user":"a@b.com","password":"x","nested":{"a":1}}"#,
        );
        assert_eq!(l.level, Level::Error);
        assert_eq!(l.message, "payment failed");
        assert_eq!(ts, Some(Ts(1_714_557_600_250)));
        assert_eq!(l.fields["order"], "42");
        assert_eq!(l.fields["user"], "[REDACTED:email]");
        assert_eq!(l.fields["password"], "[REDACTED:secret]");
        assert_eq!(l.fields["nested"], r#"{"a":1}"#);
        assert!(!l.fields.contains_key("level") && !l.fields.contains_key("msg"));
        assert!(!l.raw.contains("a@b.com"));
    }

    #[test]
    fn json_variants() {
        let (l, ts) =
            parse_log_record(r#"{"severity":"warning","message":"slow","time":1714557600}"#);
        assert_eq!(l.level, Level::Warn);
        assert_eq!(l.message, "slow");
        assert_eq!(ts, Some(Ts(1_714_557_600_000)));
        let (l, ts) = parse_log_record(r#"{"lvl":50,"msg":"x","timestamp":1714557600123}"#);
        assert_eq!(l.level, Level::Error);
        assert_eq!(ts, Some(Ts(1_714_557_600_123)));
        // Unreadable level/ts are kept as fields, not lost.
        let (l, ts) = parse_log_record(r#"{"level":"loud","ts":"yesterday","msg":"m"}"#);
        assert_eq!(l.level, Level::Info);
        assert_eq!(ts, None);
        assert_eq!(l.fields["level"], "loud");
        assert_eq!(l.fields["ts"], "yesterday");
    }

    #[test]
    fn malformed_json_is_plain_text() {
        let (l, ts) = parse_log_record(r#"{"level":"error","msg":"#);
        assert_eq!(ts, None);
        assert_eq!(l.message, r#"{"level":"error","msg":"#);
        assert_eq!(l.level, Level::Info);
    }

    #[test]
    fn plain_text_formats() {
        let (l, ts) = parse_log_record("2024-05-01T10:00:00Z ERROR payment failed: timeout");
        assert_eq!(
            (l.level, l.message.as_str()),
            (Level::Error, "payment failed: timeout")
        );
        assert_eq!(ts, Some(Ts(1_714_557_600_000)));

        let (l, ts) = parse_log_record("2024-05-01 10:00:00,125 [main] WARN com.app.Db - pool low");
        assert_eq!(l.level, Level::Warn);
        assert_eq!(l.message, "[main] com.app.Db - pool low");
        assert_eq!(ts, Some(Ts(1_714_557_600_125)));

        let (l, ts) = parse_log_record("[2024-05-01 10:00:00.5] [error] disk full");
        assert_eq!((l.level, l.message.as_str()), (Level::Error, "disk full"));
        assert_eq!(ts, Some(Ts(1_714_557_600_500)));

        let (l, ts) = parse_log_record("2024-05-01T12:00:00+02:00 app: CRITICAL: down");
        assert_eq!((l.level, l.message.as_str()), (Level::Fatal, "app: down"));
        assert_eq!(ts, Some(Ts(1_714_557_600_000)));

        let (l, ts) = parse_log_record("INFO started on port 80");
        assert_eq!(
            (l.level, l.message.as_str()),
            (Level::Info, "started on port 80")
        );
        assert_eq!(ts, None);

        let (l, _) = parse_log_record("[E] boom");
        assert_eq!(l.level, Level::Error);
    }

    #[test]
    fn plain_text_without_level_or_timestamp() {
        let (l, ts) = parse_log_record("I am a sentence with error later on in it");
        assert_eq!(l.level, Level::Info);
        assert_eq!(l.message, "I am a sentence with error later on in it");
        assert_eq!(ts, None);
        let (l, ts) = parse_log_record("");
        assert_eq!((l.message.as_str(), ts), ("", None));
        let (l, _) = parse_log_record("2024-99-99 25:00:00 ERROR bad date");
        assert_eq!(l.level, Level::Error);
    }

    #[test]
    fn raw_is_bounded_and_redacted() {
        let long = format!("ERROR token=abc {}", "é".repeat(MAX_RAW_BYTES));
        let l = parse_log_line(&long);
        assert!(l.raw.len() <= MAX_RAW_BYTES + 32);
        assert!(!l.raw.contains("abc") && !l.message.contains("abc"));
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp("2024-05-01T10:00:00.250Z"),
            Some(Ts(1_714_557_600_250))
        );
        assert_eq!(
            parse_timestamp("2024-05-01 10:00:00,250"),
            Some(Ts(1_714_557_600_250))
        );
        assert_eq!(
            parse_timestamp("2024-05-01T10:00:00+0000"),
            Some(Ts(1_714_557_600_000))
        );
        assert_eq!(parse_timestamp("2024-05-01"), None);
        assert_eq!(parse_timestamp("not a timestamp at all, no"), None);
    }

    fn push_all(j: &mut RecordJoiner, lines: &[&str]) -> Vec<(LogLine, Option<Ts>)> {
        let stats = SourceStats::new();
        let mut out: Vec<_> = lines
            .iter()
            .filter_map(|l| j.push(l.to_string(), &stats))
            .collect();
        out.extend(j.flush());
        out
    }

    #[test]
    fn joins_java_and_python_traces() {
        let mut j = RecordJoiner::new();
        let recs = push_all(
            &mut j,
            &[
                "2024-05-01 10:00:00,000 ERROR request failed",
                "java.lang.IllegalStateException: boom",
                "\tat com.app.Pay.charge(Pay.java:42)",
                "    at com.app.Api.post(Api.java:7)",
                "Caused by: java.io.IOException: password=hunter2",
                "\t... 12 more",
                "2024-05-01 10:00:01,000 INFO next",
                "Traceback (most recent call last):",
                "  File \"app.py\", line 3, in <module>",
                "ValueError: x",
            ],
        );
        let summary: Vec<(&str, usize)> = recs
            .iter()
            .map(|(l, _)| (l.message.as_str(), l.continuation.len()))
            .collect();
        assert_eq!(summary, vec![("request failed", 5), ("next", 3)]);
        assert_eq!(recs[0].0.level, Level::Error);
        assert_eq!(recs[1].0.continuation[2], "ValueError: x");
        assert_eq!(
            recs[0].0.continuation[3],
            "Caused by: java.io.IOException: password=[REDACTED:secret]"
        );
        assert!(!j.has_pending());
    }

    #[test]
    fn demo_estate_plain_record_with_java_trace() {
        let mut j = RecordJoiner::new();
        let recs = push_all(
            &mut j,
            &[
                "2026-11-21T05:30:00.123Z ERROR [catalog-0] GET /product 503 12ms trace=abc error=\"boom\"",
                "com.shop.catalog.UpstreamUnavailable: connection refused",
                "    at com.shop.catalog.ProductRepository.find(ProductRepository.java:88)",
                "Caused by: java.io.IOException: connection refused",
                "    ... 4 more",
                "2026-11-21T05:30:01.000Z INFO [catalog-0] GET /product 200 3ms trace=abd",
            ],
        );
        assert_eq!(recs.len(), 2);
        let (first, ts) = &recs[0];
        assert_eq!(first.level, Level::Error);
        assert_eq!(
            first.message,
            "[catalog-0] GET /product 503 12ms trace=abc error=\"boom\""
        );
        assert_eq!(first.continuation.len(), 4);
        assert_eq!(*ts, Ts::parse_rfc3339("2026-11-21T05:30:00.123Z"));
        assert_eq!(recs[1].0.level, Level::Info);
    }

    #[test]
    fn exception_headers() {
        for yes in [
            "java.lang.IllegalStateException: boom",
            "payment.gateway.GatewayError: declined",
            "UpstreamUnavailable: connection refused",
            "std::io::Error: x",
        ] {
            assert!(is_continuation(yes), "{yes}");
        }
        for no in [
            "Starting: server",
            "ERROR: boom",
            "INFO started",
            "2024-05-01T10:00:00Z ERROR x",
            "http://x: y",
            "a.b.c: lower",
            "",
        ] {
            assert!(!is_continuation(no), "{no}");
        }
    }

    #[test]
    fn continuation_without_record_starts_one_and_is_bounded() {
        let mut j = RecordJoiner::new();
        let stats = SourceStats::new();
        assert!(j.push("  orphan frame".into(), &stats).is_none());
        for _ in 0..MAX_CONTINUATION_LINES + 5 {
            assert!(j.push("\tat x".into(), &stats).is_none());
        }
        let (l, _) = j.flush().unwrap();
        assert_eq!(l.continuation.len(), MAX_CONTINUATION_LINES);
        assert_eq!(stats.get(Counter::ContinuationDropped), 5);
    }

    #[test]
    fn private_key_body_never_leaves() {
        let mut j = RecordJoiner::new();
        let recs = push_all(
            &mut j,
            &[
                "ERROR loaded key -----BEGIN RSA PRIVATE KEY-----",
                "MIIEowIBAAKCAQEA7",
                "QWERTYUIOPASDFGH",
                "-----END RSA PRIVATE KEY-----",
                "INFO after",
            ],
        );
        assert_eq!(recs.len(), 2);
        let text = format!("{:?}", recs);
        assert!(!text.contains("MIIEow") && !text.contains("QWERTY"));
        assert_eq!(recs[0].0.continuation, vec![PRIVATE_KEY_PLACEHOLDER]);
        assert_eq!(recs[1].0.message, "after");
    }
}
