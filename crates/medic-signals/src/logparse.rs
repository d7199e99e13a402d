//! Log records: JSON lines and plain text (`<timestamp> <LEVEL> message`), and the joining
//! of multi-line records (stack traces) into one. Everything returned is redacted.

use crate::formats::LogParser;
use crate::redact::Redactor;
use crate::stats::{Counter, SourceStats};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime};
use medic_core::{Level, LogLine, Ts};
use std::collections::BTreeMap;
use std::sync::Arc;

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
    parse_auto(raw, Redactor::builtin())
}

/// The `auto` format: a JSON object with the usual keys, else plain text.
pub(crate) fn parse_auto(raw: &str, r: &Redactor) -> (LogLine, Option<Ts>) {
    let trimmed = raw.trim();
    if trimmed.starts_with('{')
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(trimmed)
    {
        return parse_json(raw, map, &JsonKeys::default(), r);
    }
    parse_plain(raw, r)
}

/// `raw` cut to [`MAX_RAW_BYTES`] and redacted.
pub(crate) fn bounded_raw(raw: &str, r: &Redactor) -> String {
    let mut end = raw.len().min(MAX_RAW_BYTES);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    r.redact(&raw[..end]).into_owned()
}

/// Which JSON keys hold the message, level and timestamp: configured names, else the
/// usual ones.
#[derive(Clone, Debug, Default)]
pub(crate) struct JsonKeys {
    pub message: Option<String>,
    pub level: Option<String>,
    pub timestamp: Option<String>,
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Role {
    Level,
    Message,
    Ts,
    Other,
}

impl JsonKeys {
    fn role(&self, key: &str) -> Role {
        let pick = |configured: &Option<String>, defaults: &[&str]| match configured {
            Some(k) => k == key,
            None => defaults.iter().any(|d| key.eq_ignore_ascii_case(d)),
        };
        if pick(&self.level, &["level", "severity", "lvl"]) {
            Role::Level
        } else if pick(&self.message, &["msg", "message"]) {
            Role::Message
        } else if pick(&self.timestamp, &["ts", "time", "timestamp", "@timestamp"]) {
            Role::Ts
        } else {
            Role::Other
        }
    }
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

pub(crate) fn parse_json(
    raw: &str,
    map: serde_json::Map<String, serde_json::Value>,
    keys: &JsonKeys,
    r: &Redactor,
) -> (LogLine, Option<Ts>) {
    let mut level = None;
    let mut message = None;
    let mut ts = None;
    let mut fields = BTreeMap::new();
    for (k, v) in &map {
        match keys.role(k) {
            Role::Level if level.is_none() => {
                if let Some(l) = level_from_json(v) {
                    level = Some(l);
                    continue;
                }
            }
            Role::Message if message.is_none() => {
                message = Some(json_to_string(v));
                continue;
            }
            Role::Ts if ts.is_none() => {
                if let Some(t) = ts_from_json(v) {
                    ts = Some(t);
                    continue;
                }
            }
            _ => {}
        }
        insert_field(&mut fields, k, &json_to_string(v), r);
    }
    let line = LogLine {
        level: level.unwrap_or_default(),
        message: r.redact(message.as_deref().unwrap_or("")).into_owned(),
        continuation: Vec::new(),
        fields,
        raw: bounded_raw(raw, r),
    };
    (line, ts)
}

/// A field, its value redacted whole when the key names a secret.
pub(crate) fn insert_field(fields: &mut BTreeMap<String, String>, k: &str, v: &str, r: &Redactor) {
    let value = if r.redacts_key(k) {
        "[REDACTED:secret]".to_string()
    } else {
        r.redact(v).into_owned()
    };
    fields.insert(r.redact(k).into_owned(), value);
}

/// RFC 3339 / ISO 8601 (with or without zone; without is read as UTC),
/// `YYYY-MM-DD HH:MM:SS,mmm`, syslog `Jun 14 15:16:01` (this year), Apache/ctime
/// `Sun Dec 04 04:47:44 2005`, HDFS `081109 203615`, `2005.06.03 15:42:50`, and epoch
/// seconds or milliseconds (10 or 13 digits). Zone-less times are read as UTC.
pub fn parse_timestamp(s: &str) -> Option<Ts> {
    let s = s.trim().trim_matches(|c| c == '[' || c == ']');
    let b = s.as_bytes();
    let first = *b.first()?;
    if first.is_ascii_alphabetic() {
        return parse_textual_timestamp(s);
    }
    if !first.is_ascii_digit() {
        return None;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return parse_epoch(s);
    }
    if b.len() == 13 && b[6] == b' ' {
        // HDFS `yyMMdd HHmmss`
        return NaiveDateTime::parse_from_str(s, "%y%m%d %H%M%S")
            .ok()
            .map(|t| Ts(t.and_utc().timestamp_millis()));
    }
    if s.len() < 19 || b.get(4) != Some(&b'-') && b.get(4) != Some(&b'.') && b.get(4) != Some(&b'/')
    {
        return None;
    }
    if let Some(ts) = fast_iso(b) {
        return Some(ts);
    }
    let owned;
    let s = if b[4] != b'-' || s.contains(',') {
        // `2005.06.03 15:42:50`, `2005/06/03`, `…,123`: to the one shape chrono is asked for.
        let mut t = s.replace(',', ".");
        if b[4] != b'-' {
            // b[4] and b[7] are ASCII separators (checked), so these are char boundaries.
            if b.get(7) != Some(&b[4]) {
                return None;
            }
            t.replace_range(4..5, "-");
            t.replace_range(7..8, "-");
        }
        owned = t;
        owned.as_str()
    } else {
        s
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(Ts(t.timestamp_millis()));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%d-%H.%M.%S%.f",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(Ts(t.timestamp_millis()));
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d-%H.%M.%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Ts(t.and_utc().timestamp_millis()));
        }
    }
    None
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.,fraction][Z|±HH:MM|±HHMM]` without chrono's general format
/// machinery: the shape nearly every log line has, on the hot path of every line. `None`
/// for anything else (the general parsers then decide).
fn fast_iso(b: &[u8]) -> Option<Ts> {
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        let mut v = 0i64;
        for c in d {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if i < b.len() && (b[i] == b'.' || b[i] == b',') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            millis *= 10;
        }
    }
    let offset_secs = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &b[i + 1..];
            let (oh, om) = match rest.len() {
                5 if rest[2] == b':' => (num(i + 1..i + 3)?, num(i + 4..i + 6)?),
                4 => (num(i + 1..i + 3)?, num(i + 3..i + 5)?),
                2 => (num(i + 1..i + 3)?, 0),
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Some(Ts(secs * 1000 + millis))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Epoch seconds (10 digits) or milliseconds (13 digits) between 2001 and 2100: shorter
/// or longer numbers are counters, not times.
fn parse_epoch(s: &str) -> Option<Ts> {
    let n: i64 = s.parse().ok()?;
    match s.len() {
        10 if (978_307_200..4_102_444_800).contains(&n) => Some(Ts(n * 1000)),
        13 if (978_307_200_000..4_102_444_800_000).contains(&n) => Some(Ts(n)),
        _ => None,
    }
}

/// `Jun 14 15:16:01` (syslog: no year, this year is assumed; a date more than a day
/// ahead is last year's) and `Sun Dec 04 04:47:44 2005` (ctime, as Apache writes it).
fn parse_textual_timestamp(s: &str) -> Option<Ts> {
    let parts: Vec<&str> = s.split_ascii_whitespace().collect();
    let parts = match parts.first() {
        Some(w) if WEEKDAYS.iter().any(|d| w.eq_ignore_ascii_case(d)) => &parts[1..],
        _ => &parts[..],
    };
    let month = MONTHS
        .iter()
        .position(|m| parts.first().is_some_and(|p| p.eq_ignore_ascii_case(m)))?
        as u32
        + 1;
    let day: u32 = parts.get(1)?.parse().ok()?;
    let time = chrono::NaiveTime::parse_from_str(parts.get(2)?, "%H:%M:%S%.f").ok()?;
    let (year, explicit) = match parts.get(3).and_then(|y| y.parse::<i32>().ok()) {
        Some(y) => (y, true),
        None => (chrono::Utc::now().year(), false),
    };
    let mut t = NaiveDate::from_ymd_opt(year, month, day)?.and_time(time);
    if !explicit && t.and_utc().timestamp_millis() > Ts::now().0 + 86_400_000 {
        t = NaiveDate::from_ymd_opt(year - 1, month, day)?.and_time(time);
    }
    Some(Ts(t.and_utc().timestamp_millis()))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

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

/// A timestamp at the start of the line (one token, two tokens `date time`, syslog's three
/// `Jun 14 15:16:01`, or a bracketed group `[Sun Dec 04 04:47:44 2005]`): its value and
/// the byte offset where the rest begins.
fn leading_timestamp(line: &str) -> Option<(Ts, usize)> {
    let first_byte = *line.as_bytes().first()?;
    // Cheap exit for the many lines that cannot start with a time.
    if !(first_byte.is_ascii_digit() || first_byte == b'[' || first_byte.is_ascii_uppercase()) {
        return None;
    }
    if first_byte == b'['
        && let Some(close) = line.find(']')
        && let Some(ts) = parse_timestamp(&line[1..close])
    {
        return Some((ts, close + 1));
    }
    let mut toks = [(0usize, 0usize); 5];
    let mut n = 0;
    for t in tokens(line).take(5) {
        toks[n] = t;
        n += 1;
    }
    if n == 0 {
        return None;
    }
    fn strip(t: &str) -> &str {
        t.trim_matches(|c| c == '[' || c == ']')
    }
    if first_byte.is_ascii_uppercase() {
        // `Jun 14 15:16:01 host …`, `Sun Dec 04 04:47:44 2005 …`
        for k in [5, 4, 3] {
            if n >= k
                && let Some(ts) = parse_textual_timestamp(strip(&line[toks[0].0..toks[k - 1].1]))
            {
                // ctime with year: take it only when the last token was a year.
                if k == 3 || line[toks[k - 1].0..toks[k - 1].1].len() == 4 {
                    return Some((ts, toks[k - 1].1));
                }
            }
        }
        return None;
    }
    // A first token that is a whole date-time (`2024-05-01T10:00:00Z`) needs no more.
    if toks[0].1 - toks[0].0 >= 19
        && let Some(ts) = parse_timestamp(strip(&line[toks[0].0..toks[0].1]))
    {
        return Some((ts, toks[0].1));
    }
    if n >= 2 {
        let two = strip(&line[toks[0].0..toks[1].1]);
        if let Some(ts) = parse_timestamp(two) {
            // `2024-01-02 03:04:05,123 +0000`: a separate zone token is part of it.
            if n >= 3
                && let Some(tz) = parse_timestamp(strip(&line[toks[0].0..toks[2].1]))
            {
                return Some((tz, toks[2].1));
            }
            return Some((ts, toks[1].1));
        }
    }
    parse_timestamp(strip(&line[toks[0].0..toks[0].1])).map(|ts| (ts, toks[0].1))
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

pub(crate) fn parse_plain(raw: &str, r: &Redactor) -> (LogLine, Option<Ts>) {
    let line = raw.trim_end();
    let (ts, rest_at) = match leading_timestamp(line) {
        Some((ts, at)) => (Some(ts), at),
        None => (None, 0),
    };
    let (level, message) = level_and_message(&line[rest_at..]);
    let raw_out = bounded_raw(raw, r);
    // The message is the line less its timestamp and level words, cut at whitespace: when
    // the whole line (uncut) had nothing to redact, neither has the message.
    let message = if raw.len() <= MAX_RAW_BYTES && raw_out.len() == raw.len() && raw_out == raw {
        message
    } else {
        r.redact(&message).into_owned()
    };
    let line = LogLine {
        level: level.unwrap_or_default(),
        message,
        continuation: Vec::new(),
        fields: BTreeMap::new(),
        raw: raw_out,
    };
    (line, ts)
}

/// A level among the first few tokens, and the text without it.
pub(crate) fn level_and_message(rest: &str) -> (Option<Level>, String) {
    for (start, end) in tokens(rest).take(LEVEL_SEARCH_TOKENS) {
        if let Some(l) = level_token(&rest[start..end]) {
            let before = rest[..start].trim();
            let after = rest[end..].trim_start_matches([' ', '\t', ':', '-', '|']);
            let message = if before.is_empty() {
                after.trim_end().to_string()
            } else {
                format!("{before} {}", after.trim_end())
            };
            return (Some(l), message);
        }
    }
    (None, rest.trim().to_string())
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
    /// The source's format and redaction; `None`: `auto` with the built-in redaction.
    parser: Option<Arc<LogParser>>,
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

    /// Records parsed with `parser` (format and redaction of the source).
    pub fn with_parser(parser: Arc<LogParser>) -> Self {
        RecordJoiner {
            parser: Some(parser),
            ..Self::default()
        }
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
        finished.map(|p| self.finish(p))
    }

    /// The pending record, complete as it is.
    pub fn flush(&mut self) -> Option<(LogLine, Option<Ts>)> {
        let p = self.pending.take()?;
        Some(self.finish(p))
    }

    fn finish(&self, p: Pending) -> (LogLine, Option<Ts>) {
        let (mut line, ts, r) = match &self.parser {
            Some(parser) => {
                let (l, ts) = parser.parse(&p.first);
                (l, ts, parser.redactor())
            }
            None => {
                let (l, ts) = parse_log_record(&p.first);
                (l, ts, Redactor::builtin())
            }
        };
        line.continuation = p
            .continuation
            .iter()
            .map(|c| r.redact(c).into_owned())
            .collect();
        (line, ts)
    }
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
