//! `/api/v1` over real HTTP with a real store: who may read, approve and pause; answers are
//! recorded with the token's name, role and reason, and audited; bad input gets one error
//! shape and changes nothing.

mod common;

use medic_config::Role;
use medic_core::{Finding, FindingKind, Incident, IncidentState, Ts};
use medic_server::ServerState;
use medic_server::auth::Auth;
use std::sync::Arc;
use std::time::Duration;

const VIEWER: &str = "tok-viewer-1";
const APPROVER: &str = "tok-approver-1";
const ADMIN: &str = "tok-admin-1";

struct Api {
    base: String,
    store: Arc<medic_store::Store>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn start() -> Api {
    let auth = Auth::from_tokens(&[
        ("grafana", Role::Viewer, VIEWER),
        ("alice", Role::Approver, APPROVER),
        ("root", Role::Admin, ADMIN),
    ]);
    start_with(auth, Vec::new()).await
}

async fn start_with(auth: Auth, policies: Vec<medic_config::Policy>) -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(medic_store::Store::open(&dir.path().join("m.db")).expect("store"));
    let (tx, _rx) = tokio::sync::mpsc::channel(8);
    let state = ServerState::new(tx, Default::default())
        .with_auth(Arc::new(auth))
        .with_store(store.clone())
        .with_policies(policies);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let addr = medic_server::serve("127.0.0.1:0", state, shutdown)
        .await
        .expect("serve");
    Api {
        base: format!("http://{addr}"),
        store,
        _dir: dir,
        _stop: stop,
    }
}

fn waiting(id: &str) -> Incident {
    let f = Finding {
        id: format!("f-{id}"),
        ts: Ts(1_000),
        service: "payment".into(),
        instance: None,
        kind: FindingKind::ErrorRate,
        detector: "test".into(),
        score: 0.9,
        summary: "31% 500s".into(),
        evidence: vec![],
    };
    let mut i = Incident::new(id.into(), f);
    i.state = IncidentState::AwaitingApproval;
    i
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut r = match method {
        "GET" => http().get(url),
        _ => http().post(url),
    };
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = r.send().await.expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

#[tokio::test]
async fn roles_answers_pause_and_errors() {
    let api = start().await;
    api.store.save_incident(&waiting("inc-1")).expect("save");
    api.store.save_incident(&waiting("inc-2")).expect("save");
    let url = |p: &str| format!("{}{p}", api.base);
    let approve = url("/api/v1/incidents/inc-1/approve");
    let why = r#"{"reason":"rollback is safe, checked the deploy diff"}"#;

    // Unauthenticated: 401 everywhere, nothing recorded.
    assert_eq!(
        call("GET", &url("/api/v1/incidents"), None, None).await.0,
        401
    );
    assert_eq!(call("POST", &approve, None, Some(why)).await.0, 401);
    // A viewer reads, but may not approve or pause.
    let (s, list) = call(
        "GET",
        &url("/api/v1/incidents?state=awaiting_approval"),
        Some(VIEWER),
        None,
    )
    .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["incidents"].as_array().expect("list").len(), 2);
    let (s, body) = call("POST", &approve, Some(VIEWER), Some(why)).await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body.as_str()
            .expect("text")
            .contains("needs role `approver`")
    );
    assert_eq!(
        call("POST", &url("/api/v1/pause"), Some(APPROVER), Some(why))
            .await
            .0,
        403
    );
    assert_eq!(api.store.approval("inc-1").expect("read"), None);

    // Bad input: one error shape, nothing recorded.
    for (body, status) in [
        ("", 400),
        ("not json", 400),
        (r#"{"reason":""}"#, 400),
        (r#"{"reason":" \t\r\n "}"#, 400),
        (
            format!(r#"{{"reason":"{}"}}"#, "x".repeat(2001)).as_str(),
            400,
        ),
        (r#"{"reason":"ok","extra":1}"#, 400),
        (r#"{"why":"ok"}"#, 400),
    ] {
        let (s, e) = call("POST", &approve, Some(APPROVER), Some(body)).await;
        assert_eq!(s, status, "{body}: {e}");
        assert!(e["error"].is_string(), "{e}");
    }
    let huge = format!(r#"{{"reason":"{}"}}"#, "x".repeat(40_000));
    assert_eq!(
        call("POST", &approve, Some(APPROVER), Some(&huge)).await.0,
        413
    );
    let (s, e) = call(
        "POST",
        &url("/api/v1/incidents/nope/approve"),
        Some(APPROVER),
        Some(why),
    )
    .await;
    assert_eq!((s, e["error"].as_str().is_some()), (404, true));
    assert_eq!(
        call(
            "GET",
            &url("/api/v1/incidents?state=sleeping"),
            Some(VIEWER),
            None
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(
            "GET",
            &url("/api/v1/incidents?colour=red"),
            Some(VIEWER),
            None
        )
        .await
        .0,
        400
    );
    assert_eq!(api.store.approval("inc-1").expect("read"), None);

    // An approver's answer: recorded with name, role and reason; audited; the first stands.
    let (s, body) = call("POST", &approve, Some(APPROVER), Some(why)).await;
    assert_eq!(s, 200, "{body}");
    let a = api
        .store
        .approval("inc-1")
        .expect("read")
        .expect("recorded");
    assert_eq!(
        (a.approved, a.by.as_str(), a.role.as_str()),
        (true, "alice", "approver")
    );
    assert!(a.reason.contains("deploy diff"));
    let (s, _) = call(
        "POST",
        &url("/api/v1/incidents/inc-1/reject"),
        Some(ADMIN),
        Some(why),
    )
    .await;
    assert_eq!(s, 409);
    api.store
        .record_verification(&medic_core::VerificationRecord {
            incident: "inc-1".into(),
            attempt: 1,
            started: Ts(1),
            decided_at: Ts(2),
            window_s: 30.0,
            alpha: 0.05,
            verdict: medic_core::Verdict::Inconclusive,
            reason: "no significant change".into(),
            symptoms: Vec::new(),
            rollout: None,
            checks: Vec::new(),
        })
        .expect("record");
    let (s, one) = call("GET", &url("/api/v1/incidents/inc-1"), Some(VIEWER), None).await;
    assert_eq!(s, 200);
    assert_eq!(one["approval"]["by"], "alice");
    assert_eq!(one["verifications"][0]["verdict"], "inconclusive", "{one}");
    let audit = api.store.audit_records().expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].kind, "approval_answered");
    assert!(audit[0].payload.contains("alice") && audit[0].payload.contains("deploy diff"));

    // The kill switch: admin only, reported to viewers, audited.
    let (s, p) = call(
        "POST",
        &url("/api/v1/pause"),
        Some(ADMIN),
        Some(r#"{"reason":"failover"}"#),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(api.store.pause().expect("read").expect("paused").by, "root");
    let (_, st) = call("GET", &url("/api/v1/pause"), Some(VIEWER), None).await;
    assert_eq!(st["paused"]["reason"], "failover");
    let (s, q) = call(
        "POST",
        &url("/api/v1/incidents/inc-2/approve"),
        Some(APPROVER),
        Some(why),
    )
    .await;
    assert_eq!((s, q["queued_until_resume"].as_bool()), (200, Some(true)));
    assert_eq!(
        call(
            "POST",
            &url("/api/v1/resume"),
            Some(ADMIN),
            Some(r#"{"reason":"done"}"#)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            "POST",
            &url("/api/v1/resume"),
            Some(ADMIN),
            Some(r#"{"reason":"again"}"#)
        )
        .await
        .0,
        409
    );
    let (_, v) = call("GET", &url("/api/v1/audit/verify"), Some(VIEWER), None).await;
    assert_eq!(
        (v["intact"].as_bool(), v["records"].as_u64()),
        (Some(true), Some(4))
    );

    // The document is served, and parses.
    let (s, doc) = call("GET", &url("/api/v1/openapi.json"), Some(VIEWER), None).await;
    assert_eq!(s, 200);
    assert!(doc["paths"]["/api/v1/incidents/{id}/approve"]["post"].is_object());
}

/// Tokens with approver groups, read from (test) environment variables.
fn grouped_auth() -> Auth {
    use medic_config::{AuthConfig, TokenConfig, TokenSecret};
    let token = |name: &str, role: Role, var: &str, groups: &[&str]| TokenConfig {
        name: name.into(),
        role,
        secret: TokenSecret::Env(var.into()),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        expires: None,
        location: Default::default(),
    };
    let config = AuthConfig {
        tokens: vec![
            token("grafana", Role::Viewer, "V", &[]),
            token("alice", Role::Approver, "A", &["payments-leads"]),
            token("bob", Role::Approver, "B", &["web-leads"]),
        ],
        unauthenticated: false,
    };
    Auth::with_env(&config, |var| match var {
        "V" => Some(VIEWER.into()),
        "A" => Some(APPROVER.into()),
        "B" => Some("tok-bob-1".into()),
        _ => None,
    })
    .expect("auth")
}

#[tokio::test]
async fn approver_groups_policies_and_audit_export() {
    use medic_core::{Action, ActionKind, ApprovalRule, Cause, Mode, Plan};
    let policy = medic_config::Policy {
        name: "rollback-payment".into(),
        causes: vec![Cause::BadDeployment],
        action: ActionKind::RollbackRelease,
        mode: Mode::Approve,
        approval: Some(ApprovalRule {
            approvers: Some("payments-leads".into()),
            ..ApprovalRule::default()
        }),
        ..medic_config::Policy::default()
    };
    let api = start_with(grouped_auth(), vec![policy]).await;
    let mut inc = waiting("inc-g");
    inc.plan = Some(Plan {
        mode: Mode::Approve,
        approval: Some(ApprovalRule {
            approvers: Some("payments-leads".into()),
            ..ApprovalRule::default()
        }),
        ..Plan::new(
            "rollback-payment",
            Cause::BadDeployment,
            Action::new(ActionKind::RollbackRelease, "payment"),
        )
    });
    api.store.save_incident(&inc).expect("save");
    let url = |p: &str| format!("{}{p}", api.base);
    let approve = url("/api/v1/incidents/inc-g/approve");
    let why = r#"{"reason":"the diff is the bad flag"}"#;

    // An approver outside the policy's group is refused, and nothing is recorded.
    let (s, body) = call("POST", &approve, Some("tok-bob-1"), Some(why)).await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("payments-leads"),
        "{body}"
    );
    assert_eq!(api.store.approval("inc-g").expect("read"), None);
    // One inside it may answer.
    let (s, body) = call("POST", &approve, Some(APPROVER), Some(why)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["approval"]["by"], "alice");

    // The policies in force, with their mode now and record.
    let (s, body) = call("GET", &url("/api/v1/policies"), Some(VIEWER), None).await;
    assert_eq!(s, 200, "{body}");
    let p = &body["policies"][0];
    assert_eq!(p["name"], "rollback-payment");
    assert_eq!(p["mode_now"], "approve");
    assert_eq!(p["approval"]["approvers"], "payments-leads");
    assert_eq!(
        call("GET", &url("/api/v1/policies"), None, None).await.0,
        401
    );

    // The audit as JSON lines: the approval is in it, with who.
    let resp = http()
        .get(url("/api/v1/audit/export"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let text = resp.text().await.expect("body");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        records.iter().any(|r| r["kind"] == "approval_answered"
            && r["payload"].as_str().unwrap().contains("alice")),
        "{text}"
    );
}
