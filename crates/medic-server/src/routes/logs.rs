//! `POST /ingest/logs` and `/ingest/logs/{service}`: JSON log records as Fluent Bit
//! (`http` output, `json`/`json_lines`), Vector (`http` sink, `json`/`ndjson`) and syslog-ng
//! (`http()` with a JSON body) send them, optionally gzip-compressed. One malformed NDJSON
//! line is counted and skipped; the response says how many records were accepted and
//! rejected. A full agent channel is a 503 with `Retry-After`, never a silent drop.

use crate::ServerState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use medic_core::{Signal, Ts};
use medic_signals::Counter;
use medic_signals::ingest::body::{BodyError, decode_content};
use medic_signals::ingest::json_logs::{JsonLogContext, decode_json_logs};
use std::time::Duration;

/// The `source` of signals from this route.
pub const SOURCE: &str = "http_logs";
/// How long a request waits for room in the agent's channel before it is told to retry.
const SEND_WAIT: Duration = Duration::from_secs(2);

pub fn router() -> axum::Router<ServerState> {
    axum::Router::new()
        .route("/ingest/logs", post(ingest))
        .route("/ingest/logs/{service}", post(ingest_service))
}

async fn ingest(State(state): State<ServerState>, headers: HeaderMap, body: Body) -> Response {
    handle(state, None, headers, body).await
}

async fn ingest_service(
    State(state): State<ServerState>,
    Path(service): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, Some(service), headers, body).await
}

/// A plain-text error response.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut m = message.into();
    m.push('\n');
    (status, m).into_response()
}

/// Reads a body within `max_body_bytes` and decodes its `Content-Encoding` within
/// `max_decompressed_bytes`; the error is the response to send (and is counted).
pub(crate) async fn read_body(
    state: &ServerState,
    headers: &HeaderMap,
    body: Body,
    default_encoding: Option<&str>,
) -> Result<Vec<u8>, Response> {
    let limit = state.limits.max_body_bytes;
    let too_large = || {
        state.stats.incr(Counter::IngestBodyRejected);
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is larger than the limit of {limit} bytes (server.max_body_bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .or(default_encoding);
    decode_content(
        encoding,
        bytes.to_vec(),
        state.limits.max_decompressed_bytes,
    )
    .map_err(|e| {
        state.stats.incr(Counter::IngestBodyRejected);
        let status = match e {
            BodyError::TooLarge { .. } | BodyError::DecompressedTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            BodyError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyError::NotGzip(_) | BodyError::NotSnappy(_) => StatusCode::BAD_REQUEST,
        };
        let hint = match e {
            BodyError::DecompressedTooLarge { .. } => " (server.max_decompressed_bytes)",
            _ => "",
        };
        error(status, format!("{e}{hint}"))
    })
}

/// Hands `signals` to the agent, waiting a bounded time for room. Returns how many were
/// sent; `Err` is the 503 to answer when none could be.
pub(crate) async fn send_all(state: &ServerState, signals: Vec<Signal>) -> Result<usize, Response> {
    let total = signals.len();
    let mut sent = 0;
    let mut it = signals.into_iter();
    let chunk_max = state.signals.max_capacity().max(1);
    while sent < total {
        let n = (total - sent).min(chunk_max);
        let permits = match tokio::time::timeout(SEND_WAIT, state.signals.reserve_many(n)).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) | Err(_) => {
                state.stats.incr(Counter::IngestBackpressure);
                let msg = if sent == 0 {
                    "medic's input queue is full: retry later".to_string()
                } else {
                    format!(
                        "medic's input queue is full: accepted {sent} of {total} records, the rest was not accepted"
                    )
                };
                let mut r = error(StatusCode::SERVICE_UNAVAILABLE, msg);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return Err(r);
            }
        };
        for (permit, signal) in permits.zip(it.by_ref()) {
            permit.send(signal);
            sent += 1;
        }
        state.stats.add(Counter::RecordsEmitted, n as u64);
    }
    Ok(sent)
}

async fn handle(
    state: ServerState,
    service: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let data = match read_body(&state, &headers, body, None).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let cx = JsonLogContext {
        source: SOURCE,
        service: service.as_deref(),
        now: Ts::now(),
    };
    let batch = match decode_json_logs(&data, &cx) {
        Ok(b) => b,
        Err(e) => {
            state.stats.incr(Counter::IngestBodyRejected);
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let accepted = batch.signals.len();
    state
        .stats
        .add(Counter::LinesRead, (accepted + batch.rejected) as u64);
    state
        .stats
        .add(Counter::IngestRecordRejected, batch.rejected as u64);
    state
        .stats
        .add(Counter::LineTooLong, batch.truncated as u64);
    if accepted == 0 && batch.rejected > 0 {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "no record accepted: {} rejected (expected JSON objects, as NDJSON, an array or one object)",
                batch.rejected
            ),
        );
    }
    if let Err(r) = send_all(&state, batch.signals).await {
        return r;
    }
    let body = serde_json::json!({
        "accepted": accepted,
        "rejected": batch.rejected,
        "truncated": batch.truncated,
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}
