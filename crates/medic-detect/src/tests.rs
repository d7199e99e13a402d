//! Tests of the whole detector set: registration, routing, ids, and bounded state under
//! garbage.

use crate::Detectors;
use crate::testutil::*;
use medic_core::ChangeEvent;

#[test]
fn every_detector_is_registered_and_can_be_disabled() {
    let d = Detectors::new(&DetectorsConfig::default());
    assert_eq!(
        d.names(),
        vec![
            "error_rate",
            "latency",
            "memory_growth",
            "restarts",
            "log_errors",
            "traffic",
            "target_down",
            "log_templates",
            "metric_series",
            "log_patterns",
            "alerts"
        ]
    );
    let mut cfg = DetectorsConfig::default();
    cfg.error_rate.enabled = false;
    cfg.restarts.enabled = false;
    let d = Detectors::new(&cfg);
    assert!(!d.names().contains(&"error_rate") && !d.names().contains(&"restarts"));
    assert_eq!(
        d.status(&sym("x", FindingKind::ErrorRate), Ts(0)),
        SymptomState::Unknown
    );
    assert_eq!(
        d.status(&sym("x", FindingKind::CpuSaturation), Ts(0)),
        SymptomState::Unknown
    );
}

#[test]
fn signals_are_routed_and_services_remembered() {
    let mut d = Detectors::new(&DetectorsConfig::default());
    let mut found = vec![];
    found.extend(d.observe(&process(
        1_000,
        "db",
        "db-0",
        ProcessEventKind::Exited,
        "OOMKilled",
    )));
    found.extend(d.observe(&target_down(1_000, "web", "web-0")));
    found.extend(d.observe(&target_down(2_000, "web", "web-0")));
    found.extend(d.evaluate(Ts(2_000)));
    d.observe(&Signal {
        ts: Ts(0),
        source: "calendar".into(),
        service: None,
        instance: None,
        payload: SignalPayload::Change(ChangeEvent {
            kind: medic_core::ChangeKind::Deploy,
            service: "pay".into(),
            start: Ts(0),
            end: None,
            from: None,
            to: Some("v2".into()),
            description: String::new(),
            author: None,
        }),
    });
    let kinds: Vec<FindingKind> = found.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![FindingKind::OomKilled, FindingKind::TargetDown]);
    let mut ids: Vec<&str> = found.iter().map(|f| f.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 2);
    assert!(
        found
            .iter()
            .all(|f| (0.0..=1.0).contains(&f.score) && !f.summary.is_empty())
    );
    assert_eq!(
        d.status(&sym("db", FindingKind::OomKilled), Ts(2_000)),
        SymptomState::Anomalous
    );
    assert_eq!(
        d.status(&sym("web", FindingKind::TargetDown), Ts(2_000)),
        SymptomState::Anomalous
    );
    assert!(matches!(
        d.describe(&sym("web", FindingKind::TargetDown), Ts(2_000)),
        Some(Evidence::Metric { value, .. }) if value == 1.0
    ));
    assert_eq!(d.services(), vec!["db", "pay", "web"]);
}

#[test]
fn a_findings_symptom_is_sampled_at_every_evaluation() {
    let mut d = Detectors::new(&DetectorsConfig::default());
    let web = sym("web", FindingKind::TargetDown);
    d.observe(&target_down(1_000, "web", "web-0"));
    // Nothing watched before a finding or a request.
    assert_eq!(d.symptom_samples(&web, Ts(0), Ts(i64::MAX)), None);
    let found = d.observe(&target_down(2_000, "web", "web-0"));
    assert_eq!(found.len(), 1);
    for t in 3..=6 {
        d.evaluate(Ts(t * 1_000));
    }
    let s = d
        .symptom_samples(&web, Ts(0), Ts(i64::MAX))
        .expect("watched");
    assert_eq!(s.metric, "targets_down");
    assert_eq!(s.better, medic_core::Direction::LowerIsBetter);
    let values: Vec<f64> = s.samples.iter().map(|(_, v)| *v).collect();
    assert_eq!(values, vec![1.0; 4]);
    let window = d
        .symptom_samples(&web, Ts(4_000), Ts(5_000))
        .expect("watched");
    assert_eq!(window.samples.len(), 2);
    // Asked for without a finding: watched from then on, once a detector describes it.
    let api = sym("api", FindingKind::ErrorRate);
    d.watch(&api, Ts(7_000));
    d.evaluate(Ts(7_000));
    assert_eq!(d.symptom_samples(&api, Ts(0), Ts(i64::MAX)), None);
}

#[test]
fn detectors_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Detectors>();
    assert_send::<crate::Correlator>();
}

#[test]
fn finding_ids_are_stable() {
    let run = || {
        let mut d = Detectors::new(&DetectorsConfig::default());
        d.observe(&process(
            1_000,
            "db",
            "db-0",
            ProcessEventKind::Exited,
            "Error",
        ))
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert_eq!(a.len(), 1);
}

/// Random garbage: names, labels, values (NaN, ±Inf, negative, huge), levels, messages and
/// times, for every payload type.
fn garbage(rng: &mut Rng, i: u64) -> Signal {
    const NAMES: [&str; 6] = [
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "process_resident_memory_bytes",
        "junk",
        "",
        "http_requests_total_bucket",
    ];
    const VALUES: [f64; 7] = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -1.0,
        0.0,
        1e308,
        5.0,
    ];
    let service = format!("svc{}", rng.below(2_000));
    let instance = format!("i{}", rng.below(5_000));
    let value = |rng: &mut Rng| {
        if rng.below(3) == 0 {
            VALUES[rng.below(VALUES.len() as u64) as usize]
        } else {
            rng.unit() * 1e6
        }
    };
    let text = |rng: &mut Rng| {
        let n = rng.below(40);
        (0..n)
            .map(|_| char::from_u32(rng.below(0x3000) as u32).unwrap_or('?'))
            .collect::<String>()
    };
    let payload = match rng.below(7) {
        0 | 1 => SignalPayload::Metrics {
            samples: (0..rng.below(6))
                .map(|_| MetricSample {
                    name: NAMES[rng.below(NAMES.len() as u64) as usize].into(),
                    labels: [
                        ("code".to_string(), format!("{}", rng.below(600))),
                        (
                            "le".to_string(),
                            ["0.1", "+Inf", "NaN", "x", "1e9"][rng.below(5) as usize].to_string(),
                        ),
                        (text(rng), text(rng)),
                    ]
                    .into_iter()
                    .collect(),
                    value: value(rng),
                })
                .collect(),
        },
        2 => SignalPayload::Log(LogLine {
            level: if rng.below(2) == 0 {
                Level::Error
            } else {
                Level::Info
            },
            message: text(rng),
            raw: text(rng),
            continuation: vec![text(rng)],
            ..LogLine::default()
        }),
        3 => SignalPayload::TargetDown { error: text(rng) },
        4 => SignalPayload::ProcessStats {
            pid: rng.below(10) as u32,
            rss_bytes: rng.next(),
            cpu_seconds: value(rng),
        },
        _ => SignalPayload::Process(ProcessEvent {
            kind: if rng.below(2) == 0 {
                ProcessEventKind::Started
            } else {
                ProcessEventKind::Exited
            },
            pid: 1,
            exit_code: Some(rng.next() as i32),
            signal: None,
            reason: ["OOMKilled", "Error", "Stopped", ""][rng.below(4) as usize].into(),
            version: None,
            config_version: None,
        }),
    };
    // Mostly moving forward, sometimes wildly out of order.
    let ts = if rng.below(100) == 0 {
        Ts(rng.next() as i64)
    } else {
        Ts(i as i64 * 10)
    };
    Signal {
        ts,
        source: "garbage".into(),
        service: (rng.below(20) != 0).then_some(service),
        instance: (rng.below(20) != 0).then_some(instance),
        payload,
    }
}

#[test]
fn a_million_garbage_signals_keep_state_bounded() {
    let mut d = Detectors::new(&DetectorsConfig::default());
    let mut rng = Rng(0x5eed);
    let mut peak_after_warmup = 0;
    let mut findings = 0usize;
    for i in 0..1_000_000u64 {
        let s = garbage(&mut rng, i);
        findings += d.observe(&s).len();
        if i % 1_000 == 0 {
            let now = Ts(i as i64 * 10);
            findings += d.evaluate(now).len();
            let _ = d.status(
                &sym(&format!("svc{}", rng.below(2_000)), FindingKind::ErrorRate),
                now,
            );
            let _ = d.describe(
                &sym(&format!("svc{}", rng.below(2_000)), FindingKind::Latency),
                now,
            );
        }
        if i == 500_000 {
            peak_after_warmup = d.footprint();
        }
    }
    let end = d.footprint();
    // Each detector keeps at most MAX_SERVICES services and every per-service structure is
    // capped; in practice the footprint saturates long before the end of the stream.
    let bound = 7 * crate::detectors::MAX_SERVICES * 4_000 + 1_024;
    assert!(end <= bound, "footprint {end} over {bound}");
    assert!(
        end <= peak_after_warmup * 2,
        "footprint still growing: {peak_after_warmup} at half-way, {end} at the end"
    );
    assert!(d.services().len() <= 1_024);
    assert!(
        findings > 0,
        "garbage with errors and exits should raise something"
    );
}
