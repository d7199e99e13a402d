//! `escalation:`: where people are told. An empty `webhook` is allowed and means "print
//! only": nothing is delivered.

use super::check_http_url;
use crate::node::Node;
use crate::reader::{Ctx, MapReader, did_you_mean, seq_items, to_non_empty_string, to_string};
use crate::types::{EscalationConfig, EscalationTarget};
use std::time::Duration;

pub(super) fn read(node: &Node, cx: &mut Ctx) -> EscalationConfig {
    let mut m = MapReader::new(node, "`escalation`", cx);
    let default = m.take("default").filter(|n| !n.is_null());
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
    }
}

fn target(item: &Node, cx: &mut Ctx) -> Option<EscalationTarget> {
    let location = cx.errs.location(item.pos);
    let mut m = MapReader::new(item, "escalation target", cx);
    let name = m.field("name", true, to_non_empty_string);
    let what = match &name {
        Some(n) => format!("escalation target `{n}`"),
        None => "escalation target".into(),
    };
    let mut m = m.renamed(what);
    let webhook = m.field("webhook", false, |n, label, cx| {
        let url = to_string(n, label, cx)?;
        if url.is_empty() {
            return None;
        }
        check_http_url(&url, n.pos, label, cx);
        Some(url)
    });
    let timeout = m.duration_or("timeout", Duration::from_secs(5), false);
    m.finish();
    Some(EscalationTarget {
        name: name?,
        webhook,
        timeout,
        location,
    })
}
