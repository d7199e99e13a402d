//! The `kubernetes` actuator against a real control plane (`medic_sandbox::harness`: etcd,
//! kube-apiserver 1.20, controller-manager and scheduler on loopback, and medic's process
//! kubelet, which runs pods' commands as host processes, probes them and reports status).
//!
//! One sandbox for the whole file (starting one takes ~15 s on two cores); every scenario runs
//! in its own namespace, and every scenario runs even when an earlier one fails, so that one
//! run reports every failure.

use futures::FutureExt;
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use medic_act::kubernetes::{KubernetesActuator, required_rules, required_rules_with_watch};
use medic_act::{ActError, Actuator};
use medic_config::{KubeConnection, KubernetesActuatorConfig};
use medic_core::{Action, ActionKind, WorkloadKind, WorkloadRef};
use serde_json::{Value, json};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Harness.

fn binaries_cached() -> bool {
    let cache = std::env::var_os("MEDIC_K8S_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/medic/k8s/1.20.2")
        });
    cache.join("bin/kube-apiserver").is_file()
}

async fn admin(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Helpers.

struct Env {
    kubeconfig: PathBuf,
    /// The node the process kubelet registered.
    node: String,
    client: kube::Client,
    tmp: PathBuf,
}

impl Env {
    fn cfg(&self, name: &str) -> KubernetesActuatorConfig {
        KubernetesActuatorConfig {
            connection: KubeConnection {
                kubeconfig: Some(self.kubeconfig.clone()),
                context: None,
            },
            history_file: self.tmp.join(format!("{name}-history.json")),
            timeout: Duration::from_secs(20),
            ..Default::default()
        }
    }
    async fn actuator(&self, name: &str) -> KubernetesActuator {
        KubernetesActuator::new(&self.cfg(name)).await.unwrap()
    }
    async fn namespace(&self, ns: &str) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
        // Pods need the namespace's default ServiceAccount (the controller-manager makes it).
        let sa: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        wait("default ServiceAccount", || async {
            sa.get_opt("default").await.unwrap().is_some()
        })
        .await;
    }
    fn deployments(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }
    async fn create_deployment(&self, ns: &str, d: Value) -> Deployment {
        let d: Deployment = serde_json::from_value(d).unwrap();
        let name = d.metadata.name.clone().unwrap();
        self.deployments(ns)
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
        // The controller sets the revision once it made the first ReplicaSet.
        wait("first revision", || async {
            revision(&self.deployments(ns).get(&name).await.unwrap()).is_some()
        })
        .await;
        self.deployments(ns).get(&name).await.unwrap()
    }
    async fn replicasets(&self, ns: &str, app: &str) -> Vec<ReplicaSet> {
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
        api.list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .unwrap()
            .items
    }
    async fn pods(&self, ns: &str, app: &str) -> Vec<Pod> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        api.list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .unwrap()
            .items
    }
}

fn deployment(name: &str, image: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image, "command": ["sleep", "3600"]}]}
            }
        }
    })
}

fn revision(d: &Deployment) -> Option<String> {
    d.metadata
        .annotations
        .as_ref()?
        .get("deployment.kubernetes.io/revision")
        .cloned()
}

fn template_annotation(d: &Deployment, key: &str) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(key)
        .cloned()
}

fn image(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

fn action(kind: ActionKind, kind_of: WorkloadKind, ns: &str, name: &str) -> Action {
    let mut a = Action::new(kind, format!("{ns}/{name}"));
    a.workload = Some(WorkloadRef::kube(kind_of, Some(ns), name));
    a
}

fn on_deployment(kind: ActionKind, ns: &str, name: &str) -> Action {
    action(kind, WorkloadKind::Deployment, ns, name)
}

async fn wait<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn create_node(client: &kube::Client, name: &str) {
    let api: Api<Node> = Api::all(client.clone());
    // Tainted: a node without a kubelet must never receive other scenarios' pods.
    let n: Node = serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"taints": [{"key": "medic.dev/test", "effect": "NoSchedule"}]}}))
    .unwrap();
    api.create(&PostParams::default(), &n).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

async fn restart_is_idempotent(env: &Env) {
    let ns = "t-restart";
    env.namespace(ns).await;
    env.create_deployment(ns, deployment("web", "x:1", 1)).await;
    let a = env.actuator("restart").await;
    let act = on_deployment(ActionKind::RestartWorkload, ns, "web");
    let r = a.execute("restart-1", &act).await.unwrap();
    assert!(r.applied, "{r:?}");
    assert!(r.detail.contains("restartedAt never →"), "{}", r.detail);
    let d = env.deployments(ns).get("web").await.unwrap();
    let stamp =
        template_annotation(&d, "kubectl.kubernetes.io/restartedAt").expect("restartedAt set");
    wait("a new ReplicaSet", || async {
        env.replicasets(ns, "web").await.len() == 2
    })
    .await;

    // The same key again, from a new actuator (medic restarted): nothing changes.
    let b = env.actuator("restart-b").await;
    let again = b.execute("restart-1", &act).await.unwrap();
    assert!(!again.applied, "{again:?}");
    assert_eq!(again.detail, r.detail);
    let d2 = env.deployments(ns).get("web").await.unwrap();
    assert_eq!(
        template_annotation(&d2, "kubectl.kubernetes.io/restartedAt"),
        Some(stamp)
    );
    assert_eq!(env.replicasets(ns, "web").await.len(), 2);
    assert_eq!(
        d2.metadata.annotations.as_ref().unwrap()["medic.dev/last-action"],
        "restart-1"
    );

    // Resolving by service name, without a typed target.
    assert_eq!(
        a.resolve("t-restart/web").await.unwrap(),
        Some(WorkloadRef::kube(WorkloadKind::Deployment, Some(ns), "web"))
    );
    assert_eq!(a.resolve("web").await.unwrap(), None);
    assert_eq!(a.resolve("t-restart/nope").await.unwrap(), None);
    assert_eq!(a.replicas("t-restart/web").await.unwrap(), Some(1));

    // Through the registry, as the agent calls it: built from config, routed by resolving the
    // service name (no typed target).
    let registry = medic_act::Actuators::build(&medic_config::ActuatorsConfig {
        local: None,
        kubernetes: Some(env.cfg("restart-registry")),
    })
    .await
    .unwrap();
    assert_eq!(registry.names(), ["kubernetes"]);
    let r = registry
        .execute(
            "restart-2",
            &Action::new(ActionKind::RestartWorkload, "t-restart/web"),
        )
        .await
        .unwrap();
    assert!(
        r.applied && r.detail.contains("Deployment t-restart/web"),
        "{r:?}"
    );
    assert!(matches!(
        registry
            .execute(
                "restart-3",
                &Action::new(ActionKind::RestartWorkload, "t-restart/nope")
            )
            .await,
        Err(ActError::Rejected(_))
    ));

    // Scaled to zero (someone took a dependency down): a restart starts it again.
    env.create_deployment(ns, deployment("gone", "x:1", 0))
        .await;
    let r = a
        .execute(
            "restart-4",
            &on_deployment(ActionKind::RestartWorkload, ns, "gone"),
        )
        .await
        .unwrap();
    assert!(r.detail.contains("replicas 0 → 1"), "{}", r.detail);
    let d = env.deployments(ns).get("gone").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(1));
}

async fn scale_and_hpa(env: &Env) {
    let ns = "t-scale";
    env.namespace(ns).await;
    env.create_deployment(ns, deployment("web", "x:1", 1)).await;
    env.create_deployment(ns, deployment("auto", "x:1", 1))
        .await;
    let a = env.actuator("scale").await;
    let act = on_deployment(ActionKind::ScaleWorkload, ns, "web").with_replicas(Some(3));
    let r = a.execute("scale-1", &act).await.unwrap();
    assert_eq!(r.detail, "replicas of Deployment t-scale/web 1 → 3");
    assert_eq!(
        env.deployments(ns)
            .get("web")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(3)
    );
    let same = a.execute("scale-2", &act).await.unwrap();
    assert!(
        same.applied && same.detail.contains("already 3"),
        "{same:?}"
    );

    // An HPA drives "auto": its bounds are raised instead.
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(env.client.clone(), ns);
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "auto"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "auto"},
                 "minReplicas": 1, "maxReplicas": 2, "targetCPUUtilizationPercentage": 80}
    }))
    .unwrap();
    hpas.create(&PostParams::default(), &hpa).await.unwrap();
    let act = on_deployment(ActionKind::ScaleWorkload, ns, "auto").with_replicas(Some(4));
    let r = a.execute("scale-hpa", &act).await.unwrap();
    assert!(
        r.detail.contains("HorizontalPodAutoscaler t-scale/auto"),
        "{}",
        r.detail
    );
    assert!(
        r.detail.contains("minReplicas 1 → 4, maxReplicas 2 → 4"),
        "{}",
        r.detail
    );
    let spec = hpas.get("auto").await.unwrap().spec.unwrap();
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(4), 4));
}

async fn rollback_to_previous_replicaset(env: &Env) {
    let ns = "t-rollback";
    env.namespace(ns).await;
    env.create_deployment(ns, deployment("web", "x:1", 1)).await;
    let a = env.actuator("rollback").await;
    let act = on_deployment(ActionKind::RollbackRelease, ns, "web");
    // Only one revision: nothing to roll back to.
    match a.execute("rb-0", &act).await {
        Err(ActError::Stale(m)) => assert!(m.contains("no previous revision"), "{m}"),
        other => panic!("expected Stale, got {other:?}"),
    }
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "x:2"}]}}}});
    env.deployments(ns)
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    wait("revision 2", || async {
        revision(&env.deployments(ns).get("web").await.unwrap()).as_deref() == Some("2")
    })
    .await;
    let r = a.execute("rb-1", &act).await.unwrap();
    assert!(
        r.detail.contains("revision 2 → revision 1's template"),
        "{}",
        r.detail
    );
    assert!(r.detail.contains("image main x:2 → x:1"), "{}", r.detail);
    let d = env.deployments(ns).get("web").await.unwrap();
    assert_eq!(image(&d), "x:1");
    let labels = d.spec.unwrap().template.metadata.unwrap().labels.unwrap();
    assert!(
        !labels.contains_key("pod-template-hash"),
        "the hash label is not copied back"
    );
    // The controller reuses the old ReplicaSet (revision 3): no third ReplicaSet.
    wait("revision 3", || async {
        revision(&env.deployments(ns).get("web").await.unwrap()).as_deref() == Some("3")
    })
    .await;
    assert_eq!(env.replicasets(ns, "web").await.len(), 2);

    // A StatefulSet keeps its history in ControllerRevisions.
    let mut sts = deployment("db", "db:1", 1);
    sts["kind"] = json!("StatefulSet");
    sts["spec"]["serviceName"] = json!("db");
    let sts_api: Api<StatefulSet> = Api::namespaced(env.client.clone(), ns);
    sts_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(sts).unwrap(),
        )
        .await
        .unwrap();
    let act = action(
        ActionKind::RollbackRelease,
        WorkloadKind::StatefulSet,
        ns,
        "db",
    );
    let revisions = || async {
        let api: Api<ControllerRevision> = Api::namespaced(env.client.clone(), ns);
        api.list(&ListParams::default().labels("app=db"))
            .await
            .unwrap()
            .items
            .len()
    };
    wait("the first ControllerRevision", || async {
        revisions().await == 1
    })
    .await;
    match a.execute("rb-sts-0", &act).await {
        Err(ActError::Stale(m)) => assert!(m.contains("no previous revision"), "{m}"),
        other => panic!("expected Stale, got {other:?}"),
    }
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "db:2"}]}}}});
    sts_api
        .patch("db", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    wait("a second ControllerRevision", || async {
        revisions().await == 2
    })
    .await;
    let r = a.execute("rb-sts-1", &act).await.unwrap();
    assert!(
        r.detail
            .contains("revision 2 → revision 1's template (ControllerRevision db-"),
        "{}",
        r.detail
    );
    assert!(r.detail.contains("image main db:2 → db:1"), "{}", r.detail);
    let s = sts_api.get("db").await.unwrap();
    let c = &s.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("db:1"));
}

async fn revert_config_restores_and_restarts(env: &Env) {
    let ns = "t-config";
    env.namespace(ns).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), ns);
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "web-config"}, "data": {"mode": "safe"}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let mut d = deployment("web", "x:1", 1);
    d["spec"]["template"]["spec"]["containers"][0]["envFrom"] =
        json!([{"configMapRef": {"name": "web-config"}}]);
    env.create_deployment(ns, d).await;
    env.create_deployment(ns, deployment("plain", "x:1", 1))
        .await;
    let a = env.actuator("config").await;
    let act = on_deployment(ActionKind::RevertConfig, ns, "web");
    wait("first ConfigMap version recorded", || async {
        a.history().versions(ns, "web-config").len() == 1
    })
    .await;
    match a.execute("rc-0", &act).await {
        Err(ActError::Rejected(m)) => assert!(m.contains("no earlier version"), "{m}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    let change = json!({"data": {"mode": "fast", "extra": "1"}});
    cms.patch(
        "web-config",
        &PatchParams::default(),
        &Patch::Merge(&change),
    )
    .await
    .unwrap();
    wait("second ConfigMap version recorded", || async {
        a.history().versions(ns, "web-config").len() == 2
    })
    .await;
    let r = a.execute("rc-1", &act).await.unwrap();
    assert!(
        r.detail.contains("ConfigMap t-config/web-config restored"),
        "{}",
        r.detail
    );
    assert!(
        r.detail.contains("keys changed: extra, mode"),
        "{}",
        r.detail
    );
    assert!(
        !r.detail.contains("fast") && !r.detail.contains("safe"),
        "values are never reported: {}",
        r.detail
    );
    let data = cms.get("web-config").await.unwrap().data.unwrap();
    assert_eq!(
        data.into_iter().collect::<Vec<_>>(),
        [("mode".to_string(), "safe".to_string())]
    );
    let dep = env.deployments(ns).get("web").await.unwrap();
    assert!(
        template_annotation(&dep, "kubectl.kubernetes.io/restartedAt").is_some(),
        "restarted"
    );
    // A repeat changes nothing (and does not revert the revert).
    let again = a.execute("rc-1", &act).await.unwrap();
    assert!(!again.applied);
    assert_eq!(
        cms.get("web-config").await.unwrap().data.unwrap()["mode"],
        "safe"
    );
    // The history survives on disk.
    let file = std::fs::read_to_string(env.tmp.join("config-history.json")).unwrap();
    assert!(file.contains("t-config/web-config"), "{file}");
    // A workload that reads no ConfigMap.
    match a
        .execute(
            "rc-2",
            &on_deployment(ActionKind::RevertConfig, ns, "plain"),
        )
        .await
    {
        Err(ActError::Rejected(m)) => assert!(m.contains("references no ConfigMap"), "{m}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

async fn delete_pod_one_per_action(env: &Env) {
    let ns = "t-delete";
    env.namespace(ns).await;
    // Two running replicas; only the first to start (host-wide mkdir, pods are processes)
    // passes its readiness probe, so the other is the least healthy.
    let lock = env.tmp.join("delete-ready-lock");
    let mut d = deployment("web", "x:1", 2);
    d["spec"]["template"]["spec"]["containers"][0]["command"] = json!([
        "sh",
        "-c",
        format!(
            "if mkdir {} 2>/dev/null; then touch ready; fi; exec sleep 3600",
            lock.display()
        )
    ]);
    d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] =
        json!({"exec": {"command": ["test", "-f", "ready"]}, "periodSeconds": 1});
    env.create_deployment(ns, d).await;
    let ready = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let running = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    wait("2 running pods, one ready", || async {
        let pods = env.pods(ns, "web").await;
        pods.len() == 2 && pods.iter().all(running) && pods.iter().filter(|p| ready(p)).count() == 1
    })
    .await;
    let pods_now = env.pods(ns, "web").await;
    let unready = pods_now
        .iter()
        .find(|p| !ready(p))
        .unwrap()
        .metadata
        .name
        .clone()
        .unwrap();
    let healthy = pods_now
        .iter()
        .find(|p| ready(p))
        .unwrap()
        .metadata
        .name
        .clone()
        .unwrap();
    let a = env.actuator("delete").await;
    let r = a
        .execute("del-1", &on_deployment(ActionKind::DeletePod, ns, "web"))
        .await
        .unwrap();
    assert!(
        r.detail
            .contains(&format!("deleted pod t-delete/{unready}")),
        "{}",
        r.detail
    );
    assert!(
        r.detail.contains("not ready, phase Running"),
        "{}",
        r.detail
    );
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), ns);
    wait("the pod gone", || async {
        pods.get_opt(&unready).await.unwrap().is_none()
    })
    .await;
    let h = pods.get(&healthy).await.unwrap();
    assert!(
        h.metadata.deletion_timestamp.is_none(),
        "only one pod per action"
    );
    // The same key: nothing more is deleted.
    let again = a
        .execute("del-1", &on_deployment(ActionKind::DeletePod, ns, "web"))
        .await
        .unwrap();
    assert!(!again.applied, "{again:?}");
    assert!(
        pods.get(&healthy)
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
    // A named pod (kind Pod), recorded on its Deployment.
    let r = a
        .execute(
            "del-2",
            &action(ActionKind::DeletePod, WorkloadKind::Pod, ns, &healthy),
        )
        .await
        .unwrap();
    assert!(
        r.detail.contains(&healthy) && r.detail.contains("of Deployment t-delete/web"),
        "{}",
        r.detail
    );
    assert!(r.detail.contains("(ready, phase Running"), "{}", r.detail);
    // A bare pod has no controller to replace it.
    let bare: Pod = serde_json::from_value(
        json!({"metadata": {"name": "bare"}, "spec": {"containers": [{"name": "c", "image": "x", "command": ["sleep", "3600"]}]}}),
    )
    .unwrap();
    pods.create(&PostParams::default(), &bare).await.unwrap();
    match a
        .execute(
            "del-3",
            &action(ActionKind::DeletePod, WorkloadKind::Pod, ns, "bare"),
        )
        .await
    {
        Err(ActError::Rejected(m)) => assert!(m.contains("no controller"), "{m}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    pods.delete("bare", &Default::default()).await.unwrap();
}

async fn set_resources_raises_never_lowers(env: &Env) {
    let ns = "t-resources";
    env.namespace(ns).await;
    let mut d = deployment("web", "x:1", 1);
    d["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "sidecar", "image": "s:1"},
        {"name": "main", "image": "x:1", "resources": {"limits": {"memory": "64Mi"}, "requests": {"memory": "32Mi"}}}
    ]);
    env.create_deployment(ns, d).await;
    let a = env.actuator("resources").await;
    let mut act = on_deployment(ActionKind::SetResources, ns, "web");
    act.workload.as_mut().unwrap().container = Some("main".into());
    act.memory_limit_bytes = Some(96 << 20);
    let r = a.execute("res-1", &act).await.unwrap();
    assert_eq!(
        r.detail,
        "container main of Deployment t-resources/web: memory limit 64Mi → 96Mi (request 32Mi kept)"
    );
    let dep = env.deployments(ns).get("web").await.unwrap();
    let c = &dep.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(c.len(), 2, "strategic merge keeps the other container");
    let res = c
        .iter()
        .find(|c| c.name == "main")
        .unwrap()
        .resources
        .clone()
        .unwrap();
    assert_eq!(res.limits.unwrap()["memory"].0, "96Mi");
    assert_eq!(res.requests.unwrap()["memory"].0, "32Mi");
    act.memory_limit_bytes = Some(32 << 20);
    match a.execute("res-2", &act).await {
        Err(ActError::Rejected(m)) => assert!(m.contains("never lowers"), "{m}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

/// Runs last: it cordons the sandbox's only real node (and uncordons it at the end).
async fn cordon_and_drain(env: &Env) {
    let ns = "t-drain";
    env.namespace(ns).await;
    create_node(&env.client, "node-a").await;
    let a = env.actuator("drain").await;
    let nodes: Api<Node> = Api::all(env.client.clone());

    let cordon = Action::new(ActionKind::CordonNode, "node-a");
    let r = a.execute("cordon-1", &cordon).await.unwrap();
    assert_eq!(
        r.detail,
        "node node-a unschedulable false → true (cordoned)"
    );
    assert_eq!(
        nodes
            .get("node-a")
            .await
            .unwrap()
            .spec
            .unwrap()
            .unschedulable,
        Some(true)
    );
    assert!(!a.execute("cordon-1", &cordon).await.unwrap().applied);

    // Two running, ready replicas on the kubelet's node, a PodDisruptionBudget that wants
    // both (policy/v1beta1: the 1.20 server has no v1), and a DaemonSet pod beside them.
    let node = env.node.as_str();
    env.create_deployment(ns, deployment("guarded", "x:1", 2))
        .await;
    let ds: Api<DaemonSet> = Api::namespaced(env.client.clone(), ns);
    let mut daemon = deployment("agent", "x:1", 1);
    daemon["kind"] = json!("DaemonSet");
    daemon["spec"].as_object_mut().unwrap().remove("replicas");
    ds.create(
        &PostParams::default(),
        &serde_json::from_value(daemon).unwrap(),
    )
    .await
    .unwrap();
    let ready = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    wait("2 ready pods and the DaemonSet pod", || async {
        let g = env.pods(ns, "guarded").await;
        g.len() == 2 && g.iter().all(ready) && env.pods(ns, "agent").await.iter().any(ready)
    })
    .await;
    let guarded: Vec<String> = env
        .pods(ns, "guarded")
        .await
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    let pdb_ar = ApiResource {
        group: "policy".into(),
        version: "v1beta1".into(),
        api_version: "policy/v1beta1".into(),
        kind: "PodDisruptionBudget".into(),
        plural: "poddisruptionbudgets".into(),
    };
    let pdbs: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), ns, &pdb_ar);
    let pdb = DynamicObject::new("guarded", &pdb_ar).data(
        json!({"spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "guarded"}}}}),
    );
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    wait(
        "the disruption controller to count 2 healthy pods",
        || async {
            let p = pdbs.get("guarded").await.unwrap();
            p.data
                .pointer("/status/currentHealthy")
                .and_then(Value::as_i64)
                == Some(2)
        },
    )
    .await;
    let drain = Action::new(ActionKind::DrainNode, node);
    let e = a.execute("drain-1", &drain).await.unwrap_err();
    let ActError::Rejected(m) = e else {
        panic!("expected Rejected, got {e:?}")
    };
    assert!(
        m.contains("could not evict 2 pods") && m.contains("does not force"),
        "{m}"
    );
    assert!(m.contains("disruption budget"), "{m}");
    assert!(
        m.contains("(DaemonSet)"),
        "the DaemonSet pod is skipped: {m}"
    );
    for name in &guarded {
        assert!(m.contains(name.as_str()), "{m}");
        let p: Pod = Api::namespaced(env.client.clone(), ns)
            .get(name)
            .await
            .unwrap();
        assert!(
            p.metadata.deletion_timestamp.is_none() && ready(&p),
            "{name} was disrupted"
        );
    }
    assert_eq!(
        nodes.get(node).await.unwrap().spec.unwrap().unschedulable,
        Some(true),
        "cordoned first"
    );

    // Without the budget the same drain evicts both; the kubelet stops them, and their
    // replacements stay Pending on the cordoned node. The DaemonSet pod keeps running.
    pdbs.delete("guarded", &Default::default()).await.unwrap();
    let r = a.execute("drain-2", &drain).await.unwrap();
    // (Earlier scenarios' pods on the node were evicted by the first drain already.)
    assert!(r.detail.contains("evicted "), "{}", r.detail);
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), ns);
    for name in &guarded {
        assert!(r.detail.contains(name.as_str()), "{}", r.detail);
        wait("the evicted pod gone", || async {
            pods.get_opt(name).await.unwrap().is_none()
        })
        .await;
    }
    assert!(
        env.pods(ns, "agent")
            .await
            .iter()
            .all(|p| p.metadata.deletion_timestamp.is_none())
    );
    assert!(!a.execute("drain-2", &drain).await.unwrap().applied);

    let uncordon = json!({"spec": {"unschedulable": false}});
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&uncordon))
        .await
        .unwrap();
}

async fn isolate_creates_a_network_policy(env: &Env) {
    let ns = "t-isolate";
    env.namespace(ns).await;
    env.create_deployment(ns, deployment("web", "x:1", 1)).await;
    let a = env.actuator("isolate").await;
    let act = on_deployment(ActionKind::IsolateWorkload, ns, "web");
    let r = a.execute("iso-1", &act).await.unwrap();
    assert!(
        r.detail
            .contains("NetworkPolicy t-isolate/medic-isolate-web"),
        "{}",
        r.detail
    );
    let nps: Api<NetworkPolicy> = Api::namespaced(env.client.clone(), ns);
    let np = nps.get("medic-isolate-web").await.unwrap();
    assert_eq!(
        np.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
        "medic"
    );
    let spec = np.spec.unwrap();
    assert_eq!(
        spec.pod_selector.unwrap().match_labels.unwrap()["app"],
        "web"
    );
    assert_eq!(spec.policy_types.unwrap(), ["Ingress", "Egress"]);
    assert!(spec.ingress.is_none() && spec.egress.is_none(), "deny all");
    let again = a.execute("iso-2", &act).await.unwrap();
    assert!(again.detail.contains("already isolated"), "{again:?}");
}

async fn gitops_and_namespaces_refused(env: &Env) {
    let ns = "t-gitops";
    env.namespace(ns).await;
    let mut d = deployment("web", "x:1", 1);
    d["metadata"]["labels"] = json!({"argocd.argoproj.io/instance": "shop"});
    env.create_deployment(ns, d).await;
    let mut flux = deployment("flux", "x:1", 1);
    flux["metadata"]["labels"] = json!({"kustomize.toolkit.fluxcd.io/name": "apps"});
    env.create_deployment(ns, flux).await;
    let a = env.actuator("gitops").await;
    let before = env
        .deployments(ns)
        .get("web")
        .await
        .unwrap()
        .metadata
        .resource_version;
    match a
        .execute(
            "g-1",
            &on_deployment(ActionKind::RestartWorkload, ns, "web"),
        )
        .await
    {
        Err(ActError::ManagedElsewhere(m)) => {
            assert!(m.contains("Argo CD") && m.contains("recommends"), "{m}")
        }
        other => panic!("expected ManagedElsewhere, got {other:?}"),
    }
    match a
        .execute(
            "g-2",
            &on_deployment(ActionKind::ScaleWorkload, ns, "flux").with_replicas(Some(2)),
        )
        .await
    {
        Err(ActError::ManagedElsewhere(m)) => assert!(m.contains("Flux"), "{m}"),
        other => panic!("expected ManagedElsewhere, got {other:?}"),
    }
    assert_eq!(
        env.deployments(ns)
            .get("web")
            .await
            .unwrap()
            .metadata
            .resource_version,
        before
    );
    match a
        .execute(
            "g-3",
            &on_deployment(ActionKind::RestartWorkload, "kube-system", "coredns"),
        )
        .await
    {
        Err(ActError::Rejected(m)) => assert!(m.contains("excluded"), "{m}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

async fn dry_run_changes_nothing(env: &Env) {
    let ns = "t-dry";
    env.namespace(ns).await;
    env.create_deployment(ns, deployment("web", "x:1", 1)).await;
    let a = env.actuator("dry").await;
    // The controller writes the Deployment's status until its pod is available: only then
    // does an unchanged resourceVersion mean that the dry runs wrote nothing.
    wait("web available", || async {
        let d = env.deployments(ns).get("web").await.unwrap();
        d.status.and_then(|s| s.available_replicas) == Some(1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = env.deployments(ns).get("web").await.unwrap();
    let r = a
        .dry_run(&on_deployment(ActionKind::ScaleWorkload, ns, "web").with_replicas(Some(5)))
        .await
        .unwrap();
    assert!(
        !r.applied && r.detail.starts_with("dry run") && r.detail.contains("1 → 5"),
        "{r:?}"
    );
    let r = a
        .dry_run(&on_deployment(ActionKind::RestartWorkload, ns, "web"))
        .await
        .unwrap();
    assert!(!r.applied, "{r:?}");
    let r = a
        .dry_run(&on_deployment(ActionKind::IsolateWorkload, ns, "web"))
        .await
        .unwrap();
    assert!(!r.applied, "{r:?}");
    let mut res = on_deployment(ActionKind::SetResources, ns, "web");
    res.memory_limit_bytes = Some(128 << 20);
    assert!(!a.dry_run(&res).await.unwrap().applied);
    wait("a pod", || async { !env.pods(ns, "web").await.is_empty() }).await;
    let r = a
        .dry_run(&on_deployment(ActionKind::DeletePod, ns, "web"))
        .await
        .unwrap();
    assert!(!r.applied && r.detail.contains("deleted pod"), "{r:?}");
    assert!(
        env.pods(ns, "web")
            .await
            .iter()
            .all(|p| p.metadata.deletion_timestamp.is_none())
    );
    let after = env.deployments(ns).get("web").await.unwrap();
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "nothing written"
    );
    let nps: Api<NetworkPolicy> = Api::namespaced(env.client.clone(), ns);
    assert!(nps.get_opt("medic-isolate-web").await.unwrap().is_none());
    // A dry run still refuses what a run would refuse (namespaces, GitOps, stale state).
    assert!(matches!(
        a.dry_run(&on_deployment(ActionKind::RollbackRelease, ns, "web"))
            .await,
        Err(ActError::Stale(_))
    ));
}

/// A conflicting write between the actuator's read and its write: the write is retried on
/// fresh state (and sees what the other writer did).
async fn conflict_is_retried(env: &Env) {
    let ns = "t-conflict";
    env.namespace(ns).await;
    env.create_deployment(ns, deployment("web", "x:1", 1)).await;
    env.create_deployment(ns, deployment("raced", "x:1", 1))
        .await;
    let a = env.actuator("conflict").await;
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let (seen, client) = (attempts.clone(), env.client.clone());
    a.set_before_write(Some(Arc::new(move |kind, attempt| {
        seen.lock().unwrap().push(attempt);
        let client = client.clone();
        Box::pin(async move {
            if attempt == 1 {
                let api: Api<Deployment> = Api::namespaced(client, "t-conflict");
                let name = if kind == ActionKind::ScaleWorkload {
                    "raced"
                } else {
                    "web"
                };
                let spec = if kind == ActionKind::ScaleWorkload {
                    json!({"spec": {"replicas": 3}})
                } else {
                    json!({"metadata": {"labels": {"touched": "yes"}}})
                };
                api.patch(name, &PatchParams::default(), &Patch::Merge(&spec))
                    .await
                    .unwrap();
            }
        }) as Pin<Box<dyn Future<Output = ()> + Send>>
    })));
    let r = a
        .execute(
            "c-1",
            &on_deployment(ActionKind::RestartWorkload, ns, "web"),
        )
        .await
        .unwrap();
    assert!(r.applied);
    assert_eq!(*attempts.lock().unwrap(), [1, 2], "one conflict, one retry");
    let d = env.deployments(ns).get("web").await.unwrap();
    assert_eq!(
        d.metadata.labels.as_ref().unwrap()["touched"],
        "yes",
        "the other writer's change is kept"
    );
    assert!(template_annotation(&d, "kubectl.kubernetes.io/restartedAt").is_some());
    // The other writer scaled to the target first: on fresh state there is nothing to do.
    attempts.lock().unwrap().clear();
    let r = a
        .execute(
            "c-2",
            &on_deployment(ActionKind::ScaleWorkload, ns, "raced").with_replicas(Some(3)),
        )
        .await
        .unwrap();
    assert!(r.detail.contains("already 3"), "{}", r.detail);
    assert_eq!(*attempts.lock().unwrap(), [1]);
    a.set_before_write(None);
}

/// The RBAC rules `required_rules` lists are enough (every action run under exactly them),
/// and a missing rule is a Forbidden naming verb, resource and namespace.
async fn rbac_rules_and_forbidden(env: &Env) {
    let ns = "t-rbac";
    env.namespace(ns).await;
    env.create_deployment(ns, deployment("web", "x:1", 1)).await;
    let kinds = [
        ActionKind::RestartWorkload,
        ActionKind::ScaleWorkload,
        ActionKind::SetResources,
        ActionKind::IsolateWorkload,
        ActionKind::DeletePod,
        ActionKind::RollbackRelease,
        ActionKind::RevertConfig,
    ];
    let exact = service_account(
        env,
        ns,
        "exact",
        &rules_json(&required_rules_with_watch(&kinds)),
    )
    .await;
    let mut cfg = env.cfg("rbac-exact");
    cfg.connection.kubeconfig = Some(exact);
    cfg.namespaces = vec![ns.to_string()];
    let a = KubernetesActuator::new(&cfg).await.unwrap();
    a.execute(
        "r-1",
        &on_deployment(ActionKind::RestartWorkload, ns, "web"),
    )
    .await
    .unwrap();
    a.execute(
        "r-2",
        &on_deployment(ActionKind::ScaleWorkload, ns, "web").with_replicas(Some(2)),
    )
    .await
    .unwrap();
    let mut res = on_deployment(ActionKind::SetResources, ns, "web");
    res.memory_limit_bytes = Some(64 << 20);
    a.execute("r-3", &res).await.unwrap();
    a.execute(
        "r-4",
        &on_deployment(ActionKind::IsolateWorkload, ns, "web"),
    )
    .await
    .unwrap();
    wait("pods", || async { !env.pods(ns, "web").await.is_empty() }).await;
    a.execute("r-5", &on_deployment(ActionKind::DeletePod, ns, "web"))
        .await
        .unwrap();
    wait("a second revision", || async {
        revision(&env.deployments(ns).get("web").await.unwrap())
            .and_then(|r| r.parse::<u32>().ok())
            .is_some_and(|r| r >= 2)
    })
    .await;
    a.execute(
        "r-6",
        &on_deployment(ActionKind::RollbackRelease, ns, "web"),
    )
    .await
    .unwrap();
    // Resolution by name works with these rules too.
    assert!(a.resolve("t-rbac/web").await.unwrap().is_some());

    // Only reads: a restart is forbidden, and the error says which rule is missing.
    let read_only = json!([{"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets"], "verbs": ["get"]}]);
    let limited = service_account(env, ns, "limited", &read_only).await;
    let mut cfg = env.cfg("rbac-limited");
    cfg.connection.kubeconfig = Some(limited);
    cfg.namespaces = vec![ns.to_string()];
    let b = KubernetesActuator::new(&cfg).await.unwrap();
    match b
        .execute(
            "f-1",
            &on_deployment(ActionKind::RestartWorkload, ns, "web"),
        )
        .await
    {
        Err(ActError::Forbidden(m)) => {
            assert!(
                m.contains(r#"verb "patch" on resource "deployments""#),
                "{m}"
            );
            assert!(m.contains(r#"in namespace "t-rbac""#), "{m}");
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
    match b
        .execute(
            "f-2",
            &on_deployment(ActionKind::IsolateWorkload, ns, "web"),
        )
        .await
    {
        Err(ActError::Forbidden(m)) => assert!(m.contains(r#"resource "networkpolicies""#), "{m}"),
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

fn rules_json(rules: &[medic_act::kubernetes::PolicyRule]) -> Value {
    serde_json::to_value(rules).unwrap()
}

/// A ServiceAccount bound to a Role with `rules`; returns a kubeconfig with its token.
async fn service_account(env: &Env, ns: &str, name: &str, rules: &Value) -> PathBuf {
    let c = &env.client;
    let sas: Api<ServiceAccount> = Api::namespaced(c.clone(), ns);
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
    let roles: Api<Role> = Api::namespaced(c.clone(), ns);
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}, "rules": rules})).unwrap(),
        )
        .await
        .unwrap();
    let rbs: Api<RoleBinding> = Api::namespaced(c.clone(), ns);
    let rb = json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
    });
    rbs.create(&PostParams::default(), &serde_json::from_value(rb).unwrap())
        .await
        .unwrap();
    // The 1.20 token controller creates the token Secret and lists it on the ServiceAccount.
    let started = Instant::now();
    let secret_name = loop {
        let sa = sas.get(name).await.unwrap();
        if let Some(n) = sa
            .secrets
            .and_then(|s| s.into_iter().next())
            .and_then(|s| s.name)
        {
            break n;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no token Secret for {name}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let secrets: Api<Secret> = Api::namespaced(c.clone(), ns);
    let secret = secrets.get(&secret_name).await.unwrap();
    let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    let admin = kube::config::Kubeconfig::read_from(&env.kubeconfig).unwrap();
    let server = admin.clusters[0]
        .cluster
        .as_ref()
        .unwrap()
        .server
        .clone()
        .unwrap();
    let path = env.tmp.join(format!("{name}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: s\n    user: u\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    path
}

// ---------------------------------------------------------------------------------------------

type Scenario = for<'a> fn(&'a Env) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

macro_rules! scenarios {
    ($($f:ident),* $(,)?) => {
        [$((stringify!($f), (|env| Box::pin($f(env))) as Scenario)),*]
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_actuator_against_a_real_api_server() {
    if !binaries_cached() {
        eprintln!("SKIPPED: no sandbox binaries (run scripts/k8s-sandbox build once)");
        return;
    }
    let mut sandbox = tokio::task::spawn_blocking(|| {
        medic_sandbox::harness::Sandbox::builder()
            .max_backoff(Duration::from_secs(2))
            .start()
    })
    .await
    .unwrap()
    .expect("start the sandbox");
    let tmp = tempfile::tempdir().unwrap();
    let env = Env {
        kubeconfig: sandbox.kubeconfig_path(),
        node: sandbox
            .node_name()
            .expect("a sandbox with the kubelet")
            .to_string(),
        client: admin(&sandbox.kubeconfig_path()).await,
        tmp: tmp.path().to_path_buf(),
    };
    let only = std::env::var("MEDIC_K8S_SCENARIO").ok();
    let mut failed = Vec::new();
    for (name, scenario) in scenarios![
        restart_is_idempotent,
        scale_and_hpa,
        rollback_to_previous_replicaset,
        revert_config_restores_and_restarts,
        delete_pod_one_per_action,
        set_resources_raises_never_lowers,
        isolate_creates_a_network_policy,
        gitops_and_namespaces_refused,
        dry_run_changes_nothing,
        conflict_is_retried,
        rbac_rules_and_forbidden,
        cordon_and_drain,
    ] {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let started = Instant::now();
        let outcome = std::panic::AssertUnwindSafe(scenario(&env))
            .catch_unwind()
            .await;
        match outcome {
            Ok(()) => eprintln!("ok   {name} ({:.1}s)", started.elapsed().as_secs_f64()),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("FAIL {name}: {msg}");
                failed.push(name);
            }
        }
    }
    sandbox.stop();
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
}

#[tokio::test]
async fn a_bad_kubeconfig_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, "not: [a kubeconfig").unwrap();
    let cfg = KubernetesActuatorConfig {
        connection: KubeConnection {
            kubeconfig: Some(path.clone()),
            context: None,
        },
        history_file: dir.path().join("h.json"),
        ..Default::default()
    };
    match KubernetesActuator::new(&cfg).await {
        Err(ActError::Invalid(m)) => assert!(m.contains(&path.display().to_string()), "{m}"),
        Err(e) => panic!("expected Invalid, got {e:?}"),
        Ok(_) => panic!("expected Invalid, got an actuator"),
    }
}

#[test]
fn rules_cover_every_action_the_tests_run() {
    // The drain rules are cluster-scoped (nodes, pods on every namespace).
    let r = required_rules(&[ActionKind::DrainNode]);
    assert!(
        r.iter()
            .any(|r| r.resources.contains(&"pods/eviction") && r.verbs == ["create"])
    );
}
