//! More end-to-end heals against the sandbox (a real control plane whose pods are host
//! processes; see `kubernetes_e2e.rs` for the first one). Each test starts its own sandbox,
//! runs the agent in-process and reads what it did from the store and the API:
//!
//! - a leaking container OOMKilled over and over: restart, then `set_resources` up to the
//!   policy's bound, then escalation (memory does not cure a leak);
//! - a container that needs more memory than its limit: restart does not help,
//!   `set_resources` heals it;
//! - a load surge on a scraped HTTP server: `scale_workload` within its bounds;
//! - the API server restarted mid-incident: the source resyncs, no action is doubled.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use kube::Client;
use kube::api::{Api, PostParams};
use medic_core::{
    ActionKind, Cause, Execution, ExecutionStatus, Incident, IncidentState, SystemClock, Ts,
};
use medic_sandbox::harness::Sandbox;
use medic_store::Store;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[path = "common/rollout.rs"]
mod rollout;
use rollout::wait_rollout;

const NS: &str = "shop";
const MI: u64 = 1 << 20;

/// Grows by 4 MB every 200 ms and does nothing else: a leak no memory limit can satisfy.
const LEAK_APP: &str = r#"
import time
print("leaking", flush=True)
chunks = []
while True:
    chunks.append(b"\x01" * (4 * 1024 * 1024))
    time.sleep(0.2)
"#;

/// Needs ~86 MiB resident (66 MiB of ballast touched once, plus the interpreter), then
/// serves: too much for 64Mi, comfortable in 96Mi.
const STEADY_APP: &str = r#"
import os, http.server
ballast = b"\x01" * (66 * 1024 * 1024)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
print("ballast ready, listening", flush=True)
http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), H).serve_forever()
"#;

/// An HTTP server with Prometheus metrics: `http_requests_total{code}` and the
/// `http_request_duration_seconds` histogram count every request but `/metrics` and
/// `/healthz` (the scrape and the readiness probe are not traffic).
const WEB_APP: &str = r##"
import os, time, threading, http.server
lock = threading.Lock()
BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]
state = {"count": 0, "sum": 0.0, "buckets": [0] * len(BUCKETS)}
class H(http.server.BaseHTTPRequestHandler):
    def reply(self, body, ctype="text/plain"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/metrics":
            with lock:
                n, s, b = state["count"], state["sum"], list(state["buckets"])
            lines = ["# TYPE http_requests_total counter",
                     'http_requests_total{code="200"} %d' % n,
                     "# TYPE http_request_duration_seconds histogram"]
            for le, c in zip(BUCKETS, b):
                lines.append('http_request_duration_seconds_bucket{le="%s"} %d' % (le, c))
            lines.append('http_request_duration_seconds_bucket{le="+Inf"} %d' % n)
            lines.append("http_request_duration_seconds_sum %f" % s)
            lines.append("http_request_duration_seconds_count %d" % n)
            self.reply(("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4")
            return
        if self.path == "/healthz":
            self.reply(b"ok")
            return
        t0 = time.monotonic()
        self.reply(b"ok")
        d = time.monotonic() - t0
        with lock:
            state["count"] += 1
            state["sum"] += d
            for i, le in enumerate(BUCKETS):
                if d <= le:
                    state["buckets"][i] += 1
    def log_message(self, *a):
        pass
print("listening", flush=True)
http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), H).serve_forever()
"##;

// ── the scene ────────────────────────────────────────────────────────────────────────────

async fn start_sandbox() -> Sandbox {
    // Starting the control plane blocks for 10-20 s: not on a runtime worker.
    tokio::task::spawn_blocking(|| {
        Sandbox::builder()
            .max_backoff(Duration::from_secs(2))
            .start()
    })
    .await
    .unwrap()
    .expect(
        "sandbox (scripts/k8s-sandbox build, then MEDIC_KUBELET or cargo build -p medic-sandbox)",
    )
}

/// The namespace, once its default ServiceAccount exists (pods need it).
async fn namespace(client: &Client) {
    let ns: Api<Namespace> = Api::all(client.clone());
    let n: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": NS}})).unwrap();
    ns.create(&PostParams::default(), &n)
        .await
        .expect("namespace");
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    let start = Instant::now();
    while sas.get_opt("default").await.ok().flatten().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no default ServiceAccount in {NS}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

struct App<'a> {
    name: &'a str,
    code: &'a str,
    replicas: i32,
    memory_limit: &'a str,
    /// Serves HTTP on 8080 (readiness on `probe_path`).
    probe_path: Option<&'a str>,
    /// Scraped by the source (`prometheus.io/*` annotations on the pod).
    scraped: bool,
}

fn deployment(app: &App) -> Deployment {
    let mut container = serde_json::json!({
        "name": "app",
        "image": format!("example.org/{}:1", app.name),
        "command": ["python3", "-c", app.code],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "resources": {"limits": {"memory": app.memory_limit}}
    });
    if let Some(path) = app.probe_path {
        container["ports"] = serde_json::json!([{"containerPort": 8080}]);
        container["readinessProbe"] =
            serde_json::json!({"httpGet": {"path": path, "port": 8080}, "periodSeconds": 1});
    }
    let mut pod_meta = serde_json::json!({"labels": {"app": app.name}});
    if app.scraped {
        pod_meta["annotations"] = serde_json::json!({
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "8080",
            "prometheus.io/path": "/metrics"
        });
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app.name, "namespace": NS},
        "spec": {
            "replicas": app.replicas,
            "selector": {"matchLabels": {"app": app.name}},
            "template": {
                "metadata": pod_meta,
                "spec": {"terminationGracePeriodSeconds": 2, "containers": [container]}
            }
        }
    }))
    .expect("deployment json")
}

async fn create_deployment(client: &Client, app: &App<'_>) {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NS);
    deploys
        .create(&PostParams::default(), &deployment(app))
        .await
        .expect("deployment");
}

/// The memory limit of the Deployment's container, as the API server has it.
async fn memory_limit(deploys: &Api<Deployment>, name: &str) -> Option<u64> {
    let d = deploys.get(name).await.ok()?;
    let c = d.spec?.template.spec?.containers.into_iter().next()?;
    let q = c.resources?.limits?.get("memory")?.0.clone();
    medic_core::quantity::parse_bytes(&q)
}

/// The idempotency record medic keeps on the object (`medic.dev/actions`): (key, kind).
async fn ledger(deploys: &Api<Deployment>, name: &str) -> Vec<(String, String)> {
    let d = deploys.get(name).await.expect("deployment");
    let Some(raw) = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("medic.dev/actions"))
    else {
        return Vec::new();
    };
    let list: Vec<serde_json::Value> = serde_json::from_str(raw).expect("medic.dev/actions");
    list.iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap_or_default().to_string(),
                e["kind"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

// ── the agent ────────────────────────────────────────────────────────────────────────────

const OOM_POLICIES: &str = r#"
  - name: restart-leaker
    match: { cause: memory_leak }
    action: restart_workload
    confidence_threshold: 0.5
    mode: auto
    max_attempts: 1
    cooldown: 10m
    verification_window: 5s
    escalation: oncall
  - name: more-memory
    match: { cause: memory_leak }
    action: set_resources
    resources: { memory_factor: 1.5, max_memory: 128Mi }
    confidence_threshold: 0.5
    mode: auto
    max_attempts: 2
    cooldown: 10m
    verification_window: 5s
    escalation: oncall
"#;

const SCALE_POLICIES: &str = r#"
  - name: scale-out
    match: { cause: load_surge }
    action: scale_workload
    scale: { factor: 2, max_replicas: 4 }
    confidence_threshold: 0.5
    mode: auto
    max_attempts: 1
    cooldown: 10m
    verification_window: 5s
    escalation: oncall
"#;

fn agent_config(
    sandbox: &Sandbox,
    dir: &Path,
    policies: &str,
    scrape: bool,
) -> medic_config::Config {
    let kubeconfig = sandbox.kubeconfig_path();
    let scrape = if scrape {
        "scrape_annotated_pods: true\n    scrape_interval: 1s"
    } else {
        "scrape_annotated_pods: false"
    };
    let yaml = format!(
        r#"
agent: {{ tick: 500ms, diagnosis_settle: 3s, change_lookback: 10m }}
sources:
  - name: cluster
    type: kubernetes
    kubeconfig: "{kc}"
    namespaces: [{NS}]
    {scrape}
detectors:
  restarts: {{ enabled: true, crash_loop_count: 2, crash_loop_window: 120s, clear_after: 15s }}
  traffic: {{ enabled: true, window: 5s, surge_ratio: 2.5, min_rps: 5 }}
policies:
{policies}
actuators:
  kubernetes:
    kubeconfig: "{kc}"
    namespaces: [{NS}]
    history_file: "{dir}/configmaps.json"
store:
  sqlite: "{dir}/medic.db"
escalation:
  default: oncall
  targets:
    - {{ name: oncall, webhook: "", timeout: 2s }}
"#,
        kc = kubeconfig.display(),
        dir = dir.display(),
    );
    medic_config::load_str(&yaml, "medic.yaml", dir, &|_| None).unwrap_or_else(|errs| {
        panic!(
            "config: {}",
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

struct Agent {
    running: medic_agent::Running,
    printer: tokio::task::JoinHandle<()>,
    store: Arc<Store>,
}

impl Agent {
    async fn start(cfg: medic_config::Config, dir: &Path, t0: Instant) -> Agent {
        let store = Arc::new(Store::open(&dir.join("medic.db")).unwrap());
        let running = medic_agent::start(cfg, store.clone(), Arc::new(SystemClock))
            .await
            .expect("agent");
        let mut timeline = running.timeline.resubscribe();
        let printer = tokio::spawn(async move {
            while let Ok(ev) = timeline.recv().await {
                eprintln!("[{:6.1}s] {}", t0.elapsed().as_secs_f64(), ev.line());
            }
        });
        Agent {
            running,
            printer,
            store,
        }
    }

    async fn stop(self) {
        self.running.stop().await.expect("agent stops cleanly");
        self.printer.abort();
    }

    /// The incident about `service` (the first opened).
    fn incident(&self, service: &str) -> Option<Incident> {
        let mut all: Vec<Incident> = self
            .store
            .incidents()
            .unwrap()
            .into_iter()
            .filter(|i| i.services.contains(service))
            .collect();
        all.sort_by_key(|i| i.opened);
        all.into_iter().next()
    }

    /// Every execution medic made on `service`, in any incident.
    fn executions_on(&self, service: &str) -> Vec<Execution> {
        let mut e: Vec<Execution> = self
            .store
            .executions_since(Ts(0))
            .unwrap()
            .into_iter()
            .filter(|e| e.action.target == service)
            .collect();
        e.sort_by_key(|e| e.started);
        e
    }
}

fn terminal(i: &Incident) -> bool {
    matches!(
        i.state,
        IncidentState::Resolved | IncidentState::Escalated | IncidentState::Closed
    )
}

fn describe_executions(execs: &[Execution]) -> String {
    execs
        .iter()
        .map(|e| {
            format!(
                "  #{} {} [{}] {:?}: {}",
                e.attempt, e.action, e.policy, e.status, e.detail
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until the incident on `target` ends, at most until `within` after `since`.
async fn wait_ended(
    agent: &Agent,
    target: &str,
    since: Instant,
    within: Duration,
) -> Option<Incident> {
    while since.elapsed() < within {
        if let Some(i) = agent.incident(target).filter(terminal) {
            return Some(i);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

/// The incident that ended, told on stderr; otherwise a panic naming `what` was waited for
/// and what medic did.
fn ended_incident(
    ended: Option<Incident>,
    took: Duration,
    all: &[Execution],
    what: &str,
) -> Incident {
    let inc = ended.unwrap_or_else(|| {
        panic!(
            "the incident did not end {what}; executions:\n{}",
            describe_executions(all)
        )
    });
    eprintln!(
        "ended {:?} after {took:?}: {}\ndiagnosis: {}\nexecutions:\n{}",
        inc.state,
        inc.closing_reason.as_deref().unwrap_or(""),
        diagnosis_line(&inc),
        describe_executions(&inc.executions)
    );
    inc
}

/// The top hypothesis of the incident's diagnosis.
fn top_of(inc: &Incident) -> &medic_core::Hypothesis {
    inc.diagnosis
        .as_ref()
        .and_then(|d| d.top())
        .expect("diagnosis")
}

fn diagnosis_line(inc: &Incident) -> String {
    match inc.diagnosis.as_ref() {
        Some(d) => d
            .hypotheses
            .iter()
            .map(|h| format!("{} on {} ({:.2})", h.cause, h.target, h.confidence))
            .collect::<Vec<_>>()
            .join("; "),
        None => "no diagnosis".into(),
    }
}

// ── 1. OOMKilled over and over ───────────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leak_is_restarted_then_given_memory_up_to_the_bound_then_escalated() {
    let t0 = Instant::now();
    let sandbox = start_sandbox().await;
    let client = sandbox.client().await.expect("client");
    namespace(&client).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(
        agent_config(&sandbox, dir.path(), OOM_POLICIES, false),
        dir.path(),
        t0,
    )
    .await;
    // Let the source list everything before the leaking release arrives.
    tokio::time::sleep(Duration::from_secs(5)).await;
    eprintln!("[{:6.1}s] deploying the leak", t0.elapsed().as_secs_f64());
    create_deployment(
        &client,
        &App {
            name: "leak",
            code: LEAK_APP,
            replicas: 1,
            memory_limit: "64Mi",
            probe_path: None,
            scraped: false,
        },
    )
    .await;
    let injected = Instant::now();
    let target = format!("{NS}/leak");

    // The limit as the API server has it, every change in order.
    let mut limits: Vec<u64> = Vec::new();
    let mut ended = None;
    while injected.elapsed() < Duration::from_secs(200) {
        if let Some(l) = memory_limit(&deploys, "leak").await
            && limits.last() != Some(&l)
        {
            eprintln!(
                "[{:6.1}s] deployment leak: memory limit {} MiB",
                t0.elapsed().as_secs_f64(),
                l / MI
            );
            limits.push(l);
        }
        if let Some(i) = agent.incident(&target).filter(terminal) {
            ended = Some(i);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = injected.elapsed();
    // Once escalated, medic must not try again (a new incident would meet the loop breaker).
    tokio::time::sleep(Duration::from_secs(6)).await;
    if let Some(l) = memory_limit(&deploys, "leak").await
        && limits.last() != Some(&l)
    {
        limits.push(l);
    }
    let all = agent.executions_on(&target);
    let incidents = agent.store.incidents().unwrap();
    agent.stop().await;

    let inc = ended_incident(
        ended,
        took,
        &all,
        &format!("within 200 s (incidents: {incidents:#?})"),
    );
    let top = top_of(&inc);
    assert_eq!(top.cause, Cause::MemoryLeak, "{}", diagnosis_line(&inc));
    assert_eq!(top.target, target);
    assert!(
        inc.findings
            .iter()
            .any(|f| f.kind == medic_core::FindingKind::OomKilled),
        "OOMKilled findings: {:#?}",
        inc.findings
    );

    // The ladder: one restart, then two raises of the limit within the bound.
    let kinds: Vec<ActionKind> = inc.executions.iter().map(|e| e.action.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ActionKind::RestartWorkload,
            ActionKind::SetResources,
            ActionKind::SetResources
        ],
        "{}",
        describe_executions(&inc.executions)
    );
    assert!(
        inc.executions
            .iter()
            .all(|e| e.status == ExecutionStatus::Succeeded),
        "{}",
        describe_executions(&inc.executions)
    );
    let raised: Vec<Option<u64>> = inc.executions[1..]
        .iter()
        .map(|e| e.action.memory_limit_bytes)
        .collect();
    assert_eq!(raised, vec![Some(96 * MI), Some(128 * MI)]);
    assert_eq!(
        limits,
        vec![64 * MI, 96 * MI, 128 * MI],
        "the Deployment's limit went 64Mi → 96Mi → 128Mi and no further"
    );
    assert!(limits.iter().all(|l| *l <= 128 * MI));

    // Escalated: the leak is not cured by memory, and the policies have nothing left.
    assert_eq!(inc.state, IncidentState::Escalated);
    let reason = inc.closing_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("not healed after 3 attempt(s)"),
        "closing reason: {reason}"
    );
    assert!(
        all.len() <= 3,
        "at most the allowed 3 actions on {target}:\n{}",
        describe_executions(&all)
    );
    assert!(agent_audit_ok(dir.path()));
    drop(sandbox);
}

/// The audit chain of a stopped agent's store is intact.
fn agent_audit_ok(dir: &Path) -> bool {
    let store = Store::open(&dir.join("medic.db")).unwrap();
    store.verify_audit().unwrap().broken.is_none()
}

/// The steady-need scene: a serving app whose working set does not fit 64Mi.
async fn deploy_steady(client: &Client) {
    create_deployment(
        client,
        &App {
            name: "steady",
            code: STEADY_APP,
            replicas: 1,
            memory_limit: "64Mi",
            probe_path: Some("/"),
            scraped: false,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_that_needs_more_memory_is_healed_by_set_resources() {
    let t0 = Instant::now();
    let sandbox = start_sandbox().await;
    let client = sandbox.client().await.expect("client");
    namespace(&client).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(
        agent_config(&sandbox, dir.path(), OOM_POLICIES, false),
        dir.path(),
        t0,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    eprintln!(
        "[{:6.1}s] deploying steady (needs ~86Mi, limit 64Mi)",
        t0.elapsed().as_secs_f64()
    );
    deploy_steady(&client).await;
    let injected = Instant::now();
    let target = format!("{NS}/steady");
    let ended = wait_ended(&agent, &target, injected, Duration::from_secs(170)).await;
    let took = injected.elapsed();
    let all = agent.executions_on(&target);
    agent.stop().await;
    let inc = ended_incident(ended, took, &all, "within 170 s");
    let top = top_of(&inc);
    assert_eq!(top.cause, Cause::MemoryLeak, "{}", diagnosis_line(&inc));
    let kinds: Vec<ActionKind> = inc.executions.iter().map(|e| e.action.kind).collect();
    assert_eq!(
        kinds,
        vec![ActionKind::RestartWorkload, ActionKind::SetResources],
        "{}",
        describe_executions(&inc.executions)
    );
    assert_eq!(inc.executions[1].action.memory_limit_bytes, Some(96 * MI));
    assert_eq!(inc.state, IncidentState::Resolved, "{inc:#?}");
    assert_eq!(all.len(), 2, "{}", describe_executions(&all));
    assert_eq!(memory_limit(&deploys, "steady").await, Some(96 * MI));
    wait_rollout(&deploys, "steady", Duration::from_secs(30)).await;
    drop(sandbox);
}

// ── 2. a load surge ──────────────────────────────────────────────────────────────────────

/// Sends GETs to `url` at `rate` per second (read each tick) until `stop`; at most `cap`
/// requests in all. Each request is its own task so a slow one never lowers the rate.
fn load(
    url: String,
    rate: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    cap: u32,
) -> tokio::task::JoinHandle<u32> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let ok = Arc::new(AtomicU32::new(0));
        let mut sent = 0u32;
        while !stop.load(Ordering::Relaxed) && sent < cap {
            let r = rate.load(Ordering::Relaxed).max(1);
            let (http, url, ok) = (http.clone(), url.clone(), ok.clone());
            tokio::spawn(async move {
                if let Ok(resp) = http.get(&url).send().await
                    && resp.status().is_success()
                {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            });
            sent += 1;
            tokio::time::sleep(Duration::from_secs_f64(1.0 / f64::from(r))).await;
        }
        ok.load(Ordering::Relaxed)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_surge_is_met_by_scaling_out_within_bounds() {
    let t0 = Instant::now();
    let sandbox = start_sandbox().await;
    let client = sandbox.client().await.expect("client");
    namespace(&client).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NS);
    create_deployment(
        &client,
        &App {
            name: "web",
            code: WEB_APP,
            replicas: 1,
            memory_limit: "128Mi",
            probe_path: Some("/healthz"),
            scraped: true,
        },
    )
    .await;
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    let svc = services
        .create(&PostParams::default(), &svc)
        .await
        .expect("service");
    let ip = svc.spec.and_then(|s| s.cluster_ip).expect("a ClusterIP");
    assert!(ip.starts_with("127."), "loopback only: {ip}");
    wait_rollout(&deploys, "web", Duration::from_secs(60)).await;
    let url = format!("http://{ip}:80/");
    // The proxy forwards once the EndpointSlice names the ready pod.
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let start = Instant::now();
    while !http
        .get(&url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "service {url} never answered"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(
        agent_config(&sandbox, dir.path(), SCALE_POLICIES, true),
        dir.path(),
        t0,
    )
    .await;
    // Baseline: 4 requests per second for 20 s (the traffic baseline needs 8 evaluations
    // with a rate; the rate needs two scrapes of the counter in its 5 s window).
    let rate = Arc::new(AtomicU32::new(4));
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(url.clone(), rate.clone(), stop.clone(), 5_000);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        agent.store.incidents().unwrap().is_empty(),
        "no incident at baseline: {:#?}",
        agent.store.incidents().unwrap()
    );
    eprintln!("[{:6.1}s] surge: 4/s → 20/s", t0.elapsed().as_secs_f64());
    rate.store(20, Ordering::Relaxed);
    let surged = Instant::now();
    let target = format!("{NS}/web");
    let mut ended = None;
    let mut max_replicas_seen = 1;
    while surged.elapsed() < Duration::from_secs(90) {
        if let Ok(d) = deploys.get("web").await {
            let r = d.spec.and_then(|s| s.replicas).unwrap_or(0);
            if r != max_replicas_seen {
                eprintln!(
                    "[{:6.1}s] deployment web: replicas {r}",
                    t0.elapsed().as_secs_f64()
                );
            }
            max_replicas_seen = max_replicas_seen.max(r);
        }
        if let Some(i) = agent.incident(&target).filter(terminal) {
            ended = Some(i);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = surged.elapsed();
    // The surge goes on: no second scale for the same surge.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let answered = loader.await.unwrap();
    let all = agent.executions_on(&target);
    let incidents = agent.store.incidents().unwrap();
    agent.stop().await;
    eprintln!("load: {answered} requests answered");
    let inc = ended_incident(
        ended,
        took,
        &all,
        &format!("within 90 s of the surge (incidents: {incidents:#?})"),
    );
    let top = top_of(&inc);
    assert_eq!(top.cause, Cause::LoadSurge, "{}", diagnosis_line(&inc));
    assert_eq!(top.target, target);
    assert_eq!(all.len(), 1, "{}", describe_executions(&all));
    let exec = &all[0];
    assert_eq!(exec.action.kind, ActionKind::ScaleWorkload);
    assert_eq!(exec.action.replicas, Some(2));
    assert_eq!(exec.status, ExecutionStatus::Succeeded);
    assert!(
        exec.detail.contains("1 → 2"),
        "scaled through the scale subresource: {}",
        exec.detail
    );
    let d = deploys.get("web").await.unwrap();
    let replicas = d.spec.and_then(|s| s.replicas).unwrap_or(0);
    assert_eq!(replicas, 2);
    assert!(max_replicas_seen <= 4);
    assert_eq!(inc.state, IncidentState::Resolved, "{inc:#?}");
    let keys: Vec<String> = ledger(&deploys, "web")
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(keys, vec![exec.idempotency_key.clone()]);
    wait_rollout(&deploys, "web", Duration::from_secs(30)).await;
    drop(sandbox);
}

// ── 3. the API server restarted mid-incident ─────────────────────────────────────────────

fn alive(pid: i32) -> bool {
    // A zombie (not reaped yet) is dead for this purpose.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next())
        })
        .flatten()
        .is_some_and(|state| state != 'Z')
}

/// Stops kube-apiserver, waits 2 s and starts it again with the same argv, in its own
/// process group, its pid written back so that `down` stops the new one.
fn restart_apiserver(dir: &Path) {
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::unistd::Pid;
    use std::os::unix::process::CommandExt;
    let pid_file = dir.join("pids/kube-apiserver.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid");
    let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .expect("cmdline")
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(
        argv[0].ends_with("kube-apiserver"),
        "not the API server: {argv:?}"
    );
    let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
    let start = Instant::now();
    while alive(pid) {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("logs/kube-apiserver.log"))
        .expect("log");
    let mut child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("restart kube-apiserver");
    std::fs::write(&pid_file, child.id().to_string()).expect("pid file");
    // Reaped when `down` stops it, so that `down` does not wait on a zombie.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_restarting_mid_incident_neither_loses_nor_doubles_actions() {
    use medic_signals::Counter;
    let t0 = Instant::now();
    let sandbox = start_sandbox().await;
    let client = sandbox.client().await.expect("client");
    namespace(&client).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(
        agent_config(&sandbox, dir.path(), OOM_POLICIES, false),
        dir.path(),
        t0,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    deploy_steady(&client).await;
    let injected = Instant::now();
    let target = format!("{NS}/steady");

    // Wait for medic's first action to be done.
    loop {
        assert!(
            injected.elapsed() < Duration::from_secs(60),
            "no action within 60 s"
        );
        let done = agent
            .executions_on(&target)
            .first()
            .is_some_and(|e| e.status != ExecutionStatus::Pending);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let failures = |s: &medic_signals::SourceStats| {
        s.get(Counter::KubeApiUnreachable) + s.get(Counter::KubeWatchError)
    };
    let failures_before = failures(&agent.running.stats);
    let relisted_before = agent.running.stats.get(Counter::KubeRelisted);
    eprintln!(
        "[{:6.1}s] medic acted once: restarting kube-apiserver",
        t0.elapsed().as_secs_f64()
    );
    let sdir = sandbox.dir().to_path_buf();
    tokio::task::spawn_blocking(move || restart_apiserver(&sdir))
        .await
        .unwrap();
    let start = Instant::now();
    while client.apiserver_version().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "kube-apiserver did not come back"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!(
        "[{:6.1}s] kube-apiserver is back",
        t0.elapsed().as_secs_f64()
    );

    let ended = wait_ended(&agent, &target, injected, Duration::from_secs(170)).await;
    let took = injected.elapsed();
    let failures_after = failures(&agent.running.stats);
    let relisted_after = agent.running.stats.get(Counter::KubeRelisted);
    let all = agent.executions_on(&target);
    let incidents = agent.store.incidents().unwrap();
    agent.stop().await;
    eprintln!(
        "source: watch failures {failures_before} → {failures_after}, relists {relisted_before} → {relisted_after}"
    );
    for i in &incidents {
        eprintln!(
            "incident {} on {:?}: {:?} ({})",
            i.id,
            i.services,
            i.state,
            i.closing_reason.as_deref().unwrap_or("")
        );
    }
    let inc = ended_incident(ended, took, &all, "within 170 s");
    assert!(
        failures_after > failures_before,
        "the source saw the API server go away"
    );
    // Healing needs the pod watch after the restart: the new pod starting, the old one gone.
    assert_eq!(inc.state, IncidentState::Resolved, "{inc:#?}");
    let kinds: Vec<ActionKind> = all.iter().map(|e| e.action.kind).collect();
    assert_eq!(
        kinds,
        vec![ActionKind::RestartWorkload, ActionKind::SetResources],
        "one restart, one raise, nothing twice:\n{}",
        describe_executions(&all)
    );
    let mut keys: Vec<String> = all.iter().map(|e| e.idempotency_key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 2);
    let mut recorded: Vec<String> = ledger(&deploys, "steady")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let n = recorded.len();
    recorded.sort();
    recorded.dedup();
    assert_eq!(n, recorded.len(), "a key recorded twice on the Deployment");
    assert_eq!(
        recorded, keys,
        "the Deployment records exactly medic's two actions"
    );
    assert_eq!(memory_limit(&deploys, "steady").await, Some(96 * MI));
    drop(sandbox);
}
