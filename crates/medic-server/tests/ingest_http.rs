//! HTTP ingest, remote_write and /metrics against hostile and well-formed input: no panic,
//! bounded memory, every drop counted with a reason.

mod common;

use common::{log_text, start_server};
use medic_core::{Level, SignalPayload};
use medic_signals::Counter;
use medic_signals::ingest::remote_write::{
    Label, STALE_NAN_BITS, Sample, TimeSeries, WriteRequest,
};
use prost::Message;
use std::io::Write;
use std::time::Duration;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn client() -> reqwest::Client {
    common::ingest_client()
}

#[tokio::test]
async fn ndjson_with_a_malformed_line_accepts_the_rest_and_counts_it() {
    let mut s = start_server(100, |_| {}).await;
    let body = "{\"msg\":\"ok one\",\"level\":\"error\",\"app\":\"pay\"}\n{broken\n{\"log\":\"ok two password=hunter2\"}\n";
    let r = client()
        .post(s.url("/ingest/logs"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (j["accepted"].as_u64(), j["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    let got = s.collect(2, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].service.as_deref(), Some("pay"));
    assert_eq!(log_text(&got[0]).unwrap().level, Level::Error);
    let second = log_text(&got[1]).unwrap();
    assert!(!second.message.contains("hunter2"), "{}", second.message);
    assert_eq!(s.state.stats.get(Counter::IngestRecordRejected), 1);
}

#[tokio::test]
async fn gzip_array_with_service_in_path() {
    let mut s = start_server(100, |_| {}).await;
    let body = gzip(br#"[{"date":1700000000.25,"log":"hello","level":"warn"},{"message":"x"}]"#);
    let r = client()
        .post(s.url("/ingest/logs/checkout"))
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = s.collect(2, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|g| g.service.as_deref() == Some("checkout")));
    assert_eq!(got[0].ts.0, 1_700_000_000_250);
}

#[tokio::test]
async fn oversized_bodies_and_gzip_bombs_are_413_naming_the_limit() {
    let s = start_server(100, |st| {
        st.limits.max_body_bytes = 64 * 1024;
        st.limits.max_decompressed_bytes = 1024 * 1024;
    })
    .await;
    let big = vec![b'x'; 200 * 1024];
    let r = client()
        .post(s.url("/ingest/logs"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("65536"));
    // 40 MiB of spaces gzip to ~40 KiB: under the body limit, over the decompressed one.
    let bomb = gzip(&vec![b' '; 40 << 20]);
    assert!(bomb.len() < 64 * 1024);
    let r = client()
        .post(s.url("/ingest/logs"))
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("max_decompressed_bytes"));
    let r = client()
        .post(s.url("/ingest/logs"))
        .header("content-encoding", "gzip")
        .body("not gzip at all")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(s.state.stats.get(Counter::IngestBodyRejected), 3);
}

#[tokio::test]
async fn hostile_json_bodies_never_take_the_server_down() {
    let s = start_server(10_000, |_| {}).await;
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"[".to_vec(),
        b"[{\"a\":".to_vec(),
        "[".repeat(100_000).into_bytes(),
        b"\xff\xfe\xfd".to_vec(),
        b"null".to_vec(),
        b"{\"message\": 12, \"level\": {\"x\": [1,2]}, \"time\": -5}".to_vec(),
        format!("{{\"message\":\"{}\"}}", "a".repeat(3 << 20)).into_bytes(),
    ];
    for b in bodies {
        let r = client()
            .post(s.url("/ingest/logs"))
            .body(b)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success() || r.status().is_client_error(),
            "{}",
            r.status()
        );
    }
    // Still serving.
    let r = client()
        .get(s.url("/metrics"))
        .bearer_auth(common::VIEWER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn full_agent_channel_is_503_with_retry_after_not_a_silent_drop() {
    let s = start_server(1, |_| {}).await;
    let ok = client()
        .post(s.url("/ingest/logs"))
        .body("{\"msg\":\"fills the channel\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let r = client()
        .post(s.url("/ingest/logs"))
        .body("{\"msg\":\"no room\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(s.state.stats.get(Counter::IngestBackpressure), 1);
}

fn label(n: &str, v: &str) -> Label {
    Label {
        name: n.into(),
        value: v.into(),
    }
}

#[tokio::test]
async fn remote_write_bad_bodies_are_400_and_good_ones_still_work() {
    let mut s = start_server(100, |_| {}).await;
    let c = client();
    let post = |body: Vec<u8>| {
        c.post(s.url("/api/v1/write"))
            .header("content-encoding", "snappy")
            .header("x-prometheus-remote-write-version", "0.1.0")
            .body(body)
            .send()
    };
    let r = post(b"definitely not snappy".to_vec()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("snappy"));
    let junk = snap::raw::Encoder::new()
        .compress_vec(&[0xff; 100])
        .unwrap();
    let r = post(junk).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("protobuf"));
    // A snappy header claiming 4 GiB: refused before allocating.
    let r = post(vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x00])
        .await
        .unwrap();
    assert!(r.status() == 413 || r.status() == 400, "{}", r.status());

    let req = WriteRequest {
        timeseries: vec![
            TimeSeries {
                labels: vec![
                    label("__name__", "up"),
                    label("job", "api"),
                    label("instance", "h:1"),
                ],
                samples: vec![
                    Sample {
                        value: 1.0,
                        timestamp: 2_000,
                    },
                    Sample {
                        value: f64::from_bits(STALE_NAN_BITS),
                        timestamp: 1_000,
                    },
                ],
                ..Default::default()
            },
            TimeSeries {
                labels: vec![label("job", "no-name")],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1,
                }],
                ..Default::default()
            },
        ],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let r = post(body).await.unwrap();
    assert_eq!(r.status(), 204);
    let got = s.collect(2, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].ts.0, 1_000);
    let SignalPayload::Metrics { samples } = &got[0].payload else {
        panic!("not metrics")
    };
    assert_eq!(samples[0].value.to_bits(), STALE_NAN_BITS);
    assert_eq!(got[0].service.as_deref(), Some("api"));
    assert_eq!(s.state.stats.get(Counter::RemoteWriteSeriesSkipped), 1);
    assert_eq!(s.state.stats.get(Counter::IngestBodyRejected), 3);
}

#[tokio::test]
async fn metrics_exposes_drops_by_reason_and_requests_by_route() {
    let s = start_server(100, |_| {}).await;
    let c = client();
    c.post(s.url("/ingest/logs/x"))
        .body("nope\n{\"m\":1}")
        .send()
        .await
        .unwrap();
    let text = c
        .get(s.url("/metrics"))
        .bearer_auth(common::VIEWER_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("medic_records_dropped_total{reason=\"ingest_record_rejected\"} 1"),
        "{text}"
    );
    assert!(text.contains("medic_records_dropped_total{reason=\"syslog_overload\"} 0"));
    assert!(
        text.contains(
            "medic_ingest_requests_total{route=\"/ingest/logs/{service}\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("medic_records_emitted_total 1"), "{text}");
}

#[tokio::test]
async fn serve_refuses_a_bad_address_clearly() {
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let state =
        medic_server::ServerState::new(tx, Default::default()).with_auth(common::test_auth());
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let e = medic_server::serve("not-an-address", state, shutdown)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not-an-address"), "{e}");
    assert_eq!(
        medic_server::parse_listen("9400").unwrap().to_string(),
        "127.0.0.1:9400"
    );
}
