use super::*;
use crate::{decide, explain};
use medic_core::{Action, Cause, Decision, ExecutionStatus, Mode};
use std::path::PathBuf;

const T0: Ts = Ts(1_700_000_000_000);

fn plan(kind: ActionKind, target: &str) -> Plan {
    Plan {
        mode: Mode::Auto,
        confidence: 0.9,
        confidence_threshold: 0.7,
        max_attempts: 2,
        cooldown_s: 120.0,
        ..Plan::new("p", Cause::MemoryLeak, Action::new(kind, target))
    }
}

fn restart(target: &str) -> Plan {
    plan(ActionKind::RestartWorkload, target)
}

fn done(kind: ActionKind, target: &str, secs_before: i64) -> Execution {
    Execution {
        idempotency_key: format!("{kind}-{target}-{secs_before}"),
        incident: "i".into(),
        attempt: 1,
        policy: String::new(),
        action: Action {
            kind,
            target: target.into(),
            replicas: None,
            workload: None,
            memory_limit_bytes: None,
        },
        started: T0.plus_ms(-secs_before * 1000),
        finished: None,
        status: ExecutionStatus::Succeeded,
        detail: String::new(),
    }
}

fn history(executions: Vec<Execution>) -> History {
    History {
        executions,
        ..History::default()
    }
}

fn denial(v: Verdict) -> String {
    match v {
        Verdict::Deny(r) => r,
        Verdict::Allow => panic!("expected a denial"),
    }
}

#[test]
fn kill_switch_from_config_or_file() {
    let mut config = GuardsConfig::default();
    assert!(kill_switch(&config, false).is_allow());
    config.kill_switch_file = Some(PathBuf::from("/run/medic/STOP"));
    assert_eq!(
        denial(kill_switch(&config, true)),
        "kill_switch: /run/medic/STOP is present"
    );
    config.kill_switch = true;
    assert!(denial(kill_switch(&config, false)).starts_with("kill_switch: on in config"));
}

#[test]
fn confidence_threshold_and_nan() {
    let mut p = restart("a");
    assert!(confidence(&p).is_allow());
    p.confidence = 0.7;
    assert!(confidence(&p).is_allow());
    p.confidence = 0.55;
    assert_eq!(
        denial(confidence(&p)),
        "confidence: 0.55 below policy p threshold 0.70"
    );
    p.confidence = f64::NAN;
    assert!(!confidence(&p).is_allow());
    p.confidence = 0.9;
    p.confidence_threshold = f64::NAN;
    assert!(!confidence(&p).is_allow());
}

#[test]
fn planned_event_freeze_blocks_only_disruptive_actions_on_planned_services() {
    let c = GuardsConfig::default();
    let mut h = History::default();
    h.planned_services.insert("catalog".into());
    for kind in [
        ActionKind::RestartWorkload,
        ActionKind::RollbackRelease,
        ActionKind::RevertConfig,
    ] {
        let r = denial(planned_event_freeze(&plan(kind, "catalog"), &h, &c, T0));
        assert!(
            r.starts_with("planned_event_freeze:") && r.contains("catalog"),
            "{r}"
        );
        assert!(planned_event_freeze(&plan(kind, "cache"), &h, &c, T0).is_allow());
    }
    let scale = plan(ActionKind::ScaleWorkload, "catalog");
    assert!(planned_event_freeze(&scale, &h, &c, T0).is_allow());
}

#[test]
fn max_attempts_counts_this_incident() {
    let c = GuardsConfig::default();
    let mut h = History::default();
    let p = restart("a");
    h.attempts_this_incident = 1;
    assert!(max_attempts(&p, &h, &c, T0).is_allow());
    h.attempts_this_incident = 2;
    assert_eq!(
        denial(max_attempts(&p, &h, &c, T0)),
        "max_attempts: 2 attempts made for this incident, policy p allows 2"
    );
}

#[test]
fn cooldown_per_kind_and_target() {
    let c = GuardsConfig::default();
    let p = restart("catalog");
    let h = history(vec![
        done(ActionKind::RestartWorkload, "catalog", 300),
        done(ActionKind::RestartWorkload, "catalog", 42),
        done(ActionKind::RestartWorkload, "cache", 1),
        done(ActionKind::ScaleWorkload, "catalog", 1),
    ]);
    assert_eq!(
        denial(cooldown(&p, &h, &c, T0)),
        "cooldown: last restart_workload on catalog 42s ago, policy p cooldown 120s"
    );
    assert!(cooldown(&p, &h, &c, T0.plus_secs(78.0)).is_allow());
    assert!(!cooldown(&p, &h, &c, T0.plus_secs(77.9)).is_allow());
    assert!(cooldown(&restart("frontend"), &h, &c, T0).is_allow());
    // An action stamped in the future (clock went back) keeps the cooldown on.
    let future = history(vec![done(ActionKind::RestartWorkload, "catalog", -500)]);
    let mut no_cooldown = p.clone();
    no_cooldown.cooldown_s = 0.0;
    assert!(!cooldown(&no_cooldown, &future, &c, T0).is_allow());
    no_cooldown.cooldown_s = f64::NAN;
    assert!(!cooldown(&no_cooldown, &h, &c, T0).is_allow());
}

#[test]
fn loop_breaker_counts_target_in_rolling_hour() {
    let c = GuardsConfig {
        max_actions_per_target_per_hour: 2,
        ..GuardsConfig::default()
    };
    let p = restart("catalog");
    let h = history(vec![
        done(ActionKind::RestartWorkload, "catalog", 3_600), // exactly an hour ago: out
        done(ActionKind::ScaleWorkload, "catalog", 1_000),
        done(ActionKind::NoAction, "catalog", 900),
        done(ActionKind::RestartWorkload, "cache", 10),
    ]);
    assert!(loop_breaker(&p, &h, &c, T0).is_allow());
    let mut h2 = h.clone();
    h2.executions
        .push(done(ActionKind::RollbackRelease, "catalog", 5));
    assert_eq!(
        denial(loop_breaker(&p, &h2, &c, T0)),
        "loop_breaker: 2 actions on catalog in the last hour, limit 2 per target per hour"
    );
    // The scale-out leaves the hour 2 600 s later; the rollback is still in it.
    assert!(loop_breaker(&p, &h2, &c, T0.plus_secs(2_600.0)).is_allow());
    assert!(!loop_breaker(&p, &h2, &c, T0.plus_secs(2_599.0)).is_allow());
}

#[test]
fn blast_radius_counts_distinct_services() {
    let c = GuardsConfig {
        max_services_per_hour: 2,
        ..GuardsConfig::default()
    };
    let h = history(vec![
        done(ActionKind::RestartWorkload, "a", 100),
        done(ActionKind::RestartWorkload, "a", 50),
        done(ActionKind::RestartWorkload, "b", 10),
        done(ActionKind::RestartWorkload, "z", 4_000),
    ]);
    assert!(blast_radius(&restart("a"), &h, &c, T0).is_allow());
    assert!(blast_radius(&restart("b"), &h, &c, T0).is_allow());
    assert_eq!(
        denial(blast_radius(&restart("c"), &h, &c, T0)),
        "blast_radius: 2 services acted on in the last hour (a, b), limit 2; c would be one more"
    );
}

#[test]
fn rate_limit_counts_estate_in_rolling_hour() {
    let c = GuardsConfig {
        max_actions_per_hour: 3,
        ..GuardsConfig::default()
    };
    let mut h = history(vec![
        done(ActionKind::RestartWorkload, "a", 100),
        done(ActionKind::ScaleWorkload, "b", 50),
        done(ActionKind::RestartWorkload, "c", 3_700),
        done(ActionKind::NoAction, "c", 10),
    ]);
    assert!(rate_limit(&restart("d"), &h, &c, T0).is_allow());
    h.executions.push(done(ActionKind::RevertConfig, "e", 1));
    assert_eq!(
        denial(rate_limit(&restart("d"), &h, &c, T0)),
        "rate_limit: 3 actions in the last hour, limit 3 per hour"
    );
}

#[test]
fn concurrency_limits_in_flight() {
    let c = GuardsConfig {
        max_concurrent_actions: 2,
        ..GuardsConfig::default()
    };
    let mut h = History {
        in_flight: 1,
        ..History::default()
    };
    assert!(concurrency(&restart("a"), &h, &c, T0).is_allow());
    h.in_flight = 2;
    assert_eq!(
        denial(concurrency(&restart("a"), &h, &c, T0)),
        "concurrency: 2 actions in flight, limit 2"
    );
}

#[test]
fn no_action_is_never_volume_limited() {
    let c = GuardsConfig {
        max_actions_per_hour: 0,
        max_services_per_hour: 0,
        max_actions_per_target_per_hour: 0,
        max_concurrent_actions: 0,
        ..GuardsConfig::default()
    };
    let h = History {
        executions: vec![done(ActionKind::NoAction, "a", 1)],
        in_flight: 5,
        attempts_this_incident: 9,
        incident: "i".into(),
        planned_services: ["a".to_string()].into(),
        in_flight_targets: ["a".to_string()].into(),
    };
    let mut p = plan(ActionKind::NoAction, "a");
    p.guardrails = medic_core::Guardrails {
        blocked_windows: vec![medic_core::TimeWindow::parse("00:00-24:00").unwrap()],
        max_executions_per_hour: Some(1),
        max_targets_per_hour: Some(1),
    };
    for (name, guard) in ACTION_GUARDS {
        assert!(guard(&p, &h, &c, T0).is_allow(), "{name}");
    }
    assert_eq!(decide(&p, &h, &c, false, T0), Decision::Execute);
}

#[test]
fn decide_applies_guards_then_mode() {
    let c = GuardsConfig::default();
    let h = History::default();
    let mut p = restart("a");
    for (mode, expected) in [
        (Mode::Shadow, Decision::Shadow),
        (Mode::Recommend, Decision::Recommend),
        (Mode::Approve, Decision::NeedsApproval),
        (Mode::Auto, Decision::Execute),
    ] {
        p.mode = mode;
        assert_eq!(decide(&p, &h, &c, false, T0), expected, "{mode:?}");
    }
    p.confidence = 0.2;
    for (mode, expected) in [
        (Mode::Shadow, Decision::Shadow),
        (Mode::Recommend, Decision::Recommend),
        (Mode::Approve, Decision::Recommend),
        (Mode::Auto, Decision::Recommend),
    ] {
        p.mode = mode;
        assert_eq!(decide(&p, &h, &c, false, T0), expected, "{mode:?}");
    }
}

#[test]
fn decide_denies_with_the_first_failing_guard() {
    let c = GuardsConfig::default();
    let mut p = restart("catalog");
    p.mode = Mode::Shadow;
    let mut h = history(vec![done(ActionKind::RestartWorkload, "catalog", 10)]);
    h.in_flight = 1;
    match decide(&p, &h, &c, false, T0) {
        Decision::Denied(r) => assert!(r.starts_with("cooldown:"), "{r}"),
        d => panic!("{d:?}"),
    }
    match decide(&p, &h, &c, true, T0) {
        Decision::Denied(r) => assert!(r.starts_with("kill_switch:"), "{r}"),
        d => panic!("{d:?}"),
    }
    h.executions.clear();
    match decide(&p, &h, &c, false, T0) {
        Decision::Denied(r) => assert!(r.starts_with("concurrency:"), "{r}"),
        d => panic!("{d:?}"),
    }
}

#[test]
fn explain_lists_every_guard_with_its_verdict() {
    let c = GuardsConfig::default();
    let mut p = restart("catalog");
    p.confidence = 0.1;
    let h = history(vec![done(ActionKind::RestartWorkload, "catalog", 10)]);
    let verdicts = explain(&p, &h, &c, false, T0);
    let names: Vec<&str> = verdicts.iter().map(|(n, _)| *n).collect();
    assert_eq!(names.len(), ACTION_GUARDS.len() + 4);
    assert_eq!(
        (names[0], &names[names.len() - 3..]),
        (
            "kill_switch",
            &["confidence", "corroboration", "never_auto"][..]
        )
    );
    let denied: Vec<&str> = verdicts
        .iter()
        .filter(|(_, v)| !v.is_allow())
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(denied, ["cooldown", "confidence"]);
}

#[test]
fn cooldown_is_per_policy_and_ignores_the_incidents_own_retries() {
    let mut own = done(ActionKind::RestartWorkload, "a", 10);
    own.policy = "p".into();
    own.incident = "mine".into();
    let mut h = History {
        executions: vec![own.clone()],
        incident: "mine".into(),
        ..History::default()
    };
    let mut p = plan(ActionKind::RestartWorkload, "a");
    p.policy = "p".into();
    p.cooldown_s = 120.0;
    // The same incident's earlier attempt: max_attempts governs, not the cooldown.
    assert!(cooldown(&p, &h, &GuardsConfig::default(), T0).is_allow());
    // Another incident's action by the same policy on the same target: cooldown applies.
    h.incident = "other".into();
    assert!(!cooldown(&p, &h, &GuardsConfig::default(), T0).is_allow());
    // ...but not one by a different policy.
    p.policy = "q".into();
    assert!(cooldown(&p, &h, &GuardsConfig::default(), T0).is_allow());
}

#[test]
fn a_rollback_or_revert_runs_once_per_incident() {
    let mut p = plan(ActionKind::RevertConfig, "checkout");
    let mut h = History {
        incident: "inc".into(),
        ..History::default()
    };
    assert!(undo_once(&p, &h, &GuardsConfig::default(), T0).is_allow());
    let mut first = done(ActionKind::RevertConfig, "checkout", 30);
    first.incident = "inc".into();
    first.status = medic_core::ExecutionStatus::Succeeded;
    h.executions.push(first.clone());
    let v = undo_once(&p, &h, &GuardsConfig::default(), T0);
    assert!(denial(v).starts_with("undo_once: revert_config on checkout already ran"));
    // Another incident's revert, a failed attempt, or a restart are not affected.
    h.incident = "other".into();
    assert!(undo_once(&p, &h, &GuardsConfig::default(), T0).is_allow());
    h.incident = "inc".into();
    h.executions[0].status = medic_core::ExecutionStatus::Failed;
    assert!(undo_once(&p, &h, &GuardsConfig::default(), T0).is_allow());
    h.executions[0] = first;
    p.action.kind = ActionKind::RestartWorkload;
    assert!(undo_once(&p, &h, &GuardsConfig::default(), T0).is_allow());
}

#[test]
fn an_alert_hint_alone_never_acts_unless_its_sender_is_trusted() {
    let cfg = GuardsConfig::default();
    let mut p = restart("payment");
    assert!(corroboration(&p).is_allow(), "medic's own evidence");
    assert_eq!(
        decide(&p, &history(vec![]), &cfg, false, T0),
        Decision::Execute
    );
    // Only an alert's own claim, from the `alertmanager` token.
    p.only_hinted_by = Some("alertmanager".into());
    let why = denial(corroboration(&p));
    assert!(
        why.contains("only evidence for memory_leak on payment is an alert's own cause hint (sent by `alertmanager`)"),
        "{why}"
    );
    assert_eq!(
        decide(&p, &history(vec![]), &cfg, false, T0),
        Decision::Recommend
    );
    assert!(
        explain(&p, &history(vec![]), &cfg, false, T0)
            .iter()
            .any(|(n, v)| *n == "corroboration" && !v.is_allow())
    );
    // A person may still approve it.
    p.mode = Mode::Approve;
    assert_eq!(
        decide(&p, &history(vec![]), &cfg, false, T0),
        Decision::NeedsApproval
    );
    // Trusted by name: acts; another sender, or an unknown one, does not.
    p.mode = Mode::Auto;
    p.trust_hints_from = vec!["alertmanager".into()];
    assert_eq!(
        decide(&p, &history(vec![]), &cfg, false, T0),
        Decision::Execute
    );
    p.only_hinted_by = Some("someone-else".into());
    assert_eq!(
        decide(&p, &history(vec![]), &cfg, false, T0),
        Decision::Recommend
    );
    p.only_hinted_by = Some(String::new());
    p.trust_hints_from = vec![String::new()];
    assert!(denial(corroboration(&p)).contains("an unknown sender"));
}

#[test]
fn one_in_flight_per_target() {
    let c = GuardsConfig::default();
    let h = History {
        in_flight_targets: ["catalog".to_string()].into(),
        ..History::default()
    };
    let r = denial(one_in_flight(&restart("catalog"), &h, &c, T0));
    assert_eq!(r, "one_in_flight: an action on catalog is still executing");
    assert!(one_in_flight(&restart("cache"), &h, &c, T0).is_allow());
}

#[test]
fn a_policys_blast_radius_counts_only_its_own_targets() {
    let c = GuardsConfig::default();
    let mut p = restart("c");
    p.guardrails.max_targets_per_hour = Some(2);
    let mine = |t: &str| Execution {
        policy: "p".into(),
        ..done(ActionKind::RestartWorkload, t, 60)
    };
    let other = Execution {
        policy: "other".into(),
        ..done(ActionKind::RestartWorkload, "x", 60)
    };
    let h = history(vec![mine("a"), mine("b"), other]);
    let r = denial(policy_blast_radius(&p, &h, &c, T0));
    assert_eq!(
        r,
        "policy_blast_radius: policy p acted on 2 targets in the last hour (a, b), its limit is 2"
    );
    // A target it already touched stays allowed; an hour later all are.
    assert!(policy_blast_radius(&restart("a"), &h, &c, T0).is_allow());
    p.action.target = "a".into();
    assert!(policy_blast_radius(&p, &h, &c, T0).is_allow());
    p.action.target = "c".into();
    assert!(policy_blast_radius(&p, &h, &c, T0.plus_secs(3600.0)).is_allow());
}

#[test]
fn blocked_windows_deny_only_inside() {
    let c = GuardsConfig::default();
    let mut p = restart("a");
    // T0 is 2023-11-14 22:13:20 UTC, a Tuesday.
    p.guardrails.blocked_windows =
        vec![medic_core::TimeWindow::parse("Tue 22:00-23:00 UTC").unwrap()];
    let r = denial(blocked_window(&p, &History::default(), &c, T0));
    assert!(
        r.starts_with("blocked_window: policy p does not act during Tue 22:00-23:00 UTC"),
        "{r}"
    );
    assert!(blocked_window(&p, &History::default(), &c, T0.plus_secs(3600.0)).is_allow());
}

#[test]
fn never_auto_names_the_class() {
    let mut p = plan(ActionKind::DrainNode, "node-1");
    let r = denial(never_auto(&p));
    assert_eq!(
        r,
        "never_auto: drain_node is a data_loss action; policy p has no `auto_override` reason, so a person decides"
    );
    p.auto_override = Some("runbook".into());
    assert!(never_auto(&p).is_allow());
    assert!(never_auto(&restart("a")).is_allow());
}
