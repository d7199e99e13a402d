use super::*;
use medic_core::MetricSample;

fn cfg() -> DetectorsConfig {
    let mut c = DetectorsConfig::default();
    c.metric_series.enabled = true;
    c.metric_series.metrics = vec![
        "process_resident_memory_bytes".into(),
        "http_requests_total".into(),
        "latency_seconds".into(),
    ];
    c
}

fn scrape(ts_ms: i64, service: &str, samples: Vec<(&str, f64)>) -> Signal {
    Signal {
        ts: Ts(ts_ms),
        source: "test".into(),
        service: Some(service.into()),
        instance: Some("i-1".into()),
        payload: SignalPayload::Metrics {
            samples: samples
                .into_iter()
                .map(|(n, v)| MetricSample {
                    name: n.into(),
                    labels: Default::default(),
                    value: v,
                })
                .collect(),
        },
    }
}

fn wiggle(i: i64) -> f64 {
    ((i * 7919) % 13) as f64 / 13.0 - 0.5
}

#[test]
fn growing_memory_is_forecast_to_breach_its_limit_ahead_of_time() {
    let mut d = MetricSeries::new(&cfg());
    let mut out = Vec::new();
    let limit = 1e9;
    // 200 MB + 100 KB/s with noise, every 10 s: reaches 1 GB after ~8000 s.
    let mut first_breach = None;
    for i in 0..700i64 {
        let t = i * 10_000;
        let v = 200e6 + 100e3 * (i * 10) as f64 + 1e6 * wiggle(i);
        d.observe(
            &scrape(
                t,
                "api",
                vec![
                    ("process_resident_memory_bytes", v),
                    ("container_spec_memory_limit_bytes", limit),
                ],
            ),
            &mut out,
        );
        d.evaluate(Ts(t), &mut out);
        if first_breach.is_none() && out.iter().any(|f| f.kind == FindingKind::PredictedBreach) {
            first_breach = Some(t);
        }
    }
    let at = first_breach.expect("a predicted_breach finding") as f64 / 1000.0;
    // Crossing at 8000 s, horizon 3600 s: raised about an hour ahead, never after crossing.
    assert!((3800.0..8000.0).contains(&at), "raised at {at}s");
    let n = out
        .iter()
        .filter(|f| f.kind == FindingKind::PredictedBreach)
        .count();
    assert_eq!(n, 1, "one finding per episode");
    let sym = Symptom {
        service: "api".into(),
        kind: FindingKind::PredictedBreach,
    };
    assert_eq!(d.status(&sym, Ts(7_000_000)), Some(SymptomState::Anomalous));
}

#[test]
fn a_spike_is_a_metric_anomaly_and_bad_points_are_counted_not_fatal() {
    let mut d = MetricSeries::new(&cfg());
    let mut out = Vec::new();
    for i in 0..1000i64 {
        let v = if i == 900 {
            50.0
        } else {
            1.0 + 0.1 * wiggle(i)
        };
        d.observe(
            &scrape(i * 1000, "api", vec![("latency_seconds", v)]),
            &mut out,
        );
        // Garbage on another service must not disturb this one.
        d.observe(
            &scrape(
                i * 1000,
                "junk",
                vec![(
                    "latency_seconds",
                    if i % 2 == 0 { f64::NAN } else { f64::INFINITY },
                )],
            ),
            &mut out,
        );
    }
    let hits: Vec<&Finding> = out
        .iter()
        .filter(|f| f.kind == FindingKind::MetricAnomaly)
        .collect();
    // The likelihood step averages the last few raw scores: the alarm comes at the spike or
    // just after it, and nowhere else.
    assert!(
        hits.iter()
            .all(|f| (900_000..=902_000).contains(&f.ts.0) && f.service == "api"),
        "{hits:?}"
    );
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|f| f.service == "api"));
    // Out of order and duplicate timestamps.
    d.observe(
        &scrape(10_000, "api", vec![("latency_seconds", 1.0)]),
        &mut out,
    );
    d.observe(
        &scrape(999_000, "api", vec![("latency_seconds", 1.0)]),
        &mut out,
    );
    let c = d.counts();
    assert_eq!(c.non_finite, 1000);
    assert_eq!(c.out_of_order, 1);
    assert_eq!(c.duplicate, 1);
}

#[test]
fn counter_resets_are_counted_and_stale_series_dropped() {
    let mut d = MetricSeries::new(&cfg());
    let mut out = Vec::new();
    let mut total = 0.0;
    for i in 0..300i64 {
        total += 10.0;
        if i == 150 {
            total = 5.0;
        }
        d.observe(
            &scrape(i * 1000, "api", vec![("http_requests_total", total)]),
            &mut out,
        );
    }
    assert_eq!(d.counts().counter_resets, 1);
    assert!(
        out.iter().all(|f| f.ts != Ts(150_000)),
        "a reset is not an anomaly"
    );
    assert!(d.footprint() > 0);
    d.evaluate(Ts(300_000 + 3_600_000), &mut out);
    assert_eq!(d.counts().stale_series, 1);
    assert_eq!(d.series.len(), 0);
}

#[test]
fn series_beyond_the_cap_are_counted() {
    let mut c = cfg();
    c.metric_series.max_series = 2;
    let mut d = MetricSeries::new(&c);
    let mut out = Vec::new();
    for svc in ["a", "b", "c", "d"] {
        d.observe(&scrape(0, svc, vec![("latency_seconds", 1.0)]), &mut out);
    }
    assert_eq!(d.counts().over_series_cap, 2);
}
