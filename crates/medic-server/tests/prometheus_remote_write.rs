//! The real Prometheus (Debian's `prometheus`, 2.42) scrapes a tiny exporter served by the
//! test and pushes with remote_write to medic's `/api/v1/write`; the samples must arrive as
//! metrics signals with the job as service and the instance as instance.

mod common;

use axum::routing::get;
use common::{require, spawn, start_server};
use medic_core::SignalPayload;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_write_reaches_medic() {
    let Some(bin) = require(Path::new("/usr/bin/prometheus"), "prometheus") else {
        return;
    };
    let mut medic = start_server(10_000, |_| {}).await;

    // The exporter Prometheus scrapes.
    let exporter = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let exporter_addr = exporter.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/metrics",
        get(|| async {
            "# TYPE demo_requests_total counter\ndemo_requests_total{code=\"200\"} 42\ndemo_requests_total{code=\"500\"} 3\n"
        }),
    );
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = axum::serve(exporter, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.changed().await;
            })
            .await;
    });

    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: checkout
    static_configs:
      - targets: ["{exporter_addr}"]
remote_write:
  - url: http://{medic}/api/v1/write
    authorization:
      credentials: {token}
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"#,
            medic = medic.addr,
            token = common::INGEST_TOKEN,
        ),
    )
    .unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", conf.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .arg("--log.level=warn");
    let _child = spawn(cmd, &dir.path().join("prometheus.out"));

    // Bounded: up to 30 s of signals, stopping at the first demo sample.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut found = None;
    while found.is_none() {
        let Ok(Some(s)) = tokio::time::timeout_at(deadline, medic.rx.recv()).await else {
            break;
        };
        if let SignalPayload::Metrics { samples } = &s.payload
            && samples.iter().any(|m| m.name == "demo_requests_total")
        {
            found = Some(s);
        }
    }
    let _ = stop_tx.send(true);
    let _ = medic.stop.send(true);
    let log = std::fs::read_to_string(dir.path().join("prometheus.out")).unwrap_or_default();
    let s = found.unwrap_or_else(|| panic!("no demo sample arrived; prometheus said:\n{log}"));
    assert_eq!(s.service.as_deref(), Some("checkout"));
    assert_eq!(
        s.instance.as_deref(),
        Some(exporter_addr.to_string().as_str())
    );
    let SignalPayload::Metrics { samples } = &s.payload else {
        unreachable!()
    };
    let errors = samples
        .iter()
        .find(|m| m.name == "demo_requests_total" && m.label("code") == Some("500"))
        .expect("the code=500 series");
    assert_eq!(errors.value, 3.0);
    assert!(
        s.ts.0 > 1_600_000_000_000,
        "sample timestamp kept: {:?}",
        s.ts
    );
    // The request is counted by middleware after the handler has delivered the signal.
    let counted = tokio::time::Instant::now() + Duration::from_secs(5);
    while medic.state.metrics.requests("/api/v1/write", 204) == 0
        && tokio::time::Instant::now() < counted
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        medic.state.metrics.requests("/api/v1/write", 204) > 0,
        "requests counted"
    );
}
