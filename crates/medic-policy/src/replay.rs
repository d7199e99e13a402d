//! Policy replay: a recorded incident's diagnosis put through a candidate policy set and the
//! guards, as of the moment it was decided, with the executions recorded before that moment
//! as history. Pure: nothing is touched, so people can try a stricter set on last month.

use crate::{History, NoPlan, Observed, decide, plan_observed};
use medic_config::{GuardsConfig, Policy};
use medic_core::{Decision, Execution, Incident, Plan, Ts};
use serde::Serialize;

/// What a policy set did or would do with one incident.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// `execute`, `needs_approval`, `recommend`, `shadow`, `deny` or `no_plan`.
    pub decision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Why: the guard's reason, the mode's, or why no policy applied.
    pub why: String,
}

impl Verdict {
    /// The verdict a plan and its decision amount to.
    pub fn of(plan: &Plan, decision: &Decision) -> Verdict {
        let (word, why) = match decision {
            Decision::Execute => ("execute", format!("mode {}", plan.mode.as_str())),
            Decision::NeedsApproval => (
                "needs_approval",
                format!("mode {}: a person decides", plan.mode.as_str()),
            ),
            Decision::Recommend => ("recommend", recommend_reason(plan)),
            Decision::Shadow => ("shadow", "mode shadow: recorded only".to_string()),
            Decision::Denied(reason) => ("deny", reason.clone()),
        };
        Verdict {
            decision: word.to_string(),
            policy: Some(plan.policy.clone()),
            action: Some(plan.action.to_string()),
            why,
        }
    }

    fn no_plan(no: &NoPlan) -> Verdict {
        Verdict {
            decision: "no_plan".into(),
            policy: None,
            action: None,
            why: no.reason.clone(),
        }
    }

    /// Same decision, policy and action (the wording of reasons may differ).
    pub fn same_as(&self, other: &Verdict) -> bool {
        self.decision == other.decision
            && self.policy == other.policy
            && self.action == other.action
    }
}

fn recommend_reason(plan: &Plan) -> String {
    for v in [
        crate::guards::confidence(plan),
        crate::guards::corroboration(plan),
        crate::guards::never_auto(plan),
    ] {
        if let crate::Verdict::Deny(reason) = v {
            return reason;
        }
    }
    format!("mode {}", plan.mode.as_str())
}

/// What was recorded for the incident when the audit does not say: its last plan and
/// decision.
pub fn recorded(incident: &Incident) -> Verdict {
    match (&incident.plan, &incident.decision) {
        (Some(plan), Some(decision)) => Verdict::of(plan, decision),
        _ => Verdict {
            decision: "no_plan".into(),
            policy: None,
            action: None,
            why: incident
                .closing_reason
                .clone()
                .unwrap_or_else(|| "no plan was recorded".into()),
        },
    }
}

/// The candidate's verdict on `incident` at `decided_at`. `executions` are every recorded
/// execution (of any incident); only those started in the hour before `decided_at` count.
/// The target is observed as the recorded plan saw it (its workload and replicas). A
/// policy with earned autonomy acts at the mode its record in `earlier` incidents earns.
pub fn replay(
    incident: &Incident,
    decided_at: Ts,
    policies: &[Policy],
    guards: &GuardsConfig,
    executions: &[Execution],
    earlier: &[Incident],
) -> Verdict {
    let Some(diagnosis) = &incident.diagnosis else {
        return Verdict {
            decision: "no_plan".into(),
            policy: None,
            action: None,
            why: "the incident was never diagnosed".into(),
        };
    };
    // The first decision: none of this incident's own attempts had happened yet.
    let mut at_decision = incident.clone();
    at_decision.executions.clear();
    let recorded_plan = incident.plan.as_ref();
    let observed = Observed {
        workload: recorded_plan.and_then(|p| p.action.workload.clone()),
        replicas: recorded_plan.and_then(|p| p.previous_replicas),
        memory_limit_bytes: None,
        labels: recorded_plan.map(|p| p.target_labels.clone()),
    };
    let mut plan = match plan_observed(&at_decision, diagnosis, policies, &observed) {
        Ok(p) => p,
        Err(no) => return Verdict::no_plan(&no),
    };
    if let Some(policy) = policies.iter().find(|p| p.name == plan.policy)
        && policy.autonomy.is_some()
    {
        let record = crate::autonomy::record_of(
            earlier,
            &plan.policy,
            plan.cause,
            plan.action.kind,
            &plan.action.target,
        );
        plan.mode = crate::autonomy::effective_mode(policy, &record).0;
    }
    let history = History {
        executions: executions
            .iter()
            .filter(|e| e.started < decided_at && e.started.0 > decided_at.0 - 3_600_000)
            .cloned()
            .collect(),
        incident: incident.id.clone(),
        ..History::default()
    };
    Verdict::of(&plan, &decide(&plan, &history, guards, false, decided_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_core::{
        Action, ActionKind, Cause, Diagnosis, ExecutionStatus, Finding, FindingKind, Hypothesis,
        Mode,
    };

    const T0: Ts = Ts(1_784_124_000_000);

    fn incident() -> Incident {
        let mut i = Incident::new(
            "i1".into(),
            Finding {
                id: "f".into(),
                ts: T0,
                service: "cache".into(),
                instance: None,
                kind: FindingKind::ProcessExit,
                detector: "process".into(),
                score: 1.0,
                summary: "cache exited".into(),
                evidence: vec![],
            },
        );
        i.diagnosis = Some(Diagnosis {
            made_at: T0,
            hypotheses: vec![Hypothesis {
                cause: Cause::DependencyFailure,
                target: "cache".into(),
                confidence: 0.8,
                rationale: "r".into(),
                evidence: vec![],
                only_hinted_by: None,
            }],
            engine: "test".into(),
        });
        let plan = Plan {
            mode: Mode::Auto,
            confidence: 0.8,
            ..Plan::new(
                "restart",
                Cause::DependencyFailure,
                Action::new(ActionKind::RestartWorkload, "cache"),
            )
        };
        i.plan = Some(plan);
        i.decision = Some(Decision::Execute);
        i
    }

    fn policy(extra: impl FnOnce(&mut Policy)) -> Vec<Policy> {
        let mut p = Policy {
            name: "restart".into(),
            causes: vec![Cause::DependencyFailure],
            action: ActionKind::RestartWorkload,
            mode: Mode::Auto,
            confidence_threshold: 0.6,
            ..Policy::default()
        };
        extra(&mut p);
        vec![p]
    }

    #[test]
    fn the_same_set_decides_the_same() {
        let inc = incident();
        let v = replay(
            &inc,
            T0,
            &policy(|_| {}),
            &GuardsConfig::default(),
            &[],
            &[],
        );
        assert!(v.same_as(&recorded(&inc)), "{v:?}");
        assert_eq!(v.decision, "execute");
    }

    #[test]
    fn a_stricter_set_shows_why_it_differs() {
        let inc = incident();
        let guards = GuardsConfig::default();
        let strict = policy(|p| p.confidence_threshold = 0.9);
        let v = replay(&inc, T0, &strict, &guards, &[], &[]);
        assert_eq!(v.decision, "recommend");
        assert!(v.why.starts_with("confidence:"), "{}", v.why);
        assert!(!v.same_as(&recorded(&inc)));
        let none = policy(|p| p.causes = vec![Cause::MemoryLeak]);
        let v = replay(&inc, T0, &none, &guards, &[], &[]);
        assert_eq!(v.decision, "no_plan");
    }

    #[test]
    fn history_before_the_decision_counts_and_after_does_not() {
        let inc = incident();
        let guards = GuardsConfig {
            max_actions_per_target_per_hour: 1,
            ..GuardsConfig::default()
        };
        let exec = |at: Ts| Execution {
            idempotency_key: format!("k{}", at.0),
            incident: "other".into(),
            attempt: 1,
            policy: "other".into(),
            action: Action::new(ActionKind::RestartWorkload, "cache"),
            started: at,
            finished: None,
            status: ExecutionStatus::Succeeded,
            detail: String::new(),
        };
        let before = [exec(T0.plus_secs(-600.0))];
        let v = replay(&inc, T0, &policy(|_| {}), &guards, &before, &[]);
        assert!(v.why.starts_with("loop_breaker:"), "{v:?}");
        let after = [exec(T0.plus_secs(600.0))];
        let v = replay(&inc, T0, &policy(|_| {}), &guards, &after, &[]);
        assert_eq!(v.decision, "execute");
    }
}
