//! End-to-end tests of the demo estate: `medic demo-estate` as a real process tree on
//! 127.0.0.1, each fault checked by its observable effect. Every test kills its estate.

use medic_core::{ProcessEventKind, ProcessEventRecord};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn medic_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_medic"))
}

/// One running estate; dropping it SIGKILLs the estate and waits for its services to go.
struct Estate {
    child: Child,
    tmp: tempfile::TempDir,
    addr: String,
}

impl Estate {
    fn start(extra: &[&str]) -> Estate {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("estate");
        let out = std::fs::File::create(tmp.path().join("estate.out")).expect("estate.out");
        let child = Command::new(medic_bin())
            .arg("demo-estate")
            .arg("--dir")
            .arg(&dir)
            .args(["--seed", "7"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out)
            .spawn()
            .expect("spawn medic demo-estate");
        let mut estate = Estate {
            child,
            tmp,
            addr: String::new(),
        };
        let addr_file = dir.join("supervisor.addr");
        let up = wait_until(Duration::from_secs(60), || {
            let Ok(addr) = std::fs::read_to_string(&addr_file) else {
                return false;
            };
            // /demo/load answers only once the supervisor and the load generator run.
            matches!(http(addr.trim(), "GET", "/demo/load", ""), Some((200, _)))
        });
        if !up {
            let log =
                std::fs::read_to_string(estate.tmp.path().join("estate.out")).unwrap_or_default();
            panic!("estate did not come up within 60 s; its output:\n{log}");
        }
        estate.addr = std::fs::read_to_string(&addr_file)
            .expect("supervisor.addr")
            .trim()
            .to_string();
        estate
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("estate")
    }

    fn inject(&self, body: &str) -> serde_json::Value {
        let (code, text) = http(&self.addr, "POST", "/demo/faults", body).expect("inject");
        assert_eq!(code, 200, "{body} -> {text}");
        serde_json::from_str(&text).expect("fault answer is JSON")
    }

    /// `/metrics` text of every running instance of `service`.
    fn scrape(&self, service: &str) -> Vec<String> {
        targets(&self.dir())
            .into_iter()
            .filter(|(s, _, _)| s == service)
            .filter_map(|(_, _, addr)| http(&addr, "GET", "/metrics", "").map(|(_, t)| t))
            .collect()
    }

    fn events(&self) -> Vec<ProcessEventRecord> {
        std::fs::read_to_string(self.dir().join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn log(&self, instance: &str) -> String {
        std::fs::read_to_string(self.dir().join("logs").join(format!("{instance}.log")))
            .unwrap_or_default()
    }

    fn pid_of(&self, instance: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir().join("pids").join(format!("{instance}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Estate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Services notice their parent is gone within ~1 s; wait for them before the
        // temporary directory is removed under them.
        let dir = self.dir();
        wait_until(Duration::from_secs(5), || service_pids(&dir).is_empty());
    }
}

fn wait_until(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A minimal HTTP/1.1 client (the test has no HTTP client dependency): status and body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let code: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Some((
        code,
        if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        },
    ))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// (service, instance, address) of every target in `targets.json`.
fn targets(dir: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(dir.join("targets.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some((
                        t["labels"]["service"].as_str()?.to_string(),
                        t["labels"]["instance"].as_str()?.to_string(),
                        t["targets"][0].as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Pids of demo-service processes of the estate in `dir` (by their command line).
fn service_pids(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains("demo-service") && cmd.contains(&needle)
        })
        .collect()
}

/// Sum over instances of one sample (`name{labels} value`, matched by prefix).
fn sum_metric(texts: &[String], prefix: &str) -> f64 {
    texts
        .iter()
        .flat_map(|t| t.lines())
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn requests(texts: &[String], code: &str) -> f64 {
    texts
        .iter()
        .flat_map(|t| t.lines())
        .filter(|l| {
            l.starts_with("http_requests_total{") && l.contains(&format!("code=\"{code}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Upper bound (seconds) of the histogram bucket holding quantile `q` of the requests served
/// between two scrapes.
fn quantile_between(before: &[String], after: &[String], q: f64) -> f64 {
    let bucket = |texts: &[String], le: &str| {
        sum_metric(
            texts,
            &format!("http_request_duration_seconds_bucket{{le=\"{le}\"}}"),
        )
    };
    let total = bucket(after, "+Inf") - bucket(before, "+Inf");
    assert!(total > 0.0, "no requests between the scrapes");
    for le in [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30",
    ] {
        if bucket(after, le) - bucket(before, le) >= q * total {
            return le.parse().unwrap_or(f64::INFINITY);
        }
    }
    f64::INFINITY
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn exits(events: &[ProcessEventRecord], service: &str, reason: &str) -> Vec<ProcessEventRecord> {
    events
        .iter()
        .filter(|e| {
            e.service == service
                && e.event.kind == ProcessEventKind::Exited
                && e.event.reason == reason
        })
        .cloned()
        .collect()
}

#[test]
fn estate_serves_traffic_sheds_under_surge_and_dies_with_its_parent() {
    let estate = Estate::start(&[]);
    let dir = estate.dir();
    let t = targets(&dir);
    assert_eq!(t.len(), 7, "targets.json: {t:?}");
    for f in [
        "events.jsonl",
        "endpoints/frontend.json",
        "endpoints/cache.json",
        "logs/checkout-1.log",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    // Traffic flows through the whole topology.
    let first = requests(&estate.scrape("frontend"), "200");
    assert!(
        wait_until(Duration::from_secs(10), || {
            requests(&estate.scrape("frontend"), "200") > first + 20.0
                && requests(&estate.scrape("cache"), "200") > 0.0
                && requests(&estate.scrape("payment"), "200") > 0.0
        }),
        "http_requests_total is not growing"
    );
    let frontend_log = estate.log("frontend-0");
    assert!(
        frontend_log
            .lines()
            .any(|l| l.starts_with('{') && l.contains("\"msg\":\"request completed\""))
    );
    assert!(
        estate
            .log("catalog-0")
            .contains(" INFO [catalog-0] GET /product 200 ")
    );

    // Load surge: frontend at 2 replicas sheds (503) and its p99 rises.
    let base_before = estate.scrape("frontend");
    std::thread::sleep(Duration::from_secs(4));
    let base_after = estate.scrape("frontend");
    let base_p99 = quantile_between(&base_before, &base_after, 0.99);
    let surge = estate.inject(r#"{"kind":"load_surge"}"#);
    assert_eq!(surge["service"], "frontend");
    std::thread::sleep(Duration::from_secs(3));
    let surge_before = estate.scrape("frontend");
    std::thread::sleep(Duration::from_secs(5));
    let surge_after = estate.scrape("frontend");
    let surge_p99 = quantile_between(&surge_before, &surge_after, 0.99);
    let shed = requests(&surge_after, "503") - requests(&surge_before, "503");
    assert!(shed > 0.0, "no 503 under the surge");
    assert!(
        surge_p99 >= 0.25 && surge_p99 > base_p99,
        "p99 {base_p99} -> {surge_p99}"
    );
    let (code, load) = http(&estate.addr, "GET", "/demo/load", "").expect("load");
    assert_eq!(code, 200);
    assert!(load.contains("\"multiplier\":12"), "{load}");

    // SIGKILL the estate: no service process may outlive it.
    assert!(!service_pids(&dir).is_empty());
    let mut estate = estate;
    let _ = estate.child.kill();
    let _ = estate.child.wait();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        service_pids(&dir),
        Vec::<u32>::new(),
        "services outlived the estate"
    );
}

#[test]
fn memory_leak_bad_config_and_dependency_down_have_their_effects() {
    let estate = Estate::start(&["--leak-mib-per-s", "128"]);

    // memory_leak: catalog's RSS grows, then the supervisor OOM-kills it.
    let pid = estate.pid_of("catalog-0").expect("catalog pid");
    let rss0 = rss_bytes(pid).expect("catalog rss");
    let leak = estate.inject(r#"{"kind":"memory_leak"}"#);
    assert_eq!(leak["service"], "catalog");
    assert!(leak["injected_at"].as_i64().is_some());
    assert!(
        wait_until(Duration::from_secs(5), || rss_bytes(pid)
            .is_some_and(|r| r > rss0 + 64 * 1024 * 1024)),
        "catalog RSS did not grow"
    );
    assert!(
        wait_until(Duration::from_secs(15), || !exits(
            &estate.events(),
            "catalog",
            "OOMKilled"
        )
        .is_empty()),
        "no OOMKilled for catalog"
    );

    // bad_config: checkout refuses its config at start-up (exit 78), again and again.
    let bad = estate.inject(r#"{"kind":"bad_config"}"#);
    assert_eq!(bad["service"], "checkout");
    assert!(
        wait_until(Duration::from_secs(20), || {
            exits(&estate.events(), "checkout", "Error")
                .iter()
                .filter(|e| e.event.exit_code == Some(78))
                .count()
                >= 2
        }),
        "checkout is not crash-looping with exit code 78"
    );
    let log = estate.log("checkout-0");
    assert!(log.contains("FATAL config error in"), "{log}");
    assert!(log.contains("dependency_timeout_ms"));
    let changes = std::fs::read_to_string(estate.dir().join("changes.jsonl")).unwrap_or_default();
    assert!(changes.contains("\"config_change\"") && changes.contains("deploy-bot"));

    // dependency_down: cache crashes (restart policy never), catalog cannot reach it.
    let down = estate.inject(r#"{"kind":"dependency_down"}"#);
    assert_eq!(down["service"], "cache");
    assert!(
        wait_until(Duration::from_secs(5), || !exits(
            &estate.events(),
            "cache",
            "Error"
        )
        .is_empty()),
        "cache did not exit with Error"
    );
    assert!(
        wait_until(Duration::from_secs(10), || estate
            .log("catalog-0")
            .contains("connection refused")),
        "catalog does not log connection refused"
    );
    assert!(estate.log("cache-0").contains("FATAL"));
}

#[test]
fn bad_deployment_fails_a_third_of_requests_and_latency_raises_p99() {
    let estate = Estate::start(&[]);
    let deploy = estate.inject(r#"{"kind":"bad_deployment"}"#);
    assert_eq!(deploy["service"], "payment");
    assert!(
        wait_until(Duration::from_secs(15), || {
            estate
                .scrape("payment")
                .iter()
                .any(|t| t.contains("release=\"v2\""))
        }),
        "payment never ran v2"
    );
    let before = estate.scrape("payment");
    std::thread::sleep(Duration::from_secs(12));
    let after = estate.scrape("payment");
    let failed = requests(&after, "500") - requests(&before, "500");
    let ok = requests(&after, "200") - requests(&before, "200");
    let ratio = failed / (failed + ok);
    assert!(failed + ok >= 30.0, "too little traffic: {failed} + {ok}");
    assert!((0.15..=0.45).contains(&ratio), "500 ratio {ratio}");
    let log = estate.log("payment-0");
    assert!(log.contains("internal error in release v2"), "{log}");
    assert!(log.contains("Traceback (most recent call last):"));
    // The v1 process was stopped on purpose, gracefully.
    assert!(log.contains("received SIGTERM, shutting down"), "{log}");
    assert!(!exits(&estate.events(), "payment", "Stopped").is_empty());

    // latency: payment's p99 rises past the added 700 ms.
    let base_p99 = quantile_between(&before, &after, 0.99);
    let lat = estate.inject(r#"{"kind":"latency"}"#);
    assert_eq!(lat["service"], "payment");
    std::thread::sleep(Duration::from_secs(2));
    let before = estate.scrape("payment");
    std::thread::sleep(Duration::from_secs(6));
    let after = estate.scrape("payment");
    let p99 = quantile_between(&before, &after, 0.99);
    assert!(
        base_p99 <= 0.25 && p99 >= 0.5,
        "payment p99 {base_p99} -> {p99}"
    );
    // checkout gives up after its 400 ms timeout and says so.
    assert!(
        wait_until(Duration::from_secs(5), || {
            estate
                .log("checkout-0")
                .contains("timed out after 400ms calling payment")
                || estate
                    .log("checkout-1")
                    .contains("timed out after 400ms calling payment")
        }),
        "checkout does not log the timeout"
    );
}

#[test]
fn fault_api_rejects_bad_requests() {
    let estate = Estate::start(&[]);
    for (body, code) in [
        ("", 400),
        ("{", 400),
        (r#"{"kind":"meteor"}"#, 400),
        (r#"{"kind":"latency","service":"db"}"#, 400),
        (r#"{"kind":"load_surge","service":"cache"}"#, 400),
    ] {
        let (got, text) = http(&estate.addr, "POST", "/demo/faults", body).expect("answer");
        assert_eq!(got, code, "{body} -> {text}");
        assert!(text.contains("\"error\""), "{text}");
    }
    let (code, text) =
        http(&estate.addr, "POST", "/demo/clear", r#"{"kind":"latency"}"#).expect("clear");
    assert_eq!(code, 200, "{text}");
    // The supervisor's own API is served on the same port.
    let (code, text) = http(&estate.addr, "GET", "/v1/workloads", "").expect("workloads");
    assert_eq!(code, 200);
    assert!(text.contains("\"frontend\""));
}
