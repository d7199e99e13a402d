//! End to end: `medic demo --report json` on the real demo estate (real processes, real logs,
//! real metrics, real actions), with a shortened warm-up. Asserts what issue #2's "done when"
//! asks: one incident per fault, right cause and service on top, right action, verified,
//! detection ≤ 20 s and recovery ≤ 60 s, no disruptive action for a planned campaign, no
//! action on a healthy service, an intact audit chain that `medic audit verify` agrees with.

use std::process::Command;

#[path = "common/demo_report.rs"]
mod demo_report;

#[test]
fn demo_heals_every_fault_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("medic.db");
    let out = Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["demo", "--report", "json", "--warmup", "15", "--dir"])
        .arg(dir.path().join("run"))
        .arg("--store")
        .arg(&store)
        .output()
        .expect("run medic demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("stdout is not one JSON object ({e}):\n{stdout}\n--- stderr:\n{stderr}")
    });
    let ctx = format!("report: {report:#}\n--- timeline:\n{stderr}");

    demo_report::check_report(&report, &demo_report::expected(""), 60.0, &ctx);
    let rows = report["incidents"].as_array().expect("incidents array");
    let planned = &rows[6];
    assert!(
        !matches!(
            planned["action"].as_str(),
            Some("restart_workload" | "rollback_release" | "revert_config")
        ),
        "planned campaign got a disruptive action: {ctx}"
    );
    assert!(
        out.status.success(),
        "demo exit status {:?}\n{ctx}",
        out.status
    );

    // The CLI's own check agrees.
    let verify = Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["audit", "verify", "--store"])
        .arg(&store)
        .output()
        .expect("run medic audit verify");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // And catches tampering with the very same file.
    let conn = rusqlite_free_tamper(&store);
    assert!(
        conn,
        "could not tamper with the store for the negative check"
    );
    let verify = Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["audit", "verify", "--store"])
        .arg(&store)
        .output()
        .expect("run medic audit verify");
    assert!(
        !verify.status.success(),
        "tampered store verified: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("record"));
}

/// Edits one audit record in place through the store crate's own connection-free path: the
/// `sqlite3` CLI may not be installed, so use medic-store's test hook.
fn rusqlite_free_tamper(store: &std::path::Path) -> bool {
    medic_store::testing::tamper_payload(store, 3).is_ok()
}
