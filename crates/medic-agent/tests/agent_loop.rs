//! The agent loop with fast timings, fed signals directly: detect → diagnose → decide → act →
//! verify, and act-fails → escalate to a webhook. The actuator and the webhook receiver are
//! test doubles (the real ones are a process supervisor, tested in medic-act and end to end,
//! and a chat/paging service, which cannot run here); the webhook double speaks plain HTTP
//! JSON POST as such services' incoming webhooks do.

mod receivers;

use medic_act::{ActError, ActionReport, Actuator, BoxFuture, WorkloadHealth};
use medic_agent::{Agent, Stage};
use medic_config::{EscalationTarget, Policy};
use medic_core::{
    Action, ActionKind, Cause, Clock, IncidentState, Mode, Outcome, ProcessEvent, ProcessEventKind,
    Signal, SignalPayload, SystemClock, Ts, WorkloadKind, WorkloadRef,
};
use medic_store::Store;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Records every action; fails them all when told to.
struct TestDoubleActuator {
    done: Mutex<Vec<(String, Action)>>,
    fail: bool,
}

impl TestDoubleActuator {
    fn ok() -> TestDoubleActuator {
        TestDoubleActuator {
            done: Mutex::new(Vec::new()),
            fail: false,
        }
    }
}

impl Actuator for TestDoubleActuator {
    fn name(&self) -> &str {
        "test-double"
    }
    fn execute<'a>(
        &'a self,
        key: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<ActionReport, ActError>> {
        Box::pin(async move {
            if self.fail {
                return Err(ActError::Rejected(format!("test double refuses {action}")));
            }
            let mut done = self.done.lock().expect("lock");
            if done.iter().any(|(k, _)| k == key) {
                return Ok(ActionReport {
                    applied: false,
                    detail: "already executed".into(),
                });
            }
            done.push((key.to_string(), action.clone()));
            Ok(ActionReport {
                applied: true,
                detail: format!("did {action}"),
            })
        })
    }
    fn replicas<'a>(&'a self, _service: &'a str) -> BoxFuture<'a, Result<Option<u32>, ActError>> {
        Box::pin(async { Ok(Some(1)) })
    }
}

fn config(webhook: Option<String>) -> medic_config::Config {
    let mut cfg = medic_config::Config::default();
    cfg.agent.tick = Duration::from_millis(100);
    cfg.agent.diagnosis_settle = Duration::from_millis(300);
    cfg.detectors.restarts.clear_after = Duration::from_millis(300);
    cfg.topology.add_edge("catalog", "cache");
    cfg.policies.push(Policy {
        name: "restart-failed-dependency".into(),
        causes: vec![Cause::DependencyFailure],
        action: ActionKind::RestartWorkload,
        confidence_threshold: 0.5,
        mode: Mode::Auto,
        max_attempts: 1,
        verification_window: Duration::from_millis(500),
        escalation: Some("oncall".into()),
        ..Policy::default()
    });
    cfg.escalation.targets.push(EscalationTarget {
        timeout: Duration::from_secs(2),
        ..EscalationTarget::webhook("oncall", webhook)
    });
    cfg
}

fn process(kind: ProcessEventKind, reason: &str) -> Signal {
    Signal {
        ts: Ts::now(),
        source: "events".into(),
        service: Some("cache".into()),
        instance: Some("cache-0".into()),
        payload: SignalPayload::Process(ProcessEvent {
            kind,
            pid: 42,
            exit_code: None,
            signal: Some(6),
            reason: reason.into(),
            version: None,
            config_version: None,
        }),
    }
}

/// A running agent: fed through `tx`, stopped by `finish`.
struct Running {
    tx: mpsc::Sender<Signal>,
    stop: watch::Sender<bool>,
    run: tokio::task::JoinHandle<Result<(), medic_agent::AgentError>>,
}

fn spawn(agent: Agent) -> Running {
    let (tx, rx) = mpsc::channel(64);
    let (stop, stop_rx) = watch::channel(false);
    Running {
        tx,
        stop,
        run: tokio::spawn(agent.run(rx, stop_rx)),
    }
}

impl Running {
    async fn send(&self, s: Signal) {
        self.tx.send(s).await.expect("send");
    }

    async fn finish(self) {
        let _ = self.stop.send(true);
        self.run.await.expect("join").expect("agent");
    }
}

async fn wait_for(store: &Store, state: IncidentState, within: Duration) -> medic_core::Incident {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(i) = store
            .incidents()
            .expect("incidents")
            .into_iter()
            .find(|i| i.state == state)
        {
            return i;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no incident reached {state}: {:#?}",
            store.incidents()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_crashed_dependency_is_restarted_and_verified() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let actuator = Arc::new(TestDoubleActuator::ok());
    let agent = Agent::new(
        config(None),
        store.clone(),
        actuator.clone(),
        Arc::new(SystemClock),
    )
    .expect("agent");
    let mut timeline = agent.timeline();
    let (tx, rx) = mpsc::channel(64);
    let (stop, stop_rx) = watch::channel(false);
    let run = tokio::spawn(agent.run(rx, stop_rx));

    tx.send(process(ProcessEventKind::Exited, "Error"))
        .await
        .expect("send");
    let acting = wait_for(&store, IncidentState::Verifying, Duration::from_secs(5)).await;
    assert_eq!(
        acting
            .diagnosis
            .as_ref()
            .and_then(|d| d.top())
            .map(|h| h.cause),
        Some(Cause::DependencyFailure)
    );
    // The restarted process comes back: the symptom clears, verification passes.
    tx.send(process(ProcessEventKind::Started, ""))
        .await
        .expect("send");
    let done = wait_for(&store, IncidentState::Resolved, Duration::from_secs(5)).await;
    let _ = stop.send(true);
    run.await.expect("join").expect("agent");

    let actions = actuator.done.lock().expect("lock").clone();
    assert_eq!(actions.len(), 1);
    assert_eq!(
        actions[0].1,
        Action {
            kind: ActionKind::RestartWorkload,
            target: "cache".into(),
            replicas: None,
            workload: None,
            memory_limit_bytes: None,
        }
    );
    assert_eq!(done.executions.len(), 1);
    let report = store.verify_audit().expect("verify");
    assert!(report.broken.is_none());
    let kinds: Vec<String> = store
        .audit_records()
        .expect("records")
        .into_iter()
        .map(|r| r.kind)
        .collect();
    // The decision carries every guard's verdict.
    let decided = store
        .audit_records()
        .expect("records")
        .into_iter()
        .find(|r| r.kind == "decision_made")
        .expect("a decision");
    let payload: serde_json::Value = serde_json::from_str(&decided.payload).expect("json");
    let guards = payload["guards"].as_array().expect("guards");
    assert!(guards.len() >= 12, "{payload}");
    assert!(
        guards
            .iter()
            .any(|g| g["guard"] == "cooldown" && g["allowed"] == true),
        "{payload}"
    );
    for k in [
        "incident_opened",
        "diagnosis_made",
        "plan_proposed",
        "decision_made",
        "action_started",
        "action_executed",
        "verification_passed",
        "incident_resolved",
    ] {
        assert!(kinds.iter().any(|x| x == k), "missing {k} in {kinds:?}");
    }
    let mut stages = Vec::new();
    while let Ok(ev) = timeline.try_recv() {
        stages.push(ev.stage);
    }
    for s in [
        Stage::Detected,
        Stage::Diagnosed,
        Stage::Decided,
        Stage::Acted,
        Stage::Verified,
    ] {
        assert!(stages.contains(&s), "timeline lacks {s:?}: {stages:?}");
    }
}

#[tokio::test]
async fn a_failed_action_is_escalated_to_the_webhook_with_the_whole_story() {
    // Webhook receiver test double on loopback.
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().expect("lock").push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let store = Arc::new(Store::open_in_memory().expect("store"));
    let actuator = Arc::new(TestDoubleActuator {
        done: Mutex::new(Vec::new()),
        fail: true,
    });
    let cfg = config(Some(format!("http://{addr}/hook")));
    let agent = Agent::new(cfg, store.clone(), actuator, Arc::new(SystemClock)).expect("agent");
    let (tx, rx) = mpsc::channel(64);
    let (stop, stop_rx) = watch::channel(false);
    let run = tokio::spawn(agent.run(rx, stop_rx));
    tx.send(process(ProcessEventKind::Exited, "Error"))
        .await
        .expect("send");
    let escalated = wait_for(&store, IncidentState::Escalated, Duration::from_secs(5)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while received.lock().expect("lock").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "webhook not called");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The delivery is audited once it has been tried.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !store
        .audit_records()
        .expect("records")
        .iter()
        .any(|r| r.kind == "escalated")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "escalation not audited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    run.await.expect("join").expect("agent");
    server.abort();

    let body = received.lock().expect("lock")[0].clone();
    assert_eq!(body["incident"], escalated.id.as_str());
    assert!(
        body["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("test double refuses"),
        "{body:#}"
    );
    assert!(
        body["hypotheses"][0]
            .as_str()
            .unwrap_or_default()
            .starts_with("dependency_failure on cache"),
        "{body:#}"
    );
    assert!(!body["timeline"].as_array().expect("timeline").is_empty());
    let audited = store.audit_records().expect("records");
    let esc = audited
        .iter()
        .find(|r| r.kind == "escalated")
        .expect("escalated record");
    // Delivered, and recorded by the target's name: the URL (often a secret) never is.
    assert!(esc.payload.contains("oncall (webhook)"), "{}", esc.payload);
    assert!(
        audited.iter().all(|r| !r.payload.contains("/hook")),
        "a webhook URL in the audit"
    );
}

/// A Kubernetes-like actuator for the agent's verification: every service resolves to a
/// Deployment, every action succeeds, and `health` answers whatever the test scripted last.
struct ScriptedActuator {
    health: Mutex<Result<Option<WorkloadHealth>, String>>,
    asked: Mutex<Vec<WorkloadRef>>,
}

impl ScriptedActuator {
    fn new(health: Result<Option<WorkloadHealth>, String>) -> Arc<ScriptedActuator> {
        Arc::new(ScriptedActuator {
            health: Mutex::new(health),
            asked: Mutex::new(Vec::new()),
        })
    }
    fn script(&self, health: Result<Option<WorkloadHealth>, String>) {
        *self.health.lock().expect("lock") = health;
    }
    fn asked(&self) -> Vec<WorkloadRef> {
        self.asked.lock().expect("lock").clone()
    }
}

fn deployment(service: &str) -> WorkloadRef {
    WorkloadRef::kube(WorkloadKind::Deployment, Some("shop"), service)
}

fn health(settled: bool, detail: &str) -> Result<Option<WorkloadHealth>, String> {
    Ok(Some(WorkloadHealth {
        settled,
        detail: detail.into(),
    }))
}

impl Actuator for ScriptedActuator {
    fn name(&self) -> &str {
        "scripted"
    }
    fn execute<'a>(
        &'a self,
        _key: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<ActionReport, ActError>> {
        Box::pin(async move {
            Ok(ActionReport {
                applied: true,
                detail: format!("did {action}"),
            })
        })
    }
    fn replicas<'a>(&'a self, _service: &'a str) -> BoxFuture<'a, Result<Option<u32>, ActError>> {
        Box::pin(async { Ok(Some(1)) })
    }
    fn resolve<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkloadRef>, ActError>> {
        Box::pin(async move { Ok(Some(deployment(service))) })
    }
    fn health<'a>(
        &'a self,
        workload: &'a WorkloadRef,
    ) -> BoxFuture<'a, Result<Option<WorkloadHealth>, ActError>> {
        Box::pin(async move {
            self.asked.lock().expect("lock").push(workload.clone());
            self.health
                .lock()
                .expect("lock")
                .clone()
                .map_err(ActError::Unreachable)
        })
    }
}

/// Real time plus an offset the test can jump forward, to reach a verification deadline
/// (window × 3 + 30 s) without waiting for it.
#[derive(Default)]
struct JumpClock(AtomicI64);

impl Clock for JumpClock {
    fn now(&self) -> Ts {
        Ts(Ts::now().0 + self.0.load(Ordering::SeqCst))
    }
}

/// A running agent under test: its store, timeline, signal sender, stop switch and loop.
struct Harness {
    store: Arc<Store>,
    timeline: tokio::sync::broadcast::Receiver<medic_agent::TimelineEvent>,
    tx: mpsc::Sender<Signal>,
    stop: watch::Sender<bool>,
    run: tokio::task::JoinHandle<Result<(), medic_agent::AgentError>>,
}

impl Harness {
    /// Starts the agent, crashes `cache`, waits for the restart to be verifying and brings
    /// the process back, so that the symptom clears.
    async fn crashed_and_back(actuator: Arc<ScriptedActuator>, clock: Arc<dyn Clock>) -> Harness {
        let store = Arc::new(Store::open_in_memory().expect("store"));
        let agent = Agent::new(config(None), store.clone(), actuator, clock).expect("agent");
        let timeline = agent.timeline();
        let (tx, rx) = mpsc::channel(64);
        let (stop, stop_rx) = watch::channel(false);
        let run = tokio::spawn(agent.run(rx, stop_rx));
        tx.send(process(ProcessEventKind::Exited, "Error"))
            .await
            .expect("send");
        wait_for(&store, IncidentState::Verifying, Duration::from_secs(5)).await;
        tx.send(process(ProcessEventKind::Started, ""))
            .await
            .expect("send");
        Harness {
            store,
            timeline,
            tx,
            stop,
            run,
        }
    }

    async fn stop(mut self) -> Vec<medic_agent::TimelineEvent> {
        let _ = self.stop.send(true);
        drop(self.tx);
        self.run.await.expect("join").expect("agent");
        let mut events = Vec::new();
        while let Ok(ev) = self.timeline.try_recv() {
            events.push(ev);
        }
        events
    }

    fn audit_payload(&self, kind: &str) -> String {
        self.store
            .audit_records()
            .expect("records")
            .into_iter()
            .find(|r| r.kind == kind)
            .map(|r| r.payload)
            .unwrap_or_else(|| panic!("no {kind} record"))
    }
}

#[tokio::test]
async fn verification_waits_for_the_rollout_to_settle() {
    let actuator = ScriptedActuator::new(health(false, "1/2 updated, 1/2 available"));
    let h = Harness::crashed_and_back(actuator.clone(), Arc::new(SystemClock)).await;

    // The symptom is clear, but the rollout is not: four windows later, still verifying.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let inc = h.store.incidents().expect("incidents").remove(0);
    assert_eq!(inc.state, IncidentState::Verifying, "{inc:#?}");
    let asked = actuator.asked();
    assert!(asked.len() >= 3, "health asked {} times", asked.len());
    // About once a tick (100 ms) over those 2 s, never more, and about the action's workload.
    assert!(asked.len() <= 30, "health asked {} times", asked.len());
    assert!(asked.iter().all(|w| *w == deployment("cache")), "{asked:?}");

    let settled_at = Ts::now();
    actuator.script(health(true, "2/2 updated, 2/2 available"));
    let done = wait_for(&h.store, IncidentState::Resolved, Duration::from_secs(5)).await;
    // The clean window is measured from when the rollout settled.
    let Some(Outcome::Healed { healthy_since, .. }) = done.outcome else {
        panic!("not healed: {done:#?}");
    };
    assert!(
        healthy_since >= settled_at,
        "{healthy_since} < {settled_at}"
    );
    let passed = h.audit_payload("verification_passed");
    assert!(
        passed.contains("rollout settled (2/2 updated, 2/2 available)"),
        "{passed}"
    );
    let events = h.stop().await;
    let verified = events
        .iter()
        .find(|e| e.stage == Stage::Verified)
        .expect("verified line");
    assert!(
        verified.text.contains("rollout settled (2/2 updated"),
        "{}",
        verified.text
    );
}

#[tokio::test]
async fn a_rollout_that_never_settles_is_not_healed_with_its_detail() {
    let actuator = ScriptedActuator::new(health(false, "0/2 available, 3 restarts"));
    let clock = Arc::new(JumpClock::default());
    let h = Harness::crashed_and_back(actuator.clone(), clock.clone()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!actuator.asked().is_empty());
    // Past the deadline (0.5 s window × 3 + 30 s).
    clock.0.store(40_000, Ordering::SeqCst);
    let escalated = wait_for(&h.store, IncidentState::Escalated, Duration::from_secs(5)).await;
    let Some(Outcome::NotHealed { reason }) = &escalated.outcome else {
        panic!("expected not healed: {escalated:#?}");
    };
    assert!(
        reason.contains("rollout not settled (0/2 available, 3 restarts)"),
        "{reason}"
    );
    let failed = h.audit_payload("verification_failed");
    assert!(
        failed.contains(r#""rollout":"rollout not settled (0/2 available, 3 restarts)""#),
        "{failed}"
    );
    let events = h.stop().await;
    assert!(
        events
            .iter()
            .any(|e| e.stage == Stage::NotHealed && e.text.contains("3 restarts")),
        "{events:#?}"
    );
}

#[tokio::test]
async fn unreadable_rollout_health_does_not_block_and_is_recorded() {
    let actuator = ScriptedActuator::new(Err("connection refused".into()));
    let h = Harness::crashed_and_back(actuator.clone(), Arc::new(SystemClock)).await;
    wait_for(&h.store, IncidentState::Resolved, Duration::from_secs(5)).await;
    let passed = h.audit_payload("verification_passed");
    assert!(
        passed.contains("rollout health unreadable") && passed.contains("connection refused"),
        "{passed}"
    );
    h.stop().await;
}

/// One incident whose every step fails (as a store or platform error would) backs off and is
/// audited; the agent keeps running and heals another incident meanwhile.
#[tokio::test]
async fn a_failing_incident_backs_off_and_never_stops_the_agent() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let actuator = Arc::new(TestDoubleActuator::ok());
    let mut agent = Agent::new(
        config(None),
        store.clone(),
        actuator.clone(),
        Arc::new(SystemClock),
    )
    .expect("agent");
    agent.fail_steps_of("payment");
    let running = spawn(agent);

    let mut broken = process(ProcessEventKind::Exited, "Error");
    broken.service = Some("payment".into());
    broken.instance = Some("payment-0".into());
    running.send(broken).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The healthy path still works while `payment` keeps failing.
    running
        .send(process(ProcessEventKind::Exited, "Error"))
        .await;
    wait_for(&store, IncidentState::Verifying, Duration::from_secs(5)).await;
    running.send(process(ProcessEventKind::Started, "")).await;
    let healed = wait_for(&store, IncidentState::Resolved, Duration::from_secs(5)).await;
    assert!(healed.services.contains("cache"));
    assert!(!running.run.is_finished(), "the agent stopped");
    running.finish().await;

    let failed: Vec<serde_json::Value> = store
        .audit_records()
        .expect("records")
        .into_iter()
        .filter(|r| r.kind == "step_failed")
        .map(|r| serde_json::from_str(&r.payload).expect("json"))
        .collect();
    // Retried after 1 s, then 2 s, … not on every 100 ms tick.
    assert!((2..=4).contains(&failed.len()), "{failed:#?}");
    let waits: Vec<f64> = failed
        .iter()
        .map(|v| v["retry_in_s"].as_f64().expect("retry_in_s"))
        .collect();
    assert_eq!(waits[..2], [1.0, 2.0], "{failed:#?}");
    assert!(
        failed[0]["error"]
            .as_str()
            .expect("error")
            .contains("injected step failure on payment")
    );
    let stuck = store
        .incidents()
        .expect("incidents")
        .into_iter()
        .find(|i| i.services.contains("payment"))
        .expect("payment's incident");
    assert_eq!(stuck.state, IncidentState::Open, "{stuck:#?}");
    assert!(store.verify_audit().expect("verify").broken.is_none());
}

/// With `store.audit_signing`, the agent signs the audit head as it moves and at shutdown.
#[tokio::test]
async fn the_agent_signs_its_audit_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("audit.key");
    medic_store::checkpoint::SigningKey::generate(&key).expect("key");
    let checkpoints = dir.path().join("checkpoints.jsonl");
    // The first delivery fails: retried, the checkpoint still arrives.
    let hook = receivers::scripted(vec![(503, None), (200, None)]).await;
    let mut cfg = config(None);
    cfg.store.audit_signing = Some(medic_config::AuditSigning {
        key: key.clone(),
        checkpoints: checkpoints.clone(),
        every: Duration::from_millis(200),
        webhook: Some(medic_config::SecretValue::Plain(hook.url.clone())),
    });
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let actuator = Arc::new(TestDoubleActuator::ok());
    let agent = Agent::new(cfg, store.clone(), actuator, Arc::new(SystemClock)).expect("agent");
    let running = spawn(agent);
    running
        .send(process(ProcessEventKind::Exited, "Error"))
        .await;
    wait_for(&store, IncidentState::Verifying, Duration::from_secs(5)).await;
    running.finish().await;
    let public =
        medic_store::checkpoint::read_public_key(&medic_store::checkpoint::public_path(&key))
            .expect("public key");
    let report = store
        .verify_checkpoints(&public, &checkpoints)
        .expect("verify");
    let head = store.audit_records().expect("records").len() as u64;
    assert_eq!(
        (report.broken.clone(), report.last_seq),
        (None, head),
        "signed up to the end"
    );
    assert!(
        report.checked >= 2,
        "signed as it went, not only at the end: {report:?}"
    );
    // Each checkpoint also went to the webhook, as the line in the file, the first one
    // after a retry.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&checkpoints)
        .expect("file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let sent = hook
        .wait_accepted(lines.len(), Duration::from_secs(10))
        .await;
    for line in &lines {
        assert!(sent.contains(line), "{sent:?} lacks {line}");
    }
    assert!(
        hook.received().len() > lines.len(),
        "the 503 was not retried"
    );
    // A key that cannot be read stops the agent at start, saying why.
    let mut bad = config(None);
    bad.store.audit_signing = Some(medic_config::AuditSigning {
        key: dir.path().join("missing.key"),
        checkpoints,
        every: Duration::from_secs(60),
        webhook: None,
    });
    let e = Agent::new(
        bad,
        Arc::new(Store::open_in_memory().expect("store")),
        Arc::new(TestDoubleActuator::ok()),
        Arc::new(SystemClock),
    )
    .err()
    .expect("refused");
    assert!(e.to_string().contains("missing.key"), "{e}");
}

/// An agent running `cfg` (a policy in approve mode) with a crashed dependency waiting for
/// approval.
async fn awaiting_approval(
    cfg: medic_config::Config,
) -> (
    Arc<Store>,
    Arc<TestDoubleActuator>,
    Running,
    medic_core::Incident,
) {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let actuator = Arc::new(TestDoubleActuator::ok());
    let agent =
        Agent::new(cfg, store.clone(), actuator.clone(), Arc::new(SystemClock)).expect("agent");
    let running = spawn(agent);
    running
        .send(process(ProcessEventKind::Exited, "Error"))
        .await;
    let waiting = wait_for(
        &store,
        IncidentState::AwaitingApproval,
        Duration::from_secs(5),
    )
    .await;
    (store, actuator, running, waiting)
}

/// Alice's approval, as the API would record it.
fn approval(incident: &str) -> medic_core::Approval {
    medic_core::Approval {
        incident: incident.to_string(),
        approved: true,
        by: "alice".into(),
        role: "approver".into(),
        reason: "restart is safe".into(),
        at: Ts::now(),
    }
}

fn approve(store: &Store, incident: &str) {
    assert!(store.record_approval(&approval(incident)).expect("approve"));
}

/// The kill switch: while paused, nothing acts (the decision says who paused and why), and an
/// approval given meanwhile waits for the resume instead of being dropped.
#[tokio::test]
async fn pause_stops_actions_and_queues_approvals_until_resume() {
    let pause = medic_core::Pause {
        by: "carol".into(),
        reason: "database failover in progress".into(),
        at: Ts::now(),
    };
    // Auto mode while paused: denied, with the reason.
    let store = Arc::new(Store::open_in_memory().expect("store"));
    store.set_pause(Some(&pause)).expect("pause");
    let actuator = Arc::new(TestDoubleActuator::ok());
    let agent = Agent::new(
        config(None),
        store.clone(),
        actuator.clone(),
        Arc::new(SystemClock),
    )
    .expect("agent");
    let running = spawn(agent);
    running
        .send(process(ProcessEventKind::Exited, "Error"))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let denied = loop {
        let d = store
            .incidents()
            .expect("incidents")
            .into_iter()
            .find_map(|i| i.decision);
        if let Some(d) = d {
            break d;
        }
        assert!(tokio::time::Instant::now() < deadline, "no decision");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        matches!(&denied, medic_core::Decision::Denied(r) if r.contains("paused by carol") && r.contains("failover")),
        "{denied:?}"
    );
    running.finish().await;
    assert!(actuator.done.lock().expect("lock").is_empty());

    // Approve mode: approved while paused → queued; resumed → executed.
    let mut cfg = config(None);
    cfg.policies[0].mode = Mode::Approve;
    let (store, actuator, running, waiting) = awaiting_approval(cfg).await;
    store.set_pause(Some(&pause)).expect("pause");
    approve(&store, &waiting.id);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        actuator.done.lock().expect("lock").is_empty(),
        "acted while paused"
    );
    assert_eq!(
        store
            .incident(&waiting.id)
            .expect("read")
            .expect("incident")
            .state,
        IncidentState::AwaitingApproval
    );
    store.set_pause(None).expect("resume");
    wait_for(&store, IncidentState::Verifying, Duration::from_secs(5)).await;
    running.finish().await;
    assert_eq!(actuator.done.lock().expect("lock").len(), 1);
}

/// A rejection closes the incident and resolves its page, without an acknowledgement
/// racing the resolve.
#[tokio::test]
async fn a_rejected_approval_resolves_the_page() {
    let pd = receivers::PagerDutyTestDouble::start().await;
    let mut cfg = config(None);
    cfg.policies[0].mode = Mode::Approve;
    cfg.escalation.targets[0] = pagerduty_target(&pd.url);
    let (store, actuator, running, waiting) = awaiting_approval(cfg).await;
    pd.wait_accepted(1, Duration::from_secs(5)).await;
    let answer = medic_core::Approval {
        approved: false,
        by: "bob".into(),
        reason: "not during the sale".into(),
        ..approval(&waiting.id)
    };
    assert!(store.record_approval(&answer).expect("reject"));
    wait_for(&store, IncidentState::Closed, Duration::from_secs(5)).await;
    let got = pd.wait_accepted(2, Duration::from_secs(5)).await;
    running.finish().await;
    let actions: Vec<&str> = got
        .iter()
        .map(|v| v["event_action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(actions, ["trigger", "resolve"]);
    assert_eq!(got[1]["dedup_key"], format!("medic-{}", waiting.id));
    assert!(actuator.done.lock().expect("lock").is_empty());
}

const ROUTING_KEY: &str = "R0UT1NGKEY0123456789abcdefABCDEF";

/// The `oncall` target as a PagerDuty integration at `url`.
fn pagerduty_target(url: &str) -> EscalationTarget {
    EscalationTarget {
        kind: medic_config::NotifyKind::PagerDuty,
        endpoint: Some(medic_config::SecretValue::Plain(url.to_string())),
        routing_key: Some(medic_config::SecretValue::Plain(ROUTING_KEY.into())),
        ..EscalationTarget::webhook("oncall", None)
    }
}

/// The whole conversation with PagerDuty through a running agent: the approval request
/// triggers the alert, the approver's answer acknowledges it, verified healing resolves it,
/// all under one dedup key; the audit records each delivery by target name and kind, never
/// the routing key or the URL.
#[tokio::test]
async fn an_approval_is_paged_acknowledged_and_resolved() {
    let pd = receivers::PagerDutyTestDouble::start().await;
    let mut cfg = config(None);
    cfg.policies[0].mode = Mode::Approve;
    cfg.escalation.public_url = Some("https://medic.example.com".into());
    cfg.escalation.targets[0] = pagerduty_target(&pd.url);
    let (store, _, running, waiting) = awaiting_approval(cfg).await;
    let triggered = pd.wait_accepted(1, Duration::from_secs(5)).await;
    assert_eq!(triggered[0]["event_action"], "trigger");
    assert_eq!(triggered[0]["payload"]["severity"], "warning");
    approve(&store, &waiting.id);
    wait_for(&store, IncidentState::Verifying, Duration::from_secs(5)).await;
    running.send(process(ProcessEventKind::Started, "")).await;
    wait_for(&store, IncidentState::Resolved, Duration::from_secs(5)).await;
    let got = pd.wait_accepted(3, Duration::from_secs(5)).await;
    let actions: Vec<&str> = got
        .iter()
        .map(|v| v["event_action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
    let dedup = format!("medic-{}", waiting.id);
    assert!(
        got.iter().all(|v| v["dedup_key"] == dedup.as_str()),
        "{got:#?}"
    );
    // The deliveries' audit records are written when each is over.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let notified = loop {
        let n: Vec<_> = store
            .audit_records()
            .expect("records")
            .into_iter()
            .filter(|r| r.kind == "notified")
            .collect();
        if n.len() == 3 || tokio::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    running.finish().await;
    assert_eq!(notified.len(), 3, "{notified:#?}");
    for (r, notice) in notified
        .iter()
        .zip(["approval_requested", "approval_answered", "resolved"])
    {
        let v: serde_json::Value = serde_json::from_str(&r.payload).expect("payload");
        assert_eq!(v["target"], "oncall");
        assert_eq!(v["kind"], "pagerduty");
        assert_eq!(v["notice"], notice);
        assert_eq!(v["delivered"], true);
        assert_eq!(v["attempts"], 1);
    }
    let audit = serde_json::to_string(&store.audit_records().expect("records")).expect("json");
    assert!(!audit.contains(ROUTING_KEY), "the routing key in the audit");
    assert!(!audit.contains(&pd.url), "the receiver's URL in the audit");
}

/// Nobody answers: the policy's `on_timeout` applies — reject closes the incident and
/// nothing runs; escalate hands it to people.
#[tokio::test]
async fn an_unanswered_approval_applies_on_timeout() {
    for (on_timeout, ends) in [
        (medic_core::OnTimeout::Reject, IncidentState::Closed),
        (medic_core::OnTimeout::Escalate, IncidentState::Escalated),
    ] {
        let mut cfg = config(None);
        cfg.policies[0].mode = Mode::Approve;
        cfg.policies[0].approval = Some(medic_core::ApprovalRule {
            approvers: None,
            timeout_s: 0.5,
            on_timeout,
        });
        let (store, actuator, running, waiting) = awaiting_approval(cfg).await;
        let done = wait_for(&store, ends, Duration::from_secs(5)).await;
        running.finish().await;
        assert_eq!(done.id, waiting.id);
        let why = done.closing_reason.unwrap_or_default();
        assert!(why.contains("approval timed out after 0.5s"), "{why}");
        assert!(actuator.done.lock().expect("lock").is_empty());
    }
}

/// Earned autonomy: a policy written `mode: auto` with `autonomy: { start: approve,
/// promote_after: 1 }` first asks a person; once that action verifies healed, the next
/// incident of the same cause × action × target runs without asking.
#[tokio::test]
async fn autonomy_is_earned_by_a_verified_success() {
    let mut cfg = config(None);
    cfg.correlation.quiet_after_close = Duration::from_millis(100);
    cfg.policies[0].cooldown = Duration::ZERO;
    cfg.policies[0].autonomy = Some(medic_config::Autonomy {
        start: Mode::Approve,
        promote_after: 1,
    });
    let (store, actuator, running, first) = awaiting_approval(cfg).await;
    let plan = first.plan.clone().expect("plan");
    assert_eq!(plan.mode, Mode::Approve);
    assert!(
        plan.mode_reason.as_deref().unwrap_or("").contains("0 of 1"),
        "{plan:?}"
    );
    approve(&store, &first.id);
    wait_for(&store, IncidentState::Verifying, Duration::from_secs(5)).await;
    // The restarted process comes back: verified healed.
    running.send(process(ProcessEventKind::Started, "")).await;
    let healed = wait_for(&store, IncidentState::Resolved, Duration::from_secs(10)).await;
    assert!(
        matches!(healed.outcome, Some(Outcome::Healed { .. })),
        "{healed:?}"
    );

    running
        .send(process(ProcessEventKind::Exited, "Error"))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let second = loop {
        let found = store
            .incidents()
            .expect("incidents")
            .into_iter()
            .find(|i| i.id != first.id && !i.executions.is_empty());
        if let Some(i) = found {
            break i;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no second action: {:#?}",
            store.incidents()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    running.finish().await;
    let plan = second.plan.expect("plan");
    assert_eq!(plan.mode, Mode::Auto);
    assert!(
        plan.mode_reason
            .as_deref()
            .unwrap_or("")
            .starts_with("promoted to auto"),
        "{plan:?}"
    );
    assert_eq!(store.approval(&second.id).expect("read"), None);
    assert_eq!(actuator.done.lock().expect("lock").len(), 2);
}

/// A deploy of `api` followed by failing requests: the agent scales it out (the policy undoes
/// that if verification fails). The feeder scrapes a request counter every 50 ms, stamped by
/// the agent's clock, with whatever error share the test sets.
fn metrics_config(settle: Duration) -> medic_config::Config {
    let mut cfg = medic_config::Config::default();
    cfg.agent.tick = Duration::from_millis(100);
    cfg.agent.diagnosis_settle = settle;
    cfg.detectors.error_rate.window = Duration::from_millis(200);
    cfg.policies.push(Policy {
        name: "scale-out-bad-deployment".into(),
        causes: vec![Cause::BadDeployment],
        action: ActionKind::ScaleWorkload,
        confidence_threshold: 0.5,
        mode: Mode::Auto,
        max_attempts: 1,
        verification_window: Duration::from_secs(3),
        rollback_if_failed: true,
        escalation: Some("oncall".into()),
        ..Policy::default()
    });
    cfg.escalation.targets.push(EscalationTarget {
        timeout: Duration::from_secs(2),
        ..EscalationTarget::webhook("oncall", None)
    });
    cfg
}

/// Scrapes of `api`'s request counter until dropped; the error share is set through
/// `errors` (per mille; negative: no traffic at all).
struct Feeder {
    errors: Arc<AtomicI64>,
    task: tokio::task::JoinHandle<()>,
}

impl Feeder {
    fn start(tx: mpsc::Sender<Signal>, clock: Arc<dyn Clock>) -> Feeder {
        let errors = Arc::new(AtomicI64::new(0));
        let share = errors.clone();
        let task = tokio::spawn(async move {
            let (mut ok, mut err, mut n) = (0.0, 0.0, 0u64);
            loop {
                // 20 requests a scrape; the errors spread evenly over them by a counter, so
                // the share is exact over a window and varies a little between scrapes.
                let per_mille = share.load(Ordering::SeqCst) as f64;
                if per_mille < 0.0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                for _ in 0..20 {
                    n += 1;
                    if (n * 7919 % 1000) as f64 * 1.0 < per_mille {
                        err += 1.0;
                    } else {
                        ok += 1.0;
                    }
                }
                let sample = |code: &str, value: f64| medic_core::MetricSample {
                    name: "http_requests_total".into(),
                    labels: [("code".to_string(), code.to_string())]
                        .into_iter()
                        .collect(),
                    value,
                };
                let s = Signal {
                    ts: clock.now(),
                    source: "metrics".into(),
                    service: Some("api".into()),
                    instance: Some("api-0".into()),
                    payload: SignalPayload::Metrics {
                        samples: vec![sample("200", ok), sample("500", err)],
                    },
                };
                if tx.send(s).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Feeder { errors, task }
    }

    fn set_error_share(&self, share: f64) {
        self.errors.store((share * 1000.0) as i64, Ordering::SeqCst);
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Healthy traffic, a deploy, 40 % errors until the scale-out is verifying; then `after`.
/// `settle`: the diagnosis settle time, which is about how long the anomaly is sampled
/// before the action (3 s: ~30 samples).
async fn bad_deploy(
    after: f64,
    settle: Duration,
    clock: Arc<JumpClock>,
) -> (Arc<Store>, Arc<TestDoubleActuator>, Running, Feeder) {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let actuator = Arc::new(TestDoubleActuator::ok());
    let agent = Agent::new(
        metrics_config(settle),
        store.clone(),
        actuator.clone(),
        clock.clone(),
    )
    .expect("agent");
    let running = spawn(agent);
    let feeder = Feeder::start(running.tx.clone(), clock.clone());
    // Warm the error-ratio baseline up on healthy traffic.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    running
        .send(Signal {
            ts: clock.now(),
            source: "changes".into(),
            service: None,
            instance: None,
            payload: SignalPayload::Change(medic_core::ChangeEvent {
                kind: medic_core::ChangeKind::Deploy,
                service: "api".into(),
                start: clock.now(),
                end: None,
                from: Some("v1".into()),
                to: Some("v2".into()),
                description: String::new(),
                author: None,
            }),
        })
        .await;
    feeder.set_error_share(0.4);
    wait_for(&store, IncidentState::Verifying, Duration::from_secs(10)).await;
    feeder.set_error_share(after);
    (store, actuator, running, feeder)
}

/// The incident's stored verification, checked to carry `verdict`, and the kinds of its
/// audit records.
fn verdict_of(
    store: &Store,
    incident: &str,
    verdict: medic_core::Verdict,
) -> (medic_core::VerificationRecord, Vec<String>) {
    let record = store
        .verification(incident)
        .expect("store")
        .expect("a verification record");
    assert_eq!(record.verdict, verdict, "{record:#?}");
    let kinds = store
        .audit_records()
        .expect("records")
        .into_iter()
        .map(|r| r.kind)
        .collect();
    (record, kinds)
}

#[tokio::test]
async fn an_action_that_helps_is_healed_with_its_before_after_record() {
    let clock = Arc::new(JumpClock::default());
    let (store, actuator, running, feeder) = bad_deploy(0.0, Duration::from_secs(3), clock).await;
    let done = wait_for(&store, IncidentState::Resolved, Duration::from_secs(10)).await;
    drop(feeder);
    running.finish().await;
    assert_eq!(actuator.done.lock().expect("lock").len(), 1);
    assert!(
        matches!(done.outcome, Some(Outcome::Healed { .. })),
        "{done:#?}"
    );
    let (record, kinds) = verdict_of(&store, &done.id, medic_core::Verdict::Healed);
    assert!(
        kinds.iter().any(|k| k == "verification_passed"),
        "{kinds:?}"
    );
    assert_eq!(record.attempt, 1);
    let errors = record
        .symptoms
        .iter()
        .find(|c| c.symptom.kind == medic_core::FindingKind::ErrorRate)
        .unwrap_or_else(|| panic!("no error-rate check: {record:#?}"));
    // Measured on both sides, and significantly better.
    assert_eq!(
        errors.result,
        medic_core::SymptomResult::Improved,
        "{record:#?}"
    );
    assert_eq!(errors.metric.as_deref(), Some("error_ratio"));
    assert!(
        errors.test.n_before >= 10 && errors.test.n_after >= 10,
        "{errors:#?}"
    );
    assert!(
        errors.test.before_median.is_some_and(|m| m > 0.2),
        "{errors:#?}"
    );
    assert_eq!(errors.test.after_median, Some(0.0), "{errors:#?}");
    assert!(
        errors.test.p_better.is_some_and(|p| p < 0.05),
        "{errors:#?}"
    );
    // The audit carries the same record.
    let passed = store
        .audit_records()
        .expect("records")
        .into_iter()
        .find(|r| r.kind == "verification_passed")
        .expect("verification_passed");
    assert!(
        passed.payload.contains(r#""verdict":"healed""#),
        "{}",
        passed.payload
    );
    assert!(
        passed.payload.contains(r#""result":"improved""#),
        "{}",
        passed.payload
    );
}

#[tokio::test]
async fn an_action_that_does_not_help_is_not_healed_rolled_back_and_escalated() {
    let clock = Arc::new(JumpClock::default());
    let (store, actuator, running, feeder) =
        bad_deploy(0.4, Duration::from_secs(3), clock.clone()).await;
    // Watched for a while, still failing; then past the deadline (3 s window × 3 + 30 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    clock.0.store(45_000, Ordering::SeqCst);
    let escalated = wait_for(&store, IncidentState::Escalated, Duration::from_secs(10)).await;
    // The undo (scale back) runs after the escalation.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while actuator.done.lock().expect("lock").len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no rollback ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(feeder);
    running.finish().await;
    let actions: Vec<Action> = actuator
        .done
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, a)| a.clone())
        .collect();
    assert_eq!(actions[0].kind, ActionKind::ScaleWorkload);
    assert_eq!(actions[0].replicas, Some(2));
    assert_eq!(actions[1].kind, ActionKind::ScaleWorkload);
    assert_eq!(actions[1].replicas, Some(1), "the undo scales back");
    assert!(
        matches!(&escalated.outcome, Some(Outcome::NotHealed { reason }) if reason.contains("still anomalous: api/error_rate")),
        "{escalated:#?}"
    );
    let (record, kinds) = verdict_of(&store, &escalated.id, medic_core::Verdict::NotHealed);
    let errors = &record.symptoms[0];
    assert_eq!(errors.symptom.kind, medic_core::FindingKind::ErrorRate);
    // The metric did not move: no improvement on record either.
    assert_ne!(
        errors.result,
        medic_core::SymptomResult::Improved,
        "{record:#?}"
    );
    assert!(errors.test.n_after >= 5, "{errors:#?}");
    for k in ["verification_failed", "rolled_back"] {
        assert!(kinds.iter().any(|x| x == k), "missing {k} in {kinds:?}");
    }
}

#[tokio::test]
async fn too_little_data_and_a_gappy_window_are_inconclusive_and_not_rolled_back() {
    // Acted on within 0.1 s of detection: a few samples before; afterwards the errors
    // are gone but the traffic stops for a while, so the window has rounds without data.
    let clock = Arc::new(JumpClock::default());
    let (store, actuator, running, feeder) =
        bad_deploy(0.0, Duration::from_millis(100), clock.clone()).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    feeder.set_error_share(-1.0);
    tokio::time::sleep(Duration::from_millis(700)).await;
    feeder.set_error_share(0.0);
    let escalated = wait_for(&store, IncidentState::Escalated, Duration::from_secs(15)).await;
    // Give a wrong rollback the time to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(feeder);
    running.finish().await;
    assert_eq!(actuator.done.lock().expect("lock").len(), 1, "rolled back?");
    assert!(
        matches!(&escalated.outcome, Some(Outcome::Inconclusive { reason }) if reason.contains("not shown to have helped")),
        "{escalated:#?}"
    );
    let (record, kinds) = verdict_of(&store, &escalated.id, medic_core::Verdict::Inconclusive);
    let errors = &record.symptoms[0];
    assert_eq!(
        errors.result,
        medic_core::SymptomResult::TooFewSamples,
        "{record:#?}"
    );
    assert!(!errors.window_strong, "{record:#?}");
    assert!(errors.test.n_before < 5, "{record:#?}");
    assert!(
        kinds.iter().any(|k| k == "verification_inconclusive"),
        "{kinds:?}"
    );
    assert!(!kinds.iter().any(|k| k == "rolled_back"), "{kinds:?}");
}
