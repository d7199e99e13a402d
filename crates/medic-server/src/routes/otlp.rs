//! OTLP/HTTP: `POST /v1/logs` and `POST /v1/metrics`, protobuf (`application/x-protobuf`) or
//! JSON (`application/json`), optionally gzip-compressed. Answers per the OTLP spec: 200 with
//! an `Export*ServiceResponse` (its `partial_success` counts what was dropped), 400 with a
//! `google.rpc.Status` for a body that does not decode, 413 past the size limits, 415 for a
//! content type or encoding that is neither (as the OpenTelemetry Collector answers), 503 when
//! the agent could take nothing (retryable). The decoding itself is
//! `medic_signals::ingest::otlp`, shared with the gRPC receiver.

use crate::ServerState;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

#[cfg(feature = "otlp")]
pub fn router() -> Router<ServerState> {
    Router::new()
        .route("/v1/logs", post(built::logs))
        .route("/v1/metrics", post(built::metrics))
}

/// Without the `otlp` feature the routes exist and say plainly that they are not built.
#[cfg(not(feature = "otlp"))]
pub fn router() -> Router<ServerState> {
    async fn not_built(State(_): State<ServerState>, _h: HeaderMap, _b: Body) -> Response {
        (
            StatusCode::NOT_IMPLEMENTED,
            "OTLP ingest is not built into this medic (build with the `otlp` feature)\n",
        )
            .into_response()
    }
    Router::new()
        .route("/v1/logs", post(not_built))
        .route("/v1/metrics", post(not_built))
}

#[cfg(feature = "otlp")]
pub use built::{Delivery, deliver};

#[cfg(feature = "otlp")]
mod built {
    use super::*;
    use axum::http::header;
    use medic_core::Ts;
    use medic_signals::Counter;
    use medic_signals::ingest::body::{BodyError, decode_content};
    use medic_signals::ingest::otlp::{self, Converted};
    use prost::Message;
    use std::time::Duration;

    /// How long one signal may wait for room on the agent's channel before the rest of the
    /// request is dropped (counted) rather than holding the exporter indefinitely.
    pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);

    /// The `source` name OTLP signals carry.
    pub const SOURCE: &str = "otlp";

    /// `google.rpc.Status`, the body of OTLP/HTTP error responses.
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }

    /// gRPC codes used in `RpcStatus`.
    const INVALID_ARGUMENT: i32 = 3;
    const RESOURCE_EXHAUSTED: i32 = 8;
    const UNAVAILABLE: i32 = 14;

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Format {
        Protobuf,
        Json,
    }

    #[derive(Clone, Copy)]
    enum Kind {
        Logs,
        Metrics,
    }

    /// What happened to a converted request's signals on the agent's channel.
    #[derive(Debug, Default, PartialEq, Eq)]
    pub struct Delivery {
        pub sent_records: u64,
        pub dropped_records: u64,
    }

    /// Hands the signals to the agent, waiting at most [`SEND_TIMEOUT`] per signal; what it
    /// cannot take is counted as `otlp_channel_full`.
    pub async fn deliver(state: &ServerState, conv: Converted) -> Delivery {
        let mut d = Delivery::default();
        let mut blocked = false;
        for (sig, n) in conv.signals.into_iter().zip(conv.records) {
            if !blocked && state.signals.send_timeout(sig, SEND_TIMEOUT).await.is_ok() {
                d.sent_records += n;
                state.stats.incr(Counter::RecordsEmitted);
            } else {
                // Once the channel refused, refuse the rest at once: the agent is behind.
                blocked = true;
                d.dropped_records += n;
            }
        }
        state.stats.add(Counter::OtlpChannelFull, d.dropped_records);
        d
    }

    pub(super) async fn logs(State(state): State<ServerState>, h: HeaderMap, b: Body) -> Response {
        handle(state, h, b, Kind::Logs).await
    }

    pub(super) async fn metrics(
        State(state): State<ServerState>,
        h: HeaderMap,
        b: Body,
    ) -> Response {
        handle(state, h, b, Kind::Metrics).await
    }

    fn format_of(headers: &HeaderMap) -> Option<Format> {
        let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let media = ct.split(';').next()?.trim().to_ascii_lowercase();
        match media.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Format::Protobuf),
            "application/json" => Some(Format::Json),
            _ => None,
        }
    }

    fn status(format: Format, http: StatusCode, code: i32, message: String) -> Response {
        let (ct, body) = match format {
            Format::Protobuf => (
                "application/x-protobuf",
                RpcStatus { code, message }.encode_to_vec(),
            ),
            Format::Json => (
                "application/json",
                serde_json::json!({ "code": code, "message": message })
                    .to_string()
                    .into_bytes(),
            ),
        };
        (http, [(header::CONTENT_TYPE, ct)], body).into_response()
    }

    fn ok<M: Message + serde::Serialize>(format: Format, msg: &M) -> Response {
        match format {
            Format::Protobuf => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                msg.encode_to_vec(),
            )
                .into_response(),
            Format::Json => {
                let mut v = serde_json::to_value(msg).unwrap_or_default();
                // An absent partial success is omitted, not `null` (clients read it as a map).
                if let Some(o) = v.as_object_mut() {
                    o.retain(|_, x| !x.is_null());
                }
                // The JSON mapping writes int64 as a string; opentelemetry-proto writes a number.
                if let Some(ps) = v.get_mut("partialSuccess").and_then(|p| p.as_object_mut()) {
                    for (k, n) in ps.iter_mut() {
                        if k.starts_with("rejected") && n.is_number() {
                            *n = serde_json::Value::String(n.to_string());
                        }
                    }
                }
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    v.to_string(),
                )
                    .into_response()
            }
        }
    }

    async fn handle(state: ServerState, headers: HeaderMap, body: Body, kind: Kind) -> Response {
        let stats = &state.stats;
        let Some(format) = format_of(&headers) else {
            stats.incr(Counter::OtlpUnsupportedContentType);
            let ct = headers
                .get(header::CONTENT_TYPE)
                .map(|v| {
                    String::from_utf8_lossy(v.as_bytes())
                        .chars()
                        .take(60)
                        .collect()
                })
                .unwrap_or_else(|| "(none)".to_string());
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported content type `{ct}`: expected application/x-protobuf or application/json\n"
                ),
            )
                .into_response();
        };
        let limit = state.limits.max_body_bytes;
        let too_large = |stats: &medic_signals::SourceStats, what: String| {
            stats.incr(Counter::OtlpBodyTooLarge);
            status(
                format,
                StatusCode::PAYLOAD_TOO_LARGE,
                RESOURCE_EXHAUSTED,
                what,
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return too_large(
                stats,
                format!("request body is larger than the limit of {limit} bytes"),
            );
        }
        // Read at most `limit` bytes: a body without Content-Length is cut off there too.
        let bytes = match axum::body::to_bytes(body, limit).await {
            Ok(b) => b,
            Err(_) => {
                return too_large(
                    stats,
                    format!(
                        "request body is larger than the limit of {limit} bytes (or was cut off)"
                    ),
                );
            }
        };
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let raw = match decode_content(
            encoding.as_deref(),
            bytes.to_vec(),
            state.limits.max_decompressed_bytes,
        ) {
            Ok(raw) => raw,
            Err(e @ (BodyError::TooLarge { .. } | BodyError::DecompressedTooLarge { .. })) => {
                return too_large(stats, e.to_string());
            }
            Err(e @ BodyError::UnsupportedEncoding(_)) => {
                stats.incr(Counter::OtlpUnsupportedContentType);
                return status(
                    format,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    INVALID_ARGUMENT,
                    e.to_string(),
                );
            }
            Err(e) => {
                stats.incr(Counter::OtlpMalformedBody);
                return status(
                    format,
                    StatusCode::BAD_REQUEST,
                    INVALID_ARGUMENT,
                    e.to_string(),
                );
            }
        };
        let now = Ts::now();
        let malformed = |e: otlp::OtlpError| {
            stats.incr(Counter::OtlpMalformedBody);
            status(
                format,
                StatusCode::BAD_REQUEST,
                INVALID_ARGUMENT,
                e.to_string(),
            )
        };
        let conv = match (kind, format) {
            (Kind::Logs, Format::Protobuf) => otlp::decode_logs_protobuf(&raw),
            (Kind::Logs, Format::Json) => otlp::decode_logs_json(&raw),
            (Kind::Metrics, _) => {
                let req = match format {
                    Format::Protobuf => otlp::decode_metrics_protobuf(&raw),
                    Format::Json => otlp::decode_metrics_json(&raw),
                };
                drop(raw);
                return match req {
                    Ok(req) => {
                        let conv =
                            otlp::metrics_to_signals(&req, SOURCE, now, stats, &state.otlp_delta);
                        drop(req);
                        respond(&state, format, kind, conv).await
                    }
                    Err(e) => malformed(e),
                };
            }
        };
        drop(raw);
        match conv {
            Ok(req) => {
                let conv = otlp::logs_to_signals(&req, SOURCE, now, stats);
                drop(req);
                respond(&state, format, kind, conv).await
            }
            Err(e) => malformed(e),
        }
    }

    async fn respond(state: &ServerState, format: Format, kind: Kind, conv: Converted) -> Response {
        let rejected_at_decode = conv.rejected;
        let reason = conv.first_reason;
        let had_signals = !conv.signals.is_empty();
        let d = deliver(state, conv).await;
        if had_signals && d.sent_records == 0 {
            // Nothing got through: ask the exporter to retry later rather than lose it all.
            return status(
                format,
                StatusCode::SERVICE_UNAVAILABLE,
                UNAVAILABLE,
                "medic's agent is not keeping up; retry later".into(),
            );
        }
        let rejected = rejected_at_decode + d.dropped_records;
        let message = if d.dropped_records > 0 {
            "some records dropped: the agent's channel was full (otlp_channel_full)".to_string()
        } else if let Some(r) = reason {
            format!("some records dropped: {r} (see medic's /metrics)")
        } else {
            String::new()
        };
        match kind {
            Kind::Logs => ok(
                format,
                &otlp::ExportLogsServiceResponse {
                    partial_success: (rejected > 0).then(|| otlp::ExportLogsPartialSuccess {
                        rejected_log_records: i64::try_from(rejected).unwrap_or(i64::MAX),
                        error_message: message,
                    }),
                },
            ),
            Kind::Metrics => ok(
                format,
                &otlp::ExportMetricsServiceResponse {
                    partial_success: (rejected > 0).then(|| otlp::ExportMetricsPartialSuccess {
                        rejected_data_points: i64::try_from(rejected).unwrap_or(i64::MAX),
                        error_message: message,
                    }),
                },
            ),
        }
    }
}
