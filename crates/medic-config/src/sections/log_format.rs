//! Log parsing options shared by the log sources (`format`, `fields`, `pattern`,
//! `container`), the `kubernetes_logs` and `stdin` source types, and the top-level
//! `redaction:` section. Regexes are compiled here once so that a bad one is a config error
//! with its position, not a runtime surprise.

use crate::node::Node;
use crate::reader::{Ctx, MapReader, seq_items, to_non_empty_string};
use crate::types::{
    ContainerFormat, LogFormat, REDACTION_KINDS, RedactionConfig, RedactionPattern, SourceKind,
};
use std::time::Duration;

const FORMATS: [&str; 7] = ["auto", "json", "logfmt", "regex", "loghub", "cri", "docker"];
const CONTAINERS: [&str; 4] = ["none", "cri", "docker", "auto"];

/// Default paths of `kubernetes_logs`: the kubelet's per-pod directories.
pub const KUBERNETES_LOG_PATHS: [&str; 1] = ["/var/log/pods/*/*/*.log"];

/// `format`, `fields`, `pattern` and `container` of a log source.
pub(super) fn read_format(m: &mut MapReader) -> (LogFormat, ContainerFormat) {
    let format = m.enum_value("format", false, &FORMATS);
    let fields = m.node("fields");
    let pattern_node = m.take("pattern").filter(|n| !n.is_null());
    let container_key = m.enum_value("container", false, &CONTAINERS);
    let mut container = match container_key.as_deref() {
        Some("cri") => ContainerFormat::Cri,
        Some("docker") => ContainerFormat::Docker,
        Some("auto") => ContainerFormat::Auto,
        _ => ContainerFormat::None,
    };
    let what = m.what().to_string();
    let pattern = pattern_node.and_then(|n| {
        to_non_empty_string(n, &format!("`pattern` in {what}"), m.cx).map(|p| (p, n))
    });
    let fmt = match format.as_deref() {
        Some("json") => {
            let (mut message, mut level, mut timestamp) = (None, None, None);
            if let Some(n) = fields {
                let mut f = MapReader::new(n, format!("`fields` in {what}"), m.cx);
                message = f.field("message", false, to_non_empty_string);
                level = f.field("level", false, to_non_empty_string);
                timestamp = f.field("timestamp", false, to_non_empty_string);
                f.finish();
            }
            LogFormat::Json {
                message,
                level,
                timestamp,
            }
        }
        Some("logfmt") => LogFormat::Logfmt,
        Some("regex") => match pattern {
            Some((p, n)) => {
                check_regex(&p, n, &format!("`pattern` in {what}"), m.cx);
                LogFormat::Regex { pattern: p }
            }
            None => {
                m.cx.error(
                    m.pos,
                    format!(
                        "missing `pattern` in {what}: `format: regex` needs a regex with named groups such as `(?P<level>\\w+) (?P<message>.*)`"
                    ),
                );
                LogFormat::Auto
            }
        },
        Some("loghub") => match pattern {
            Some((p, n)) => {
                if !p.contains('<') || !p.contains('>') {
                    m.cx.error(
                        n.pos,
                        format!(
                            "invalid `pattern` in {what}: expected a Loghub format with `<Field>` headers such as `<Date> <Time> <Level> <Component>: <Content>`, found `{p}`"
                        ),
                    );
                }
                LogFormat::Loghub { format: p }
            }
            None => {
                m.cx.error(
                    m.pos,
                    format!(
                        "missing `pattern` in {what}: `format: loghub` needs a header format such as `<Date> <Time> <Level> <Component>: <Content>`"
                    ),
                );
                LogFormat::Auto
            }
        },
        Some("cri") => {
            container = ContainerFormat::Cri;
            LogFormat::Auto
        }
        Some("docker") => {
            container = ContainerFormat::Docker;
            LogFormat::Auto
        }
        _ => LogFormat::Auto,
    };
    if fields.is_some() && !matches!(fmt, LogFormat::Json { .. }) {
        m.cx.error(
            m.pos,
            format!("invalid `fields` in {what}: only used with `format: json`"),
        );
    }
    if pattern_node.is_some() && !matches!(fmt, LogFormat::Regex { .. } | LogFormat::Loghub { .. })
    {
        m.cx.error(
            m.pos,
            format!(
                "invalid `pattern` in {what}: only used with `format: regex` or `format: loghub`"
            ),
        );
    }
    (fmt, container)
}

/// Compiles `pattern`; on failure reports the regex's own message and the character where
/// it went wrong.
fn check_regex(pattern: &str, n: &Node, label: &str, cx: &mut Ctx) -> bool {
    match regex::Regex::new(pattern) {
        Ok(_) => true,
        Err(e) => {
            cx.error(
                n.pos,
                format!("invalid {label}: expected a regex, {}", regex_error(&e)),
            );
            false
        }
    }
}

/// `regex::Error` prints the pattern with a caret under the fault over several lines; one
/// line with the character position reads better next to file:line:col.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let reason = lines
        .iter()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| lines.last().map_or("", |l| l.trim()));
    let caret = lines.iter().enumerate().find_map(|(i, l)| {
        let t = l.trim_start();
        (i > 1 && t.starts_with('^')).then(|| {
            let pattern_line = lines[i - 1];
            let indent = pattern_line.len() - pattern_line.trim_start().len();
            (l.len() - t.len()).saturating_sub(indent) + 1
        })
    });
    match caret {
        Some(c) => format!("{reason} at character {c} of the pattern"),
        None => reason.to_string(),
    }
}

/// `type: kubernetes_logs`.
pub(super) fn kubernetes_logs(m: &mut MapReader) -> Option<SourceKind> {
    let paths = m
        .str_list("paths", false)
        .map(|l| l.iter().map(|p| m.cx.resolve_string(p)).collect::<Vec<_>>())
        .unwrap_or_else(|| KUBERNETES_LOG_PATHS.iter().map(|s| s.to_string()).collect());
    let from_start = m.bool_or("from_start", false);
    let poll = m.duration_or("poll", Duration::from_millis(500), false);
    let (format, container) = read_format(m);
    if container != ContainerFormat::None {
        m.cx.error(
            m.pos,
            format!(
                "invalid `format` in {}: `kubernetes_logs` detects CRI and Docker envelopes itself; `format` is for the message inside",
                m.what()
            ),
        );
    }
    Some(SourceKind::KubernetesLogs {
        paths,
        from_start,
        poll,
        format,
    })
}

/// `type: stdin`.
pub(super) fn stdin(m: &mut MapReader) -> Option<SourceKind> {
    let service = m.field("service", false, to_non_empty_string);
    let (format, container) = read_format(m);
    if container != ContainerFormat::None {
        m.cx.error(
            m.pos,
            format!(
                "invalid `format` in {}: container envelopes are for files",
                m.what()
            ),
        );
    }
    Some(SourceKind::Stdin { service, format })
}

/// The top-level `redaction:` section.
pub(super) fn read_redaction(node: &Node, cx: &mut Ctx) -> RedactionConfig {
    let mut out = RedactionConfig::default();
    let mut m = MapReader::new(node, "`redaction`", cx);
    if let Some(list) = m.node("extra_patterns") {
        for item in seq_items(list, "`extra_patterns` in `redaction`", m.cx) {
            let mut p = MapReader::new(item, "redaction pattern", m.cx);
            let name = p.field("name", true, to_non_empty_string);
            let regex_node = p.take("regex");
            let regex = p.field("regex", true, to_non_empty_string);
            if let Some(n) = &name
                && !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                let pos = p.pos;
                p.cx.error(
                    pos,
                    format!(
                        "invalid `name` of a redaction pattern: expected letters, digits, `_` or `-` (it is shown as `[REDACTED:<name>]`), found `{n}`"
                    ),
                );
            }
            p.finish();
            if let (Some(name), Some(regex), Some(n)) = (name, regex, regex_node)
                && check_regex(
                    &regex,
                    n,
                    &format!("`regex` of redaction pattern `{name}`"),
                    m.cx,
                )
            {
                out.extra_patterns.push(RedactionPattern { name, regex });
            }
        }
    }
    if let Some(list) = m.node("disable") {
        for item in seq_items(list, "`disable` in `redaction`", m.cx) {
            if let Some(k) = crate::reader::to_enum(
                item,
                "`disable` entry in `redaction`",
                m.cx,
                &REDACTION_KINDS,
            ) {
                out.disable.push(k);
            }
        }
    }
    m.finish();
    out
}
