//! Property: executing whatever `decide` allows, for any sequence of plans and times, never
//! exceeds the configured limits.

use medic_config::GuardsConfig;
use medic_core::{Action, ActionKind, Cause, Decision, Execution, ExecutionStatus, Mode, Plan, Ts};
use medic_policy::{History, decide};
use proptest::prelude::*;
use std::collections::BTreeSet;

const HOUR_MS: i64 = 3_600_000;
const TARGETS: [&str; 5] = ["frontend", "catalog", "cache", "checkout", "payment"];
/// Each policy has one action kind and its own cooldown (seconds), as in real config.
const POLICIES: [(&str, ActionKind, f64); 4] = [
    ("restart", ActionKind::RestartWorkload, 120.0),
    ("restart-fast", ActionKind::RestartWorkload, 5.0),
    ("scale", ActionKind::ScaleWorkload, 600.0),
    ("rollback", ActionKind::RollbackRelease, 0.0),
];
/// Each policy's own limits: executions per hour and targets per hour.
const POLICY_LIMITS: [(Option<u32>, Option<u32>); 4] = [
    (Some(4), None),
    (None, Some(2)),
    (Some(2), Some(1)),
    (None, None),
];

#[derive(Clone, Debug)]
struct Step {
    advance_ms: i64,
    policy: usize,
    target: usize,
    mode: Mode,
    duration_ms: i64,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![Just(0i64), 0i64..5_000, 0i64..900_000],
        0..POLICIES.len(),
        0..TARGETS.len(),
        prop_oneof![Just(Mode::Auto), Just(Mode::Approve), Just(Mode::Shadow)],
        0i64..300_000,
    )
        .prop_map(|(advance_ms, policy, target, mode, duration_ms)| Step {
            advance_ms,
            policy,
            target,
            mode,
            duration_ms,
        })
}

fn config() -> impl Strategy<Value = GuardsConfig> {
    (1u32..30, 1u32..6, 1u32..6, 1u32..4).prop_map(
        |(per_hour, services, per_target, concurrent)| GuardsConfig {
            max_actions_per_hour: per_hour,
            max_services_per_hour: services,
            max_actions_per_target_per_hour: per_target,
            max_concurrent_actions: concurrent,
            ..GuardsConfig::default()
        },
    )
}

struct Executed {
    policy: usize,
    target: &'static str,
    start: i64,
    end: i64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn allowed_actions_never_exceed_limits(config in config(), steps in prop::collection::vec(step(), 1..150)) {
        let mut now = 1_700_000_000_000i64;
        let mut executed: Vec<Executed> = Vec::new();
        let mut history = History::default();
        for s in &steps {
            now += s.advance_ms;
            let (name, kind, cooldown_s) = POLICIES[s.policy];
            let target = TARGETS[s.target];
            let plan = Plan {
                mode: s.mode,
                confidence: 1.0,
                confidence_threshold: 0.5,
                max_attempts: 100,
                cooldown_s,
                guardrails: medic_core::Guardrails {
                    blocked_windows: vec![],
                    max_executions_per_hour: POLICY_LIMITS[s.policy].0,
                    max_targets_per_hour: POLICY_LIMITS[s.policy].1,
                },
                ..Plan::new(name, Cause::Unknown, Action::new(kind, target))
            };
            history.in_flight = executed.iter().filter(|e| e.start <= now && now < e.end).count() as u32;
            history.in_flight_targets = executed
                .iter()
                .filter(|e| e.start <= now && now < e.end)
                .map(|e| e.target.to_string())
                .collect();
            let decision = decide(&plan, &history, &config, false, Ts(now));
            // Approval is granted at once: the worst case for the limits.
            if matches!(decision, Decision::Execute | Decision::NeedsApproval) {
                history.executions.push(Execution {
                    idempotency_key: format!("k{}", executed.len()),
                    incident: "i".into(),
                    attempt: 1,
                    policy: plan.policy.clone(),
                    action: plan.action.clone(),
                    started: Ts(now),
                    finished: None,
                    status: ExecutionStatus::Succeeded,
                    detail: String::new(),
                });
                executed.push(Executed { policy: s.policy, target, start: now, end: now + s.duration_ms });
            }
        }
        for e in &executed {
            let window: Vec<&Executed> = executed
                .iter()
                .filter(|o| o.start > e.start - HOUR_MS && o.start <= e.start)
                .collect();
            prop_assert!(window.len() <= config.max_actions_per_hour as usize);
            let on_target = window.iter().filter(|o| o.target == e.target).count();
            prop_assert!(on_target <= config.max_actions_per_target_per_hour as usize);
            let services: BTreeSet<&str> = window.iter().map(|o| o.target).collect();
            prop_assert!(services.len() <= config.max_services_per_hour as usize);
            let overlapping = executed.iter().filter(|o| o.start <= e.start && e.start < o.end).count();
            prop_assert!(overlapping <= config.max_concurrent_actions as usize, "{overlapping} in flight");
            let same_target = executed
                .iter()
                .filter(|o| o.target == e.target && o.start <= e.start && e.start < o.end)
                .count();
            prop_assert!(same_target <= 1, "two actions in flight on {}", e.target);
            let (per_hour, targets) = POLICY_LIMITS[e.policy];
            let mine: Vec<&&Executed> = window.iter().filter(|o| o.policy == e.policy).collect();
            if let Some(limit) = per_hour {
                prop_assert!(mine.len() <= limit as usize, "policy limit broken");
            }
            if let Some(limit) = targets {
                let t: BTreeSet<&str> = mine.iter().map(|o| o.target).collect();
                prop_assert!(t.len() <= limit as usize, "policy target limit broken");
            }
        }
        for (i, a) in executed.iter().enumerate() {
            for b in &executed[i + 1..] {
                if a.policy == b.policy && a.target == b.target {
                    let gap_s = (b.start - a.start) as f64 / 1000.0;
                    prop_assert!(gap_s >= POLICIES[a.policy].2, "cooldown broken: {gap_s}s");
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Retry {
    advance_ms: i64,
    /// A new incident for the target (the service broke again) or a retry in the current one.
    new_incident: bool,
    target: usize,
}

fn retry() -> impl Strategy<Value = Retry> {
    (0i64..400_000, any::<bool>(), 0..2usize).prop_map(|(advance_ms, new_incident, target)| Retry {
        advance_ms,
        new_incident,
        target,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Retries inside an incident and new incidents for the same target, in any order:
    /// no incident gets more than `max_attempts`, and actions of different incidents on
    /// one target are at least the cooldown apart.
    #[test]
    fn attempt_cap_and_cooldown_both_bind(max_attempts in 1u32..4, cooldown_s in 1.0f64..900.0, steps in prop::collection::vec(retry(), 1..80)) {
        let config = GuardsConfig { max_actions_per_target_per_hour: 1000, max_actions_per_hour: 1000, max_services_per_hour: 10, ..GuardsConfig::default() };
        let mut now = 1_700_000_000_000i64;
        let mut incident = [0u32; 2];
        let mut history = History::default();
        let mut done: Vec<(usize, u32, i64)> = Vec::new(); // (target, incident, start)
        for s in &steps {
            now += s.advance_ms;
            if s.new_incident {
                incident[s.target] += 1;
            }
            let id = format!("{}-{}", s.target, incident[s.target]);
            let plan = Plan {
                mode: Mode::Auto,
                confidence: 1.0,
                confidence_threshold: 0.5,
                max_attempts,
                cooldown_s,
                ..Plan::new(
                    "restart",
                    Cause::MemoryLeak,
                    Action::new(ActionKind::RestartWorkload, TARGETS[s.target]),
                )
            };
            history.incident = id.clone();
            history.attempts_this_incident = history.executions.iter().filter(|e| e.incident == id).count() as u32;
            history.in_flight = 0;
            if decide(&plan, &history, &config, false, Ts(now)) == Decision::Execute {
                history.executions.push(Execution {
                    idempotency_key: format!("k{}", history.executions.len()),
                    incident: id,
                    attempt: history.attempts_this_incident + 1,
                    policy: plan.policy.clone(),
                    action: plan.action.clone(),
                    started: Ts(now),
                    finished: None,
                    status: ExecutionStatus::Succeeded,
                    detail: String::new(),
                });
                done.push((s.target, incident[s.target], now));
            }
        }
        for (t, last) in incident.iter().enumerate() {
            for i in 0..=*last {
                let n = done.iter().filter(|d| d.0 == t && d.1 == i).count();
                prop_assert!(n <= max_attempts as usize, "{n} attempts, cap {max_attempts}");
            }
            let mine: Vec<&(usize, u32, i64)> = done.iter().filter(|d| d.0 == t).collect();
            for (a, b) in mine.iter().zip(mine.iter().skip(1)) {
                if a.1 != b.1 {
                    let gap_s = (b.2 - a.2) as f64 / 1000.0;
                    prop_assert!(gap_s >= cooldown_s, "cooldown broken across incidents: {gap_s}s < {cooldown_s}s");
                }
            }
        }
    }
}
