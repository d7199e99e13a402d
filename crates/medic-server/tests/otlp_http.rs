//! OTLP/HTTP and OTLP/gRPC with hand-built requests: the spec's responses, and bad input
//! (garbage, truncated, huge, wrong types, unknown types/encodings) answered without a panic
//! and counted with a reason.
#![cfg(feature = "otlp")]

mod common;

use medic_core::{Level, Signal, SignalPayload};
use medic_server::ServerState;
use medic_signals::ingest::otlp::{
    ExportLogsServiceRequest, ExportLogsServiceResponse, ExportMetricsServiceRequest,
};
use medic_signals::{Counter, SourceStats};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

struct Server {
    http: SocketAddr,
    grpc: SocketAddr,
    rx: mpsc::Receiver<Signal>,
    stats: Arc<SourceStats>,
    _stop: watch::Sender<bool>,
}

async fn start(max_body: usize, max_decompressed: usize, channel: usize) -> Server {
    let (tx, rx) = mpsc::channel(channel);
    let stats = Arc::new(SourceStats::new());
    let mut state = ServerState::new(tx, stats.clone()).with_auth(common::test_auth());
    state.limits.max_body_bytes = max_body;
    state.limits.max_decompressed_bytes = max_decompressed;
    let (stop, shutdown) = watch::channel(false);
    let http = medic_server::serve("127.0.0.1:0", state.clone(), shutdown.clone())
        .await
        .unwrap();
    let grpc = medic_server::grpc::serve_grpc("127.0.0.1:0".parse().unwrap(), state, shutdown)
        .await
        .unwrap();
    Server {
        http,
        grpc,
        rx,
        stats,
        _stop: stop,
    }
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn logs_req(n: usize) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "checkout")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: (0..n)
                    .map(|i| LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_000,
                        severity_number: 17,
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(format!("boom {i}"))),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metrics_req(temporality: AggregationTemporality) -> ExportMetricsServiceRequest {
    let p = NumberDataPoint {
        value: Some(number_data_point::Value::AsInt(3)),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "api")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "jobs".into(),
                        data: Some(metric::Data::Sum(Sum {
                            data_points: vec![p.clone()],
                            aggregation_temporality: temporality as i32,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "temp".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![p],
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

async fn post(
    addr: SocketAddr,
    path: &str,
    ct: &str,
    enc: Option<&str>,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let mut r = common::ingest_client()
        .post(format!("http://{addr}{path}"))
        .header("content-type", ct)
        .timeout(Duration::from_secs(10))
        .body(body);
    if let Some(e) = enc {
        r = r.header("content-encoding", e);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// A gRPC request with `authorization` metadata, as exporters send their `headers`.
fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata"),
    );
    r
}

async fn recv(rx: &mut mpsc::Receiver<Signal>) -> Signal {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a signal within 5 s")
        .expect("channel open")
}

const PB: &str = "application/x-protobuf";
const JSON: &str = "application/json";

#[tokio::test]
async fn protobuf_logs_gzip_are_accepted_and_mapped() {
    let mut s = start(1 << 20, 4 << 20, 64).await;
    let (status, body) = post(
        s.http,
        "/v1/logs",
        PB,
        Some("gzip"),
        gzip(&logs_req(2).encode_to_vec()),
    )
    .await;
    assert_eq!(status, 200);
    let resp = ExportLogsServiceResponse::decode(body.as_slice()).unwrap();
    assert_eq!(resp.partial_success, None);
    for i in 0..2 {
        let sig = recv(&mut s.rx).await;
        assert_eq!(sig.service.as_deref(), Some("checkout"));
        let SignalPayload::Log(l) = sig.payload else {
            panic!("not a log")
        };
        assert_eq!((l.level, l.message), (Level::Error, format!("boom {i}")));
    }
    assert_eq!(s.stats.get(Counter::OtlpLogRecords), 2);
}

#[tokio::test]
async fn json_metrics_with_delta_get_partial_success() {
    // A delta point without its interval's end cannot be placed in its series.
    let mut s = start(1 << 20, 4 << 20, 64).await;
    let body = br#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},
      "scopeMetrics":[{"metrics":[
        {"name":"jobs","sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_DELTA","isMonotonic":true,"dataPoints":[{"asInt":"3"}]}},
        {"name":"temp","gauge":{"dataPoints":[{"asDouble":21.5,"timeUnixNano":"1700000000000000000"}]}}]}]}]}"#;
    let (status, resp) = post(
        s.http,
        "/v1/metrics",
        "application/json; charset=utf-8",
        None,
        body.to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedDataPoints"], "1", "{v}");
    assert!(
        v["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("otlp_invalid_data_point")
    );
    let sig = recv(&mut s.rx).await;
    let SignalPayload::Metrics { samples } = sig.payload else {
        panic!("not metrics")
    };
    assert_eq!(samples.len(), 1);
    assert_eq!((samples[0].name.as_str(), samples[0].value), ("temp", 21.5));
    assert_eq!(s.stats.get(Counter::OtlpInvalidDataPoint), 1);
}

#[tokio::test]
async fn bad_bodies_get_4xx_with_reasons_and_no_panic() {
    let s = start(64 * 1024, 256 * 1024, 64).await;
    let a = s.http;
    let (st, body) = post(
        a,
        "/v1/logs",
        PB,
        None,
        b"\x0a\xff\xff\xff\xff\x0fgarbage".to_vec(),
    )
    .await;
    assert_eq!(st, 400);
    // google.rpc.Status: field 1 code, field 2 message.
    assert!(String::from_utf8_lossy(&body).contains("malformed otlp protobuf"));
    let (st, body) = post(
        a,
        "/v1/metrics",
        JSON,
        None,
        br#"{"resourceMetrics":"x"}"#.to_vec(),
    )
    .await;
    assert_eq!(st, 400);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], 3);
    assert_eq!(
        post(a, "/v1/logs", JSON, None, b"{\"resourceLogs\":[".to_vec())
            .await
            .0,
        400
    );
    assert_eq!(
        post(a, "/v1/logs", PB, Some("gzip"), b"not gzip".to_vec())
            .await
            .0,
        400
    );
    assert_eq!(s.stats.get(Counter::OtlpMalformedBody), 4);

    assert_eq!(
        post(a, "/v1/logs", "text/plain", None, b"x".to_vec())
            .await
            .0,
        415
    );
    assert_eq!(
        post(a, "/v1/logs", PB, Some("br"), b"x".to_vec()).await.0,
        415
    );
    assert_eq!(s.stats.get(Counter::OtlpUnsupportedContentType), 2);

    assert_eq!(
        post(a, "/v1/logs", PB, None, vec![0x0a; 65 * 1024]).await.0,
        413
    );
    let bomb = gzip(&vec![0u8; 1 << 20]);
    assert_eq!(post(a, "/v1/metrics", PB, Some("gzip"), bomb).await.0, 413);
    assert_eq!(s.stats.get(Counter::OtlpBodyTooLarge), 2);

    // Truncated at every offset: 200 (a valid prefix) or 400, never 5xx.
    let full = logs_req(1).encode_to_vec();
    for end in 0..full.len() {
        let st = post(a, "/v1/logs", PB, None, full[..end].to_vec()).await.0;
        assert!(st == 200 || st == 400, "offset {end}: {st}");
    }
    // Still serving.
    assert_eq!(
        post(a, "/v1/logs", PB, None, logs_req(0).encode_to_vec())
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn full_channel_answers_503_then_partial_success() {
    // A channel of one that nobody reads: the first record fits, the rest cannot.
    let s = start(1 << 20, 4 << 20, 1).await;
    let (st, body) = post(s.http, "/v1/logs", PB, None, logs_req(3).encode_to_vec()).await;
    assert_eq!(st, 200);
    let resp = ExportLogsServiceResponse::decode(body.as_slice()).unwrap();
    assert_eq!(
        resp.partial_success.map(|p| p.rejected_log_records),
        Some(2)
    );
    let (st, _) = post(s.http, "/v1/logs", PB, None, logs_req(1).encode_to_vec()).await;
    assert_eq!(st, 503, "nothing got through: retryable");
    assert_eq!(s.stats.get(Counter::OtlpChannelFull), 3);
}

#[tokio::test]
async fn grpc_logs_and_metrics_export() {
    let mut s = start(1 << 20, 64 * 1024, 64).await;
    let url = format!("http://{}", s.grpc);
    let mut logs = LogsServiceClient::connect(url.clone()).await.unwrap();
    // Without a token, or with one that may not push: refused, nothing delivered.
    let err = logs.export(logs_req(1)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
    let err = logs
        .export(authed(logs_req(1), common::VIEWER_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    assert!(err.message().contains("needs role `ingest`"), "{err}");
    let resp = logs
        .export(authed(logs_req(1), common::INGEST_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success, None);
    assert!(matches!(
        recv(&mut s.rx).await.payload,
        SignalPayload::Log(_)
    ));

    let mut metrics = MetricsServiceClient::connect(url).await.unwrap();
    let resp = metrics
        .export(authed(
            metrics_req(AggregationTemporality::Cumulative),
            common::INGEST_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success, None);
    let SignalPayload::Metrics { samples } = recv(&mut s.rx).await.payload else {
        panic!("not metrics")
    };
    let names: Vec<_> = samples.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["jobs_total", "temp"]);

    // Over the message size limit: refused by the server, which keeps serving.
    let err = logs
        .export(authed(logs_req(5000), common::INGEST_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");
    assert!(
        logs.export(authed(logs_req(1), common::INGEST_TOKEN))
            .await
            .is_ok()
    );
}
