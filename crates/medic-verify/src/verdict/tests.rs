use super::*;
use medic_core::Symptom;

fn sym(kind: FindingKind) -> Symptom {
    Symptom {
        service: "checkout".into(),
        kind,
    }
}

fn strong(kind: FindingKind) -> WindowEvidence {
    WindowEvidence {
        symptom: sym(kind),
        clear_rounds: 10,
        strong: true,
    }
}

fn weak(kind: FindingKind) -> WindowEvidence {
    WindowEvidence {
        symptom: sym(kind),
        clear_rounds: 2,
        strong: false,
    }
}

/// Independent-looking noise: a fixed permutation of 0..n scaled into ±spread.
fn noisy(level: f64, spread: f64, n: usize, salt: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let k = (i * 7919 + salt * 104_729) % 97;
            level + spread * (k as f64 / 48.0 - 1.0)
        })
        .collect()
}

fn input(window: WindowEvidence, before: Vec<f64>, after: Vec<f64>) -> SymptomInput {
    SymptomInput {
        window,
        samples: Some(Samples {
            metric: "error_ratio".into(),
            better: Direction::LowerIsBetter,
            before,
            after,
        }),
    }
}

#[test]
fn a_real_improvement_is_healed() {
    let j = judge(
        Ok(()),
        &[input(
            strong(FindingKind::ErrorRate),
            noisy(0.30, 0.05, 30, 1),
            noisy(0.01, 0.005, 30, 2),
        )],
        0.05,
    );
    assert_eq!(j.verdict, Verdict::Healed, "{}", j.reason);
    let c = &j.symptoms[0];
    assert_eq!(c.result, SymptomResult::Improved);
    assert!(c.test.p_better.is_some_and(|p| p < 1e-6), "{c:?}");
    assert_eq!((c.test.n_before, c.test.n_after), (30, 30));
    assert!(c.test.effect.is_some_and(|e| e > 0.99));
    assert!(
        j.reason.contains("checkout/error_rate improved"),
        "{}",
        j.reason
    );
}

#[test]
fn the_same_distribution_is_inconclusive_even_with_a_clean_window() {
    let j = judge(
        Ok(()),
        &[input(
            strong(FindingKind::ErrorRate),
            noisy(0.02, 0.01, 30, 3),
            noisy(0.02, 0.01, 30, 4),
        )],
        0.05,
    );
    assert_eq!(j.verdict, Verdict::Inconclusive, "{}", j.reason);
    assert_eq!(j.symptoms[0].result, SymptomResult::NoChange);
    assert!(
        j.reason.contains("not shown to have helped"),
        "{}",
        j.reason
    );
}

#[test]
fn a_worsening_is_not_healed_whatever_the_window_says() {
    let j = judge(
        Ok(()),
        &[
            input(
                strong(FindingKind::ErrorRate),
                noisy(0.30, 0.05, 30, 5),
                noisy(0.01, 0.005, 30, 6),
            ),
            SymptomInput {
                window: strong(FindingKind::Latency),
                samples: Some(Samples {
                    metric: "latency_p99".into(),
                    better: Direction::LowerIsBetter,
                    before: noisy(0.2, 0.02, 30, 7),
                    after: noisy(0.9, 0.05, 30, 8),
                }),
            },
        ],
        0.05,
    );
    assert_eq!(j.verdict, Verdict::NotHealed, "{}", j.reason);
    assert_eq!(j.symptoms[1].result, SymptomResult::Worse);
    assert!(
        j.reason
            .contains("worse after the action: checkout/latency worse"),
        "{}",
        j.reason
    );
}

#[test]
fn higher_is_better_metrics_are_tested_the_other_way() {
    let throughput = |before: Vec<f64>, after: Vec<f64>| SymptomInput {
        window: strong(FindingKind::MetricAnomaly),
        samples: Some(Samples {
            metric: "orders_per_second".into(),
            better: Direction::HigherIsBetter,
            before,
            after,
        }),
    };
    let up = judge(
        Ok(()),
        &[throughput(noisy(10.0, 2.0, 20, 1), noisy(50.0, 5.0, 20, 2))],
        0.05,
    );
    assert_eq!(up.verdict, Verdict::Healed, "{}", up.reason);
    let down = judge(
        Ok(()),
        &[throughput(noisy(50.0, 5.0, 20, 1), noisy(10.0, 2.0, 20, 2))],
        0.05,
    );
    assert_eq!(down.verdict, Verdict::NotHealed, "{}", down.reason);
}

#[test]
fn too_few_samples_lean_on_the_window() {
    let few = |w| input(w, vec![0.3, 0.3, 0.31], vec![0.0, 0.0, 0.0, 0.0]);
    let j = judge(Ok(()), &[few(strong(FindingKind::ErrorRate))], 0.05);
    assert_eq!(j.verdict, Verdict::Healed, "{}", j.reason);
    assert_eq!(j.symptoms[0].result, SymptomResult::TooFewSamples);
    assert!(j.reason.contains("too few samples"), "{}", j.reason);
    let j = judge(Ok(()), &[few(weak(FindingKind::ErrorRate))], 0.05);
    assert_eq!(j.verdict, Verdict::Inconclusive, "{}", j.reason);
    // No metric at all: the same.
    let none = SymptomInput {
        window: weak(FindingKind::Latency),
        samples: None,
    };
    assert_eq!(judge(Ok(()), &[none], 0.05).verdict, Verdict::Inconclusive);
}

#[test]
fn events_are_judged_by_the_window_alone() {
    // An exit count over a long window stays 1 after the restart: not a level to compare.
    let exits = SymptomInput {
        window: strong(FindingKind::ProcessExit),
        samples: Some(Samples {
            metric: "exits".into(),
            better: Direction::LowerIsBetter,
            before: vec![1.0; 20],
            after: vec![1.0; 20],
        }),
    };
    let j = judge(Ok(()), std::slice::from_ref(&exits), 0.05);
    assert_eq!(j.verdict, Verdict::Healed, "{}", j.reason);
    assert_eq!(j.symptoms[0].result, SymptomResult::NotMeasured);
    assert_eq!(j.symptoms[0].test.p_better, None);
    let weak_exits = SymptomInput {
        window: weak(FindingKind::ProcessExit),
        ..exits
    };
    assert_eq!(
        judge(Ok(()), &[weak_exits], 0.05).verdict,
        Verdict::Inconclusive
    );
}

#[test]
fn a_failed_window_is_not_healed_with_its_reason_and_the_tests_recorded() {
    let j = judge(
        Err("not healed by the deadline: still anomalous: checkout/error_rate"),
        &[input(
            weak(FindingKind::ErrorRate),
            noisy(0.30, 0.05, 30, 1),
            noisy(0.01, 0.005, 30, 2),
        )],
        0.05,
    );
    assert_eq!(j.verdict, Verdict::NotHealed);
    assert!(j.reason.starts_with("not healed by the deadline"));
    assert_eq!(j.symptoms[0].result, SymptomResult::Improved);
}

#[test]
fn hostile_and_degenerate_samples() {
    // NaN and infinities are dropped; what is left is too little.
    let j = judge(
        Ok(()),
        &[input(
            weak(FindingKind::ErrorRate),
            vec![f64::NAN, f64::INFINITY, 0.3, f64::NEG_INFINITY],
            vec![f64::NAN; 50],
        )],
        0.05,
    );
    assert_eq!(j.verdict, Verdict::Inconclusive, "{}", j.reason);
    let c = &j.symptoms[0];
    assert_eq!(
        (c.test.n_before, c.test.n_after, c.result),
        (1, 0, SymptomResult::TooFewSamples)
    );
    // Empty.
    let j = judge(
        Ok(()),
        &[input(strong(FindingKind::ErrorRate), vec![], vec![])],
        0.05,
    );
    assert_eq!(j.verdict, Verdict::Healed, "{}", j.reason);
    // Constant and equal: no change, not a division by zero.
    let j = judge(
        Ok(()),
        &[input(
            strong(FindingKind::ErrorRate),
            vec![0.2; 30],
            vec![0.2; 30],
        )],
        0.05,
    );
    assert_eq!(j.verdict, Verdict::Inconclusive, "{}", j.reason);
    assert_eq!(j.symptoms[0].test.p_better, Some(1.0));
    // Constant on each side, and lower after: an improvement (a target back up).
    let j = judge(
        Ok(()),
        &[input(
            strong(FindingKind::TargetDown),
            vec![1.0; 10],
            vec![0.0; 10],
        )],
        0.05,
    );
    assert_eq!(j.verdict, Verdict::Healed, "{}", j.reason);
    assert_eq!(j.symptoms[0].test.thin, 1);
    // No symptoms at all, or a nonsense alpha (falls back to 0.05).
    assert_eq!(judge(Ok(()), &[], 0.05).verdict, Verdict::Inconclusive);
    let j = judge(
        Ok(()),
        &[input(
            strong(FindingKind::ErrorRate),
            noisy(0.30, 0.05, 30, 1),
            noisy(0.01, 0.005, 30, 2),
        )],
        f64::NAN,
    );
    assert_eq!(j.verdict, Verdict::Healed);
}

#[test]
fn holm_needs_more_than_alpha_when_several_symptoms_are_tested() {
    // Two symptoms, the smaller worse-p just under α but above α/2: not called worse.
    // Drive `judge` through inputs whose worse-p is known: a small shift up.
    let before = noisy(1.0, 0.5, 12, 1);
    let after: Vec<f64> = before.iter().map(|v| v + 0.2).collect();
    let c = compare(&before, &after, Direction::LowerIsBetter, Thinning::None);
    let p = c.p_worse.expect("tested");
    assert!(p < 0.05 && p > 0.025, "pick another shift: p = {p}");
    let one = judge(
        Ok(()),
        &[input(
            strong(FindingKind::ErrorRate),
            before.clone(),
            after.clone(),
        )],
        0.05,
    );
    assert_eq!(
        one.symptoms[0].result,
        SymptomResult::Worse,
        "{}",
        one.reason
    );
    let two = judge(
        Ok(()),
        &[
            input(
                strong(FindingKind::ErrorRate),
                before.clone(),
                after.clone(),
            ),
            input(strong(FindingKind::Latency), before.clone(), before.clone()),
        ],
        0.05,
    );
    assert_ne!(
        two.symptoms[0].result,
        SymptomResult::Worse,
        "{}",
        two.reason
    );
}

#[test]
fn autocorrelated_series_are_thinned_and_independent_ones_are_not() {
    // A slow sine: neighbours nearly equal.
    let smooth: Vec<f64> = (0..60).map(|i| (f64::from(i) / 6.0).sin()).collect();
    assert!(lag1_autocorrelation(&[&smooth]) > 0.8);
    let c = compare(&smooth, &smooth, Direction::LowerIsBetter, Thinning::Thin);
    assert!(c.thin >= 5, "{c:?}");
    let rough = noisy(0.0, 1.0, 60, 9);
    let c = compare(&rough, &rough, Direction::LowerIsBetter, Thinning::Thin);
    assert_eq!(c.thin, 1, "{c:?}");
    assert_eq!(lag1_autocorrelation(&[&[1.0; 5]]), 0.0);
    assert_eq!(lag1_autocorrelation(&[]), 0.0);
}
