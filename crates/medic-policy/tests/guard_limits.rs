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
                policy: name.into(),
                cause: Cause::Unknown,
                action: Action::new(kind, target),
                mode: s.mode,
                confidence: 1.0,
                confidence_threshold: 0.5,
                max_attempts: 100,
                cooldown_s,
                verification_window_s: 10.0,
                verify: vec![],
                rollback_if_failed: false,
                previous_replicas: None,
                escalation: None,
                only_hinted_by: None,
                trust_hints_from: vec![],
            };
            history.in_flight = executed.iter().filter(|e| e.start <= now && now < e.end).count() as u32;
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
