//! The sources end to end, through `spawn_sources`, against real files and a real HTTP
//! server on 127.0.0.1.

use medic_config::{Location, ScrapeTarget, SourceConfig, SourceKind};
use medic_core::{ChangeKind, Level, ProcessEventKind, Signal, SignalPayload, Ts};
use medic_signals::{Counter, SignalsError, SourceStats, spawn_sources};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);

fn cfg(name: &str, kind: SourceKind) -> SourceConfig {
    SourceConfig {
        name: name.into(),
        kind,
        location: Location::default(),
    }
}

fn append(path: &Path, data: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(data.as_bytes()).unwrap();
}

struct Running {
    rx: mpsc::Receiver<Signal>,
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
    stats: Arc<SourceStats>,
}

impl Running {
    fn start(sources: &[SourceConfig]) -> Running {
        let (tx, rx) = mpsc::channel(64);
        let (stop, shutdown) = watch::channel(false);
        let stats = Arc::new(SourceStats::new());
        let handles = spawn_sources(sources, tx, shutdown, stats.clone()).unwrap();
        Running {
            rx,
            stop,
            handles,
            stats,
        }
    }

    async fn next(&mut self) -> Signal {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("timed out waiting for a signal")
            .expect("channel closed")
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        for h in self.handles {
            tokio::time::timeout(WAIT, h)
                .await
                .expect("source did not stop")
                .unwrap();
        }
    }
}

#[tokio::test]
async fn log_files_join_redact_and_name() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("checkout-1.log");
    append(
        &log,
        "2024-05-01T10:00:00Z ERROR charge failed for bob@example.com\n\tat Pay.charge(Pay.java:1)\n\tat Api.post(Api.java:2)\n",
    );
    let mut r = Running::start(&[cfg(
        "logs",
        SourceKind::LogFiles {
            paths: vec![d.path().join("*.log").to_string_lossy().into_owned()],
            service: None,
            from_start: true,
            poll: Duration::from_millis(20),
            format: Default::default(),
            container: Default::default(),
        },
    )]);
    let s = r.next().await;
    assert_eq!(s.source, "logs");
    assert_eq!(s.service.as_deref(), Some("checkout"));
    assert_eq!(s.instance.as_deref(), Some("checkout-1"));
    assert_eq!(s.ts, Ts(1_714_557_600_000));
    let SignalPayload::Log(line) = s.payload else {
        panic!("expected a log, got {:?}", s.payload);
    };
    assert_eq!(line.level, Level::Error);
    assert_eq!(line.message, "charge failed for [REDACTED:email]");
    assert_eq!(line.continuation.len(), 2);

    append(
        &log,
        "{\"level\":\"info\",\"msg\":\"ok\",\"api_key\":\"k\"}\n",
    );
    let s = r.next().await;
    let SignalPayload::Log(line) = s.payload else {
        panic!("expected a log");
    };
    assert_eq!(line.message, "ok");
    assert_eq!(line.fields["api_key"], "[REDACTED:secret]");
    assert!(!line.raw.contains("\"k\""));
    r.stop().await;
}

#[tokio::test]
async fn log_files_from_end_with_fixed_service() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app-0.log");
    append(&log, "ERROR old, must not be read\n");
    let mut r = Running::start(&[cfg(
        "logs",
        SourceKind::LogFiles {
            paths: vec![log.to_string_lossy().into_owned()],
            service: Some("fixed".into()),
            from_start: false,
            poll: Duration::from_millis(20),
            format: Default::default(),
            container: Default::default(),
        },
    )]);
    // Let the first poll record the end of the file.
    tokio::time::sleep(Duration::from_millis(150)).await;
    append(&log, "WARN new\n");
    let s = r.next().await;
    assert_eq!(s.service.as_deref(), Some("fixed"));
    assert_eq!(s.instance.as_deref(), Some("app-0"));
    match s.payload {
        SignalPayload::Log(l) => assert_eq!((l.level, l.message.as_str()), (Level::Warn, "new")),
        other => panic!("expected a log, got {other:?}"),
    }
    r.stop().await;
}

#[tokio::test]
async fn process_events_skip_malformed_lines() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("events.jsonl");
    append(
        &path,
        concat!(
            r#"{"ts":1000,"service":"cache","instance":"cache-0","kind":"started","pid":42}"#,
            "\n{not json\n",
            r#"{"ts":1,"service":"x"}"#,
            "\n",
            r#"{"ts":2000,"service":"cache","instance":"cache-0","kind":"exited","pid":42,"exit_code":null,"signal":9,"reason":"OOMKilled"}"#,
            "\n",
        ),
    );
    let mut r = Running::start(&[cfg("events", SourceKind::ProcessEvents { path })]);
    let a = r.next().await;
    let b = r.next().await;
    assert_eq!((a.ts, b.ts), (Ts(1000), Ts(2000)));
    assert_eq!(b.instance.as_deref(), Some("cache-0"));
    match b.payload {
        SignalPayload::Process(e) => {
            assert_eq!(e.kind, ProcessEventKind::Exited);
            assert_eq!(e.reason, "OOMKilled");
            assert_eq!(e.signal, Some(9));
        }
        other => panic!("expected a process event, got {other:?}"),
    }
    assert_eq!(r.stats.get(Counter::MalformedJson), 2);
    r.stop().await;
}

#[tokio::test]
async fn change_calendar_reads_file_created_later() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("changes.jsonl");
    let mut r = Running::start(&[cfg(
        "changes",
        SourceKind::ChangeCalendar { path: path.clone() },
    )]);
    append(&path, "garbage\n");
    append(
        &path,
        r#"{"kind":"deploy","service":"payment","start":5000,"from":"v1","to":"v2","description":"by alice@example.com"}"#,
    );
    append(&path, "\n");
    let before = Ts::now();
    let s = r.next().await;
    assert!(s.ts >= before);
    assert_eq!(s.service.as_deref(), Some("payment"));
    match s.payload {
        SignalPayload::Change(c) => {
            assert_eq!(c.kind, ChangeKind::Deploy);
            assert_eq!(c.to.as_deref(), Some("v2"));
            assert_eq!(c.description, "by [REDACTED:email]");
        }
        other => panic!("expected a change, got {other:?}"),
    }
    assert_eq!(r.stats.get(Counter::MalformedJson), 1);
    r.stop().await;
}

#[tokio::test]
async fn procfs_reads_own_process() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("me-3.pid"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    std::fs::write(d.path().join("junk-0.pid"), "junk").unwrap();
    let mut r = Running::start(&[cfg(
        "proc",
        SourceKind::Procfs {
            pid_files: d.path().join("*.pid").to_string_lossy().into_owned(),
            interval: Duration::from_millis(50),
        },
    )]);
    let s = r.next().await;
    assert_eq!(
        (s.service.as_deref(), s.instance.as_deref()),
        (Some("me"), Some("me-3"))
    );
    match s.payload {
        SignalPayload::ProcessStats { pid, rss_bytes, .. } => {
            assert_eq!(pid, std::process::id());
            assert!(rss_bytes > 0);
        }
        other => panic!("expected process stats, got {other:?}"),
    }
    assert!(r.stats.get(Counter::PidFileInvalid) >= 1);
    r.stop().await;
}

const METRICS: &str = "# TYPE http_requests_total counter\nhttp_requests_total{route=\"/\",code=\"200\"} 7\nbroken line\n";

async fn metrics_server() -> (String, tokio::task::JoinHandle<()>) {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = Router::new()
        .route("/metrics", get(|| async { METRICS }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "no") }),
        )
        .route("/huge", get(|| async { "x 1\n".repeat(3 << 20) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, server)
}

#[tokio::test]
async fn prometheus_scrape_success_failure_and_refused() {
    let (addr, server) = metrics_server().await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let d = tempfile::tempdir().unwrap();
    let sd = d.path().join("targets.json");
    std::fs::write(
        &sd,
        format!(r#"[{{"targets":["{addr}"],"labels":{{"service":"checkout","instance":"checkout-0"}}}}]"#),
    )
    .unwrap();
    let mut r = Running::start(&[cfg(
        "prom",
        SourceKind::PrometheusScrape {
            file_sd: Some(sd.clone()),
            targets: vec![
                ScrapeTarget {
                    address: format!("http://{addr}/fail"),
                    service: "payment".into(),
                    instance: Some("payment-0".into()),
                },
                ScrapeTarget {
                    address: refused.clone(),
                    service: "cache".into(),
                    instance: None,
                },
                ScrapeTarget {
                    address: format!("http://{addr}/huge"),
                    service: "big".into(),
                    instance: Some("big-0".into()),
                },
            ],
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(5),
        },
    )]);
    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < 4 {
        let s = r.next().await;
        seen.insert(s.instance.clone().unwrap(), s);
    }
    let ok = &seen["checkout-0"];
    assert_eq!(ok.service.as_deref(), Some("checkout"));
    match &ok.payload {
        SignalPayload::Metrics { samples } => {
            assert_eq!(samples.len(), 1);
            assert_eq!(samples[0].value, 7.0);
        }
        other => panic!("expected metrics, got {other:?}"),
    }
    let down = |inst: &str| match &seen[inst].payload {
        SignalPayload::TargetDown { error } => error.clone(),
        other => panic!("expected target down for {inst}, got {other:?}"),
    };
    assert!(down("payment-0").contains("500"), "{}", down("payment-0"));
    assert!(down(&refused).contains("connect"), "{}", down(&refused));
    assert!(down("big-0").contains("exceeds"), "{}", down("big-0"));
    assert!(r.stats.get(Counter::MalformedMetricLine) >= 1);
    assert!(r.stats.get(Counter::ScrapeFailed) >= 3);

    // A broken file_sd keeps the previous targets.
    std::fs::write(&sd, "[{\"targets\":").unwrap();
    let errors_before = r.stats.get(Counter::FileSdError);
    loop {
        let s = r.next().await;
        if r.stats.get(Counter::FileSdError) > errors_before
            && s.instance.as_deref() == Some("checkout-0")
        {
            assert!(matches!(s.payload, SignalPayload::Metrics { .. }));
            break;
        }
    }
    r.stop().await;
    server.abort();
}

#[tokio::test]
async fn invalid_configs_start_nothing() {
    let (tx, _rx) = mpsc::channel(1);
    let (_stop, shutdown) = watch::channel(false);
    let stats = Arc::new(SourceStats::new());
    let good = cfg(
        "events",
        SourceKind::ProcessEvents {
            path: "/nonexistent/events.jsonl".into(),
        },
    );
    let bad_cases = [
        cfg(
            "logs",
            SourceKind::LogFiles {
                paths: vec!["/var/**/x.log".into()],
                service: None,
                from_start: false,
                poll: Duration::from_secs(1),
                format: Default::default(),
                container: Default::default(),
            },
        ),
        cfg(
            "logs",
            SourceKind::LogFiles {
                paths: vec![],
                service: None,
                from_start: false,
                poll: Duration::from_secs(1),
                format: Default::default(),
                container: Default::default(),
            },
        ),
        cfg(
            "proc",
            SourceKind::Procfs {
                pid_files: "/tmp/*.pid".into(),
                interval: Duration::ZERO,
            },
        ),
        cfg(
            "prom",
            SourceKind::PrometheusScrape {
                file_sd: None,
                targets: vec![],
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
            },
        ),
    ];
    for bad in bad_cases {
        let err = spawn_sources(
            &[good.clone(), bad],
            tx.clone(),
            shutdown.clone(),
            stats.clone(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                SignalsError::InvalidPattern { .. } | SignalsError::InvalidConfig { .. }
            ),
            "{err}"
        );
    }
}

#[test]
fn outside_a_runtime_is_an_error() {
    let (tx, _rx) = mpsc::channel(1);
    let (_stop, shutdown) = watch::channel(false);
    let err = spawn_sources(&[], tx, shutdown, Arc::new(SourceStats::new())).unwrap_err();
    assert!(matches!(err, SignalsError::NoRuntime));
}

#[tokio::test]
async fn stops_when_the_receiver_is_gone_or_shutdown_dropped() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("events.jsonl");
    let line = r#"{"ts":1,"service":"a","instance":"a-0","kind":"started","pid":1}"#;
    append(&path, &format!("{line}\n{line}\n{line}\n"));
    let (tx, rx) = mpsc::channel(1);
    let (stop, shutdown) = watch::channel(false);
    let handles = spawn_sources(
        &[cfg("events", SourceKind::ProcessEvents { path })],
        tx,
        shutdown,
        Arc::new(SourceStats::new()),
    )
    .unwrap();
    drop(rx);
    drop(stop);
    for h in handles {
        tokio::time::timeout(WAIT, h).await.unwrap().unwrap();
    }
}
