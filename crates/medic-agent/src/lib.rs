//! The runtime: wires the stages together. Signals feed the detectors; findings are correlated
//! into incidents; each active incident is reconciled on every tick (level-triggered, state
//! persisted after each step), so a restarted agent picks up exactly where it stopped. Actions
//! run in their own tasks with idempotency keys recorded *before* the actuator is called.

pub mod escalation;
mod failpoint;
pub mod notify;
mod promql;
mod reconcile;
pub mod timeline;

pub use timeline::{Stage, TimelineEvent};

use medic_act::Actuator;
use medic_config::Config;
use medic_core::{
    AuditEvent, ChangeEvent, ChangeKind, Clock, Finding, Incident, IncidentState, Signal,
    SignalPayload, Ts, stable_id,
};
use medic_detect::{Assignment, Correlator, Detectors, IncidentView};
use medic_store::Store;
use medic_verify::Verification;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, watch};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("store: {0}")]
    Store(#[from] medic_store::StoreError),
    #[error("sources: {0}")]
    Sources(#[from] medic_signals::SignalsError),
    #[error("actuator: {0}")]
    Actuator(#[from] medic_act::ActError),
    #[error("http client: {0}")]
    Http(String),
    #[error("server: {0}")]
    Server(String),
    #[error("audit signing: {0}")]
    AuditSigning(String),
}

/// How many change calendar entries to keep in memory for diagnosis.
const MAX_CHANGES: usize = 10_000;
/// Terminal incidents stay in memory this long (for aftermath correlation), then are dropped.
const KEEP_CLOSED_MS: i64 = 10 * 60 * 1000;
/// A failing incident is retried after 1 s, 2 s, 4 s … at most this long.
const STEP_RETRY_MAX_S: f64 = 300.0;
/// A source's learned topology is dropped when it has not repeated it for this long (sources
/// repeat theirs every minute or so; ten missed repeats means the source is gone).
const LEARNED_TOPOLOGY_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Messages from tasks the agent spawned (actions, escalation deliveries) back to its loop.
enum TaskResult {
    Action {
        incident: String,
        key: String,
        result: Result<medic_act::ActionReport, String>,
    },
    /// A round of notification deliveries is over; `escalated` is the escalation's reason
    /// when the round was one.
    Notified {
        incident: String,
        escalated: Option<String>,
        reports: Vec<notify::DeliveryReport>,
    },
    /// PromQL evidence for an incident's diagnosis.
    PromEvidence {
        incident: String,
        evidence: Vec<medic_core::Evidence>,
    },
    /// One round of `verify_promql` results, as of `at`.
    PromChecks {
        incident: String,
        at: Ts,
        results: Vec<(String, Option<bool>)>,
    },
    /// One read of the acted-on workload's rollout health, asked for at `asked`; `None`
    /// when the platform cannot tell.
    Rollout {
        incident: String,
        asked: Ts,
        reading: Option<medic_verify::Rollout>,
    },
}

/// `verify_promql` results: each expression and its answer (`None`: could not be run).
type CheckResults = Vec<(String, Option<bool>)>;

/// Where an incident's PromQL evidence stands.
enum PromEvidence {
    Requested(Ts),
    Ready(Vec<medic_core::Evidence>),
}

pub struct Agent {
    cfg: Config,
    store: Arc<Store>,
    actuator: Arc<dyn Actuator>,
    clock: Arc<dyn Clock>,
    detectors: Detectors,
    correlator: Correlator,
    /// Configured edges plus what the sources learned.
    topology: medic_core::LiveTopology,
    incidents: BTreeMap<String, Incident>,
    verifications: HashMap<String, Verification>,
    in_flight: HashMap<String, String>,
    changes: VecDeque<ChangeEvent>,
    /// Weak findings (a lone never-seen error line) that would open an incident on their own:
    /// held until a stronger finding nearby corroborates them, or until they expire.
    held: VecDeque<Finding>,
    timeline: broadcast::Sender<TimelineEvent>,
    results_tx: mpsc::Sender<TaskResult>,
    results_rx: Option<mpsc::Receiver<TaskResult>>,
    http: reqwest::Client,
    /// The Prometheus HTTP API, when `prometheus.url` is configured.
    prom: Option<medic_signals::prometheus_api::PromClient>,
    prom_evidence: HashMap<String, PromEvidence>,
    /// Latest `verify_promql` results per incident, and which incidents have a round running.
    prom_checks: HashMap<String, (Ts, CheckResults)>,
    prom_checks_in_flight: std::collections::HashSet<String>,
    /// The latest rollout health read per verifying incident, not yet fed to its
    /// verification, and which incidents have a read running.
    rollout_reads: HashMap<String, medic_verify::Rollout>,
    rollout_in_flight: std::collections::HashSet<String>,
    /// Incidents whose last reconcile step failed: when to try again, and how many failures
    /// in a row (the wait doubles, up to `STEP_RETRY_MAX_S`).
    step_backoff: HashMap<String, (Ts, u32)>,
    /// Incidents whose last step said when it next has something to do ([`reconcile::Next`]).
    wake_at: HashMap<String, Ts>,
    /// Tests: reconcile steps of incidents on this service fail.
    fail_steps_of: Option<String>,
    /// Signs the audit chain's head now and then (`store.audit_signing`).
    signer: Option<(
        medic_store::checkpoint::SigningKey,
        medic_config::AuditSigning,
    )>,
}

impl Agent {
    pub fn new(
        cfg: Config,
        store: Arc<Store>,
        actuator: Arc<dyn Actuator>,
        clock: Arc<dyn Clock>,
    ) -> Result<Agent, AgentError> {
        let (timeline, _) = broadcast::channel(1024);
        let (results_tx, results_rx) = mpsc::channel(256);
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| AgentError::Http(e.to_string()))?;
        let prom = match &cfg.prometheus {
            Some(p) => Some(
                medic_signals::prometheus_api::PromClient::new(&p.url, p.timeout)
                    .map_err(|e| AgentError::Http(e.to_string()))?,
            ),
            None => None,
        };
        if prom.is_none() && cfg.policies.iter().any(|p| !p.verify_promql.is_empty()) {
            tracing::warn!(
                "a policy has `verify_promql` but `prometheus.url` is not configured: those checks stay unknown and verification cannot pass"
            );
        }
        for p in notify::secret_problems(&cfg.escalation) {
            tracing::warn!("{p}: notifications to it fail until this is fixed");
        }
        let signer = match &cfg.store.audit_signing {
            Some(a) => Some((
                medic_store::checkpoint::SigningKey::load(&a.key)
                    .map_err(|e| AgentError::AuditSigning(e.to_string()))?,
                a.clone(),
            )),
            None => None,
        };
        Ok(Agent {
            signer,
            prom,
            prom_evidence: HashMap::new(),
            prom_checks: HashMap::new(),
            prom_checks_in_flight: Default::default(),
            rollout_reads: HashMap::new(),
            rollout_in_flight: Default::default(),
            step_backoff: HashMap::new(),
            wake_at: HashMap::new(),
            fail_steps_of: None,
            detectors: Detectors::new(&cfg.detectors),
            correlator: Correlator::new(&cfg.correlation),
            topology: medic_core::LiveTopology::new(cfg.topology.clone(), LEARNED_TOPOLOGY_TTL),
            cfg,
            store,
            actuator,
            clock,
            incidents: BTreeMap::new(),
            verifications: HashMap::new(),
            in_flight: HashMap::new(),
            changes: VecDeque::new(),
            held: VecDeque::new(),
            timeline,
            results_tx,
            results_rx: Some(results_rx),
            http,
        })
    }

    /// Subscribe to the live timeline.
    pub fn timeline(&self) -> broadcast::Receiver<TimelineEvent> {
        self.timeline.subscribe()
    }

    /// Runs until `shutdown` turns true. Resumes incidents left active in the store.
    pub async fn run(
        mut self,
        mut signals: mpsc::Receiver<Signal>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), AgentError> {
        let mut results = self.results_rx.take().expect("run is called once");
        self.audit(AuditEvent::AgentStarted {
            version: env!("CARGO_PKG_VERSION").into(),
            config_digest: stable_id(&[&format!("{:?}", self.cfg)]),
        })?;
        self.resume()?;
        self.restore_detector_state();
        let mut last_saved = self.now();
        let mut tick = tokio::time::interval(self.cfg.agent.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sign_every = self
            .signer
            .as_ref()
            .map_or(std::time::Duration::from_secs(3600), |(_, a)| a.every);
        let mut sign_tick = tokio::time::interval(sign_every);
        sign_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { break; }
                }
                _ = sign_tick.tick(), if self.signer.is_some() => self.sign_audit_head(),
                Some(r) = results.recv() => {
                    let r = self.on_task_result(r).await;
                    survive("a task's result", r);
                }
                Some(s) = signals.recv() => survive("a signal", self.on_signal(s)),
                _ = tick.tick() => {
                    let r = self.on_tick(&mut signals).await;
                    survive("a tick", r);
                    if self.now().secs_since(last_saved) >= DETECTOR_STATE_SAVE_S {
                        self.save_detector_state();
                        last_saved = self.now();
                    }
                }
            }
        }
        self.save_detector_state();
        self.sign_audit_head();
        Ok(())
    }

    /// Appends a signed checkpoint of the audit head when it moved. A failure is logged,
    /// never fatal: the chain itself is intact, the next round tries again.
    fn sign_audit_head(&self) {
        let Some((key, a)) = &self.signer else {
            return;
        };
        match self.store.checkpoint(key, &a.checkpoints, self.now()) {
            Ok(Some(cp)) => {
                tracing::debug!(seq = cp.seq, "audit head signed");
                if let Some(hook) = &a.webhook {
                    self.send_checkpoint(hook, &cp);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!("could not sign the audit head: {e}"),
        }
    }

    /// POSTs a checkpoint to `store.audit_signing.webhook`, off the loop, retried like a
    /// notification; a failure is logged (the file still has it).
    fn send_checkpoint(
        &self,
        hook: &medic_config::SecretValue,
        cp: &medic_store::checkpoint::Checkpoint,
    ) {
        let url = match hook.resolve() {
            Ok(u) => u,
            Err(why) => {
                tracing::error!("audit checkpoint webhook: {why}");
                return;
            }
        };
        let req = notify::Request {
            body: serde_json::to_vec(cp).unwrap_or_default(),
            headers: Vec::new(),
            secrets: vec![url.clone()],
        };
        let http = self.http.clone();
        let seq = cp.seq;
        tokio::spawn(async move {
            let budget = notify::send::Budget {
                attempt_timeout: std::time::Duration::from_secs(5),
                max_attempts: 5,
                max_total: std::time::Duration::from_secs(60),
            };
            match notify::send::send(&http, &url, &req, &budget).await {
                (_, Ok(_)) => tracing::debug!(seq, "audit checkpoint sent"),
                (n, Err(why)) => {
                    tracing::error!(
                        seq,
                        "audit checkpoint webhook failed after {n} attempt(s): {why}"
                    )
                }
            }
        });
    }

    /// What detectors learned that should outlive this process (known log templates): a
    /// restarted medic must not report yesterday's normal as new.
    fn save_detector_state(&self) {
        for (name, bytes) in self.detectors.save_state() {
            if let Err(e) = self
                .store
                .kv_set(&format!("detector_state:{name}"), &hex::encode(bytes))
            {
                tracing::warn!("could not save {name} state: {e}");
            }
        }
    }

    fn restore_detector_state(&mut self) {
        let now = self.now();
        for name in self.detectors.names() {
            let key = format!("detector_state:{name}");
            let saved = match self.store.kv_get(&key) {
                Ok(Some(v)) => v,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("could not read {key}: {e}");
                    continue;
                }
            };
            let restored = hex::decode(saved.trim())
                .map_err(|e| format!("not hex: {e}"))
                .and_then(|b| self.detectors.restore_state(name, &b, now));
            match restored {
                Ok(()) => tracing::info!("restored {name} state from the store"),
                Err(e) => tracing::warn!("ignoring saved {name} state ({e}): starting fresh"),
            }
        }
    }

    fn now(&self) -> Ts {
        self.clock.now()
    }

    fn emit(&self, incident: &str, stage: Stage, text: impl Into<String>) {
        let ev = TimelineEvent {
            ts: self.now(),
            incident: incident.to_string(),
            stage,
            text: text.into(),
        };
        tracing::info!(incident = %ev.incident, stage = ev.stage.as_str(), "{}", ev.text);
        // Nobody listening is fine.
        let _ = self.timeline.send(ev);
    }

    fn audit(&self, ev: AuditEvent) -> Result<(), AgentError> {
        self.store.append_audit(self.now(), &ev)?;
        Ok(())
    }

    fn save(&self, id: &str) -> Result<(), AgentError> {
        if let Some(i) = self.incidents.get(id) {
            self.store.save_incident(i)?;
        }
        Ok(())
    }

    /// Picks up incidents a previous run left active.
    fn resume(&mut self) -> Result<(), AgentError> {
        for inc in self.store.active_incidents()? {
            let id = inc.id.clone();
            let state = inc.state;
            self.incidents.insert(id.clone(), inc);
            self.emit(
                &id,
                Stage::Resumed,
                format!("resuming incident in state {state}"),
            );
            if state == IncidentState::Verifying {
                self.restart_verification(&id);
            }
        }
        Ok(())
    }

    fn on_signal(&mut self, s: Signal) -> Result<(), AgentError> {
        if let SignalPayload::Topology { edges } = s.payload {
            let n = edges.len();
            if self.topology.observe(&s.source, s.ts, edges) {
                tracing::info!(source = %s.source, edges = n, "learned topology changed");
            }
            return Ok(());
        }
        if let SignalPayload::Change(c) = &s.payload {
            self.changes.push_back(c.clone());
            while self.changes.len() > MAX_CHANGES {
                self.changes.pop_front();
            }
        }
        let findings = self.detectors.observe(&s);
        for f in findings {
            self.on_finding(f)?;
        }
        Ok(())
    }

    /// Tests: make every reconcile step of incidents on `service` fail, as a store or
    /// platform error would.
    #[doc(hidden)]
    pub fn fail_steps_of(&mut self, service: &str) {
        self.fail_steps_of = Some(service.to_string());
    }

    async fn reconcile_checked(&mut self, id: &str) -> Result<reconcile::Next, AgentError> {
        if let Some(s) = &self.fail_steps_of
            && self
                .incidents
                .get(id)
                .is_some_and(|i| i.services.contains(s))
        {
            return Err(AgentError::Server(format!("injected step failure on {s}")));
        }
        self.reconcile(id).await
    }

    /// One incident's step failed: it waits (1 s, doubling, at most 5 min), the failure is
    /// logged and audited, and every other incident goes on.
    fn step_failed(&mut self, id: &str, now: Ts, e: &AgentError) {
        let failures = self.step_backoff.get(id).map_or(0, |(_, n)| *n) + 1;
        let wait_s = 2f64.powi(failures.min(20) as i32 - 1).min(STEP_RETRY_MAX_S);
        self.step_backoff
            .insert(id.to_string(), (now.plus_secs(wait_s), failures));
        let state = self
            .incidents
            .get(id)
            .map(|i| i.state.to_string())
            .unwrap_or_default();
        tracing::error!(incident = %id, %state, failures, "reconcile step failed, retrying in {wait_s} s: {e}");
        // Best effort: the store may be what failed.
        if let Err(audit_err) = self.audit(AuditEvent::StepFailed {
            incident: id.to_string(),
            state,
            error: e.to_string(),
            retry_in_s: wait_s,
        }) {
            tracing::error!(incident = %id, "could not audit the failed step: {audit_err}");
        }
    }

    /// `signals` is drained between incidents: with many incidents active, a tick takes a
    /// while, and an alert arriving meanwhile must not wait for all of them.
    async fn on_tick(&mut self, signals: &mut mpsc::Receiver<Signal>) -> Result<(), AgentError> {
        let now = self.now();
        if self.topology.expire(now) {
            tracing::warn!("a source's learned topology was not repeated for 10 minutes: dropped");
        }
        for f in self.detectors.evaluate(now) {
            survive("a finding", self.on_finding(f));
        }
        let active: Vec<String> = self
            .incidents
            .values()
            .filter(|i| !i.state.is_terminal())
            .map(|i| i.id.clone())
            .collect();
        for id in active {
            let waiting = |m: &HashMap<String, Ts>| m.get(&id).is_some_and(|at| now.0 < at.0);
            if self
                .step_backoff
                .get(&id)
                .is_some_and(|(at, _)| now.0 < at.0)
                || waiting(&self.wake_at)
            {
                continue;
            }
            match self.reconcile_checked(&id).await {
                Ok(next) => {
                    self.step_backoff.remove(&id);
                    match next {
                        reconcile::Next::Tick | reconcile::Next::Done => {
                            self.wake_at.remove(&id);
                        }
                        reconcile::Next::After(d) => {
                            self.wake_at
                                .insert(id.clone(), now.plus_secs(d.as_secs_f64()));
                        }
                        reconcile::Next::WaitForChange => {
                            self.wake_at.insert(
                                id.clone(),
                                now.plus_secs(reconcile::RESULT_WAIT.as_secs_f64()),
                            );
                        }
                    }
                }
                Err(e) => self.step_failed(&id, now, &e),
            }
            // Bounded, so a flood of signals cannot starve the reconcile loop either.
            for _ in 0..MAX_SIGNALS_BETWEEN_STEPS {
                let Ok(s) = signals.try_recv() else {
                    break;
                };
                survive("a signal", self.on_signal(s));
            }
        }
        self.incidents
            .retain(|_, i| !i.state.is_terminal() || now.0 - i.updated.0 < KEEP_CLOSED_MS);
        let window_ms = self.cfg.correlation.window.as_millis() as i64;
        while self
            .held
            .front()
            .is_some_and(|f| now.0 - f.ts.0 > window_ms)
        {
            if let Some(f) = self.held.pop_front() {
                tracing::debug!(
                    "dropping uncorroborated finding: {} {}",
                    f.service,
                    f.summary
                );
            }
        }
        Ok(())
    }

    fn on_finding(&mut self, f: Finding) -> Result<(), AgentError> {
        let views: Vec<IncidentView> = self
            .incidents
            .values()
            .map(|i| IncidentView {
                id: &i.id,
                services: &i.services,
                last_finding: i.updated,
                closed_at: i.state.is_terminal().then_some(i.updated),
                findings: &i.findings,
            })
            .collect();
        match self.correlator.assign(&f, &views, self.topology.graph()) {
            Assignment::Join(id) => {
                let Some(inc) = self.incidents.get_mut(&id) else {
                    return Ok(());
                };
                let terminal = inc.state.is_terminal();
                let text = format!("+ {} {}: {}", f.service, f.kind.as_str(), f.summary);
                // Aftermath of a closed incident: recorded, but it does not reopen anything
                // nor move the incident's clock.
                if terminal {
                    let keep = inc.updated;
                    inc.add_finding(f.clone());
                    inc.updated = keep;
                } else {
                    inc.add_finding(f.clone());
                }
                self.audit(AuditEvent::FindingAdded {
                    incident: id.clone(),
                    finding: f,
                })?;
                self.save(&id)?;
                if !terminal {
                    self.emit(&id, Stage::Correlated, text);
                }
            }
            Assignment::Open if is_weak(&f) => {
                if self.held.len() >= MAX_HELD {
                    self.held.pop_front();
                }
                self.held.push_back(f);
            }
            Assignment::Open => {
                let id = format!("inc-{}", &stable_id(&[&f.id, &f.ts.0.to_string()])[..8]);
                let text = format!("{} {}: {}", f.service, f.kind.as_str(), f.summary);
                let inc = Incident::new(id.clone(), f.clone());
                self.incidents.insert(id.clone(), inc);
                self.audit(AuditEvent::IncidentOpened {
                    incident: id.clone(),
                    finding: f,
                })?;
                self.save(&id)?;
                self.emit(&id, Stage::Detected, text);
                // Held weak findings that this incident now corroborates join it.
                let held: Vec<Finding> = std::mem::take(&mut self.held).into();
                for h in held {
                    let near = self.incidents.get(&id).is_some_and(|i| {
                        i.services.iter().any(|s| {
                            self.topology
                                .graph()
                                .distance(s, &h.service)
                                .is_some_and(|d| d <= self.cfg.correlation.max_hops)
                                || *s == h.service
                        })
                    });
                    if near {
                        self.on_finding(h)?;
                    } else {
                        self.held.push_back(h);
                    }
                }
            }
        }
        Ok(())
    }

    /// Services with a planned event in progress now.
    fn planned_services(&self, now: Ts) -> std::collections::BTreeSet<String> {
        self.changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Planned && c.relevant_at(now, 60.0))
            .map(|c| c.service.clone())
            .collect()
    }
}

/// Most signals handled between two incidents' reconcile steps within one tick.
const MAX_SIGNALS_BETWEEN_STEPS: usize = 256;

/// How often learned detector state is written to the store (and at shutdown).
const DETECTOR_STATE_SAVE_S: f64 = 60.0;

/// At most this many weak findings are held at once.
const MAX_HELD: usize = 256;

/// A finding too weak to open an incident by itself ([`FindingKind::is_weak`]): it joins
/// the incident that stronger symptoms open.
/// An error outside any one incident's step (a finding or result that could not be stored):
/// logged, and the agent goes on — it never stops for one record.
fn survive(what: &str, r: Result<(), AgentError>) {
    if let Err(e) = r {
        tracing::error!("handling {what} failed, continuing: {e}");
    }
}

fn is_weak(f: &Finding) -> bool {
    f.kind.is_weak()
}

/// A running agent: its sources, its loop, and the handles to watch and stop it.
pub struct Running {
    pub timeline: broadcast::Receiver<TimelineEvent>,
    pub stats: Arc<medic_signals::SourceStats>,
    /// Where the HTTP server listens, when `server.enabled` and started by [`start_async`].
    pub server_addr: Option<std::net::SocketAddr>,
    /// Where the OTLP gRPC receiver listens, when it was started by [`start_async`].
    pub otlp_grpc_addr: Option<std::net::SocketAddr>,
    shutdown: watch::Sender<bool>,
    join: tokio::task::JoinHandle<Result<(), AgentError>>,
    sources: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops sources and the loop; returns the loop's result.
    pub async fn stop(self) -> Result<(), AgentError> {
        let _ = self.shutdown.send(true);
        for s in self.sources {
            s.abort();
        }
        match self.join.await {
            Ok(r) => r,
            Err(e) => Err(AgentError::Http(format!(
                "agent task ended abnormally: {e}"
            ))),
        }
    }

    /// Waits for the loop to end by itself (an error), or forever.
    pub async fn wait(&mut self) -> Result<(), AgentError> {
        match (&mut self.join).await {
            Ok(r) => r,
            Err(e) => Err(AgentError::Http(format!(
                "agent task ended abnormally: {e}"
            ))),
        }
    }
}

/// Builds the actuators the config enables, behind the registry that routes each action to
/// the one for its target (none enabled: every action is refused, plainly).
pub async fn build_actuator(cfg: &Config) -> Result<Arc<dyn Actuator>, AgentError> {
    Ok(Arc::new(medic_act::Actuators::build(&cfg.actuators).await?))
}

/// Starts sources and the agent loop on the current tokio runtime. With `server.enabled`,
/// the HTTP server is started in the background (its bind error is logged, and
/// `server_addr` stays `None`): use [`start_async`] to wait for it and get its address.
pub async fn start(
    cfg: Config,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
) -> Result<Running, AgentError> {
    let parts = start_parts(cfg, store, clock).await?;
    if let Some(server) = parts.server {
        tokio::spawn(async move {
            match server.await {
                Ok(l) => tracing::info!(
                    "medic server listening on {} (OTLP gRPC: {:?})",
                    l.http,
                    l.otlp_grpc
                ),
                Err(e) => tracing::error!("medic server: {e}"),
            }
        });
    }
    Ok(parts.running)
}

/// [`start`], waiting for the HTTP server (when `server.enabled`) to be bound: a bind error
/// is returned, and `server_addr` is where it listens.
pub async fn start_async(
    cfg: Config,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
) -> Result<Running, AgentError> {
    let parts = start_parts(cfg, store, clock).await?;
    let mut running = parts.running;
    if let Some(server) = parts.server {
        match server.await {
            Ok(l) => {
                running.server_addr = Some(l.http);
                running.otlp_grpc_addr = l.otlp_grpc;
            }
            Err(e) => {
                let _ = running.stop().await;
                return Err(AgentError::Server(e.to_string()));
            }
        }
    }
    Ok(running)
}

type ServerFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<medic_server::Listening, medic_server::ServerError>>
            + Send,
    >,
>;

struct Parts {
    running: Running,
    server: Option<ServerFuture>,
}

async fn start_parts(
    cfg: Config,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
) -> Result<Parts, AgentError> {
    let actuator = build_actuator(&cfg).await?;
    let (tx, rx) = mpsc::channel(16_384);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let stats = Arc::new(medic_signals::SourceStats::default());
    // Log read positions live in the store, so a restarted medic neither loses nor repeats a line.
    let (load_from, save_to) = (store.clone(), store.clone());
    let checkpoints: Arc<dyn medic_signals::CheckpointStore> =
        Arc::new(medic_signals::checkpoint::FnCheckpointStore::new(
            move |source: &str| {
                load_from
                    .kv_get(&medic_signals::checkpoint::kv_key(source))
                    .ok()
                    .flatten()
            },
            move |source: &str, state: &str| {
                if let Err(e) = save_to.kv_set(&medic_signals::checkpoint::kv_key(source), state) {
                    tracing::warn!("could not save the read position of {source}: {e}");
                }
            },
        ));
    let sources = medic_signals::spawn_sources_with(
        &cfg.sources,
        &cfg.redaction,
        tx.clone(),
        shutdown_rx.clone(),
        stats.clone(),
        Some(checkpoints),
    )?;
    let server: Option<ServerFuture> = if cfg.server.enabled {
        medic_server::routes::alertmanager::set_service_labels(&cfg.server.alert_service_labels);
        let auth = medic_server::auth::Auth::from_config(&cfg.server.auth)
            .map_err(|e| AgentError::Server(format!("server tokens: {e}")))?;
        let state = medic_server::ServerState::new(tx, stats.clone())
            .with_config(&cfg.server)
            .with_auth(Arc::new(auth))
            .with_store(store.clone())
            .with_policies(cfg.policies.clone());
        let server_cfg = cfg.server.clone();
        let stop = shutdown_rx.clone();
        Some(Box::pin(async move {
            medic_server::serve_configured(&server_cfg, state, stop).await
        }))
    } else {
        drop(tx);
        None
    };
    let agent = Agent::new(cfg, store, actuator, clock)?;
    let timeline = agent.timeline();
    let join = tokio::spawn(agent.run(rx, shutdown_rx));
    Ok(Parts {
        running: Running {
            timeline,
            stats,
            server_addr: None,
            otlp_grpc_addr: None,
            shutdown,
            join,
            sources,
        },
        server,
    })
}
