//! The supervisor against real processes on loopback. The child is a small python3 HTTP
//! server whose behaviour is chosen by its release's extra argument and its config.

use medic_act::local::LocalActuator;
use medic_act::{ActError, Actuator};
use medic_core::{Action, ActionKind, ChangeEvent, ChangeKind, ProcessEventRecord, Ts};
use medic_demo::supervisor::{ReleaseSpec, RestartPolicy, Supervisor, WorkloadSpec};
use std::path::Path;
use std::time::{Duration, Instant};

/// argv: PORT INSTANCE_DIR CONFIG RELEASE MODE
const CHILD: &str = r#"
import sys, os, json, time, threading, http.server
port, idir, cfg_path, release, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
parent = os.getppid()
def watch_parent():
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.2)
threading.Thread(target=watch_parent, daemon=True).start()
counter = os.path.join(idir, "starts")
starts = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
open(counter, "w").write(str(starts))
cfg = json.load(open(cfg_path))
print("start", starts, "release", release, flush=True)
if cfg.get("crash"):
    print("fatal: bad config", file=sys.stderr, flush=True)
    sys.exit(3)
if mode == "crash" or (mode == "crash_first" and starts == 1):
    time.sleep(0.1)
    sys.exit(2)
if mode == "exit0":
    sys.exit(0)
if mode == "stubborn":
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "alloc":
    hog = b"\x01" * (300 * 1024 * 1024)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"release": release, "config": cfg}).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

fn spec(name: &str, replicas: u32, mode: &str) -> WorkloadSpec {
    WorkloadSpec {
        name: name.into(),
        replicas,
        restart: RestartPolicy::Always,
        memory_limit_bytes: None,
        argv: [
            "python3",
            "-c",
            CHILD,
            "{port}",
            "{instance_dir}",
            "{config}",
            "{release}",
        ]
        .map(String::from)
        .to_vec(),
        env: vec![],
        releases: vec![
            ReleaseSpec {
                name: "v1".into(),
                extra_args: vec![mode.into()],
            },
            ReleaseSpec {
                name: "v2".into(),
                extra_args: vec!["serve".into()],
            },
            ReleaseSpec {
                name: "bad".into(),
                extra_args: vec!["crash".into()],
            },
        ],
        release: "v1".into(),
        config: serde_json::json!({"n": 1}),
        depends_on: vec![],
    }
}

fn action(kind: ActionKind, target: &str, replicas: Option<u32>) -> Action {
    Action {
        kind,
        target: target.into(),
        replicas,
        workload: None,
        memory_limit_bytes: None,
    }
}

fn events(dir: &Path) -> Vec<ProcessEventRecord> {
    read_lines(&dir.join("events.jsonl"))
}

fn changes(dir: &Path) -> Vec<ChangeEvent> {
    read_lines(&dir.join("changes.jsonl"))
}

fn read_lines<T: serde::de::DeserializeOwned>(p: &Path) -> Vec<T> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn exits<'a>(evs: &'a [ProcessEventRecord], instance: &str) -> Vec<&'a ProcessEventRecord> {
    evs.iter()
        .filter(|e| e.instance == instance && e.event.kind == medic_core::ProcessEventKind::Exited)
        .collect()
}

async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn alive(pid: u32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

async fn pids(sup: &Supervisor) -> Vec<u32> {
    sup.workloads()
        .await
        .iter()
        .flat_map(|w| w.instances.iter().filter_map(|i| i.pid))
        .collect()
}

async fn get(addr: &str) -> serde_json::Value {
    reqwest::get(format!("http://{addr}/"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn start_writes_estate_files_and_shutdown_leaves_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::start(
        dir.path(),
        vec![spec("api", 2, "serve"), spec("db", 1, "serve")],
    )
    .await
    .unwrap();
    let d = dir.path();
    let ws = sup.workloads().await;
    assert_eq!(ws.len(), 2);
    let api = ws.iter().find(|w| w.service == "api").unwrap();
    assert_eq!(api.replicas, 2);
    assert_eq!(api.config_version, "c1");
    let ports: Vec<u16> = api.instances.iter().map(|i| i.port).collect();
    assert_ne!(ports[0], ports[1]);
    for i in &api.instances {
        assert!(i.running);
        let pid: u32 = std::fs::read_to_string(d.join(format!("pids/{}.pid", i.instance)))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(Some(pid), i.pid);
        // The process serves on its port with its release and config.
        let body = get(&format!("127.0.0.1:{}", i.port)).await;
        assert_eq!(body["release"], "v1");
        assert_eq!(body["config"]["n"], 1);
        let log = std::fs::read_to_string(d.join(format!("logs/{}.log", i.instance))).unwrap();
        assert!(log.contains("start 1 release v1"), "{log}");
    }
    let targets: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("targets.json")).unwrap()).unwrap();
    assert_eq!(targets.as_array().unwrap().len(), 3);
    assert_eq!(targets[0]["labels"]["instance"], "api-0");
    assert_eq!(targets[0]["targets"][0], format!("127.0.0.1:{}", ports[0]));
    let ep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("endpoints/api.json")).unwrap())
            .unwrap();
    assert_eq!(
        ep,
        serde_json::json!({"service":"api","addresses":[format!("127.0.0.1:{}", ports[0]), format!("127.0.0.1:{}", ports[1])]})
    );
    assert_eq!(
        std::fs::read_to_string(d.join("supervisor.addr")).unwrap(),
        sup.addr().to_string()
    );
    assert!(d.join("configs/api/c1.json").exists());
    let started = events(d);
    assert_eq!(started.len(), 3);
    assert!(
        started
            .iter()
            .all(|e| e.event.version.as_deref() == Some("v1"))
    );

    let running = pids(&sup).await;
    assert_eq!(running.len(), 3);
    sup.shutdown().await;
    for pid in running {
        assert!(!alive(pid), "pid {pid} outlived shutdown");
    }
    assert!(!d.join("pids/api-0.pid").exists());
    let evs = events(d);
    assert!(
        exits(&evs, "api-0")
            .iter()
            .all(|e| e.event.reason == "Stopped")
    );
    assert!(!d.join("supervisor.addr").exists());
    let err = sup
        .execute("k", &action(ActionKind::RestartWorkload, "api", None))
        .await
        .unwrap_err();
    assert!(matches!(err, ActError::ShutDown), "{err}");
}

#[tokio::test]
async fn crash_restarts_with_backoff_and_keeps_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Crashes on its first start, serves on the second: start() must still succeed.
    let sup = Supervisor::start(d, vec![spec("api", 1, "crash_first")])
        .await
        .unwrap();
    let ws = sup.workloads().await;
    let inst = &ws[0].instances[0];
    assert!(inst.running);
    assert_eq!(inst.restarts, 1);
    assert_eq!(inst.last_exit_reason.as_deref(), Some("Error"));
    let evs = events(d);
    let ex = exits(&evs, "api-0");
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].event.exit_code, Some(2));
    assert!(ex[0].event.is_unexpected_exit());
    // The second start saw the first start's scratch file.
    assert_eq!(
        std::fs::read_to_string(d.join("instances/api-0/starts")).unwrap(),
        "2"
    );
    let started: Vec<Ts> = evs
        .iter()
        .filter(|e| e.event.kind == medic_core::ProcessEventKind::Started)
        .map(|e| e.ts)
        .collect();
    assert_eq!(started.len(), 2);
    assert!(
        started[1].secs_since(ex[0].ts) >= 0.9,
        "restart came before the 1 s backoff"
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn crash_loop_backs_off_exponentially() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Start healthy, then switch to a release that crashes at once.
    let sup = Supervisor::start(d, vec![spec("api", 1, "serve")])
        .await
        .unwrap();
    sup.deploy("api", "bad", "test").await.unwrap();
    wait_for("three crashes", Duration::from_secs(12), || {
        exits(&events(d), "api-0")
            .iter()
            .filter(|e| e.event.reason == "Error")
            .count()
            >= 3
    })
    .await;
    let evs = events(d);
    let crash_times: Vec<Ts> = exits(&evs, "api-0")
        .iter()
        .filter(|e| e.event.reason == "Error")
        .map(|e| e.ts)
        .collect();
    let gap1 = crash_times[1].secs_since(crash_times[0]);
    let gap2 = crash_times[2].secs_since(crash_times[1]);
    // Lower bounds are the backoff itself; upper bounds leave room for a loaded machine.
    assert!((0.9..2.5).contains(&gap1), "first backoff {gap1}");
    assert!((1.9..4.5).contains(&gap2), "second backoff {gap2}");
    assert!(sup.workloads().await[0].instances[0].restarts >= 2);
    sup.shutdown().await;
}

#[tokio::test]
async fn never_policy_stays_down_until_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut s = spec("cache", 1, "serve");
    s.restart = RestartPolicy::Never;
    let sup = Supervisor::start(d, vec![s]).await.unwrap();
    let pid = sup.workloads().await[0].instances[0].pid.unwrap();
    // Killed by a signal the supervisor did not send: Error, and no restart.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("exit recorded", Duration::from_secs(5), || {
        !exits(&events(d), "cache-0").is_empty()
    })
    .await;
    let evs = events(d);
    let ex = exits(&evs, "cache-0");
    assert_eq!(ex[0].event.reason, "Error");
    assert_eq!(ex[0].event.signal, Some(9));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let inst = sup.workloads().await[0].instances[0].clone();
    assert!(!inst.running);
    assert_eq!(inst.restarts, 0);
    assert!(!d.join("pids/cache-0.pid").exists());
    let r = sup
        .execute("fix-1", &action(ActionKind::RestartWorkload, "cache", None))
        .await
        .unwrap();
    assert!(
        r.applied && r.detail.contains("cache-0 ready"),
        "{}",
        r.detail
    );
    assert!(sup.workloads().await[0].instances[0].running);
    sup.shutdown().await;
}

#[tokio::test]
async fn memory_limit_kills_as_oom() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Release v1 allocates 300 MiB; start on v2 (plain server) and deploy v1.
    let mut hog = spec("hog", 1, "alloc");
    hog.release = "v2".into();
    hog.memory_limit_bytes = Some(64 * 1024 * 1024);
    hog.restart = RestartPolicy::Never;
    let mut ok = spec("ok", 1, "serve");
    ok.memory_limit_bytes = Some(64 * 1024 * 1024);
    let sup = Supervisor::start(d, vec![ok, hog]).await.unwrap();
    sup.deploy("hog", "v1", "test").await.unwrap();
    wait_for("OOM kill", Duration::from_secs(10), || {
        exits(&events(d), "hog-0")
            .iter()
            .any(|e| e.event.reason == "OOMKilled")
    })
    .await;
    let evs = events(d);
    let oom = exits(&evs, "hog-0")
        .into_iter()
        .find(|e| e.event.reason == "OOMKilled")
        .unwrap();
    assert_eq!(oom.event.signal, Some(9));
    assert_eq!(oom.event.version.as_deref(), Some("v1"));
    let ws = sup.workloads().await;
    let hog = ws.iter().find(|w| w.service == "hog").unwrap();
    assert_eq!(
        hog.instances[0].last_exit_reason.as_deref(),
        Some("OOMKilled")
    );
    assert!(!hog.instances[0].running, "policy never must leave it down");
    let ok = ws.iter().find(|w| w.service == "ok").unwrap();
    assert!(ok.instances[0].running, "the small process was killed too");
    sup.shutdown().await;
}

#[tokio::test]
async fn restart_wipes_scratch_and_rolls_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sup = Supervisor::start(d, vec![spec("api", 2, "serve")])
        .await
        .unwrap();
    let before = sup.workloads().await[0].clone();
    std::fs::write(d.join("instances/api-0/junk"), "x").unwrap();
    let r = sup
        .execute("r1", &action(ActionKind::RestartWorkload, "api", None))
        .await
        .unwrap();
    assert!(r.applied);
    assert!(r.detail.contains("api-0 ready") && r.detail.contains("api-1 ready"));
    assert!(!d.join("instances/api-0/junk").exists());
    assert_eq!(
        std::fs::read_to_string(d.join("instances/api-0/starts")).unwrap(),
        "1"
    );
    let after = sup.workloads().await[0].clone();
    for (b, a) in before.instances.iter().zip(&after.instances) {
        assert_eq!(b.port, a.port, "port must survive restarts");
        assert_ne!(b.pid, a.pid);
        assert!(a.running);
        assert_eq!(a.last_exit_reason.as_deref(), Some("Stopped"));
    }
    // Rolling: api-0's replacement started before api-1 was stopped.
    let evs = events(d);
    let pos = |inst: &str, kind| {
        evs.iter()
            .rposition(|e| e.instance == inst && e.event.kind == kind)
            .unwrap()
    };
    use medic_core::ProcessEventKind::{Exited, Started};
    assert!(pos("api-0", Started) < pos("api-1", Exited));
    let ch = changes(d);
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].kind, ChangeKind::Remediation);
    assert_eq!(ch[0].service, "api");
    assert!(ch[0].description.contains("restart_workload"));
    sup.shutdown().await;
}

#[tokio::test]
async fn scale_up_and_down_rewrites_discovery_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sup = Supervisor::start(d, vec![spec("api", 1, "serve")])
        .await
        .unwrap();
    let read_ep = || -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("endpoints/api.json")).unwrap())
                .unwrap();
        serde_json::from_value(v["addresses"].clone()).unwrap()
    };
    let r = sup
        .execute("s3", &action(ActionKind::ScaleWorkload, "api", Some(3)))
        .await
        .unwrap();
    assert!(r.applied, "{}", r.detail);
    assert_eq!(sup.replica_count("api"), Some(3));
    let eps = read_ep();
    assert_eq!(eps.len(), 3);
    for a in &eps {
        get(a).await;
    }
    let targets: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("targets.json")).unwrap()).unwrap();
    assert_eq!(targets.as_array().unwrap().len(), 3);
    let removed_pid = sup.workloads().await[0].instances[2].pid.unwrap();

    let r = sup
        .execute("s1", &action(ActionKind::ScaleWorkload, "api", Some(1)))
        .await
        .unwrap();
    assert!(
        r.detail.contains("api-2") && r.detail.contains("api-1"),
        "{}",
        r.detail
    );
    assert_eq!(read_ep(), eps[..1].to_vec());
    assert!(!alive(removed_pid));
    assert!(!d.join("pids/api-2.pid").exists());
    assert!(!d.join("instances/api-2").exists());
    let ch = changes(d);
    assert_eq!(
        (ch[1].from.as_deref(), ch[1].to.as_deref()),
        (Some("3"), Some("1"))
    );

    for bad in [Some(0), Some(17), None] {
        let e = sup
            .execute("bad", &action(ActionKind::ScaleWorkload, "api", bad))
            .await
            .unwrap_err();
        assert!(matches!(e, ActError::Rejected(_)), "{e}");
    }
    sup.shutdown().await;
}

#[tokio::test]
async fn rollback_and_revert_need_a_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sup = Supervisor::start(d, vec![spec("api", 1, "serve")])
        .await
        .unwrap();
    for kind in [ActionKind::RollbackRelease, ActionKind::RevertConfig] {
        let e = sup
            .execute("x", &action(kind, "api", None))
            .await
            .unwrap_err();
        assert!(
            matches!(e, ActError::Rejected(ref m) if m.contains("no previous")),
            "{e}"
        );
    }
    let e = sup
        .execute("x", &action(ActionKind::RestartWorkload, "nope", None))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("\"api\""),
        "known services not listed: {e}"
    );

    let port = sup.workloads().await[0].instances[0].port;
    let addr = format!("127.0.0.1:{port}");
    sup.deploy("api", "v2", "ci").await.unwrap();
    sup.settle("api").await.unwrap();
    assert_eq!(get(&addr).await["release"], "v2");
    let version = sup
        .set_config("api", serde_json::json!({"n": 2}), "alice")
        .await
        .unwrap();
    assert_eq!(version, "c2");
    sup.settle("api").await.unwrap();
    assert_eq!(get(&addr).await["config"]["n"], 2);
    let w = sup.workloads().await[0].clone();
    assert_eq!(w.previous_release.as_deref(), Some("v1"));
    assert_eq!(w.previous_config_version.as_deref(), Some("c1"));

    let r = sup
        .execute("rb", &action(ActionKind::RollbackRelease, "api", None))
        .await
        .unwrap();
    assert!(r.detail.contains("from v2 to v1"), "{}", r.detail);
    assert_eq!(get(&addr).await["release"], "v1");
    let r = sup
        .execute("rv", &action(ActionKind::RevertConfig, "api", None))
        .await
        .unwrap();
    assert!(r.detail.contains("from c2 to c1"), "{}", r.detail);
    assert_eq!(get(&addr).await["config"]["n"], 1);
    let kinds: Vec<ChangeKind> = changes(d).iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ChangeKind::Deploy,
            ChangeKind::ConfigChange,
            ChangeKind::Remediation,
            ChangeKind::Remediation
        ]
    );
    let e = sup.deploy("api", "v9", "ci").await.unwrap_err();
    assert!(matches!(e, ActError::Rejected(_)));
    sup.shutdown().await;
}

#[tokio::test]
async fn bad_config_does_not_hang_set_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sup = Supervisor::start(d, vec![spec("api", 1, "serve")])
        .await
        .unwrap();
    let t0 = Instant::now();
    sup.set_config("api", serde_json::json!({"crash": true}), "chaos")
        .await
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2));
    wait_for("bad config crash", Duration::from_secs(5), || {
        exits(&events(d), "api-0").iter().any(|e| {
            e.event.exit_code == Some(3) && e.event.config_version.as_deref() == Some("c2")
        })
    })
    .await;
    let log = std::fs::read_to_string(d.join("logs/api-0.log")).unwrap();
    assert!(
        log.contains("fatal: bad config"),
        "stderr not in log: {log}"
    );
    // Shutdown while the rollout is still waiting for readiness must not hang or leak.
    let t0 = Instant::now();
    sup.shutdown().await;
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(pids(&sup).await.is_empty());
}

#[tokio::test]
async fn idempotency_holds_concurrently_and_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sup = Supervisor::start(d, vec![spec("api", 1, "serve")])
        .await
        .unwrap();
    let restart = action(ActionKind::RestartWorkload, "api", None);
    let (a, b) = tokio::join!(sup.execute("k1", &restart), sup.execute("k1", &restart));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(
        a.applied, b.applied,
        "exactly one of two concurrent calls applies"
    );
    let second = if a.applied { &b } else { &a };
    assert!(
        second.detail.starts_with("already executed at "),
        "{}",
        second.detail
    );
    let started = |d: &Path| {
        events(d)
            .iter()
            .filter(|e| e.event.kind == medic_core::ProcessEventKind::Started)
            .count()
    };
    assert_eq!(started(d), 2);
    let e = sup
        .execute("k1", &action(ActionKind::ScaleWorkload, "api", Some(2)))
        .await
        .unwrap_err();
    assert!(matches!(e, ActError::Rejected(_)), "{e}");
    sup.shutdown().await;

    let sup = Supervisor::start(d, vec![spec("api", 1, "serve")])
        .await
        .unwrap();
    let before = started(d);
    let r = sup.execute("k1", &restart).await.unwrap();
    assert!(!r.applied, "replayed key executed again after restart");
    assert_eq!(started(d), before);
    assert!(sup.execute("k2", &restart).await.unwrap().applied);
    let noop = sup
        .execute("k3", &action(ActionKind::NoAction, "api", None))
        .await
        .unwrap();
    assert!(noop.applied);
    assert_eq!(started(d), before + 1);
    sup.shutdown().await;
}

#[tokio::test]
async fn http_api_and_local_actuator() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sup = Supervisor::start(d, vec![spec("api", 1, "serve")])
        .await
        .unwrap();
    let base = format!("http://{}", sup.addr());
    let http = reqwest::Client::new();
    let post = |path: &str, body: &str| {
        http.post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    for (path, body) in [
        ("/v1/actions", ""),
        ("/v1/actions", "{"),
        ("/v1/actions", "[]"),
        ("/v1/actions", r#"{"idempotency_key":"k"}"#),
        (
            "/v1/actions",
            r#"{"idempotency_key":"k","action":{"kind":"rm -rf","target":"api"}}"#,
        ),
        (
            "/v1/actions",
            r#"{"idempotency_key":"","action":{"kind":"no_action","target":"api"}}"#,
        ),
        (
            "/v1/actions",
            r#"{"idempotency_key":"k","action":{"kind":"no_action","target":"api"},"extra":1}"#,
        ),
        ("/v1/deploy", r#"{"service":"api"}"#),
        ("/v1/config", r#"{"service":"api"}"#),
        ("/v1/calendar", r#"{"kind":"planned"}"#),
        (
            "/v1/calendar",
            r#"{"kind":"planned","service":"api","start":10,"end":5}"#,
        ),
        ("/v1/actions", "\u{0}\u{1}garbage"),
    ] {
        let resp = post(path, body).await.unwrap();
        assert_eq!(resp.status(), 400, "{path} {body:?}");
        let j: serde_json::Value = resp.json().await.unwrap();
        assert!(j["error"].as_str().unwrap().contains("expected"), "{j}");
    }
    let huge = format!(r#"{{"service":"api","config":"{}"}}"#, "x".repeat(2 << 20));
    assert_eq!(post("/v1/config", &huge).await.unwrap().status(), 413);
    let resp = post(
        "/v1/actions",
        r#"{"idempotency_key":"k","action":{"kind":"rollback_release","target":"api"}}"#,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 409);
    let resp = post(
        "/v1/deploy",
        r#"{"service":"ghost","release":"v1","author":"a"}"#,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 409);
    let resp = post(
        "/v1/calendar",
        r#"{"kind":"planned","service":"api","start":10,"end":20,"description":"sale"}"#,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(changes(d)[0].description, "sale");
    let resp = post(
        "/v1/config",
        r#"{"service":"api","config":{"n":5},"author":"a"}"#,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let j: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(j["config_version"], "c2");
    sup.settle("api").await.unwrap();
    let ws: serde_json::Value = http
        .get(format!("{base}/v1/workloads"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ws[0]["service"], "api");
    assert_eq!(ws[0]["restart"], "always");
    assert_eq!(ws[0]["config_version"], "c2");
    assert_eq!(ws[0]["instances"][0]["running"], true);

    let cfg = medic_config::LocalActuatorConfig {
        supervisor_url: base.clone(),
        timeout: Duration::from_secs(30),
    };
    let act: Box<dyn Actuator> = Box::new(LocalActuator::new(&cfg).unwrap());
    assert_eq!(act.replicas("api").await.unwrap(), Some(1));
    assert_eq!(act.replicas("ghost").await.unwrap(), None);
    let scale = action(ActionKind::ScaleWorkload, "api", Some(2));
    let r = act.execute("a1", &scale).await.unwrap();
    assert!(r.applied);
    assert_eq!(act.replicas("api").await.unwrap(), Some(2));
    let r = act.execute("a1", &scale).await.unwrap();
    assert!(!r.applied && r.detail.contains("already executed"));
    let e = act
        .execute("a2", &action(ActionKind::RestartWorkload, "ghost", None))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ActError::Rejected(ref m) if m.contains("api")),
        "{e}"
    );

    // serve_with keeps the address and adds routes.
    let extra = axum::Router::new().route("/hello", axum::routing::get(|| async { "hi" }));
    sup.serve_with(extra).await.unwrap();
    assert_eq!(
        http.get(format!("{base}/hello"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "hi"
    );
    assert_eq!(act.replicas("api").await.unwrap(), Some(2));

    sup.shutdown().await;
    let e = act.replicas("api").await.unwrap_err();
    assert!(matches!(e, ActError::Unreachable(_)), "{e}");
}

#[tokio::test]
async fn local_actuator_rejects_bad_urls() {
    for url in [
        "",
        "https://x:1",
        "127.0.0.1:80",
        "http://",
        "http://h:1/path",
        "ftp://h",
    ] {
        let cfg = medic_config::LocalActuatorConfig {
            supervisor_url: url.into(),
            timeout: Duration::from_secs(1),
        };
        assert!(LocalActuator::new(&cfg).is_err(), "{url:?} accepted");
    }
    let cfg = medic_config::LocalActuatorConfig {
        supervisor_url: "http://127.0.0.1:1/".into(),
        timeout: Duration::from_secs(1),
    };
    let act = LocalActuator::new(&cfg).unwrap();
    let e = act
        .execute("k", &action(ActionKind::NoAction, "api", None))
        .await
        .unwrap_err();
    assert!(matches!(e, ActError::Unreachable(_)), "{e}");
}

#[tokio::test]
async fn start_fails_cleanly_when_nothing_becomes_ready() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec("api", 1, "crash");
    s.restart = RestartPolicy::Never;
    let t0 = Instant::now();
    let e = Supervisor::start(dir.path(), vec![s]).await.err().unwrap();
    assert!(
        matches!(e, ActError::NotReady(ref m) if m.contains("api-0")),
        "{e}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "did not notice the crash early"
    );
    let mut missing = spec("api", 1, "serve");
    missing.argv = vec!["/nonexistent/medic-test-binary".into()];
    missing.restart = RestartPolicy::Never;
    let e = Supervisor::start(dir.path(), vec![missing])
        .await
        .err()
        .unwrap();
    assert!(matches!(e, ActError::NotReady(_)), "{e}");
    let log = std::fs::read_to_string(dir.path().join("logs/api-0.log")).unwrap();
    assert!(log.contains("cannot start"), "{log}");
    let mut bad = spec("api", 1, "serve");
    bad.release = "nope".into();
    let e = Supervisor::start(dir.path(), vec![bad])
        .await
        .err()
        .unwrap();
    assert!(matches!(e, ActError::Invalid(_)));
}

#[tokio::test]
async fn a_process_ignoring_sigterm_is_killed_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sup = Supervisor::start(d, vec![spec("api", 1, "stubborn")])
        .await
        .unwrap();
    let old = sup.workloads().await[0].instances[0].pid.unwrap();
    let t0 = Instant::now();
    let r = sup
        .execute("r", &action(ActionKind::RestartWorkload, "api", None))
        .await
        .unwrap();
    let took = t0.elapsed();
    assert!(r.detail.contains("api-0 ready"), "{}", r.detail);
    assert!(
        took >= Duration::from_millis(2900),
        "SIGKILL came early: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
    assert!(!alive(old));
    let evs = events(d);
    let ex = exits(&evs, "api-0");
    assert_eq!(ex[0].event.reason, "Stopped");
    assert_eq!(ex[0].event.signal, Some(9));
    sup.shutdown().await;
}

#[tokio::test]
async fn a_caller_giving_up_does_not_cancel_the_rollout() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::start(dir.path(), vec![spec("api", 2, "serve")])
        .await
        .unwrap();
    let before = pids(&sup).await;
    let restart = action(ActionKind::RestartWorkload, "api", None);
    let gave_up = tokio::time::timeout(Duration::from_millis(30), sup.execute("k", &restart)).await;
    assert!(
        gave_up.is_err(),
        "the restart finished too fast to test cancellation"
    );
    let again = sup.execute("k", &restart).await.unwrap();
    assert!(!again.applied, "{}", again.detail);
    assert!(again.detail.contains("api-1 ready"), "{}", again.detail);
    let after = pids(&sup).await;
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|p| !before.contains(p)));
    sup.shutdown().await;
}

#[tokio::test]
async fn an_action_supersedes_a_bad_rollout_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sup = Supervisor::start(d, vec![spec("api", 2, "serve")])
        .await
        .unwrap();
    sup.set_config("api", serde_json::json!({"crash": true}), "chaos")
        .await
        .unwrap();
    // The bad config reaches api-0, which crash-loops; the rollout is stuck waiting on it.
    wait_for("api-0 crashes on c2", Duration::from_secs(5), || {
        exits(&events(d), "api-0")
            .iter()
            .any(|e| e.event.config_version.as_deref() == Some("c2"))
    })
    .await;
    let report = sup
        .execute("k-revert", &action(ActionKind::RevertConfig, "api", None))
        .await
        .unwrap();
    assert!(report.applied, "{report:?}");
    // api-1 never ran the bad config: the revert superseded the rollout before it got there.
    let started_on_c2 = events(d).into_iter().any(|e| {
        e.instance == "api-1"
            && e.event.kind == medic_core::ProcessEventKind::Started
            && e.event.config_version.as_deref() == Some("c2")
    });
    assert!(!started_on_c2, "api-1 was given the bad config");
    let status = sup.workloads().await;
    assert_eq!(status[0].config_version, "c1");
    assert!(status[0].instances.iter().all(|i| i.running), "{status:?}");
    sup.shutdown().await;
}
