//! One pod on the sandbox node: its containers as host processes (each in its own process
//! group), restarts with CrashLoopBackOff, probes, memory limits, CRI logs, and its status
//! written through the status subresource as a kubelet writes it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
    Secret, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use nix::sys::signal::Signal;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Notify, mpsc, watch};

use crate::backoff::{Backoff, BackoffConfig};
use crate::crilog::{self, LineWriter, Stream};
use crate::env::{self, EnvError, EnvInputs};
use crate::probe::{self, ProbeSpec, Tracker};
use crate::procs;

/// Settings every pod worker shares.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_name: String,
    pub host_ip: Ipv4Addr,
    pub pod_log_dir: PathBuf,
    pub state_dir: PathBuf,
    pub backoff: BackoffConfig,
    /// Grace cap when the kubelet itself stops (or a pod vanished from the API).
    pub shutdown_grace: Duration,
    pub memory_poll: Duration,
    pub node_cpu: f64,
    pub node_memory: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Init,
    Main,
}

/// What the status is built from.
#[derive(Debug, Default)]
struct Runtime {
    init: Vec<ContainerStatus>,
    main: Vec<ContainerStatus>,
    init_done: bool,
    /// Init failed under restartPolicy Never: the pod failed.
    init_failed: bool,
    start_time: Option<Time>,
    transitions: BTreeMap<String, (bool, Time)>,
}

pub struct PodCtx {
    client: kube::Client,
    cfg: Arc<NodeConfig>,
    pod: Pod,
    spec: PodSpec,
    name: String,
    namespace: String,
    uid: String,
    pod_ip: Ipv4Addr,
    rt: Mutex<Runtime>,
    events: Arc<crate::events::Recorder>,
    changed: Notify,
}

fn now() -> Time {
    Time(Timestamp::now())
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..Default::default()
    }
}

fn initial_status(c: &Container, reason: &str) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        state: Some(waiting(reason, None)),
        ..Default::default()
    }
}

/// The pod phase from container states, as the kubelet's getPhase computes it.
pub fn phase(
    restart_policy: &str,
    init_done: bool,
    init_failed: bool,
    statuses: &[ContainerStatus],
) -> &'static str {
    if init_failed {
        return "Failed";
    }
    if !init_done {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded, mut failed) = (0, 0, 0, 0, 0);
    for s in statuses {
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            } else {
                failed += 1;
            }
        } else if s
            .last_state
            .as_ref()
            .is_some_and(|l| l.terminated.is_some())
        {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        return match restart_policy {
            "Always" => "Running",
            "OnFailure" if succeeded == stopped => "Succeeded",
            "OnFailure" => "Running",
            _ if failed > 0 => "Failed",
            _ => "Succeeded",
        };
    }
    "Pending"
}

impl PodCtx {
    pub fn new(
        client: kube::Client,
        cfg: Arc<NodeConfig>,
        events: Arc<crate::events::Recorder>,
        pod: Pod,
        pod_ip: Ipv4Addr,
    ) -> Self {
        let spec = pod.spec.clone().unwrap_or_default();
        let previous = pod.status.clone().unwrap_or_default();
        // A kubelet restarted under running pods: an instance that ran before makes the next
        // start a restart (its count goes up, its end becomes lastState).
        let prev = |list: &Option<Vec<ContainerStatus>>, name: &str| {
            let old = list.iter().flatten().find(|s| s.name == name)?;
            let state = old.state.clone().unwrap_or_default();
            let ran = state.running.is_some() || state.terminated.is_some();
            Some((
                old.restart_count + i32::from(ran),
                state
                    .terminated
                    .map(|t| ContainerState {
                        terminated: Some(t),
                        ..Default::default()
                    })
                    .or_else(|| old.last_state.clone()),
            ))
        };
        let mut rt = Runtime {
            start_time: previous.start_time.clone().or_else(|| Some(now())),
            ..Default::default()
        };
        for c in spec.init_containers.iter().flatten() {
            let mut s = initial_status(c, "PodInitializing");
            if let Some((count, last)) = prev(&previous.init_container_statuses, &c.name) {
                s.restart_count = count;
                s.last_state = last;
            }
            rt.init.push(s);
        }
        let main_reason = if rt.init.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        for c in &spec.containers {
            let mut s = initial_status(c, main_reason);
            if let Some((count, last)) = prev(&previous.container_statuses, &c.name) {
                s.restart_count = count;
                s.last_state = last;
            }
            rt.main.push(s);
        }
        rt.init_done = rt.init.is_empty();
        let meta = &pod.metadata;
        Self {
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
            uid: meta.uid.clone().unwrap_or_default(),
            client,
            cfg,
            spec,
            pod,
            pod_ip,
            rt: Mutex::new(rt),
            events,
            changed: Notify::new(),
        }
    }

    fn update<R>(&self, kind: Kind, idx: usize, f: impl FnOnce(&mut ContainerStatus) -> R) -> R {
        let r = {
            let mut rt = self.rt.lock().unwrap_or_else(|p| p.into_inner());
            let list = match kind {
                Kind::Init => &mut rt.init,
                Kind::Main => &mut rt.main,
            };
            f(&mut list[idx])
        };
        self.changed.notify_one();
        r
    }

    fn with_rt<R>(&self, f: impl FnOnce(&mut Runtime) -> R) -> R {
        let r = f(&mut self.rt.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.notify_one();
        r
    }

    fn event(&self, container: &str, warning: bool, reason: &str, message: String) {
        self.events
            .emit(&self.pod, Some(container), warning, reason, message);
    }

    fn restart_policy(&self) -> &str {
        self.spec.restart_policy.as_deref().unwrap_or("Always")
    }

    fn container(&self, kind: Kind, idx: usize) -> &Container {
        match kind {
            Kind::Init => &self.spec.init_containers.as_deref().unwrap_or_default()[idx],
            Kind::Main => &self.spec.containers[idx],
        }
    }

    fn pod_dir(&self) -> PathBuf {
        self.cfg.state_dir.join("pods").join(&self.uid)
    }

    fn grace(&self) -> Duration {
        let secs = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or(self.spec.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0);
        Duration::from_secs(secs as u64)
    }

    /// The status as the kubelet would report it now.
    pub fn build_status(&self) -> PodStatus {
        let mut rt = self.rt.lock().unwrap_or_else(|p| p.into_inner());
        let phase = phase(
            self.restart_policy(),
            rt.init_done,
            rt.init_failed,
            &rt.main,
        );
        let containers_ready = !rt.main.is_empty() && rt.main.iter().all(|s| s.ready);
        let initialized = rt.init_done;
        let scheduled = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled").cloned());
        let mut conditions = Vec::new();
        let cond = |rt: &mut Runtime, type_: &str, ok: bool, reason: Option<&str>| {
            let entry = rt
                .transitions
                .entry(type_.to_string())
                .or_insert_with(|| (ok, now()));
            if entry.0 != ok {
                *entry = (ok, now());
            }
            PodCondition {
                type_: type_.to_string(),
                status: if ok { "True" } else { "False" }.to_string(),
                last_transition_time: Some(entry.1.clone()),
                reason: if ok { None } else { reason.map(str::to_string) },
                ..Default::default()
            }
        };
        conditions.push(cond(
            &mut rt,
            "Initialized",
            initialized,
            Some("ContainersNotInitialized"),
        ));
        conditions.push(cond(
            &mut rt,
            "Ready",
            containers_ready,
            Some("ContainersNotReady"),
        ));
        conditions.push(cond(
            &mut rt,
            "ContainersReady",
            containers_ready,
            Some("ContainersNotReady"),
        ));
        conditions.push(scheduled.unwrap_or_else(|| PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            last_transition_time: rt.start_time.clone(),
            ..Default::default()
        }));
        let ip = self.pod_ip.to_string();
        PodStatus {
            phase: Some(phase.to_string()),
            conditions: Some(conditions),
            host_ip: Some(self.cfg.host_ip.to_string()),
            host_ips: Some(vec![HostIP {
                ip: self.cfg.host_ip.to_string(),
            }]),
            pod_ip: Some(ip.clone()),
            pod_ips: Some(vec![PodIP { ip }]),
            start_time: rt.start_time.clone(),
            init_container_statuses: (!rt.init.is_empty()).then(|| rt.init.clone()),
            container_statuses: Some(rt.main.clone()),
            ..Default::default()
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Writes the status (merge patch: lists are replaced whole, which is what we want).
    async fn write_status(&self, last: &mut Option<serde_json::Value>) -> Result<(), kube::Error> {
        let value = serde_json::json!({ "status": self.build_status() });
        if last.as_ref() == Some(&value) {
            return Ok(());
        }
        self.pods()
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&value))
            .await?;
        *last = Some(value);
        Ok(())
    }

    async fn status_writer(self: Arc<Self>, mut done: watch::Receiver<bool>) {
        let mut last = None;
        loop {
            if let Err(e) = self.write_status(&mut last).await {
                if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                    return;
                }
                tracing::warn!(pod = %self.name, error = %e, "writing pod status");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            tokio::select! {
                _ = self.changed.notified() => {
                    // Coalesce bursts of changes into one write.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ = done.changed() => {
                    let _ = self.write_status(&mut last).await;
                    return;
                }
            }
        }
    }
}

/// A volume's content by key, and its optional key → path items.
type VolumeFiles<'a> = (
    BTreeMap<String, Vec<u8>>,
    &'a Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>,
);

/// Everything a container instance needs that is resolved once per start.
struct Prepared {
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: PathBuf,
    memory_limit: Option<u64>,
    startup: Option<ProbeSpec>,
    liveness: Option<ProbeSpec>,
    readiness: Option<ProbeSpec>,
}

async fn fetch_optional<K>(api: &Api<K>, name: &str) -> Result<Option<K>, EnvError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.map_err(|e| EnvError {
        reason: env::CONFIG_ERROR,
        message: format!("reading {name:?}: {e}"),
    })
}

fn upper_env(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl PodCtx {
    async fn prepare(&self, c: &Container) -> Result<Prepared, EnvError> {
        let (cm_names, secret_names) = env::referenced(c);
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut inputs = EnvInputs {
            pod: Some(&self.pod),
            pod_ip: self.pod_ip.to_string(),
            host_ip: self.cfg.host_ip.to_string(),
            node_name: self.cfg.node_name.clone(),
            node_cpu: self.cfg.node_cpu,
            node_memory: self.cfg.node_memory,
            ..Default::default()
        };
        for n in cm_names {
            if let Some(cm) = fetch_optional(&cms, &n).await? {
                inputs.config_maps.insert(n, cm);
            }
        }
        for n in secret_names {
            if let Some(s) = fetch_optional(&secrets, &n).await? {
                inputs.secrets.insert(n, s);
            }
        }
        let svc_err = |e: kube::Error| EnvError {
            reason: env::CONFIG_ERROR,
            message: format!("listing services: {e}"),
        };
        let mut services: Vec<Service> =
            Api::<Service>::namespaced(self.client.clone(), &self.namespace)
                .list(&Default::default())
                .await
                .map_err(svc_err)?
                .items;
        if self.namespace != "default"
            && let Some(k) = Api::<Service>::namespaced(self.client.clone(), "default")
                .get_opt("kubernetes")
                .await
                .map_err(svc_err)?
        {
            services.push(k);
        }
        inputs.services = env::select_services(
            &self.namespace,
            self.spec.enable_service_links.unwrap_or(true),
            &services,
        );
        let mut env = env::build(&inputs, c)?;
        // What a container runtime adds from the image and the sandbox: a PATH, HOSTNAME,
        // HOME, where the pod's volumes are, and the marker that finds leftovers.
        env.entry("PATH".into()).or_insert_with(|| {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
        });
        env.entry("HOSTNAME".into())
            .or_insert_with(|| self.name.clone());
        env.entry("HOME".into()).or_insert_with(|| "/root".into());
        for m in c.volume_mounts.iter().flatten() {
            let mut dir = self.pod_dir().join("volumes").join(&m.name);
            if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                dir = dir.join(sub);
            }
            env.insert(
                format!("MEDIC_VOLUME_{}", upper_env(&m.name)),
                dir.display().to_string(),
            );
        }
        env.insert(
            procs::MARKER_VAR.into(),
            self.cfg.state_dir.display().to_string(),
        );
        let argv = env::command_line(c, &env)?;
        let cwd = match c.working_dir.as_deref().filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => self.pod_dir(),
        };
        let memory_limit = match c
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
        {
            None => None,
            Some(q) => Some(
                medic_core::quantity::parse_bytes(&q.0).ok_or_else(|| EnvError {
                    reason: env::CONFIG_ERROR,
                    message: format!("memory limit {:?} is not a quantity", q.0),
                })?,
            ),
        };
        let pod_ip = IpAddr::V4(self.pod_ip);
        let probe = |p: &Option<k8s_openapi::api::core::v1::Probe>, what: &str| {
            p.as_ref()
                .map(|p| probe::from_spec(p, c, pod_ip))
                .transpose()
                .map_err(|m| EnvError {
                    reason: env::CONFIG_ERROR,
                    message: format!("{what} probe: {m}"),
                })
        };
        Ok(Prepared {
            startup: probe(&c.startup_probe, "startup")?,
            liveness: probe(&c.liveness_probe, "liveness")?,
            readiness: probe(&c.readiness_probe, "readiness")?,
            argv,
            env,
            cwd,
            memory_limit,
        })
    }

    /// Writes ConfigMap and Secret volumes as files and creates emptyDirs, under
    /// `<state-dir>/pods/<uid>/volumes/<name>/`.
    async fn prepare_volumes(&self) -> Result<(), String> {
        let base = self.pod_dir().join("volumes");
        for v in self.spec.volumes.iter().flatten() {
            let dir = base.join(&v.name);
            let files: Option<VolumeFiles<'_>> = if let Some(cm) = &v.config_map {
                let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
                match api.get_opt(&cm.name).await.map_err(|e| e.to_string())? {
                    Some(obj) => {
                        let mut m: BTreeMap<String, Vec<u8>> = obj
                            .data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.into_bytes()))
                            .collect();
                        m.extend(
                            obj.binary_data
                                .unwrap_or_default()
                                .into_iter()
                                .map(|(k, v)| (k, v.0)),
                        );
                        Some((m, &cm.items))
                    }
                    None if cm.optional == Some(true) => Some((BTreeMap::new(), &None)),
                    None => {
                        return Err(format!(
                            "MountVolume.SetUp failed for volume {:?}: configmap {:?} not found",
                            v.name, cm.name
                        ));
                    }
                }
            } else if let Some(sec) = &v.secret {
                let name = sec.secret_name.clone().unwrap_or_default();
                let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
                match api.get_opt(&name).await.map_err(|e| e.to_string())? {
                    Some(obj) => Some((
                        obj.data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.0))
                            .collect(),
                        &sec.items,
                    )),
                    None if sec.optional == Some(true) => Some((BTreeMap::new(), &None)),
                    None => {
                        return Err(format!(
                            "MountVolume.SetUp failed for volume {:?}: secret {name:?} not found",
                            v.name
                        ));
                    }
                }
            } else {
                // emptyDir and everything else: an empty directory.
                None
            };
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            if let Some((data, items)) = files {
                let mapping: Vec<(String, String)> = match items {
                    Some(items) => items
                        .iter()
                        .map(|i| (i.key.clone(), i.path.clone()))
                        .collect(),
                    None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
                };
                for (key, rel) in mapping {
                    let Some(bytes) = data.get(&key) else {
                        continue;
                    };
                    let rel = Path::new(&rel);
                    // Never write outside the volume directory.
                    if rel.is_absolute()
                        || rel
                            .components()
                            .any(|c| matches!(c, std::path::Component::ParentDir))
                    {
                        return Err(format!(
                            "volume {:?}: bad item path {}",
                            v.name,
                            rel.display()
                        ));
                    }
                    let path = dir.join(rel);
                    if let Some(parent) = path.parent() {
                        let _ = tokio::fs::create_dir_all(parent).await;
                    }
                    tokio::fs::write(&path, bytes)
                        .await
                        .map_err(|e| format!("writing {}: {e}", path.display()))?;
                }
            }
        }
        Ok(())
    }
}

/// Why a container instance ended.
enum End {
    Exited(std::process::ExitStatus),
    OomKilled,
    Probe(String, std::process::ExitStatus),
    Stopped(std::process::ExitStatus),
}

async fn pump_logs(
    stdout: Option<tokio::process::ChildStdout>,
    stderr: Option<tokio::process::ChildStderr>,
    path: PathBuf,
) {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "opening container log");
            None
        }
    };
    let mut write = |bytes: Vec<u8>| {
        if let Some(f) = file.as_mut()
            && !bytes.is_empty()
        {
            let _ = f.write_all(&bytes);
        }
    };
    async fn read_some<R: AsyncRead + Unpin>(r: &mut Option<R>, buf: &mut [u8]) -> usize {
        match r {
            Some(r) => r.read(buf).await.unwrap_or(0),
            None => std::future::pending().await,
        }
    }
    let (mut out, mut err) = (stdout, stderr);
    let mut w_out = LineWriter::new(Stream::Stdout);
    let mut w_err = LineWriter::new(Stream::Stderr);
    let (mut b1, mut b2) = (vec![0u8; 8192], vec![0u8; 8192]);
    while out.is_some() || err.is_some() {
        tokio::select! {
            n = read_some(&mut out, &mut b1) => {
                let ts = crilog::timestamp(Timestamp::now());
                if n == 0 { out = None; write(w_out.finish(&ts)); } else { write(w_out.feed(&b1[..n], &ts)); }
            }
            n = read_some(&mut err, &mut b2) => {
                let ts = crilog::timestamp(Timestamp::now());
                if n == 0 { err = None; write(w_err.finish(&ts)); } else { write(w_err.feed(&b2[..n], &ts)); }
            }
        }
    }
}

/// SIGTERM to the group, SIGKILL after `grace`, and SIGKILL to whatever of the group is left
/// (a container's processes all end with it).
async fn terminate(
    child: &mut tokio::process::Child,
    pgid: i32,
    grace: Duration,
) -> std::process::ExitStatus {
    procs::signal_group(pgid, Signal::SIGTERM);
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(s)) => s,
        _ => {
            procs::signal_group(pgid, Signal::SIGKILL);
            match child.wait().await {
                Ok(s) => s,
                Err(_) => std::os::unix::process::ExitStatusExt::from_raw(9),
            }
        }
    };
    procs::signal_group(pgid, Signal::SIGKILL);
    status
}

/// Runs a probe on its period until `stop`; reports verdict changes.
async fn probe_loop(
    spec: ProbeSpec,
    env: Arc<BTreeMap<String, String>>,
    cwd: PathBuf,
    on_failure: impl Fn(&str),
    mut on_verdict: impl FnMut(bool, String) -> bool,
) {
    tokio::time::sleep(spec.initial_delay).await;
    let mut tracker = Tracker::new(&spec);
    loop {
        let result = probe::run_once(&spec, &env, &cwd).await;
        let ok = result.is_ok();
        let msg = result.err().unwrap_or_default();
        if !ok {
            on_failure(&msg);
        }
        if let Some(v) = tracker.record(ok)
            && !on_verdict(v, msg)
        {
            return;
        }
        tokio::time::sleep(spec.period).await;
    }
}

/// How a container's run ended for its pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Exited and is not restarted (the code of the last run).
    Finished(i32),
    /// Stopped because the pod is going away.
    Stopped,
}

impl PodCtx {
    /// Runs one container until it is finished for good or the pod stops.
    async fn run_container(
        self: Arc<Self>,
        kind: Kind,
        idx: usize,
        mut stop: watch::Receiver<Option<Duration>>,
    ) -> RunEnd {
        let c = self.container(kind, idx).clone();
        let mut backoff = Backoff::new(self.cfg.backoff);
        let mut first = true;
        loop {
            if stop.borrow().is_some() {
                return RunEnd::Stopped;
            }
            if !first {
                self.update(kind, idx, |s| s.restart_count += 1);
            }
            first = false;
            let prepared = match self.prepare(&c).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::info!(pod = %self.name, container = %c.name, reason = e.reason, message = %e.message, "container cannot start");
                    self.event(&c.name, true, "Failed", format!("Error: {}", e.message));
                    self.update(kind, idx, |s| {
                        s.state = Some(waiting(e.reason, Some(e.message.clone())));
                        s.ready = false;
                    });
                    // Config errors heal when the missing object appears; retry like a kubelet.
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        _ = stop.changed() => {}
                    }
                    first = true;
                    continue;
                }
            };
            let restart = self.update(kind, idx, |s| s.restart_count);
            let log_path = crilog::container_log(
                &self.cfg.pod_log_dir,
                &self.namespace,
                &self.name,
                &self.uid,
                &c.name,
                restart,
            );
            if prepared.cwd == self.pod_dir() {
                let _ = tokio::fs::create_dir_all(&prepared.cwd).await;
            }
            let mut cmd = tokio::process::Command::new(&prepared.argv[0]);
            cmd.args(&prepared.argv[1..])
                .env_clear()
                .envs(&prepared.env)
                .current_dir(&prepared.cwd)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                // Own process group: signals reach everything the container starts.
                .process_group(0)
                .kill_on_drop(false);
            let started = Instant::now();
            let started_at = now();
            let image_id = format!("medic-sandbox://{}", c.image.as_deref().unwrap_or(""));
            let mut child = match cmd.spawn() {
                Ok(ch) => ch,
                Err(e) => {
                    let message = format!(
                        "failed to start {:?} in {}: {e}",
                        prepared.argv[0],
                        prepared.cwd.display()
                    );
                    tracing::info!(pod = %self.name, container = %c.name, %message);
                    self.event(&c.name, true, "Failed", format!("Error: {message}"));
                    let term = ContainerStateTerminated {
                        exit_code: 128,
                        reason: Some("StartError".into()),
                        message: Some(message),
                        started_at: Some(started_at.clone()),
                        finished_at: Some(now()),
                        ..Default::default()
                    };
                    if let Some(end) = self
                        .after_exit(
                            kind,
                            idx,
                            &c,
                            term,
                            started.elapsed(),
                            &mut backoff,
                            &mut stop,
                        )
                        .await
                    {
                        return end;
                    }
                    continue;
                }
            };
            let pid = child.id().map(|p| p as i32).unwrap_or(0);
            let container_id = format!("medic://{pid}");
            let image = c.image.as_deref().unwrap_or("");
            self.event(
                &c.name,
                false,
                "Pulled",
                format!("Container image {image:?} already present on machine"),
            );
            self.event(
                &c.name,
                false,
                "Created",
                format!("Created container {}", c.name),
            );
            self.event(
                &c.name,
                false,
                "Started",
                format!("Started container {}", c.name),
            );
            let log_task = tokio::spawn(pump_logs(
                child.stdout.take(),
                child.stderr.take(),
                log_path,
            ));
            let has_startup = prepared.startup.is_some();
            let has_readiness = prepared.readiness.is_some();
            self.update(kind, idx, |s| {
                s.state = Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(started_at.clone()),
                    }),
                    ..Default::default()
                });
                s.container_id = Some(container_id.clone());
                s.image_id = image_id.clone();
                s.started = Some(!has_startup);
                // Without a readiness probe a started container is ready.
                s.ready = !has_startup && !has_readiness;
            });
            let (kill_tx, mut kill_rx) = mpsc::channel::<String>(4);
            let probes = self.clone().spawn_probes(kind, idx, &prepared, kill_tx);
            let mut mem_tick = tokio::time::interval(self.cfg.memory_poll);
            let end = loop {
                tokio::select! {
                    status = child.wait() => {
                        let status = status.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(255 << 8));
                        // Whatever the main process left in its group goes with it.
                        procs::signal_group(pid, Signal::SIGKILL);
                        break End::Exited(status);
                    }
                    _ = mem_tick.tick(), if prepared.memory_limit.is_some() => {
                        let limit = prepared.memory_limit.unwrap_or(u64::MAX);
                        let rss = procs::group_rss_shared(pid, self.cfg.memory_poll / 2);
                        if rss > limit {
                            tracing::info!(pod = %self.name, container = %c.name, rss, limit, "memory limit exceeded: OOMKilled");
                            self.event(&c.name, true, "OOMKilling", format!("Memory cgroup out of memory: container {} used {rss} bytes over its limit of {limit}", c.name));
                            procs::signal_group(pid, Signal::SIGKILL);
                            let _ = child.wait().await;
                            break End::OomKilled;
                        }
                    }
                    Some(msg) = kill_rx.recv() => {
                        let grace = c.liveness_probe.as_ref()
                            .and_then(|p| p.termination_grace_period_seconds)
                            .map(|s| Duration::from_secs(s.max(0) as u64))
                            .unwrap_or_else(|| self.grace());
                        tracing::info!(pod = %self.name, container = %c.name, %msg, "probe failed: restarting container");
                        let which = if msg.starts_with("Startup") { "startup" } else { "liveness" };
                        self.event(&c.name, false, "Killing", format!("Container {} failed {which} probe, will be restarted", c.name));
                        let status = terminate(&mut child, pid, grace).await;
                        break End::Probe(msg, status);
                    }
                    _ = stop.changed() => {
                        let grace = (*stop.borrow()).unwrap_or(Duration::ZERO);
                        self.event(&c.name, false, "Killing", format!("Stopping container {}", c.name));
                        let status = terminate(&mut child, pid, grace).await;
                        break End::Stopped(status);
                    }
                }
            };
            for p in probes {
                p.abort();
            }
            // Output of a process that left a daemon holding the pipe: do not wait forever.
            let _ = tokio::time::timeout(Duration::from_secs(2), log_task).await;
            let (exit_code, reason, message) = match &end {
                End::Exited(s) | End::Stopped(s) => {
                    let code = procs::exit_code(*s);
                    (code, if code == 0 { "Completed" } else { "Error" }, None)
                }
                End::OomKilled => (137, "OOMKilled", None),
                End::Probe(msg, s) => (procs::exit_code(*s), "Error", Some(msg.clone())),
            };
            let term = ContainerStateTerminated {
                exit_code,
                reason: Some(reason.to_string()),
                message,
                signal: None,
                started_at: Some(started_at),
                finished_at: Some(now()),
                container_id: Some(container_id),
            };
            if matches!(end, End::Stopped(_)) {
                self.update(kind, idx, |s| {
                    s.state = Some(ContainerState {
                        terminated: Some(term),
                        ..Default::default()
                    });
                    s.ready = false;
                    s.started = Some(false);
                });
                return RunEnd::Stopped;
            }
            if let Some(end) = self
                .after_exit(
                    kind,
                    idx,
                    &c,
                    term,
                    started.elapsed(),
                    &mut backoff,
                    &mut stop,
                )
                .await
            {
                return end;
            }
        }
    }

    /// Records an exit and decides about a restart; waits out the back-off. None: restart.
    #[allow(clippy::too_many_arguments)]
    async fn after_exit(
        &self,
        kind: Kind,
        idx: usize,
        c: &Container,
        term: ContainerStateTerminated,
        ran_for: Duration,
        backoff: &mut Backoff,
        stop: &mut watch::Receiver<Option<Duration>>,
    ) -> Option<RunEnd> {
        let code = term.exit_code;
        let restart = match (kind, self.restart_policy()) {
            (Kind::Init, "Never") => false,
            (Kind::Init, _) => code != 0,
            (Kind::Main, "Always") => true,
            (Kind::Main, "OnFailure") => code != 0,
            (Kind::Main, _) => false,
        };
        if !restart {
            self.update(kind, idx, |s| {
                s.state = Some(ContainerState {
                    terminated: Some(term),
                    ..Default::default()
                });
                s.ready = false;
                s.started = Some(false);
            });
            return Some(RunEnd::Finished(code));
        }
        let delay = backoff.next_delay(ran_for);
        let last = ContainerState {
            terminated: Some(term.clone()),
            ..Default::default()
        };
        if delay.is_zero() {
            self.update(kind, idx, |s| {
                s.state = Some(ContainerState {
                    terminated: Some(term),
                    ..Default::default()
                });
                s.last_state = Some(last);
                s.ready = false;
                s.started = Some(false);
            });
            return None;
        }
        let message = format!(
            "back-off {}s restarting failed container={} pod={}_{}({})",
            delay.as_secs_f64(),
            c.name,
            self.name,
            self.namespace,
            self.uid
        );
        self.event(
            &c.name,
            true,
            "BackOff",
            "Back-off restarting failed container".into(),
        );
        self.update(kind, idx, |s| {
            s.state = Some(waiting("CrashLoopBackOff", Some(message)));
            s.last_state = Some(last);
            s.ready = false;
            s.started = Some(false);
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => None,
            _ = stop.changed() => Some(RunEnd::Stopped),
        }
    }

    fn spawn_probes(
        self: Arc<Self>,
        kind: Kind,
        idx: usize,
        p: &Prepared,
        kill_tx: mpsc::Sender<String>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let env = Arc::new(p.env.clone());
        let cwd = p.cwd.clone();
        let (started_tx, started_rx) = watch::channel(p.startup.is_none());
        let mut tasks = Vec::new();
        let cname = self.container(kind, idx).name.clone();
        // Every failed probe is an Unhealthy event, as a kubelet records it.
        let unhealthy = |what: &'static str| {
            let (ctx, cname) = (self.clone(), cname.clone());
            move |msg: &str| {
                ctx.event(
                    &cname,
                    true,
                    "Unhealthy",
                    format!("{what} probe failed: {msg}"),
                )
            }
        };
        if let Some(spec) = p.startup.clone() {
            let (ctx, env, cwd, kill) = (self.clone(), env.clone(), cwd.clone(), kill_tx.clone());
            tasks.push(tokio::spawn(probe_loop(
                spec,
                env,
                cwd,
                unhealthy("Startup"),
                move |ok, msg| {
                    if ok {
                        ctx.update(kind, idx, |s| s.started = Some(true));
                        let _ = started_tx.send(true);
                    } else {
                        let _ = kill.try_send(format!("Startup probe failed: {msg}"));
                    }
                    false // the startup probe stops at its first verdict
                },
            )));
        }
        let after_start = |rx: &watch::Receiver<bool>| {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        if let Some(spec) = p.liveness.clone() {
            let on_failure = unhealthy("Liveness");
            let (env, cwd, kill, wait) = (
                env.clone(),
                cwd.clone(),
                kill_tx.clone(),
                after_start(&started_rx),
            );
            tasks.push(tokio::spawn(async move {
                wait.await;
                probe_loop(spec, env, cwd, on_failure, move |ok, msg| {
                    if !ok {
                        let _ = kill.try_send(format!("Liveness probe failed: {msg}"));
                        return false;
                    }
                    true
                })
                .await
            }));
        }
        let wait = after_start(&started_rx);
        let ctx = self.clone();
        match p.readiness.clone() {
            Some(spec) => {
                let (env, cwd, on_failure) = (env.clone(), cwd.clone(), unhealthy("Readiness"));
                tasks.push(tokio::spawn(async move {
                    wait.await;
                    probe_loop(spec, env, cwd, on_failure, move |ok, _msg| {
                        ctx.update(kind, idx, |s| s.ready = ok);
                        true
                    })
                    .await
                }));
            }
            None if p.startup.is_some() => tasks.push(tokio::spawn(async move {
                wait.await;
                ctx.update(kind, idx, |s| s.ready = true);
            })),
            None => {}
        }
        tasks
    }

    /// Init containers in order, then the app containers side by side.
    async fn run_all(self: Arc<Self>, stop: watch::Receiver<Option<Duration>>) {
        // Volumes first: like a kubelet, containers wait in ContainerCreating until they mount.
        loop {
            match self.prepare_volumes().await {
                Ok(()) => break,
                Err(msg) => {
                    self.events
                        .emit(&self.pod, None, true, "FailedMount", msg.clone());
                    self.with_rt(|rt| {
                        for s in rt.init.iter_mut().chain(rt.main.iter_mut()) {
                            s.state = Some(waiting("ContainerCreating", Some(msg.clone())));
                        }
                    });
                    let mut stop = stop.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
        }
        let n_init = self.spec.init_containers.as_ref().map_or(0, Vec::len);
        for i in 0..n_init {
            match self
                .clone()
                .run_container(Kind::Init, i, stop.clone())
                .await
            {
                RunEnd::Stopped => return,
                RunEnd::Finished(0) => {}
                RunEnd::Finished(_) => {
                    self.with_rt(|rt| rt.init_failed = true);
                    return;
                }
            }
        }
        self.with_rt(|rt| {
            rt.init_done = true;
            for s in &mut rt.main {
                if s.state
                    .as_ref()
                    .and_then(|st| st.waiting.as_ref())
                    .is_some()
                {
                    s.state = Some(waiting("ContainerCreating", None));
                }
            }
        });
        let tasks: Vec<_> = (0..self.spec.containers.len())
            .map(|i| tokio::spawn(self.clone().run_container(Kind::Main, i, stop.clone())))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// Why a pod worker stops its containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopCause {
    Deleted,
    Gone,
    Shutdown,
}

/// Signals a pod worker receives.
pub struct PodHandle {
    pub pod: watch::Sender<Pod>,
    pub gone: watch::Sender<bool>,
}

/// Runs a pod until it is deleted (then confirms the deletion), vanishes, or the kubelet stops.
pub async fn run_pod(
    ctx: Arc<PodCtx>,
    mut pod_rx: watch::Receiver<Pod>,
    mut gone_rx: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let terminal = matches!(
        ctx.pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    let deleting_at_start = ctx.pod.metadata.deletion_timestamp.is_some();
    let (stop_tx, stop_rx) = watch::channel(None::<Duration>);
    let (done_tx, done_rx) = watch::channel(false);
    let active = !terminal && !deleting_at_start;
    let writer = active.then(|| tokio::spawn(ctx.clone().status_writer(done_rx)));
    let mut runner = active.then(|| tokio::spawn(ctx.clone().run_all(stop_rx)));
    tracing::info!(pod = %ctx.name, namespace = %ctx.namespace, ip = %ctx.pod_ip, active, "pod admitted");
    let mut runner_done = false;
    let mut grace = ctx.grace();
    let cause = if deleting_at_start {
        StopCause::Deleted
    } else {
        loop {
            tokio::select! {
                r = pod_rx.changed() => {
                    if r.is_err() { break StopCause::Gone; }
                    let p = pod_rx.borrow_and_update().clone();
                    if p.metadata.deletion_timestamp.is_some() {
                        if let Some(g) = p.metadata.deletion_grace_period_seconds {
                            grace = Duration::from_secs(g.max(0) as u64);
                        }
                        break StopCause::Deleted;
                    }
                }
                _ = gone_rx.changed() => break StopCause::Gone,
                _ = shutdown.changed() => break StopCause::Shutdown,
                // All containers finished for good (a terminal pod): wait for its deletion.
                _ = async { runner.as_mut().expect("guarded").await }, if runner.is_some() && !runner_done => {
                    runner_done = true;
                }
            }
        }
    };
    if cause != StopCause::Deleted {
        grace = grace.min(ctx.cfg.shutdown_grace);
    }
    tracing::info!(pod = %ctx.name, ?cause, ?grace, "stopping pod");
    let _ = stop_tx.send(Some(grace));
    // A JoinHandle must not be polled again once it has returned.
    if let Some(r) = runner.take().filter(|_| !runner_done) {
        let _ = r.await;
    }
    let _ = done_tx.send(true);
    if let Some(w) = writer {
        let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
    }
    if cause == StopCause::Deleted {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(ctx.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        for attempt in 0..5 {
            match ctx.pods().delete(&ctx.name, &dp).await {
                Ok(_) => break,
                // Gone, or a new pod of the same name (uid precondition): nothing to confirm.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => break,
                Err(e) => {
                    tracing::warn!(pod = %ctx.name, error = %e, attempt, "confirming deletion");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
    if cause != StopCause::Shutdown {
        let _ = tokio::fs::remove_dir_all(ctx.pod_dir()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(state: ContainerState, last: Option<ContainerState>) -> ContainerStatus {
        ContainerStatus {
            state: Some(state),
            last_state: last,
            ..Default::default()
        }
    }

    fn term(code: i32) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn running() -> ContainerState {
        ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        }
    }

    #[test]
    fn phases_like_the_kubelet() {
        let w = waiting("ContainerCreating", None);
        assert_eq!(phase("Always", false, false, &[]), "Pending");
        assert_eq!(
            phase("Always", true, false, &[st(w.clone(), None)]),
            "Pending"
        );
        assert_eq!(
            phase("Always", true, false, &[st(running(), None)]),
            "Running"
        );
        // CrashLoopBackOff with a previous run counts as stopped: Running under Always.
        let crash = st(waiting("CrashLoopBackOff", None), Some(term(1)));
        assert_eq!(
            phase("Always", true, false, std::slice::from_ref(&crash)),
            "Running"
        );
        assert_eq!(phase("Never", true, false, &[st(term(1), None)]), "Failed");
        assert_eq!(
            phase("Never", true, false, &[st(term(0), None)]),
            "Succeeded"
        );
        assert_eq!(
            phase("OnFailure", true, false, &[st(term(0), None)]),
            "Succeeded"
        );
        assert_eq!(phase("OnFailure", true, false, &[crash]), "Running");
        assert_eq!(phase("Always", true, true, &[]), "Failed");
    }
}
