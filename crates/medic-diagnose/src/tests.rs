use super::*;
use medic_core::{ChangeKind, Finding, FindingKind as K};

fn topology() -> Topology {
    let mut t = Topology::default();
    t.add_edge("frontend", "catalog");
    t.add_edge("catalog", "cache");
    t.add_edge("frontend", "checkout");
    t.add_edge("checkout", "payment");
    t
}

fn finding(service: &str, kind: K, ts: i64, text: &str) -> Finding {
    Finding {
        id: format!("{service}-{}-{ts}", kind.as_str()),
        ts: Ts(ts),
        service: service.into(),
        instance: None,
        kind,
        detector: kind.as_str().into(),
        score: 0.9,
        summary: text.into(),
        evidence: vec![Evidence::LogLine {
            ts: Ts(ts),
            service: service.into(),
            line: text.into(),
        }],
    }
}

fn incident(findings: Vec<Finding>) -> Incident {
    let mut it = findings.into_iter();
    let mut inc = Incident::new("i1".into(), it.next().expect("one finding"));
    for f in it {
        inc.add_finding(f);
    }
    inc
}

fn change(kind: ChangeKind, service: &str, start: i64, to: &str) -> ChangeEvent {
    ChangeEvent {
        kind,
        service: service.into(),
        start: Ts(start),
        end: (kind == ChangeKind::Planned).then_some(Ts(start + 600_000)),
        from: Some("old".into()),
        to: Some(to.into()),
        description: "campaign".into(),
        author: Some("someone".into()),
    }
}

fn run(inc: &Incident, changes: &[ChangeEvent]) -> Diagnosis {
    let t = topology();
    let cx = DiagnosisContext {
        topology: &t,
        changes,
        now: Ts(1_010_000),
        change_lookback_s: 300.0,
    };
    diagnose(inc, &cx)
}

fn assert_top(d: &Diagnosis, cause: Cause, target: &str) {
    let top = d.top().expect("a hypothesis");
    assert_eq!(
        (top.cause, top.target.as_str()),
        (cause, target),
        "diagnosis: {d:#?}"
    );
    assert!(top.confidence >= 0.6, "confidence too low: {d:#?}");
    assert!(!top.evidence.is_empty());
}

#[test]
fn memory_growth_then_oom_is_a_leak_not_a_dependency_failure() {
    let inc = incident(vec![
        finding(
            "catalog",
            K::MemoryGrowth,
            1_000_000,
            "rss growing 16 MiB/s",
        ),
        finding("catalog", K::OomKilled, 1_004_000, "catalog-0 OOMKilled"),
        finding("catalog", K::ProcessExit, 1_004_000, "catalog-0 exited"),
        finding(
            "frontend",
            K::ErrorRate,
            1_005_000,
            "GET catalog failed: connection refused",
        ),
    ]);
    assert_top(&run(&inc, &[]), Cause::MemoryLeak, "catalog");
}

#[test]
fn crash_loop_after_config_change_is_misconfiguration() {
    let inc = incident(vec![
        finding(
            "checkout",
            K::ProcessExit,
            1_000_000,
            "checkout-0 exited with code 78",
        ),
        finding(
            "checkout",
            K::CrashLoop,
            1_002_000,
            "FATAL config error in c2.json",
        ),
        finding(
            "frontend",
            K::ErrorRate,
            1_002_000,
            "checkout: connection refused",
        ),
        finding("checkout", K::TargetDown, 1_003_000, "scrape failed"),
    ]);
    let changes = [
        change(ChangeKind::Deploy, "checkout", 500_000, "v1"),
        change(ChangeKind::ConfigChange, "checkout", 999_000, "c2"),
    ];
    assert_top(&run(&inc, &changes), Cause::Misconfiguration, "checkout");
}

#[test]
fn errors_after_deploy_are_a_bad_deployment_of_the_deepest_service() {
    let inc = incident(vec![
        finding("payment", K::ErrorRate, 1_000_000, "31% 500s"),
        finding(
            "payment",
            K::NewErrorMessage,
            1_000_500,
            "NullPointerException in v2",
        ),
        finding("checkout", K::ErrorRate, 1_001_000, "payment returned 500"),
        finding("frontend", K::ErrorRate, 1_002_000, "checkout returned 502"),
    ]);
    let changes = [change(ChangeKind::Deploy, "payment", 998_000, "v2")];
    assert_top(&run(&inc, &changes), Cause::BadDeployment, "payment");
}

#[test]
fn old_deploy_does_not_count() {
    let inc = incident(vec![finding(
        "payment",
        K::ErrorRate,
        1_000_000,
        "31% 500s",
    )]);
    let changes = [change(ChangeKind::Deploy, "payment", 100_000, "v2")];
    let d = run(&inc, &changes);
    assert_ne!(d.top().map(|h| h.cause), Some(Cause::BadDeployment));
}

#[test]
fn dead_cache_with_refused_callers_is_a_dependency_failure() {
    let inc = incident(vec![
        finding("catalog", K::ErrorRate, 1_000_000, "503 from catalog"),
        finding(
            "catalog",
            K::NewErrorMessage,
            1_000_000,
            "GET http://127.0.0.1:4000/get failed: connection refused (dependency=cache)",
        ),
        finding(
            "cache",
            K::ProcessExit,
            1_000_500,
            "cache-0 killed by signal 6",
        ),
        finding("frontend", K::ErrorRate, 1_001_000, "catalog returned 503"),
    ]);
    assert_top(&run(&inc, &[]), Cause::DependencyFailure, "cache");
}

#[test]
fn refused_connections_name_the_dependency_before_its_own_findings_arrive() {
    let inc = incident(vec![finding(
        "catalog",
        K::NewErrorMessage,
        1_000_000,
        "connection refused calling cache",
    )]);
    assert_top(&run(&inc, &[]), Cause::DependencyFailure, "cache");
}

#[test]
fn slow_leaf_with_timing_out_callers_is_network_latency_on_the_leaf() {
    let inc = incident(vec![
        finding("checkout", K::Latency, 1_000_000, "p99 0.41s"),
        finding("payment", K::Latency, 1_000_000, "p99 0.71s"),
        finding(
            "checkout",
            K::ErrorRate,
            1_001_000,
            "timed out after 400ms calling payment",
        ),
        finding("frontend", K::ErrorRate, 1_002_000, "checkout returned 504"),
    ]);
    assert_top(&run(&inc, &[]), Cause::NetworkLatency, "payment");
}

#[test]
fn surge_with_saturation_is_a_load_surge() {
    let inc = incident(vec![
        finding("frontend", K::TrafficSurge, 1_000_000, "rps 8x baseline"),
        finding("frontend", K::Latency, 1_001_000, "p99 1.2s"),
        finding("frontend", K::ErrorRate, 1_002_000, "503 overloaded"),
    ]);
    assert_top(&run(&inc, &[]), Cause::LoadSurge, "frontend");
}

#[test]
fn announced_surge_is_a_planned_event() {
    let inc = incident(vec![
        finding("frontend", K::TrafficSurge, 1_000_000, "rps 8x baseline"),
        finding("frontend", K::Latency, 1_001_000, "p99 1.2s"),
    ]);
    let changes = [change(ChangeKind::Planned, "frontend", 995_000, "campaign")];
    assert_top(&run(&inc, &changes), Cause::PlannedEvent, "frontend");
    // A planned event on another service changes nothing.
    let other = [change(ChangeKind::Planned, "catalog", 995_000, "campaign")];
    assert_top(&run(&inc, &other), Cause::LoadSurge, "frontend");
}

#[test]
fn unexplained_symptoms_fall_back_to_unknown() {
    let inc = incident(vec![finding(
        "frontend",
        K::ErrorLogBurst,
        1_000_000,
        "errors",
    )]);
    let d = run(&inc, &[]);
    assert_eq!(d.top().map(|h| h.cause), Some(Cause::Unknown));
    assert_eq!(d.top().map(|h| h.target.as_str()), Some("frontend"));
}

#[test]
fn diagnosis_is_deterministic_and_bounded() {
    let inc = incident(vec![
        finding("payment", K::Latency, 1_000_000, "slow"),
        finding("cache", K::ProcessExit, 1_000_000, "exit"),
        finding("catalog", K::MemoryGrowth, 1_000_000, "grow"),
    ]);
    let a = run(&inc, &[]);
    let b = run(&inc, &[]);
    assert_eq!(a, b);
    for h in &a.hypotheses {
        assert!((0.0..=1.0).contains(&h.confidence), "{h:?}");
    }
}

#[test]
fn a_change_already_reverted_explains_nothing() {
    let inc = incident(vec![
        finding(
            "checkout",
            K::ErrorRate,
            1_000_000,
            "timed out after 400ms calling payment",
        ),
        finding("payment", K::Latency, 1_000_000, "p99 0.99s"),
    ]);
    let mut bad = change(ChangeKind::ConfigChange, "checkout", 900_000, "c2");
    bad.from = Some("c1".into());
    let mut revert = change(ChangeKind::Remediation, "checkout", 905_000, "c1");
    revert.from = Some("c2".into());
    let mut deploy = change(ChangeKind::Deploy, "payment", 910_000, "v2");
    deploy.from = Some("v1".into());
    let mut rollback = change(ChangeKind::Remediation, "payment", 915_000, "v1");
    rollback.from = Some("v2".into());
    assert_top(
        &run(&inc, &[bad.clone(), revert, deploy.clone(), rollback]),
        Cause::NetworkLatency,
        "payment",
    );
    // Without the revert, the config change is still in force and is a suspect.
    let d = run(&inc, &[bad, deploy]);
    assert!(
        d.hypotheses
            .iter()
            .any(|h| h.cause == Cause::Misconfiguration)
    );
}

#[test]
fn kubernetes_callers_name_a_dependency_by_its_service_name() {
    // Workloads are `namespace/name`; a caller's error names the Service it called, `cache`.
    let mut t = Topology::default();
    t.add_edge("shop/frontend", "shop/catalog");
    t.add_edge("shop/catalog", "shop/cache");
    let inc = incident(vec![
        finding("shop/catalog", K::ErrorRate, 1_000_000, "503 from catalog"),
        finding(
            "shop/catalog",
            K::NewErrorMessage,
            1_000_000,
            "GET http://127.100.0.9:80/get failed: connection refused (dependency=cache)",
        ),
    ]);
    let cx = DiagnosisContext {
        topology: &t,
        changes: &[],
        now: Ts(1_010_000),
        change_lookback_s: 300.0,
    };
    let d = diagnose(&inc, &cx);
    assert_top(&d, Cause::DependencyFailure, "shop/cache");
    // The name alone: `catalog` failing does not name `shop/cache`'s namespace-less twin.
    let mut other = Topology::default();
    other.add_edge("shop/catalog", "shop/db");
    let cx = DiagnosisContext {
        topology: &other,
        ..cx
    };
    let d = diagnose(&inc, &cx);
    assert!(
        d.hypotheses
            .iter()
            .all(|h| h.target != "shop/db" || h.confidence < 0.6),
        "{d:?}"
    );
}

fn hinted_alert(service: &str, ts: i64, cause: &str, sender: Option<&str>) -> Finding {
    let mut f = finding(service, K::AlertFiring, ts, "alert PaymentDown firing");
    f.evidence = vec![Evidence::Hint {
        service: service.into(),
        cause: cause.into(),
        alert: "PaymentDown".into(),
        sender: sender.map(str::to_string),
    }];
    f
}

#[test]
fn an_alert_hint_alone_is_marked_and_corroboration_clears_the_mark() {
    // Only the alert's claim: ranked (its author may be right), but marked as a hint.
    let inc = incident(vec![hinted_alert(
        "payment",
        1_000_000,
        "bad_deployment",
        Some("alertmanager"),
    )]);
    let d = run(&inc, &[]);
    let top = d.top().expect("top");
    assert_eq!(
        (top.cause, top.target.as_str()),
        (Cause::BadDeployment, "payment")
    );
    assert_eq!(
        top.only_hinted_by.as_deref(),
        Some("alertmanager"),
        "{d:#?}"
    );
    // An unauthenticated hint is marked with an empty sender.
    let inc = incident(vec![hinted_alert(
        "payment",
        1_000_000,
        "bad_deployment",
        None,
    )]);
    assert_eq!(
        run(&inc, &[]).top().expect("top").only_hinted_by.as_deref(),
        Some("")
    );
    // The same hint with medic's own evidence (errors after a deploy): not a hint alone.
    let inc = incident(vec![
        hinted_alert("payment", 1_000_000, "bad_deployment", Some("alertmanager")),
        finding("payment", K::ErrorRate, 1_000_100, "31% 500s"),
        finding(
            "payment",
            K::NewErrorMessage,
            1_000_500,
            "NullPointerException in v2",
        ),
    ]);
    let changes = [change(ChangeKind::Deploy, "payment", 998_000, "v2")];
    let d = run(&inc, &changes);
    assert_top(&d, Cause::BadDeployment, "payment");
    assert_eq!(d.top().expect("top").only_hinted_by, None, "{d:#?}");
}

/// medic's own words about an exit (its event names the release and config it ran) are not
/// the service's words: they must not make every exit look like a configuration problem.
#[test]
fn an_exit_whose_description_names_its_config_is_not_misconfiguration() {
    let exit = |ts: i64| Finding {
        evidence: vec![Evidence::Event {
            ts: Ts(ts),
            service: "catalog".into(),
            description: "catalog-1 exited unexpectedly (exit code 1, release v1, config c1)"
                .into(),
        }],
        summary: "catalog-1 exited unexpectedly on catalog (config c1)".into(),
        ..finding("catalog", K::ProcessExit, ts, "")
    };
    let d = run(&incident(vec![exit(1_000_000), exit(1_004_000)]), &[]);
    assert!(
        d.hypotheses
            .iter()
            .all(|h| h.cause != Cause::Misconfiguration),
        "{d:#?}"
    );
    // The service's own log line naming its configuration still counts.
    let said = finding(
        "catalog",
        K::NewErrorMessage,
        1_000_500,
        "fatal: cannot parse config file /etc/catalog.yaml",
    );
    let d = run(&incident(vec![exit(1_000_000), said]), &[]);
    assert!(
        d.hypotheses
            .iter()
            .any(|h| h.cause == Cause::Misconfiguration && h.target == "catalog"),
        "{d:#?}"
    );
}
