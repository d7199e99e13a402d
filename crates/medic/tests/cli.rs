//! The CLI's contract: `medic validate` lists every error and exits 2 (0 when valid);
//! `medic audit verify` refuses a missing store; Ctrl-C on `medic demo` leaves no process.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn medic() -> Command {
    Command::new(env!("CARGO_BIN_EXE_medic"))
}

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn validate_accepts_the_examples() {
    let out = medic()
        .arg("validate")
        .arg(examples().join("medic.yaml"))
        .arg(examples().join("policies/default.yaml"))
        .env("ESTATE_DIR", "/tmp/estate")
        .env("SUPERVISOR_URL", "http://127.0.0.1:7000")
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn validate_lists_every_error_with_positions_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("medic.yaml");
    std::fs::write(
        &cfg,
        "agent: { tick: fast }\nsources:\n  - name: logs\n    type: log_file\ncolour: blue\npolicies:\n  - name: p\n    match: { cause: memory_leek }\n    action: restart_workload\n    confidence_threshold: 1.5\n",
    )
    .expect("write");
    let out = medic().arg("validate").arg(&cfg).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("medic.yaml:")).collect();
    assert!(errors.len() >= 5, "expected every error, got:\n{text}");
    for (line, needle) in [
        (1, "tick"),
        (4, "log_file"),
        (5, "colour"),
        (8, "memory_leek"),
        (10, "1.5"),
    ] {
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&format!("medic.yaml:{line}:")) && e.contains(needle)),
            "no error at line {line} mentioning {needle}:\n{text}"
        );
    }
}

#[test]
fn audit_verify_refuses_a_missing_store() {
    let out = medic()
        .args(["audit", "verify", "--store", "/nonexistent/medic.db"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

/// Processes whose command line mentions this run's directory.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline"))
            && String::from_utf8_lossy(&cmd).contains(needle)
        {
            found.push(pid);
        }
    }
    found
}

#[test]
fn ctrl_c_on_the_demo_leaves_no_process_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    let mut child = medic()
        .args(["demo", "--warmup", "600", "--dir"])
        .arg(&run)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start demo");
    let needle = run.display().to_string();
    // Wait until the estate's services run.
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_mentioning(&needle).len() < 8 {
        assert!(Instant::now() < deadline, "the estate did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("send SIGINT");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "medic demo did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(130));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_mentioning(&needle);
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            for p in &left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*p as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            panic!("processes left behind after Ctrl-C: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `audit keygen`, `audit verify --public-key --checkpoints` and `audit export`: a chain
/// rewritten consistently by someone who could write the store (but not the key) is caught.
#[test]
fn audit_checkpoints_are_signed_verified_and_exported() {
    use medic_core::{AuditEvent, Ts};
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("audit.key");
    let out = medic()
        .args(["audit", "keygen", "--out"])
        .arg(&key)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit.key.pub"));
    // A second keygen never overwrites the key.
    let again = medic()
        .args(["audit", "keygen", "--out"])
        .arg(&key)
        .output()
        .expect("run");
    assert!(!again.status.success());

    let db = dir.path().join("medic.db");
    let checkpoints = dir.path().join("checkpoints.jsonl");
    {
        let store = medic_store::Store::open(&db).expect("store");
        let signer = medic_store::checkpoint::SigningKey::load(&key).expect("key");
        for i in 0..4 {
            store
                .append_audit(
                    Ts(1_000 + i),
                    &AuditEvent::IncidentClosed {
                        incident: format!("inc-{i}"),
                        reason: "done".into(),
                    },
                )
                .expect("append");
        }
        store
            .checkpoint(&signer, &checkpoints, Ts(2_000))
            .expect("sign");
    }
    let verify = || {
        medic()
            .args(["audit", "verify", "--store"])
            .arg(&db)
            .arg("--public-key")
            .arg(dir.path().join("audit.key.pub"))
            .arg("--checkpoints")
            .arg(&checkpoints)
            .output()
            .expect("run")
    };
    let ok = verify();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("signed checkpoints verified: 1"));
    let export = medic()
        .args(["audit", "export", "--format", "jsonl", "--store"])
        .arg(&db)
        .output()
        .expect("run");
    assert!(export.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[3]["seq"], 4);

    // Rewrite record 2 and rehash everything after it, anchor included: the chain checks out,
    // the signature does not.
    medic_store::testing::rewrite_chain(&db, |seq, p| {
        if seq == 2 {
            p.replace("done", "forged")
        } else {
            p.to_string()
        }
    })
    .expect("rewrite");
    let plain = medic()
        .args(["audit", "verify", "--store"])
        .arg(&db)
        .output()
        .expect("run");
    assert!(plain.status.success(), "the rewrite is self-consistent");
    let caught = verify();
    assert_eq!(caught.status.code(), Some(1));
    let text = String::from_utf8_lossy(&caught.stdout);
    assert!(
        text.contains("does not match its signed checkpoints") && text.contains("rewritten"),
        "{text}"
    );
}

/// `medic pause` / `resume` (audited with who and why, surviving restarts since they live in
/// the store) and `medic approve` refusing what is not waiting.
#[test]
fn pause_resume_and_answers_are_recorded_with_who_and_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("medic.db");
    drop(medic_store::Store::open(&db).expect("store"));
    let run = |args: &[&str]| {
        medic()
            .args(args)
            .arg("--store")
            .arg(&db)
            .output()
            .expect("run")
    };
    let p = run(&["pause", "--reason", "failover", "--by", "carol"]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let listed = run(&["approvals"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("PAUSED by carol"));
    assert!(run(&["resume", "--reason", "done"]).status.success());
    assert_eq!(run(&["resume", "--reason", "again"]).status.code(), Some(1));
    let no = run(&["approve", "inc-none", "--reason", "ok"]);
    assert_eq!(no.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no.stdout).contains("no incident inc-none"));
    // A reason is required.
    assert!(!run(&["reject", "inc-none"]).status.success());
    let store = medic_store::Store::open(&db).expect("store");
    let kinds: Vec<String> = store
        .audit_records()
        .expect("records")
        .into_iter()
        .map(|r| format!("{} {}", r.kind, r.payload))
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(
        kinds[0].starts_with("paused")
            && kinds[0].contains("carol")
            && kinds[0].contains("failover")
    );
    assert!(kinds[1].starts_with("resumed") && kinds[1].contains("done"));
    assert!(store.verify_audit().expect("verify").is_intact());
}
