//! Prometheus remote_write 1.0: a snappy (block format) compressed protobuf
//! `prometheus.WriteRequest`. The messages are declared here with prost's derive (no protoc);
//! fields medic does not use are declared as raw bytes or left out, which protobuf skips.

use super::body::{BodyError, unsnappy_bounded};
use medic_core::{MetricSample, Signal, SignalPayload, Ts};
use std::collections::BTreeMap;

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Exemplars, kept undecoded: medic does not use them.
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub exemplars: Vec<Vec<u8>>,
    /// Native histograms, kept undecoded and counted as skipped: not supported yet.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub histograms: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Prometheus' staleness marker: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("body is not a protobuf prometheus.WriteRequest: {0}")]
    NotProtobuf(String),
}

/// What a request held.
#[derive(Debug, Default)]
pub struct RemoteWriteBatch {
    /// One metrics signal per (service, instance, timestamp).
    pub signals: Vec<Signal>,
    pub series: usize,
    pub samples: usize,
    /// Series without a `__name__` or without samples (skipped, counted).
    pub skipped_series: usize,
    /// Native histogram samples (not supported yet: skipped, counted).
    pub skipped_histograms: usize,
}

pub struct RemoteWriteContext<'a> {
    pub source: &'a str,
    /// Label naming a series' service; `job` when absent.
    pub service_label: &'a str,
    pub max_decompressed_bytes: usize,
}

/// Decompresses and decodes a request body into signals.
pub fn decode_remote_write(
    body: &[u8],
    cx: &RemoteWriteContext<'_>,
) -> Result<RemoteWriteBatch, RemoteWriteError> {
    let raw = unsnappy_bounded(body, cx.max_decompressed_bytes)?;
    Ok(group(decode_write_request(&raw)?, cx))
}

/// Decodes an already decompressed body.
pub fn decode_write_request(raw: &[u8]) -> Result<WriteRequest, RemoteWriteError> {
    <WriteRequest as prost::Message>::decode(raw)
        .map_err(|e| RemoteWriteError::NotProtobuf(e.to_string()))
}

type Key = (Option<String>, Option<String>, i64);

/// Groups samples per target and timestamp: a Signal carries one timestamp, and detectors
/// read one target's samples together, as from a scrape.
pub fn group(req: WriteRequest, cx: &RemoteWriteContext<'_>) -> RemoteWriteBatch {
    let mut batch = RemoteWriteBatch::default();
    let mut groups: BTreeMap<Key, Vec<MetricSample>> = BTreeMap::new();
    for ts in req.timeseries {
        batch.series += 1;
        batch.skipped_histograms += ts.histograms.len();
        let mut name = None;
        let mut labels = BTreeMap::new();
        for l in ts.labels {
            if l.name == "__name__" {
                name = Some(l.value);
            } else {
                labels.insert(l.name, l.value);
            }
        }
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            batch.skipped_series += 1;
            continue;
        };
        if ts.samples.is_empty() {
            if ts.histograms.is_empty() {
                batch.skipped_series += 1;
            }
            continue;
        }
        let service = labels
            .get(cx.service_label)
            .or_else(|| labels.get("job"))
            .cloned();
        let instance = labels.get("instance").cloned();
        for s in ts.samples {
            batch.samples += 1;
            // NaN, ±Inf and the stale marker are passed through as they came: the value
            // bits are kept, so a reader can tell staleness from a NaN.
            groups
                .entry((service.clone(), instance.clone(), s.timestamp))
                .or_default()
                .push(MetricSample {
                    name: name.clone(),
                    labels: labels.clone(),
                    value: s.value,
                });
        }
    }
    batch.signals = groups
        .into_iter()
        .map(|((service, instance, t), samples)| Signal {
            ts: Ts(t),
            source: cx.source.to_string(),
            service,
            instance,
            payload: SignalPayload::Metrics { samples },
        })
        .collect();
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn label(n: &str, v: &str) -> Label {
        Label {
            name: n.into(),
            value: v.into(),
        }
    }

    fn cx() -> RemoteWriteContext<'static> {
        RemoteWriteContext {
            source: "remote_write",
            service_label: "service",
            max_decompressed_bytes: 1 << 20,
        }
    }

    fn encode(req: &WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    #[test]
    fn groups_by_target_and_time_keeping_special_values() {
        let req = WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: vec![
                        label("__name__", "up"),
                        label("job", "api"),
                        label("instance", "a:1"),
                    ],
                    samples: vec![
                        Sample {
                            value: 1.0,
                            timestamp: 2000,
                        },
                        Sample {
                            value: f64::from_bits(STALE_NAN_BITS),
                            timestamp: 1000,
                        },
                    ],
                    ..Default::default()
                },
                TimeSeries {
                    labels: vec![
                        label("__name__", "x"),
                        label("job", "api"),
                        label("service", "pay"),
                        label("instance", "a:1"),
                    ],
                    samples: vec![Sample {
                        value: f64::INFINITY,
                        timestamp: 2000,
                    }],
                    ..Default::default()
                },
                TimeSeries {
                    labels: vec![label("job", "nameless")],
                    samples: vec![Sample {
                        value: 1.0,
                        timestamp: 1,
                    }],
                    ..Default::default()
                },
            ],
        };
        let b = decode_remote_write(&encode(&req), &cx()).unwrap();
        assert_eq!((b.series, b.samples, b.skipped_series), (3, 3, 1));
        assert_eq!(b.signals.len(), 3);
        let first = &b.signals[0];
        assert_eq!(
            (first.service.as_deref(), first.ts),
            (Some("api"), Ts(1000))
        );
        let SignalPayload::Metrics { samples } = &first.payload else {
            panic!()
        };
        assert_eq!(samples[0].value.to_bits(), STALE_NAN_BITS);
        let pay = b
            .signals
            .iter()
            .find(|s| s.service.as_deref() == Some("pay"))
            .unwrap();
        let SignalPayload::Metrics { samples } = &pay.payload else {
            panic!()
        };
        assert_eq!(samples[0].value, f64::INFINITY);
    }

    #[test]
    fn not_snappy_and_not_protobuf_are_named() {
        let e = decode_remote_write(b"plain text", &cx()).unwrap_err();
        assert!(e.to_string().contains("snappy"), "{e}");
        let junk = snap::raw::Encoder::new().compress_vec(&[0xff; 64]).unwrap();
        let e = decode_remote_write(&junk, &cx()).unwrap_err();
        assert!(e.to_string().contains("protobuf"), "{e}");
    }
}
