//! `medic demo-estate --dir DIR`: the demo estate as one process. It runs the five demo
//! services under the `medic-act` supervisor, serves the supervisor's `/v1` API and the
//! `/demo` fault-injection API on one 127.0.0.1 port, and drives the load generator.

use crate::DemoError;
use crate::loadgen::LoadGen;
use crate::supervisor::Supervisor;
use crate::topology::{self, BAD_RELEASE};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use medic_core::{ChangeEvent, ChangeKind, Ts};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Arguments of `medic demo-estate`.
#[derive(clap::Args, Debug, Clone)]
pub struct EstateArgs {
    /// The estate directory (created if missing).
    #[arg(long)]
    pub dir: PathBuf,
    /// Seed of every random choice (jitter, arrivals, noise).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The medic binary the services run as (`medic demo-service`); defaults to this one.
    #[arg(long)]
    pub medic_bin: Option<PathBuf>,
    /// Leak rate of the `memory_leak` fault, MiB per second.
    #[arg(long, default_value_t = 16.0)]
    pub leak_mib_per_s: f64,
    /// Base load, requests per second across all routes.
    #[arg(long, default_value_t = 30.0)]
    pub base_rps: f64,
    /// Home-page traffic multiplier of `load_surge` and `planned_campaign`.
    #[arg(long, default_value_t = DEFAULT_SURGE_FACTOR)]
    pub surge_factor: f64,
}

/// Chosen with the frontend's capacity (2 workers x 25 ms, about 75 rps per replica): at 30
/// rps base, x12 on the home page is ~195 rps, which two replicas shed and four absorb.
pub const DEFAULT_SURGE_FACTOR: f64 = 12.0;
/// Added latency of the `latency` fault.
pub const LATENCY_FAULT_MS: u64 = 700;
/// How far ahead a planned campaign is announced.
pub const CAMPAIGN_LEAD: Duration = Duration::from_secs(4);
/// How long a planned campaign lasts on the calendar.
pub const CAMPAIGN_LENGTH: Duration = Duration::from_secs(600);

/// The faults `/demo/faults` can inject.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    MemoryLeak,
    BadConfig,
    BadDeployment,
    DependencyDown,
    Latency,
    LoadSurge,
    PlannedCampaign,
}

impl FaultKind {
    pub fn default_service(self) -> &'static str {
        match self {
            FaultKind::MemoryLeak => "catalog",
            FaultKind::BadConfig => "checkout",
            FaultKind::BadDeployment => "payment",
            FaultKind::DependencyDown => "cache",
            FaultKind::Latency => "payment",
            FaultKind::LoadSurge | FaultKind::PlannedCampaign => "frontend",
        }
    }
}

/// Body of `POST /demo/faults` and `POST /demo/clear`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: FaultKind,
    #[serde(default)]
    pub service: Option<String>,
}

/// Answer of `POST /demo/faults`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Injected {
    pub kind: FaultKind,
    pub service: String,
    /// Milliseconds since the epoch when the fault takes effect.
    pub injected_at: i64,
    pub detail: String,
}

/// Parses a fault request and resolves its service.
pub fn parse_fault_spec(body: &[u8]) -> Result<(FaultKind, String), String> {
    let spec: FaultSpec = serde_json::from_slice(body).map_err(|e| {
        format!(
            "expected {{\"kind\":\"memory_leak|bad_config|bad_deployment|dependency_down|latency|load_surge|planned_campaign\",\"service\":optional}}: {e}"
        )
    })?;
    let service = spec
        .service
        .unwrap_or_else(|| spec.kind.default_service().to_string());
    if !topology::is_demo_service(&service) {
        return Err(format!(
            "unknown service {service:?}: expected one of frontend, catalog, cache, checkout, payment"
        ));
    }
    if matches!(spec.kind, FaultKind::LoadSurge | FaultKind::PlannedCampaign)
        && service != "frontend"
    {
        return Err(format!(
            "{:?} targets {service:?}, but the load generator only sends traffic to frontend",
            spec.kind
        ));
    }
    Ok((spec.kind, service))
}

struct Estate {
    supervisor: OnceLock<Supervisor>,
    load: OnceLock<LoadGen>,
    client: reqwest::Client,
    leak_mib_per_s: f64,
    surge_factor: f64,
    /// A campaign waiting for its start time.
    campaign: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Domain errors of the `/demo` API, mapped to HTTP statuses in one place.
enum ApiError {
    BadRequest(String),
    Conflict(String),
    NotReady,
    Upstream(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, msg) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::NotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the estate is still starting".to_string(),
            ),
            ApiError::Upstream(m) => (StatusCode::BAD_GATEWAY, m),
        };
        (code, axum::Json(serde_json::json!({ "error": msg }))).into_response()
    }
}

impl Estate {
    fn supervisor(&self) -> Result<&Supervisor, ApiError> {
        self.supervisor.get().ok_or(ApiError::NotReady)
    }
    fn load(&self) -> Result<&LoadGen, ApiError> {
        self.load.get().ok_or(ApiError::NotReady)
    }

    /// Sends an `/admin/fault` body to every running instance of `service`.
    async fn admin_fault(
        &self,
        service: &str,
        body: serde_json::Value,
    ) -> Result<String, ApiError> {
        let sup = self.supervisor()?;
        let workloads = sup.workloads().await;
        let Some(w) = workloads.iter().find(|w| w.service == service) else {
            return Err(ApiError::Conflict(format!("no workload {service:?}")));
        };
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for i in &w.instances {
            let url = format!("http://127.0.0.1:{}/admin/fault", i.port);
            let sent = self
                .client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => done.push(i.instance.clone()),
                Ok(r) => failed.push(format!("{} answered {}", i.instance, r.status())),
                Err(e) => failed.push(format!("{} unreachable: {e}", i.instance)),
            }
        }
        if done.is_empty() {
            return Err(ApiError::Upstream(format!(
                "no instance of {service} accepted the fault: {}",
                failed.join("; ")
            )));
        }
        let mut detail = format!("applied to {}", done.join(", "));
        if !failed.is_empty() {
            detail.push_str(&format!(" (not to: {})", failed.join("; ")));
        }
        Ok(detail)
    }

    async fn inject(&self, kind: FaultKind, service: String) -> Result<Injected, ApiError> {
        let now = Ts::now();
        let sup = self.supervisor()?;
        let (injected_at, detail) = match kind {
            FaultKind::MemoryLeak => {
                let d = self
                    .admin_fault(
                        &service,
                        serde_json::json!({"kind": "memory_leak", "mib_per_s": self.leak_mib_per_s}),
                    )
                    .await?;
                (
                    now,
                    format!("memory leak of {} MiB/s {d}", self.leak_mib_per_s),
                )
            }
            FaultKind::BadConfig => {
                let version = sup
                    .set_config(&service, topology::broken_config(&service), "deploy-bot")
                    .await
                    .map_err(|e| ApiError::Conflict(e.to_string()))?;
                (
                    now,
                    format!("config {version} of {service} has dependency_timeout_ms as a string"),
                )
            }
            FaultKind::BadDeployment => {
                let d = sup
                    .deploy(&service, BAD_RELEASE, "ci-pipeline")
                    .await
                    .map_err(|e| ApiError::Conflict(e.to_string()))?;
                (now, d)
            }
            FaultKind::DependencyDown => {
                let d = self
                    .admin_fault(&service, serde_json::json!({"kind": "crash"}))
                    .await?;
                (now, format!("crashed {d}"))
            }
            FaultKind::Latency => {
                let d = self
                    .admin_fault(
                        &service,
                        serde_json::json!({"kind": "latency", "ms": LATENCY_FAULT_MS}),
                    )
                    .await?;
                (now, format!("{LATENCY_FAULT_MS} ms added latency {d}"))
            }
            FaultKind::LoadSurge => {
                self.load()?.set_multiplier(self.surge_factor);
                (
                    now,
                    format!("home-page traffic x{} on {service}", self.surge_factor),
                )
            }
            FaultKind::PlannedCampaign => {
                // Fail before announcing when there is no load generator to surge.
                self.load()?;
                let start = now.plus_ms(CAMPAIGN_LEAD.as_millis() as i64);
                let factor = self.surge_factor;
                sup.add_calendar_entry(ChangeEvent {
                    kind: ChangeKind::Planned,
                    service: service.clone(),
                    start,
                    end: Some(start.plus_ms(CAMPAIGN_LENGTH.as_millis() as i64)),
                    from: None,
                    to: None,
                    description: format!(
                        "planned marketing campaign: landing-page traffic ×{factor} expected"
                    ),
                    author: Some("marketing".into()),
                })
                .await
                .map_err(|e| ApiError::Conflict(e.to_string()))?;
                (
                    start,
                    format!("campaign on the calendar; home-page traffic x{factor} from {start}"),
                )
            }
        };
        Ok(Injected {
            kind,
            service,
            injected_at: injected_at.0,
            detail,
        })
    }
}

/// Runs the estate until SIGINT/SIGTERM or until the parent process dies.
pub async fn run(args: EstateArgs) -> Result<(), DemoError> {
    if !(args.leak_mib_per_s > 0.0 && args.leak_mib_per_s <= 1024.0) {
        return Err(DemoError::Invalid(format!(
            "--leak-mib-per-s is {}, expected a number above 0 and at most 1024",
            args.leak_mib_per_s
        )));
    }
    if !(args.surge_factor.is_finite() && args.surge_factor >= 1.0 && args.surge_factor <= 100.0) {
        return Err(DemoError::Invalid(format!(
            "--surge-factor is {}, expected a number from 1 to 100",
            args.surge_factor
        )));
    }
    let medic_bin = match &args.medic_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| DemoError::io("locate the current executable", "/proc/self/exe", e))?,
    };
    std::fs::create_dir_all(&args.dir).map_err(|e| DemoError::io("create", &args.dir, e))?;
    let dir =
        std::fs::canonicalize(&args.dir).map_err(|e| DemoError::io("resolve", &args.dir, e))?;
    let parent = std::os::unix::process::parent_id();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| DemoError::Http(e.to_string()))?;
    let estate = Arc::new(Estate {
        supervisor: OnceLock::new(),
        load: OnceLock::new(),
        client,
        leak_mib_per_s: args.leak_mib_per_s,
        surge_factor: args.surge_factor,
        campaign: Mutex::new(None),
    });
    let specs = topology::workload_specs(&medic_bin, args.seed);
    let sup = Supervisor::start_with_routes(&dir, specs, demo_router(Arc::clone(&estate)))
        .await
        .map_err(|e| DemoError::Supervisor(e.to_string()))?;
    let _ = estate.supervisor.set(sup.clone());
    let load = match LoadGen::start(&dir, args.base_rps, args.seed) {
        Ok(l) => l,
        Err(e) => {
            sup.shutdown().await;
            return Err(DemoError::Invalid(e));
        }
    };
    let _ = estate.load.set(load);
    tracing::info!(dir = %dir.display(), addr = %sup.addr(), "demo estate running");
    wait_for_stop(parent).await;
    if let Some(t) = lock(&estate.campaign).take() {
        t.abort();
    }
    if let Some(l) = estate.load.get() {
        l.set_multiplier(0.0);
    }
    sup.shutdown().await;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

async fn wait_for_stop(parent: u32) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            Some(()) = async { match term.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => return,
            Some(()) = async { match int.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => return,
            _ = poll.tick() => {
                if std::os::unix::process::parent_id() != parent {
                    return;
                }
            }
        }
    }
}

fn demo_router(estate: Arc<Estate>) -> Router {
    Router::new()
        .route("/demo/faults", post(post_fault))
        .route("/demo/clear", post(post_clear))
        .route("/demo/load", get(get_load))
        .with_state(estate)
}

async fn post_fault(State(estate): State<Arc<Estate>>, body: Bytes) -> Response {
    let (kind, service) = match parse_fault_spec(&body) {
        Ok(x) => x,
        Err(e) => return ApiError::BadRequest(e).into_response(),
    };
    if kind == FaultKind::PlannedCampaign {
        return match plan_campaign(&estate, service).await {
            Ok(i) => axum::Json(i).into_response(),
            Err(e) => e.into_response(),
        };
    }
    match estate.inject(kind, service).await {
        Ok(i) => axum::Json(i).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Puts the campaign on the calendar, then raises the traffic at its start.
async fn plan_campaign(estate: &Arc<Estate>, service: String) -> Result<Injected, ApiError> {
    let injected = estate.inject(FaultKind::PlannedCampaign, service).await?;
    let e = Arc::clone(estate);
    let wait = Duration::from_millis(
        u64::try_from(injected.injected_at.saturating_sub(Ts::now().0)).unwrap_or(0),
    );
    let task = tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        if let Some(l) = e.load.get() {
            l.set_multiplier(e.surge_factor);
        }
    });
    if let Some(old) = lock(&estate.campaign).replace(task) {
        old.abort();
    }
    Ok(injected)
}

async fn post_clear(State(estate): State<Arc<Estate>>, body: Bytes) -> Response {
    let (kind, service) = match parse_fault_spec(&body) {
        Ok(x) => x,
        Err(e) => return ApiError::BadRequest(e).into_response(),
    };
    let detail = match kind {
        FaultKind::LoadSurge | FaultKind::PlannedCampaign => {
            if let Some(t) = lock(&estate.campaign).take() {
                t.abort();
            }
            match estate.load() {
                Ok(l) => {
                    l.set_multiplier(1.0);
                    "traffic back to normal".to_string()
                }
                Err(e) => return e.into_response(),
            }
        }
        _ => match estate
            .admin_fault(&service, serde_json::json!({"kind": "clear"}))
            .await
        {
            Ok(d) => format!("faults cleared: {d}"),
            // Nothing to clear when no instance is up (or medic already replaced them).
            Err(ApiError::Upstream(m)) => format!("nothing cleared: {m}"),
            Err(e) => return e.into_response(),
        },
    };
    axum::Json(serde_json::json!({
        "kind": kind,
        "service": service,
        "cleared_at": Ts::now().0,
        "detail": detail,
    }))
    .into_response()
}

async fn get_load(State(estate): State<Arc<Estate>>) -> Response {
    match estate.load() {
        Ok(l) => axum::Json(l.snapshot()).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_specs_resolve_default_services() {
        let cases = [
            ("memory_leak", "catalog"),
            ("bad_config", "checkout"),
            ("bad_deployment", "payment"),
            ("dependency_down", "cache"),
            ("latency", "payment"),
            ("load_surge", "frontend"),
            ("planned_campaign", "frontend"),
        ];
        for (kind, svc) in cases {
            let body = format!(r#"{{"kind":"{kind}"}}"#);
            let (k, s) = parse_fault_spec(body.as_bytes()).unwrap();
            assert_eq!(s, svc);
            assert_eq!(serde_json::to_value(k).unwrap(), kind);
        }
        let (_, s) = parse_fault_spec(br#"{"kind":"latency","service":"catalog"}"#).unwrap();
        assert_eq!(s, "catalog");
    }

    #[test]
    fn bad_fault_specs_are_refused_with_a_reason() {
        for (bad, needle) in [
            (&b""[..], "expected"),
            (b"{}", "kind"),
            (br#"{"kind":"meteor"}"#, "unknown variant"),
            (br#"{"kind":"latency","service":"db"}"#, "unknown service"),
            (br#"{"kind":"latency","service":"../x"}"#, "unknown service"),
            (
                br#"{"kind":"load_surge","service":"cache"}"#,
                "only sends traffic",
            ),
            (br#"{"kind":"latency","extra":1}"#, "unknown field"),
            (br#"{"kind":"latency","service":7}"#, "expected"),
        ] {
            let e = parse_fault_spec(bad).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }
}
