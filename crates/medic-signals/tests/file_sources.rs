//! File-based log sources end to end through `spawn_sources_with`: checkpoints kept in a
//! real SQLite store (medic-store's kv table), restarts, rotation while stopped, container
//! logs, parsing formats and redaction from config.

use medic_config::{
    ContainerFormat, LogFormat, RedactionConfig, RedactionPattern, SourceConfig, SourceKind,
};
use medic_core::{Level, Signal, SignalPayload};
use medic_signals::checkpoint::kv_key;
use medic_signals::{CheckpointStore, Counter, FnCheckpointStore, SourceStats, spawn_sources_with};
use medic_store::Store;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);

fn log_files(
    name: &str,
    dir: &Path,
    glob: &str,
    format: LogFormat,
    container: ContainerFormat,
) -> SourceConfig {
    SourceConfig {
        name: name.into(),
        kind: SourceKind::LogFiles {
            paths: vec![dir.join(glob).to_string_lossy().into_owned()],
            service: None,
            from_start: true,
            poll: Duration::from_millis(20),
            format,
            container,
        },
        location: Default::default(),
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

fn store_checkpoints(store: Arc<Store>) -> Arc<dyn CheckpointStore> {
    let s2 = store.clone();
    Arc::new(FnCheckpointStore::new(
        move |src: &str| store.kv_get(&kv_key(src)).ok().flatten(),
        move |src: &str, st: &str| {
            let _ = s2.kv_set(&kv_key(src), st);
        },
    ))
}

struct Running {
    rx: mpsc::Receiver<Signal>,
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
    stats: Arc<SourceStats>,
}

impl Running {
    fn start(
        sources: &[SourceConfig],
        redaction: &RedactionConfig,
        checkpoints: Option<Arc<dyn CheckpointStore>>,
    ) -> Running {
        Self::start_cap(sources, redaction, checkpoints, 1024)
    }

    /// A small channel keeps the source blocked mid-file, with lines read but not sent.
    fn start_cap(
        sources: &[SourceConfig],
        redaction: &RedactionConfig,
        checkpoints: Option<Arc<dyn CheckpointStore>>,
        cap: usize,
    ) -> Running {
        let (tx, rx) = mpsc::channel(cap);
        let (stop, shutdown) = watch::channel(false);
        let stats = Arc::new(SourceStats::new());
        let handles =
            spawn_sources_with(sources, redaction, tx, shutdown, stats.clone(), checkpoints)
                .unwrap();
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

    async fn messages(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            out.push(message(self.next().await));
        }
        out
    }

    async fn stop(self) -> Arc<SourceStats> {
        self.stop.send(true).unwrap();
        for h in self.handles {
            tokio::time::timeout(WAIT, h)
                .await
                .expect("source did not stop")
                .unwrap();
        }
        self.stats
    }
}

fn message(s: Signal) -> String {
    match s.payload {
        SignalPayload::Log(l) => l.message,
        other => panic!("expected a log, got {other:?}"),
    }
}

fn numbered(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| format!("INFO request {i:05} served\n"))
        .collect()
}

fn want(from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|i| format!("request {i:05} served"))
        .collect()
}

#[tokio::test]
async fn restart_mid_file_reads_every_line_exactly_once() {
    let d = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&d.path().join("medic.db")).unwrap());
    let logs = d.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("app-0.log");
    append(&log, &numbered(0, 300));
    let src = [log_files(
        "files",
        &logs,
        "*.log",
        LogFormat::Auto,
        ContainerFormat::None,
    )];
    let none = RedactionConfig::default();

    let mut r = Running::start_cap(&src, &none, Some(store_checkpoints(store.clone())), 8);
    // Stop part-way: some lines are still in the channel or not yet read.
    let first = r.messages(120).await;
    assert_eq!(first, want(0, 120));
    let mut rx_rest = Vec::new();
    r.stop.send(true).unwrap();
    for h in std::mem::take(&mut r.handles) {
        tokio::time::timeout(WAIT, h).await.unwrap().unwrap();
    }
    // Whatever reached the channel before the stop was handed on.
    while let Ok(s) = r.rx.try_recv() {
        rx_rest.push(message(s));
    }
    assert!(store.kv_get(&kv_key("files")).unwrap().is_some());

    append(&log, &numbered(300, 350));
    let mut r = Running::start(&src, &none, Some(store_checkpoints(store.clone())));
    let seen = 120 + rx_rest.len();
    assert!(
        seen < 300,
        "the stop came after everything was sent: {seen}"
    );
    let second = r.messages(350 - seen).await;
    let mut all = first;
    all.extend(rx_rest);
    all.extend(second);
    assert_eq!(all, want(0, 350));
    // Nothing more (no duplicates arriving late).
    assert!(
        tokio::time::timeout(Duration::from_millis(400), r.rx.recv())
            .await
            .is_err()
    );
    r.stop().await;
}

#[tokio::test]
async fn rotation_while_stopped_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&d.path().join("medic.db")).unwrap());
    let logs = d.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("api-1.log");
    append(&log, &numbered(0, 50));
    let src = [log_files(
        "files",
        &logs,
        "*.log",
        LogFormat::Auto,
        ContainerFormat::None,
    )];
    let none = RedactionConfig::default();
    let mut r = Running::start(&src, &none, Some(store_checkpoints(store.clone())));
    assert_eq!(r.messages(50).await, want(0, 50));
    r.stop().await;

    // While medic is down: more lines, then rotation by rename, then the new file.
    append(&log, &numbered(50, 70));
    std::fs::rename(&log, logs.join("api-1.log.1")).unwrap();
    append(&log, &numbered(70, 80));
    let mut r = Running::start(&src, &none, Some(store_checkpoints(store.clone())));
    let got = r.messages(30).await;
    assert_eq!(got, want(50, 80));
    assert!(
        tokio::time::timeout(Duration::from_millis(400), r.rx.recv())
            .await
            .is_err()
    );
    let stats = r.stop().await;
    assert_eq!(stats.get(Counter::FileReplaced), 0);
}

#[tokio::test]
async fn unreadable_checkpoint_is_counted_and_the_source_starts_afresh() {
    let d = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&d.path().join("medic.db")).unwrap());
    store.kv_set(&kv_key("files"), "\u{1}not json").unwrap();
    append(&d.path().join("a.log"), "ERROR one\n");
    let src = [log_files(
        "files",
        d.path(),
        "*.log",
        LogFormat::Auto,
        ContainerFormat::None,
    )];
    let mut r = Running::start(
        &src,
        &RedactionConfig::default(),
        Some(store_checkpoints(store)),
    );
    assert_eq!(message(r.next().await), "one");
    let stats = r.stop().await;
    assert_eq!(stats.get(Counter::CheckpointError), 1);
}

#[tokio::test]
async fn kubernetes_cri_and_docker_logs() {
    let d = tempfile::tempdir().unwrap();
    let pods = d.path().join("pods");
    let cri_dir = pods
        .join("shop_checkout-7d9f8c6b5-x2k4q_0b7a6c1e-1111-2222-3333-444455556666")
        .join("checkout");
    std::fs::create_dir_all(&cri_dir).unwrap();
    append(
        &cri_dir.join("0.log"),
        "2024-01-01T00:00:00.000000000Z stdout P {\"level\":\"error\",\"msg\":\"pay\n\
         2024-01-01T00:00:00.000000001Z stdout F ment failed\",\"card\":\"4111111111111111\"}\n\
         2024-01-01T00:00:01.000000000Z stderr F WARN slow query\n\
         this is not a CRI line\n",
    );
    let docker_dir = pods
        .join("prod_db-0_9f9f9f9f-aaaa-bbbb-cccc-dddddddddddd")
        .join("postgres");
    std::fs::create_dir_all(&docker_dir).unwrap();
    append(
        &docker_dir.join("1.log"),
        "{\"log\":\"ERROR: could not \",\"stream\":\"stderr\",\"time\":\"2024-01-01T00:00:02Z\"}\n\
         {\"log\":\"connect\\n\",\"stream\":\"stderr\",\"time\":\"2024-01-01T00:00:02Z\"}\n",
    );
    // The kubelet's layout, as the default `paths` of `kubernetes_logs` has it.
    let paths = vec![pods.join("*/*/*.log").to_string_lossy().into_owned()];
    let src = [SourceConfig {
        name: "k8s".into(),
        kind: SourceKind::KubernetesLogs {
            paths,
            from_start: true,
            poll: Duration::from_millis(20),
            format: LogFormat::Auto,
        },
        location: Default::default(),
    }];
    let mut r = Running::start(&src, &RedactionConfig::default(), None);
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(r.next().await);
    }
    got.sort_by_key(|s| (s.service.clone(), s.ts));
    let summary: Vec<(Option<String>, Option<String>, Level, String)> = got
        .iter()
        .map(|s| match &s.payload {
            SignalPayload::Log(l) => (
                s.service.clone(),
                s.instance.clone(),
                l.level,
                l.message.clone(),
            ),
            _ => panic!(),
        })
        .collect();
    // Sorted by service: `prod/db` before `shop/checkout`.
    assert_eq!(summary[0].0.as_deref(), Some("prod/db"));
    assert_eq!(summary[0].3, "could not connect");
    assert_eq!(
        summary[1],
        (
            Some("shop/checkout".into()),
            Some("checkout-7d9f8c6b5-x2k4q".into()),
            Level::Error,
            "payment failed".into()
        )
    );
    assert_eq!(summary[2].3, "slow query");
    assert_eq!(summary[3].3, "this is not a CRI line");
    let SignalPayload::Log(l) = &got[1].payload else {
        panic!()
    };
    assert_eq!(l.fields["namespace"], "shop");
    assert_eq!(l.fields["container"], "checkout");
    assert_eq!(l.fields["card"], "[REDACTED:card]");
    assert_eq!(got[1].ts, medic_core::Ts(1_704_067_200_000));
    let stats = r.stop().await;
    assert_eq!(stats.get(Counter::MalformedContainerLine), 1);
}

#[tokio::test]
async fn formats_and_redaction_from_config() {
    let d = tempfile::tempdir().unwrap();
    append(
        &d.path().join("svc-0.log"),
        "ts=2024-05-01T10:00:00Z level=error msg=\"charge EMP-123456 failed\" user=bob@example.com\n",
    );
    let src = [log_files(
        "fmt",
        d.path(),
        "*.log",
        LogFormat::Logfmt,
        ContainerFormat::None,
    )];
    let redaction = RedactionConfig {
        extra_patterns: vec![RedactionPattern {
            name: "employee".into(),
            regex: r"EMP-\d{6}".into(),
        }],
        disable: vec!["email".into()],
    };
    let mut r = Running::start(&src, &redaction, None);
    let s = r.next().await;
    let SignalPayload::Log(l) = s.payload else {
        panic!()
    };
    assert_eq!(l.level, Level::Error);
    assert_eq!(l.message, "charge [REDACTED:employee] failed");
    assert_eq!(l.fields["user"], "bob@example.com");
    assert!(!l.raw.contains("EMP-123456"));
    r.stop().await;
}

#[tokio::test]
async fn bad_format_or_redaction_config_starts_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::channel(1);
    let (_stop, shutdown) = watch::channel(false);
    let bad_loghub = [log_files(
        "x",
        d.path(),
        "*.log",
        LogFormat::Loghub {
            format: "no headers".into(),
        },
        ContainerFormat::None,
    )];
    let err = spawn_sources_with(
        &bad_loghub,
        &RedactionConfig::default(),
        tx.clone(),
        shutdown.clone(),
        Arc::new(SourceStats::new()),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("Loghub"), "{err}");
    let bad_redaction = RedactionConfig {
        extra_patterns: vec![RedactionPattern {
            name: "x".into(),
            regex: "(".into(),
        }],
        disable: vec![],
    };
    assert!(
        spawn_sources_with(
            &[],
            &bad_redaction,
            tx,
            shutdown,
            Arc::new(SourceStats::new()),
            None
        )
        .is_err()
    );
}

#[tokio::test]
async fn hostile_files_do_not_stop_the_source() {
    let d = tempfile::tempdir().unwrap();
    let garbage: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(d.path().join("bin.log"), &garbage).unwrap();
    // A truncated gzip with a 10 MB line inside.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b"ERROR before\n").unwrap();
    e.write_all(&vec![b'z'; 10 << 20]).unwrap();
    e.write_all(b"\nERROR after\n").unwrap();
    let gz = e.finish().unwrap();
    std::fs::write(d.path().join("old.log.gz"), &gz[..gz.len() - 20]).unwrap();
    let src = [log_files(
        "h",
        d.path(),
        "*.log*",
        LogFormat::Auto,
        ContainerFormat::None,
    )];
    let mut r = Running::start(&src, &RedactionConfig::default(), None);
    append(&d.path().join("ok.log"), "ERROR still alive\n");
    let mut found = false;
    for _ in 0..10_000 {
        let s = r.next().await;
        if message(s) == "still alive" {
            found = true;
            break;
        }
    }
    assert!(found);
    let stats = r.stop().await;
    assert_eq!(stats.get(Counter::TruncatedGzip), 1);
    assert_eq!(stats.get(Counter::LineTooLong), 1);
    assert!(stats.get(Counter::InvalidUtf8) > 0);
}
