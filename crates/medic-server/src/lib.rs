//! medic's HTTP server. Each ingest protocol is one module under `routes/` that turns what it
//! receives into `Signal`s on the agent's channel; `router` merges them. Listens on 127.0.0.1
//! unless configured otherwise.

pub mod auth;
/// OTLP/gRPC receiver (`serve_grpc`).
#[cfg(feature = "otlp")]
pub mod grpc;
pub mod routes;
pub mod tls;

use medic_core::Signal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

pub use routes::metrics::ServerMetrics;

/// What every route handler can reach.
#[derive(Clone)]
pub struct ServerState {
    /// Where received signals go (the agent's input).
    pub signals: mpsc::Sender<Signal>,
    /// Counters of accepted and dropped records, with reasons.
    pub stats: Arc<medic_signals::SourceStats>,
    /// Body-size bounds and other ingest settings (from `server:` in medic.yaml).
    pub limits: IngestLimits,
    /// Requests by route and status, for `/metrics`.
    pub metrics: Arc<ServerMetrics>,
    /// Who may do what: every route checks it.
    pub auth: Arc<auth::Auth>,
    /// The agent's store, for `/api/v1` (None: the API answers 503, ingest still works).
    pub store: Option<Arc<medic_store::Store>>,
    /// The policies in force, for `/api/v1/policies`.
    pub policies: Arc<Vec<medic_config::Policy>>,
    /// OTLP delta → cumulative running totals, shared by the HTTP and gRPC receivers so a
    /// series keeps its total whichever way its points arrive.
    #[cfg(feature = "otlp")]
    pub otlp_delta: Arc<medic_signals::ingest::otlp::DeltaState>,
}

impl ServerState {
    /// A state with the default limits and no tokens (every request is refused until
    /// [`ServerState::with_auth`]); see [`ServerState::with_config`].
    pub fn new(signals: mpsc::Sender<Signal>, stats: Arc<medic_signals::SourceStats>) -> Self {
        ServerState {
            signals,
            stats,
            limits: IngestLimits::default(),
            metrics: Arc::new(ServerMetrics::new()),
            auth: Arc::new(auth::Auth::deny_all()),
            store: None,
            policies: Arc::default(),
            #[cfg(feature = "otlp")]
            otlp_delta: Arc::default(),
        }
    }

    /// Takes the limits from the `server:` section.
    pub fn with_config(mut self, cfg: &medic_config::ServerConfig) -> Self {
        self.limits = IngestLimits::from(cfg);
        self
    }

    pub fn with_auth(mut self, auth: Arc<auth::Auth>) -> Self {
        self.auth = auth;
        self
    }

    pub fn with_store(mut self, store: Arc<medic_store::Store>) -> Self {
        self.store = Some(store);
        self
    }

    pub fn with_policies(mut self, policies: Vec<medic_config::Policy>) -> Self {
        self.policies = Arc::new(policies);
        self
    }
}

/// Bounds applied by the ingest routes.
#[derive(Clone, Debug)]
pub struct IngestLimits {
    /// Largest body as sent (413 beyond).
    pub max_body_bytes: usize,
    /// Largest body after decompression (413 beyond: a compression bomb).
    pub max_decompressed_bytes: usize,
    /// remote_write: the label naming a series' service (else `job`).
    pub remote_write_service_label: String,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits::from(&medic_config::ServerConfig::default())
    }
}

impl From<&medic_config::ServerConfig> for IngestLimits {
    fn from(c: &medic_config::ServerConfig) -> Self {
        IngestLimits {
            max_body_bytes: c.max_body_bytes,
            max_decompressed_bytes: c.max_decompressed_bytes,
            remote_write_service_label: c.remote_write_service_label.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "invalid listen address `{0}`: expected `ip:port` such as `127.0.0.1:9400` (or a bare port, which binds 127.0.0.1)"
    )]
    InvalidListen(String),
    #[error(
        "refusing to listen on {addr} without authentication: anyone who can reach it could push signals and make medic act. Add `server.auth.tokens`, or listen on 127.0.0.1"
    )]
    Exposed { addr: SocketAddr },
    #[error(
        "no server tokens: every request would be refused. Add `server.auth.tokens` (or `server.auth.unauthenticated: true` on loopback)"
    )]
    NoTokens,
    #[error("server tokens: {0}")]
    Auth(#[from] auth::AuthError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// All routes, one registration line per protocol, each group behind the role it needs.
pub fn router(state: ServerState) -> axum::Router {
    use axum::middleware::from_fn_with_state;
    let ingest = axum::Router::new()
        .merge(routes::logs::router())
        .merge(routes::remote_write::router())
        .merge(routes::alertmanager::router())
        .merge(routes::otlp::router())
        .route_layer(from_fn_with_state(state.clone(), auth::require_ingest));
    let view = axum::Router::new()
        .merge(routes::metrics::router())
        .merge(routes::api::read_router())
        .route_layer(from_fn_with_state(state.clone(), auth::require_viewer));
    let approve = routes::api::approve_router()
        .route_layer(from_fn_with_state(state.clone(), auth::require_approver));
    let admin = routes::api::admin_router()
        .route_layer(from_fn_with_state(state.clone(), auth::require_admin));
    axum::Router::new()
        .merge(ingest)
        .merge(view)
        .merge(approve)
        .merge(admin)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            routes::metrics::count_requests,
        ))
        .with_state(state)
}

/// Parses `listen`: `ip:port`, or a bare port (bound on 127.0.0.1, never on every interface
/// by accident).
pub fn parse_listen(listen: &str) -> Result<SocketAddr, ServerError> {
    let s = listen.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let port = s.strip_prefix(':').unwrap_or(s);
    match port.parse::<u16>() {
        Ok(p) => Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p)),
        Err(_) => Err(ServerError::InvalidListen(listen.to_string())),
    }
}

/// Refuses what would let anyone in from outside, or no one at all.
fn check_exposure(addr: SocketAddr, auth: &auth::Auth) -> Result<(), ServerError> {
    if auth.is_open() {
        if !addr.ip().is_loopback() {
            return Err(ServerError::Exposed { addr });
        }
        tracing::warn!(
            "the server at {addr} is unauthenticated (`server.auth.unauthenticated`): anyone on this machine may use it"
        );
    } else if auth.token_count() == 0 {
        return Err(ServerError::NoTokens);
    }
    Ok(())
}

/// Binds `listen` and serves [`router`] in a background task until `shutdown` becomes true
/// (or its sender is dropped). Returns the bound address (port 0 picks a free port).
pub async fn serve(
    listen: &str,
    state: ServerState,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, ServerError> {
    serve_http(listen, state, None, shutdown).await
}

/// [`serve`], over TLS when `tls` is given.
async fn serve_http(
    listen: &str,
    state: ServerState,
    tls: Option<Arc<tls::Tls>>,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, ServerError> {
    let addr = parse_listen(listen)?;
    check_exposure(addr, &state.auth)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    let metrics = state.metrics.clone();
    let app = router(state);
    let stop = until(shutdown.clone());
    match tls {
        None => {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %e, "medic server stopped");
                }
            });
        }
        Some(tls) => {
            let rx = tls::accept(
                listener,
                tls,
                tls::Alpn::Http1,
                metrics,
                shutdown,
                |stream, peer| (stream, peer),
            );
            let listener = tls::HttpListener { rx, local: bound };
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %e, "medic server stopped");
                }
            });
        }
    }
    Ok(bound)
}

/// Calls `f` every `period` (the first time one period from now) until `shutdown`.
pub(crate) fn every(
    period: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
    f: impl Fn() + Send + 'static,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => f(),
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
            }
        }
    });
}

/// Resolves when `shutdown` becomes true or its sender is dropped.
pub(crate) async fn until(mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Where a configured server listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listening {
    pub http: SocketAddr,
    /// The OTLP gRPC receiver, when built with the `otlp` feature and
    /// `server.otlp_grpc_listen` is not empty.
    pub otlp_grpc: Option<SocketAddr>,
}

/// How often token files, token variables and TLS files are re-read.
const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts everything `server` asks for: the HTTP server (ingest routes, Alertmanager webhook,
/// /metrics) and, when built with `otlp` and `otlp_grpc_listen` is set, the OTLP gRPC
/// receiver; both over TLS with `server.tls`. All run in background tasks until `shutdown`.
pub async fn serve_configured(
    server: &medic_config::ServerConfig,
    state: ServerState,
    shutdown: watch::Receiver<bool>,
) -> Result<Listening, ServerError> {
    let tls = match &server.tls {
        Some(cfg) => {
            let tls = Arc::new(tls::Tls::load(cfg)?);
            tls::spawn_reloader(tls.clone(), RELOAD_EVERY, shutdown.clone());
            Some(tls)
        }
        None => None,
    };
    let http = serve_http(&server.listen, state.clone(), tls.clone(), shutdown.clone()).await?;
    auth::spawn_reloader(state.auth.clone(), RELOAD_EVERY, shutdown.clone());
    #[cfg(feature = "otlp")]
    let otlp_grpc = match server.otlp_grpc_listen.trim() {
        "" => None,
        listen => {
            let addr = parse_listen(listen)?;
            check_exposure(addr, &state.auth)?;
            Some(grpc::serve_grpc_over(addr, state, tls, shutdown).await?)
        }
    };
    #[cfg(not(feature = "otlp"))]
    let otlp_grpc = {
        if !server.otlp_grpc_listen.trim().is_empty() {
            tracing::warn!(
                "server.otlp_grpc_listen is set, but this build has no OTLP support (feature `otlp`): nothing listens on {}",
                server.otlp_grpc_listen
            );
        }
        drop((state, tls, shutdown));
        None
    };
    Ok(Listening { http, otlp_grpc })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_is_checked_before_anything_is_bound() {
        let open = auth::Auth::with_env(
            &medic_config::AuthConfig {
                tokens: Vec::new(),
                unauthenticated: true,
            },
            |_| None,
        )
        .expect("auth");
        // Never bound: the check refuses first.
        let everywhere: SocketAddr = "0.0.0.0:9400".parse().expect("addr");
        let e = check_exposure(everywhere, &open).expect_err("refused");
        assert!(matches!(e, ServerError::Exposed { .. }), "{e}");
        assert!(e.to_string().contains("listen on 127.0.0.1"), "{e}");
        assert!(check_exposure("127.0.0.1:9400".parse().expect("addr"), &open).is_ok());
        assert!(check_exposure("[::1]:9400".parse().expect("addr"), &open).is_ok());
        let tokens = auth::Auth::from_tokens(&[("a", medic_config::Role::Ingest, "t")]);
        assert!(check_exposure(everywhere, &tokens).is_ok());
        assert!(matches!(
            check_exposure(everywhere, &auth::Auth::deny_all()),
            Err(ServerError::NoTokens)
        ));
    }
}
