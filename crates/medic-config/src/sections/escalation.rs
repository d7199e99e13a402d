//! `escalation:`: where people are told. An empty `webhook` is allowed and means "print
//! only": nothing is delivered.

use super::check_http_url;
use crate::error::Pos;
use crate::node::Node;
use crate::reader::{Ctx, MapReader, did_you_mean, seq_items, to_non_empty_string, to_string};
use crate::types::{
    EscalationConfig, EscalationTarget, NotifyKind, PagerDutySeverity, SecretValue,
};
use std::time::Duration;

/// Where PagerDuty's Events API v2 takes events, unless a target says otherwise.
const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// PagerDuty integration (routing) keys are exactly this long.
const ROUTING_KEY_LEN: usize = 32;
/// A shorter HMAC key is guessable; RFC 2104 asks for at least the hash's output length, so
/// this is a floor, not a recommendation.
const MIN_HMAC_SECRET_LEN: usize = 16;

pub(super) fn read(node: &Node, cx: &mut Ctx) -> EscalationConfig {
    let mut m = MapReader::new(node, "`escalation`", cx);
    let default = m.take("default").filter(|n| !n.is_null());
    let public_url = m.field("public_url", false, |n, label, cx| {
        let url = to_non_empty_string(n, label, cx)?;
        check_http_url(&url, n.pos, label, cx);
        Some(url.trim_end_matches('/').to_string())
    });
    let mut targets: Vec<EscalationTarget> = Vec::new();
    if let Some(list) = m.node("targets") {
        for item in seq_items(list, "`targets` in `escalation`", m.cx) {
            let Some(t) = target(item, m.cx) else {
                continue;
            };
            if let Some(first) = targets.iter().find(|f| f.name == t.name) {
                let msg = format!(
                    "duplicate escalation target `{}` (first at line {}, column {}): expected unique target names",
                    t.name, first.location.line, first.location.col
                );
                m.cx.error(item.pos, msg);
                continue;
            }
            targets.push(t);
        }
    }
    m.finish();
    let default_target = default.and_then(|n| {
        let name = to_non_empty_string(n, "`default` in `escalation`", cx)?;
        if !targets.iter().any(|t| t.name == name) {
            let hint = did_you_mean(&name, targets.iter().map(|t| t.name.as_str()))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            cx.error(
                n.pos,
                format!(
                    "unknown escalation target `{name}` in `escalation.default`: expected one of the names under `escalation.targets`{hint}"
                ),
            );
        }
        Some(name)
    });
    EscalationConfig {
        targets,
        default_target,
        public_url,
    }
}

/// Keys that only some kinds read.
const KIND_KEYS: [(&str, &[NotifyKind]); 5] = [
    ("webhook", &[NotifyKind::Webhook, NotifyKind::Slack]),
    ("secret", &[NotifyKind::Webhook]),
    ("routing_key", &[NotifyKind::PagerDuty]),
    ("url", &[NotifyKind::PagerDuty]),
    ("severity", &[NotifyKind::PagerDuty]),
];

fn target(item: &Node, cx: &mut Ctx) -> Option<EscalationTarget> {
    let location = cx.errs.location(item.pos);
    let mut m = MapReader::new(item, "escalation target", cx);
    let name = m.field("name", true, to_non_empty_string);
    let what = match &name {
        Some(n) => format!("escalation target `{n}`"),
        None => "escalation target".into(),
    };
    let mut m = m.renamed(what.clone());
    let names: Vec<&str> = NotifyKind::ALL.iter().map(|k| k.as_str()).collect();
    let kind_given = m.take("kind").is_some_and(|n| !n.is_null());
    let kind = m.enum_value("kind", false, &names).map(|k| {
        NotifyKind::ALL
            .into_iter()
            .find(|x| x.as_str() == k)
            .unwrap_or(NotifyKind::Webhook)
    });
    // A kind that failed to read was reported; its keys are not judged against a guess.
    let kind_known = kind.is_some() || !kind_given;
    let kind = kind.unwrap_or(NotifyKind::Webhook);
    let webhook_node = m.take("webhook");
    let endpoint_hook = m.field("webhook", false, |n, label, cx| {
        let s = to_string(n, label, cx)?;
        // Empty (`${HOOK:-}` unset): print only.
        if s.trim().is_empty() {
            return None;
        }
        let v = secret(n, &s, label, cx, 0)?;
        if let SecretValue::Plain(url) = &v {
            check_http_url(url, n.pos, label, cx);
        }
        Some(v)
    });
    let secret_v = m.field("secret", false, |n, label, cx| {
        let s = to_string(n, label, cx)?;
        secret(n, &s, label, cx, MIN_HMAC_SECRET_LEN)
    });
    let routing_key = m.field("routing_key", kind == NotifyKind::PagerDuty && kind_known, |n, label, cx| {
        let s = to_string(n, label, cx)?;
        let v = secret(n, &s, label, cx, 0)?;
        if let SecretValue::Plain(k) = &v
            && k.chars().count() != ROUTING_KEY_LEN
        {
            cx.error(
                n.pos,
                format!(
                    "invalid {label}: expected the integration's {ROUTING_KEY_LEN}-character routing key, or `env:NAME` / `file:PATH`, found {} characters",
                    k.chars().count()
                ),
            );
            return None;
        }
        Some(v)
    });
    let url = m.field("url", false, |n, label, cx| {
        let url = to_non_empty_string(n, label, cx)?;
        check_http_url(&url, n.pos, label, cx);
        Some(url)
    });
    let sev_names: Vec<&str> = PagerDutySeverity::ALL.iter().map(|s| s.as_str()).collect();
    let severity = m
        .enum_value("severity", false, &sev_names)
        .and_then(|s| PagerDutySeverity::ALL.into_iter().find(|x| x.as_str() == s))
        .unwrap_or(PagerDutySeverity::Error);
    let timeout = m.duration_or("timeout", Duration::from_secs(5), false);
    let max_attempts = m.u64_or("max_attempts", 5, 1, 20) as u32;
    let max_delivery_time = m.duration_or("max_delivery_time", Duration::from_secs(60), false);
    m.finish();
    if kind_known {
        let map = item.as_map().unwrap_or_default();
        for (key, kinds) in KIND_KEYS {
            if kinds.contains(&kind) {
                continue;
            }
            if let Some((k, _)) = map.iter().find(|(k, _)| k.key_str() == Some(key)) {
                let for_kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                cx.error(
                    k.pos,
                    format!(
                        "`{key}` in {what} does not apply to `kind: {}`: expected it only with `kind: {}`",
                        kind.as_str(),
                        for_kinds.join("` or `kind: ")
                    ),
                );
            }
        }
        if kind == NotifyKind::Slack && webhook_node.is_none() {
            cx.error(
                item.pos,
                format!(
                    "missing required key `webhook` in {what}: a `kind: slack` target needs its incoming webhook URL (the URL itself, `env:NAME` or `file:PATH`)"
                ),
            );
        }
    }
    let webhook = match &endpoint_hook {
        Some(SecretValue::Plain(u)) => Some(u.clone()),
        _ => None,
    };
    let endpoint = match kind {
        NotifyKind::PagerDuty => Some(SecretValue::Plain(
            url.unwrap_or_else(|| PAGERDUTY_EVENTS_URL.to_string()),
        )),
        _ => endpoint_hook,
    };
    Some(EscalationTarget {
        name: name?,
        webhook,
        timeout,
        location,
        kind,
        endpoint,
        secret: secret_v,
        routing_key,
        severity,
        max_attempts,
        max_delivery_time,
    })
}

/// `VALUE`, `env:NAME` or `file:PATH` (relative to the config file). A plain value shorter
/// than `min_len` is refused.
pub(super) fn secret(
    n: &Node,
    s: &str,
    label: &str,
    cx: &mut Ctx,
    min_len: usize,
) -> Option<SecretValue> {
    let bad = |cx: &mut Ctx, pos: Pos, why: String| {
        cx.error(
            pos,
            format!("invalid {label}: {why} (the value itself, `env:NAME` or `file:PATH`)"),
        );
    };
    if let Some(name) = s.strip_prefix("env:") {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            let why = format!(
                "expected an environment variable name of letters, digits and `_` after `env:`, found `{}`",
                name.chars().take(40).collect::<String>()
            );
            bad(cx, n.pos, why);
            return None;
        }
        return Some(SecretValue::Env(name.to_string()));
    }
    if let Some(path) = s.strip_prefix("file:") {
        if path.trim().is_empty() {
            bad(cx, n.pos, "expected a path after `file:`".into());
            return None;
        }
        return Some(SecretValue::File(cx.resolve(path.trim())));
    }
    if s.trim().is_empty() {
        bad(cx, n.pos, "expected a non-empty value".into());
        return None;
    }
    // The message gives the length, never the value: this is a secret.
    if s.chars().count() < min_len {
        let why = format!(
            "expected at least {min_len} characters, found {}",
            s.chars().count()
        );
        bad(cx, n.pos, why);
        return None;
    }
    Some(SecretValue::Plain(s.to_string()))
}
