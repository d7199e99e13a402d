//! `medic demo --kubernetes`: the demo's five services as Deployments, Services and
//! ConfigMaps on the sandbox cluster (a real control plane whose pods are real processes), the
//! seven faults done the Kubernetes way, and medic watching only the API server and the pods'
//! log files and healing only through the API server, as a ServiceAccount bound to exactly
//! the rules `medic rbac` prints for its config.

use super::{DemoArgs, Injected, Report};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use medic_core::Ts;
use medic_demo::estate::{CAMPAIGN_LEAD, DEFAULT_SURGE_FACTOR, LATENCY_FAULT_MS};
use medic_demo::topology::{
    BAD_RELEASE, BAD_RELEASE_FAIL_RATIO, GOOD_RELEASE, SERVICES, broken_config, initial_config,
};
use medic_sandbox::harness::Sandbox;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The config the demo runs medic with, and the policies beside it.
const CONFIG: &str = include_str!("../../../../examples/kubernetes/demo.yaml");
const POLICIES: &str = include_str!("../../../../examples/kubernetes/policies.yaml");

/// The namespace the demo's workloads live in.
pub const NS: &str = "medic-demo";
/// Where medic's ServiceAccount lives.
const MEDIC_NS: &str = "medic-system";
/// The port every demo service listens on, in its pod.
const PORT: u16 = 8080;
/// Memory limit of each demo container: the leak (16 MiB/s) reaches it in seconds.
const MEMORY_LIMIT: &str = "128Mi";
/// Leak rate of the `memory_leak` fault, MiB per second.
const LEAK_MIB_PER_S: f64 = 16.0;
/// Base load across all routes, requests per second.
const BASE_RPS: f64 = 30.0;
/// CrashLoopBackOff cap of the sandbox's kubelet: short, so a crash loop shows in seconds.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a planned campaign is announced for.
const CAMPAIGN_LENGTH_S: i64 = 600;

/// Who makes each change, as the API records it (managedFields) and medic reports it.
const CONFIG_AUTHOR: &str = "deploy-bot";
const RELEASE_AUTHOR: &str = "ci-pipeline";
const OPS_AUTHOR: &str = "ops-script";

pub(super) fn default_service(kind: &str) -> &'static str {
    match kind {
        "memory_leak" => "catalog",
        "bad_config" => "checkout",
        "bad_deployment" => "payment",
        "dependency_down" => "cache",
        "latency" => "payment",
        _ => "frontend",
    }
}

/// Runs the demo on a fresh sandbox; the sandbox is stopped (every process, by PID) when
/// this returns, whatever happened.
pub(super) async fn run(
    args: &DemoArgs,
    faults: &[String],
    run_dir: &Path,
    store_path: &Path,
) -> Result<Report> {
    if !medic_sandbox::harness::control_plane_built() {
        bail!(
            "the Kubernetes sandbox is not built yet (no kube-apiserver in {}): run \
             `scripts/k8s-sandbox build` once (8–12 minutes on 2 cores; it needs root for \
             apt-get), then run this again",
            medic_sandbox::harness::control_plane_dir().display()
        );
    }
    let kubelet = find_kubelet()?;
    eprintln!(
        "medic demo: starting the sandbox cluster (etcd, kube-apiserver, controller-manager, \
         scheduler, process kubelet {})",
        kubelet.display()
    );
    let sandbox = tokio::task::spawn_blocking(move || {
        Sandbox::builder()
            .kubelet_binary(kubelet)
            .max_backoff(MAX_BACKOFF)
            .start()
    })
    .await?
    .context("starting the sandbox cluster")?;
    eprintln!(
        "medic demo: sandbox up in {} (admin kubeconfig: {})",
        sandbox.dir().display(),
        sandbox.kubeconfig_path().display()
    );
    let result = drive(args, faults, run_dir, store_path, &sandbox).await;
    drop(sandbox);
    result
}

/// `medic-kubelet` beside this binary (a `cargo build --release` builds both), else the
/// harness's search (MEDIC_KUBELET, the debug build, or a build of it).
fn find_kubelet() -> Result<PathBuf> {
    if let Some(p) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("medic-kubelet")))
        .filter(|p| p.is_file())
    {
        return Ok(p);
    }
    medic_sandbox::harness::find_kubelet().context(
        "the sandbox's process kubelet is missing: build it with \
         `cargo build --release -p medic-sandbox --bin medic-kubelet`",
    )
}

async fn drive(
    args: &DemoArgs,
    faults: &[String],
    run_dir: &Path,
    store_path: &Path,
    sandbox: &Sandbox,
) -> Result<Report> {
    let client = sandbox.client().await?;
    let medic_bin = std::env::current_exe().context("locating the medic binary")?;
    let estate = Estate::deploy(client.clone(), &medic_bin, run_dir, args.seed).await?;

    // medic's config, written where a user can read it and run it again.
    let sa_kubeconfig = run_dir.join("medic-sa.kubeconfig");
    std::fs::write(run_dir.join("medic.yaml"), CONFIG)?;
    std::fs::write(run_dir.join("policies.yaml"), POLICIES)?;
    let vars = BTreeMap::from([
        ("MEDIC_KUBECONFIG", sa_kubeconfig.display().to_string()),
        (
            "MEDIC_POD_LOGS",
            sandbox.pod_log_dir().display().to_string(),
        ),
        ("MEDIC_STATE_DIR", run_dir.display().to_string()),
        ("MEDIC_STORE", store_path.display().to_string()),
    ]);
    let cfg = super::load_config(CONFIG, "examples/kubernetes/demo.yaml", run_dir, &vars)?;
    let rules = crate::cmd::rbac::plan(&cfg);
    grant(&client, &rules).await?;
    let token = service_account_token(&client).await?;
    write_kubeconfig(&sandbox.kubeconfig_path(), &sa_kubeconfig, &token)?;
    eprintln!(
        "medic demo: medic runs as ServiceAccount {MEDIC_NS}/medic with only the rules of \
         `medic rbac --config {}`",
        run_dir.join("medic.yaml").display()
    );

    let frontend = estate.cluster_ips["frontend"].clone();
    let load = medic_demo::loadgen::LoadGen::start_at(
        medic_demo::endpoints::Endpoints::fixed("frontend", &format!("{frontend}:80"))
            .map_err(anyhow::Error::msg)?,
        BASE_RPS,
        args.seed,
    )
    .map_err(anyhow::Error::msg)?;
    let agent = super::Agent::start(cfg, store_path).await?;

    eprintln!("medic demo: learning baselines for {:.0}s", args.warmup);
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;

    let mut injected: Vec<Injected> = Vec::new();
    for kind in faults {
        let service = default_service(kind);
        let (at, detail) = estate
            .inject(kind, service, &load)
            .await
            .with_context(|| format!("injecting {kind} into {service}"))?;
        eprintln!(
            "\n{}  ==== injected {kind} into {NS}/{service}: {detail} ====",
            at.clock_time()
        );
        injected.push(Injected {
            kind: kind.clone(),
            service: format!("{NS}/{service}"),
            at,
        });
        super::wait_for_settled(&agent.store, at, args.fault_timeout).await?;
        estate.clear(kind, service, &load).await;
        if kind == "load_surge" || kind == "planned_campaign" {
            // Let traffic fall back before the next fault so its baseline is normal again.
            tokio::time::sleep(Duration::from_secs(4)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let store = agent.stop().await?;
    drop(load);
    super::build_report(&store, &injected, store_path)
}

/// The demo's workloads on the cluster, and the ways to hurt them.
struct Estate {
    client: kube::Client,
    cluster_ips: BTreeMap<&'static str, String>,
    http: reqwest::Client,
}

fn params(manager: &str) -> PatchParams {
    PatchParams {
        field_manager: Some(manager.into()),
        ..PatchParams::default()
    }
}

fn post(manager: &str) -> PostParams {
    PostParams {
        field_manager: Some(manager.into()),
        ..PostParams::default()
    }
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).context("building a manifest")
}

impl Estate {
    /// Namespace, ConfigMaps, Services, then Deployments (callers are given their
    /// dependencies' ClusterIPs), and waits until every Deployment is available.
    async fn deploy(
        client: kube::Client,
        medic_bin: &Path,
        run_dir: &Path,
        seed: u64,
    ) -> Result<Estate> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &post("medic-demo"),
                &from_json(json!({"metadata": {"name": NS}}))?,
            )
            .await
            .context("creating the demo namespace")?;
        wait_default_service_account(&client, NS).await?;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
        let svcs: Api<Service> = Api::namespaced(client.clone(), NS);
        let mut cluster_ips = BTreeMap::new();
        for s in &SERVICES {
            cms.create(
                &post("medic-demo"),
                &config_map(s.name, &initial_config(s.name))?,
            )
            .await
            .with_context(|| format!("creating ConfigMap {}-config", s.name))?;
            let svc = svcs
                .create(
                    &post("medic-demo"),
                    &from_json(json!({
                        "metadata": {"name": s.name, "labels": {"app": s.name}},
                        "spec": {"selector": {"app": s.name},
                                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
                    }))?,
                )
                .await
                .with_context(|| format!("creating Service {}", s.name))?;
            let ip = svc
                .spec
                .and_then(|s| s.cluster_ip)
                .context("a Service without a ClusterIP")?;
            cluster_ips.insert(s.name, ip);
        }
        let deploys: Api<Deployment> = Api::namespaced(client.clone(), NS);
        let instances = run_dir.join("instances");
        std::fs::create_dir_all(&instances)?;
        for s in &SERVICES {
            let deps: Vec<(&str, String)> = s
                .deps
                .iter()
                .map(|d| (*d, format!("{}:80", cluster_ips[d])))
                .collect();
            let d = deployment(s.name, s.replicas, &deps, medic_bin, run_dir, seed)?;
            deploys
                .create(&post("medic-demo"), &d)
                .await
                .with_context(|| format!("creating Deployment {}", s.name))?;
        }
        eprintln!(
            "medic demo: deployed {} services into namespace {NS}",
            SERVICES.len()
        );
        for s in &SERVICES {
            wait_available(&deploys, s.name, Duration::from_secs(120)).await?;
        }
        eprintln!("medic demo: every Deployment is available");
        Ok(Estate {
            client,
            cluster_ips,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(3))
                .build()?,
        })
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Injects one fault; returns when it takes effect and what was done.
    async fn inject(
        &self,
        kind: &str,
        service: &str,
        load: &medic_demo::loadgen::LoadGen,
    ) -> Result<(Ts, String)> {
        let now = Ts::now();
        Ok(match kind {
            // A leak in the code: the container grows until the kubelet OOMKills it, and
            // again after each restart of the same pod.
            "memory_leak" => {
                let d = self
                    .admin_fault(
                        service,
                        json!({"kind": "memory_leak", "mib_per_s": LEAK_MIB_PER_S}),
                    )
                    .await?;
                (now, format!("memory leak of {LEAK_MIB_PER_S} MiB/s in {d}"))
            }
            // A ConfigMap edit rolled out: the new pods refuse the config and crash-loop.
            "bad_config" => {
                let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), NS);
                let name = format!("{service}-config");
                cms.patch(
                    &name,
                    &params(CONFIG_AUTHOR),
                    &Patch::Merge(
                        json!({"data": {"config.json": broken_config(service).to_string()}}),
                    ),
                )
                .await?;
                self.deployments()
                    .patch(
                        service,
                        &params(CONFIG_AUTHOR),
                        &Patch::Merge(restart_patch()),
                    )
                    .await?;
                (
                    now,
                    format!(
                        "ConfigMap {name}: dependency_timeout_ms written as a string, rolled out"
                    ),
                )
            }
            // A new version whose requests fail.
            "bad_deployment" => {
                self.deployments()
                    .patch(
                        service,
                        &params(RELEASE_AUTHOR),
                        &Patch::Strategic(release_patch(service, BAD_RELEASE, true)),
                    )
                    .await?;
                (
                    now,
                    format!(
                        "release {BAD_RELEASE} (image medic-demo/{service}:{BAD_RELEASE}) fails {BAD_RELEASE_FAIL_RATIO} of requests"
                    ),
                )
            }
            // Someone scales a dependency to zero.
            "dependency_down" => {
                self.deployments()
                    .patch(
                        service,
                        &params(OPS_AUTHOR),
                        &Patch::Merge(json!({"spec": {"replicas": 0}})),
                    )
                    .await?;
                (now, "scaled to 0 replicas".to_string())
            }
            "latency" => {
                let d = self
                    .admin_fault(service, json!({"kind": "latency", "ms": LATENCY_FAULT_MS}))
                    .await?;
                (now, format!("{LATENCY_FAULT_MS} ms added latency in {d}"))
            }
            "load_surge" => {
                load.set_multiplier(DEFAULT_SURGE_FACTOR);
                (now, format!("home-page traffic x{DEFAULT_SURGE_FACTOR}"))
            }
            // Announced on the Deployment ahead of time, then the traffic comes.
            "planned_campaign" => {
                let until = chrono::Utc::now() + chrono::Duration::seconds(CAMPAIGN_LENGTH_S);
                self.deployments()
                    .patch(
                        service,
                        &params("marketing"),
                        &Patch::Merge(json!({"metadata": {"annotations": {
                            "medic.dev/planned-event": format!("planned marketing campaign: landing-page traffic x{DEFAULT_SURGE_FACTOR} expected"),
                            "medic.dev/planned-until": until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        }}})),
                    )
                    .await?;
                tokio::time::sleep(CAMPAIGN_LEAD).await;
                load.set_multiplier(DEFAULT_SURGE_FACTOR);
                (
                    Ts::now(),
                    format!(
                        "annotated medic.dev/planned-event; home-page traffic x{DEFAULT_SURGE_FACTOR}"
                    ),
                )
            }
            other => bail!("unknown fault {other}"),
        })
    }

    /// Undoes what medic was not expected to undo (traffic, announcements) and whatever is
    /// left of a fault medic did not heal, so the next fault starts from a healthy estate.
    async fn clear(&self, kind: &str, service: &str, load: &medic_demo::loadgen::LoadGen) {
        let deploys = self.deployments();
        let r: Result<()> = async {
            match kind {
                // The surge is over: traffic, capacity and the calendar go back to normal (as an
                // autoscaler would scale in), so the next fault starts from the same estate.
                "load_surge" | "planned_campaign" => {
                    load.set_multiplier(1.0);
                    let base = SERVICES
                        .iter()
                        .find(|s| s.name == service)
                        .map_or(1, |s| s.replicas);
                    deploys
                        .patch(
                            service,
                            &params(OPS_AUTHOR),
                            &Patch::Merge(json!({
                                "metadata": {"annotations": {
                                    "medic.dev/planned-event": null,
                                    "medic.dev/planned-until": null,
                                }},
                                "spec": {"replicas": base},
                            })),
                        )
                        .await?;
                }
                "memory_leak" | "latency" => {
                    let _ = self.admin_fault(service, json!({"kind": "clear"})).await;
                }
                "bad_config" => {
                    let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), NS);
                    let name = format!("{service}-config");
                    let good = initial_config(service).to_string();
                    let now = cms.get(&name).await?;
                    if now.data.and_then(|d| d.get("config.json").cloned()) != Some(good.clone()) {
                        cms.patch(
                            &name,
                            &params(OPS_AUTHOR),
                            &Patch::Merge(json!({"data": {"config.json": good}})),
                        )
                        .await?;
                        deploys
                            .patch(service, &params(OPS_AUTHOR), &Patch::Merge(restart_patch()))
                            .await?;
                    }
                }
                "bad_deployment" => {
                    let d = deploys.get(service).await?;
                    let args = container_args(&d);
                    if args.iter().any(|a| a == BAD_RELEASE) {
                        deploys
                            .patch(
                                service,
                                &params(OPS_AUTHOR),
                                &Patch::Strategic(release_patch(service, GOOD_RELEASE, false)),
                            )
                            .await?;
                    }
                }
                "dependency_down" => {
                    let d = deploys.get(service).await?;
                    if d.spec.and_then(|s| s.replicas) == Some(0) {
                        deploys
                            .patch(
                                service,
                                &params(OPS_AUTHOR),
                                &Patch::Merge(json!({"spec": {"replicas": 1}})),
                            )
                            .await?;
                    }
                }
                _ => {}
            }
            wait_available(&deploys, service, Duration::from_secs(60)).await?;
            Ok(())
        }
        .await;
        if let Err(e) = r {
            eprintln!("medic demo: could not clear {kind} from {service}: {e:#}");
        }
    }

    /// POSTs a fault to `/admin/fault` of every running pod of `service` (the chaos tool's
    /// side door; the agent never sees it).
    async fn admin_fault(&self, service: &str, body: Value) -> Result<String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NS);
        let list = pods
            .list(&ListParams::default().labels(&format!("app={service}")))
            .await?;
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for p in list.items {
            let name = p.metadata.name.clone().unwrap_or_default();
            if p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let Some(ip) = p.status.and_then(|s| s.pod_ip) else {
                continue;
            };
            let url = format!("http://{ip}:{PORT}/admin/fault");
            match self.http.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => done.push(name),
                Ok(r) => failed.push(format!("{name} answered {}", r.status())),
                Err(e) => failed.push(format!("{name} unreachable: {e}")),
            }
        }
        if done.is_empty() {
            bail!(
                "no pod of {service} accepted the fault: {}",
                failed.join("; ")
            );
        }
        Ok(done.join(", "))
    }
}

fn restart_patch() -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}})
}

fn config_map(service: &str, config: &Value) -> Result<ConfigMap> {
    from_json(json!({
        "metadata": {"name": format!("{service}-config"), "labels": {"app": service}},
        "data": {"config.json": config.to_string()}
    }))
}

/// The container's args for a release: the good one, or the bad one failing requests.
fn release_args(release: &str, bad: bool) -> Vec<String> {
    let mut v = vec!["--release".to_string(), release.to_string()];
    if bad {
        v.extend([
            "--fail-ratio".to_string(),
            BAD_RELEASE_FAIL_RATIO.to_string(),
        ]);
    }
    v
}

/// A new release: the image tag and the args that go with it (a strategic merge on the one
/// container, by name).
fn release_patch(service: &str, release: &str, bad: bool) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [{
        "name": "app",
        "image": format!("medic-demo/{service}:{release}"),
        "args": release_args(release, bad),
    }]}}}})
}

fn container_args(d: &Deployment) -> Vec<String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.args.clone())
        .unwrap_or_default()
}

/// One demo service as a Deployment: `medic demo-service` as the container's command, on
/// the pod's own loopback IP, logging to stdout, its config from a ConfigMap volume, its
/// dependencies at their Services' ClusterIPs, scraped through the usual annotations.
fn deployment(
    service: &str,
    replicas: u32,
    deps: &[(&str, String)],
    medic_bin: &Path,
    run_dir: &Path,
    seed: u64,
) -> Result<Deployment> {
    let mut command: Vec<String> = vec![
        medic_bin.display().to_string(),
        "demo-service".into(),
        "--service".into(),
        service.into(),
        "--instance".into(),
        "$(POD_NAME)".into(),
        "--listen-ip".into(),
        "$(POD_IP)".into(),
        "--port".into(),
        PORT.to_string(),
        "--log".into(),
        "-".into(),
        "--config".into(),
        "$(MEDIC_VOLUME_CONFIG)/config.json".into(),
        // Per pod: a leak marker survives the container's restarts, not a new pod.
        "--instance-dir".into(),
        format!("{}/instances/$(POD_NAME)", run_dir.display()),
        "--estate-dir".into(),
        run_dir.display().to_string(),
        "--seed".into(),
        seed.to_string(),
    ];
    for (name, addr) in deps {
        command.extend([
            "--dep".into(),
            (*name).into(),
            "--dep-addr".into(),
            format!("{name}={addr}"),
        ]);
    }
    from_json(json!({
        "metadata": {"name": service, "labels": {"app": service}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": service}},
            "template": {
                "metadata": {
                    "labels": {"app": service},
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": PORT.to_string(),
                        "prometheus.io/path": "/metrics",
                    }
                },
                "spec": {
                    "terminationGracePeriodSeconds": 3,
                    "volumes": [{"name": "config", "configMap": {"name": format!("{service}-config")}}],
                    "containers": [{
                        "name": "app",
                        "image": format!("medic-demo/{service}:{GOOD_RELEASE}"),
                        "command": command,
                        "args": release_args(GOOD_RELEASE, false),
                        "env": [
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
                        ],
                        "ports": [{"name": "http", "containerPort": PORT}],
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/demo"}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
                        "resources": {"limits": {"memory": MEMORY_LIMIT}}
                    }]
                }
            }
        }
    }))
}

async fn wait_default_service_account(client: &kube::Client, ns: &str) -> Result<()> {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    while sas.get_opt("default").await?.is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("the controller-manager made no default ServiceAccount in {ns} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn wait_available(deploys: &Api<Deployment>, name: &str, within: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let d = deploys.get(name).await?;
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let generation = d.metadata.generation.unwrap_or(0);
        if let Some(st) = &d.status
            && st.observed_generation.unwrap_or(0) >= generation
            && st.updated_replicas.unwrap_or(0) == want
            && st.available_replicas.unwrap_or(0) == want
            && st.replicas.unwrap_or(0) == want
        {
            return Ok(());
        }
        if start.elapsed() > within {
            bail!("Deployment {NS}/{name} did not become available within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The ServiceAccount, and the (Cluster)Roles and bindings of `medic rbac`'s plan.
async fn grant(client: &kube::Client, plan: &crate::cmd::rbac::Plan) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &post("medic-demo"),
            &from_json(json!({"metadata": {"name": MEDIC_NS}}))?,
        )
        .await
        .context("creating the medic namespace")?;
    wait_default_service_account(client, MEDIC_NS).await?;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), MEDIC_NS);
    sas.create(
        &post("medic-demo"),
        &from_json(json!({"metadata": {"name": "medic"}}))?,
    )
    .await?;
    let subject = json!([{"kind": "ServiceAccount", "name": "medic", "namespace": MEDIC_NS}]);
    let mut cluster_rules = plan.cluster.clone();
    match &plan.namespaces {
        None => cluster_rules.extend(plan.namespaced.iter().cloned()),
        Some(list) if !plan.namespaced.is_empty() => {
            for ns in list {
                let roles: Api<Role> = Api::namespaced(client.clone(), ns);
                roles
                    .create(
                        &post("medic-demo"),
                        &from_json(
                            json!({"metadata": {"name": "medic"}, "rules": plan.namespaced}),
                        )?,
                    )
                    .await?;
                let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
                rbs.create(
                    &post("medic-demo"),
                    &from_json(json!({
                        "metadata": {"name": "medic"},
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "medic"},
                        "subjects": subject,
                    }))?,
                )
                .await?;
            }
        }
        Some(_) => {}
    }
    if !cluster_rules.is_empty() {
        let crs: Api<ClusterRole> = Api::all(client.clone());
        crs.create(
            &post("medic-demo"),
            &from_json(json!({"metadata": {"name": "medic"}, "rules": cluster_rules}))?,
        )
        .await?;
        let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
        crbs.create(
            &post("medic-demo"),
            &from_json(json!({
                "metadata": {"name": "medic"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "medic"},
                "subjects": subject,
            }))?,
        )
        .await?;
    }
    Ok(())
}

/// The token the 1.20 token controller puts in the ServiceAccount's Secret.
async fn service_account_token(client: &kube::Client) -> Result<String> {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), MEDIC_NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), MEDIC_NS);
    let start = Instant::now();
    loop {
        let sa = sas.get("medic").await?;
        if let Some(name) = sa.secrets.into_iter().flatten().find_map(|s| s.name)
            && let Some(token) = secrets
                .get_opt(&name)
                .await?
                .and_then(|s| s.data)
                .and_then(|d| d.get("token").cloned())
        {
            return String::from_utf8(token.0).context("the ServiceAccount token is not text");
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("no token Secret for ServiceAccount {MEDIC_NS}/medic within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A kubeconfig for the same API server as the admin one, with the ServiceAccount's token.
fn write_kubeconfig(admin: &Path, out: &Path, token: &str) -> Result<()> {
    let cfg = kube::config::Kubeconfig::read_from(admin).context("reading the admin kubeconfig")?;
    let server = cfg
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .context("the admin kubeconfig names no server")?;
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\nusers:\n- name: medic\n  user:\n    token: {token}\ncontexts:\n- name: medic\n  context:\n    cluster: sandbox\n    user: medic\ncurrent-context: medic\n"
    );
    std::fs::write(out, text)?;
    // A token is a secret: readable by its owner only.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}
