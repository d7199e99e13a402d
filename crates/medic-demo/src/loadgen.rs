//! The load generator: open-loop Poisson arrivals against the frontend, split by route, with
//! a multiplier on the home page for load surges. Open-loop, so that a slow estate does not
//! slow the load down (as real users do not wait for each other).

use crate::endpoints::Endpoints;
use crate::prng::Prng;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The routes and their share of the base load.
pub const ROUTES: [(&str, f64); 3] = [("/", 0.50), ("/product", 0.33), ("/checkout", 0.17)];
/// Timeout of one generated request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Requests outstanding at once; beyond it arrivals are dropped and counted, so that a dead
/// estate cannot make the generator pile up tasks without bound.
pub const MAX_IN_FLIGHT: u64 = 4000;
/// Latency percentiles cover this recent window.
pub const LATENCY_WINDOW: Duration = Duration::from_secs(10);

/// Arrival rate per route for a base rate and a home-page multiplier.
pub fn route_rates(base_rps: f64, home_multiplier: f64) -> Vec<(&'static str, f64)> {
    ROUTES
        .iter()
        .map(|(r, share)| {
            let m = if *r == "/" { home_multiplier } else { 1.0 };
            (*r, base_rps * share * m)
        })
        .collect()
}

/// Picks a route for a uniform draw `u` in [0, 1) given per-route rates.
pub fn pick_route(rates: &[(&'static str, f64)], u: f64) -> &'static str {
    let total: f64 = rates.iter().map(|(_, r)| r).sum();
    let mut x = u * total;
    for (route, r) in rates {
        if x < *r {
            return route;
        }
        x -= r;
    }
    rates.last().map(|(r, _)| *r).unwrap_or("/")
}

/// Percentile (0..=100) of a sample by nearest rank; `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[derive(Debug)]
struct Shared {
    base_rps: f64,
    multiplier_bits: AtomicU64,
    in_flight: AtomicU64,
    outcomes: Mutex<BTreeMap<&'static str, BTreeMap<String, u64>>>,
    latencies: Mutex<BTreeMap<&'static str, VecDeque<(Instant, f64)>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Shared {
    fn multiplier(&self) -> f64 {
        f64::from_bits(self.multiplier_bits.load(Ordering::Relaxed))
    }
    fn count(&self, route: &'static str, outcome: String) {
        *lock(&self.outcomes)
            .entry(route)
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }
    fn latency(&self, route: &'static str, ms: f64) {
        let now = Instant::now();
        let mut l = lock(&self.latencies);
        let q = l.entry(route).or_default();
        q.push_back((now, ms));
        while q
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > LATENCY_WINDOW)
        {
            q.pop_front();
        }
    }
}

/// Latency summary of one route over [`LATENCY_WINDOW`].
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LatencySummary {
    pub count: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// What `GET /demo/load` reports.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LoadSnapshot {
    pub base_rps: f64,
    pub multiplier: f64,
    pub rates: BTreeMap<String, f64>,
    pub in_flight: u64,
    /// route → outcome (HTTP status, `timeout`, `connection_refused`, `error`,
    /// `no_endpoints`, `dropped`) → count since start.
    pub outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    pub latency: BTreeMap<String, LatencySummary>,
}

/// A running load generator; dropping it stops the load.
#[derive(Debug)]
pub struct LoadGen {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LoadGen {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LoadGen {
    /// Starts generating `base_rps` against the frontend listed in `estate_dir`.
    pub fn start(estate_dir: &Path, base_rps: f64, seed: u64) -> Result<LoadGen, String> {
        Self::start_at(Endpoints::new(estate_dir, "frontend"), base_rps, seed)
    }

    /// Starts generating `base_rps` against the frontend at `endpoints` (e.g. a Service).
    pub fn start_at(endpoints: Endpoints, base_rps: f64, seed: u64) -> Result<LoadGen, String> {
        if !(base_rps.is_finite() && base_rps > 0.0 && base_rps <= 10_000.0) {
            return Err(format!(
                "base rate {base_rps} rps is out of range: expected more than 0 and at most 10000"
            ));
        }
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the load generator's HTTP client: {e}"))?;
        let shared = Arc::new(Shared {
            base_rps,
            multiplier_bits: AtomicU64::new(1.0f64.to_bits()),
            in_flight: AtomicU64::new(0),
            outcomes: Mutex::new(BTreeMap::new()),
            latencies: Mutex::new(BTreeMap::new()),
        });
        let endpoints = Arc::new(endpoints);
        let task = tokio::spawn(arrivals(Arc::clone(&shared), endpoints, client, seed));
        Ok(LoadGen { shared, task })
    }

    /// Sets the home-page multiplier (1 = normal traffic).
    pub fn set_multiplier(&self, m: f64) {
        let m = if m.is_finite() {
            m.clamp(0.0, 1000.0)
        } else {
            1.0
        };
        self.shared
            .multiplier_bits
            .store(m.to_bits(), Ordering::Relaxed);
    }

    pub fn multiplier(&self) -> f64 {
        self.shared.multiplier()
    }

    pub fn snapshot(&self) -> LoadSnapshot {
        let s = &self.shared;
        let now = Instant::now();
        let latency = lock(&s.latencies)
            .iter()
            .map(|(route, q)| {
                let mut v: Vec<f64> = q
                    .iter()
                    .filter(|(t, _)| now.duration_since(*t) <= LATENCY_WINDOW)
                    .map(|(_, ms)| *ms)
                    .collect();
                v.sort_by(f64::total_cmp);
                (
                    route.to_string(),
                    LatencySummary {
                        count: v.len(),
                        p50_ms: percentile(&v, 50.0),
                        p99_ms: percentile(&v, 99.0),
                    },
                )
            })
            .collect();
        LoadSnapshot {
            base_rps: s.base_rps,
            multiplier: s.multiplier(),
            rates: route_rates(s.base_rps, s.multiplier())
                .into_iter()
                .map(|(r, x)| (r.to_string(), x))
                .collect(),
            in_flight: s.in_flight.load(Ordering::Relaxed),
            outcomes: lock(&s.outcomes)
                .iter()
                .map(|(r, m)| (r.to_string(), m.clone()))
                .collect(),
            latency,
        }
    }
}

async fn arrivals(
    shared: Arc<Shared>,
    endpoints: Arc<Endpoints>,
    client: reqwest::Client,
    seed: u64,
) {
    let mut rng = Prng::for_stream(seed, "loadgen");
    let mut next = tokio::time::Instant::now();
    loop {
        let rates = route_rates(shared.base_rps, shared.multiplier());
        let total: f64 = rates.iter().map(|(_, r)| r).sum();
        if total <= 0.0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            next = tokio::time::Instant::now();
            continue;
        }
        let gap = rng.exp_interval(total).min(1.0);
        next += Duration::from_secs_f64(gap);
        let now = tokio::time::Instant::now();
        if next > now {
            tokio::time::sleep_until(next).await;
        } else if now.duration_since(next) > Duration::from_secs(1) {
            // Far behind (the machine stalled): do not fire a burst to catch up.
            next = now;
        }
        let route = pick_route(&rates, rng.next_f64());
        if shared.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            shared.count(route, "dropped".into());
            continue;
        }
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        let trace = rng.hex_id();
        tokio::spawn(one_request(
            Arc::clone(&shared),
            Arc::clone(&endpoints),
            client.clone(),
            route,
            trace,
        ));
    }
}

async fn one_request(
    shared: Arc<Shared>,
    endpoints: Arc<Endpoints>,
    client: reqwest::Client,
    route: &'static str,
    trace: String,
) {
    let started = Instant::now();
    let outcome = match endpoints.pick() {
        Err(_) => "no_endpoints".to_string(),
        Ok(addrs) if addrs.is_empty() => "no_endpoints".to_string(),
        Ok(addrs) => {
            let mut outcome = String::new();
            for addr in &addrs {
                let url = format!("http://{addr}{route}");
                let req = if route == "/checkout" {
                    client.post(url).body(r#"{"cart":"demo"}"#)
                } else {
                    client.get(url)
                };
                match req.header("x-trace-id", &trace).send().await {
                    Ok(resp) => {
                        outcome = resp.status().as_u16().to_string();
                        // Read the body so the latency covers the whole response.
                        let _ = resp.bytes().await;
                        break;
                    }
                    Err(e) if e.is_timeout() => {
                        outcome = "timeout".into();
                        break;
                    }
                    Err(e) if e.is_connect() => outcome = "connection_refused".into(),
                    Err(_) => {
                        outcome = "error".into();
                        break;
                    }
                }
            }
            outcome
        }
    };
    if outcome.bytes().all(|b| b.is_ascii_digit()) && !outcome.is_empty() {
        shared.latency(route, started.elapsed().as_secs_f64() * 1000.0);
    }
    shared.count(route, outcome);
    shared.in_flight.fetch_sub(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_split_and_surge_multiplies_the_home_page_only() {
        let r = route_rates(30.0, 1.0);
        assert_eq!(r[0], ("/", 15.0));
        assert!((r[1].1 - 9.9).abs() < 1e-9);
        assert!((r[2].1 - 5.1).abs() < 1e-9);
        let s = route_rates(30.0, 8.0);
        assert_eq!(s[0], ("/", 120.0));
        assert_eq!(s[1].1, r[1].1);
        assert_eq!(s[2].1, r[2].1);
    }

    #[test]
    fn route_picking_follows_the_rates() {
        let rates = route_rates(30.0, 1.0);
        assert_eq!(pick_route(&rates, 0.0), "/");
        assert_eq!(pick_route(&rates, 0.49), "/");
        assert_eq!(pick_route(&rates, 0.51), "/product");
        assert_eq!(pick_route(&rates, 0.84), "/checkout");
        assert_eq!(pick_route(&rates, 0.999_999), "/checkout");
        let mut p = Prng::new(1);
        let n = 30_000;
        let home = (0..n)
            .filter(|_| pick_route(&rates, p.next_f64()) == "/")
            .count();
        assert!((home as f64 / n as f64 - 0.5).abs() < 0.02);
        assert_eq!(pick_route(&[], 0.3), "/");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    }

    #[test]
    fn bad_base_rates_are_refused() {
        let dir = std::path::Path::new("/nonexistent");
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e6] {
            let e = LoadGen::start(dir, bad, 1).unwrap_err();
            assert!(e.contains("out of range"), "{e}");
        }
    }

    #[tokio::test]
    async fn generates_traffic_against_a_live_frontend_and_counts_outcomes() {
        use axum::routing::get;
        let dir = tempfile::tempdir().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let h = Arc::clone(&hits);
        let app = axum::Router::new()
            .route("/", get(|| async { "home" }))
            .route(
                "/product",
                get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy") }),
            )
            .route("/checkout", axum::routing::post(|| async { "ok" }))
            .layer(axum::middleware::from_fn(
                move |req, next: axum::middleware::Next| {
                    let h = Arc::clone(&h);
                    async move {
                        h.fetch_add(1, Ordering::Relaxed);
                        next.run(req).await
                    }
                },
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        // One dead address and one live one: refused calls are retried on the live one.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("endpoints")).unwrap();
        std::fs::write(
            dir.path().join("endpoints/frontend.json"),
            serde_json::json!({"service":"frontend","addresses":[dead.to_string(), addr.to_string()]}).to_string(),
        )
        .unwrap();
        let lg = LoadGen::start(dir.path(), 200.0, 1).unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        lg.set_multiplier(3.0);
        assert_eq!(lg.multiplier(), 3.0);
        let snap = lg.snapshot();
        drop(lg);
        server.abort();
        let served = hits.load(Ordering::Relaxed);
        assert!(served > 60, "only {served} requests in 0.7 s at 200 rps");
        assert!(snap.outcomes["/"].get("200").copied().unwrap_or(0) > 0);
        assert!(snap.outcomes["/product"].get("503").copied().unwrap_or(0) > 0);
        assert!(!snap.outcomes["/"].contains_key("connection_refused"));
        assert!(snap.latency["/"].p99_ms.is_some());
        assert_eq!(snap.rates["/"], 300.0);
    }
}
