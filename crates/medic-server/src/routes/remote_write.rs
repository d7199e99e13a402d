//! `POST /api/v1/write`: the Prometheus remote_write 1.0 receiver (snappy + protobuf).
//! Samples become metrics signals per target and timestamp; a bad body is a 400 naming what
//! was wrong (not snappy, not protobuf) or a 413 (too large), counted, and decoding never
//! touches state shared with other requests, so one bad request cannot corrupt another's
//! series.

use crate::ServerState;
use crate::routes::logs::{error, read_body, send_all};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use medic_signals::Counter;
use medic_signals::ingest::remote_write::{RemoteWriteContext, decode_write_request, group};

/// The `source` of signals from this route.
pub const SOURCE: &str = "remote_write";

pub fn router() -> axum::Router<ServerState> {
    axum::Router::new().route("/api/v1/write", post(write))
}

async fn write(State(state): State<ServerState>, headers: HeaderMap, body: Body) -> Response {
    // remote_write is always snappy; a missing header still means snappy.
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase());
    if let Some(e) = encoding.as_deref()
        && e != "snappy"
    {
        state.stats.incr(Counter::IngestBodyRejected);
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content-encoding `{e}`: remote_write expects snappy"),
        );
    }
    let raw = match read_body(&state, &HeaderMap::new(), body, Some("snappy")).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let req = match decode_write_request(&raw) {
        Ok(r) => r,
        Err(e) => {
            state.stats.incr(Counter::IngestBodyRejected);
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let cx = RemoteWriteContext {
        source: SOURCE,
        service_label: &state.limits.remote_write_service_label,
        max_decompressed_bytes: state.limits.max_decompressed_bytes,
    };
    let batch = group(req, &cx);
    state.stats.add(Counter::LinesRead, batch.samples as u64);
    state.stats.add(
        Counter::RemoteWriteSeriesSkipped,
        (batch.skipped_series + batch.skipped_histograms) as u64,
    );
    if let Err(r) = send_all(&state, batch.signals).await {
        return r;
    }
    StatusCode::NO_CONTENT.into_response()
}
