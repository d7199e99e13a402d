//! Each policy as people need to see it at night: what it does, how boldly, within which
//! limits, and its record per cause × action × target with the mode that record earns.
//! The same report backs `medic policies` and `GET /api/v1/policies`.

use crate::autonomy::{Record, effective_mode, records};
use medic_config::Policy;
use medic_core::Incident;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct PolicyReport {
    pub name: String,
    pub description: String,
    /// `file:line:column` where it is written.
    pub source: String,
    /// `medic.dev/v1` for a RemediationPolicy document; absent for the list form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub causes: Vec<String>,
    pub services: Vec<String>,
    pub action: String,
    pub action_class: String,
    /// The mode as written (the most it may earn, with `autonomy`).
    pub mode: String,
    /// The mode it acts at for a target it has no record for, and why.
    pub mode_now: String,
    pub mode_reason: String,
    /// Set when the action is never-auto and the policy has no override: `auto` acts as
    /// a recommendation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub never_auto: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autonomy: Option<AutonomyReport>,
    pub confidence_threshold: f64,
    pub max_attempts: u32,
    pub cooldown_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<medic_core::ApprovalRule>,
    pub guardrails: medic_core::Guardrails,
    /// Its record, one row per cause × action × target it acted on.
    pub records: Vec<RecordRow>,
    /// Totals over the rows.
    pub executions: u32,
    pub healed: u32,
    pub not_healed: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct AutonomyReport {
    pub start: String,
    pub promote_after: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecordRow {
    pub cause: String,
    pub action: String,
    pub target: String,
    #[serde(flatten)]
    pub record: Record,
    /// The mode this record earns, and why.
    pub mode: String,
    pub why: String,
}

/// One report per policy, in the order they are written.
pub fn policy_reports(policies: &[Policy], incidents: &[Incident]) -> Vec<PolicyReport> {
    let all = records(incidents);
    policies
        .iter()
        .map(|p| {
            let rows: Vec<RecordRow> = all
                .iter()
                .filter(|(k, _)| k.policy == p.name)
                .map(|(k, r)| {
                    let (mode, why) = effective_mode(p, r);
                    RecordRow {
                        cause: k.cause.to_string(),
                        action: k.action.to_string(),
                        target: k.target.clone(),
                        record: r.clone(),
                        mode: mode.as_str().to_string(),
                        why,
                    }
                })
                .collect();
            let (mode_now, mode_reason) = effective_mode(p, &Record::default());
            let class = p.action.class();
            let never_auto = (class.never_auto()
                && p.auto_override.is_none()
                && p.mode == medic_core::Mode::Auto)
                .then(|| {
                    format!(
                        "{} is a {} action: without `auto_override` it is recommended, not run",
                        p.action,
                        class.as_str()
                    )
                });
            PolicyReport {
                name: p.name.clone(),
                description: p.description.clone(),
                source: p.location.to_string(),
                api_version: p.api_version.clone(),
                causes: p.causes.iter().map(|c| c.to_string()).collect(),
                services: p.services.clone(),
                action: p.action.to_string(),
                action_class: class.as_str().to_string(),
                mode: p.mode.as_str().to_string(),
                mode_now: mode_now.as_str().to_string(),
                mode_reason,
                never_auto,
                autonomy: p.autonomy.as_ref().map(|a| AutonomyReport {
                    start: a.start.as_str().to_string(),
                    promote_after: a.promote_after,
                }),
                confidence_threshold: p.confidence_threshold,
                max_attempts: p.max_attempts,
                cooldown_s: p.cooldown.as_secs_f64(),
                approval: p.approval.clone(),
                guardrails: p.guardrails.clone(),
                executions: rows.iter().map(|r| r.record.executions).sum(),
                healed: rows.iter().map(|r| r.record.healed).sum(),
                not_healed: rows.iter().map(|r| r.record.not_healed).sum(),
                records: rows,
            }
        })
        .collect()
}
