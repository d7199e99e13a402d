//! medic against a real Kubernetes control plane whose pods are real processes (the sandbox:
//! etcd, kube-apiserver, controller-manager, scheduler, medic's process kubelet). medic
//! watches only the API and heals only through it.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use medic_core::{ActionKind, Cause, ExecutionStatus, IncidentState, SystemClock};
use medic_sandbox::harness::Sandbox;
use medic_store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common/rollout.rs"]
mod rollout;
use rollout::wait_rollout;

const NS: &str = "shop";

/// A web server that refuses to start unless its ConfigMap says `mode: good`: the shape of
/// a real service whose bad configuration makes it crash at start.
const APP: &str = r#"
import os, sys, http.server
mode = os.environ.get("MODE", "")
if mode != "good":
    print(f"fatal: invalid configuration: mode={mode!r}, expected 'good'", flush=True)
    sys.exit(1)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
print("listening", flush=True)
http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), H).serve_forever()
"#;

fn deployment() -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [{
                        "name": "web",
                        "image": "example.org/web:1",
                        "command": ["python3", "-c", APP],
                        "env": [
                            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "web-config", "key": "mode"}}},
                            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
                        ],
                        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                        "resources": {"limits": {"memory": "128Mi"}}
                    }]
                }
            }
        }
    }))
    .expect("deployment json")
}

fn agent_config(sandbox: &Sandbox, dir: &std::path::Path) -> medic_config::Config {
    let kubeconfig = sandbox.kubeconfig_path();
    let yaml = format!(
        r#"
agent: {{ tick: 500ms, diagnosis_settle: 3s, change_lookback: 10m }}
sources:
  - name: cluster
    type: kubernetes
    kubeconfig: "{kc}"
    namespaces: [{NS}]
    scrape_annotated_pods: false
detectors:
  restarts: {{ enabled: true, crash_loop_count: 2, crash_loop_window: 120s, clear_after: 15s }}
policies:
  - name: revert-bad-config
    match: {{ cause: misconfiguration }}
    action: revert_config
    confidence_threshold: 0.6
    mode: auto
    max_attempts: 1
    cooldown: 2m
    verification_window: 20s
    escalation: oncall
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

async fn setup(client: &Client) {
    let ns: Api<Namespace> = Api::all(client.clone());
    let n: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": NS}})).unwrap();
    ns.create(&PostParams::default(), &n)
        .await
        .expect("namespace");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-config"}, "data": {"mode": "good"}
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("configmap");
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NS);
    // The namespace's default ServiceAccount appears a moment after the namespace.
    let start = Instant::now();
    loop {
        match deploys.create(&PostParams::default(), &deployment()).await {
            Ok(_) => break,
            Err(e) if start.elapsed() < Duration::from_secs(30) => {
                tracing_or_eprint(&format!("deployment not created yet: {e}"));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("deployment: {e}"),
        }
    }
}

fn tracing_or_eprint(s: &str) {
    eprintln!("{s}");
}

/// What `kubectl rollout restart` patches.
fn restart_patch() -> serde_json::Value {
    serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": chrono::Utc::now().to_rfc3339()
    }}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configmap_rollout_is_diagnosed_as_misconfiguration_and_reverted() {
    // Starting the control plane blocks for 10-20 s: not on a runtime worker.
    let sandbox = tokio::task::spawn_blocking(|| {
        Sandbox::builder()
            .max_backoff(Duration::from_secs(2))
            .start()
    })
    .await
    .unwrap()
    .expect(
        "sandbox (scripts/k8s-sandbox build, then MEDIC_KUBELET or cargo build -p medic-sandbox)",
    );
    let client = sandbox.client().await.expect("client");
    setup(&client).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NS);
    wait_rollout(&deploys, "web", Duration::from_secs(60)).await;

    let dir = tempfile::tempdir().unwrap();
    let cfg = agent_config(&sandbox, dir.path());
    let store = Arc::new(Store::open(&dir.path().join("medic.db")).unwrap());
    let running = medic_agent::start(cfg, store.clone(), Arc::new(SystemClock))
        .await
        .expect("agent");
    let mut timeline = running.timeline.resubscribe();
    let printer = tokio::spawn(async move {
        while let Ok(ev) = timeline.recv().await {
            eprintln!("{}", ev.line());
        }
    });
    // Let the source list everything and the detectors see a healthy estate.
    tokio::time::sleep(Duration::from_secs(8)).await;

    // The bad change, as a person would make it: edit the ConfigMap, roll the Deployment.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    cms.patch(
        "web-config",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"mode": "broken"}})),
    )
    .await
    .expect("bad config");
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(restart_patch()),
        )
        .await
        .expect("rollout");
    let injected = Instant::now();

    // medic: crash loop → misconfiguration → revert_config → rollout → verified.
    let mut resolved = None;
    while injected.elapsed() < Duration::from_secs(150) {
        let incidents = store.incidents().unwrap();
        if let Some(i) = incidents
            .iter()
            .find(|i| matches!(i.state, IncidentState::Resolved | IncidentState::Escalated))
        {
            resolved = Some(i.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let recovery = injected.elapsed();
    running.stop().await.expect("agent stops cleanly");
    printer.abort();
    let inc = resolved.expect("an incident ended within 150 s");
    let top = inc
        .diagnosis
        .as_ref()
        .and_then(|d| d.top())
        .expect("diagnosis");
    assert_eq!(top.cause, Cause::Misconfiguration, "{inc:#?}");
    assert_eq!(top.target, format!("{NS}/web"));
    assert_eq!(inc.state, IncidentState::Resolved, "{inc:#?}");
    let exec = inc.executions.first().expect("an execution");
    assert_eq!(exec.action.kind, ActionKind::RevertConfig);
    assert_eq!(exec.status, ExecutionStatus::Succeeded);
    let w = exec.action.workload.as_ref().expect("typed target");
    assert_eq!(w.kind, medic_core::WorkloadKind::Deployment);
    assert_eq!(w.namespace.as_deref(), Some(NS));
    eprintln!("recovered {recovery:?} after the bad rollout");

    // The cluster is healthy again: the old configuration, and the rollout complete.
    let cm = cms.get("web-config").await.unwrap();
    assert_eq!(
        cm.data.unwrap_or_default().get("mode").map(String::as_str),
        Some("good")
    );
    wait_rollout(&deploys, "web", Duration::from_secs(60)).await;
    // The audit holds before/after and passes verification.
    assert!(store.verify_audit().unwrap().broken.is_none());
    drop(sandbox);
}
