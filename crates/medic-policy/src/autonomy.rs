//! Earned autonomy: a policy written with `autonomy: { start, promote_after }` acts at its
//! `start` mode until its record for one cause × action × target shows `promote_after`
//! verified successes in a row, then at its own mode. One verified failure puts it back.
//! The record is read from the stored incidents, so it survives restarts and cannot drift
//! from what happened.

use medic_config::Policy;
use medic_core::{ActionKind, Cause, ExecutionStatus, Incident, Mode, Outcome};
use serde::Serialize;

/// What a policy achieved for one cause × action × target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Incidents where the policy's action ran and verification gave a verdict.
    pub executions: u32,
    pub healed: u32,
    pub not_healed: u32,
    /// Verified successes since the last failure.
    pub streak: u32,
}

/// The key a record is kept under.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RecordKey {
    pub policy: String,
    pub cause: Cause,
    pub action: ActionKind,
    pub target: String,
}

/// The record of `policy` for `cause` × `action` × `target`, from incidents in any order.
pub fn record_of(
    incidents: &[Incident],
    policy: &str,
    cause: Cause,
    action: ActionKind,
    target: &str,
) -> Record {
    let key = RecordKey {
        policy: policy.to_string(),
        cause,
        action,
        target: target.to_string(),
    };
    records(incidents)
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, r)| r)
        .unwrap_or_default()
}

/// Every record, one per cause × action × target a policy acted on.
pub fn records(incidents: &[Incident]) -> Vec<(RecordKey, Record)> {
    let mut acted: Vec<&Incident> = incidents
        .iter()
        .filter(|i| {
            i.executions
                .iter()
                .any(|e| e.status == ExecutionStatus::Succeeded)
        })
        .filter(|i| i.plan.is_some() && i.outcome.is_some())
        .collect();
    acted.sort_by_key(|i| (i.opened, i.id.clone()));
    let mut out: Vec<(RecordKey, Record)> = Vec::new();
    for inc in acted {
        let (Some(plan), Some(outcome)) = (&inc.plan, &inc.outcome) else {
            continue;
        };
        let key = RecordKey {
            policy: plan.policy.clone(),
            cause: plan.cause,
            action: plan.action.kind,
            target: plan.action.target.clone(),
        };
        let at = match out.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                out.push((key, Record::default()));
                out.len() - 1
            }
        };
        let r = &mut out[at].1;
        r.executions += 1;
        if matches!(outcome, Outcome::Healed { .. }) {
            r.healed += 1;
            r.streak += 1;
        } else if matches!(outcome, Outcome::NotHealed { .. }) {
            r.not_healed += 1;
            r.streak = 0;
        }
        // Any other verdict (inconclusive) neither earns nor costs.
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The mode a policy acts at given its record, and why, in words for the audit and
/// `medic policies`.
pub fn effective_mode(policy: &Policy, record: &Record) -> (Mode, String) {
    let Some(a) = &policy.autonomy else {
        return (
            policy.mode,
            format!("mode {} as written", policy.mode.as_str()),
        );
    };
    if record.streak >= a.promote_after {
        (
            policy.mode,
            format!(
                "promoted to {}: {} verified successes in a row (needs {})",
                policy.mode.as_str(),
                record.streak,
                a.promote_after
            ),
        )
    } else if record.not_healed > 0 && record.streak == 0 {
        (
            a.start,
            format!(
                "demoted to {}: the last verified outcome was a failure; {} successes in a row needed for {}",
                a.start.as_str(),
                a.promote_after,
                policy.mode.as_str()
            ),
        )
    } else {
        (
            a.start,
            format!(
                "{} until earned: {} of {} verified successes in a row for {}",
                a.start.as_str(),
                record.streak,
                a.promote_after,
                policy.mode.as_str()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_config::Autonomy;
    use medic_core::{Action, Execution, IncidentState, Plan, Ts};

    fn incident(n: i64, target: &str, healed: Option<bool>) -> Incident {
        let action = Action::new(ActionKind::RestartWorkload, target);
        let mut i = Incident {
            id: format!("i{n}"),
            opened: Ts(n * 1000),
            updated: Ts(n * 1000),
            state: IncidentState::Closed,
            services: Default::default(),
            findings: vec![],
            diagnosis: None,
            plan: None,
            decision: None,
            executions: vec![],
            verify_started: None,
            outcome: None,
            closing_reason: None,
        };
        i.plan = Some(Plan {
            mode: Mode::Approve,
            ..Plan::new("restart", Cause::MemoryLeak, action.clone())
        });
        i.executions.push(Execution {
            idempotency_key: format!("k{n}"),
            incident: i.id.clone(),
            attempt: 1,
            policy: "restart".into(),
            action,
            started: Ts(n * 1000),
            finished: Some(Ts(n * 1000 + 10)),
            status: ExecutionStatus::Succeeded,
            detail: String::new(),
        });
        i.outcome = healed.map(|h| {
            if h {
                Outcome::Healed {
                    healthy_since: Ts(n * 1000),
                    verified_at: Ts(n * 1000),
                }
            } else {
                Outcome::NotHealed {
                    reason: "still anomalous".into(),
                }
            }
        });
        i
    }

    fn policy() -> Policy {
        Policy {
            name: "restart".into(),
            mode: Mode::Auto,
            autonomy: Some(Autonomy {
                start: Mode::Approve,
                promote_after: 3,
            }),
            ..Policy::default()
        }
    }

    fn mode_after(outcomes: &[Option<bool>]) -> Mode {
        let incidents: Vec<Incident> = outcomes
            .iter()
            .enumerate()
            .map(|(n, h)| incident(n as i64, "checkout", *h))
            .collect();
        let r = record_of(
            &incidents,
            "restart",
            Cause::MemoryLeak,
            ActionKind::RestartWorkload,
            "checkout",
        );
        effective_mode(&policy(), &r).0
    }

    #[test]
    fn promoted_after_k_successes_in_a_row_and_demoted_after_a_failure() {
        assert_eq!(mode_after(&[]), Mode::Approve);
        assert_eq!(mode_after(&[Some(true), Some(true)]), Mode::Approve);
        assert_eq!(mode_after(&[Some(true); 3]), Mode::Auto);
        assert_eq!(
            mode_after(&[Some(true), Some(true), Some(true), Some(false)]),
            Mode::Approve
        );
        assert_eq!(
            mode_after(&[Some(true), Some(false), Some(true), Some(true)]),
            Mode::Approve
        );
        // Not yet verified: neither earns nor costs.
        assert_eq!(
            mode_after(&[Some(true), Some(true), None, Some(true)]),
            Mode::Auto
        );
    }

    #[test]
    fn records_are_per_cause_action_and_target() {
        let mut incidents: Vec<Incident> = (0..3)
            .map(|n| incident(n, "checkout", Some(true)))
            .collect();
        incidents.push(incident(9, "payment", Some(false)));
        let r = record_of(
            &incidents,
            "restart",
            Cause::MemoryLeak,
            ActionKind::RestartWorkload,
            "payment",
        );
        assert_eq!(
            (r.executions, r.healed, r.not_healed, r.streak),
            (1, 0, 1, 0)
        );
        let all = records(&incidents);
        assert_eq!(all.len(), 2);
        // The order the store returns incidents in does not matter.
        incidents.reverse();
        assert_eq!(records(&incidents), all);
    }

    #[test]
    fn a_policy_without_autonomy_keeps_its_mode() {
        let p = Policy {
            mode: Mode::Auto,
            ..Policy::default()
        };
        assert_eq!(effective_mode(&p, &Record::default()).0, Mode::Auto);
    }
}
