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

    replay_with_a_stricter_policy_set(&store, dir.path());

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

/// `medic replay` on the demo's recorded incidents: the demo's own policies with every
/// hour blocked would have denied each action that ran, and replay says so per incident.
fn replay_with_a_stricter_policy_set(store: &std::path::Path, dir: &std::path::Path) {
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/policies/default.yaml");
    let text = std::fs::read_to_string(&policies).expect("read default policies");
    let strict = text.replace(
        "    mode: auto\n",
        "    mode: auto\n    guardrails: { blocked_windows: [\"00:00-24:00 UTC\"] }\n",
    );
    assert_ne!(strict, text, "no `mode: auto` policy to make stricter");
    let strict_dir = dir.join("strict");
    std::fs::create_dir_all(&strict_dir).unwrap();
    std::fs::write(strict_dir.join("policies.yaml"), strict).unwrap();
    let before = std::fs::read(store).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["replay", "--json", "--policies"])
        .arg(&strict_dir)
        .arg("--from")
        .arg(store)
        .output()
        .expect("run medic replay");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let executed: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| r["happened"]["decision"] == "execute")
        .collect();
    assert!(executed.len() >= 5, "too few executed incidents: {stdout}");
    for r in &executed {
        let c = &r["candidate"];
        let why = c["why"].as_str().unwrap_or("");
        assert!(
            (c["decision"] == "deny" && why.starts_with("blocked_window:"))
                || c["decision"] == "no_plan",
            "{r}"
        );
        assert_eq!(r["differs"], true, "{r}");
    }
    // Replay touches nothing.
    assert_eq!(
        std::fs::read(store).unwrap(),
        before,
        "replay changed the store"
    );
}
