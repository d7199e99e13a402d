//! Builders for synthetic signal streams.

pub(crate) use medic_config::DetectorsConfig;
pub(crate) use medic_core::{
    Evidence, FindingKind, Level, LogLine, MetricSample, ProcessEvent, ProcessEventKind, Signal,
    SignalPayload, Symptom, SymptomState, Ts,
};
use std::collections::BTreeMap;

/// A small deterministic generator (xorshift), so noisy streams are reproducible.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub(crate) fn sym(service: &str, kind: FindingKind) -> Symptom {
    Symptom {
        service: service.into(),
        kind,
    }
}

fn signal(ts: i64, service: &str, instance: &str, payload: SignalPayload) -> Signal {
    Signal {
        ts: Ts(ts),
        source: "test".into(),
        service: Some(service.into()),
        instance: Some(instance.into()),
        payload,
    }
}

pub(crate) fn counter(name: &str, labels: &[(&str, &str)], value: f64) -> MetricSample {
    MetricSample {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        value,
    }
}

pub(crate) fn metrics(
    ts: i64,
    service: &str,
    instance: &str,
    samples: Vec<MetricSample>,
) -> Signal {
    signal(ts, service, instance, SignalPayload::Metrics { samples })
}

pub(crate) fn log_line(ts: i64, service: &str, line: LogLine) -> Signal {
    signal(
        ts,
        service,
        &format!("{service}-0"),
        SignalPayload::Log(line),
    )
}

pub(crate) fn log(ts: i64, service: &str, level: Level, message: &str) -> Signal {
    log_line(
        ts,
        service,
        LogLine {
            level,
            message: message.into(),
            raw: format!("{} {message}", format!("{level:?}").to_uppercase()),
            ..LogLine::default()
        },
    )
}

pub(crate) fn process(
    ts: i64,
    service: &str,
    instance: &str,
    kind: ProcessEventKind,
    reason: &str,
) -> Signal {
    signal(
        ts,
        service,
        instance,
        SignalPayload::Process(ProcessEvent {
            kind,
            pid: 42,
            exit_code: (kind == ProcessEventKind::Exited && reason == "Error").then_some(1),
            signal: (reason == "OOMKilled").then_some(9),
            reason: reason.into(),
            version: Some("v1".into()),
            config_version: Some("c1".into()),
        }),
    )
}

pub(crate) fn stats(ts: i64, service: &str, instance: &str, pid: u32, rss: f64) -> Signal {
    signal(
        ts,
        service,
        instance,
        SignalPayload::ProcessStats {
            pid,
            rss_bytes: rss.max(0.0) as u64,
            cpu_seconds: 0.0,
        },
    )
}

pub(crate) fn target_down(ts: i64, service: &str, instance: &str) -> Signal {
    signal(
        ts,
        service,
        instance,
        SignalPayload::TargetDown {
            error: "connection refused".into(),
        },
    )
}
