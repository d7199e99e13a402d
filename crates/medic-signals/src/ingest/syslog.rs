//! Syslog messages: RFC 5424 (`<165>1 2003-10-11T22:14:15.003Z host app 1234 ID47 [sd] msg`)
//! and RFC 3164 (`<34>Oct 11 22:14:15 mymachine su: msg`), plus the common deviations
//! (no PRI, no hostname, ISO timestamps in 3164 framing). Framing (UDP datagram, TCP
//! octet-counting or newline) is the source's job; this reads one message.

use crate::logparse::MAX_RAW_BYTES;
use crate::redact::{is_sensitive_key, redact};
use chrono::{Datelike, NaiveDate, TimeZone};
use medic_core::{Level, LogLine, Signal, SignalPayload, Ts};
use std::collections::BTreeMap;

/// One parsed message; fields borrow nothing so it can cross tasks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyslogMessage {
    pub facility: u8,
    pub severity: u8,
    /// 1 for RFC 5424, 0 for RFC 3164 / BSD.
    pub version: u8,
    pub ts: Option<Ts>,
    pub hostname: Option<String>,
    /// APP-NAME (5424) or TAG (3164).
    pub app_name: Option<String>,
    pub proc_id: Option<String>,
    pub msg_id: Option<String>,
    /// Structured data as `sd_id.param` → value.
    pub structured: BTreeMap<String, String>,
    pub message: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SyslogError {
    #[error("empty syslog message")]
    Empty,
    #[error("invalid syslog PRI `{0}`: expected `<0>` to `<191>`")]
    BadPri(String),
}

/// Syslog severity (0 emergency … 7 debug) → medic's level.
pub fn severity_level(severity: u8) -> Level {
    match severity {
        0..=2 => Level::Fatal,
        3 => Level::Error,
        4 => Level::Warn,
        5 | 6 => Level::Info,
        _ => Level::Debug,
    }
}

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Parses one message (trailing newlines and NULs ignored).
pub fn parse_syslog(input: &str) -> Result<SyslogMessage, SyslogError> {
    let s = input.trim_end_matches(['\n', '\r', '\0']);
    if s.trim().is_empty() {
        return Err(SyslogError::Empty);
    }
    let (pri, rest) = match s.strip_prefix('<') {
        Some(after) => {
            let end = after
                .find('>')
                .filter(|&e| (1..=3).contains(&e))
                .ok_or_else(|| SyslogError::BadPri(s.chars().take(6).collect()))?;
            let digits = &after[..end];
            let pri: u8 = digits
                .parse()
                .ok()
                .filter(|p: &u8| *p <= 191 && digits.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| SyslogError::BadPri(digits.to_string()))?;
            (pri, &after[end + 1..])
        }
        // RFC 3164 §4.3.3: a relay treats a message without PRI as user.notice.
        None => (13, s),
    };
    let mut m = SyslogMessage {
        facility: pri / 8,
        severity: pri % 8,
        ..SyslogMessage::default()
    };
    if let Some(after) = rest.strip_prefix("1 ") {
        parse_5424(after, &mut m);
    } else {
        parse_3164(rest, &mut m);
    }
    Ok(m)
}

fn nil(tok: &str) -> Option<String> {
    (tok != "-" && !tok.is_empty()).then(|| tok.to_string())
}

/// Splits off one space-delimited token.
fn token(s: &str) -> (&str, &str) {
    match s.find(' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

fn parse_5424(s: &str, m: &mut SyslogMessage) {
    m.version = 1;
    let (ts, s) = token(s);
    m.ts = Ts::parse_rfc3339(ts);
    let (host, s) = token(s);
    m.hostname = nil(host);
    let (app, s) = token(s);
    m.app_name = nil(app);
    let (proc_id, s) = token(s);
    m.proc_id = nil(proc_id);
    let (msg_id, s) = token(s);
    m.msg_id = nil(msg_id);
    let rest = if let Some(r) = s.strip_prefix('-') {
        r
    } else if s.starts_with('[') {
        parse_sd(s, &mut m.structured)
    } else {
        s
    };
    let msg = rest.strip_prefix(' ').unwrap_or(rest);
    m.message = msg.strip_prefix('\u{feff}').unwrap_or(msg).to_string();
}

/// Reads `[id k="v" …][id2 …]` into `out`; returns what follows. Malformed data ends the
/// structured part: what was read is kept and the rest is the message.
fn parse_sd<'a>(mut s: &'a str, out: &mut BTreeMap<String, String>) -> &'a str {
    while let Some(inner) = s.strip_prefix('[') {
        let id_end = inner.find([' ', ']']).unwrap_or(inner.len());
        let id = &inner[..id_end];
        let mut p = &inner[id_end..];
        loop {
            p = p.trim_start_matches(' ');
            if let Some(after) = p.strip_prefix(']') {
                s = after;
                break;
            }
            let Some(eq) = p.find("=\"") else {
                return p;
            };
            let name = &p[..eq];
            let mut value = String::new();
            let mut chars = p[eq + 2..].char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            if !matches!(n, '"' | '\\' | ']') {
                                value.push('\\');
                            }
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = Some(eq + 2 + i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let Some(end) = end else {
                return "";
            };
            if out.len() < 64 {
                out.insert(format!("{id}.{name}"), value);
            }
            p = &p[end..];
        }
    }
    s
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Mmm dd hh:mm:ss` (day space-padded), read in local time, in the year that puts it
/// closest to now (a December message read in January belongs to last year).
fn bsd_timestamp(s: &str) -> Option<(Ts, &str)> {
    let head = s.get(..15)?;
    let month = MONTHS.iter().position(|m| head.starts_with(m))? as u32 + 1;
    let b = head.as_bytes();
    if b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    let day: u32 = head[4..6].trim().parse().ok()?;
    let hour: u32 = head[7..9].parse().ok()?;
    let min: u32 = head[10..12].parse().ok()?;
    let sec: u32 = head[13..15].parse().ok()?;
    let now = chrono::Local::now();
    let mut best = None;
    for year in [now.year() - 1, now.year(), now.year() + 1] {
        let naive = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(hour, min, sec)?;
        let Some(t) = chrono::Local.from_local_datetime(&naive).earliest() else {
            continue;
        };
        let dist = (t.timestamp_millis() - now.timestamp_millis()).abs();
        if best.is_none_or(|(d, _)| dist < d) {
            best = Some((dist, t.timestamp_millis()));
        }
    }
    let rest = s[15..].strip_prefix(' ').unwrap_or(&s[15..]);
    best.map(|(_, ms)| (Ts(ms), rest))
}

/// A TAG token: `name:`, `name[pid]:`. Returns (name, pid).
fn tag(tok: &str) -> Option<(&str, Option<&str>)> {
    let t = tok.strip_suffix(':')?;
    if let Some(open) = t.find('[') {
        let pid = t[open + 1..].strip_suffix(']')?;
        let name = &t[..open];
        return (!name.is_empty()).then_some((name, Some(pid)));
    }
    (!t.is_empty() && t.len() <= 64).then_some((t, None))
}

fn parse_3164(s: &str, m: &mut SyslogMessage) {
    let mut rest = s;
    if let Some((ts, r)) = bsd_timestamp(rest) {
        m.ts = Some(ts);
        rest = r;
    } else {
        // rsyslog/syslog-ng may put an RFC 3339 timestamp in 3164 framing.
        let (tok, r) = token(rest);
        if let Some(ts) = Ts::parse_rfc3339(tok) {
            m.ts = Some(ts);
            rest = r;
        }
    }
    let (first, after_first) = token(rest);
    if let Some((name, pid)) = tag(first) {
        // No hostname: `<34>su: msg`.
        m.app_name = Some(name.to_string());
        m.proc_id = pid.map(str::to_string);
        rest = after_first;
    } else if m.ts.is_some() && !first.is_empty() {
        let (second, after_second) = token(after_first);
        m.hostname = Some(first.to_string());
        if let Some((name, pid)) = tag(second) {
            m.app_name = Some(name.to_string());
            m.proc_id = pid.map(str::to_string);
            rest = after_second;
        } else {
            rest = after_first;
        }
    }
    m.message = rest.to_string();
}

/// How a syslog message becomes a signal.
pub struct SyslogContext<'a> {
    pub source: &'a str,
    /// Fixed service; otherwise the app name.
    pub service: Option<&'a str>,
    pub now: Ts,
}

/// One message → one log signal (redacted). `raw` is the message as received.
pub fn syslog_to_signal(m: SyslogMessage, raw: &str, cx: &SyslogContext<'_>) -> Signal {
    let mut fields = BTreeMap::new();
    if let Some(f) = FACILITIES.get(usize::from(m.facility)) {
        fields.insert("facility".to_string(), (*f).to_string());
    }
    fields.insert("severity".to_string(), m.severity.to_string());
    if let Some(p) = &m.proc_id {
        fields.insert("proc_id".to_string(), redact(p).into_owned());
    }
    if let Some(id) = &m.msg_id {
        fields.insert("msg_id".to_string(), redact(id).into_owned());
    }
    if let Some(h) = &m.hostname {
        fields.insert("hostname".to_string(), redact(h).into_owned());
    }
    for (k, v) in &m.structured {
        let param = k.rsplit('.').next().unwrap_or(k);
        let value = if is_sensitive_key(param) {
            "[REDACTED:secret]".to_string()
        } else {
            redact(v).into_owned()
        };
        fields.insert(redact(k).into_owned(), value);
    }
    let mut end = raw.len().min(MAX_RAW_BYTES);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    let service = cx
        .service
        .map(str::to_string)
        .or_else(|| m.app_name.as_deref().map(|a| redact(a).into_owned()));
    Signal {
        ts: m.ts.unwrap_or(cx.now),
        source: cx.source.to_string(),
        service,
        instance: m.hostname.as_deref().map(|h| redact(h).into_owned()),
        payload: SignalPayload::Log(LogLine {
            level: severity_level(m.severity),
            message: redact(&m.message).into_owned(),
            continuation: Vec::new(),
            fields,
            raw: redact(raw[..end].trim_end_matches(['\n', '\r', '\0'])).into_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3164_example() {
        let m = parse_syslog(
            "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        )
        .unwrap();
        assert_eq!((m.facility, m.severity, m.version), (4, 2, 0));
        assert_eq!(m.hostname.as_deref(), Some("mymachine"));
        assert_eq!(m.app_name.as_deref(), Some("su"));
        assert_eq!(m.message, "'su root' failed for lonvick on /dev/pts/8");
        assert!(m.ts.is_some());
        assert_eq!(severity_level(m.severity), Level::Fatal);
    }

    #[test]
    fn rfc3164_variants() {
        let m = parse_syslog("<13>Jan  5 01:02:03 host app[42]: hi there\n").unwrap();
        assert_eq!(m.app_name.as_deref(), Some("app"));
        assert_eq!(m.proc_id.as_deref(), Some("42"));
        assert_eq!(m.message, "hi there");
        let m = parse_syslog("<11>su: no host").unwrap();
        assert_eq!(
            (m.app_name.as_deref(), m.message.as_str()),
            (Some("su"), "no host")
        );
        let m = parse_syslog("plain text, no pri").unwrap();
        assert_eq!((m.severity, m.message.as_str()), (5, "plain text, no pri"));
        let m = parse_syslog("<30>2024-01-02T03:04:05.123456+00:00 h d[1]: iso").unwrap();
        assert_eq!(m.ts, Ts::parse_rfc3339("2024-01-02T03:04:05.123Z"));
        assert_eq!(m.message, "iso");
    }

    #[test]
    fn rfc5424_with_structured_data_and_bom() {
        let m = parse_syslog("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][x@1 q=\"a \\\"b\\\" c\\]\"] \u{feff}An application event").unwrap();
        assert_eq!(m.version, 1);
        assert_eq!(m.ts, Some(Ts(1_065_910_455_003)));
        assert_eq!(m.app_name.as_deref(), Some("evntslog"));
        assert_eq!(m.proc_id, None);
        assert_eq!(m.msg_id.as_deref(), Some("ID47"));
        assert_eq!(m.structured["exampleSDID@32473.eventID"], "1011");
        assert_eq!(m.structured["x@1.q"], "a \"b\" c]");
        assert_eq!(m.message, "An application event");
        assert_eq!(severity_level(m.severity), Level::Info);
        let m = parse_syslog("<11>1 - - - - - -").unwrap();
        assert_eq!((m.hostname, m.message.as_str()), (None, ""));
    }

    #[test]
    fn bad_input_is_an_error_or_a_message_never_a_panic() {
        assert_eq!(parse_syslog(""), Err(SyslogError::Empty));
        assert!(matches!(
            parse_syslog("<999>x"),
            Err(SyslogError::BadPri(_))
        ));
        assert!(matches!(parse_syslog("<>x"), Err(SyslogError::BadPri(_))));
        assert!(matches!(parse_syslog("<1a>x"), Err(SyslogError::BadPri(_))));
        for s in [
            "<1>1 ",
            "<1>1 x y z a b [unterminated k=\"v",
            "<1>1 - - - - - [id k=\"v\"",
            "<1>Oct",
            "<1>Oct 11 22:14:1",
            "<1>Feb 30 22:14:15 h t: m",
            "<1>ü",
            "<1>1 - - - - - [é=\"x\"] m",
        ] {
            let _ = parse_syslog(s);
        }
    }

    #[test]
    fn signal_is_redacted_and_named_after_the_app() {
        let m = parse_syslog("<11>1 2024-01-01T00:00:00Z web01 checkout 7 - [auth password=\"hunter2\"] login token=abcdef123456 failed").unwrap();
        let raw = "<11>1 … password=\"hunter2\"";
        let s = syslog_to_signal(
            m,
            raw,
            &SyslogContext {
                source: "syslog",
                service: None,
                now: Ts(0),
            },
        );
        assert_eq!(s.service.as_deref(), Some("checkout"));
        assert_eq!(s.instance.as_deref(), Some("web01"));
        let SignalPayload::Log(l) = &s.payload else {
            panic!()
        };
        assert_eq!(l.level, Level::Error);
        assert_eq!(l.fields["auth.password"], "[REDACTED:secret]");
        assert!(!l.message.contains("abcdef123456"), "{}", l.message);
        assert!(!l.raw.contains("hunter2"), "{}", l.raw);
    }
}
