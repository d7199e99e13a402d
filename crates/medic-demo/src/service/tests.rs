//! In-process tests of the service: real HTTP servers on 127.0.0.1 port 0.

use super::*;
use crate::endpoints::{endpoints_path, write_atomic};
use std::net::SocketAddr;
use std::path::Path;

struct Running {
    addr: SocketAddr,
    app: Arc<App>,
    log: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn args(
    dir: &Path,
    service: &str,
    instance: &str,
    deps: &[&str],
    fail_ratio: f64,
) -> DemoServiceArgs {
    DemoServiceArgs {
        service: service.into(),
        instance: instance.into(),
        port: 0,
        listen_ip: std::net::Ipv4Addr::LOCALHOST,
        log: dir.join(format!("{instance}.log")),
        config: dir.join("c1.json"),
        release: "v1".into(),
        instance_dir: dir.join("instances").join(instance),
        estate_dir: dir.to_path_buf(),
        deps: deps.iter().map(|d| d.to_string()).collect(),
        dep_addrs: Vec::new(),
        fail_ratio,
        seed: 1,
    }
}

async fn start(dir: &Path, a: DemoServiceArgs, cfg: ServiceConfig) -> Running {
    let logger = Logger::open(&a.log, &a.service, &a.instance).unwrap();
    let app = new_app(&a, cfg, logger).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let r = router(Arc::clone(&app));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, r).await;
    });
    let _ = dir;
    Running {
        addr,
        app,
        log: a.log,
        task,
    }
}

fn set_endpoints(dir: &Path, service: &str, addrs: &[String]) {
    std::fs::create_dir_all(dir.join("endpoints")).unwrap();
    let doc = serde_json::json!({"service": service, "addresses": addrs});
    write_atomic(&endpoints_path(dir, service), doc.to_string().as_bytes()).unwrap();
}

/// A port nothing listens on (bound, read, released).
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn fast(service: &str) -> ServiceConfig {
    ServiceConfig {
        service_ms: 1,
        cpu_work_us: 0,
        ..ServiceConfig::defaults_for(service)
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn leaf_service_serves_counts_and_logs_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let cache = start(
        dir.path(),
        args(dir.path(), "cache", "cache-0", &[], 0.0),
        fast("cache"),
    )
    .await;
    let resp = client()
        .get(format!("http://{}/product", cache.addr))
        .header("x-trace-id", "t123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-trace-id"], "t123");
    let home = client()
        .get(format!("http://{}/", cache.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 404, "only the frontend has a home page");
    let metrics = client()
        .get(format!("http://{}/metrics", cache.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("http_requests_total{route=\"/product\",code=\"200\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("app_info{service=\"cache\",release=\"v1\",config_version=\"c1\"} 1"));
    let log = std::fs::read_to_string(&cache.log).unwrap();
    assert!(log.contains(" INFO [cache-0] GET /product 200 "), "{log}");
    assert!(log.contains("trace=t123"));
}

#[tokio::test]
async fn refused_dependency_is_retried_on_the_next_replica_then_503() {
    let dir = tempfile::tempdir().unwrap();
    let cache = start(
        dir.path(),
        args(dir.path(), "cache", "cache-0", &[], 0.0),
        fast("cache"),
    )
    .await;
    let catalog = start(
        dir.path(),
        args(dir.path(), "catalog", "catalog-0", &["cache"], 0.0),
        fast("catalog"),
    )
    .await;
    // One dead replica and one live one: every call succeeds thanks to the retry.
    set_endpoints(
        dir.path(),
        "cache",
        &[closed_port(), cache.addr.to_string()],
    );
    for _ in 0..4 {
        let r = client()
            .get(format!("http://{}/product", catalog.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Only dead replicas: 503 and an ERROR naming the dependency and the address.
    let dead = closed_port();
    set_endpoints(dir.path(), "cache", std::slice::from_ref(&dead));
    tokio::time::sleep(crate::endpoints::REFRESH + Duration::from_millis(50)).await;
    let r = client()
        .get(format!("http://{}/product", catalog.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let log = std::fs::read_to_string(&catalog.log).unwrap();
    assert!(
        log.contains(&format!("connection refused calling cache at {dead}")),
        "{log}"
    );
    assert!(
        log.contains(" ERROR [catalog-0] GET /product 503 "),
        "{log}"
    );
    assert!(log.contains("\n    at "), "stack trace expected: {log}");
    assert!(catalog.app.metrics.requests_total("/product", 503) == 1);
}

#[tokio::test]
async fn slow_dependency_times_out_with_504_and_failing_one_gives_502() {
    let dir = tempfile::tempdir().unwrap();
    let payment = start(
        dir.path(),
        args(dir.path(), "payment", "payment-0", &[], 0.0),
        fast("payment"),
    )
    .await;
    let checkout = start(
        dir.path(),
        args(dir.path(), "checkout", "checkout-0", &["payment"], 0.0),
        ServiceConfig {
            dependency_timeout_ms: 100,
            ..fast("checkout")
        },
    )
    .await;
    set_endpoints(dir.path(), "payment", &[payment.addr.to_string()]);
    payment.app.faults.set_latency(400);
    let r = client()
        .post(format!("http://{}/checkout", checkout.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    let log = std::fs::read_to_string(&checkout.log).unwrap();
    assert!(
        log.contains("timed out after 100ms calling payment"),
        "{log}"
    );
    let first: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(first["level"], "error");
    assert_eq!(first["status"], 504);

    payment.app.faults.clear();
    let bad = start(
        dir.path(),
        args(dir.path(), "payment", "payment-1", &[], 1.0),
        fast("payment"),
    )
    .await;
    set_endpoints(dir.path(), "payment", &[bad.addr.to_string()]);
    tokio::time::sleep(crate::endpoints::REFRESH + Duration::from_millis(50)).await;
    let r = client()
        .post(format!("http://{}/checkout", checkout.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let bad_log = std::fs::read_to_string(&bad.log).unwrap();
    assert!(
        bad_log.contains("internal error in release v1"),
        "{bad_log}"
    );
    assert!(bad_log.contains("Traceback (most recent call last):"));
}

#[tokio::test]
async fn saturation_queues_then_sheds_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let fe = start(
        dir.path(),
        args(dir.path(), "frontend", "frontend-0", &[], 0.0),
        ServiceConfig {
            workers: 1,
            max_queue: 2,
            service_ms: 150,
            cpu_work_us: 0,
            ..ServiceConfig::defaults_for("frontend")
        },
    )
    .await;
    let c = client();
    let calls = (0..6).map(|_| {
        let c = c.clone();
        let url = format!("http://{}/", fe.addr);
        async move { c.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    let mut codes: Vec<u16> = Vec::new();
    for h in calls.map(tokio::spawn).collect::<Vec<_>>() {
        codes.push(h.await.unwrap().unwrap());
    }
    let ok = codes.iter().filter(|c| **c == 200).count();
    let shed = codes.iter().filter(|c| **c == 503).count();
    // 1 in service + 2 queued are served; the other 3 are shed.
    assert_eq!((ok, shed), (3, 3), "{codes:?}");
    let log = std::fs::read_to_string(&fe.log).unwrap();
    assert!(log.contains("overloaded"), "{log}");
    let metrics = fe.app.metrics.render(&fe.app.info, Default::default());
    assert!(metrics.contains("http_requests_total{route=\"/\",code=\"503\"} 3"));
    // Queueing time counts: the served requests took at least one service time each.
    assert!(!metrics.contains("http_request_duration_seconds_bucket{le=\"0.1\"} 6"));
}

#[tokio::test]
async fn admin_faults_apply_latency_report_and_reject_bad_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start(
        dir.path(),
        args(dir.path(), "payment", "payment-0", &[], 0.0),
        fast("payment"),
    )
    .await;
    let c = client();
    let base = format!("http://{}", svc.addr);
    for bad in [
        "",
        "{",
        r#"{"kind":"nope"}"#,
        r#"{"kind":"latency","ms":"x"}"#,
    ] {
        let r = c
            .post(format!("{base}/admin/fault"))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = c
        .post(format!("{base}/admin/fault"))
        .body(r#"{"kind":"latency","ms":1500}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t = Instant::now();
    let r = c.post(format!("{base}/checkout")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(1500));
    // Health and metrics are not delayed: far below the injected 1.5 s even on a busy machine.
    let t = Instant::now();
    c.get(format!("{base}/healthz")).send().await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(1000));
    let st: serde_json::Value = c
        .get(format!("{base}/admin/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["latency_ms"], 1500);
    c.post(format!("{base}/admin/fault"))
        .body(r#"{"kind":"clear"}"#)
        .send()
        .await
        .unwrap();
    let st: serde_json::Value = c
        .get(format!("{base}/admin/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(st["latency_ms"].is_null());
    // Admin calls leave no trace in the request log (the agent must not be told).
    let log = std::fs::read_to_string(&svc.log).unwrap();
    assert!(!log.contains("/admin"), "{log}");
}

#[test]
fn downstream_follows_the_route_chain() {
    let dir = Path::new("/nonexistent");
    let deps = vec![
        Arc::new(Endpoints::new(dir, "catalog")),
        Arc::new(Endpoints::new(dir, "checkout")),
    ];
    assert_eq!(
        downstream_for("/product", &deps).map(|d| d.service()),
        Some("catalog")
    );
    assert_eq!(
        downstream_for("/checkout", &deps).map(|d| d.service()),
        Some("checkout")
    );
    assert!(downstream_for("/", &deps).is_none());
    assert!(downstream_for("/product", &[]).is_none());
}

#[test]
fn fixed_dependency_addresses_are_checked_at_start() {
    let dir = Path::new("/nonexistent");
    let mut a = args(dir, "checkout", "checkout-0", &["payment"], 0.0);
    a.dep_addrs = vec!["payment=127.100.0.9:80".into()];
    let deps = dependencies(&a).unwrap();
    assert_eq!(deps[0].addresses().unwrap(), vec!["127.100.0.9:80"]);
    for (bad, needle) in [
        ("payment", "NAME=HOST:PORT"),
        ("cache=127.0.0.1:1", "not a --dep"),
        ("payment=payment.svc", "not host:port"),
        ("payment=", "not host:port"),
    ] {
        a.dep_addrs = vec![bad.into()];
        let e = dependencies(&a).unwrap_err().to_string();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}
