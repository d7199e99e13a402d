//! One demo service process: `medic demo-service ...`. A real HTTP server on 127.0.0.1 with a
//! capacity model (workers + bounded queue), dependency calls over HTTP, realistic logs,
//! Prometheus metrics and injectable faults.

pub mod config;
pub mod faults;
pub mod logger;
pub mod metrics;

use crate::DemoError;
use crate::endpoints::Endpoints;
use crate::prng::Prng;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use config::ServiceConfig;
use faults::{FaultRequest, Faults};
use logger::{Logger, RequestLog, Severity, stack_trace};
use metrics::{AppInfo, Metrics};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Exit code for a configuration error (sysexits' EX_CONFIG).
pub const EX_CONFIG: i32 = 78;

/// Arguments of `medic demo-service` (filled by the supervisor from the argv template).
#[derive(clap::Args, Debug, Clone)]
pub struct DemoServiceArgs {
    /// Service name (frontend, catalog, cache, checkout, payment).
    #[arg(long)]
    pub service: String,
    /// Instance name, `<service>-<replica index>`.
    #[arg(long)]
    pub instance: String,
    /// Port to listen on.
    #[arg(long)]
    pub port: u16,
    /// Address to listen on: loopback only (a sandbox pod's IP is one, e.g. 127.3.0.7).
    #[arg(long, default_value = "127.0.0.1")]
    pub listen_ip: std::net::Ipv4Addr,
    /// Log file (appended); `-` writes to standard output (a container's log).
    #[arg(long)]
    pub log: PathBuf,
    /// Config file (JSON), validated at start-up.
    #[arg(long)]
    pub config: PathBuf,
    /// Release version this process runs.
    #[arg(long)]
    pub release: String,
    /// Scratch directory kept across crash restarts of this instance.
    #[arg(long)]
    pub instance_dir: PathBuf,
    /// The estate directory (for `endpoints/<dep>.json`).
    #[arg(long)]
    pub estate_dir: PathBuf,
    /// A service this one calls (repeatable).
    #[arg(long = "dep")]
    pub deps: Vec<String>,
    /// `NAME=HOST:PORT`: reach dependency NAME at a fixed address (a Kubernetes Service)
    /// instead of the estate's endpoints file (repeatable).
    #[arg(long = "dep-addr")]
    pub dep_addrs: Vec<String>,
    /// Fraction of requests that fail with 500 (a buggy release).
    #[arg(long, default_value_t = 0.0)]
    pub fail_ratio: f64,
    /// Seed of the jitter and noise.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Which service a route goes to next, by route: `/product` walks frontend → catalog →
/// cache, `/checkout` walks frontend → checkout → payment.
fn route_chain(route: &str) -> &'static [&'static str] {
    match route {
        "/product" => &["catalog", "cache"],
        "/checkout" => &["checkout", "payment"],
        _ => &[],
    }
}

/// The dependency (if any) this service calls to serve `route`.
pub fn downstream_for<'a>(route: &str, deps: &'a [Arc<Endpoints>]) -> Option<&'a Arc<Endpoints>> {
    let chain = route_chain(route);
    deps.iter().find(|d| chain.contains(&d.service()))
}

struct App {
    service: String,
    instance: String,
    release: String,
    cfg: ServiceConfig,
    fail_ratio: f64,
    deps: Vec<Arc<Endpoints>>,
    client: reqwest::Client,
    metrics: Metrics,
    info: AppInfo,
    logger: Logger,
    faults: Faults,
    rng: Mutex<Prng>,
    workers: Semaphore,
    waiting: AtomicU32,
}

impl App {
    fn rng<R>(&self, f: impl FnOnce(&mut Prng) -> R) -> R {
        let mut g = match self.rng.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }
}

/// How one request ended.
struct Served {
    status: u16,
    body: String,
    error: Option<String>,
    stack: Vec<String>,
}

impl Served {
    fn ok(body: String) -> Self {
        Served {
            status: 200,
            body,
            error: None,
            stack: Vec::new(),
        }
    }
    fn failed(status: u16, error: String, stack: Vec<String>) -> Self {
        Served {
            status,
            body: serde_json::json!({ "error": error }).to_string(),
            error: Some(error),
            stack,
        }
    }
}

/// Runs the service until SIGTERM or until its parent dies. A bad config exits the
/// process with [`EX_CONFIG`] after logging a FATAL line.
pub async fn run(args: DemoServiceArgs) -> Result<(), DemoError> {
    let logger = Logger::open(&args.log, &args.service, &args.instance)
        .map_err(|e| DemoError::io("open log file", &args.log, e))?;
    let cfg = match config::load(&args.config, &args.service) {
        Ok(c) => c,
        Err(problem) => {
            let line = format!("FATAL config error in {}: {problem}", args.config.display());
            logger.event(Severity::Fatal, &line, &[]);
            eprintln!("{line}");
            std::process::exit(EX_CONFIG);
        }
    };
    let config_version = config::version_of(&args.config);
    let app = new_app(&args, cfg, logger)?;
    if !args.listen_ip.is_loopback() {
        return Err(DemoError::Invalid(format!(
            "--listen-ip is {}: the demo listens on loopback addresses (127.0.0.0/8) only",
            args.listen_ip
        )));
    }
    let addr = format!("{}:{}", args.listen_ip, args.port);
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            app.logger.event(
                Severity::Fatal,
                &format!("cannot listen on {addr}: {e}"),
                &stack_trace(&app.service, "BindError", &e.to_string()),
            );
            return Err(DemoError::Listen { addr, source: e });
        }
    };
    app.logger.event(
        Severity::Info,
        &format!(
            "starting {} release {} config {} on {addr} (workers={}, max_queue={}, dependencies=[{}])",
            app.service,
            app.release,
            config_version,
            app.cfg.workers,
            app.cfg.max_queue,
            args.deps.join(",")
        ),
        &[],
    );
    if let Some(rate) = app.faults.persisted_leak() {
        // Deliberately silent: the agent must infer the leak from memory and OOM kills.
        let _ = app.faults.start_leak(rate);
    }
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(watch_for_shutdown(Arc::clone(&app), stop_tx));
    let router = router(Arc::clone(&app));
    let mut graceful_rx = stop_rx.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = graceful_rx.wait_for(|s| *s).await;
    });
    let server = async move { server.await };
    tokio::select! {
        r = server => {
            if let Err(e) = r {
                app.logger.event(Severity::Error, &format!("server error: {e}"), &[]);
            }
        }
        // In-flight requests get one second after the stop, then the process goes anyway.
        _ = async {
            let _ = stop_rx.wait_for(|s| *s).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        } => {}
    }
    app.logger.event(Severity::Info, "shutdown complete", &[]);
    Ok(())
}

/// Builds the shared state of a service process from its arguments and validated config.
fn new_app(
    args: &DemoServiceArgs,
    cfg: ServiceConfig,
    logger: Logger,
) -> Result<Arc<App>, DemoError> {
    if !(0.0..=1.0).contains(&args.fail_ratio) {
        return Err(DemoError::Invalid(format!(
            "--fail-ratio is {}, expected a number from 0 to 1",
            args.fail_ratio
        )));
    }
    std::fs::create_dir_all(&args.instance_dir)
        .map_err(|e| DemoError::io("create instance dir", &args.instance_dir, e))?;
    let client = reqwest::Client::builder()
        // No pooling: every call opens a connection, so round-robin and refused
        // connections behave like a fresh Service lookup.
        .pool_max_idle_per_host(0)
        .no_proxy()
        .connect_timeout(Duration::from_millis(cfg.dependency_timeout_ms))
        .build()
        .map_err(|e| DemoError::Http(e.to_string()))?;
    Ok(Arc::new(App {
        info: AppInfo {
            service: args.service.clone(),
            release: args.release.clone(),
            config_version: config::version_of(&args.config),
        },
        deps: dependencies(args)?,
        service: args.service.clone(),
        instance: args.instance.clone(),
        release: args.release.clone(),
        fail_ratio: args.fail_ratio,
        client,
        metrics: Metrics::default(),
        logger,
        faults: Faults::new(&args.instance_dir),
        rng: Mutex::new(Prng::for_stream(args.seed, &args.instance)),
        workers: Semaphore::new(cfg.workers as usize),
        waiting: AtomicU32::new(0),
        cfg,
    }))
}

/// Each `--dep`, at its `--dep-addr` when one names it, else through the endpoints file.
fn dependencies(args: &DemoServiceArgs) -> Result<Vec<Arc<Endpoints>>, DemoError> {
    let mut fixed = std::collections::BTreeMap::new();
    for d in &args.dep_addrs {
        let Some((name, addr)) = d.split_once('=') else {
            return Err(DemoError::Invalid(format!(
                "--dep-addr {d:?}: expected NAME=HOST:PORT"
            )));
        };
        if !args.deps.iter().any(|x| x == name) {
            return Err(DemoError::Invalid(format!(
                "--dep-addr names {name:?}, which is not a --dep of this service"
            )));
        }
        fixed.insert(name, addr);
    }
    args.deps
        .iter()
        .map(|d| match fixed.get(d.as_str()) {
            Some(addr) => Endpoints::fixed(d, addr)
                .map(Arc::new)
                .map_err(DemoError::Invalid),
            None => Ok(Arc::new(Endpoints::new(&args.estate_dir, d))),
        })
        .collect()
}

/// Waits for SIGTERM/SIGINT or for the parent process to go away, then signals the stop.
async fn watch_for_shutdown(app: Arc<App>, stop: tokio::sync::watch::Sender<bool>) {
    let parent = std::os::unix::process::parent_id();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    let reason = loop {
        tokio::select! {
            Some(()) = async { match term.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                break "received SIGTERM";
            }
            Some(()) = async { match int.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                break "received SIGINT";
            }
            _ = poll.tick() => {
                if std::os::unix::process::parent_id() != parent {
                    break "parent process exited";
                }
            }
        }
    };
    app.logger
        .event(Severity::Info, &format!("{reason}, shutting down"), &[]);
    let _ = stop.send(true);
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/product", get(product))
        .route("/checkout", post(checkout))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/admin/fault", post(admin_fault))
        .route("/admin/faults", get(admin_faults))
        .with_state(app)
}

async fn home(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if app.service != "frontend" {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    handle(app, Method::GET, "/", headers).await
}

async fn product(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    handle(app, Method::GET, "/product", headers).await
}

async fn checkout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    handle(app, Method::POST, "/checkout", headers).await
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    let text = app
        .metrics
        .render(&app.info, metrics::read_process_figures());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn admin_fault(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req = match faults::parse_fault(&body) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e),
    };
    match req {
        FaultRequest::MemoryLeak { mib_per_s } => {
            let rate = mib_per_s.unwrap_or(faults::DEFAULT_LEAK_MIB_PER_S);
            if let Err(e) = app.faults.start_leak(rate) {
                return json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("cannot write the fault marker: {e}"),
                );
            }
        }
        FaultRequest::Latency { ms } => {
            app.faults
                .set_latency(ms.unwrap_or(faults::DEFAULT_LATENCY_MS));
        }
        FaultRequest::Clear {} => app.faults.clear(),
        FaultRequest::Crash {} => {
            app.logger.event(
                Severity::Fatal,
                "unrecoverable error: invariant violated in connection pool, aborting",
                &stack_trace(
                    &app.service,
                    "IllegalStateException",
                    "pool slot freed twice (slot 7)",
                ),
            );
            // Answer first so the injector sees success, then die the way a real crash does.
            tokio::spawn(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                std::process::abort();
            });
            return (
                StatusCode::ACCEPTED,
                axum::Json(serde_json::json!({"applied": "crash"})),
            )
                .into_response();
        }
    }
    axum::Json(serde_json::json!({"applied": kind_name(&req), "status": app.faults.status()}))
        .into_response()
}

fn kind_name(r: &FaultRequest) -> &'static str {
    match r {
        FaultRequest::MemoryLeak { .. } => "memory_leak",
        FaultRequest::Latency { .. } => "latency",
        FaultRequest::Crash {} => "crash",
        FaultRequest::Clear {} => "clear",
    }
}

async fn admin_faults(State(app): State<Arc<App>>) -> Response {
    axum::Json(app.faults.status()).into_response()
}

fn json_error(code: StatusCode, msg: &str) -> Response {
    (code, axum::Json(serde_json::json!({ "error": msg }))).into_response()
}

/// Serves one application request in its own task: a caller that gives up (a timeout
/// upstream) must not cancel the work, or the slow request would vanish from this service's
/// metrics and log, as it would not in a real server.
async fn handle(
    app: Arc<App>,
    method: Method,
    route: &'static str,
    headers: HeaderMap,
) -> Response {
    match tokio::spawn(handle_to_completion(app, method, route, headers)).await {
        Ok(resp) => resp,
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "request handler failed"),
    }
}

/// Serves one application request and records its metrics and log line.
async fn handle_to_completion(
    app: Arc<App>,
    method: Method,
    route: &'static str,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    app.metrics.in_flight_add(1);
    let trace_id = headers
        .get("x-trace-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(str::to_string)
        .unwrap_or_else(|| app.rng(Prng::hex_id));
    let served = serve(&app, &method, route, &trace_id).await;
    app.metrics.in_flight_add(-1);
    let elapsed = started.elapsed();
    app.metrics
        .observe(route, served.status, elapsed.as_secs_f64());
    let duration_ms = elapsed.as_millis() as u64;
    let req = RequestLog {
        method: method.as_str(),
        route,
        status: served.status,
        duration_ms,
        trace_id: &trace_id,
    };
    let severity = match served.status {
        500.. if served.status != 503 || !served.stack.is_empty() => Severity::Error,
        400.. => Severity::Warn,
        _ => Severity::Info,
    };
    app.logger
        .request(severity, &req, served.error.as_deref(), &served.stack);
    if served.status < 400 && duration_ms > app.cfg.slow_request_ms {
        app.logger.event(
            Severity::Warn,
            &format!(
                "slow request {} {route} took {duration_ms}ms (threshold {}ms) trace={trace_id}",
                method.as_str(),
                app.cfg.slow_request_ms
            ),
            &[],
        );
    }
    background_noise(&app);
    let mut resp = (
        StatusCode::from_u16(served.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        served.body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&trace_id) {
        resp.headers_mut().insert("x-trace-id", v);
    }
    resp
}

/// Occasional harmless WARN and, rarely, a benign ERROR: the noise real services make, so
/// that detectors are not tuned on silence.
fn background_noise(app: &App) {
    let (warn, error, pick) = app.rng(|r| (r.chance(0.004), r.chance(0.0008), r.below(3)));
    if warn {
        let msg = match pick {
            0 => "cache hit ratio 71% below target 80% for the last 60s",
            1 => "retrying metadata refresh after transient error (attempt 1/3)",
            _ => "GC pause 48ms exceeded 40ms budget",
        };
        app.logger.event(Severity::Warn, msg, &[]);
    }
    if error {
        app.logger.event(
            Severity::Error,
            "failed to publish analytics event: buffer full, event dropped",
            &stack_trace(
                &app.service,
                "BufferFullException",
                "analytics queue at capacity (1024)",
            ),
        );
    }
}

async fn serve(app: &App, method: &Method, route: &'static str, trace_id: &str) -> Served {
    if let Some(delay) = app.faults.latency() {
        tokio::time::sleep(delay).await;
    }
    let permit = match app.workers.try_acquire() {
        Ok(p) => p,
        Err(_) => {
            // Admission control: a bounded queue, beyond which the replica sheds load.
            let queued = app.waiting.fetch_add(1, Ordering::SeqCst);
            if queued >= app.cfg.max_queue {
                app.waiting.fetch_sub(1, Ordering::SeqCst);
                return Served::failed(
                    503,
                    format!(
                        "overloaded: {queued} requests queued (max_queue {}), request rejected",
                        app.cfg.max_queue
                    ),
                    Vec::new(),
                );
            }
            let p = app.workers.acquire().await;
            app.waiting.fetch_sub(1, Ordering::SeqCst);
            match p {
                Ok(p) => p,
                Err(_) => {
                    return Served::failed(503, "shutting down".into(), Vec::new());
                }
            }
        }
    };
    let downstream = downstream_for(route, &app.deps);
    // Per-route cost: rendering a page locally costs the full service time, proxying an
    // API call to a dependency half of it.
    let local_ms = match downstream {
        Some(_) => app.cfg.service_ms as f64 / 2.0,
        None => app.cfg.service_ms as f64,
    };
    let service_time = app.rng(|r| r.jitter(local_ms, 0.3));
    tokio::time::sleep(Duration::from_secs_f64(service_time / 1000.0)).await;
    burn_cpu(Duration::from_micros(app.cfg.cpu_work_us));
    drop(permit);

    if app.fail_ratio > 0.0 && app.rng(|r| r.chance(app.fail_ratio)) {
        let detail = format!(
            "NullPointerException in charge() (release {}): card_token was None",
            app.release
        );
        return Served::failed(
            500,
            format!("internal error in release {}: {detail}", app.release),
            stack_trace(&app.service, "GatewayError", &detail),
        );
    }
    if let Some(dep) = downstream
        && let Err(failure) = call_dependency(app, dep, method, route, trace_id).await
    {
        return failure;
    }
    let body = if route == "/" {
        format!(
            "<!doctype html><title>shop</title><h1>Welcome</h1><p>served by {}</p>",
            app.instance
        )
    } else {
        serde_json::json!({"service": app.service, "instance": app.instance, "trace_id": trace_id})
            .to_string()
    };
    Served::ok(body)
}

/// A little real CPU work per request, so that CPU time tracks load.
fn burn_cpu(d: Duration) {
    let start = Instant::now();
    let mut x: u64 = 1;
    while start.elapsed() < d {
        for _ in 0..64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        }
        std::hint::black_box(x);
    }
}

/// Calls a dependency; a refused connection is retried once on the next replica.
async fn call_dependency(
    app: &App,
    dep: &Endpoints,
    method: &Method,
    route: &str,
    trace_id: &str,
) -> Result<(), Served> {
    let name = dep.service();
    let addrs = match dep.pick() {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => {
            app.metrics.dependency(name, "no_endpoints");
            let msg = format!("no endpoints for dependency {name}");
            return Err(Served::failed(
                503,
                msg.clone(),
                stack_trace(&app.service, "UpstreamUnavailable", &msg),
            ));
        }
        Err(e) => {
            app.metrics.dependency(name, "no_endpoints");
            let msg = format!("no endpoints for dependency {name}: {e}");
            return Err(Served::failed(
                503,
                msg.clone(),
                stack_trace(&app.service, "UpstreamUnavailable", &msg),
            ));
        }
    };
    let timeout = Duration::from_millis(app.cfg.dependency_timeout_ms);
    let mut last_refused = String::new();
    for addr in &addrs {
        let url = format!("http://{addr}{route}");
        let sent = app
            .client
            .request(method.clone(), &url)
            .header("x-trace-id", trace_id)
            .timeout(timeout)
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => {
                app.metrics.dependency(name, "ok");
                return Ok(());
            }
            Ok(resp) => {
                let code = resp.status().as_u16();
                app.metrics.dependency(name, "error");
                let msg = format!("{name} at {addr} answered {code}");
                return Err(Served::failed(
                    502,
                    msg.clone(),
                    stack_trace(&app.service, "UpstreamError", &msg),
                ));
            }
            Err(e) if e.is_timeout() => {
                app.metrics.dependency(name, "timeout");
                let msg = format!(
                    "timed out after {}ms calling {name} at {addr}",
                    app.cfg.dependency_timeout_ms
                );
                return Err(Served::failed(
                    504,
                    msg.clone(),
                    stack_trace(&app.service, "TimeoutException", &msg),
                ));
            }
            Err(e) if e.is_connect() => {
                app.metrics.dependency(name, "connection_refused");
                last_refused = addr.clone();
            }
            Err(e) => {
                app.metrics.dependency(name, "error");
                let msg = format!("calling {name} at {addr} failed: {e}");
                return Err(Served::failed(
                    502,
                    msg.clone(),
                    stack_trace(&app.service, "UpstreamError", &msg),
                ));
            }
        }
    }
    let msg = format!("connection refused calling {name} at {last_refused}");
    Err(Served::failed(
        503,
        msg.clone(),
        stack_trace(&app.service, "UpstreamUnavailable", &msg),
    ))
}

#[cfg(test)]
mod tests;
