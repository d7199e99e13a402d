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

// Per-target correlation across series.

fn scrape_on(ts_ms: i64, service: &str, instance: &str, samples: Vec<(&str, f64)>) -> Signal {
    let mut s = scrape(ts_ms, service, samples);
    s.instance = Some(instance.into());
    s
}

/// One target's memory and latency, every second: quiet for 300 s, then memory grows fast
/// from `mem_at` and latency jumps tenfold from `lat_at` (`None`: never).
fn target_points(i: i64, mem_at: Option<i64>, lat_at: Option<i64>) -> Vec<(&'static str, f64)> {
    let mem = match mem_at {
        Some(a) if i >= a => 200e6 * (1.0 + 0.2 * (i - a + 1) as f64),
        _ => 200e6 * (1.0 + 0.01 * wiggle(i)),
    };
    let lat = match lat_at {
        Some(a) if i >= a => 1.0,
        _ => 0.1 + 0.01 * wiggle(i + 3),
    };
    vec![
        ("process_resident_memory_bytes", mem),
        ("latency_seconds", lat),
    ]
}

fn min_correlated(n: usize) -> DetectorsConfig {
    let mut c = cfg();
    c.metric_series.min_correlated = n;
    c
}

fn anomalies(out: &[Finding]) -> Vec<&Finding> {
    out.iter()
        .filter(|f| f.kind == FindingKind::MetricAnomaly)
        .collect()
}

#[test]
fn memory_growth_and_latency_on_one_target_are_one_correlated_finding() {
    let mut d = MetricSeries::new(&min_correlated(2));
    let mut out = Vec::new();
    for i in 0..330i64 {
        let s = scrape_on(
            i * 1000,
            "api",
            "api-0",
            target_points(i, Some(300), Some(305)),
        );
        d.observe(&s, &mut out);
    }
    let hits = anomalies(&out);
    assert_eq!(hits.len(), 1, "{hits:#?}");
    let f = hits[0];
    assert_eq!(
        (f.service.as_str(), f.instance.as_deref()),
        ("api", Some("api-0"))
    );
    assert!(
        f.summary.contains("process_resident_memory_bytes")
            && f.summary.contains("latency_seconds"),
        "{}",
        f.summary
    );
    let names: Vec<&str> = f
        .evidence
        .iter()
        .map(|e| match e {
            Evidence::Metric { name, .. } => name.as_str(),
            other => panic!("expected metric evidence, got {other:?}"),
        })
        .collect();
    // The alarm that completed the group leads.
    assert_eq!(
        names,
        vec!["latency_seconds", "process_resident_memory_bytes"]
    );
    // Noisy-OR: at least as strong as either alone.
    assert!(
        f.score >= d.cfg.alarm_score && f.score <= 1.0,
        "{}",
        f.score
    );
    assert!((300_000..=312_000).contains(&f.ts.0), "{}", f.ts.0);
    // The memory alarm that came first was held, not raised alone.
    assert!(d.counts().uncorrelated_held >= 1);

    // By default (min_correlated 1) each alarm is raised, the later one naming both.
    let mut d = MetricSeries::new(&cfg());
    let mut out = Vec::new();
    for i in 0..330i64 {
        let s = scrape_on(
            i * 1000,
            "api",
            "api-0",
            target_points(i, Some(300), Some(305)),
        );
        d.observe(&s, &mut out);
    }
    let hits = anomalies(&out);
    assert_eq!(hits.len(), 2, "{hits:#?}");
    assert_eq!(hits[0].evidence.len(), 1);
    assert_eq!(hits[1].evidence.len(), 2);
    assert!(hits[1].score >= hits[0].score.max(d.cfg.alarm_score));
    assert_eq!(d.counts().uncorrelated_held, 0);
}

#[test]
fn the_same_on_two_targets_is_two_findings_and_targets_never_mix() {
    let mut d = MetricSeries::new(&min_correlated(2));
    let mut out = Vec::new();
    for i in 0..330i64 {
        // Two instances of one service, both degrading; a third gets only memory growth
        // and a fourth only latency: neither is correlated on its own target.
        for (inst, mem, lat) in [
            ("api-0", Some(300), Some(305)),
            ("api-1", Some(302), Some(301)),
            ("api-2", Some(300), None),
            ("api-3", None, Some(305)),
        ] {
            d.observe(
                &scrape_on(i * 1000, "api", inst, target_points(i, mem, lat)),
                &mut out,
            );
        }
    }
    let hits = anomalies(&out);
    let mut targets: Vec<&str> = hits.iter().filter_map(|f| f.instance.as_deref()).collect();
    targets.sort();
    assert_eq!(targets, vec!["api-0", "api-1"], "{hits:#?}");
    assert!(hits.iter().all(|f| f.evidence.len() == 2));
    assert_ne!(hits[0].id, hits[1].id);
}

#[test]
fn one_noisy_series_alone_does_not_fire_with_min_correlated_two() {
    for n in [1, 2] {
        let mut d = MetricSeries::new(&min_correlated(n));
        let mut out = Vec::new();
        for i in 0..1000i64 {
            // A latency spike, as in the single-series test; memory stays quiet.
            let mut p = target_points(i, None, None);
            if i == 900 {
                p[1].1 = 5.0;
            }
            d.observe(&scrape_on(i * 1000, "api", "api-0", p), &mut out);
            d.evaluate(Ts(i * 1000), &mut out);
        }
        let hits = anomalies(&out);
        if n == 1 {
            assert!(!hits.is_empty(), "the spikes alarm on their own by default");
        } else {
            assert!(hits.is_empty(), "{hits:#?}");
            assert!(d.counts().uncorrelated_held >= 1);
        }
    }
}

#[test]
fn correlation_window_bounds_the_group_and_idle_targets_are_forgotten() {
    let mut c = min_correlated(2);
    c.metric_series.correlation_window = std::time::Duration::from_secs(10);
    let mut d = MetricSeries::new(&c);
    let mut out = Vec::new();
    // Memory at 300 s, latency at 330 s: further apart than the window.
    for i in 0..360i64 {
        let s = scrape_on(
            i * 1000,
            "api",
            "api-0",
            target_points(i, Some(300), Some(330)),
        );
        d.observe(&s, &mut out);
    }
    assert!(anomalies(&out).is_empty(), "{out:#?}");
    assert!(!d.recent.is_empty());
    d.evaluate(Ts(360_000 + 11_000), &mut out);
    assert!(d.recent.is_empty());
}

#[test]
fn min_correlated_and_window_are_read_from_config() {
    fn env(_: &str) -> Option<String> {
        None
    }
    let yaml = "detectors:\n  metric_series:\n    enabled: true\n    min_correlated: 2\n    correlation_window: 30s\n";
    let c = medic_config::load_str(yaml, "m.yaml", std::path::Path::new("/"), &env).unwrap();
    assert_eq!(c.detectors.metric_series.min_correlated, 2);
    assert_eq!(
        c.detectors.metric_series.correlation_window,
        std::time::Duration::from_secs(30)
    );
    let d = medic_config::load_str("{}", "m.yaml", std::path::Path::new("/"), &env).unwrap();
    assert_eq!(d.detectors.metric_series.min_correlated, 1);
    let bad = "detectors:\n  metric_series:\n    min_correlated: 0\n";
    let errs = medic_config::load_str(bad, "m.yaml", std::path::Path::new("/"), &env).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.to_string().contains("min_correlated")),
        "{errs:?}"
    );
}
