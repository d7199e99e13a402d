//! Escalation: the whole story of an incident, printed and sent to a webhook.

use medic_config::EscalationConfig;
use medic_core::{AuditRecord, Incident, Ts};
use serde::Serialize;
use std::time::Duration;

/// What people receive when medic hands an incident over.
#[derive(Clone, Debug, Serialize)]
pub struct EscalationRecord {
    pub incident: String,
    pub reason: String,
    pub at: Ts,
    pub state: String,
    pub services: Vec<String>,
    /// One line per hypothesis, best first.
    pub hypotheses: Vec<String>,
    pub plan: Option<String>,
    pub decision: Option<String>,
    pub executions: Vec<String>,
    pub outcome: Option<String>,
    /// The incident's audit trail, one line per record.
    pub timeline: Vec<String>,
    /// What a person should look at or do next.
    pub next_step: String,
    /// The incident itself, for tools.
    pub detail: Incident,
}

impl EscalationRecord {
    pub fn build(incident: &Incident, reason: &str, at: Ts, audit: &[AuditRecord]) -> Self {
        let hypotheses = incident
            .diagnosis
            .iter()
            .flat_map(|d| d.hypotheses.iter().take(3))
            .map(|h| {
                format!(
                    "{} on {} ({:.2}): {}",
                    h.cause, h.target, h.confidence, h.rationale
                )
            })
            .collect();
        let plan = incident.plan.as_ref().map(|p| {
            format!(
                "{} (policy {}, mode {}, confidence {:.2} vs threshold {:.2})",
                p.action,
                p.policy,
                p.mode.as_str(),
                p.confidence,
                p.confidence_threshold
            )
        });
        let executions = incident
            .executions
            .iter()
            .map(|e| {
                format!(
                    "attempt {} {} → {:?}: {}",
                    e.attempt, e.action, e.status, e.detail
                )
            })
            .collect();
        let outcome = incident.outcome.as_ref().map(|o| format!("{o:?}"));
        let timeline = audit
            .iter()
            .map(|r| format!("{} #{} {}", r.ts.clock_time(), r.seq, r.kind))
            .collect();
        let next_step = match &incident.plan {
            Some(p) if incident.executions.is_empty() => format!("consider: {}", p.action),
            Some(_) => {
                "the automatic action did not heal the incident: investigate the top hypothesis"
                    .into()
            }
            None => "no policy covers this incident: investigate the top hypothesis".into(),
        };
        EscalationRecord {
            incident: incident.id.clone(),
            reason: reason.to_string(),
            at,
            state: incident.state.to_string(),
            services: incident.services.iter().cloned().collect(),
            hypotheses,
            plan,
            decision: incident.decision.as_ref().map(|d| format!("{d:?}")),
            executions,
            outcome,
            timeline,
            next_step,
            detail: incident.clone(),
        }
    }

    /// The human-readable form printed to the terminal.
    pub fn render(&self) -> String {
        let mut s = format!(
            "ESCALATION {} at {}: {}\n  services: {}\n",
            self.incident,
            self.at.clock_time(),
            self.reason,
            self.services.join(", ")
        );
        for h in &self.hypotheses {
            s.push_str(&format!("  hypothesis: {h}\n"));
        }
        if let Some(p) = &self.plan {
            s.push_str(&format!("  plan: {p}\n"));
        }
        for e in &self.executions {
            s.push_str(&format!("  {e}\n"));
        }
        s.push_str(&format!("  next: {}\n", self.next_step));
        s
    }
}

/// Delivers a record to the named target's webhook (or the default). Returns where it was
/// delivered, and the errors of deliveries that failed.
pub async fn deliver(
    http: &reqwest::Client,
    cfg: &EscalationConfig,
    target: Option<&str>,
    record: &EscalationRecord,
) -> (Vec<String>, Vec<String>) {
    let name = target.or(cfg.default_target.as_deref());
    let Some(t) = name.and_then(|n| cfg.targets.iter().find(|t| t.name == n)) else {
        return (vec!["stderr".into()], Vec::new());
    };
    let mut delivered = vec!["stderr".to_string()];
    let mut errors = Vec::new();
    if let Some(url) = t.webhook.as_deref().filter(|u| !u.is_empty()) {
        let timeout = if t.timeout.is_zero() {
            Duration::from_secs(5)
        } else {
            t.timeout
        };
        // A webhook URL is often its own secret (Slack, Teams): the audit, the logs and the
        // escalation text name the target, never the URL (reqwest's errors carry it too).
        match http.post(url).timeout(timeout).json(record).send().await {
            Ok(r) if r.status().is_success() => delivered.push(format!("{} (webhook)", t.name)),
            Ok(r) => errors.push(format!(
                "webhook of target `{}` answered {}",
                t.name,
                r.status()
            )),
            Err(e) => errors.push(format!(
                "webhook of target `{}` failed: {}",
                t.name,
                e.without_url()
            )),
        }
    }
    (delivered, errors)
}
