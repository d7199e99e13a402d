//! `kind: pagerduty`: PagerDuty Events API v2 (`POST /v2/enqueue`).
//!
//! One alert per incident (`dedup_key` `medic-<incident id>`): an approval request triggers
//! it at `warning`, an escalation triggers it (again) at the target's `severity`, a
//! person's answer to the approval acknowledges it, and the incident's end resolves it.

use super::{Event, Notice, Notifier, Request, truncate};
use medic_config::{EscalationTarget, NotifyKind, PagerDutySeverity};
use serde_json::{Value, json};

pub(super) struct PagerDuty;

/// The Events API's limit on `payload.summary`.
const MAX_SUMMARY: usize = 1024;
/// Audit lines sent in `custom_details`: the latest, to keep the event small.
const MAX_TIMELINE: usize = 50;

impl Notifier for PagerDuty {
    fn kind(&self) -> NotifyKind {
        NotifyKind::PagerDuty
    }

    fn request(
        &self,
        target: &EscalationTarget,
        notice: &Notice,
    ) -> Result<Option<Request>, String> {
        let Some(key) = &target.routing_key else {
            return Err("no routing_key configured".into());
        };
        let key = key
            .resolve()
            .map_err(|e| format!("routing key unavailable: {e}"))?;
        let body = serde_json::to_vec(&event(notice, &key, target.severity))
            .map_err(|e| format!("cannot encode the event: {e}"))?;
        Ok(Some(Request {
            body,
            headers: Vec::new(),
            secrets: vec![key],
        }))
    }
}

/// `medic-<incident id>`: the same alert from the first notice to the last.
fn dedup_key(incident: &str) -> String {
    format!("medic-{incident}")
}

fn event(notice: &Notice, routing_key: &str, severity: PagerDutySeverity) -> Value {
    let r = &notice.record;
    let dedup = dedup_key(&r.incident);
    let action = match notice.event {
        Event::ApprovalRequested | Event::Escalated => "trigger",
        Event::ApprovalAnswered { .. } => "acknowledge",
        Event::Resolved => "resolve",
    };
    if action != "trigger" {
        // The API ignores a payload on acknowledge and resolve.
        return json!({ "routing_key": routing_key, "event_action": action, "dedup_key": dedup });
    }
    let severity = if notice.event == Event::ApprovalRequested {
        PagerDutySeverity::Warning
    } else {
        severity
    };
    let what = match notice.event {
        Event::ApprovalRequested => "approval needed",
        _ => "escalated",
    };
    let services = r.services.join(", ");
    let summary = format!("[medic] {} {what} ({services}): {}", r.incident, r.reason);
    let skip = r.timeline.len().saturating_sub(MAX_TIMELINE);
    let mut details = json!({
        "incident": r.incident,
        "reason": r.reason,
        "state": r.state,
        "hypotheses": r.hypotheses,
        "plan": r.plan,
        "decision": r.decision,
        "executions": r.executions,
        "outcome": r.outcome,
        "next_step": r.next_step,
        "timeline": r.timeline[skip..],
    });
    if notice.event == Event::ApprovalRequested {
        details["approve"] = json!(format!(
            "medic approve {0} --reason … / medic reject {0} --reason …",
            r.incident
        ));
    }
    let mut ev = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup,
        "client": "medic",
        "payload": {
            "summary": truncate(&summary, MAX_SUMMARY),
            // PagerDuty wants the affected system: the first service, else medic itself.
            "source": r.services.first().map_or("medic", String::as_str),
            "severity": severity.as_str(),
            "component": services,
            "custom_details": details,
        },
    });
    // The top cause groups alerts in PagerDuty; absent when nothing was diagnosed.
    if let Some(h) = r
        .detail
        .diagnosis
        .as_ref()
        .and_then(|d| d.hypotheses.first())
    {
        ev["payload"]["class"] = json!(h.cause.to_string());
    }
    if let Some(url) = &notice.incident_url {
        ev["client_url"] = json!(url);
        ev["links"] = json!([{ "href": url, "text": "Incident in medic's API" }]);
    }
    ev
}
