//! The `kubernetes` source against a real control plane (`scripts/k8s-sandbox`: etcd,
//! kube-apiserver, controller-manager, scheduler on 127.0.0.1), without a kubelet: the test
//! plays the kubelet by writing pod status through the status subresource, as a kubelet does.
//! The source reaches the API server through a TCP proxy the test can cut, to see it go
//! down and come back. Skipped (with a note) when the sandbox binaries are not built.

#![cfg(feature = "kubernetes")]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use medic_config::{KubeConnection, KubernetesSourceConfig, Location, SourceConfig, SourceKind};
use medic_core::{ChangeKind, FindingKind, Level, ProcessEventKind, Signal, SignalPayload};
use medic_signals::{Counter, SourceStats, spawn_sources};
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

const WAIT: Duration = Duration::from_secs(90);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn binaries_built() -> bool {
    let cache = std::env::var("MEDIC_K8S_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/medic/k8s/1.20.2")
        });
    cache.join("bin/kube-apiserver").exists()
}

/// A running sandbox; stopped on drop (also when the test fails).
struct Sandbox {
    dir: tempfile::TempDir,
    /// A kube-apiserver this test restarted (reaped after `down` stopped it).
    apiserver: Option<std::process::Child>,
}

impl Sandbox {
    fn up() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        let sb = Sandbox {
            dir,
            apiserver: None,
        };
        let st = std::process::Command::new(repo_root().join("scripts/k8s-sandbox"))
            .arg("up")
            .arg(sb.dir.path())
            .env("MEDIC_SANDBOX_NO_KUBELET", "1")
            .status()
            .expect("run k8s-sandbox");
        assert!(st.success(), "k8s-sandbox up failed");
        sb
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn api_addr(&self) -> SocketAddr {
        let env = std::fs::read_to_string(self.dir.path().join("env")).expect("env");
        let url = env
            .lines()
            .find_map(|l| l.strip_prefix("API_SERVER=https://"))
            .expect("API_SERVER");
        url.parse().expect("host:port")
    }
}

impl Sandbox {
    /// Stops the sandbox's kube-apiserver (by its pid) and starts it again with the same
    /// arguments, in its own session as `k8s-sandbox` does, recording the new pid so that
    /// `down` stops it.
    fn restart_apiserver(&mut self) {
        let pid_file = self.dir.path().join("pids/kube-apiserver.pid");
        let pid = std::fs::read_to_string(&pid_file).expect("apiserver pid");
        let pid = pid.trim().to_string();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("apiserver cmdline");
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let st = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(st.success());
        for _ in 0..100 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log =
            std::fs::File::create(self.dir.path().join("logs/kube-apiserver-2.log")).expect("log");
        let child = std::process::Command::new("setsid")
            .args(&argv)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("start kube-apiserver");
        std::fs::write(&pid_file, child.id().to_string()).expect("write pid");
        self.apiserver = Some(child);
    }
}

async fn wait_ready(client: &kube::Client) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while client.apiserver_version().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "kube-apiserver did not come back"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo_root().join("scripts/k8s-sandbox"))
            .arg("down")
            .arg(self.dir.path())
            .status();
        if let Some(mut c) = self.apiserver.take() {
            let _ = c.wait();
        }
    }
}

/// A TCP proxy on 127.0.0.1 in front of the API server; `stop` cuts every connection.
struct Proxy {
    port: u16,
    upstream: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(port: u16, upstream: SocketAddr) -> Proxy {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .expect("bind proxy");
        let listener = socket.listen(128).expect("listen");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            // Dropped with the task: aborts every open connection.
            let mut conns = JoinSet::new();
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    return;
                };
                conns.spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
            }
        });
        Proxy {
            port,
            upstream,
            task: Some(task),
        }
    }

    async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    async fn restart(&mut self) {
        self.stop().await;
        *self = Proxy::start(self.port, self.upstream).await;
    }
}

/// Everything the source emitted so far.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Signal>>>);

impl Seen {
    fn all(&self) -> Vec<Signal> {
        self.0.lock().expect("lock").clone()
    }

    fn count(&self, pred: impl Fn(&Signal) -> bool) -> usize {
        self.all().iter().filter(|s| pred(s)).count()
    }

    async fn wait(&self, what: &str, pred: impl Fn(&Signal) -> bool) -> Signal {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(s) = self.all().into_iter().find(|s| pred(s)) {
                return s;
            }
            if tokio::time::Instant::now() > deadline {
                let all = self.all();
                let tail: Vec<String> = all
                    .iter()
                    .rev()
                    .take(30)
                    .map(|s| format!("{:?} {:?}", s.service, s.payload))
                    .collect();
                panic!(
                    "timed out waiting for {what}; last signals:\n{}",
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn log_of(s: &Signal) -> Option<&medic_core::LogLine> {
    match &s.payload {
        SignalPayload::Log(l) => Some(l),
        _ => None,
    }
}

fn exit_of<'a>(s: &'a Signal, service: &str) -> Option<&'a medic_core::ProcessEvent> {
    match &s.payload {
        SignalPayload::Process(e)
            if e.kind == ProcessEventKind::Exited && s.service.as_deref() == Some(service) =>
        {
            Some(e)
        }
        _ => None,
    }
}

fn change_of<'a>(
    s: &'a Signal,
    kind: ChangeKind,
    service: &str,
) -> Option<&'a medic_core::ChangeEvent> {
    match &s.payload {
        SignalPayload::Change(c) if c.kind == kind && c.service == service => Some(c),
        _ => None,
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn deployment(
    name: &str,
    image: &str,
    annotations: serde_json::Value,
    cm: Option<&str>,
) -> Deployment {
    let mut container = json!({"name": "app", "image": image});
    if let Some(cm) = cm {
        container["envFrom"] = json!([{"configMapRef": {"name": cm}}]);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {}},
                "spec": {"containers": [container]}
            }
        }
    }))
    .expect("deployment")
}

fn with_env(d: &mut Deployment, name: &str, value: &str) {
    let c = &mut d
        .spec
        .as_mut()
        .expect("spec")
        .template
        .spec
        .as_mut()
        .expect("pod spec")
        .containers[0];
    c.env
        .get_or_insert_with(Vec::new)
        .push(serde_json::from_value(json!({"name": name, "value": value})).expect("env"));
}

/// The latest topology the source sent.
fn topology_edges(seen: &Seen) -> Option<Vec<medic_core::LearnedEdge>> {
    seen.all().into_iter().rev().find_map(|s| match s.payload {
        SignalPayload::Topology { edges } => Some(edges),
        _ => None,
    })
}

async fn wait_edges(
    seen: &Seen,
    what: &str,
    want: &[(&str, &str)],
) -> Vec<medic_core::LearnedEdge> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let edges = topology_edges(seen).unwrap_or_default();
        let pairs: Vec<(&str, &str)> = edges
            .iter()
            .map(|e| (e.caller.as_str(), e.callee.as_str()))
            .collect();
        if pairs == want {
            return edges;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: topology {edges:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Topology learned from Services: `worker` through its selector, `queue` (no selector)
/// through an EndpointSlice that names a pod of `looper`; deleting a Service drops its edge.
async fn learned_topology(client: &kube::Client, pods: &Api<Pod>, seen: &Seen) {
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "shop");
    for (name, selector) in [("worker", json!({"app": "worker"})), ("queue", json!(null))] {
        let svc = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"selector": selector, "ports": [{"port": 8080}]}
        }))
        .expect("service");
        services
            .create(&PostParams::default(), &svc)
            .await
            .expect("create service");
    }
    let looper_pod = pod_of(pods, "looper").await;
    // The sandbox's 1.20 API serves EndpointSlices as v1beta1 only: the source must find that.
    let gvk = kube::core::GroupVersionKind::gvk("discovery.k8s.io", "v1beta1", "EndpointSlice");
    let ar = kube::core::ApiResource::from_gvk_with_plural(&gvk, "endpointslices");
    let slices: Api<kube::core::DynamicObject> = Api::namespaced_with(client.clone(), "shop", &ar);
    let slice: kube::core::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1beta1",
        "kind": "EndpointSlice",
        "metadata": {"name": "queue-1", "labels": {"kubernetes.io/service-name": "queue"}},
        "addressType": "IPv4",
        "ports": [{"port": 8080}],
        "endpoints": [{"addresses": ["127.0.0.9"], "targetRef": {"kind": "Pod", "namespace": "shop", "name": looper_pod}}]
    }))
    .expect("slice");
    slices
        .create(&PostParams::default(), &slice)
        .await
        .expect("create EndpointSlice");
    let edges = wait_edges(
        seen,
        "edges from a selector and from an EndpointSlice",
        &[("shop/api", "shop/worker"), ("shop/worker", "shop/looper")],
    )
    .await;
    assert!(
        edges[0].evidence.contains("env WORKER_URL")
            && edges[0]
                .evidence
                .contains("its selector matches shop/worker"),
        "{edges:?}"
    );
    assert!(
        edges[1].evidence.contains("its endpoints are shop/looper"),
        "{edges:?}"
    );
    services
        .delete("queue", &Default::default())
        .await
        .expect("delete service");
    wait_edges(
        seen,
        "the deleted Service's edge is gone",
        &[("shop/api", "shop/worker")],
    )
    .await;
}

async fn pod_of(api: &Api<Pod>, app: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let pods = api
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .expect("list pods");
        if let Some(p) = pods.items.first().and_then(|p| p.metadata.name.clone()) {
            return p;
        }
        assert!(tokio::time::Instant::now() < deadline, "no pod for {app}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes a pod's status as a kubelet would: `containers` are containerStatuses of `app`.
async fn kubelet(api: &Api<Pod>, pod: &str, container: serde_json::Value) {
    let status = json!({"status": {
        "phase": "Running",
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "containerStatuses": [container],
    }});
    api.patch_status(pod, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("patch pod status");
}

fn container(
    state: serde_json::Value,
    last: serde_json::Value,
    restarts: i32,
    ready: bool,
    id: &str,
) -> serde_json::Value {
    json!({
        "name": "app", "image": "shop/app:1", "imageID": "", "ready": ready,
        "restartCount": restarts, "state": state, "lastState": last,
        "containerID": format!("containerd://{id}"),
    })
}

fn running() -> serde_json::Value {
    json!({"running": {"startedAt": now()}})
}

fn terminated(reason: &str, code: i32, id: &str) -> serde_json::Value {
    json!({"terminated": {"reason": reason, "exitCode": code, "startedAt": now(), "finishedAt": now(),
        "containerID": format!("containerd://{id}")}})
}

fn waiting(reason: &str) -> serde_json::Value {
    json!({"waiting": {"reason": reason, "message": "back-off 10s restarting failed container"}})
}

async fn metrics_server() -> (u16, JoinHandle<()>) {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(|| async { "# TYPE shop_requests_total counter\nshop_requests_total 42\n" }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let h = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, h)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_source_against_a_real_api_server() {
    if !binaries_built() {
        eprintln!("skipped: the k8s sandbox binaries are not built (scripts/k8s-sandbox build)");
        return;
    }
    let mut sb = Sandbox::up();
    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(config).expect("client");

    // The source talks through a proxy the test can cut.
    let mut proxy = Proxy::start(0, sb.api_addr()).await;
    let text = std::fs::read_to_string(sb.kubeconfig()).expect("kubeconfig");
    let proxied = text.replace(
        &format!("server: https://{}", sb.api_addr()),
        &format!("server: https://127.0.0.1:{}", proxy.port),
    );
    assert_ne!(proxied, text);
    let proxied_path = sb.dir.path().join("kubeconfig-proxied");
    std::fs::write(&proxied_path, proxied).expect("write kubeconfig");

    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["shop", "excluded"] {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns");
        namespaces
            .create(&PostParams::default(), &n)
            .await
            .expect("create namespace");
    }
    let (metrics_port, metrics) = metrics_server().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "shop");
    for name in ["api-config", "other-config"] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name}, "data": {"pool": "10"}}))
                .expect("cm");
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("create cm");
    }
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let mut api = deployment(
        "api",
        "shop/api:1",
        json!({"medic.dev/planned-event": "spring sale", "medic.dev/planned-until": "2030-01-01T00:00:00Z"}),
        Some("api-config"),
    );
    let tmpl = api
        .spec
        .as_mut()
        .and_then(|s| s.template.metadata.as_mut())
        .expect("template metadata");
    tmpl.annotations = Some(
        [
            ("prometheus.io/scrape".to_string(), "true".to_string()),
            ("prometheus.io/port".to_string(), metrics_port.to_string()),
        ]
        .into(),
    );
    let create = PostParams {
        field_manager: Some("ci-create".into()),
        ..Default::default()
    };
    // Whom they call, for the learned topology: `api` names the `worker` Service in a URL,
    // `worker` names `queue` in an address variable.
    with_env(&mut api, "WORKER_URL", "http://worker:8080/jobs");
    deploys.create(&create, &api).await.expect("create api");
    let mut worker = deployment("worker", "shop/worker:1", json!({}), None);
    with_env(&mut worker, "QUEUE_HOST", "queue");
    deploys
        .create(&create, &worker)
        .await
        .expect("create worker");
    deploys
        .create(
            &create,
            &deployment("looper", "shop/looper:1", json!({}), None),
        )
        .await
        .expect("create looper");
    let excluded: Api<Deployment> = Api::namespaced(client.clone(), "excluded");
    excluded
        .create(&create, &deployment("hidden", "x:1", json!({}), None))
        .await
        .expect("create hidden");

    // The source.
    let source = SourceConfig {
        name: "k8s".into(),
        kind: SourceKind::Kubernetes(KubernetesSourceConfig {
            connection: KubeConnection {
                kubeconfig: Some(proxied_path.clone()),
                context: Some("sandbox".into()),
            },
            exclude_namespaces: vec![
                "excluded".into(),
                "kube-system".into(),
                "kube-public".into(),
                "kube-node-lease".into(),
            ],
            scrape_interval: Some(Duration::from_millis(500)),
            scrape_timeout: Duration::from_secs(1),
            ..Default::default()
        }),
        location: Location::default(),
    };
    let (tx, mut rx) = mpsc::channel(1024);
    let (stop, shutdown) = watch::channel(false);
    let stats = Arc::new(SourceStats::new());
    let handles = spawn_sources(&[source], tx, shutdown, stats.clone()).expect("spawn");
    let seen = Seen::default();
    let sink = seen.clone();
    let collector = tokio::spawn(async move {
        while let Some(s) = rx.recv().await {
            sink.0.lock().expect("lock").push(s);
        }
    });

    // The API server is up; the planned event of `api` is listed.
    seen.wait("api server up", |s| {
        s.service.as_deref() == Some("kube-apiserver")
            && matches!(s.payload, SignalPayload::Metrics { .. })
    })
    .await;
    let planned = seen
        .wait("planned event", |s| {
            change_of(s, ChangeKind::Planned, "shop/api").is_some()
        })
        .await;
    let SignalPayload::Change(p) = &planned.payload else {
        unreachable!()
    };
    assert_eq!(p.description, "spring sale");
    assert!(p.end.is_some());
    seen.wait("rollout status", |s| match &s.payload {
        SignalPayload::Metrics { samples } => samples.iter().any(|m| {
            m.name == "kube_deployment_spec_replicas" && m.label("deployment") == Some("worker")
        }),
        _ => false,
    })
    .await;

    // Pods (owner resolution: pod → ReplicaSet → Deployment); the test is the kubelet.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    learned_topology(&client, &pods, &seen).await;
    let api_pod = pod_of(&pods, "api").await;
    kubelet(
        &pods,
        &api_pod,
        container(running(), json!({}), 0, true, "a0"),
    )
    .await;
    let m = seen
        .wait("scraped metrics of the annotated pod", |s| {
            s.service.as_deref() == Some("shop/api")
                && matches!(&s.payload, SignalPayload::Metrics { samples }
                    if samples.iter().any(|m| m.name == "shop_requests_total" && m.value == 42.0))
        })
        .await;
    assert_eq!(m.instance.as_deref(), Some(api_pod.as_str()));
    kubelet(
        &pods,
        &api_pod,
        container(
            terminated("OOMKilled", 137, "a0"),
            json!({}),
            0,
            false,
            "a0",
        ),
    )
    .await;
    let oom = seen
        .wait("OOMKilled exit", |s| {
            exit_of(s, "shop/api").is_some_and(|e| e.reason == "OOMKilled")
        })
        .await;
    assert_eq!(oom.instance.as_deref(), Some(api_pod.as_str()));
    // Restarted: the termination moves to lastState; it must not be emitted again.
    kubelet(
        &pods,
        &api_pod,
        container(running(), terminated("OOMKilled", 137, "a0"), 1, true, "a1"),
    )
    .await;

    let looper = pod_of(&pods, "looper").await;
    kubelet(
        &pods,
        &looper,
        container(running(), json!({}), 0, true, "l0"),
    )
    .await;
    kubelet(
        &pods,
        &looper,
        container(
            waiting("CrashLoopBackOff"),
            terminated("Error", 1, "l0"),
            1,
            false,
            "l0",
        ),
    )
    .await;
    kubelet(
        &pods,
        &looper,
        container(running(), terminated("Error", 1, "l0"), 1, false, "l1"),
    )
    .await;
    kubelet(
        &pods,
        &looper,
        container(
            waiting("CrashLoopBackOff"),
            terminated("Error", 1, "l1"),
            2,
            false,
            "l1",
        ),
    )
    .await;
    seen.wait("second crash-loop exit", |_| {
        seen.count(|s| exit_of(s, "shop/looper").is_some_and(|e| e.reason == "Error")) >= 2
    })
    .await;
    let backoff = seen
        .wait("CrashLoopBackOff log", |s| {
            s.service.as_deref() == Some("shop/looper")
                && log_of(s).is_some_and(|l| {
                    l.fields.get("k8s.reason").map(String::as_str) == Some("CrashLoopBackOff")
                })
        })
        .await;
    let l = log_of(&backoff).expect("log");
    assert_eq!(
        l.message,
        format!("pod {looper} container app waiting: CrashLoopBackOff")
    );
    assert_eq!(l.level, Level::Error);
    assert_eq!(l.fields["k8s.namespace"], "shop");
    assert_eq!(l.fields["k8s.container"], "app");

    // A bare pod is its own workload; its scrape port answers nothing → TargetDown.
    let bare: Pod = serde_json::from_value(json!({
        "metadata": {"name": "bare", "annotations": {
            "prometheus.io/scrape": "true", "prometheus.io/port": free_port().to_string()}},
        "spec": {"containers": [{"name": "app", "image": "shop/app:1"}]}
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &bare)
        .await
        .expect("create bare pod");
    kubelet(
        &pods,
        "bare",
        container(running(), json!({}), 0, true, "b0"),
    )
    .await;
    seen.wait("bare pod start", |s| {
        s.service.as_deref() == Some("shop/bare")
            && matches!(&s.payload, SignalPayload::Process(e) if e.kind == ProcessEventKind::Started)
    })
    .await;
    seen.wait("failed scrape of the bare pod", |s| {
        s.service.as_deref() == Some("shop/bare")
            && matches!(s.payload, SignalPayload::TargetDown { .. })
    })
    .await;

    // Excluded namespace: even an OOM kill there is not reported.
    let hidden_pods: Api<Pod> = Api::namespaced(client.clone(), "excluded");
    let hidden = pod_of(&hidden_pods, "hidden").await;
    kubelet(
        &hidden_pods,
        &hidden,
        container(
            terminated("OOMKilled", 137, "h0"),
            json!({}),
            0,
            false,
            "h0",
        ),
    )
    .await;

    // A deploy with its author; a scale; medic's own restart. (Strategic merge, as kubectl
    // does: a JSON merge patch would replace the container list and drop its envFrom.)
    let by = |m: &str| PatchParams {
        field_manager: Some(m.into()),
        ..Default::default()
    };
    deploys
        .patch(
            "api",
            &by("ci-pipeline"),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "shop/api:2"}]}}}})),
        )
        .await
        .expect("deploy api:2");
    let d = seen
        .wait("deploy change", |s| {
            change_of(s, ChangeKind::Deploy, "shop/api").is_some()
        })
        .await;
    let SignalPayload::Change(c) = &d.payload else {
        unreachable!()
    };
    assert_eq!(c.from.as_deref(), Some("app=shop/api:1"));
    assert_eq!(c.to.as_deref(), Some("app=shop/api:2"));
    assert_eq!(c.author.as_deref(), Some("ci-pipeline"));
    deploys
        .patch(
            "worker",
            &by("kubectl-scale"),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scale worker");
    seen.wait("scale log", |s| {
        log_of(s).is_some_and(|l| l.message == "deployment shop/worker scaled from 1 to 3")
    })
    .await;
    deploys
        .patch(
            "worker",
            &by("medic"),
            &Patch::Merge(json!({"spec": {"template": {"metadata": {
            "annotations": {"kubectl.kubernetes.io/restartedAt": now()}}}}})),
        )
        .await
        .expect("restart worker");
    let r = seen
        .wait("medic's restart", |s| {
            change_of(s, ChangeKind::Remediation, "shop/worker").is_some()
        })
        .await;
    let SignalPayload::Change(c) = &r.payload else {
        unreachable!()
    };
    assert_eq!(c.author.as_deref(), Some("medic"));
    assert!(c.description.contains("restartedAt"), "{}", c.description);
    assert_eq!(
        seen.count(|s| change_of(s, ChangeKind::Deploy, "shop/worker").is_some()),
        0
    );

    // ConfigMaps: a change reaches the workload that reads it, and only that one.
    cms.patch(
        "api-config",
        &by("ops"),
        &Patch::Merge(json!({"data": {"pool": "2"}})),
    )
    .await
    .expect("patch cm");
    cms.patch(
        "other-config",
        &by("ops"),
        &Patch::Merge(json!({"data": {"pool": "3"}})),
    )
    .await
    .expect("patch other cm");
    let cc = seen
        .wait("config change", |s| {
            change_of(s, ChangeKind::ConfigChange, "shop/api").is_some()
        })
        .await;
    let SignalPayload::Change(c) = &cc.payload else {
        unreachable!()
    };
    assert_eq!(c.author.as_deref(), Some("ops"));
    assert!(c.from.is_some() && c.to.is_some() && c.from != c.to);
    assert!(!format!("{c:?}").contains("\"2\""));

    // A Warning event → a log of the pod's workload, message redacted. (The scheduler's own
    // FailedScheduling warnings arrive too: there is no node yet.)
    let events: Api<Event> = Api::namespaced(client.clone(), "shop");
    let ev: Event = serde_json::from_value(json!({
        "metadata": {"name": "api-backoff.1"},
        "type": "Warning", "reason": "BackOff", "count": 1,
        "message": "Back-off restarting failed container, password=hunter2",
        "firstTimestamp": now(), "lastTimestamp": now(),
        "involvedObject": {"kind": "Pod", "namespace": "shop", "name": api_pod, "apiVersion": "v1"},
        "source": {"component": "kubelet"}
    }))
    .expect("event");
    events
        .create(&PostParams::default(), &ev)
        .await
        .expect("create event");
    let e = seen
        .wait("warning event", |s| {
            log_of(s).is_some_and(|l| {
                l.fields.get("k8s.kind").map(String::as_str) == Some("Event")
                    && l.fields.get("k8s.reason").map(String::as_str) == Some("BackOff")
            })
        })
        .await;
    assert_eq!(e.service.as_deref(), Some("shop/api"));
    let l = log_of(&e).expect("log");
    assert_eq!(l.level, Level::Warn);
    assert!(
        l.message
            .starts_with(&format!("event BackOff on Pod {api_pod}: ")),
        "{}",
        l.message
    );
    assert!(!l.message.contains("hunter2"), "{}", l.message);

    // Nodes: NotReady and cordon.
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).expect("node");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    let ready = |status: &str| {
        json!({"status": {"conditions": [{"type": "Ready", "status": status,
        "reason": "KubeletReady", "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}})
    };
    nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Merge(ready("True")))
        .await
        .expect("ready");
    nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Merge(ready("False")))
        .await
        .expect("not ready");
    seen.wait("node not ready", |s| {
        s.service.as_deref() == Some("node/n1")
            && log_of(s).is_some_and(|l| l.message == "node n1 not ready")
    })
    .await;
    nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .expect("cordon");
    seen.wait("node cordoned", |s| {
        log_of(s).is_some_and(|l| l.message == "node n1 cordoned")
    })
    .await;

    // The API server goes away: TargetDown names it; meanwhile the pods' history moves on far
    // enough that resuming the watch may need a relist (410 Gone).
    let before_down = seen.all().len();
    proxy.stop().await;
    let down = seen
        .wait("API server down", |s| {
            s.service.as_deref() == Some("kube-apiserver")
                && matches!(s.payload, SignalPayload::TargetDown { .. })
        })
        .await;
    let SignalPayload::TargetDown { error } = &down.payload else {
        unreachable!()
    };
    assert!(
        error.contains(&format!("127.0.0.1:{}", proxy.port)),
        "{error}"
    );
    for i in 0..150 {
        pods.patch(
            "bare",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"n": i.to_string()}}})),
        )
        .await
        .expect("churn");
    }
    cms.patch(
        "api-config",
        &by("ops"),
        &Patch::Merge(json!({"data": {"pool": "7"}})),
    )
    .await
    .expect("patch cm while down");
    // A real outage lasts: two failures in a row make the `target_down` detector's finding.
    seen.wait("two TargetDowns of the API server", |_| {
        seen.all()[before_down..]
            .iter()
            .filter(|s| {
                s.service.as_deref() == Some("kube-apiserver")
                    && matches!(s.payload, SignalPayload::TargetDown { .. })
            })
            .count()
            >= 2
    })
    .await;
    proxy.restart().await;
    let up_again = |s: &Signal| {
        s.service.as_deref() == Some("kube-apiserver")
            && matches!(s.payload, SignalPayload::Metrics { .. })
    };
    seen.wait("API server up again", |_| {
        seen.all()[before_down..].iter().any(up_again)
    })
    .await;
    // The change made while it was away is seen once it is back.
    seen.wait("config change made during the outage", |_| {
        seen.count(|s| change_of(s, ChangeKind::ConfigChange, "shop/api").is_some()) >= 2
    })
    .await;
    assert!(stats.get(Counter::KubeApiUnreachable) > 0);
    // Watches resumed or relisted, nothing already reported is reported again.
    kubelet(
        &pods,
        &api_pod,
        container(running(), terminated("OOMKilled", 137, "a0"), 1, true, "a1"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The API server restarts: its watch cache starts afresh, the resumed watches are told
    // 410 Gone and relist everything — and nothing already reported is reported again.
    let relists = stats.get(Counter::KubeRelisted);
    let before_restart = seen.all().len();
    // A user without any RBAC binding, known from this restart on (the static token file is
    // read at start).
    let tokens = sb.dir.path().join("pki/tokens.csv");
    let mut t = std::fs::read_to_string(&tokens).expect("tokens");
    t.push_str("nobody-token-0123456789,nobody,nobody-uid\n");
    std::fs::write(&tokens, t).expect("write tokens");
    sb.restart_apiserver();
    wait_ready(&client).await;
    seen.wait("relists after the API server restart", |_| {
        stats.get(Counter::KubeRelisted) > relists
    })
    .await;
    seen.wait("API server up after its restart", |_| {
        seen.all()[before_restart..].iter().any(up_again)
    })
    .await;
    kubelet(
        &pods,
        &api_pod,
        container(running(), terminated("OOMKilled", 137, "a0"), 1, true, "a1"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!(
        "relists: {}, unreachable: {}, watch errors: {}",
        stats.get(Counter::KubeRelisted),
        stats.get(Counter::KubeApiUnreachable),
        stats.get(Counter::KubeWatchError)
    );

    // Forbidden (403 on every list): counted, reported as TargetDown naming the problem, and
    // retried with back-off rather than in a loop.
    let admin = std::fs::read_to_string(sb.kubeconfig()).expect("kubeconfig");
    let token = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .expect("token");
    let nobody_path = sb.dir.path().join("kubeconfig-nobody");
    std::fs::write(
        &nobody_path,
        admin.replace(token, "nobody-token-0123456789"),
    )
    .expect("write kubeconfig");
    let (tx2, mut rx2) = mpsc::channel(64);
    let (stop2, shutdown2) = watch::channel(false);
    let stats2 = Arc::new(SourceStats::new());
    let nobody = SourceConfig {
        name: "k8s-nobody".into(),
        kind: SourceKind::Kubernetes(KubernetesSourceConfig {
            connection: KubeConnection {
                kubeconfig: Some(nobody_path),
                context: None,
            },
            scrape_interval: None,
            ..Default::default()
        }),
        location: Location::default(),
    };
    let handles2 = spawn_sources(&[nobody], tx2, shutdown2, stats2.clone()).expect("spawn");
    let forbidden = tokio::time::timeout(WAIT, async {
        loop {
            let s = rx2.recv().await.expect("signal");
            if let SignalPayload::TargetDown { error } = &s.payload {
                return error.clone();
            }
        }
    })
    .await
    .expect("a TargetDown for the forbidden watches");
    assert!(forbidden.contains("forbidden"), "{forbidden}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let refused = stats2.get(Counter::KubeApiForbidden);
    // Ten watches (pods, replicasets, three workload kinds, events, configmaps, nodes,
    // services, endpointslices),
    // each retrying after 0.5 s, 1 s, 2 s …: a few dozen in 3 s at most, not thousands.
    eprintln!("forbidden requests in ~3 s: {refused}");
    assert!((1..=80).contains(&refused), "{refused} forbidden requests");
    stop2.send(true).expect("stop");
    for h in handles2 {
        tokio::time::timeout(WAIT, h)
            .await
            .expect("source stops")
            .expect("join");
    }

    let all = seen.all();
    let ooms = all
        .iter()
        .filter(|s| exit_of(s, "shop/api").is_some_and(|e| e.reason == "OOMKilled"))
        .count();
    assert_eq!(ooms, 1, "the OOM kill is reported exactly once");
    assert_eq!(
        all.iter()
            .filter(|s| exit_of(s, "shop/looper").is_some())
            .count(),
        2,
        "each crash-loop exit once"
    );
    assert!(
        all.iter()
            .all(|s| !s.service.as_deref().unwrap_or("").starts_with("excluded/")),
        "signals from an excluded namespace"
    );
    assert_eq!(
        all.iter()
            .filter(|s| s.service.as_deref() == Some("shop/other-config")
                || matches!(&s.payload, SignalPayload::Change(c) if c.service == "shop/worker" && c.kind == ChangeKind::ConfigChange))
            .count(),
        0
    );

    // What the detectors make of it: the same findings as the local demo's OOM kill and crash loop.
    let mut detectors = medic_detect::Detectors::new(&medic_config::DetectorsConfig::default());
    let findings: Vec<medic_core::Finding> =
        all.iter().flat_map(|s| detectors.observe(s)).collect();
    let has = |service: &str, kind: FindingKind| {
        findings
            .iter()
            .any(|f| f.service == service && f.kind == kind)
    };
    assert!(has("shop/api", FindingKind::OomKilled), "{findings:#?}");
    assert!(has("shop/looper", FindingKind::CrashLoop), "{findings:#?}");
    assert!(
        has("kube-apiserver", FindingKind::TargetDown),
        "{findings:#?}"
    );

    stop.send(true).expect("stop");
    for h in handles {
        tokio::time::timeout(WAIT, h)
            .await
            .expect("source stops")
            .expect("join");
    }
    collector.abort();
    metrics.abort();
    proxy.stop().await;
    drop(sb);
}
