//! Properties of the streaming scorer.

use super::*;

fn series(n: usize) -> (Vec<i64>, Vec<f64>) {
    let ts = (0..n as i64).map(|i| i * 300_000).collect();
    let vs = (0..n)
        .map(|i| {
            let day = (i as f64 * std::f64::consts::TAU / 288.0).sin() * 10.0;
            let noise = ((i * 7919) % 97) as f64 / 97.0;
            let shift = if i > 1500 { 25.0 } else { 0.0 };
            50.0 + day + noise + shift
        })
        .collect();
    (ts, vs)
}

#[test]
fn scores_use_only_the_past_prefix_scores_equal_full_scores() {
    let (ts, vs) = series(2500);
    let p = ScorerParams::default();
    let full = score_series(&p, &ts, &vs).0;
    for cut in [1, 100, 777, 1501, 2499] {
        let prefix = score_series(&p, &ts[..cut], &vs[..cut]).0;
        assert_eq!(prefix[..], full[..cut], "prefix of {cut}");
    }
    assert!(full.iter().all(|s| (0.0..=1.0).contains(s)));
    // The level shift at 1501 is found right away.
    let first = full.iter().position(|s| *s >= p.alarm_level);
    assert!(
        first.is_some_and(|i| (1501..1510).contains(&i)),
        "{first:?}"
    );
}

#[test]
fn bad_points_are_counted_and_leave_the_state_untouched() {
    let (ts, vs) = series(1200);
    let p = ScorerParams::default();
    let clean = score_series(&p, &ts, &vs).0;
    let mut s = SeriesScorer::new(p.clone());
    let mut dirty = Vec::new();
    for (i, (&t, &v)) in ts.iter().zip(&vs).enumerate() {
        dirty.push(s.push(t, v).map_or(0.0, |x| x.score));
        if i % 100 == 50 {
            assert_eq!(s.push(t, f64::NAN), Err(DropReason::NonFinite));
            assert_eq!(s.push(t, f64::INFINITY), Err(DropReason::NonFinite));
            assert_eq!(s.push(t, v + 1.0), Err(DropReason::Duplicate));
            assert_eq!(s.push(t - 1, v), Err(DropReason::OutOfOrder));
        }
    }
    assert_eq!(clean, dirty);
    let d = s.drops();
    assert_eq!((d.non_finite, d.duplicate, d.out_of_order), (24, 12, 12));
    assert_eq!(d.total(), 48);
}

#[test]
fn extreme_values_do_not_panic_or_leave_the_unit_interval() {
    let mut s = SeriesScorer::new(ScorerParams::default());
    for i in 0..2000i64 {
        let v = match i % 7 {
            0 => f64::MAX,
            1 => -f64::MAX,
            2 => 0.0,
            3 => 1e-300,
            _ => i as f64,
        };
        if let Ok(x) = s.push(i * 1000 - (i % 3) * 5000, v) {
            assert!((0.0..=1.0).contains(&x.score), "{x:?}");
        }
    }
    // A series that stops reporting and comes back much later is simply scored again.
    assert!(s.push(i64::MAX / 2, 1.0).is_ok());
}

#[test]
fn memory_per_series_is_bounded() {
    let (ts, vs) = series(20_000);
    let mut s = SeriesScorer::new(ScorerParams::default());
    for (t, v) in ts.iter().zip(&vs) {
        let _ = s.push(*t, *v);
    }
    assert!(s.memory_bytes() < 12 * 1024, "{}", s.memory_bytes());
}
