//! OTLP decode + map throughput, side by side with the peers medic already had for the same
//! data: JSON log lines through `parse_log_line` (the log-file path) and the Prometheus text
//! exposition through `parse_prometheus_text` (the scrape path).
//!
//!     cargo run --release -p medic-server --example otlp_bench [-- RUNS]
//!
//! Each case decodes and maps one batch (1000 log records / 1000 gauge points with 3 labels)
//! RUNS times (default 31) and prints the median and p90 per record. In-process, no IO.
//! The delta case sends 1000 monotonic-sum series whose intervals continue from one batch to
//! the next (steady state: every point updates a known series), beside the same points as a
//! cumulative sum.

use medic_core::Ts;
use medic_signals::SourceStats;
use medic_signals::ingest::otlp;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::hint::black_box;
use std::time::Instant;

const N: usize = 1000;

/// One measured case: its name, the batch's size in bytes, and the work on one batch.
type Case<'a> = (&'static str, usize, Box<dyn FnMut() -> usize + 'a>);

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn message(i: usize) -> String {
    format!("GET /api/orders/{i} failed: upstream payment timed out after 2000 ms (attempt 3)")
}

fn logs() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "checkout"), kv("host.name", "node-1")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: (0..N)
                    .map(|i| LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(message(i))),
                        }),
                        attributes: vec![kv("http.route", "/api/orders"), kv("user", "u-42")],
                        trace_id: vec![7; 16],
                        span_id: vec![9; 8],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metrics() -> ExportMetricsServiceRequest {
    let points = (0..N)
        .map(|i| NumberDataPoint {
            attributes: vec![
                kv("route", &format!("/r{}", i % 50)),
                kv("method", "GET"),
                kv("code", &format!("{}", 200 + i % 5)),
            ],
            time_unix_nano: 1_700_000_000_000_000_000,
            value: Some(number_data_point::Value::AsDouble(i as f64)),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "checkout")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "http.inflight".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: points,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// 1000 sum points, one per series, over the interval `(k, k+1]` seconds.
fn sums(k: u64, temporality: AggregationTemporality) -> ExportMetricsServiceRequest {
    let delta = temporality == AggregationTemporality::Delta;
    let s = 1_000_000_000u64;
    let points = (0..N)
        .map(|i| NumberDataPoint {
            attributes: vec![
                kv("route", &format!("/r{}", i % 50)),
                kv("method", "GET"),
                kv("pod", &format!("pod-{}", i / 50)),
            ],
            start_time_unix_nano: if delta {
                (1_700_000_000 + k) * s
            } else {
                1_700_000_000 * s
            },
            time_unix_nano: (1_700_000_001 + k) * s,
            value: Some(number_data_point::Value::AsInt(if delta {
                3
            } else {
                3 * k as i64 + 3
            })),
            ..Default::default()
        })
        .collect();
    let mut req = metrics();
    req.resource_metrics[0].scope_metrics[0].metrics = vec![Metric {
        name: "http.requests".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }];
    req
}

/// Median and p90 nanoseconds per record over `runs` runs of `f` (one batch of N each).
fn measure(runs: usize, mut f: impl FnMut() -> usize) -> (f64, f64) {
    let mut per = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let n = black_box(f());
        assert_eq!(n, N, "every record mapped");
        per.push(t.elapsed().as_nanos() as f64 / N as f64);
    }
    per.sort_by(f64::total_cmp);
    (per[runs / 2], per[(runs * 9 / 10).min(runs - 1)])
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(31)
        .max(3);
    let stats = SourceStats::new();
    let now = Ts(0);

    let lreq = logs();
    let lpb = lreq.encode_to_vec();
    let ljson = serde_json::to_vec(&lreq).expect("serialize");
    let lines: String = (0..N)
        .map(|i| {
            serde_json::json!({"ts": "2023-11-14T22:13:20Z", "level": "error", "msg": message(i),
                "service": "checkout", "http.route": "/api/orders", "user": "u-42",
                "trace_id": "07070707070707070707070707070707"})
            .to_string()
                + "\n"
        })
        .collect();

    let mreq = metrics();
    let mpb = mreq.encode_to_vec();
    let mjson = serde_json::to_vec(&mreq).expect("serialize");
    let text: String = (0..N)
        .map(|i| {
            format!(
                "http_inflight{{route=\"/r{}\",method=\"GET\",code=\"{}\"}} {}\n",
                i % 50,
                200 + i % 5,
                i
            )
        })
        .collect();

    // One batch per run (plus the warm-up one), so every delta run continues the series.
    let cum_pb = sums(0, AggregationTemporality::Cumulative).encode_to_vec();
    let delta_pbs: Vec<Vec<u8>> = (0..=runs as u64)
        .map(|k| sums(k, AggregationTemporality::Delta).encode_to_vec())
        .collect();
    let delta_state = otlp::DeltaState::default();
    let first = otlp::decode_metrics_protobuf(&delta_pbs[0]).expect("decode");
    otlp::metrics_to_signals(&first, "otlp", now, &stats, &delta_state);
    let mut next_delta = 1;
    let delta_state = &delta_state;
    let (stats, delta_pbs) = (&stats, &delta_pbs);

    let cases: Vec<Case> = vec![
        (
            "logs: OTLP protobuf decode+map",
            lpb.len(),
            Box::new(|| {
                let r = otlp::decode_logs_protobuf(&lpb).expect("decode");
                otlp::logs_to_signals(&r, "otlp", now, stats).signals.len()
            }),
        ),
        (
            "logs: OTLP JSON decode+map",
            ljson.len(),
            Box::new(|| {
                let r = otlp::decode_logs_json(&ljson).expect("decode");
                otlp::logs_to_signals(&r, "otlp", now, stats).signals.len()
            }),
        ),
        (
            "logs (peer): JSON lines parse_log_line",
            lines.len(),
            Box::new(|| lines.lines().map(medic_signals::parse_log_line).count()),
        ),
        (
            "metrics: OTLP protobuf decode+map",
            mpb.len(),
            Box::new(|| {
                let r = otlp::decode_metrics_protobuf(&mpb).expect("decode");
                otlp::metrics_to_signals(&r, "otlp", now, stats, delta_state).accepted as usize
            }),
        ),
        (
            "metrics: OTLP protobuf cumulative sum",
            cum_pb.len(),
            Box::new(|| {
                let r = otlp::decode_metrics_protobuf(&cum_pb).expect("decode");
                otlp::metrics_to_signals(&r, "otlp", now, stats, delta_state).accepted as usize
            }),
        ),
        (
            "metrics: OTLP protobuf delta sum -> cumulative",
            delta_pbs[0].len(),
            Box::new(move || {
                let body = &delta_pbs[next_delta.min(delta_pbs.len() - 1)];
                next_delta += 1;
                let r = otlp::decode_metrics_protobuf(body).expect("decode");
                otlp::metrics_to_signals(&r, "otlp", now, stats, delta_state).accepted as usize
            }),
        ),
        (
            "metrics: OTLP JSON decode+map",
            mjson.len(),
            Box::new(|| {
                let r = otlp::decode_metrics_json(&mjson).expect("decode");
                otlp::metrics_to_signals(&r, "otlp", now, stats, delta_state).accepted as usize
            }),
        ),
        (
            "metrics (peer): Prometheus text parse",
            text.len(),
            Box::new(|| medic_signals::parse_prometheus_text(&text).0.len()),
        ),
    ];
    println!("{N} records per batch, {runs} runs; ns per record: median (p90); batch bytes");
    for (name, bytes, mut f) in cases {
        let (med, p90) = measure(runs, &mut f);
        println!("{name:<42} {med:>8.0} ({p90:.0})  {bytes} B");
    }
}
