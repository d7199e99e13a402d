//! OTLP/gRPC receiver: `LogsService/Export` and `MetricsService/Export` on their own port
//! (OTLP's 4317 by default, `server.otlp_grpc_listen`), gzip accepted, messages bounded by
//! `server.max_decompressed_bytes`. Decoding and mapping are the same as OTLP/HTTP's.

use crate::routes::otlp::deliver;
use crate::tls::{Alpn, GrpcConn, Tls};
use crate::{ServerError, ServerState};
use medic_core::Ts;
use medic_signals::ingest::otlp::{
    self, ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

/// The `source` name gRPC-received signals carry (same as OTLP/HTTP's).
const SOURCE: &str = "otlp";

#[derive(Clone)]
struct Receiver {
    state: ServerState,
}

fn rejected_message(dropped: u64, reason: Option<&'static str>) -> String {
    if dropped > 0 {
        "some records dropped: the agent's channel was full (otlp_channel_full)".into()
    } else if let Some(r) = reason {
        format!("some records dropped: {r} (see medic's /metrics)")
    } else {
        String::new()
    }
}

impl Receiver {
    /// OTLP exporters send the token as `authorization` metadata (their `headers` setting).
    fn authorize(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        let headers = metadata.clone().into_headers();
        match self
            .state
            .auth
            .check_headers(&headers, medic_config::Role::Ingest)
        {
            Ok(_) => Ok(()),
            Err(denied) => {
                self.state.metrics.auth_denied(&denied);
                let (status, message) = denied.status_and_message();
                Err(if status == axum::http::StatusCode::FORBIDDEN {
                    Status::permission_denied(message)
                } else {
                    Status::unauthenticated(message)
                })
            }
        }
    }
}

fn unavailable() -> Status {
    Status::unavailable("medic's agent is not keeping up; retry later")
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.authorize(request.metadata())?;
        let req = request.into_inner();
        let conv = otlp::logs_to_signals(&req, SOURCE, Ts::now(), &self.state.stats);
        drop(req);
        let (decode_rejected, reason, had) =
            (conv.rejected, conv.first_reason, !conv.signals.is_empty());
        let d = deliver(&self.state, conv).await;
        if had && d.sent_records == 0 {
            return Err(unavailable());
        }
        let rejected = decode_rejected + d.dropped_records;
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: (rejected > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: i64::try_from(rejected).unwrap_or(i64::MAX),
                error_message: rejected_message(d.dropped_records, reason),
            }),
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.authorize(request.metadata())?;
        let req = request.into_inner();
        let conv = otlp::metrics_to_signals(
            &req,
            SOURCE,
            Ts::now(),
            &self.state.stats,
            &self.state.otlp_delta,
        );
        drop(req);
        let (decode_rejected, reason, had) =
            (conv.rejected, conv.first_reason, !conv.signals.is_empty());
        let d = deliver(&self.state, conv).await;
        if had && d.sent_records == 0 {
            return Err(unavailable());
        }
        let rejected = decode_rejected + d.dropped_records;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: (rejected > 0).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: i64::try_from(rejected).unwrap_or(i64::MAX),
                error_message: rejected_message(d.dropped_records, reason),
            }),
        }))
    }
}

/// Binds `addr` and serves the OTLP gRPC receiver in a background task until `shutdown`
/// becomes true (or its sender is dropped). Returns the bound address (port 0 picks one).
/// Messages larger than `state.limits.max_decompressed_bytes` (after gzip) are refused by
/// tonic with `RESOURCE_EXHAUSTED`.
pub async fn serve_grpc(
    addr: SocketAddr,
    state: ServerState,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, ServerError> {
    serve_grpc_over(addr, state, None, shutdown).await
}

/// [`serve_grpc`], over TLS (with ALPN `h2`) when `tls` is given.
pub(crate) async fn serve_grpc_over(
    addr: SocketAddr,
    state: ServerState,
    tls: Option<Arc<Tls>>,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    let limit = state.limits.max_decompressed_bytes;
    let metrics = state.metrics.clone();
    let rx = Receiver { state };
    let logs = LogsServiceServer::new(rx.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let metrics_service = MetricsServiceServer::new(rx)
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let router = tonic::transport::Server::builder()
        .add_service(logs)
        .add_service(metrics_service);
    let stop = crate::until(shutdown.clone());
    match tls {
        None => {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            tokio::spawn(async move {
                if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
                    tracing::error!(error = %e, "medic OTLP gRPC receiver stopped");
                }
            });
        }
        Some(tls) => {
            let rx = crate::tls::accept(listener, tls, Alpn::H2, metrics, shutdown, |s, _| {
                Ok::<_, std::io::Error>(GrpcConn(s))
            });
            let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
            tokio::spawn(async move {
                if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
                    tracing::error!(error = %e, "medic OTLP gRPC receiver stopped");
                }
            });
        }
    }
    Ok(bound)
}
