//! The local process supervisor: runs workloads as real processes on 127.0.0.1 and keeps the
//! estate directory (logs, pids, targets, endpoints, events, changes, actions) up to date.

use super::files::{allocate_port, append_json_line, read_rss, write_atomic};
use super::instance;
use super::spec::{InstanceStatus, MAX_REPLICAS, WorkloadSpec, WorkloadStatus, validate_specs};
use medic_act::{ActError, ActionReport, Actuator, BoxFuture};
use medic_core::{Action, ActionKind, ChangeEvent, ChangeKind, Ts};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How long a rolling operation waits for one new process to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `start` waits for the whole estate to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);
const READY_POLL: Duration = Duration::from_millis(50);
const MEMORY_POLL: Duration = Duration::from_millis(250);
/// Longest accepted idempotency key.
const MAX_KEY_LEN: usize = 256;

pub(crate) struct InstanceTask {
    stop: watch::Sender<bool>,
    join: JoinHandle<()>,
}

pub(crate) struct Instance {
    pub name: String,
    pub index: u32,
    pub port: u16,
    pub pid: Option<u32>,
    pub running: bool,
    pub restarts: u32,
    pub last_exit_reason: Option<String>,
    /// Set by the memory monitor before it kills this pid, so the exit is classified OOMKilled.
    pub oom_pid: Option<u32>,
    pub task: Option<InstanceTask>,
}

pub(crate) struct Workload {
    pub spec: WorkloadSpec,
    pub release: String,
    pub previous_release: Option<String>,
    pub config_version: String,
    pub previous_config_version: Option<String>,
    config_counter: u32,
    pub instances: Vec<Instance>,
    /// Serializes rollouts (actions, deploys, config changes) on this workload.
    rollout: Arc<tokio::sync::Mutex<()>>,
    /// Bumped when an action arrives: a background rollout started under an older value stops
    /// at its next step, so a remediation supersedes a bad rollout instead of waiting for it to
    /// finish breaking every instance (as `kubectl rollout undo` does).
    generation: Arc<AtomicU64>,
}

/// What a rollback or revert swaps.
#[derive(Copy, Clone)]
enum Versioned {
    Release,
    Config,
}

/// Lets a background rollout notice that an action superseded it.
pub(crate) struct Superseded {
    generation: Arc<AtomicU64>,
    started_at: u64,
}

impl Superseded {
    fn now(&self) -> bool {
        self.generation.load(Ordering::SeqCst) != self.started_at
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub workloads: BTreeMap<String, Workload>,
    shutting_down: bool,
}

/// One line of `actions.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ActionRecord {
    idempotency_key: String,
    action: Action,
    ts: Ts,
    detail: String,
}

struct Server {
    stop: oneshot::Sender<()>,
    join: JoinHandle<()>,
}

pub(crate) struct Inner {
    pub dir: PathBuf,
    state: Mutex<State>,
    /// Held for the whole of an action, so a key is checked and executed atomically.
    action_lock: tokio::sync::Mutex<()>,
    executed: Mutex<HashMap<String, ActionRecord>>,
    /// Serializes appends to the shared JSON-lines files.
    files: Mutex<()>,
    shutdown: watch::Sender<bool>,
    addr: Mutex<Option<SocketAddr>>,
    server: tokio::sync::Mutex<Option<Server>>,
    background: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    pub(crate) fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn lock_files(&self) -> MutexGuard<'_, ()> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn lock_executed(&self) -> MutexGuard<'_, HashMap<String, ActionRecord>> {
        self.executed.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn log_path(&self, instance: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{instance}.log"))
    }
    pub(crate) fn pid_path(&self, instance: &str) -> PathBuf {
        self.dir.join("pids").join(format!("{instance}.pid"))
    }
    pub(crate) fn instance_dir(&self, instance: &str) -> PathBuf {
        self.dir.join("instances").join(instance)
    }
    pub(crate) fn config_path(&self, service: &str, version: &str) -> PathBuf {
        self.dir
            .join("configs")
            .join(service)
            .join(format!("{version}.json"))
    }

    fn with_instance<R>(
        &self,
        service: &str,
        index: u32,
        f: impl FnOnce(&mut Instance) -> R,
    ) -> Option<R> {
        let mut state = self.lock_state();
        let w = state.workloads.get_mut(service)?;
        w.instances.iter_mut().find(|i| i.index == index).map(f)
    }
    pub(crate) fn mark_started(&self, service: &str, index: u32, pid: u32) {
        self.with_instance(service, index, |i| {
            i.pid = Some(pid);
            i.running = true;
        });
    }
    pub(crate) fn mark_exited(&self, service: &str, index: u32, reason: &str) {
        self.with_instance(service, index, |i| {
            i.pid = None;
            i.running = false;
            i.last_exit_reason = Some(reason.to_string());
        });
    }
    pub(crate) fn count_restart(&self, service: &str, index: u32) {
        self.with_instance(service, index, |i| {
            i.restarts = i.restarts.saturating_add(1)
        });
    }
    pub(crate) fn take_oom_mark(&self, service: &str, index: u32, pid: u32) -> bool {
        self.with_instance(service, index, |i| {
            let marked = i.oom_pid == Some(pid);
            i.oom_pid = None;
            marked
        })
        .unwrap_or(false)
    }

    fn append_change(&self, change: &ChangeEvent) -> Result<(), ActError> {
        let _serial = self.lock_files();
        append_json_line(&self.dir.join("changes.jsonl"), change)
    }

    /// Rewrites `targets.json` and every `endpoints/<service>.json` from the current state.
    fn write_discovery_files(&self) -> Result<(), ActError> {
        let (targets, endpoints) = {
            let state = self.lock_state();
            let mut targets = Vec::new();
            let mut endpoints = Vec::new();
            for (name, w) in &state.workloads {
                let mut addresses = Vec::new();
                for i in &w.instances {
                    let addr = format!("127.0.0.1:{}", i.port);
                    targets.push(serde_json::json!({
                        "targets": [addr],
                        "labels": {"service": name, "instance": i.name},
                    }));
                    addresses.push(addr);
                }
                endpoints.push((
                    name.clone(),
                    serde_json::json!({"service": name, "addresses": addresses}),
                ));
            }
            (targets, endpoints)
        };
        write_atomic(&self.dir.join("targets.json"), &to_json_bytes(&targets))?;
        for (name, doc) in endpoints {
            let path = self.dir.join("endpoints").join(format!("{name}.json"));
            write_atomic(&path, &to_json_bytes(&doc))?;
        }
        Ok(())
    }

    /// Starts the instance task; returns false when the supervisor is shutting down or the
    /// instance does not exist.
    fn start_instance(self: &Arc<Self>, service: &str, index: u32) -> Result<(), ActError> {
        let mut state = self.lock_state();
        if state.shutting_down {
            return Err(ActError::ShutDown);
        }
        let inst = state
            .workloads
            .get_mut(service)
            .and_then(|w| w.instances.iter_mut().find(|i| i.index == index))
            .ok_or_else(|| ActError::Rejected(format!("no instance {index} of {service:?}")))?;
        if let Err(e) = std::fs::create_dir_all(self.instance_dir(&inst.name)) {
            return Err(ActError::io(self.instance_dir(&inst.name), e));
        }
        let (stop, stop_rx) = watch::channel(false);
        let join = tokio::spawn(instance::run(
            self.clone(),
            service.to_string(),
            index,
            stop_rx,
        ));
        inst.task = Some(InstanceTask { stop, join });
        Ok(())
    }

    fn take_task(&self, service: &str, index: u32) -> Option<InstanceTask> {
        self.with_instance(service, index, |i| i.task.take())
            .flatten()
    }

    /// Waits until the instance's port accepts connections. False on timeout, on shutdown, or
    /// when its task ended (a crash under restart policy `never`).
    async fn wait_ready(
        &self,
        service: &str,
        index: u32,
        timeout: Duration,
        superseded: Option<&Superseded>,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if superseded.is_some_and(Superseded::now) {
                return false;
            }
            let probe = {
                let state = self.lock_state();
                if state.shutting_down {
                    return false;
                }
                state
                    .workloads
                    .get(service)
                    .and_then(|w| w.instances.iter().find(|i| i.index == index))
                    .map(|i| {
                        (
                            i.port,
                            i.running,
                            i.task.as_ref().is_none_or(|t| t.join.is_finished()),
                        )
                    })
            };
            let Some((port, running, task_ended)) = probe else {
                return false;
            };
            if running
                && tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            {
                return true;
            }
            if task_ended || Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Stops and restarts every instance one at a time. Caller holds the rollout lock.
    async fn rolling_replace(
        self: &Arc<Self>,
        service: &str,
        wipe: bool,
        superseded: Option<&Superseded>,
    ) -> Result<String, ActError> {
        let instances: Vec<(u32, String)> = {
            let state = self.lock_state();
            let w = state
                .workloads
                .get(service)
                .ok_or_else(|| unknown_service(&state, service))?;
            w.instances
                .iter()
                .map(|i| (i.index, i.name.clone()))
                .collect()
        };
        let mut notes = Vec::new();
        for (index, name) in instances {
            if superseded.is_some_and(Superseded::now) {
                notes.push(format!("superseded by an action before {name}"));
                break;
            }
            if let Some(task) = self.take_task(service, index) {
                stop_task(task).await;
            }
            if wipe {
                let dir = self.instance_dir(&name);
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(ActError::io(dir, e)),
                }
            }
            self.start_instance(service, index)?;
            if self
                .wait_ready(service, index, READY_TIMEOUT, superseded)
                .await
            {
                notes.push(format!("{name} ready"));
            } else {
                notes.push(format!(
                    "{name} did not become ready within {} s",
                    READY_TIMEOUT.as_secs()
                ));
            }
        }
        Ok(notes.join(", "))
    }

    async fn scale(self: &Arc<Self>, service: &str, target: u32) -> Result<String, ActError> {
        let current = {
            let state = self.lock_state();
            state
                .workloads
                .get(service)
                .ok_or_else(|| unknown_service(&state, service))?
                .instances
                .len() as u32
        };
        if target == current {
            return Ok(format!("{service} already has {current} replicas"));
        }
        if target > current {
            let mut added = Vec::new();
            for index in current..target {
                let port = allocate_port()?;
                let name = format!("{service}-{index}");
                let mut state = self.lock_state();
                let w = state
                    .workloads
                    .get_mut(service)
                    .ok_or_else(|| ActError::Rejected(format!("workload {service:?} vanished")))?;
                w.instances.push(new_instance(name.clone(), index, port));
                added.push((index, name));
            }
            self.write_discovery_files()?;
            let mut notes = Vec::new();
            for (index, name) in added {
                self.start_instance(service, index)?;
                let ready = self.wait_ready(service, index, READY_TIMEOUT, None).await;
                notes.push(format!(
                    "{name} {}",
                    if ready {
                        "ready"
                    } else {
                        "did not become ready"
                    }
                ));
            }
            Ok(format!(
                "scaled {service} from {current} to {target} replicas: {}",
                notes.join(", ")
            ))
        } else {
            let mut removed = Vec::new();
            for index in (target..current).rev() {
                if let Some(task) = self.take_task(service, index) {
                    stop_task(task).await;
                }
                let name = {
                    let mut state = self.lock_state();
                    let w = state.workloads.get_mut(service);
                    w.and_then(|w| {
                        let pos = w.instances.iter().position(|i| i.index == index)?;
                        Some(w.instances.remove(pos).name)
                    })
                };
                if let Some(name) = name {
                    // Like a deleted pod: its scratch space goes with it; its log stays.
                    let _ = std::fs::remove_dir_all(self.instance_dir(&name));
                    let _ = std::fs::remove_file(self.pid_path(&name));
                    removed.push(name);
                }
            }
            self.write_discovery_files()?;
            Ok(format!(
                "scaled {service} from {current} to {target} replicas: stopped {}",
                removed.join(", ")
            ))
        }
    }

    fn rollout_lock(&self, service: &str) -> Result<Arc<tokio::sync::Mutex<()>>, ActError> {
        let state = self.lock_state();
        if state.shutting_down {
            return Err(ActError::ShutDown);
        }
        state
            .workloads
            .get(service)
            .map(|w| w.rollout.clone())
            .ok_or_else(|| unknown_service(&state, service))
    }

    /// Runs one catalogue action; returns the detail and the change record to append.
    async fn apply(self: &Arc<Self>, action: &Action) -> Result<(String, ChangeEvent), ActError> {
        let service = action.target.as_str();
        let mut change = ChangeEvent {
            kind: ChangeKind::Remediation,
            service: service.to_string(),
            start: Ts::now(),
            end: None,
            from: None,
            to: None,
            description: String::new(),
            author: Some("medic".to_string()),
        };
        if action.kind == ActionKind::NoAction {
            change.description = format!("{action}: no action taken");
            return Ok(("no action taken".to_string(), change));
        }
        if !matches!(
            action.kind,
            ActionKind::RestartWorkload
                | ActionKind::ScaleWorkload
                | ActionKind::RollbackRelease
                | ActionKind::RevertConfig
        ) {
            return Err(ActError::Rejected(format!(
                "the local supervisor has no {}: it runs processes, not pods, nodes or network policies",
                action.kind
            )));
        }
        let lock = self.rollout_lock(service)?;
        if let Some(generation) = self.generation(service) {
            generation.fetch_add(1, Ordering::SeqCst);
        }
        let _rollout = lock.lock().await;
        let detail = match action.kind {
            ActionKind::NoAction
            | ActionKind::DeletePod
            | ActionKind::SetResources
            | ActionKind::CordonNode
            | ActionKind::DrainNode
            | ActionKind::IsolateWorkload => String::new(),
            ActionKind::RestartWorkload => {
                let notes = self.rolling_replace(service, true, None).await?;
                format!("restarted {service}: {notes}")
            }
            ActionKind::ScaleWorkload => {
                let target = action.replicas.ok_or_else(|| {
                    ActError::Rejected(
                        "scale_workload needs \"replicas\": expected 1..=16".to_string(),
                    )
                })?;
                if target == 0 || target > MAX_REPLICAS {
                    return Err(ActError::Rejected(format!(
                        "cannot scale {service} to {target} replicas: expected 1..={MAX_REPLICAS}"
                    )));
                }
                let from = self.replica_count(service).unwrap_or(0);
                change.from = Some(from.to_string());
                change.to = Some(target.to_string());
                self.scale(service, target).await?
            }
            ActionKind::RollbackRelease | ActionKind::RevertConfig => {
                let which = if action.kind == ActionKind::RollbackRelease {
                    Versioned::Release
                } else {
                    Versioned::Config
                };
                let (from, to) = self.swap_to_previous(service, which)?;
                change.from = Some(from.clone());
                change.to = Some(to.clone());
                let notes = self.rolling_replace(service, false, None).await?;
                match which {
                    Versioned::Release => {
                        format!("rolled back {service} from {from} to {to}: {notes}")
                    }
                    Versioned::Config => {
                        format!("reverted config of {service} from {from} to {to}: {notes}")
                    }
                }
            }
        };
        change.description = format!("{action}: {detail}");
        Ok((detail, change))
    }

    /// Makes the previous release (or config) current and the current one previous, so that
    /// doing it twice goes back again, like `kubectl rollout undo`. Returns (from, to).
    fn swap_to_previous(
        &self,
        service: &str,
        which: Versioned,
    ) -> Result<(String, String), ActError> {
        let mut state = self.lock_state();
        let w = state
            .workloads
            .get_mut(service)
            .ok_or_else(|| ActError::Rejected(format!("no workload {service:?}")))?;
        let (current, previous) = match which {
            Versioned::Release => (&mut w.release, &mut w.previous_release),
            Versioned::Config => (&mut w.config_version, &mut w.previous_config_version),
        };
        let Some(prev) = previous.take() else {
            return Err(ActError::Rejected(match which {
                Versioned::Release => {
                    format!("cannot roll back {service}: no previous release (running {current})")
                }
                Versioned::Config => format!(
                    "cannot revert config of {service}: no previous config (running {current})"
                ),
            }));
        };
        let from = std::mem::replace(current, prev.clone());
        *previous = Some(from.clone());
        Ok((from, prev))
    }

    fn generation(&self, service: &str) -> Option<Arc<AtomicU64>> {
        let state = self.lock_state();
        state.workloads.get(service).map(|w| w.generation.clone())
    }

    fn replica_count(&self, service: &str) -> Option<u32> {
        let state = self.lock_state();
        state
            .workloads
            .get(service)
            .map(|w| w.instances.len() as u32)
    }

    /// Records a deploy or config change (from → to) in the change calendar, then rolls it out
    /// in the background: the calendar entry comes first, so a crash mid-rollout still leaves
    /// the change visible to diagnosis.
    fn record_and_roll_out(
        self: &Arc<Self>,
        kind: ChangeKind,
        service: &str,
        from: &str,
        to: &str,
        author: &str,
        guard: tokio::sync::OwnedMutexGuard<()>,
    ) -> Result<(), ActError> {
        let what = if kind == ChangeKind::Deploy {
            "deploy"
        } else {
            "config change"
        };
        self.append_change(&ChangeEvent {
            kind,
            service: service.to_string(),
            start: Ts::now(),
            end: None,
            from: Some(from.to_string()),
            to: Some(to.to_string()),
            description: format!("{what} {service} {from} -> {to}"),
            author: Some(author.to_string()),
        })?;
        self.spawn_rollout(service, guard);
        Ok(())
    }

    /// Hands a rollout to a background task that keeps the workload's rollout lock.
    fn spawn_rollout(self: &Arc<Self>, service: &str, guard: tokio::sync::OwnedMutexGuard<()>) {
        let inner = self.clone();
        let superseded = self.generation(service).map(|generation| Superseded {
            started_at: generation.load(Ordering::SeqCst),
            generation,
        });
        let service = service.to_string();
        let join = tokio::spawn(async move {
            let _rollout = guard;
            match inner
                .rolling_replace(&service, false, superseded.as_ref())
                .await
            {
                Ok(notes) => tracing::info!(%service, %notes, "rollout finished"),
                Err(e) => tracing::warn!(%service, error = %e, "rollout failed"),
            }
        });
        let mut bg = self.background.lock().unwrap_or_else(|p| p.into_inner());
        bg.retain(|h| !h.is_finished());
        bg.push(join);
    }
}

fn to_json_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising JSON values built here cannot fail; an empty document is the safe fallback.
    serde_json::to_vec_pretty(v).unwrap_or_default()
}

fn new_instance(name: String, index: u32, port: u16) -> Instance {
    Instance {
        name,
        index,
        port,
        pid: None,
        running: false,
        restarts: 0,
        last_exit_reason: None,
        oom_pid: None,
        task: None,
    }
}

fn unknown_service(state: &State, service: &str) -> ActError {
    ActError::Rejected(format!(
        "unknown service {service:?}: expected one of {:?}",
        state.workloads.keys().collect::<Vec<_>>()
    ))
}

async fn stop_task(task: InstanceTask) {
    let _ = task.stop.send(true);
    let _ = task.join.await;
}

fn check_key(key: &str) -> Result<(), ActError> {
    if key.trim().is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
        return Err(ActError::Invalid(format!(
            "idempotency key {:?} is not valid: expected 1-{MAX_KEY_LEN} printable characters",
            key.chars().take(40).collect::<String>()
        )));
    }
    Ok(())
}

/// Reads `actions.jsonl`. A torn last line (crash mid-write) or foreign garbage is skipped
/// with a warning rather than refusing to start.
fn load_actions(path: &Path) -> Result<HashMap<String, ActionRecord>, ActError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(ActError::io(path, e)),
    };
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ActionRecord>(line) {
            // The first execution of a key wins, as it did when it ran.
            Ok(r) => {
                out.entry(r.idempotency_key.clone()).or_insert(r);
            }
            Err(e) => {
                tracing::warn!(line = n + 1, error = %e, "skipping unreadable line of actions.jsonl")
            }
        }
    }
    Ok(out)
}

/// The memory monitor: like a cgroup OOM killer, kills a process whose RSS exceeds its limit.
async fn memory_monitor(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(MEMORY_POLL) => {}
            _ = shutdown.changed() => return,
        }
        let candidates: Vec<(String, u32, u32, u64)> = {
            let state = inner.lock_state();
            state
                .workloads
                .iter()
                .filter_map(|(name, w)| Some((name, w.spec.memory_limit_bytes?, &w.instances)))
                .flat_map(|(name, limit, insts)| {
                    insts.iter().filter_map(move |i| {
                        Some((name.clone(), i.index, i.pid.filter(|_| i.running)?, limit))
                    })
                })
                .collect()
        };
        for (service, index, pid, limit) in candidates {
            let Some(rss) = read_rss(pid) else { continue };
            if rss <= limit {
                continue;
            }
            // Mark first (only if that pid is still the instance's), then kill, so the exit
            // watcher classifies the exit as OOMKilled.
            let marked = inner
                .with_instance(&service, index, |i| {
                    if i.pid == Some(pid) && i.running {
                        i.oom_pid = Some(pid);
                        true
                    } else {
                        false
                    }
                })
                .unwrap_or(false);
            if marked && let Ok(raw) = i32::try_from(pid) {
                tracing::warn!(%service, pid, rss, limit, "memory limit exceeded: killing");
                let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
            }
        }
    }
}

/// The local supervisor. Cheap to clone (an `Arc` inside); every clone drives the same estate.
/// Call [`Supervisor::shutdown`] when done: dropping the handles does not stop the children
/// (their tasks live until the tokio runtime ends, which then kills them via `kill_on_drop`).
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl Supervisor {
    /// Starts every workload, the memory monitor and the control API on 127.0.0.1:0 (address
    /// written to `DIR/supervisor.addr`). Returns once every instance accepts connections; if
    /// that takes longer than 15 s, stops everything and returns [`ActError::NotReady`].
    pub async fn start(dir: &Path, specs: Vec<WorkloadSpec>) -> Result<Supervisor, ActError> {
        Self::start_with_routes(dir, specs, axum::Router::new()).await
    }

    /// Like [`Supervisor::start`], with `extra` routes merged into the control API server.
    /// Routes must not overlap `/v1/*` (axum panics on overlapping routes).
    pub async fn start_with_routes(
        dir: &Path,
        specs: Vec<WorkloadSpec>,
        extra: axum::Router,
    ) -> Result<Supervisor, ActError> {
        validate_specs(&specs)?;
        for sub in ["logs", "pids", "endpoints", "instances", "configs"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| ActError::io(&p, e))?;
        }
        let executed = load_actions(&dir.join("actions.jsonl"))?;
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            state: Mutex::new(State::default()),
            action_lock: tokio::sync::Mutex::new(()),
            executed: Mutex::new(executed),
            files: Mutex::new(()),
            shutdown,
            addr: Mutex::new(None),
            server: tokio::sync::Mutex::new(None),
            background: Mutex::new(Vec::new()),
        });
        {
            let mut workloads = BTreeMap::new();
            for spec in specs {
                let config_dir = dir.join("configs").join(&spec.name);
                std::fs::create_dir_all(&config_dir).map_err(|e| ActError::io(&config_dir, e))?;
                let c1 = inner.config_path(&spec.name, "c1");
                write_atomic(&c1, &to_json_bytes(&spec.config))?;
                let mut instances = Vec::new();
                for index in 0..spec.replicas {
                    let name = format!("{}-{index}", spec.name);
                    // A pid file left by an earlier run names a process that is not ours.
                    let _ = std::fs::remove_file(inner.pid_path(&name));
                    instances.push(new_instance(name, index, allocate_port()?));
                }
                workloads.insert(
                    spec.name.clone(),
                    Workload {
                        release: spec.release.clone(),
                        previous_release: None,
                        config_version: "c1".to_string(),
                        previous_config_version: None,
                        config_counter: 1,
                        instances,
                        rollout: Arc::new(tokio::sync::Mutex::new(())),
                        generation: Arc::new(AtomicU64::new(0)),
                        spec,
                    },
                );
            }
            inner.lock_state().workloads = workloads;
        }
        inner.write_discovery_files()?;
        let sup = Supervisor { inner };
        let monitor = tokio::spawn(memory_monitor(
            sup.inner.clone(),
            sup.inner.shutdown.subscribe(),
        ));
        sup.inner
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(monitor);

        let all: Vec<(String, u32)> = {
            let state = sup.inner.lock_state();
            state
                .workloads
                .iter()
                .flat_map(|(n, w)| w.instances.iter().map(move |i| (n.clone(), i.index)))
                .collect()
        };
        let mut started = Ok(());
        for (service, index) in &all {
            started = started.and_then(|()| sup.inner.start_instance(service, *index));
        }
        if started.is_ok() {
            started = sup.serve(None, extra).await;
        }
        if let Err(e) = started {
            // Leave nothing running behind a failed start.
            sup.shutdown().await;
            return Err(e);
        }
        let deadline = Instant::now() + START_TIMEOUT;
        let mut not_ready = Vec::new();
        for (service, index) in &all {
            let left = deadline.saturating_duration_since(Instant::now());
            if !sup.inner.wait_ready(service, *index, left, None).await {
                not_ready.push(format!("{service}-{index}"));
            }
        }
        if !not_ready.is_empty() {
            sup.shutdown().await;
            return Err(ActError::NotReady(format!(
                "instances {} did not accept connections within {} s (see their logs in {})",
                not_ready.join(", "),
                START_TIMEOUT.as_secs(),
                dir.join("logs").display()
            )));
        }
        Ok(sup)
    }

    /// (Re)starts the control API server on `addr` (or 127.0.0.1:0) with `extra` merged in.
    async fn serve(&self, addr: Option<SocketAddr>, extra: axum::Router) -> Result<(), ActError> {
        let mut server = self.inner.server.lock().await;
        if let Some(old) = server.take() {
            let _ = old.stop.send(());
            let mut join = old.join;
            if tokio::time::timeout(Duration::from_secs(1), &mut join)
                .await
                .is_err()
            {
                join.abort();
            }
        }
        let bind = addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| ActError::io(bind.to_string(), e))?;
        let local = listener
            .local_addr()
            .map_err(|e| ActError::io(bind.to_string(), e))?;
        let app = self.router().merge(extra);
        let (stop, stop_rx) = oneshot::channel::<()>();
        let join = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "control api server failed");
            }
        });
        *server = Some(Server { stop, join });
        *self.inner.addr.lock().unwrap_or_else(|p| p.into_inner()) = Some(local);
        write_atomic(
            &self.inner.dir.join("supervisor.addr"),
            local.to_string().as_bytes(),
        )
    }

    /// Restarts the control API server on the same address with `extra` routes merged in (for
    /// callers that need a `Supervisor` handle to build their routes).
    pub async fn serve_with(&self, extra: axum::Router) -> Result<(), ActError> {
        let addr = self.addr();
        self.serve(Some(addr), extra).await
    }

    /// Address of the control API.
    pub fn addr(&self) -> SocketAddr {
        self.inner
            .addr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The estate directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The `/v1` control API, so callers can merge routes into their own server.
    pub fn router(&self) -> axum::Router {
        super::api::router(self.clone())
    }

    /// Executes a catalogue action at most once per idempotency key; returns when the rollout
    /// is done (so verification starts after it).
    ///
    /// The work runs in its own task, so a caller that gives up (an HTTP client timing out)
    /// cannot cancel a rollout half-way; a retry with the same key waits for it and then
    /// reports it as already executed.
    pub async fn execute(&self, key: &str, action: &Action) -> Result<ActionReport, ActError> {
        check_key(key)?;
        let sup = self.clone();
        let key = key.to_string();
        let action = action.clone();
        tokio::spawn(async move { sup.execute_detached(&key, &action).await })
            .await
            .map_err(|e| ActError::Protocol(format!("the action task failed: {e}")))?
    }

    async fn execute_detached(&self, key: &str, action: &Action) -> Result<ActionReport, ActError> {
        let _serial = self.inner.action_lock.lock().await;
        if let Some(first) = self.inner.lock_executed().get(key) {
            if first.action != *action {
                return Err(ActError::Rejected(format!(
                    "idempotency key {key:?} was already used for a different action ({})",
                    first.action
                )));
            }
            return Ok(ActionReport {
                applied: false,
                detail: format!("already executed at {}: {}", first.ts, first.detail),
            });
        }
        if self.inner.lock_state().shutting_down {
            return Err(ActError::ShutDown);
        }
        let (detail, change) = self.inner.apply(action).await?;
        let record = ActionRecord {
            idempotency_key: key.to_string(),
            action: action.clone(),
            ts: Ts::now(),
            detail: detail.clone(),
        };
        self.inner
            .lock_executed()
            .insert(key.to_string(), record.clone());
        {
            let _files = self.inner.lock_files();
            append_json_line(&self.inner.dir.join("actions.jsonl"), &record)?;
        }
        self.inner.append_change(&change)?;
        Ok(ActionReport {
            applied: true,
            detail,
        })
    }

    /// Rolls out `release` (one known to the spec) to `service`. Returns once the rollout has
    /// started; it continues in the background (see [`Supervisor::settle`]).
    pub async fn deploy(
        &self,
        service: &str,
        release: &str,
        author: &str,
    ) -> Result<String, ActError> {
        let lock = self.inner.rollout_lock(service)?;
        let guard = lock.lock_owned().await;
        let from = {
            let mut state = self.inner.lock_state();
            let w = state
                .workloads
                .get_mut(service)
                .ok_or_else(|| ActError::Rejected(format!("no workload {service:?}")))?;
            if !w.spec.releases.iter().any(|r| r.name == release) {
                return Err(ActError::Rejected(format!(
                    "unknown release {release:?} of {service}: expected one of {:?}",
                    w.spec.releases.iter().map(|r| &r.name).collect::<Vec<_>>()
                )));
            }
            if w.release == release {
                return Ok(format!("{service} already runs release {release}"));
            }
            let from = std::mem::replace(&mut w.release, release.to_string());
            w.previous_release = Some(from.clone());
            from
        };
        self.inner.record_and_roll_out(
            ChangeKind::Deploy,
            service,
            &from,
            release,
            author,
            guard,
        )?;
        Ok(format!(
            "deploying {service} {from} -> {release} (rolling, in background)"
        ))
    }

    /// Stores `config` as the next config version of `service` and rolls it out in the
    /// background. The config is not validated: the service does that at start-up.
    pub async fn set_config(
        &self,
        service: &str,
        config: serde_json::Value,
        author: &str,
    ) -> Result<String, ActError> {
        let lock = self.inner.rollout_lock(service)?;
        let guard = lock.lock_owned().await;
        let version = {
            let mut state = self.inner.lock_state();
            let w = state
                .workloads
                .get_mut(service)
                .ok_or_else(|| ActError::Rejected(format!("no workload {service:?}")))?;
            format!("c{}", w.config_counter.saturating_add(1))
        };
        write_atomic(
            &self.inner.config_path(service, &version),
            &to_json_bytes(&config),
        )?;
        let from = {
            let mut state = self.inner.lock_state();
            let w = state
                .workloads
                .get_mut(service)
                .ok_or_else(|| ActError::Rejected(format!("no workload {service:?}")))?;
            w.config_counter = w.config_counter.saturating_add(1);
            let from = std::mem::replace(&mut w.config_version, version.clone());
            w.previous_config_version = Some(from.clone());
            from
        };
        self.inner.record_and_roll_out(
            ChangeKind::ConfigChange,
            service,
            &from,
            &version,
            author,
            guard,
        )?;
        Ok(version)
    }

    /// Waits until no rollout (action, deploy, config change) is in progress on `service`.
    pub async fn settle(&self, service: &str) -> Result<(), ActError> {
        let lock = self.inner.rollout_lock(service)?;
        let _done = lock.lock().await;
        Ok(())
    }

    /// Appends a change-calendar entry (typically a planned event) to `changes.jsonl`.
    pub async fn add_calendar_entry(&self, change: ChangeEvent) -> Result<(), ActError> {
        if change.service.is_empty() {
            return Err(ActError::Invalid(
                "calendar entry has an empty service: expected a service name".to_string(),
            ));
        }
        if let Some(end) = change.end
            && end < change.start
        {
            return Err(ActError::Invalid(format!(
                "calendar entry ends ({end}) before it starts ({}): expected end >= start",
                change.start
            )));
        }
        self.inner.append_change(&change)
    }

    /// Every workload and instance, as `GET /v1/workloads` reports them.
    pub async fn workloads(&self) -> Vec<WorkloadStatus> {
        let state = self.inner.lock_state();
        state
            .workloads
            .iter()
            .map(|(name, w)| WorkloadStatus {
                service: name.clone(),
                replicas: w.instances.len() as u32,
                release: w.release.clone(),
                previous_release: w.previous_release.clone(),
                config_version: w.config_version.clone(),
                previous_config_version: w.previous_config_version.clone(),
                restart: w.spec.restart,
                instances: w
                    .instances
                    .iter()
                    .map(|i| InstanceStatus {
                        instance: i.name.clone(),
                        pid: i.pid,
                        port: i.port,
                        running: i.running,
                        restarts: i.restarts,
                        last_exit_reason: i.last_exit_reason.clone(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Stops every child (SIGTERM, SIGKILL after 3 s), the monitor and the API server, and
    /// waits for them. Later actions fail with [`ActError::ShutDown`].
    pub async fn shutdown(&self) {
        let locks: Vec<Arc<tokio::sync::Mutex<()>>> = {
            let mut state = self.inner.lock_state();
            state.shutting_down = true;
            state
                .workloads
                .values()
                .map(|w| w.rollout.clone())
                .collect()
        };
        let _ = self.inner.shutdown.send(true);
        // In-flight rollouts notice the flag and end quickly; wait for them so none of their
        // processes escapes.
        for lock in &locks {
            let _ = lock.lock().await;
        }
        let tasks: Vec<InstanceTask> = {
            let mut state = self.inner.lock_state();
            state
                .workloads
                .values_mut()
                .flat_map(|w| w.instances.iter_mut().filter_map(|i| i.task.take()))
                .collect()
        };
        // Signal all first, then wait: stops run in parallel.
        for t in &tasks {
            let _ = t.stop.send(true);
        }
        for t in tasks {
            let _ = t.join.await;
        }
        let background: Vec<JoinHandle<()>> = std::mem::take(
            &mut *self
                .inner
                .background
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for b in background {
            let _ = b.await;
        }
        if let Some(server) = self.inner.server.lock().await.take() {
            let _ = server.stop.send(());
            let mut join = server.join;
            if tokio::time::timeout(Duration::from_secs(1), &mut join)
                .await
                .is_err()
            {
                join.abort();
            }
        }
        let _ = std::fs::remove_file(self.inner.dir.join("supervisor.addr"));
    }

    /// Current replica count of `service`, `None` if unknown.
    pub fn replica_count(&self, service: &str) -> Option<u32> {
        self.inner.replica_count(service)
    }
}

/// The supervisor is also an in-process actuator (for tests and single-process setups).
impl Actuator for Supervisor {
    fn name(&self) -> &str {
        "local-supervisor"
    }
    fn execute<'a>(
        &'a self,
        key: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<ActionReport, ActError>> {
        Box::pin(Supervisor::execute(self, key, action))
    }
    fn replicas<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<Option<u32>, ActError>> {
        Box::pin(async move { Ok(self.replica_count(service)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(check_key("inc-1/attempt-1").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("   ").is_err());
        assert!(check_key("a\nb").is_err());
        assert!(check_key(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(check_key(&"k".repeat(MAX_KEY_LEN)).is_ok());
    }

    #[test]
    fn action_log_survives_torn_and_hostile_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("actions.jsonl");
        assert!(load_actions(&p).unwrap().is_empty());
        let good = ActionRecord {
            idempotency_key: "k1".into(),
            action: Action {
                kind: ActionKind::RestartWorkload,
                target: "a".into(),
                replicas: None,
                workload: None,
                memory_limit_bytes: None,
            },
            ts: Ts(5),
            detail: "first".into(),
        };
        let mut second = good.clone();
        second.detail = "second".into();
        let text = format!(
            "{}\n\nnot json\n{{\"idempotency_key\":1}}\n{}\n{{\"idempotency_key\":\"k2\",\"act",
            serde_json::to_string(&good).unwrap(),
            serde_json::to_string(&second).unwrap()
        );
        std::fs::write(&p, text).unwrap();
        let loaded = load_actions(&p).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded["k1"].detail, "first");
    }
}
