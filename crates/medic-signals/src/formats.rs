//! Per-source parsing formats (`format:` of a log source): `auto` (JSON or plain text),
//! `json` with a key mapping, `logfmt`, `regex` with named groups, and Loghub's `<Field>`
//! header syntax. Every result is redacted with the source's [`Redactor`]. A line that
//! does not fit its format is kept as plain text and counted (`format_mismatch`).

use crate::logparse::{
    JsonKeys, bounded_raw, insert_field, level_and_message, parse_auto, parse_json, parse_plain,
    parse_timestamp,
};
use crate::redact::Redactor;
use crate::stats::{Counter, SourceStats};
use medic_config::LogFormat;
use medic_core::{Level, LogLine, Ts};
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Parses the lines of one source: its format, its redaction.
#[derive(Debug)]
pub struct LogParser {
    kind: Kind,
    redactor: Arc<Redactor>,
    stats: Option<Arc<SourceStats>>,
}

#[derive(Debug)]
enum Kind {
    Auto,
    Json(JsonKeys),
    Logfmt,
    Regex(Regex),
    Loghub(LoghubFormat),
}

impl LogParser {
    /// `auto` with the built-in redaction.
    pub fn auto() -> LogParser {
        LogParser {
            kind: Kind::Auto,
            redactor: Arc::new(Redactor::default()),
            stats: None,
        }
    }

    /// Compiles the format once; an invalid regex or Loghub format is an error naming it.
    pub fn new(format: &LogFormat, redactor: Arc<Redactor>) -> Result<LogParser, String> {
        let kind = match format {
            LogFormat::Auto => Kind::Auto,
            LogFormat::Json {
                message,
                level,
                timestamp,
            } => Kind::Json(JsonKeys {
                message: message.clone(),
                level: level.clone(),
                timestamp: timestamp.clone(),
            }),
            LogFormat::Logfmt => Kind::Logfmt,
            LogFormat::Regex { pattern } => Kind::Regex(Regex::new(pattern).map_err(|e| {
                format!(
                    "invalid `pattern`: expected a regex, {}",
                    e.to_string().replace('\n', " ")
                )
            })?),
            LogFormat::Loghub { format } => Kind::Loghub(LoghubFormat::parse(format)?),
        };
        Ok(LogParser {
            kind,
            redactor,
            stats: None,
        })
    }

    /// Counts lines that do not fit the format in `stats`.
    pub fn with_stats(mut self, stats: Arc<SourceStats>) -> LogParser {
        self.stats = Some(stats);
        self
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    fn mismatch(&self, raw: &str) -> (LogLine, Option<Ts>) {
        if let Some(s) = &self.stats {
            s.incr(Counter::FormatMismatch);
        }
        parse_plain(raw, &self.redactor)
    }

    /// One record's first line → a redacted [`LogLine`] and its own timestamp, if any.
    pub fn parse(&self, raw: &str) -> (LogLine, Option<Ts>) {
        let r = &*self.redactor;
        match &self.kind {
            Kind::Auto => parse_auto(raw, r),
            Kind::Json(keys) => {
                let trimmed = raw.trim();
                match serde_json::from_str(trimmed) {
                    Ok(serde_json::Value::Object(map)) => parse_json(raw, map, keys, r),
                    _ => self.mismatch(raw),
                }
            }
            Kind::Logfmt => match parse_logfmt(raw) {
                Some(pairs) => self.record_of_pairs(raw, pairs.into_iter()),
                None => self.mismatch(raw),
            },
            Kind::Regex(re) => match re.captures(raw.trim_end()) {
                Some(caps) => {
                    let pairs = re.capture_names().flatten().filter_map(|name| {
                        caps.name(name)
                            .map(|m| (name.to_string(), m.as_str().to_string()))
                    });
                    self.record_of_pairs(raw, pairs)
                }
                None => self.mismatch(raw),
            },
            Kind::Loghub(f) => match f.regex.captures(raw.trim_end()) {
                Some(caps) => self.record_of_loghub(raw, f, &caps),
                None => self.mismatch(raw),
            },
        }
    }

    /// Named values → a record: `message`/`msg`, `level`/`lvl`/`severity`,
    /// `timestamp`/`ts`/`time` are understood, the rest become fields.
    fn record_of_pairs(
        &self,
        raw: &str,
        pairs: impl Iterator<Item = (String, String)>,
    ) -> (LogLine, Option<Ts>) {
        let r = &*self.redactor;
        let (mut level, mut message, mut ts) = (None, None, None);
        let mut fields = BTreeMap::new();
        for (k, v) in pairs {
            match k.to_ascii_lowercase().as_str() {
                "level" | "lvl" | "severity" if level.is_none() => {
                    if let Some(l) = Level::parse(v.trim()) {
                        level = Some(l);
                        continue;
                    }
                }
                "message" | "msg" if message.is_none() => {
                    message = Some(v);
                    continue;
                }
                "timestamp" | "ts" | "time" if ts.is_none() => {
                    if let Some(t) = parse_timestamp(&v) {
                        ts = Some(t);
                        continue;
                    }
                }
                _ => {}
            }
            insert_field(&mut fields, &k, &v, r);
        }
        let message = match message {
            Some(m) => m,
            None => raw.trim().to_string(),
        };
        let line = LogLine {
            level: level.unwrap_or_default(),
            message: r.redact(&message).into_owned(),
            continuation: Vec::new(),
            fields,
            raw: bounded_raw(raw, r),
        };
        (line, ts)
    }

    fn record_of_loghub(
        &self,
        raw: &str,
        f: &LoghubFormat,
        caps: &regex::Captures<'_>,
    ) -> (LogLine, Option<Ts>) {
        let r = &*self.redactor;
        let mut fields = BTreeMap::new();
        let mut time_parts: Vec<&str> = Vec::new();
        let mut level = None;
        let mut content = None;
        // By name: the format's own parentheses are capture groups too.
        for h in &f.headers {
            let Some(m) = caps.name(h) else {
                continue;
            };
            let v = m.as_str();
            match h.as_str() {
                "Content" => content = Some(v),
                "Level" | "Severity" => match Level::parse(v.trim()) {
                    Some(l) => level = Some(l),
                    None => insert_field(&mut fields, h, v, r),
                },
                "Date" | "Time" | "Timestamp" | "Month" | "Day" | "Year" => {
                    time_parts.push(v);
                    insert_field(&mut fields, h, v, r);
                }
                _ => insert_field(&mut fields, h, v, r),
            }
        }
        let ts = if time_parts.is_empty() {
            None
        } else {
            parse_timestamp(&time_parts.join(" "))
        };
        let content = content.unwrap_or(raw).trim();
        let message = match level {
            Some(_) => content.to_string(),
            None => {
                // No `<Level>` header: take a level word from the content's start.
                let (l, m) = level_and_message(content);
                level = l;
                if l.is_some() { m } else { content.to_string() }
            }
        };
        let line = LogLine {
            level: level.unwrap_or_default(),
            message: r.redact(&message).into_owned(),
            continuation: Vec::new(),
            fields,
            raw: bounded_raw(raw, r),
        };
        (line, ts)
    }
}

/// A Loghub log format (`<Date> <Time> <Level> <Component>: <Content>`) compiled the way
/// the Loghub benchmark does: text between headers is regex as written (formats escape
/// brackets themselves: `\[<Time>\]`), runs of spaces match any whitespace, each header
/// matches lazily, the whole line is anchored.
#[derive(Debug)]
pub struct LoghubFormat {
    pub headers: Vec<String>,
    regex: Regex,
}

impl LoghubFormat {
    pub fn parse(format: &str) -> Result<LoghubFormat, String> {
        let mut headers = Vec::new();
        let mut re = String::from("^");
        let mut rest = format;
        while let Some(open) = rest.find('<') {
            let Some(close_rel) = rest[open..].find('>') else {
                break;
            };
            let name = &rest[open + 1..open + close_rel];
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                // `<` that is not a header (inside the text between headers).
                re.push_str(&spaces_to_ws(&rest[..open + 1]));
                rest = &rest[open + 1..];
                continue;
            }
            re.push_str(&spaces_to_ws(&rest[..open]));
            if headers.iter().any(|h| h == name) {
                return Err(format!(
                    "invalid Loghub format `{format}`: header `<{name}>` appears twice"
                ));
            }
            re.push_str(&format!("(?P<{name}>.*?)"));
            headers.push(name.to_string());
            rest = &rest[open + close_rel + 1..];
        }
        re.push_str(&spaces_to_ws(rest));
        re.push('$');
        if headers.is_empty() {
            return Err(format!(
                "invalid Loghub format `{format}`: expected `<Field>` headers such as `<Date> <Time> <Level> <Component>: <Content>`"
            ));
        }
        let regex = Regex::new(&re).map_err(|e| {
            format!(
                "invalid Loghub format `{format}`: {}",
                e.to_string().replace('\n', " ")
            )
        })?;
        Ok(LoghubFormat { headers, regex })
    }

    /// The fields of one line, by header, or `None` when it does not match.
    pub fn fields<'l>(&self, line: &'l str) -> Option<Vec<(&str, &'l str)>> {
        let caps = self.regex.captures(line)?;
        Some(
            self.headers
                .iter()
                .filter_map(|h| caps.name(h).map(|m| (h.as_str(), m.as_str())))
                .collect(),
        )
    }
}

fn spaces_to_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_space = false;
    for c in s.chars() {
        if c == ' ' {
            if !in_space {
                out.push_str(r"\s+");
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

/// `key=value key2="quoted \"value\"" flag` → pairs (a bare word is a key with an empty
/// value). `None` when the line has no `key=value` at all.
pub fn parse_logfmt(line: &str) -> Option<Vec<(String, String)>> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let mut any_pair = false;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() && b[i] != b'"' {
            i += 1;
        }
        let key = &line[ks..i];
        if i < b.len() && b[i] == b'=' {
            i += 1;
            let value = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = String::new();
                let mut seg = i;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        v.push_str(&line[seg..i]);
                        // `\\` is ASCII, so `i + 1` is a character boundary.
                        let Some(c) = line[i + 1..].chars().next() else {
                            break;
                        };
                        v.push(match c {
                            'n' => '\n',
                            't' => '\t',
                            c => c,
                        });
                        i += 1 + c.len_utf8();
                        seg = i;
                    } else {
                        i += 1;
                    }
                }
                v.push_str(&line[seg.min(b.len())..i.min(b.len())]);
                i += 1; // closing quote (or past the end when unterminated)
                v
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                line[vs..i].to_string()
            };
            if key.is_empty() {
                continue;
            }
            any_pair = true;
            out.push((key.to_string(), value));
        } else {
            if b.get(i) == Some(&b'"') {
                // A stray quote: skip it so the loop advances.
                i += 1;
            }
            if !key.is_empty() {
                out.push((key.to_string(), String::new()));
            }
        }
    }
    any_pair.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(f: LogFormat) -> LogParser {
        LogParser::new(&f, Arc::new(Redactor::default())).unwrap()
    }

    #[test]
    fn json_with_field_mapping() {
        let p = parser(LogFormat::Json {
            message: Some("event".into()),
            level: Some("sev".into()),
            timestamp: Some("when".into()),
        });
        let (l, ts) = p.parse(
            r#"{"when":"2024-05-01T10:00:00Z","sev":"error","event":"db down","msg":"other","token":"t0p"}"#,
        );
        assert_eq!(l.level, Level::Error);
        assert_eq!(l.message, "db down");
        assert_eq!(ts, Some(Ts(1_714_557_600_000)));
        assert_eq!(l.fields["msg"], "other");
        assert_eq!(l.fields["token"], "[REDACTED:secret]");
        // Not JSON: kept as text, counted.
        let stats = Arc::new(SourceStats::new());
        let p = parser(LogFormat::Json {
            message: None,
            level: None,
            timestamp: None,
        })
        .with_stats(stats.clone());
        let (l, _) = p.parse("ERROR plain text");
        assert_eq!((l.level, l.message.as_str()), (Level::Error, "plain text"));
        assert_eq!(stats.get(Counter::FormatMismatch), 1);
    }

    #[test]
    fn logfmt() {
        let p = parser(LogFormat::Logfmt);
        let (l, ts) = p.parse(
            r#"ts=2024-05-01T10:00:00Z level=warn msg="pool \"low\" é" db=main password=hunter2 retry"#,
        );
        assert_eq!(l.level, Level::Warn);
        assert_eq!(l.message, "pool \"low\" é");
        assert_eq!(ts, Some(Ts(1_714_557_600_000)));
        assert_eq!(l.fields["db"], "main");
        assert_eq!(l.fields["password"], "[REDACTED:secret]");
        assert_eq!(l.fields["retry"], "");
        assert!(!l.raw.contains("hunter2"));
        assert_eq!(parse_logfmt("no pairs here"), None);
        // Hostile: unterminated quotes, escapes at the end, multi-byte escapes.
        for s in [
            "a=\"unterminated",
            "a=\"x\\",
            "=x",
            "a=\"\\é\"",
            "\"\"=",
            "a==b",
        ] {
            let _ = parse_logfmt(s);
            let _ = p.parse(s);
        }
        assert_eq!(
            parse_logfmt("a=\"\\é\" b=1").unwrap(),
            vec![("a".into(), "é".into()), ("b".into(), "1".into())]
        );
    }

    #[test]
    fn regex_named_groups() {
        let p = parser(LogFormat::Regex {
            pattern:
                r"^(?P<timestamp>\S+ \S+) \[(?P<thread>[^\]]+)\] (?P<level>\w+) (?P<message>.*)$"
                    .into(),
        });
        let (l, ts) = p.parse("2016-09-28 04:30:30,123 [main] ERROR failed for a@b.com");
        assert_eq!(l.level, Level::Error);
        assert_eq!(l.message, "failed for [REDACTED:email]");
        assert_eq!(l.fields["thread"], "main");
        assert_eq!(ts, Some(Ts(1_475_037_030_123)));
        assert!(
            LogParser::new(
                &LogFormat::Regex {
                    pattern: "(?P<level".into()
                },
                Arc::new(Redactor::default())
            )
            .is_err()
        );
    }

    #[test]
    fn loghub_formats() {
        let hdfs = parser(LogFormat::Loghub {
            format: "<Date> <Time> <Pid> <Level> <Component>: <Content>".into(),
        });
        let (l, ts) = hdfs.parse(
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating",
        );
        assert_eq!(l.level, Level::Info);
        assert_eq!(
            l.message,
            "PacketResponder 1 for block blk_38865049064139660 terminating"
        );
        assert_eq!(l.fields["Component"], "dfs.DataNode$PacketResponder");
        assert_eq!(ts, Some(Ts(1_226_262_975_000)));

        let apache = parser(LogFormat::Loghub {
            format: r"\[<Time>\] \[<Level>\] <Content>".into(),
        });
        let (l, ts) = apache
            .parse("[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6");
        assert_eq!(l.level, Level::Error);
        assert_eq!(l.message, "mod_jk child workerEnv in error state 6");
        assert_eq!(ts, Some(Ts(1_133_671_664_000)));

        let linux = parser(LogFormat::Loghub {
            format: r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>".into(),
        });
        let (l, ts) = linux.parse("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; rhost=218.188.2.4");
        assert_eq!(l.fields["PID"], "19939");
        assert!(l.message.starts_with("authentication failure"));
        assert!(ts.is_some());

        assert!(LoghubFormat::parse("no headers").is_err());
        assert!(LoghubFormat::parse("<A> <A>").is_err());
        assert!(LoghubFormat::parse("<A> (").is_err());
        let f = LoghubFormat::parse("<Level> <Content>").unwrap();
        assert_eq!(
            f.fields("WARN x y"),
            Some(vec![("Level", "WARN"), ("Content", "x y")])
        );
    }
}
