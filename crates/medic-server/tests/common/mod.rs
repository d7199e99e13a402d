//! Helpers shared by the server's integration tests: a running server on port 0, and the
//! real shippers (syslog-ng, rsyslog, Prometheus) installed by `shippers/install.sh`.
#![allow(dead_code)]

use medic_core::Signal;
use medic_server::{ServerState, serve};
use medic_signals::SourceStats;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

pub struct Running {
    pub addr: SocketAddr,
    pub rx: mpsc::Receiver<Signal>,
    pub state: ServerState,
    pub stop: watch::Sender<bool>,
}

/// The bearer tokens of [`start_server`]'s servers: one to push signals, one to read /metrics.
pub const INGEST_TOKEN: &str = "medic-test-ingest-3f9c";
pub const VIEWER_TOKEN: &str = "medic-test-viewer-8a21";

pub fn test_auth() -> Arc<medic_server::auth::Auth> {
    use medic_config::Role;
    Arc::new(medic_server::auth::Auth::from_tokens(&[
        ("shipper", Role::Ingest, INGEST_TOKEN),
        ("grafana", Role::Viewer, VIEWER_TOKEN),
    ]))
}

/// An HTTP client that sends [`INGEST_TOKEN`] (a request may override it).
pub fn ingest_client() -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {INGEST_TOKEN}").parse().expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

pub async fn start_server(channel: usize, tweak: impl FnOnce(&mut ServerState)) -> Running {
    let (tx, rx) = mpsc::channel(channel);
    let mut state = ServerState::new(tx, Arc::new(SourceStats::new())).with_auth(test_auth());
    tweak(&mut state);
    let (stop, shutdown) = watch::channel(false);
    let addr = serve("127.0.0.1:0", state.clone(), shutdown)
        .await
        .expect("server starts");
    Running {
        addr,
        rx,
        state,
        stop,
    }
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Receives until `n` signals arrived or `within` passed.
    pub async fn collect(&mut self, n: usize, within: Duration) -> Vec<Signal> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while out.len() < n {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(s)) => out.push(s),
                _ => break,
            }
        }
        out
    }
}

/// Where `install.sh` unpacked syslog-ng and rsyslog.
pub fn shippers_root() -> PathBuf {
    let dir = std::env::var_os("MEDIC_SHIPPERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/medic/shippers")
        });
    dir.join("root")
}

/// The real component at `path`, or `None` with a message: outside CI a missing shipper
/// skips the test (run `crates/medic-server/tests/shippers/install.sh`); in CI it fails.
pub fn require(path: &Path, what: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path.to_path_buf());
    }
    let msg = format!(
        "{what} not found at {}: run crates/medic-server/tests/shippers/install.sh",
        path.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// A child process stopped (by its PID) when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn(mut cmd: Command, log: &Path) -> ChildGuard {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    ChildGuard(cmd.spawn().expect("spawn"))
}

pub fn log_text(s: &Signal) -> Option<&medic_core::LogLine> {
    match &s.payload {
        medic_core::SignalPayload::Log(l) => Some(l),
        _ => None,
    }
}
