//! The supervisor's control API (JSON over HTTP). Bodies are parsed by hand rather than with
//! axum's `Json` extractor, so every malformed body gets a 400 naming what was expected.

use super::core::Supervisor;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use medic_act::ActError;
use medic_core::{Action, ChangeEvent};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Configs are the largest bodies; 1 MiB is far above any sane one.
const MAX_BODY_BYTES: usize = 1024 * 1024;

pub(crate) fn router(sup: Supervisor) -> Router {
    Router::new()
        .route("/v1/workloads", get(workloads))
        .route("/v1/actions", post(actions))
        .route("/v1/deploy", post(deploy))
        .route("/v1/config", post(config))
        .route("/v1/calendar", post(calendar))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(sup)
}

/// Domain errors → HTTP status: the one mapping of this API.
pub(crate) fn status_of(e: &ActError) -> StatusCode {
    match e {
        ActError::Rejected(_) | ActError::Stale(_) | ActError::ManagedElsewhere(_) => {
            StatusCode::CONFLICT
        }
        ActError::Forbidden(_) => StatusCode::FORBIDDEN,
        ActError::Invalid(_) => StatusCode::BAD_REQUEST,
        ActError::ShutDown | ActError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
        ActError::Unreachable(_) => StatusCode::BAD_GATEWAY,
        ActError::Protocol(_) | ActError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_response(e: &ActError) -> Response {
    (
        status_of(e),
        axum::Json(serde_json::json!({"error": e.to_string()})),
    )
        .into_response()
}

fn parse<T: DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, ActError> {
    serde_json::from_slice(body).map_err(|e| {
        ActError::Invalid(format!("malformed request body ({e}): expected {expected}"))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionRequest {
    idempotency_key: String,
    action: Action,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployRequest {
    service: String,
    release: String,
    #[serde(default)]
    author: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigRequest {
    service: String,
    config: serde_json::Value,
    #[serde(default)]
    author: Option<String>,
}

async fn workloads(State(sup): State<Supervisor>) -> Response {
    axum::Json(sup.workloads().await).into_response()
}

async fn actions(State(sup): State<Supervisor>, body: Bytes) -> Response {
    let req: ActionRequest = match parse(
        &body,
        r#"{"idempotency_key":"…","action":{"kind":"restart_workload|scale_workload|rollback_release|revert_config|no_action","target":"service","replicas":N|null}}"#,
    ) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    match sup.execute(&req.idempotency_key, &req.action).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn deploy(State(sup): State<Supervisor>, body: Bytes) -> Response {
    let req: DeployRequest = match parse(&body, r#"{"service":"…","release":"…","author":"…"}"#)
    {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let author = req.author.as_deref().unwrap_or("unknown");
    match sup.deploy(&req.service, &req.release, author).await {
        Ok(detail) => axum::Json(serde_json::json!({"detail": detail})).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn config(State(sup): State<Supervisor>, body: Bytes) -> Response {
    let req: ConfigRequest = match parse(
        &body,
        r#"{"service":"…","config":{…any JSON…},"author":"…"}"#,
    ) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let author = req.author.as_deref().unwrap_or("unknown");
    match sup.set_config(&req.service, req.config, author).await {
        Ok(version) => axum::Json(serde_json::json!({"config_version": version})).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn calendar(State(sup): State<Supervisor>, body: Bytes) -> Response {
    let change: ChangeEvent = match parse(
        &body,
        r#"a change event {"kind":"planned","service":"…","start":MILLIS,"end":MILLIS,"description":"…"}"#,
    ) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    match sup.add_calendar_entry(change).await {
        Ok(()) => axum::Json(serde_json::json!({"detail": "recorded"})).into_response(),
        Err(e) => error_response(&e),
    }
}
