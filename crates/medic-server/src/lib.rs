//! medic's HTTP server. Each ingest protocol is one module under `routes/` that turns what it
//! receives into `Signal`s on the agent's channel; `router` merges them. Listens on 127.0.0.1
//! unless configured otherwise.

pub mod routes;

use medic_core::Signal;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What every route handler can reach.
#[derive(Clone)]
pub struct ServerState {
    /// Where received signals go (the agent's input).
    pub signals: mpsc::Sender<Signal>,
    /// Counters of accepted and dropped records, with reasons.
    pub stats: Arc<medic_signals::SourceStats>,
}

/// All routes, one registration line per protocol.
pub fn router(state: ServerState) -> axum::Router {
    axum::Router::new()
        .merge(routes::logs::router())
        .merge(routes::remote_write::router())
        .merge(routes::alertmanager::router())
        .merge(routes::otlp::router())
        .merge(routes::metrics::router())
        .with_state(state)
}
