//! The runtime: wires the stages together. Signals feed the detectors; findings are correlated
//! into incidents; each active incident is reconciled on every tick (level-triggered, state
//! persisted after each step), so a restarted agent picks up exactly where it stopped. Actions
//! run in their own tasks with idempotency keys recorded *before* the actuator is called.

pub mod escalation;
mod failpoint;
mod reconcile;
pub mod timeline;

pub use timeline::{Stage, TimelineEvent};

use medic_act::Actuator;
use medic_config::Config;
use medic_core::{
    AuditEvent, ChangeEvent, ChangeKind, Clock, Finding, FindingKind, Incident, IncidentState,
    Signal, SignalPayload, Ts, stable_id,
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
}

/// How many change calendar entries to keep in memory for diagnosis.
const MAX_CHANGES: usize = 10_000;
/// Terminal incidents stay in memory this long (for aftermath correlation), then are dropped.
const KEEP_CLOSED_MS: i64 = 10 * 60 * 1000;

/// Messages from tasks the agent spawned (actions, escalation deliveries) back to its loop.
enum TaskResult {
    Action {
        incident: String,
        key: String,
        result: Result<medic_act::ActionReport, String>,
    },
    Delivered {
        incident: String,
        reason: String,
        delivered_to: Vec<String>,
        errors: Vec<String>,
    },
}

pub struct Agent {
    cfg: Config,
    store: Arc<Store>,
    actuator: Arc<dyn Actuator>,
    clock: Arc<dyn Clock>,
    detectors: Detectors,
    correlator: Correlator,
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
        Ok(Agent {
            detectors: Detectors::new(&cfg.detectors),
            correlator: Correlator::new(&cfg.correlation),
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
        let mut tick = tokio::time::interval(self.cfg.agent.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { break; }
                }
                Some(r) = results.recv() => self.on_task_result(r).await?,
                Some(s) = signals.recv() => self.on_signal(s)?,
                _ = tick.tick() => self.on_tick().await?,
            }
        }
        Ok(())
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

    async fn on_tick(&mut self) -> Result<(), AgentError> {
        let now = self.now();
        for f in self.detectors.evaluate(now) {
            self.on_finding(f)?;
        }
        let active: Vec<String> = self
            .incidents
            .values()
            .filter(|i| !i.state.is_terminal())
            .map(|i| i.id.clone())
            .collect();
        for id in active {
            self.reconcile(&id).await?;
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
                id: i.id.clone(),
                services: i.services.clone(),
                last_finding: i.updated,
                closed_at: i.state.is_terminal().then_some(i.updated),
            })
            .collect();
        match self.correlator.assign(&f, &views, &self.cfg.topology) {
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
                            self.cfg
                                .topology
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

/// At most this many weak findings are held at once.
const MAX_HELD: usize = 256;

/// A finding too weak to open an incident by itself: one error message never seen before
/// happens in healthy systems too (a rare code path); with other symptoms it is evidence.
fn is_weak(f: &Finding) -> bool {
    f.kind == FindingKind::NewErrorMessage
}

/// Used when no actuator is configured: every action is refused, plainly.
pub struct NoActuator;

impl Actuator for NoActuator {
    fn name(&self) -> &str {
        "none"
    }
    fn execute<'a>(
        &'a self,
        _key: &'a str,
        action: &'a medic_core::Action,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<medic_act::ActionReport, medic_act::ActError>>
                + Send
                + 'a,
        >,
    > {
        Box::pin(async move {
            Err(medic_act::ActError::Rejected(format!(
                "no actuator is configured, so {action} cannot run: add `actuators.local` to medic.yaml"
            )))
        })
    }
    fn replicas<'a>(
        &'a self,
        _service: &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<u32>, medic_act::ActError>> + Send + 'a>,
    > {
        Box::pin(async { Ok(None) })
    }
}

/// A running agent: its sources, its loop, and the handles to watch and stop it.
pub struct Running {
    pub timeline: broadcast::Receiver<TimelineEvent>,
    pub stats: Arc<medic_signals::SourceStats>,
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

/// Builds the actuator the config asks for.
pub fn build_actuator(cfg: &Config) -> Result<Arc<dyn Actuator>, AgentError> {
    Ok(match &cfg.actuators.local {
        Some(local) => Arc::new(medic_act::local::LocalActuator::new(local)?),
        None => Arc::new(NoActuator),
    })
}

/// Starts sources and the agent loop on the current tokio runtime.
pub fn start(cfg: Config, store: Arc<Store>, clock: Arc<dyn Clock>) -> Result<Running, AgentError> {
    let actuator = build_actuator(&cfg)?;
    let (tx, rx) = mpsc::channel(16_384);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let stats = Arc::new(medic_signals::SourceStats::default());
    let sources =
        medic_signals::spawn_sources(&cfg.sources, tx, shutdown_rx.clone(), stats.clone())?;
    let agent = Agent::new(cfg, store, actuator, clock)?;
    let timeline = agent.timeline();
    let join = tokio::spawn(agent.run(rx, shutdown_rx));
    Ok(Running {
        timeline,
        stats,
        shutdown,
        join,
        sources,
    })
}
