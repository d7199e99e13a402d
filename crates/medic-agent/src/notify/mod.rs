//! Notifications: what medic tells people, and how each kind of receiver is spoken to.
//!
//! One file per receiver kind, registered once in [`NOTIFIERS`]. A notifier only turns a
//! [`Notice`] into a request body and headers; [`send`] delivers it with bounded retries,
//! off the agent loop, and reports the outcome without the target's URL or secrets.

mod pagerduty;
pub(crate) mod send;
mod slack;
mod webhook;

use crate::escalation::EscalationRecord;
use medic_config::{EscalationConfig, EscalationTarget, NotifyKind};
use send::{Budget, send};

/// Every receiver kind medic speaks; a new kind is a file here and one line in this table.
const NOTIFIERS: [&dyn Notifier; 3] = [&webhook::Webhook, &slack::Slack, &pagerduty::PagerDuty];

/// What happened to an incident that people hear about.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A plan waits for a person's approval.
    ApprovalRequested,
    /// A person approved or rejected the plan (`by` names them).
    ApprovalAnswered { approved: bool, by: String },
    /// medic hands the incident over.
    Escalated,
    /// The incident is over: healed, or closed (a rejection, for example).
    Resolved,
}

impl Event {
    pub fn as_str(&self) -> &'static str {
        match self {
            Event::ApprovalRequested => "approval_requested",
            Event::ApprovalAnswered { .. } => "approval_answered",
            Event::Escalated => "escalated",
            Event::Resolved => "resolved",
        }
    }

    /// Whether the event opens a conversation (sent to the policy's target) or continues
    /// one (sent only to targets that heard of the incident before).
    pub fn opens(&self) -> bool {
        matches!(self, Event::ApprovalRequested | Event::Escalated)
    }
}

/// One notification: the event, the incident's story and where people can look at it.
#[derive(Clone, Debug)]
pub struct Notice {
    pub event: Event,
    pub record: EscalationRecord,
    /// `{public_url}/api/v1/incidents/{id}`, when a public URL is configured.
    pub incident_url: Option<String>,
    /// `{public_url}/api/v1`: for the approve/reject hints.
    pub api_base: Option<String>,
}

impl Notice {
    pub fn new(event: Event, record: EscalationRecord, cfg: &EscalationConfig) -> Self {
        let api_base = cfg.public_url.as_ref().map(|u| format!("{u}/api/v1"));
        Notice {
            event,
            incident_url: api_base
                .as_ref()
                .map(|b| format!("{b}/incidents/{}", record.incident)),
            api_base,
            record,
        }
    }
}

/// The body and headers of one delivery.
pub(crate) struct Request {
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
    /// Values to scrub from anything the receiver answers before it is recorded.
    pub secrets: Vec<String>,
}

/// One receiver kind.
trait Notifier: Sync {
    fn kind(&self) -> NotifyKind;
    /// The request for `notice`, `Ok(None)` when this kind has nothing to say about the
    /// event. An error (a secret that cannot be read) names the problem, never a value.
    fn request(
        &self,
        target: &EscalationTarget,
        notice: &Notice,
    ) -> Result<Option<Request>, String>;
}

fn notifier(kind: NotifyKind) -> &'static dyn Notifier {
    NOTIFIERS
        .into_iter()
        .find(|n| n.kind() == kind)
        .unwrap_or(&webhook::Webhook)
}

/// What became of one delivery: recorded in the audit as it is (no URL, no secret).
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryReport {
    pub target: String,
    pub kind: NotifyKind,
    pub event: &'static str,
    pub attempts: u32,
    pub delivered: bool,
    /// The final HTTP status or error, in words.
    pub status: String,
}

impl DeliveryReport {
    /// `oncall (webhook)`: how `Escalated.delivered_to` names a delivery.
    pub fn name(&self) -> String {
        format!("{} ({})", self.target, self.kind.as_str())
    }
}

/// The target a policy names, else the default; `None` when neither is configured.
pub fn opening_target<'c>(
    cfg: &'c EscalationConfig,
    named: Option<&str>,
) -> Option<&'c EscalationTarget> {
    let name = named.or(cfg.default_target.as_deref())?;
    cfg.targets.iter().find(|t| t.name == name)
}

/// Delivers `notice` to each of `targets` in turn. Targets without an endpoint print only
/// and get no report.
pub async fn deliver(
    http: &reqwest::Client,
    targets: &[EscalationTarget],
    notice: &Notice,
) -> Vec<DeliveryReport> {
    let mut reports = Vec::new();
    for t in targets {
        let Some(endpoint) = &t.endpoint else {
            continue;
        };
        let report = |attempts, delivered, status| DeliveryReport {
            target: t.name.clone(),
            kind: t.kind,
            event: notice.event.as_str(),
            attempts,
            delivered,
            status,
        };
        let mut req = match notifier(t.kind).request(t, notice) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                reports.push(report(0, false, e));
                continue;
            }
        };
        let url = match endpoint.resolve() {
            Ok(u) => u,
            Err(e) => {
                reports.push(report(0, false, format!("endpoint unavailable: {e}")));
                continue;
            }
        };
        // A receiver echoing the request's URL (a Slack path is the secret) is scrubbed too.
        if let Ok(u) = reqwest::Url::parse(&url)
            && u.path().len() > 1
        {
            req.secrets.push(u.path().to_string());
        }
        req.secrets.push(url.clone());
        let budget = Budget {
            attempt_timeout: t.timeout,
            max_attempts: t.max_attempts,
            max_total: t.max_delivery_time,
        };
        let (attempts, outcome) = send(http, &url, &req, &budget).await;
        reports.push(match outcome {
            Ok(status) => report(attempts, true, status),
            Err(status) => report(attempts, false, status),
        });
    }
    reports
}

/// Problems with the targets' secrets as they stand now (an unset variable, an unreadable
/// file, a routing key of the wrong length), named without values: said at start-up rather
/// than at the first incident. Each is re-read at delivery, so fixing it needs no restart.
pub fn secret_problems(cfg: &EscalationConfig) -> Vec<String> {
    let mut out = Vec::new();
    for t in &cfg.targets {
        let given = [
            ("webhook", t.endpoint.as_ref()),
            ("secret", t.secret.as_ref()),
            ("routing_key", t.routing_key.as_ref()),
        ];
        for (key, v) in given {
            match v.map(|v| v.resolve()) {
                Some(Err(e)) => out.push(format!("escalation target `{}`: `{key}`: {e}", t.name)),
                Some(Ok(k)) if key == "routing_key" && k.chars().count() != 32 => out.push(format!(
                    "escalation target `{}`: `routing_key` has {} characters, PagerDuty's have 32",
                    t.name,
                    k.chars().count()
                )),
                _ => {}
            }
        }
    }
    out
}

/// Cuts `s` to at most `max` characters, marking the cut with `…`.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_exactly_one_notifier() {
        for kind in NotifyKind::ALL {
            let n = NOTIFIERS.iter().filter(|n| n.kind() == kind).count();
            assert_eq!(n, 1, "{kind:?}");
        }
    }

    #[test]
    fn secret_problems_name_the_target_and_never_a_value() {
        use medic_config::SecretValue;
        let mut pd = EscalationTarget::webhook("pager", None);
        pd.kind = NotifyKind::PagerDuty;
        pd.routing_key = Some(SecretValue::Plain("short-key-value".into()));
        let mut hook = EscalationTarget::webhook("hook", Some("http://127.0.0.1:9/".into()));
        hook.secret = Some(SecretValue::Env("MEDIC_TEST_UNSET_VARIABLE_X".into()));
        let cfg = EscalationConfig {
            targets: vec![pd, hook],
            ..EscalationConfig::default()
        };
        assert_eq!(
            secret_problems(&cfg),
            [
                "escalation target `pager`: `routing_key` has 15 characters, PagerDuty's have 32",
                "escalation target `hook`: `secret`: environment variable `MEDIC_TEST_UNSET_VARIABLE_X` is not set",
            ]
        );
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("ééééé", 5), "ééééé");
        assert_eq!(truncate("éééééé", 5), "éééé…");
        assert_eq!(truncate("abc", 0), "");
    }
}
