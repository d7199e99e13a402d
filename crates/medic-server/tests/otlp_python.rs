//! Real peers: the OpenTelemetry Python SDK (from PyPI, in a venv the harness makes under
//! `$HOME/.cache/medic/otel-venv`) exports logs and metrics (counter, gauge, histogram) to
//! medic over OTLP/HTTP protobuf (gzip), OTLP/HTTP JSON and OTLP/gRPC. Skips, saying so, only
//! when pip cannot reach the registry.
#![cfg(feature = "otlp")]

mod common;

use medic_core::{Level, MetricSample, Signal, SignalPayload};
use medic_server::ServerState;
use medic_signals::SourceStats;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

fn otel_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otel")
}

/// The venv's python, or `None` (after saying why) when pip cannot reach the registry.
fn python() -> Option<PathBuf> {
    let out = std::process::Command::new("bash")
        .arg(otel_dir().join("setup_venv.sh"))
        .output()
        .expect("run setup_venv.sh");
    if out.status.code() == Some(3) {
        eprintln!(
            "SKIPPED: pip cannot reach the package registry, so the OpenTelemetry SDK peer cannot be installed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    assert!(
        out.status.success(),
        "setup_venv.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Runs export.py, killing it (by its pid) if it outlives 90 s.
async fn export(py: &Path, mode: &str, endpoint: &str, service: &str) {
    let mut child = tokio::process::Command::new(py)
        .arg(otel_dir().join("export.py"))
        .args([mode, endpoint, service])
        // How an OTLP exporter is given medic's ingest token (README: authentication).
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization=Bearer%20{}", common::INGEST_TOKEN),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start python");
    let pid = child.id();
    let mut stderr = child.stderr.take().expect("stderr piped");
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut s).await;
        s
    });
    let status = match tokio::time::timeout(Duration::from_secs(90), child.wait()).await {
        Ok(s) => s.expect("wait python"),
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            panic!("export.py (pid {pid:?}) ran over 90 s; killed");
        }
    };
    let err = err_task.await.unwrap_or_default();
    assert!(status.success(), "export.py {mode} failed: {err}");
}

/// Collects signals until both logs and metrics of `service` are in, bounded in time.
async fn collect(
    rx: &mut mpsc::Receiver<Signal>,
    service: &str,
) -> (Vec<Signal>, Vec<MetricSample>) {
    let mut logs = Vec::new();
    let mut samples = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while logs.len() < 3 || samples.is_empty() {
        let Ok(Some(sig)) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            break;
        };
        assert_eq!(sig.service.as_deref(), Some(service));
        assert_eq!(
            sig.instance.as_deref(),
            Some(format!("{service}-0").as_str())
        );
        match &sig.payload {
            SignalPayload::Log(_) => logs.push(sig),
            SignalPayload::Metrics { samples: s } => samples.extend(s.iter().cloned()),
            other => panic!("unexpected payload {other:?}"),
        }
    }
    (logs, samples)
}

fn sample<'a>(
    samples: &'a [MetricSample],
    name: &str,
    label: Option<(&str, &str)>,
) -> &'a MetricSample {
    samples
        .iter()
        .find(|s| s.name == name && label.is_none_or(|(k, v)| s.label(k) == Some(v)))
        .unwrap_or_else(|| panic!("no sample {name} {label:?} in {samples:#?}"))
}

async fn run(mode: &str) {
    let Some(py) = python() else { return };
    let (tx, mut rx) = mpsc::channel(1024);
    let stats = Arc::new(SourceStats::new());
    let state = ServerState::new(tx, stats.clone()).with_auth(common::test_auth());
    let (_stop, shutdown) = watch::channel(false);
    let endpoint = if mode == "grpc" {
        let a = medic_server::grpc::serve_grpc("127.0.0.1:0".parse().unwrap(), state, shutdown)
            .await
            .unwrap();
        format!("http://{a}")
    } else {
        let a = medic_server::serve("127.0.0.1:0", state, shutdown)
            .await
            .unwrap();
        format!("http://{a}")
    };
    let service = format!("shop-{}", mode.replace('-', ""));
    export(&py, mode, &endpoint, &service).await;
    let (logs, samples) = collect(&mut rx, &service).await;

    let lines: Vec<_> = logs
        .iter()
        .map(|s| match &s.payload {
            SignalPayload::Log(l) => l.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let err = lines
        .iter()
        .find(|l| l.level == Level::Error)
        .expect("an error record");
    assert!(err.message.starts_with("payment failed"), "{}", err.message);
    assert!(
        !err.message.contains("hunter2"),
        "redacted: {}",
        err.message
    );
    assert_eq!(err.fields.get("order.id").map(String::as_str), Some("o-17"));
    assert!(
        lines
            .iter()
            .any(|l| l.level == Level::Warn && l.message == "slow response from db")
    );
    assert!(
        lines
            .iter()
            .any(|l| l.level == Level::Info && l.message == "request served")
    );
    assert!(
        logs.iter().all(|s| s.ts.0 > 1_600_000_000_000),
        "record time kept"
    );

    assert_eq!(
        sample(
            &samples,
            "http_requests_total",
            Some(("http_route", "/pay"))
        )
        .value,
        5.0
    );
    assert_eq!(
        sample(&samples, "queue_depth", Some(("queue", "orders"))).value,
        7.0
    );
    assert_eq!(sample(&samples, "rpc_latency_count", None).value, 3.0);
    assert!((sample(&samples, "rpc_latency_sum", None).value - 3.9).abs() < 1e-9);
    assert_eq!(
        sample(&samples, "rpc_latency_bucket", Some(("le", "+Inf"))).value,
        3.0
    );
    // The SDK's default bounds start 0, 5, 10, ...: all three values are ≤ 5.
    assert_eq!(
        sample(&samples, "rpc_latency_bucket", Some(("le", "5"))).value,
        3.0
    );
    assert_eq!(stats.get(medic_signals::Counter::OtlpMalformedBody), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_exports_over_http_protobuf() {
    run("http-proto").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_exports_over_http_json() {
    run("http-json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_exports_over_grpc() {
    run("grpc").await;
}

/// The SDK with `preferred_temporality=DELTA`: medic turns its deltas into the cumulative
/// series a Prometheus scrape would show, and starts a series again when the process
/// restarts (see export.py's `-delta` modes).
async fn run_delta(mode: &str) {
    let Some(py) = python() else { return };
    let (tx, mut rx) = mpsc::channel(1024);
    let stats = Arc::new(SourceStats::new());
    let state = ServerState::new(tx, stats.clone()).with_auth(common::test_auth());
    let (_stop, shutdown) = watch::channel(false);
    let endpoint = if mode == "grpc" {
        let a = medic_server::grpc::serve_grpc("127.0.0.1:0".parse().unwrap(), state, shutdown)
            .await
            .unwrap();
        format!("http://{a}")
    } else {
        let a = medic_server::serve("127.0.0.1:0", state, shutdown)
            .await
            .unwrap();
        format!("http://{a}")
    };
    let service = format!("shop-{}-delta", mode.replace('-', ""));
    export(&py, &format!("{mode}-delta"), &endpoint, &service).await;
    // Each export was answered, so delivered, before export.py exited: drain what came.
    let mut batches: Vec<Vec<MetricSample>> = Vec::new();
    while let Ok(Some(sig)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        assert_eq!(sig.service.as_deref(), Some(service.as_str()));
        match sig.payload {
            SignalPayload::Metrics { samples } => batches.push(samples),
            other => panic!("unexpected payload {other:?}"),
        }
    }
    let series = |name: &str, label: Option<(&str, &str)>| -> Vec<f64> {
        batches
            .iter()
            .filter_map(|b| {
                b.iter()
                    .find(|s| s.name == name && label.is_none_or(|(k, v)| s.label(k) == Some(v)))
                    .map(|s| s.value)
            })
            .collect()
    };
    assert_eq!(
        series("http_requests_total", Some(("http_route", "/pay"))),
        vec![5.0, 8.0, 10.0, 4.0],
        "deltas 5, 3, 2 summed, then the restarted process's 4: {batches:#?}"
    );
    assert_eq!(series("rpc_latency_count", None), vec![1.0, 2.0, 3.0]);
    let sums = series("rpc_latency_sum", None);
    assert!((sums[2] - 3.9).abs() < 1e-9, "{sums:?}");
    assert_eq!(
        series("rpc_latency_bucket", Some(("le", "5"))),
        vec![1.0, 2.0, 3.0]
    );
    use medic_signals::Counter;
    assert_eq!(stats.get(Counter::OtlpDeltaReset), 1, "the restart");
    for c in [
        Counter::OtlpUnsupportedDelta,
        Counter::OtlpDeltaOutOfOrder,
        Counter::OtlpInvalidDataPoint,
    ] {
        assert_eq!(stats.get(c), 0, "{}", c.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_delta_temporality_over_http_protobuf() {
    run_delta("http-proto").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_delta_temporality_over_grpc() {
    run_delta("grpc").await;
}
