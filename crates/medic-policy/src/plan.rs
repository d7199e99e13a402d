//! From diagnosis to plan: the first policy that covers the top hypothesis decides what to do.

use crate::glob::glob_matches;
use medic_config::{Policy, ResourceParams, ScaleParams};
use medic_core::{Action, ActionKind, Diagnosis, Incident, Plan, WorkloadRef};

/// What the actuator reported about the target right before planning.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The typed object the target resolved to, if an actuator knows it.
    pub workload: Option<WorkloadRef>,
    pub replicas: Option<u32>,
    /// The memory limit of the container a `set_resources` policy would raise.
    pub memory_limit_bytes: Option<u64>,
    /// The target workload's labels, where the platform has them (a policy's `match.labels`
    /// needs them).
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

/// Why no plan could be made, in words for the audit log and the escalation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct NoPlan {
    pub reason: String,
}

impl NoPlan {
    fn new(reason: impl Into<String>) -> NoPlan {
        NoPlan {
            reason: reason.into(),
        }
    }
}

/// First policy (in order) whose causes include the top hypothesis' cause and whose service
/// globs match its target; builds the plan (verification symptoms = the incident's symptoms;
/// scale replicas = clamp(ceil(current × factor), min, max), only if more than current).
pub fn plan(
    incident: &Incident,
    diagnosis: &Diagnosis,
    policies: &[Policy],
    current_replicas: Option<u32>,
) -> Result<Plan, NoPlan> {
    let observed = Observed {
        replicas: current_replicas,
        ..Observed::default()
    };
    plan_observed(incident, diagnosis, policies, &observed)
}

/// Policies that cover the top hypothesis form a ladder, in the order written: the first
/// whose attempts in this incident are not used up makes the plan (restart first, then raise
/// the memory limit). When every rung is used up, the last one is planned and the
/// `max_attempts` guard says no.
pub fn plan_observed(
    incident: &Incident,
    diagnosis: &Diagnosis,
    policies: &[Policy],
    observed: &Observed,
) -> Result<Plan, NoPlan> {
    let current_replicas = observed.replicas;
    let top = diagnosis
        .top()
        .ok_or_else(|| NoPlan::new("the diagnosis has no hypotheses"))?;
    let matching: Vec<&Policy> = policies
        .iter()
        .filter(|p| covers(p, incident, top.cause, &top.target, observed))
        .collect();
    let policy = matching
        .iter()
        .find(|p| attempts_of(incident, &p.name) < p.max_attempts)
        .or(matching.last())
        .ok_or_else(|| {
            NoPlan::new(format!(
                "no policy matches cause {} on {}",
                top.cause, top.target
            ))
        })?;
    let replicas = match policy.action {
        ActionKind::ScaleWorkload => Some(scale_target(
            &policy.name,
            &top.target,
            &policy.scale,
            current_replicas,
        )?),
        _ => None,
    };
    let memory_limit_bytes = match policy.action {
        ActionKind::SetResources => Some(memory_target(
            &policy.name,
            &top.target,
            &policy.resources,
            observed.memory_limit_bytes,
        )?),
        _ => None,
    };
    let workload = observed.workload.clone().map(|mut w| {
        if policy.action == ActionKind::SetResources {
            w.container = policy.resources.container.clone().or(w.container);
        }
        w
    });
    Ok(Plan {
        policy: policy.name.clone(),
        cause: top.cause,
        action: Action {
            kind: policy.action,
            target: top.target.clone(),
            replicas,
            workload,
            memory_limit_bytes,
        },
        mode: policy.mode,
        confidence: top.confidence,
        confidence_threshold: policy.confidence_threshold,
        max_attempts: policy.max_attempts,
        cooldown_s: policy.cooldown.as_secs_f64(),
        verification_window_s: policy.verification_window.as_secs_f64(),
        verify: incident.symptoms(),
        rollback_if_failed: policy.rollback_if_failed,
        previous_replicas: replicas.and(current_replicas),
        escalation: policy.escalation.clone(),
        only_hinted_by: top.only_hinted_by.clone(),
        trust_hints_from: policy.trust_alert_hints_from.clone(),
        guardrails: policy.guardrails.clone(),
        approval: policy.approval.clone(),
        auto_override: policy.auto_override.clone(),
        target_labels: observed.labels.clone().unwrap_or_default(),
        mode_reason: None,
    })
}

/// Attempts a policy made in this incident.
pub fn attempts_of(incident: &Incident, policy: &str) -> u32 {
    incident
        .executions
        .iter()
        .filter(|e| e.policy == policy)
        .count() as u32
}

/// Whether a policy covering the top hypothesis still has attempts left in this incident
/// (the same one again, or the next rung of the ladder).
pub fn attempts_left(
    incident: &Incident,
    diagnosis: &Diagnosis,
    policies: &[Policy],
    observed: &Observed,
) -> bool {
    let Some(top) = diagnosis.top() else {
        return false;
    };
    policies.iter().any(|p| {
        covers(p, incident, top.cause, &top.target, observed)
            && attempts_of(incident, &p.name) < p.max_attempts
    })
}

/// Whether a policy's `match` covers this incident: its cause, the target's name, labels
/// and namespace, and (when given) a finding summary matching its regex. A selector on
/// labels or namespace never matches a target whose labels or namespace are unknown.
pub fn covers(
    policy: &Policy,
    incident: &Incident,
    cause: medic_core::Cause,
    target: &str,
    observed: &Observed,
) -> bool {
    let namespace = observed
        .workload
        .as_ref()
        .and_then(|w| w.namespace.as_deref());
    policy.causes.contains(&cause)
        && covers_service(policy, target)
        && (policy.namespaces.is_empty()
            || namespace.is_some_and(|ns| policy.namespaces.iter().any(|n| n == ns)))
        && (policy.labels.is_empty()
            || observed.labels.as_ref().is_some_and(|have| {
                policy
                    .labels
                    .iter()
                    .all(|(k, v)| have.get(k).is_some_and(|h| h == v))
            }))
        && policy
            .summary
            .as_ref()
            .is_none_or(|re| incident.findings.iter().any(|f| re.0.is_match(&f.summary)))
}

/// The memory limit to raise to: above `current`, at most the policy's bound, or no plan.
fn memory_target(
    policy: &str,
    service: &str,
    resources: &ResourceParams,
    current: Option<u64>,
) -> Result<u64, NoPlan> {
    use medic_core::quantity::format_bytes;
    let current = current.ok_or_else(|| {
        NoPlan::new(format!(
            "policy {policy} raises the memory limit of {service}, but its current limit is unknown (none set, or no actuator knows it)"
        ))
    })?;
    let raised = (current as f64 * resources.memory_factor).ceil();
    // Round up to a whole MiB: limits people read are in Mi.
    let mib = (1u64 << 20) as f64;
    let raised = ((raised / mib).ceil() * mib).min(resources.max_memory_bytes as f64) as u64;
    if raised > current {
        Ok(raised)
    } else {
        Err(NoPlan::new(format!(
            "the memory limit of {service} is {} and policy {policy} allows at most {}: raising it is not allowed",
            format_bytes(current),
            format_bytes(resources.max_memory_bytes)
        )))
    }
}

fn covers_service(policy: &Policy, service: &str) -> bool {
    policy.services.is_empty() || policy.services.iter().any(|g| glob_matches(g, service))
}

/// The replica count to scale to: more than `current`, or no plan.
fn scale_target(
    policy: &str,
    service: &str,
    scale: &ScaleParams,
    current: Option<u32>,
) -> Result<u32, NoPlan> {
    let current = current.ok_or_else(|| {
        NoPlan::new(format!(
            "policy {policy} scales {service}, but its current replica count is unknown"
        ))
    })?;
    if scale.min_replicas > scale.max_replicas {
        return Err(NoPlan::new(format!(
            "policy {policy}: min_replicas {} is above max_replicas {}",
            scale.min_replicas, scale.max_replicas
        )));
    }
    if !(scale.factor.is_finite() && scale.factor > 0.0) {
        return Err(NoPlan::new(format!(
            "policy {policy}: scale factor {} is not a positive number",
            scale.factor
        )));
    }
    let scaled = (f64::from(current) * scale.factor).ceil();
    // Clamp in f64 first: the product can exceed u32::MAX.
    let desired = scaled
        .max(f64::from(scale.min_replicas))
        .min(f64::from(scale.max_replicas)) as u32;
    if desired > current {
        Ok(desired)
    } else if current >= scale.max_replicas {
        Err(NoPlan::new(format!(
            "{service} is already at max replicas {} ({current} running)",
            scale.max_replicas
        )))
    } else {
        Err(NoPlan::new(format!(
            "scaling {service} from {current} by factor {} gives {desired}, no more than now",
            scale.factor
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_core::{Cause, Finding, FindingKind, Hypothesis, Mode, Symptom, Ts};
    use std::time::Duration;

    fn finding(service: &str, kind: FindingKind, ts: i64) -> Finding {
        Finding {
            id: format!("{service}-{ts}"),
            ts: Ts(ts),
            service: service.into(),
            instance: None,
            kind,
            detector: "d".into(),
            score: 1.0,
            summary: String::new(),
            evidence: vec![],
        }
    }

    fn incident() -> Incident {
        let mut i = Incident::new("i1".into(), finding("frontend", FindingKind::ErrorRate, 1));
        i.add_finding(finding("catalog", FindingKind::Latency, 2));
        i.add_finding(finding("frontend", FindingKind::ErrorRate, 3));
        i
    }

    fn diagnosis(cause: Cause, target: &str, confidence: f64) -> Diagnosis {
        Diagnosis {
            made_at: Ts(10),
            hypotheses: vec![
                Hypothesis {
                    cause,
                    target: target.into(),
                    confidence,
                    rationale: String::new(),
                    evidence: vec![],
                    only_hinted_by: None,
                },
                Hypothesis {
                    cause: Cause::Unknown,
                    target: "frontend".into(),
                    confidence: 0.1,
                    rationale: String::new(),
                    evidence: vec![],
                    only_hinted_by: None,
                },
            ],
            engine: "rules".into(),
        }
    }

    fn policy(name: &str, causes: &[Cause], services: &[&str], action: ActionKind) -> Policy {
        Policy {
            name: name.into(),
            causes: causes.to_vec(),
            services: services.iter().map(|s| s.to_string()).collect(),
            action,
            mode: Mode::Auto,
            cooldown: Duration::from_secs(120),
            verification_window: Duration::from_secs(30),
            max_attempts: 2,
            ..Policy::default()
        }
    }

    #[test]
    fn first_matching_policy_builds_the_plan() {
        let policies = [
            policy(
                "leak-cache",
                &[Cause::MemoryLeak],
                &["cache"],
                ActionKind::RestartWorkload,
            ),
            policy(
                "bad-deploy",
                &[Cause::BadDeployment],
                &[],
                ActionKind::RollbackRelease,
            ),
            policy(
                "leak-any",
                &[Cause::MemoryLeak, Cause::Unknown],
                &["cat*"],
                ActionKind::RestartWorkload,
            ),
            policy(
                "leak-catalog-2",
                &[Cause::MemoryLeak],
                &["catalog"],
                ActionKind::NoAction,
            ),
        ];
        let plan = plan(
            &incident(),
            &diagnosis(Cause::MemoryLeak, "catalog", 0.9),
            &policies,
            None,
        )
        .unwrap();
        assert_eq!(plan.policy, "leak-any");
        assert_eq!(plan.cause, Cause::MemoryLeak);
        assert_eq!(
            plan.action,
            Action {
                kind: ActionKind::RestartWorkload,
                target: "catalog".into(),
                replicas: None,
                workload: None,
                memory_limit_bytes: None,
            }
        );
        assert_eq!(plan.mode, Mode::Auto);
        assert_eq!(plan.confidence, 0.9);
        assert_eq!(plan.cooldown_s, 120.0);
        assert_eq!(plan.verification_window_s, 30.0);
        assert_eq!(plan.max_attempts, 2);
        assert_eq!(
            plan.verify,
            vec![
                Symptom {
                    service: "frontend".into(),
                    kind: FindingKind::ErrorRate
                },
                Symptom {
                    service: "catalog".into(),
                    kind: FindingKind::Latency
                },
            ]
        );
    }

    #[test]
    fn no_matching_policy_names_cause_and_target() {
        let policies = [policy(
            "leak-cache",
            &[Cause::MemoryLeak],
            &["cache"],
            ActionKind::RestartWorkload,
        )];
        let err = plan(
            &incident(),
            &diagnosis(Cause::MemoryLeak, "catalog", 0.9),
            &policies,
            None,
        )
        .unwrap_err();
        assert_eq!(err.reason, "no policy matches cause memory_leak on catalog");
        let err = plan(
            &incident(),
            &diagnosis(Cause::LoadSurge, "cache", 0.9),
            &policies,
            None,
        )
        .unwrap_err();
        assert_eq!(err.reason, "no policy matches cause load_surge on cache");
        assert!(
            plan(
                &incident(),
                &diagnosis(Cause::LoadSurge, "cache", 0.9),
                &[],
                None
            )
            .is_err()
        );
    }

    #[test]
    fn empty_diagnosis_is_no_plan() {
        let mut d = diagnosis(Cause::MemoryLeak, "x", 1.0);
        d.hypotheses.clear();
        let policies = [policy(
            "p",
            &[Cause::MemoryLeak],
            &[],
            ActionKind::RestartWorkload,
        )];
        assert!(
            plan(&incident(), &d, &policies, None)
                .unwrap_err()
                .reason
                .contains("no hypotheses")
        );
    }

    fn scaling(factor: f64, min: u32, max: u32) -> Policy {
        let mut p = policy("surge", &[Cause::LoadSurge], &[], ActionKind::ScaleWorkload);
        p.scale = ScaleParams {
            factor,
            min_replicas: min,
            max_replicas: max,
        };
        p
    }

    fn scale_to(p: &Policy, current: Option<u32>) -> Result<Option<u32>, NoPlan> {
        plan(
            &incident(),
            &diagnosis(Cause::LoadSurge, "checkout", 0.9),
            std::slice::from_ref(p),
            current,
        )
        .map(|plan| plan.action.replicas)
    }

    #[test]
    fn scale_is_ceil_of_factor_clamped() {
        assert_eq!(scale_to(&scaling(2.0, 1, 8), Some(2)), Ok(Some(4)));
        assert_eq!(scale_to(&scaling(1.5, 1, 8), Some(3)), Ok(Some(5)));
        assert_eq!(scale_to(&scaling(2.0, 1, 6), Some(4)), Ok(Some(6)));
        assert_eq!(scale_to(&scaling(1.1, 4, 8), Some(1)), Ok(Some(4)));
        assert_eq!(scale_to(&scaling(1e300, 1, 16), Some(1)), Ok(Some(16)));
        assert_eq!(
            scale_to(&scaling(2.0, 1, u32::MAX), Some(u32::MAX / 2 + 1)),
            Ok(Some(u32::MAX))
        );
    }

    #[test]
    fn scale_without_growth_is_no_plan() {
        let err = scale_to(&scaling(2.0, 1, 6), Some(6)).unwrap_err();
        assert_eq!(
            err.reason,
            "checkout is already at max replicas 6 (6 running)"
        );
        assert!(
            scale_to(&scaling(2.0, 1, 6), Some(9))
                .unwrap_err()
                .reason
                .contains("max replicas 6")
        );
        assert!(
            scale_to(&scaling(0.5, 1, 6), Some(3))
                .unwrap_err()
                .reason
                .contains("gives 2")
        );
        assert!(
            scale_to(&scaling(2.0, 1, 6), None)
                .unwrap_err()
                .reason
                .contains("unknown")
        );
    }

    #[test]
    fn hostile_scale_params_are_no_plan_not_panic() {
        for factor in [f64::NAN, f64::INFINITY, -1.0, 0.0] {
            let err = scale_to(&scaling(factor, 1, 6), Some(2)).unwrap_err();
            assert!(err.reason.contains("factor"), "{factor}: {}", err.reason);
        }
        let err = scale_to(&scaling(2.0, 9, 3), Some(2)).unwrap_err();
        assert!(err.reason.contains("min_replicas 9"), "{}", err.reason);
    }

    #[test]
    fn replicas_only_for_scale() {
        let p = policy("r", &[Cause::LoadSurge], &[], ActionKind::RestartWorkload);
        assert_eq!(scale_to(&p, Some(3)), Ok(None));
    }
}
