//! The debugging scenarios people bring to automated remediation, each run through the
//! planner and the guards as the agent runs them: policies from YAML, a diagnosis, the
//! history of what was done, a clock.

use medic_config::{GuardsConfig, Policy, load_policy_file, process_env};
use medic_core::{
    Cause, Decision, Diagnosis, Execution, ExecutionStatus, Finding, FindingKind, Hypothesis,
    Incident, Ts,
};
use medic_policy::{History, decide, explain, plan};

const T0: Ts = Ts(1_784_124_000_000); // Wednesday 2026-07-15 14:00 UTC

fn policies(yaml: &str) -> Vec<Policy> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.yaml");
    std::fs::write(&p, yaml).unwrap();
    load_policy_file(&p, &process_env).unwrap()
}

fn incident(id: &str, service: &str, at: Ts, summary: &str) -> Incident {
    Incident::new(
        id.into(),
        Finding {
            id: format!("{id}-f"),
            ts: at,
            service: service.into(),
            instance: None,
            kind: FindingKind::CrashLoop,
            detector: "process".into(),
            score: 1.0,
            summary: summary.into(),
            evidence: vec![],
        },
    )
}

fn diagnosis(cause: Cause, target: &str, confidence: f64, at: Ts) -> Diagnosis {
    Diagnosis {
        made_at: at,
        hypotheses: vec![Hypothesis {
            cause,
            target: target.into(),
            confidence,
            rationale: "test".into(),
            evidence: vec![],
            only_hinted_by: None,
        }],
        engine: "test".into(),
    }
}

fn executed(inc: &Incident, plan: &medic_core::Plan, at: Ts) -> Execution {
    Execution {
        idempotency_key: format!("{}-{}", inc.id, at.0),
        incident: inc.id.clone(),
        attempt: 1,
        policy: plan.policy.clone(),
        action: plan.action.clone(),
        started: at,
        finished: Some(at.plus_secs(5.0)),
        status: ExecutionStatus::Succeeded,
        detail: String::new(),
    }
}

const RESTART: &str = r#"apiVersion: medic.dev/v1
kind: RemediationPolicy
metadata: { name: restart-crashing }
spec:
  match: { cause: memory_leak }
  action: restart_workload
  mode: auto
  confidence_threshold: 0.6
  max_attempts: 2
  cooldown: 2m
"#;

/// "The pod was restarted 12 times in 45 minutes": the service keeps crashing and every
/// crash is a new incident. medic restarts it only as often as the loop breaker allows
/// per hour, then hands over; it never joins the loop.
#[test]
fn a_restart_loop_is_broken_not_joined() {
    let policies = policies(RESTART);
    let config = GuardsConfig::default();
    let mut history = History::default();
    let mut executions = 0;
    let mut denials = Vec::new();
    for n in 0..12 {
        let at = T0.plus_secs(n as f64 * 225.0); // 12 crashes in 45 minutes
        let inc = incident(&format!("crash-{n}"), "checkout", at, "checkout restarted");
        let d = diagnosis(Cause::MemoryLeak, "checkout", 0.9, at);
        let p = plan(&inc, &d, &policies, None).unwrap();
        history.incident = inc.id.clone();
        history.attempts_this_incident = 0;
        match decide(&p, &history, &config, false, at) {
            Decision::Execute => {
                executions += 1;
                history.executions.push(executed(&inc, &p, at));
            }
            Decision::Denied(reason) => denials.push(reason),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(executions, config.max_actions_per_target_per_hour as usize);
    assert_eq!(denials.len(), 12 - executions);
    assert!(
        denials.iter().all(|r| r.starts_with("loop_breaker:")),
        "{denials:#?}"
    );
}

/// Retries inside one incident are bounded by `max_attempts`, whatever the timing.
#[test]
fn retries_within_one_incident_stop_at_the_attempt_cap() {
    let policies = policies(RESTART);
    let config = GuardsConfig {
        max_actions_per_target_per_hour: 100,
        ..GuardsConfig::default()
    };
    let inc = incident("one", "checkout", T0, "checkout restarted");
    let d = diagnosis(Cause::MemoryLeak, "checkout", 0.9, T0);
    let mut history = History {
        incident: inc.id.clone(),
        ..History::default()
    };
    let mut decisions = Vec::new();
    for n in 0..5 {
        let at = T0.plus_secs(n as f64 * 600.0);
        let p = plan(&inc, &d, &policies, None).unwrap();
        let decision = decide(&p, &history, &config, false, at);
        if decision == Decision::Execute {
            history.executions.push(executed(&inc, &p, at));
            history.attempts_this_incident += 1;
        }
        decisions.push(decision);
    }
    assert_eq!(decisions[..2], [Decision::Execute, Decision::Execute]);
    for d in &decisions[2..] {
        assert!(
            matches!(d, Decision::Denied(r) if r.starts_with("max_attempts:")),
            "{d:?}"
        );
    }
}

/// A planned campaign (a sale) looks like a bad deployment to a confident diagnosis: the
/// disruptive rollback is refused while the event runs; scaling, which helps, is allowed.
#[test]
fn false_confidence_during_a_planned_campaign_does_not_roll_back() {
    let policies = policies(
        r#"policies:
  - name: rollback
    match: { cause: bad_deployment }
    action: rollback_release
    mode: auto
    confidence_threshold: 0.5
  - name: scale
    match: { cause: load_surge }
    action: scale_workload
    mode: auto
    confidence_threshold: 0.5
"#,
    );
    let config = GuardsConfig::default();
    let history = History {
        planned_services: ["checkout".to_string()].into(),
        ..History::default()
    };
    let inc = incident("sale", "checkout", T0, "checkout error ratio 0.2");
    let rollback = plan(
        &inc,
        &diagnosis(Cause::BadDeployment, "checkout", 0.95, T0),
        &policies,
        None,
    )
    .unwrap();
    match decide(&rollback, &history, &config, false, T0) {
        Decision::Denied(r) => assert!(r.starts_with("planned_event_freeze:"), "{r}"),
        d => panic!("{d:?}"),
    }
    let scale = plan(
        &inc,
        &diagnosis(Cause::LoadSurge, "checkout", 0.95, T0),
        &policies,
        Some(2),
    )
    .unwrap();
    assert_eq!(
        decide(&scale, &history, &config, false, T0),
        Decision::Execute
    );
}

/// Below the policy's threshold medic recommends (the agent escalates a recommendation
/// with the whole story) and does nothing itself; `explain` says why.
#[test]
fn low_confidence_recommends_and_says_why() {
    let policies = policies(RESTART);
    let inc = incident("low", "checkout", T0, "checkout restarted");
    let p = plan(
        &inc,
        &diagnosis(Cause::MemoryLeak, "checkout", 0.4, T0),
        &policies,
        None,
    )
    .unwrap();
    let history = History::default();
    let config = GuardsConfig::default();
    assert_eq!(
        decide(&p, &history, &config, false, T0),
        Decision::Recommend
    );
    let why = explain(&p, &history, &config, false, T0);
    let (_, confidence) = why.iter().find(|(n, _)| *n == "confidence").unwrap();
    assert_eq!(
        confidence,
        &medic_policy::Verdict::Deny(
            "confidence: 0.40 below policy restart-crashing threshold 0.60".into()
        )
    );
}

/// Business hours in New York block the policy; the same plan at night runs.
#[test]
fn blocked_hours_follow_the_policy_time_zone() {
    let policies = policies(&format!(
        "{RESTART}  guardrails:\n    blocked_windows: [\"Mon-Fri 09:00-17:00 America/New_York\"]\n"
    ));
    let inc = incident("bh", "checkout", T0, "checkout restarted");
    let d = diagnosis(Cause::MemoryLeak, "checkout", 0.9, T0);
    let p = plan(&inc, &d, &policies, None).unwrap();
    let config = GuardsConfig::default();
    // 14:00 UTC on a Wednesday is 10:00 in New York.
    match decide(&p, &History::default(), &config, false, T0) {
        Decision::Denied(r) => assert!(
            r.starts_with("blocked_window:") && r.contains("America/New_York"),
            "{r}"
        ),
        d => panic!("{d:?}"),
    }
    // 03:00 UTC the next day is 23:00 in New York.
    let night = T0.plus_secs(13.0 * 3600.0);
    assert_eq!(
        decide(&p, &History::default(), &config, false, night),
        Decision::Execute
    );
}

/// Isolating a workload is a security action: an `auto` policy recommends it unless it
/// states why it may act alone; approval by a person stays possible.
#[test]
fn never_auto_actions_wait_for_a_person_unless_overridden() {
    let doc = |extra: &str, mode: &str| {
        format!(
            "apiVersion: medic.dev/v1\nkind: RemediationPolicy\nmetadata: {{ name: isolate }}\nspec:\n  match: {{ cause: dependency_failure }}\n  action: isolate_workload\n  mode: {mode}\n  confidence_threshold: 0.5\n{extra}"
        )
    };
    let inc = incident("sec", "cache", T0, "cache unreachable");
    let d = diagnosis(Cause::DependencyFailure, "cache", 0.9, T0);
    let config = GuardsConfig::default();
    let decide_with = |yaml: String| {
        let p = plan(&inc, &d, &policies(&yaml), None).unwrap();
        decide(&p, &History::default(), &config, false, T0)
    };
    assert_eq!(decide_with(doc("", "auto")), Decision::Recommend);
    assert_eq!(decide_with(doc("", "approve")), Decision::NeedsApproval);
    assert_eq!(
        decide_with(doc(
            "  auto_override: { reason: \"the SOC runbook says cut first\" }\n",
            "auto"
        )),
        Decision::Execute
    );
}

/// A policy's own hourly limit and target count bind across incidents.
#[test]
fn a_policys_own_hourly_limits_bind() {
    let policies = policies(&format!(
        "{RESTART}  guardrails: {{ max_executions_per_hour: 2, max_targets_per_hour: 2 }}\n"
    ));
    let config = GuardsConfig {
        max_actions_per_target_per_hour: 100,
        ..GuardsConfig::default()
    };
    let mut history = History::default();
    let mut outcomes = Vec::new();
    for (n, target) in ["a", "b", "c", "a"].iter().enumerate() {
        let at = T0.plus_secs(n as f64 * 300.0);
        let inc = incident(&format!("i{n}"), target, at, "restarted");
        let p = plan(
            &inc,
            &diagnosis(Cause::MemoryLeak, target, 0.9, at),
            &policies,
            None,
        )
        .unwrap();
        history.incident = inc.id.clone();
        let decision = decide(&p, &history, &config, false, at);
        if decision == Decision::Execute {
            history.executions.push(executed(&inc, &p, at));
        }
        outcomes.push(decision);
    }
    assert_eq!(outcomes[..2], [Decision::Execute, Decision::Execute]);
    assert!(matches!(&outcomes[2], Decision::Denied(r) if r.starts_with("policy_rate_limit:")));
    assert!(matches!(&outcomes[3], Decision::Denied(r) if r.starts_with("policy_rate_limit:")));
}

/// `match.summary` and `match.namespace` select: a policy whose selectors the incident
/// does not meet is not chosen, and the next one is.
#[test]
fn selectors_choose_the_policy() {
    let policies = policies(
        r#"policies:
  - name: only-oom
    match: { cause: memory_leak, summary: "OOMKilled" }
    action: set_resources
    mode: auto
  - name: only-shop
    match: { cause: memory_leak, namespace: shop }
    action: restart_workload
    mode: auto
  - name: fallback
    match: { cause: memory_leak }
    action: no_action
    mode: recommend
"#,
    );
    let d = diagnosis(Cause::MemoryLeak, "checkout", 0.9, T0);
    let observed = |ns: Option<&str>| medic_policy::Observed {
        workload: ns.map(|ns| medic_core::WorkloadRef {
            kind: medic_core::WorkloadKind::Deployment,
            namespace: Some(ns.into()),
            name: "checkout".into(),
            container: None,
        }),
        memory_limit_bytes: Some(256 << 20),
        ..Default::default()
    };
    let chosen = |summary: &str, ns: Option<&str>| {
        let inc = incident("s", "checkout", T0, summary);
        medic_policy::plan_observed(&inc, &d, &policies, &observed(ns))
            .unwrap()
            .policy
    };
    assert_eq!(chosen("container OOMKilled", None), "only-oom");
    assert_eq!(chosen("restarted", Some("shop")), "only-shop");
    assert_eq!(chosen("restarted", Some("other")), "fallback");
    // An unknown namespace never satisfies a namespace selector.
    assert_eq!(chosen("restarted", None), "fallback");
}
