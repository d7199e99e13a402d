//! The agent loop with fast timings, fed signals directly: detect → diagnose → decide → act →
//! verify, and act-fails → escalate to a webhook. The actuator and the webhook receiver are
//! test doubles (the real ones are a process supervisor, tested in medic-act and end to end,
//! and a chat/paging service, which cannot run here); the webhook double speaks plain HTTP
//! JSON POST as such services' incoming webhooks do.

use medic_act::{ActError, ActionReport, Actuator, BoxFuture};
use medic_agent::{Agent, Stage};
use medic_config::{EscalationTarget, Location, Policy};
use medic_core::{
    Action, ActionKind, Cause, IncidentState, Mode, ProcessEvent, ProcessEventKind, Signal,
    SignalPayload, SystemClock, Ts,
};
use medic_store::Store;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Records every action; fails them all when told to.
struct TestDoubleActuator {
    done: Mutex<Vec<(String, Action)>>,
    fail: bool,
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
        name: "oncall".into(),
        webhook,
        timeout: Duration::from_secs(2),
        location: Location::default(),
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
    let actuator = Arc::new(TestDoubleActuator {
        done: Mutex::new(Vec::new()),
        fail: false,
    });
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
    assert!(
        esc.payload.contains(&format!("oncall:http://{addr}/hook")),
        "{}",
        esc.payload
    );
}
