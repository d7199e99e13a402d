//! RemediationPolicy documents: the seeds' shape loads into the same policies as the list
//! form, and every mistake in them is reported with its file and line, all at once.

mod common;

use common::test_env;
use medic_config::{Autonomy, ConfigError, load, load_policy_file};
use medic_core::{ActionKind, Cause, Mode};
use medic_core::{OnTimeout, Ts};
use std::path::Path;

const DOCS: &str = r#"# Two policies, one per document.
apiVersion: medic.dev/v1
kind: RemediationPolicy
metadata:
  name: scale-out-on-surge
  description: "More replicas when load outgrows them."
  labels: { team: payments }
spec:
  match:
    cause: [load_surge]
    summary: "latency|error ratio"
    services: ["checkout*"]
    labels: { tier: web }
    namespace: shop
  action:
    type: scale_workload
    params: { factor: 1.5, min_replicas: 2, max_replicas: 12 }
  mode: auto
  confidence_threshold: 0.7
  max_attempts: 2
  cooldown: 10m
  verification:
    window: 2m
    promql: ['sum(rate(http_requests_total{service="{service}"}[1m])) > 0']
  rollback_if_failed: true
  approval:
    required: true
    approvers: sre-leads
    timeout: 20m
    on_timeout: reject
  guardrails:
    blocked_windows: ["Mon-Fri 09:00-17:00 America/New_York", "Sat,Sun 22:00-02:00"]
    max_executions_per_hour: 3
    max_targets_per_hour: 2
---
apiVersion: medic.dev/v1
kind: RemediationPolicy
metadata:
  name: isolate-compromised
spec:
  match: { cause: dependency_failure }
  action: isolate_workload
  mode: auto
  auto_override: { reason: "the payment network must be cut within a minute; the SOC reviews after" }
  autonomy: { start: approve, promote_after: 3 }
"#;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn errors_of(text: &str) -> (String, Vec<ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "p.yaml", text);
    let errs = load_policy_file(&p, &test_env).unwrap_err();
    (p.display().to_string(), errs)
}

#[test]
fn documents_load_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "policies.yaml", DOCS);
    let policies = load_policy_file(&p, &test_env).unwrap();
    assert_eq!(policies.len(), 2);
    let a = &policies[0];
    assert_eq!(a.name, "scale-out-on-surge");
    assert_eq!(a.api_version.as_deref(), Some("medic.dev/v1"));
    assert_eq!(a.description, "More replicas when load outgrows them.");
    assert_eq!(a.causes, vec![Cause::LoadSurge]);
    assert_eq!(a.services, vec!["checkout*"]);
    assert!(a.summary.as_ref().unwrap().0.is_match("error ratio 0.4"));
    assert_eq!(a.labels.get("tier").map(String::as_str), Some("web"));
    assert_eq!(a.namespaces, vec!["shop"]);
    assert_eq!(a.action, ActionKind::ScaleWorkload);
    assert_eq!(
        (a.scale.factor, a.scale.min_replicas, a.scale.max_replicas),
        (1.5, 2, 12)
    );
    // `approval.required` makes an auto policy an approve policy.
    assert_eq!(a.mode, Mode::Approve);
    let approval = a.approval.as_ref().unwrap();
    assert_eq!(approval.approvers.as_deref(), Some("sre-leads"));
    assert_eq!(approval.timeout_s, 1200.0);
    assert_eq!(approval.on_timeout, OnTimeout::Reject);
    assert_eq!(a.cooldown.as_secs(), 600);
    assert_eq!(a.verification_window.as_secs(), 120);
    assert_eq!(a.verify_promql.len(), 1);
    assert!(a.rollback_if_failed);
    assert_eq!(a.guardrails.blocked_windows.len(), 2);
    assert_eq!(a.guardrails.max_executions_per_hour, Some(3));
    assert_eq!(a.guardrails.max_targets_per_hour, Some(2));
    // 2026-07-15 is a Wednesday: 14:00 UTC is 10:00 in New York (EDT).
    let wed_10_ny = Ts(1_784_124_000_000);
    assert!(a.guardrails.blocked_windows[0].contains(wed_10_ny));
    assert_eq!((a.location.line, a.location.col), (2, 1));

    let b = &policies[1];
    assert_eq!(b.action, ActionKind::IsolateWorkload);
    assert_eq!(b.mode, Mode::Auto);
    assert!(b.auto_override.as_deref().unwrap().contains("SOC"));
    assert_eq!(
        b.autonomy,
        Some(Autonomy {
            start: Mode::Approve,
            promote_after: 3
        })
    );
    assert_eq!(b.location.line, 36);
}

#[test]
fn documents_and_the_list_form_load_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "docs.yaml", DOCS);
    write(
        dir.path(),
        "list.yaml",
        "policies:\n  - name: restart\n    match: { cause: memory_leak }\n    action: restart_workload\n",
    );
    // A document may also sit inline in medic.yaml's `policies` list.
    let main = write(
        dir.path(),
        "medic.yaml",
        "policy_files: [\"docs.yaml\", \"list.yaml\"]\npolicies:\n  - apiVersion: medic.dev/v1\n    kind: RemediationPolicy\n    metadata: { name: inline-doc }\n    spec:\n      match: { cause: misconfiguration }\n      action: revert_config\n",
    );
    let cfg = load(&main, &test_env).unwrap();
    let names: Vec<&str> = cfg.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "inline-doc",
            "scale-out-on-surge",
            "isolate-compromised",
            "restart"
        ]
    );
    // The list form keeps its defaults: no approval rule unless the mode asks for one.
    let restart = &cfg.policies[3];
    assert_eq!(restart.api_version, None);
    assert!(restart.approval.is_none());
    assert!(restart.guardrails.is_empty());
}

#[test]
fn every_mistake_is_listed_with_file_and_line() {
    let text = r#"apiVersion: medic.dev/v2
kind: RemediationPolicy
metadata: { name: bad }
spec:
  match:
    cause: memory_leak
    summary: "(unclosed"
  action:
    type: scale_workload
    params: { factor: two }
  mode: auto
  colour: blue
  guardrails:
    blocked_windows:
      - "Mon-Fri 09:00-09:00 UTC"
      - "Mon-Fri 09:00-17:00 Mars/Olympus"
      - "Mon-Fri 25:00-26:00"
"#;
    let (file, mut errs) = errors_of(text);
    errs.sort_by_key(|e| (e.location.line, e.location.col));
    let got: Vec<String> = errs
        .iter()
        .map(|e| {
            assert_eq!(e.location.file, file);
            format!("{}:{}", e.location.line, e.message)
        })
        .collect();
    let expect = [
        (1, "invalid `apiVersion`"),
        (7, "the regex does not compile"),
        (10, "invalid `factor`"),
        (12, "unknown key `colour`"),
        (15, "empty"),
        (16, "unknown time zone `Mars/Olympus`"),
        (17, "invalid time `25:00`"),
    ];
    assert_eq!(got.len(), expect.len(), "{got:#?}");
    for ((line, says), g) in expect.iter().zip(&got) {
        assert!(
            g.starts_with(&format!("{line}:")) && g.contains(says),
            "expected line {line} to say {says:?}, got {g}"
        );
    }
}

#[test]
fn contradictions_are_refused() {
    for (spec, says) in [
        (
            "  mode: approve\n  approval: { required: false }\n",
            "contradicts `mode: approve`",
        ),
        (
            "  mode: approve\n  autonomy: { start: approve, promote_after: 2 }\n",
            "not below the policy's mode",
        ),
        (
            "  auto_override: { reason: because }\n",
            "only for security, identity and data-loss actions",
        ),
        (
            "  autonomy: { start: auto, promote_after: 2 }\n",
            "invalid `start`",
        ),
        (
            "  autonomy: { start: recommend, promote_after: 0 }\n",
            "invalid `promote_after`",
        ),
        (
            "  approval: { on_timeout: ignore }\n",
            "invalid `on_timeout`",
        ),
        (
            "  guardrails: { max_executions_per_hour: 0 }\n",
            "invalid `max_executions_per_hour`",
        ),
    ] {
        let text = format!(
            "apiVersion: medic.dev/v1\nkind: RemediationPolicy\nmetadata: {{ name: p }}\nspec:\n  match: {{ cause: memory_leak }}\n  action: restart_workload\n{spec}"
        );
        let (_, errs) = errors_of(&text);
        assert_eq!(errs.len(), 1, "{spec}: {errs:#?}");
        assert!(
            errs[0].message.contains(says),
            "{spec}: {}",
            errs[0].message
        );
    }
}

#[test]
fn wrong_shapes_say_what_was_expected() {
    for (text, says) in [
        (
            "kind: RemediationPolicy\n",
            "missing required key `apiVersion`",
        ),
        (
            "apiVersion: medic.dev/v1\nkind: Policy\nmetadata: { name: p }\nspec: { match: { cause: memory_leak }, action: restart_workload }\n",
            "invalid `kind`",
        ),
        (
            "apiVersion: medic.dev/v1\nkind: RemediationPolicy\nspec: { match: { cause: memory_leak }, action: restart_workload }\n",
            "missing required key `metadata`",
        ),
        (
            "apiVersion: medic.dev/v1\nkind: RemediationPolicy\nmetadata: { name: p }\n",
            "missing required key `spec`",
        ),
        (
            "apiVersion: medic.dev/v1\nkind: RemediationPolicy\nmetadata: { name: p }\nspec: { match: { cause: memory_leak }, action: { type: restart_workload, params: { factor: 2 } } }\n",
            "takes no parameters",
        ),
        (
            "policies: []\n---\n- just\n- a list\n",
            "expected a mapping",
        ),
    ] {
        let (_, errs) = errors_of(text);
        assert!(
            errs.iter().any(|e| e.message.contains(says)),
            "{text}: {errs:#?}"
        );
    }
}

#[test]
fn a_set_that_fails_to_load_gives_no_policies_at_all() {
    // One good document and one bad: the loader returns errors only, never the good half.
    let text = format!(
        "{DOCS}---\napiVersion: medic.dev/v1\nkind: RemediationPolicy\nmetadata: {{ name: x }}\nspec: {{ match: {{ cause: nope }}, action: restart_workload }}\n"
    );
    let (_, errs) = errors_of(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
}

#[test]
fn truncated_documents_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.yaml");
    let bytes = DOCS.as_bytes();
    for cut in (0..bytes.len()).step_by(7) {
        let Ok(text) = std::str::from_utf8(&bytes[..cut]) else {
            continue;
        };
        std::fs::write(&p, text).unwrap();
        // Either loads (a cut at a line end can still be valid) or says why.
        if let Err(errs) = load_policy_file(&p, &test_env) {
            assert!(!errs.is_empty());
            assert!(errs.iter().all(|e| !e.message.is_empty()));
        }
    }
}
