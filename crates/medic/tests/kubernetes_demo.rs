//! `medic demo --kubernetes --report json`: the demo's services as Deployments on the sandbox
//! cluster (a real control plane whose pods are real processes), each of the seven faults done
//! the Kubernetes way, and medic — as a ServiceAccount with only the `medic rbac` rules —
//! healing each through the API server: one incident, the right cause, target and action,
//! detected within 20 s and recovered within 90 s of the injection.

use std::process::Command;

#[path = "common/demo_report.rs"]
mod demo_report;

#[test]
fn kubernetes_demo_heals_every_fault_through_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_medic"));
    cmd.args(["demo", "--kubernetes", "--report", "json", "--dir"])
        .arg(&run);
    // The kubelet the test kit built (the harness finds or builds it otherwise).
    if std::env::var_os("MEDIC_KUBELET").is_none()
        && let Ok(k) = medic_sandbox::harness::find_kubelet()
    {
        cmd.env("MEDIC_KUBELET", k);
    }
    let out = cmd.output().expect("run medic demo --kubernetes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("stdout is not one JSON object ({e}):\n{stdout}\n--- stderr:\n{stderr}")
    });
    let ctx = format!("report: {report:#}\n--- timeline:\n{stderr}");

    demo_report::check_report(&report, &demo_report::expected("medic-demo"), 90.0, &ctx);
    assert!(out.status.success(), "exit {:?}\n{ctx}", out.status);

    // medic ran with the ServiceAccount's token, never the admin one.
    let kubeconfig = std::fs::read_to_string(run.join("medic-sa.kubeconfig")).unwrap();
    assert!(kubeconfig.contains("name: medic"), "{kubeconfig}");
    let written = std::fs::read_to_string(run.join("medic.yaml")).unwrap();
    assert!(written.contains("${MEDIC_KUBECONFIG}"), "{written}");
}
