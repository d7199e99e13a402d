//! `/api/v1`: incidents, approvals, the kill switch and the audit, as JSON, for people and
//! tools. Reading needs a `viewer` token, answering approvals an `approver`, pausing and
//! resuming an `admin`; every answer records who gave it (the token's name and role) and why.
//! One error shape for every route: `{"error": "..."}` with the status that fits (400 bad
//! input, 404 unknown incident, 409 not in a state to accept it, 413 body too large, 503 no
//! store).
//!
//! `GET /api/v1/openapi.json` describes exactly these routes (`openapi.json` beside this
//! file; a test keeps the two equal).

use crate::ServerState;
use crate::auth::Identity;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use medic_core::{Approval, IncidentState, Pause, Ts};
use serde::Deserialize;
use serde_json::json;

/// The document served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Largest JSON body the API reads (a reason is a sentence, not a file).
const MAX_BODY: usize = 16 * 1024;
const MAX_REASON: usize = 2000;
/// Longest incident id or service name a request may carry (the document's `maxLength`).
const MAX_NAME: usize = 200;
/// Most incidents one list answer holds.
const MAX_LIMIT: usize = 1000;

/// (method, path) of every route, as the OpenAPI document must list them.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/health"),
    ("get", "/api/v1/ready"),
    ("get", "/api/v1/incidents"),
    ("get", "/api/v1/incidents/{id}"),
    ("get", "/api/v1/approvals"),
    ("post", "/api/v1/incidents/{id}/approve"),
    ("post", "/api/v1/incidents/{id}/reject"),
    ("get", "/api/v1/pause"),
    ("post", "/api/v1/pause"),
    ("post", "/api/v1/resume"),
    ("get", "/api/v1/audit/verify"),
    ("get", "/api/v1/audit/export"),
    ("get", "/api/v1/policies"),
    ("get", "/api/v1/openapi.json"),
];

pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn err(status: StatusCode, msg: impl Into<String>) -> ApiError {
    ApiError(status, msg.into())
}

impl From<medic_store::StoreError> for ApiError {
    fn from(e: medic_store::StoreError) -> Self {
        tracing::error!("api: store error: {e}");
        err(StatusCode::INTERNAL_SERVER_ERROR, format!("store: {e}"))
    }
}

type ApiResult = Result<Response, ApiError>;

fn store(state: &ServerState) -> Result<&medic_store::Store, ApiError> {
    state.store.as_deref().ok_or_else(|| {
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server has no store attached (it serves ingest only)",
        )
    })
}

/// Routes needing only a viewer (the caller wraps them in its auth layer).
pub fn read_router() -> axum::Router<ServerState> {
    axum::Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/ready", get(ready))
        .route("/api/v1/incidents", get(list_incidents))
        .route("/api/v1/incidents/{id}", get(one_incident))
        .route("/api/v1/approvals", get(approvals))
        .route("/api/v1/pause", get(pause_state))
        .route("/api/v1/audit/verify", get(audit_verify))
        .route("/api/v1/audit/export", get(audit_export))
        .route("/api/v1/policies", get(policies))
        .route("/api/v1/openapi.json", get(openapi))
}

/// Routes that answer approvals (approver, or admin).
pub fn approve_router() -> axum::Router<ServerState> {
    axum::Router::new()
        .route("/api/v1/incidents/{id}/approve", post(approve))
        .route("/api/v1/incidents/{id}/reject", post(reject))
}

/// The kill switch (admin).
pub fn admin_router() -> axum::Router<ServerState> {
    axum::Router::new()
        .route("/api/v1/pause", post(pause))
        .route("/api/v1/resume", post(resume))
}

async fn health() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn ready(State(state): State<ServerState>) -> ApiResult {
    let s = store(&state)?;
    s.pause()?;
    Ok(Json(json!({ "status": "ready" })).into_response())
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    service: Option<String>,
    limit: Option<usize>,
}

async fn list_incidents(
    State(state): State<ServerState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = query.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    if let Some(s) = &q.service {
        bounded("service", s)?;
    }
    let wanted = match q.state.as_deref() {
        None => None,
        Some(s) => Some(IncidentState::parse(s).ok_or_else(|| {
            err(
                StatusCode::BAD_REQUEST,
                format!("unknown state `{s}`: expected one of open, diagnosed, awaiting_approval, acting, verifying, resolved, escalated, closed"),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("`limit` must be 1 to {MAX_LIMIT}, found {limit}"),
        ));
    }
    let mut out: Vec<serde_json::Value> = Vec::new();
    let mut incidents = store(&state)?.incidents()?;
    incidents.sort_by(|a, b| b.opened.0.cmp(&a.opened.0).then(a.id.cmp(&b.id)));
    for i in incidents {
        if wanted.is_some_and(|w| i.state != w)
            || q.service.as_ref().is_some_and(|s| !i.services.contains(s))
        {
            continue;
        }
        let top = i.diagnosis.as_ref().and_then(|d| d.top());
        out.push(json!({
            "id": i.id,
            "state": i.state.to_string(),
            "opened": i.opened.0,
            "updated": i.updated.0,
            "services": i.services,
            "cause": top.map(|h| h.cause.to_string()),
            "target": top.map(|h| h.target.clone()),
            "confidence": top.map(|h| h.confidence),
            "action": i.plan.as_ref().map(|p| p.action.to_string()),
            "decision": i.decision,
            "closing_reason": i.closing_reason,
        }));
        if out.len() >= limit {
            break;
        }
    }
    Ok(Json(json!({ "incidents": out })).into_response())
}

async fn one_incident(State(state): State<ServerState>, Path(id): Path<String>) -> ApiResult {
    bounded("id", &id)?;
    let s = store(&state)?;
    let inc = s
        .incident(&id)?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no incident `{}`", cut(&id))))?;
    let audit = s.audit_records_for(&id)?;
    let approval = s.approval(&id)?;
    let verifications = s.verifications(&id)?;
    Ok(Json(json!({
        "incident": inc,
        "approval": approval,
        "verifications": verifications,
        "audit": audit,
    }))
    .into_response())
}

async fn approvals(State(state): State<ServerState>) -> ApiResult {
    let s = store(&state)?;
    let waiting: Vec<serde_json::Value> = s
        .incidents()?
        .into_iter()
        .filter(|i| i.state == IncidentState::AwaitingApproval)
        .map(|i| {
            json!({
                "id": i.id,
                "since": i.updated.0,
                "plan": i.plan,
                "diagnosis": i.diagnosis,
            })
        })
        .collect();
    Ok(Json(json!({ "approvals": waiting, "paused": s.pause()? })).into_response())
}

async fn pause_state(State(state): State<ServerState>) -> ApiResult {
    Ok(Json(json!({ "paused": store(&state)?.pause()? })).into_response())
}

async fn audit_verify(State(state): State<ServerState>) -> ApiResult {
    let r = store(&state)?.verify_audit()?;
    Ok(Json(json!({
        "records": r.records,
        "intact": r.broken.is_none(),
        "broken_at": r.broken.as_ref().map(|(s, _)| s),
        "why": r.broken.map(|(_, w)| w),
    }))
    .into_response())
}

/// Every audit record, in order, one JSON object per line (what `medic audit export`
/// writes), for archiving elsewhere.
async fn audit_export(State(state): State<ServerState>) -> ApiResult {
    let records = store(&state)?.audit_records()?;
    let mut body = Vec::with_capacity(records.len() * 256);
    for r in &records {
        serde_json::to_writer(&mut body, r)
            .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        body.push(b'\n');
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response())
}

/// Each policy in force with its mode now and why, its limits and its record.
async fn policies(State(state): State<ServerState>) -> ApiResult {
    let incidents = store(&state)?.incidents()?;
    let reports = medic_policy::report::policy_reports(&state.policies, &incidents);
    Ok(Json(json!({ "policies": reports })).into_response())
}

/// `value` of `what`, refused (400) when longer than the document allows.
fn bounded(what: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().count() > MAX_NAME {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("`{what}` is longer than {MAX_NAME} characters"),
        ));
    }
    Ok(())
}

fn cut(s: &str) -> String {
    s.chars().take(80).collect()
}

/// `{"reason": "..."}`, bounded, nothing else.
async fn reason_of(body: axum::body::Body) -> Result<String, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        err(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {MAX_BODY} bytes"),
        )
    })?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        reason: String,
    }
    let b: Body = serde_json::from_slice(&bytes).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            format!("expected a JSON object {{\"reason\": \"...\"}}: {e}"),
        )
    })?;
    // Blank means only ASCII spaces, tabs and line breaks: the same class the OpenAPI
    // pattern names, so a client validating against the document and medic agree on every
    // string (Unicode's notions of whitespace differ between languages).
    let blank = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    if b.reason.chars().all(blank) || b.reason.chars().count() > MAX_REASON {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("`reason` must say why, in 1 to {MAX_REASON} characters"),
        ));
    }
    Ok(medic_signals::redact::redact(b.reason.trim_matches(blank)).into_owned())
}

async fn approve(
    state: State<ServerState>,
    who: Extension<Identity>,
    id: Path<String>,
    body: axum::body::Body,
) -> ApiResult {
    answer(state, who, id, body, true).await
}

async fn reject(
    state: State<ServerState>,
    who: Extension<Identity>,
    id: Path<String>,
    body: axum::body::Body,
) -> ApiResult {
    answer(state, who, id, body, false).await
}

async fn answer(
    State(state): State<ServerState>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
    body: axum::body::Body,
    approved: bool,
) -> ApiResult {
    bounded("id", &id)?;
    let reason = reason_of(body).await?;
    let s = store(&state)?;
    let inc = s
        .incident(&id)?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no incident `{}`", cut(&id))))?;
    if inc.state != IncidentState::AwaitingApproval {
        return Err(err(
            StatusCode::CONFLICT,
            format!("incident {id} is {}, not awaiting approval", inc.state),
        ));
    }
    // The policy names who may answer; without open authentication, nobody else may.
    let group = inc
        .plan
        .as_ref()
        .and_then(|p| p.approval.as_ref())
        .and_then(|a| a.approvers.clone());
    if let Some(group) = group
        && !state.auth.is_open()
        && !who.groups.contains(&group)
    {
        return Err(err(
            StatusCode::FORBIDDEN,
            format!(
                "policy {} requires an approver of group `{group}`; token `{}` is not in it",
                inc.plan.as_ref().map_or("", |p| p.policy.as_str()),
                who.name
            ),
        ));
    }
    let a = Approval {
        incident: id.clone(),
        approved,
        by: who.name.clone(),
        role: who.role.as_str().to_string(),
        reason,
        at: Ts::now(),
    };
    if !s.answer_approval(&a)? {
        return Err(err(
            StatusCode::CONFLICT,
            format!("incident {id} was already answered; the first answer stands"),
        ));
    }
    let paused = s.pause()?;
    Ok(
        Json(json!({ "approval": a, "queued_until_resume": approved && paused.is_some() }))
            .into_response(),
    )
}

async fn pause(
    State(state): State<ServerState>,
    Extension(who): Extension<Identity>,
    body: axum::body::Body,
) -> ApiResult {
    let reason = reason_of(body).await?;
    let s = store(&state)?;
    let p = Pause {
        by: who.name,
        reason,
        at: Ts::now(),
    };
    s.pause_actions(&p)?;
    Ok(Json(json!({ "paused": p })).into_response())
}

async fn resume(
    State(state): State<ServerState>,
    Extension(who): Extension<Identity>,
    body: axum::body::Body,
) -> ApiResult {
    let reason = reason_of(body).await?;
    let s = store(&state)?;
    let Some(was) = s.resume_actions(&who.name, &reason, Ts::now())? else {
        return Err(err(StatusCode::CONFLICT, "medic is not paused"));
    };
    Ok(Json(json!({ "resumed": true, "was": was })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let mut listed: Vec<(String, String)> = Vec::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for method in ops.as_object().expect("operations").keys() {
                if method != "parameters" {
                    listed.push((method.clone(), path.clone()));
                }
            }
        }
        listed.sort();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        routes.sort();
        assert_eq!(listed, routes);
        // Every operation says who may call it and what its errors look like.
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for (method, op) in ops.as_object().expect("ops") {
                let r = op["responses"].as_object().expect("responses");
                assert!(r.contains_key("401"), "{method} {path}: no 401");
                assert!(op["security"].is_array(), "{method} {path}: no security");
            }
        }
    }
}
