//! `GET /metrics`: medic's own metrics in the Prometheus text format — the sources' counters
//! (records read and emitted, drops by reason) and ingest requests by route and status.

use crate::ServerState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use medic_signals::{Counter as StatCounter, SourceStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::Arc;

type RequestLabels = Vec<(String, String)>;

/// The server's own metrics. `SourceStats` is read at each scrape (it is shared with the
/// sources), so nothing has to be copied when a source bumps a counter.
#[derive(Debug)]
pub struct ServerMetrics {
    requests: Family<RequestLabels, Counter>,
    denied: Family<RequestLabels, Counter>,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerMetrics {
    pub fn new() -> Self {
        ServerMetrics {
            requests: Family::default(),
            denied: Family::default(),
        }
    }

    /// Counts one request refused by authentication, by why.
    pub fn auth_denied(&self, d: &crate::auth::Denied) {
        use crate::auth::Denied;
        let reason = match d {
            Denied::Missing => "missing",
            Denied::Malformed(_) => "malformed",
            Denied::Unknown => "unknown_token",
            Denied::Expired { .. } => "expired",
            Denied::Forbidden { .. } => "forbidden",
        };
        self.deny(reason);
    }

    /// Counts one TLS handshake refused for its client certificate (missing or untrusted).
    pub fn client_cert_refused(&self) {
        self.deny("client_cert");
    }

    fn deny(&self, reason: &str) {
        self.denied
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc();
    }

    /// Counts one request to `route` answered with `status`.
    pub fn count_request(&self, route: &str, status: u16) {
        self.requests
            .get_or_create(&vec![
                ("route".to_string(), route.to_string()),
                ("status".to_string(), status.to_string()),
            ])
            .inc();
    }

    /// How many requests to `route` were answered with `status` (for tests).
    pub fn requests(&self, route: &str, status: u16) -> u64 {
        self.requests
            .get_or_create(&vec![
                ("route".to_string(), route.to_string()),
                ("status".to_string(), status.to_string()),
            ])
            .get()
    }

    /// The whole exposition, `stats` included.
    pub fn render(&self, stats: Arc<SourceStats>) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        registry.register(
            "medic_ingest_requests",
            "HTTP ingest requests by route and status",
            self.requests.clone(),
        );
        registry.register(
            "medic_auth_denied",
            "requests refused by authentication, by reason",
            self.denied.clone(),
        );
        registry.register_collector(Box::new(StatsCollector(stats)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

/// Exposes [`SourceStats`] at scrape time.
#[derive(Debug)]
struct StatsCollector(Arc<SourceStats>);

/// What a counter says about a record.
enum Kind {
    Read,
    Emitted,
    /// Kept, but changed (truncated, lossily decoded).
    Altered,
    Dropped,
}

/// By name rather than by variant: other sources add counters, and a new one is a drop
/// reason unless listed here.
fn kind(c: StatCounter) -> Kind {
    match c.name() {
        "lines_read" | "otlp_log_records" | "otlp_metric_points" => Kind::Read,
        "records_emitted" => Kind::Emitted,
        "invalid_utf8"
        | "line_too_long"
        | "partial_line_overflow"
        | "malformed_container_line"
        | "format_mismatch"
        | "otlp_field_truncated" => Kind::Altered,
        _ => Kind::Dropped,
    }
}

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all = StatCounter::ALL;
        let single = |encoder: &mut DescriptorEncoder, name: &str, help: &str, v: u64| {
            let m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(v).encode(m)
        };
        let read: u64 = all
            .iter()
            .filter(|c| matches!(kind(**c), Kind::Read))
            .map(|c| self.0.get(*c))
            .sum();
        single(
            &mut encoder,
            "medic_records_read",
            "records (lines, messages) read by sources",
            read,
        )?;
        let emitted = self.0.get(StatCounter::RecordsEmitted);
        single(
            &mut encoder,
            "medic_records_emitted",
            "signals handed to the agent",
            emitted,
        )?;
        for (name, help, want_dropped) in [
            (
                "medic_records_dropped",
                "records or requests dropped, by reason",
                true,
            ),
            (
                "medic_records_altered",
                "records kept but altered (truncated, lossy UTF-8), by reason",
                false,
            ),
        ] {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for c in all {
                let matches = match kind(c) {
                    Kind::Dropped => want_dropped,
                    Kind::Altered => !want_dropped,
                    _ => false,
                };
                if !matches {
                    continue;
                }
                let labels = [("reason", c.name())];
                let fam = m.encode_family(&labels)?;
                ConstCounter::new(self.0.get(c)).encode(fam)?;
            }
        }
        Ok(())
    }
}

pub fn router() -> axum::Router<ServerState> {
    axum::Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<ServerState>) -> Response {
    match state.metrics.render(state.stats.clone()) {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}

/// Middleware: counts every request by its route pattern (not its raw path, so a
/// scanner cannot create unbounded label values) and status.
pub async fn count_requests(
    State(state): State<ServerState>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    state.metrics.count_request(&route, resp.status().as_u16());
    resp
}
