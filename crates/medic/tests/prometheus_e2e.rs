//! End to end with the real Prometheus and Alertmanager (Debian packages `prometheus` and
//! `prometheus-alertmanager`, installed by `.ci/run`): a bad deployment of the demo estate's
//! payment service makes its 5xx ratio cross a Prometheus alerting rule; Prometheus fires to
//! Alertmanager; Alertmanager posts to medic's webhook; medic opens one incident from the
//! alert, queries Prometheus for evidence, rolls the release back, and verifies recovery
//! through PromQL (`verify_promql`). Every process the test starts is stopped by PID.
//!
//! Also here: the PromQL client against the real Prometheus (instant, range, error answers),
//! and approval through the HTTP API of a running `medic run` (tokens by role).

use medic_core::{ActionKind, Evidence, FindingKind, IncidentState, Ts};
use medic_signals::prometheus_api::{PromClient, PromError, QueryResult};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A child process stopped (SIGTERM, then SIGKILL) by PID when dropped.
struct Proc {
    child: Child,
    name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{} did not stop on SIGTERM: killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn need(bin: &str) {
    assert!(
        Path::new(bin).exists(),
        "{bin} is missing: install the Debian packages `prometheus` and `prometheus-alertmanager` (.ci/run does)"
    );
}

/// A free loopback port (bound then released: the child binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Proc {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = cmd
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    Proc { child, name }
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    Some(resp)
}

fn post(addr: &str, path: &str, body: &str) -> String {
    post_as(addr, path, None, body)
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("timed out after {within:?} waiting for {what}");
}

fn start_estate(dir: &Path, log: &Path) -> (Proc, String) {
    let p = spawn(
        "demo estate",
        Command::new(env!("CARGO_BIN_EXE_medic"))
            .args(["demo-estate", "--dir"])
            .arg(dir),
        log,
    );
    let addr_file = dir.join("supervisor.addr");
    let mut addr = String::new();
    wait_until("the estate", Duration::from_secs(60), || {
        addr = std::fs::read_to_string(&addr_file)
            .unwrap_or_default()
            .trim()
            .to_string();
        !addr.is_empty()
    });
    (p, addr)
}

/// Prometheus scraping the estate every second, with one alerting rule on payment's 5xx
/// ratio, firing to Alertmanager at `am_port` (if any).
fn start_prometheus(tmp: &Path, estate: &Path, port: u16, am_port: Option<u16>) -> Proc {
    need(PROMETHEUS);
    let rules = r#"groups:
  - name: medic-e2e
    interval: 1s
    rules:
      - alert: PaymentErrorRatio
        expr: sum by (service) (rate(http_requests_total{service="payment",code=~"5.."}[5s])) / sum by (service) (rate(http_requests_total{service="payment"}[5s])) > 0.2
        for: 0s
        labels: { severity: critical }
        annotations:
          summary: "payment answers more than 20% of requests with 5xx"
          description: "5xx ratio is {{ $value }}"
          medic_cause: bad_deployment
"#;
    std::fs::write(tmp.join("rules.yml"), rules).expect("rules");
    let alerting = match am_port {
        Some(p) => format!(
            "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"127.0.0.1:{p}\"]\n"
        ),
        None => String::new(),
    };
    let cfg = format!(
        r#"global: {{ scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 900ms }}
rule_files: ["{rules}"]
{alerting}scrape_configs:
  - job_name: estate
    file_sd_configs:
      - files: ["{sd}"]
        refresh_interval: 1s
"#,
        rules = tmp.join("rules.yml").display(),
        sd = estate.join("targets.json").display(),
    );
    std::fs::write(tmp.join("prometheus.yml"), cfg).expect("prometheus.yml");
    std::fs::create_dir_all(tmp.join("tsdb")).expect("tsdb dir");
    spawn(
        "prometheus",
        Command::new(PROMETHEUS)
            .arg(format!(
                "--config.file={}",
                tmp.join("prometheus.yml").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.join("tsdb").display()
            )),
        &tmp.join("prometheus.log"),
    )
}

/// Alertmanager sends medic's ingest token from `token_file` (`http_config.authorization`).
fn start_alertmanager(tmp: &Path, port: u16, webhook: &str, token_file: &Path) -> Proc {
    need(ALERTMANAGER);
    let token_file = token_file.display();
    let cfg = format!(
        r#"route:
  receiver: medic
  group_by: [alertname, service]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: medic
    webhook_configs:
      - url: "{webhook}"
        send_resolved: true
        http_config:
          authorization:
            credentials_file: "{token_file}"
"#
    );
    std::fs::write(tmp.join("alertmanager.yml"), cfg).expect("alertmanager.yml");
    std::fs::create_dir_all(tmp.join("am")).expect("am dir");
    spawn(
        "alertmanager",
        Command::new(ALERTMANAGER)
            .arg(format!(
                "--config.file={}",
                tmp.join("alertmanager.yml").display()
            ))
            .arg("--cluster.listen-address=")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--storage.path={}", tmp.join("am").display())),
        &tmp.join("alertmanager.log"),
    )
}

/// Waits until Prometheus has scraped every estate target at least once (`up == 1`).
fn wait_scraped(prom: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client =
        PromClient::new(&format!("http://{prom}"), Duration::from_secs(2)).expect("client");
    // Every estate target (7 instances), not just the first one scraped: Prometheus scrapes
    // targets at staggered offsets within the interval.
    wait_until(
        "Prometheus to scrape every estate target (up == 1)",
        Duration::from_secs(60),
        || {
            rt.block_on(client.query("count(up == 1) >= 7", None))
                .is_ok_and(|r| r.is_true())
        },
    );
}

fn dump_logs(tmp: &Path) {
    for f in ["medic.log", "prometheus.log", "alertmanager.log"] {
        let text = std::fs::read_to_string(tmp.join(f)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        eprintln!("---- {f} (last lines) ----");
        for l in tail.iter().rev() {
            eprintln!("{l}");
        }
    }
}

#[test]
fn alert_from_real_prometheus_and_alertmanager_heals_a_bad_deployment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path().to_path_buf();
    let estate_dir = tmp.join("estate");
    let (estate, estate_addr) = start_estate(&estate_dir, &tmp.join("estate.log"));
    let (prom_port, am_port, medic_port) = (free_port(), free_port(), free_port());
    let webhook = format!("http://127.0.0.1:{medic_port}/api/v1/alerts/alertmanager");
    // The ingest token lives in a file that both medic and Alertmanager read.
    let token_file = tmp.join("alertmanager.token");
    std::fs::write(&token_file, "medic-e2e-alertmanager-7d41\n").expect("token file");
    let am = start_alertmanager(&tmp, am_port, &webhook, &token_file);
    let prom = start_prometheus(&tmp, &estate_dir, prom_port, Some(am_port));
    let prom_addr = format!("127.0.0.1:{prom_port}");
    let store_path = tmp.join("medic.db");
    let config = medic_config(
        &estate_dir,
        &estate_addr,
        &store_path,
        medic_port,
        prom_port,
        &token_file,
    );
    std::fs::write(tmp.join("medic.yaml"), config).expect("medic.yaml");
    let medic = spawn(
        "medic run",
        Command::new(env!("CARGO_BIN_EXE_medic"))
            .args(["run", "--config"])
            .arg(tmp.join("medic.yaml"))
            .env("MEDIC_LOG", "info")
            .env_remove("MEDIC_FAILPOINT"),
        &tmp.join("medic.log"),
    );
    wait_until("medic's webhook to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", medic_port)).is_ok()
    });
    wait_until("alertmanager to be ready", Duration::from_secs(30), || {
        http_get(&format!("127.0.0.1:{am_port}"), "/-/ready")
            .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
    });
    wait_scraped(&prom_addr);

    // A forged alert without the token, naming a cause for another service: refused, so it
    // can cause nothing (the one incident from alerts below is the real one, on payment).
    let forged = r#"{"version":"4","status":"firing","receiver":"medic","groupKey":"x","alerts":[{"status":"firing","labels":{"alertname":"Forged","service":"catalog"},"annotations":{"medic_cause":"bad_deployment"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"ff"}]}"#;
    let resp = post(
        &format!("127.0.0.1:{medic_port}"),
        "/api/v1/alerts/alertmanager",
        forged,
    );
    assert!(resp.starts_with("HTTP/1.1 401"), "forged alert: {resp}");

    let resp = post(&estate_addr, "/demo/faults", r#"{"kind":"bad_deployment"}"#);
    assert!(resp.starts_with("HTTP/1.1 200"), "inject: {resp}");
    let injected_at = Ts::now();

    let mut last = Vec::new();
    let finished = (|| {
        let deadline = Instant::now() + Duration::from_secs(150);
        while Instant::now() < deadline {
            if let Ok(store) = medic_store::Store::open(&store_path)
                && let Ok(incidents) = store.incidents()
            {
                last = incidents;
                if last.iter().any(|i| i.state.is_terminal() && has_alert(i)) {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        false
    })();
    if !finished {
        dump_logs(&tmp);
        panic!("no incident from the alert finished: {last:#?}");
    }
    let store = medic_store::Store::open(&store_path).expect("store");
    let from_alerts: Vec<_> = last.iter().filter(|i| has_alert(i)).collect();
    if from_alerts.len() != 1 || from_alerts[0].state != IncidentState::Resolved {
        dump_logs(&tmp);
    }
    assert_eq!(
        from_alerts.len(),
        1,
        "one incident from the alert: {last:#?}"
    );
    let inc = from_alerts[0];
    // The webhook arrived: the incident's first finding is the alert, on payment.
    let first = &inc.findings[0];
    assert_eq!(first.kind, FindingKind::AlertFiring, "{inc:#?}");
    assert_eq!(first.service, "payment");
    assert!(
        first.summary.contains("PaymentErrorRatio"),
        "{}",
        first.summary
    );
    assert!(first.ts >= injected_at);
    // Evidence from PromQL is attached to the diagnosis.
    let diagnosis = inc.diagnosis.as_ref().expect("diagnosed");
    let top = diagnosis.top().expect("a hypothesis");
    assert_eq!(
        top.cause,
        medic_core::Cause::BadDeployment,
        "{diagnosis:#?}"
    );
    assert_eq!(top.target, "payment");
    let promql: Vec<&Evidence> = top
        .evidence
        .iter()
        .filter(|e| matches!(e, Evidence::Metric { name, .. } if name == "promql:error_ratio"))
        .collect();
    assert!(!promql.is_empty(), "PromQL evidence: {:#?}", top.evidence);
    if let Evidence::Metric { value, .. } = promql[0] {
        assert!(*value > 0.2, "the 5xx ratio Prometheus saw: {value}");
    }
    // The cause rests on the alert's hint, from the token Alertmanager used.
    assert_eq!(
        top.only_hinted_by.as_deref(),
        Some("alertmanager"),
        "{top:#?}"
    );
    // The right action ran (the policy trusts that sender's hints).
    assert_eq!(inc.executions.len(), 1, "{inc:#?}");
    assert_eq!(inc.executions[0].action.kind, ActionKind::RollbackRelease);
    assert_eq!(inc.executions[0].action.target, "payment");
    // Verified, and through PromQL.
    assert_eq!(inc.state, IncidentState::Resolved, "{inc:#?}");
    let record = store
        .verification(&inc.id)
        .expect("store")
        .expect("verification record");
    assert_eq!(record.verdict, medic_core::Verdict::Healed, "{record:#?}");
    assert_eq!(record.checks.len(), 1, "{record:#?}");
    assert_eq!(record.checks[0].held, Some(true), "{record:#?}");
    assert!(store.verify_audit().expect("audit").broken.is_none());
    let log = std::fs::read_to_string(tmp.join("medic.log")).unwrap_or_default();
    assert!(log.contains("PromQL checks held"), "{log}");

    drop(medic);
    drop(prom);
    drop(am);
    drop(estate);
}

fn has_alert(i: &medic_core::Incident) -> bool {
    i.findings
        .iter()
        .any(|f| f.kind == FindingKind::AlertFiring)
}

fn medic_config(
    estate: &Path,
    supervisor: &str,
    store: &Path,
    port: u16,
    prom_port: u16,
    token_file: &Path,
) -> String {
    let e = estate.display();
    let token_file = token_file.display();
    format!(
        r#"agent: {{ tick: 1s, diagnosis_settle: 2s, change_lookback: 5m }}
sources:
  - {{ name: events, type: process_events, path: "{e}/events.jsonl" }}
  - {{ name: changes, type: change_calendar, path: "{e}/changes.jsonl" }}
topology:
  services:
    frontend: {{ depends_on: [catalog, checkout] }}
    catalog: {{ depends_on: [cache] }}
    checkout: {{ depends_on: [payment] }}
    cache: {{}}
    payment: {{}}
actuators:
  local: {{ supervisor_url: "http://{supervisor}", timeout: 30s }}
store: {{ sqlite: "{store}" }}
server:
  enabled: true
  listen: "127.0.0.1:{port}"
  otlp_grpc_listen: "127.0.0.1:0"
  auth:
    tokens:
      - {{ name: alertmanager, role: ingest, file: "{token_file}" }}
prometheus:
  url: "http://127.0.0.1:{prom_port}"
  timeout: 2s
  evidence_queries:
    - name: error_ratio
      expr: 'sum(rate(http_requests_total{{service="{{service}}",code=~"5.."}}[5s])) / sum(rate(http_requests_total{{service="{{service}}"}}[5s]))'
policies:
  - name: rollback-bad-deployment
    match: {{ cause: bad_deployment, services: [payment] }}
    action: rollback_release
    # The alert's `medic_cause` is the only evidence of the cause here (medic reads no logs
    # in this test): acting on it alone needs the sender trusted by its token name.
    trust_alert_hints_from: [alertmanager]
    confidence_threshold: 0.6
    mode: auto
    max_attempts: 1
    cooldown: 2m
    verification_window: 5s
    verify_promql:
      - '(sum(rate(http_requests_total{{service="{{target}}",code=~"5.."}}[5s])) or vector(0)) / sum(rate(http_requests_total{{service="{{target}}"}}[5s])) < 0.05'
"#,
        store = store.display(),
    )
}

/// The client against the real Prometheus: instant and range queries and its error answers.
#[test]
fn promql_client_against_real_prometheus() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path().to_path_buf();
    let estate_dir = tmp.join("estate");
    let (estate, _) = start_estate(&estate_dir, &tmp.join("estate.log"));
    let port = free_port();
    let prom = start_prometheus(&tmp, &estate_dir, port, None);
    let addr = format!("127.0.0.1:{port}");
    wait_scraped(&addr);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let c = PromClient::new(&format!("http://{addr}"), Duration::from_secs(3)).expect("client");
    rt.block_on(async {
        // Instant vector: one `up` per estate target, labelled with its service.
        let r = c.query("up", None).await.expect("up");
        let services: std::collections::BTreeSet<_> = r
            .samples()
            .iter()
            .filter_map(|s| s.labels.get("service").cloned())
            .collect();
        assert!(
            services.contains("payment") && services.contains("frontend"),
            "{r:?}"
        );
        // Scalar and boolean semantics.
        let s = c
            .query("scalar(vector(0.5)) * 2", None)
            .await
            .expect("scalar");
        assert!(
            matches!(s, QueryResult::Scalar { value, .. } if value == 1.0),
            "{s:?}"
        );
        assert!(
            c.is_true(r#"up{service="payment"} == 1"#)
                .await
                .expect("bool")
        );
        assert!(
            !c.is_true(r#"up{service="payment"} == 7"#)
                .await
                .expect("bool")
        );
        // Range query over the last few seconds.
        let now = Ts::now();
        let m = c
            .query_range(
                r#"up{service="payment"}"#,
                now.plus_secs(-5.0),
                now,
                Duration::from_secs(1),
            )
            .await
            .expect("range");
        assert!(!m.is_empty() && !m[0].points.is_empty(), "{m:?}");
        // Errors: a syntax error is Prometheus's bad_data, named with the query.
        let e = c.query("sum(", None).await.unwrap_err();
        match &e {
            PromError::Api {
                status,
                error_type,
                query,
                ..
            } => {
                assert_eq!(*status, 400);
                assert_eq!(error_type, "bad_data");
                assert_eq!(query, "sum(");
            }
            other => panic!("expected an API error, got {other:?}"),
        }
        let e = c
            .query_range("up", now, now.plus_secs(-10.0), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, PromError::InvalidQuery { .. }));
        // Nobody listening: a request error, within the timeout.
        let dead = PromClient::new(
            &format!("http://127.0.0.1:{}", free_port()),
            Duration::from_secs(1),
        )
        .expect("client");
        let t = Instant::now();
        assert!(dead.query("up", None).await.is_err());
        assert!(t.elapsed() < Duration::from_secs(3));
    });
    drop(prom);
    drop(estate);
}

/// `post` with extra header lines (`Authorization: Bearer …`); returns the raw response.
fn post_as(addr: &str, path: &str, token: Option<&str>, body: &str) -> String {
    use std::io::{Read, Write};
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp
}

/// Against a running `medic run` with its server on: an alert opens an incident whose policy
/// needs approval; the API refuses the unauthenticated and the viewer, accepts the approver,
/// and medic then acts; the audit names who approved and why. Tokens are configured by their
/// SHA-256 only.
#[test]
fn a_person_approves_through_the_api_and_medic_acts() {
    use sha2::{Digest, Sha256};
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path().to_path_buf();
    let estate_dir = tmp.join("estate");
    let (estate, estate_addr) = start_estate(&estate_dir, &tmp.join("estate.log"));
    let port = free_port();
    let (ingest, viewer, approver) = ("tok-ingest-e2e", "tok-viewer-e2e", "tok-approver-e2e");
    let h = |t: &str| hex_of(&Sha256::digest(t.as_bytes()));
    let e = estate_dir.display();
    let config = format!(
        r#"agent: {{ tick: 1s, diagnosis_settle: 2s, change_lookback: 5m }}
sources:
  - {{ name: events, type: process_events, path: "{e}/events.jsonl" }}
actuators:
  local: {{ supervisor_url: "http://{estate_addr}", timeout: 30s }}
store: {{ sqlite: "{store}" }}
server:
  enabled: true
  listen: "127.0.0.1:{port}"
  otlp_grpc_listen: "127.0.0.1:0"
  auth:
    tokens:
      - {{ name: alertmanager, role: ingest, sha256: "{hi}" }}
      - {{ name: grafana, role: viewer, sha256: "{hv}" }}
      - {{ name: alice, role: approver, sha256: "{ha}" }}
policies:
  - name: rollback-with-approval
    match: {{ cause: bad_deployment, services: [payment] }}
    action: rollback_release
    confidence_threshold: 0.6
    mode: approve
    max_attempts: 1
    verification_window: 3s
"#,
        store = tmp.join("medic.db").display(),
        hi = h(ingest),
        hv = h(viewer),
        ha = h(approver),
    );
    std::fs::write(tmp.join("medic.yaml"), config).expect("medic.yaml");
    let medic = spawn(
        "medic run",
        Command::new(env!("CARGO_BIN_EXE_medic"))
            .args(["run", "--config"])
            .arg(tmp.join("medic.yaml"))
            .env("MEDIC_LOG", "info"),
        &tmp.join("medic.log"),
    );
    let api = format!("127.0.0.1:{port}");
    let up = Instant::now();
    while std::net::TcpStream::connect(&api).is_err() {
        if up.elapsed() > Duration::from_secs(30) {
            dump_logs(&tmp);
            panic!("medic's server did not start");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let resp = post(&estate_addr, "/demo/faults", r#"{"kind":"bad_deployment"}"#);
    assert!(resp.starts_with("HTTP/1.1 200"), "inject: {resp}");
    let alert = r#"{"version":"4","status":"firing","receiver":"medic","groupKey":"g","alerts":[{"status":"firing","labels":{"alertname":"PaymentErrors","service":"payment","severity":"critical"},"annotations":{"medic_cause":"bad_deployment"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"pe1"}]}"#;
    let resp = post_as(&api, "/api/v1/alerts/alertmanager", Some(ingest), alert);
    assert!(resp.starts_with("HTTP/1.1 200"), "alert: {resp}");

    let store_path = tmp.join("medic.db");
    let mut id = String::new();
    wait_until(
        "an incident awaiting approval",
        Duration::from_secs(60),
        || {
            let Ok(store) = medic_store::Store::open(&store_path) else {
                return false;
            };
            let found = store
                .incidents()
                .unwrap_or_default()
                .into_iter()
                .find(|i| i.state == IncidentState::AwaitingApproval);
            if let Some(i) = found {
                id = i.id;
                return true;
            }
            false
        },
    );
    let path = format!("/api/v1/incidents/{id}/approve");
    let why = r#"{"reason":"payment v2 is the bad release, rollback is safe"}"#;
    let r = post_as(&api, &path, None, why);
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    let r = post_as(&api, &path, Some(viewer), why);
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    let r = post_as(&api, &path, Some(approver), why);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");

    let mut executed = None;
    wait_until("the approved rollback", Duration::from_secs(60), || {
        let Ok(store) = medic_store::Store::open(&store_path) else {
            return false;
        };
        executed = store
            .incident(&id)
            .ok()
            .flatten()
            .and_then(|i| i.executions.first().cloned());
        executed.is_some()
    });
    let exec = executed.expect("execution");
    assert_eq!(exec.action.kind, ActionKind::RollbackRelease);
    assert_eq!(exec.action.target, "payment");
    let store = medic_store::Store::open(&store_path).expect("store");
    let answered: Vec<_> = store
        .audit_records_for(&id)
        .expect("audit")
        .into_iter()
        .filter(|r| r.kind == "approval_answered")
        .collect();
    assert_eq!(answered.len(), 1);
    assert!(
        answered[0].payload.contains("\"by\":\"alice\"")
            && answered[0].payload.contains("\"role\":\"approver\"")
            && answered[0].payload.contains("rollback is safe"),
        "{}",
        answered[0].payload
    );
    assert!(store.verify_audit().expect("verify").is_intact());
    drop(medic);
    drop(estate);
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
