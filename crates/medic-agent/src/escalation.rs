//! Escalation: the whole story of an incident, printed and sent to the escalation targets
//! (the receivers themselves are in `notify/`).

use crate::notify::{self, DeliveryReport, Event, Notice};
use crate::{Agent, AgentError, TaskResult};
use medic_config::EscalationTarget;
use medic_core::{AuditEvent, AuditRecord, Incident, Ts};
use serde::Serialize;
use std::collections::BTreeSet;

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

impl Agent {
    /// Tells people about `event` in the background; each delivery is audited once it is
    /// over. An opening event (approval requested, escalated) goes to `target` or the
    /// default; a follow-up only to the targets the audit shows heard of the incident.
    /// `escalated` carries the escalation's reason: its `Escalated` record waits for the
    /// deliveries, so it names where the story went. Never fails the step that called it:
    /// a notification that cannot be prepared is logged.
    pub(crate) fn notify(
        &mut self,
        id: &str,
        event: Event,
        reason: &str,
        target: Option<&str>,
        escalated: Option<String>,
    ) {
        let Some(inc) = self.incidents.get(id) else {
            return;
        };
        let audit = match self.store.audit_records_for(id) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(incident = %id, "notification `{}`: the incident's audit is unreadable ({e}), follow-ups go nowhere", event.as_str());
                Vec::new()
            }
        };
        let cfg = &self.cfg.escalation;
        let targets: Vec<EscalationTarget> = if event.opens() {
            notify::opening_target(cfg, target)
                .into_iter()
                .cloned()
                .collect()
        } else {
            let heard = heard_of(&audit);
            cfg.targets
                .iter()
                .filter(|t| heard.contains(&t.name))
                .cloned()
                .collect()
        };
        if targets.is_empty() && escalated.is_none() {
            return;
        }
        let record = EscalationRecord::build(inc, reason, self.now(), &audit);
        let notice = Notice::new(event, record, cfg);
        let http = self.http.clone();
        let tx = self.results_tx.clone();
        let incident = id.to_string();
        // Off the loop: a slow or failing receiver delays only its own audit record.
        tokio::spawn(async move {
            let reports = notify::deliver(&http, &targets, &notice).await;
            let _ = tx
                .send(TaskResult::Notified {
                    incident,
                    escalated,
                    reports,
                })
                .await;
        });
    }

    /// A finished delivery round: the escalation's record first (when it was one), then one
    /// `Notified` per delivery.
    pub(crate) fn on_notified(
        &mut self,
        incident: String,
        escalated: Option<String>,
        reports: Vec<DeliveryReport>,
    ) -> Result<(), AgentError> {
        for r in reports.iter().filter(|r| !r.delivered) {
            tracing::warn!(
                incident = %incident,
                target = %r.target,
                kind = r.kind.as_str(),
                attempts = r.attempts,
                "notification not delivered: {}",
                r.status
            );
        }
        if let Some(reason) = escalated {
            let mut delivered_to = vec!["stderr".to_string()];
            delivered_to.extend(reports.iter().filter(|r| r.delivered).map(|r| r.name()));
            self.audit(AuditEvent::Escalated {
                incident: incident.clone(),
                reason,
                delivered_to,
            })?;
        }
        for r in reports {
            self.audit(AuditEvent::Notified {
                incident: incident.clone(),
                target: r.target,
                kind: r.kind.as_str().to_string(),
                notice: r.event.to_string(),
                attempts: r.attempts,
                delivered: r.delivered,
                status: r.status,
            })?;
        }
        Ok(())
    }
}

/// Targets that were sent an opening notice for the incident (delivered or not: a
/// follow-up to a receiver that missed the opening is harmless, one withheld from a
/// receiver that got it leaves an alert open).
fn heard_of(audit: &[AuditRecord]) -> BTreeSet<String> {
    audit
        .iter()
        .filter(|r| r.kind == "notified")
        .filter_map(|r| serde_json::from_str::<AuditEvent>(&r.payload).ok())
        .filter_map(|e| match e {
            AuditEvent::Notified { target, notice, .. }
                if notice == Event::ApprovalRequested.as_str()
                    || notice == Event::Escalated.as_str() =>
            {
                Some(target)
            }
            _ => None,
        })
        .collect()
}
