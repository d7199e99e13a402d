//! medic killed in the middle of an incident and started again neither repeats nor loses the
//! action. The agent (`medic run`) crashes at a failpoint — before calling the actuator, or
//! after the actuator acted but before the result was recorded — and is started again on the
//! same store; the supervisor's own action ledger must show the action exactly once and the
//! incident must end verified.

use medic_core::{ExecutionStatus, IncidentState};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Estate {
    child: Child,
    dir: PathBuf,
    addr: String,
}

impl Drop for Estate {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_estate(dir: &Path) -> Estate {
    let child = Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["demo-estate", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start estate");
    let addr_file = dir.join("supervisor.addr");
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        if let Ok(s) = std::fs::read_to_string(&addr_file)
            && !s.trim().is_empty()
        {
            break s.trim().to_string();
        }
        assert!(Instant::now() < deadline, "estate did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    Estate {
        child,
        dir: dir.to_path_buf(),
        addr,
    }
}

fn agent(estate: &Estate, store: &Path, failpoint: Option<&str>) -> Child {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/medic.yaml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_medic"));
    cmd.args(["run", "--config"])
        .arg(config)
        .env("ESTATE_DIR", &estate.dir)
        .env("SUPERVISOR_URL", format!("http://{}", estate.addr))
        .env("MEDIC_STORE", store)
        .env("MEDIC_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match failpoint {
        Some(f) => cmd.env("MEDIC_FAILPOINT", f),
        None => cmd.env_remove("MEDIC_FAILPOINT"),
    };
    cmd.spawn().expect("start medic run")
}

fn post(addr: &str, path: &str, body: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect estate");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "POST {path}: {resp}");
}

/// Executed actions in the supervisor's ledger (one JSON object per line).
fn supervisor_actions(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("actions.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn crash_and_resume(failpoint: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let estate = start_estate(&tmp.path().join("estate"));
    let store_path = tmp.path().join("medic.db");

    let mut first = agent(&estate, &store_path, Some(failpoint));
    std::thread::sleep(Duration::from_secs(15)); // baselines
    post(
        &estate.addr,
        "/demo/faults",
        r#"{"kind":"dependency_down"}"#,
    );
    let code = wait_exit(&mut first, Duration::from_secs(60));
    assert_eq!(code, Some(86), "agent should stop at failpoint {failpoint}");

    let before = supervisor_actions(&estate.dir).len();
    let expected_before = if failpoint == "before_action" { 0 } else { 1 };
    assert_eq!(
        before, expected_before,
        "actions executed before the restart"
    );
    {
        let store = medic_store::Store::open(&store_path).expect("open store");
        let active = store.active_incidents().expect("incidents");
        assert_eq!(active.len(), 1, "one active incident left by the crash");
        assert_eq!(active[0].state, IncidentState::Acting);
        let pending = &active[0].executions[0];
        assert_eq!(pending.status, ExecutionStatus::Pending);
    }

    let mut second = agent(&estate, &store_path, None);
    let deadline = Instant::now() + Duration::from_secs(90);
    let resolved = loop {
        let store = medic_store::Store::open(&store_path).expect("open store");
        let incidents = store.incidents().expect("incidents");
        if let Some(i) = incidents.iter().find(|i| i.state.is_terminal()) {
            break i.clone();
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("incident not finished after restart: {incidents:#?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = second.kill();
    let _ = second.wait();

    assert_eq!(resolved.state, IncidentState::Resolved, "{resolved:#?}");
    let actions = supervisor_actions(&estate.dir);
    assert_eq!(
        actions.len(),
        1,
        "exactly one execution across the crash: {actions:#?}"
    );
    assert_eq!(resolved.executions.len(), 1, "{resolved:#?}");
    assert_eq!(resolved.executions[0].status, ExecutionStatus::Succeeded);
    let store = medic_store::Store::open(&store_path).expect("open store");
    assert!(store.verify_audit().expect("verify").broken.is_none());
}

#[test]
fn crash_after_acting_before_recording_does_not_repeat_the_action() {
    crash_and_resume("after_action_before_record");
}

#[test]
fn crash_before_acting_does_not_lose_the_action() {
    crash_and_resume("before_action");
}
