//! The shipped examples must load, and the demo's inline policies must equal the default set.

mod common;
use common::test_env;
use medic_config::{
    DEFAULT_POLICIES_YAML, DEMO_CONFIG_YAML, Policy, SourceKind, load, load_policy_file, load_str,
    validate_files,
};
use medic_core::{ActionKind, Cause, Mode};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Policies without their positions, which differ between files by design.
fn contents(policies: &[Policy]) -> Vec<Policy> {
    policies
        .iter()
        .map(|p| Policy {
            location: Default::default(),
            ..p.clone()
        })
        .collect()
}

#[test]
fn example_medic_yaml_is_valid_and_complete() {
    let path = examples().join("medic.yaml");
    let c = load(&path, &test_env).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.sources.len(), 5);
    assert_eq!(c.policies.len(), 8, "loaded through policy_files");
    assert_eq!(c.topology.services().count(), 5);
    assert!(c.topology.reaches("frontend", "payment"));
    let local = c.actuators.local.as_ref().unwrap();
    assert_eq!(local.supervisor_url, "http://127.0.0.1:7000");
    match &c.sources[0].kind {
        SourceKind::LogFiles { paths, .. } => assert_eq!(paths, &["/srv/estate/logs/*.log"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.store.sqlite, examples().join("medic.db"));
    assert!(
        validate_files(&[path, examples().join("policies/default.yaml")], &test_env).is_empty()
    );
}

#[test]
fn example_needs_its_variables() {
    let errs = load(&examples().join("medic.yaml"), &|_: &str| None).unwrap_err();
    assert!(!errs.is_empty());
    assert!(
        errs.iter()
            .all(|e| e.message.contains("environment variable `ESTATE_DIR`")
                || e.message.contains("environment variable `SUPERVISOR_URL`")),
        "{errs:#?}"
    );
}

#[test]
fn default_policies_follow_the_documented_set() {
    let ps = load_policy_file(&examples().join("policies/default.yaml"), &test_env).unwrap();
    let action_for = |cause: Cause| -> Vec<(ActionKind, Mode)> {
        ps.iter()
            .filter(|p| p.causes.contains(&cause))
            .map(|p| (p.action, p.mode))
            .collect()
    };
    use ActionKind::*;
    assert_eq!(
        action_for(Cause::MemoryLeak),
        [(RestartWorkload, Mode::Auto)]
    );
    assert_eq!(
        action_for(Cause::Misconfiguration),
        [(RevertConfig, Mode::Auto)]
    );
    assert_eq!(
        action_for(Cause::BadDeployment),
        [(RollbackRelease, Mode::Auto)]
    );
    assert_eq!(
        action_for(Cause::DependencyFailure),
        [(RestartWorkload, Mode::Auto)]
    );
    assert_eq!(
        action_for(Cause::NetworkLatency),
        [(RestartWorkload, Mode::Auto)]
    );
    assert_eq!(action_for(Cause::LoadSurge), [(ScaleWorkload, Mode::Auto)]);
    assert_eq!(
        action_for(Cause::PlannedEvent),
        [(ScaleWorkload, Mode::Auto)]
    );
    assert_eq!(action_for(Cause::Unknown), [(NoAction, Mode::Recommend)]);
    for p in &ps {
        assert_eq!(p.confidence_threshold, 0.6, "{}", p.name);
        assert_eq!(p.max_attempts, 2, "{}", p.name);
        assert_eq!(p.cooldown, Duration::from_secs(120), "{}", p.name);
        assert_eq!(p.verification_window, Duration::from_secs(10), "{}", p.name);
        assert_eq!(p.escalation.as_deref(), Some("oncall"), "{}", p.name);
        assert_eq!(
            p.rollback_if_failed,
            p.action == RollbackRelease,
            "{}",
            p.name
        );
        if p.action == ScaleWorkload {
            assert_eq!(
                (p.scale.factor, p.scale.max_replicas),
                (2.0, 6),
                "{}",
                p.name
            );
        }
    }
}

#[test]
fn demo_config_is_valid_and_carries_the_default_policies() {
    let demo = load_str(
        DEMO_CONFIG_YAML,
        "demo/medic.yaml",
        Path::new("/nowhere"),
        &test_env,
    )
    .unwrap_or_else(|e| panic!("{e:#?}"));
    let defaults = load_policy_file(&examples().join("policies/default.yaml"), &test_env).unwrap();
    assert_eq!(contents(&demo.policies), contents(&defaults));
    assert_eq!(
        DEFAULT_POLICIES_YAML,
        std::fs::read_to_string(examples().join("policies/default.yaml")).unwrap()
    );

    let mut expected = medic_core::Topology::default();
    expected.add_edge("frontend", "catalog");
    expected.add_edge("catalog", "cache");
    expected.add_edge("frontend", "checkout");
    expected.add_edge("checkout", "payment");
    assert_eq!(demo.topology, expected);
    assert_eq!(demo.store.sqlite, Path::new("/srv/estate/medic.db"));
    assert_eq!(
        demo.actuators.local.unwrap().supervisor_url,
        "http://127.0.0.1:7000"
    );
    assert_eq!(demo.escalation.default_target.as_deref(), Some("oncall"));
    // MEDIC_ESCALATION_WEBHOOK unset: print only.
    assert_eq!(demo.escalation.targets[0].webhook, None);
    let kinds: Vec<_> = demo
        .sources
        .iter()
        .map(|s| std::mem::discriminant(&s.kind))
        .collect();
    assert_eq!(kinds.len(), 5);
}

#[test]
fn demo_config_delivers_to_a_webhook_when_given_one() {
    let env = |name: &str| match name {
        "MEDIC_ESCALATION_WEBHOOK" => Some("http://127.0.0.1:9/hook".to_string()),
        other => test_env(other),
    };
    let demo = load_str(DEMO_CONFIG_YAML, "demo/medic.yaml", Path::new("/"), &env).unwrap();
    assert_eq!(
        demo.escalation.targets[0].webhook.as_deref(),
        Some("http://127.0.0.1:9/hook")
    );
}

#[test]
fn example_policy_documents_load() {
    let ps = load_policy_file(&examples().join("remediation-policies.yaml"), &test_env).unwrap();
    let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "scale-out-on-surge",
            "rollback-bad-release",
            "isolate-on-dependency-storm"
        ]
    );
    assert!(
        ps.iter()
            .all(|p| p.api_version.as_deref() == Some("medic.dev/v1"))
    );
    assert!(validate_files(&[examples().join("remediation-policies.yaml")], &test_env).is_empty());
}
