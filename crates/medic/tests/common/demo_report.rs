//! What both demo end-to-end tests (local and Kubernetes) check in a `--report json`.

/// One fault the demo injects and what medic must make of it.
pub struct Expect {
    pub fault: &'static str,
    pub service: String,
    pub cause: &'static str,
    pub action: &'static str,
}

/// The seven faults in the demo's order; `ns` prefixes the service names (`""` locally).
pub fn expected(ns: &str) -> Vec<Expect> {
    let svc = |s: &str| {
        if ns.is_empty() {
            s.to_string()
        } else {
            format!("{ns}/{s}")
        }
    };
    vec![
        Expect {
            fault: "memory_leak",
            service: svc("catalog"),
            cause: "memory_leak",
            action: "restart_workload",
        },
        Expect {
            fault: "bad_config",
            service: svc("checkout"),
            cause: "misconfiguration",
            action: "revert_config",
        },
        Expect {
            fault: "bad_deployment",
            service: svc("payment"),
            cause: "bad_deployment",
            action: "rollback_release",
        },
        Expect {
            fault: "dependency_down",
            service: svc("cache"),
            cause: "dependency_failure",
            action: "restart_workload",
        },
        Expect {
            fault: "latency",
            service: svc("payment"),
            cause: "network_latency",
            action: "restart_workload",
        },
        Expect {
            fault: "load_surge",
            service: svc("frontend"),
            cause: "load_surge",
            action: "scale_workload",
        },
        Expect {
            fault: "planned_campaign",
            service: svc("frontend"),
            cause: "planned_event",
            action: "scale_workload",
        },
    ]
}

/// Each fault: one incident, the right cause, target and action, healed, detected within
/// 20 s and recovered within `max_recover_s` of the injection; no stray action; the audit
/// chain intact.
pub fn check_report(
    report: &serde_json::Value,
    expected: &[Expect],
    max_recover_s: f64,
    ctx: &str,
) {
    let rows = report["incidents"].as_array().expect("incidents array");
    assert_eq!(rows.len(), expected.len(), "{ctx}");
    for (row, want) in rows.iter().zip(expected.iter()) {
        let f = want.fault;
        assert_eq!(row["fault"], f, "{ctx}");
        assert_eq!(row["service"], want.service.as_str(), "{f}: {ctx}");
        assert_eq!(row["incident_count"], 1, "{f}: exactly one incident\n{ctx}");
        assert_eq!(row["cause"], want.cause, "{f}: top cause\n{ctx}");
        assert_eq!(
            row["target"],
            want.service.as_str(),
            "{f}: top target\n{ctx}"
        );
        let conf = row["confidence"].as_f64().expect("confidence");
        assert!((0.0..=1.0).contains(&conf), "{f}: {ctx}");
        assert_eq!(row["action"], want.action, "{f}: action\n{ctx}");
        assert_eq!(row["outcome"], "healed", "{f}: outcome\n{ctx}");
        let detect = row["detect_s"].as_f64().expect("detect_s");
        assert!(
            (-2.0..=20.0).contains(&detect),
            "{f}: detect_s {detect}\n{ctx}"
        );
        let recover = row["recover_s"].as_f64().expect("recover_s");
        assert!(recover <= max_recover_s, "{f}: recover_s {recover}\n{ctx}");
    }
    assert_eq!(report["unmatched_actions"], serde_json::json!([]), "{ctx}");
    assert_eq!(report["audit_verified"], true, "{ctx}");
}
