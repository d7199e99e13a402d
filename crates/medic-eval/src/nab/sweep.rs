//! NAB's sweeper: per-row rewards and costs, and the score at every threshold.
//!
//! Follows NAB's `sweeper.py`: a row inside a window earns the scaled sigmoid of its relative
//! position (`-(right - i + 1) / width`), normalised so the earliest row earns `tp_weight`; a
//! window's part of the score starts at `-fn_weight` and becomes the best (earliest) reward of a
//! detection in it; a row outside every window costs `fp_weight` times the sigmoid of its
//! distance after the preceding window (`|right - i| / (width - 1)`, or the full cost when no
//! window precedes it); rows in the probationary period are ignored.

/// `2 / (1 + e^{5y}) - 1`, and -1 from three window widths past a window on.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y >= 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// The cost weights of one NAB application profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub name: String,
    pub tp_weight: f64,
    pub fp_weight: f64,
    pub fn_weight: f64,
}

impl Profile {
    /// The three profiles NAB ships in `profiles.json`, for when no file is given.
    pub fn nab_defaults() -> Vec<Profile> {
        let p = |name: &str, fp: f64, fnw: f64| Profile {
            name: name.into(),
            tp_weight: 1.0,
            fp_weight: fp,
            fn_weight: fnw,
        };
        vec![
            p("standard", 0.11, 1.0),
            p("reward_low_FP_rate", 0.22, 1.0),
            p("reward_low_FN_rate", 0.11, 2.0),
        ]
    }
}

/// Rows in the probationary period: 15% of the file, at most 750 rows (15% of 5000).
pub fn probationary_length(rows: usize) -> f64 {
    (0.15 * rows as f64).floor().min(0.15 * 5000.0)
}

/// Where one row sits relative to the windows of its file.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Row {
    pub score: f64,
    /// Unweighted reward (inside a window) or cost (outside), before profile weights.
    pub sigmoid: f64,
    /// Corpus-wide window id, when the row is inside a window.
    pub window: Option<u32>,
    /// Inside the probationary period: never counted.
    pub probationary: bool,
}

/// Rows of one file. `windows` are inclusive row-index ranges, sorted and disjoint;
/// `first_window_id` numbers them corpus-wide.
pub fn rows(scores: &[f64], windows: &[(usize, usize)], first_window_id: u32) -> Vec<Row> {
    let n = scores.len();
    let probation = probationary_length(n);
    let mut out = Vec::with_capacity(n);
    let mut next = 0usize;
    let mut cur: Option<(usize, usize, u32)> = None;
    let mut prev: Option<(usize, f64)> = None;
    for (i, &score) in scores.iter().enumerate() {
        if cur.is_none()
            && let Some(&(s, e)) = windows.get(next)
            && i == s
        {
            cur = Some((s, e, first_window_id + next as u32));
            next += 1;
        }
        let (sigmoid, window) = match cur {
            Some((s, e, id)) => {
                let width = (e - s + 1) as f64;
                let pos = -((e as f64 - i as f64 + 1.0) / width);
                (scaled_sigmoid(pos) / scaled_sigmoid(-1.0), Some(id))
            }
            None => {
                let pos = match prev {
                    None => 3.0,
                    // A one-row window has width - 1 = 0: NAB divides by zero there; treat
                    // every later row as far past it.
                    Some((right, width)) if width > 1.0 => {
                        (i as f64 - right as f64).abs() / (width - 1.0)
                    }
                    Some(_) => 3.0,
                };
                (scaled_sigmoid(pos), None)
            }
        };
        out.push(Row {
            score: if score.is_finite() { score } else { 0.0 },
            sigmoid,
            window,
            probationary: (i as f64) < probation,
        });
        if let Some((s, e, _)) = cur
            && i == e
        {
            prev = Some((e, (e - s + 1) as f64));
            cur = None;
        }
    }
    out
}

/// The score of a set of rows at one threshold (`score >= threshold` is an alarm).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct ThresholdScore {
    pub threshold: f64,
    pub score: f64,
    /// Windows with at least one alarm.
    pub windows_detected: usize,
    /// Alarms outside every window (after the probationary period).
    pub false_alarms: usize,
}

/// The score at every distinct threshold, highest threshold first (NAB's
/// `calcScoreByThreshold`); the first entry is threshold 1.1, where nothing alarms.
pub fn sweep(rows: &[Row], windows: usize, p: &Profile) -> Vec<ThresholdScore> {
    let mut scorable: Vec<&Row> = rows.iter().filter(|r| !r.probationary).collect();
    scorable.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut best = vec![f64::NAN; windows];
    let mut present = vec![false; windows];
    for r in &scorable {
        if let Some(w) = r.window.and_then(|w| present.get_mut(w as usize)) {
            *w = true;
        }
    }
    for (b, p_) in best.iter_mut().zip(&present) {
        if *p_ {
            *b = -p.fn_weight;
        }
    }
    let mut window_sum: f64 = best.iter().filter(|b| !b.is_nan()).sum();
    let mut fp = 0.0;
    let (mut detected, mut false_alarms) = (0usize, 0usize);
    let mut out = Vec::new();
    let mut threshold = 1.1;
    for r in scorable {
        if r.score != threshold {
            out.push(ThresholdScore {
                threshold,
                score: fp + window_sum,
                windows_detected: detected,
                false_alarms,
            });
            threshold = r.score;
        }
        match r.window.and_then(|w| best.get_mut(w as usize)) {
            Some(b) => {
                let reward = p.tp_weight * r.sigmoid;
                if *b == -p.fn_weight && reward > *b {
                    detected += 1;
                }
                if reward > *b {
                    window_sum += reward - *b;
                    *b = reward;
                }
            }
            None => {
                fp += p.fp_weight * r.sigmoid;
                false_alarms += 1;
            }
        }
    }
    out.push(ThresholdScore {
        threshold,
        score: fp + window_sum,
        windows_detected: detected,
        false_alarms,
    });
    out
}

/// The best entry of a sweep: the highest score, the highest threshold among ties (as
/// Python's `max` keeps the first).
pub fn best(sweep: &[ThresholdScore]) -> Option<ThresholdScore> {
    sweep
        .iter()
        .fold(None, |acc: Option<ThresholdScore>, s| match acc {
            Some(a) if a.score >= s.score => Some(a),
            _ => Some(*s),
        })
}

/// The score of a set of rows at a fixed threshold.
pub fn score_at(rows: &[Row], windows: usize, p: &Profile, threshold: f64) -> ThresholdScore {
    let mut best = vec![None::<f64>; windows];
    let mut present = vec![false; windows];
    let mut fp = 0.0;
    let mut false_alarms = 0;
    for r in rows.iter().filter(|r| !r.probationary) {
        if let Some(w) = r.window.and_then(|w| present.get_mut(w as usize)) {
            *w = true;
        }
        if r.score < threshold {
            continue;
        }
        match r.window.and_then(|w| best.get_mut(w as usize)) {
            Some(b) => {
                let reward = p.tp_weight * r.sigmoid;
                *b = Some(b.map_or(reward, |x: f64| x.max(reward)));
            }
            None => {
                fp += p.fp_weight * r.sigmoid;
                false_alarms += 1;
            }
        }
    }
    let mut score = fp;
    let mut detected = 0;
    for (b, p_) in best.iter().zip(&present) {
        match (b, p_) {
            (Some(r), true) => {
                score += r.max(-p.fn_weight);
                detected += 1;
            }
            (None, true) => score -= p.fn_weight,
            _ => {}
        }
    }
    ThresholdScore {
        threshold,
        score,
        windows_detected: detected,
        false_alarms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standard() -> Profile {
        Profile::nab_defaults().remove(0)
    }

    #[test]
    fn sigmoid_matches_nab_reference_points() {
        assert!((scaled_sigmoid(-1.0) - 0.98661).abs() < 1e-5);
        assert!((scaled_sigmoid(-0.5) - 0.84828).abs() < 1e-5);
        assert!(scaled_sigmoid(0.0).abs() < 1e-12);
        assert!((scaled_sigmoid(1.0) + 0.98661).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(3.0), -1.0);
    }

    #[test]
    fn probation_is_fifteen_percent_capped_at_750_rows() {
        assert_eq!(probationary_length(1000), 150.0);
        assert_eq!(probationary_length(10_000), 750.0);
    }

    #[test]
    fn earliest_alarm_in_a_window_earns_the_full_tp_weight() {
        // 1000 rows (probation 150), one window 500..=599.
        let mut s = vec![0.0; 1000];
        s[500] = 1.0;
        let r = rows(&s, &[(500, 599)], 0);
        let b = score_at(&r, 1, &standard(), 0.5);
        assert!((b.score - 1.0).abs() < 1e-12, "{b:?}");
        assert_eq!(b.windows_detected, 1);
        // Only the first detection counts: a later one in the same window changes nothing.
        s[550] = 1.0;
        let r = rows(&s, &[(500, 599)], 0);
        assert!((score_at(&r, 1, &standard(), 0.5).score - 1.0).abs() < 1e-12);
    }

    #[test]
    fn late_alarm_earns_less_and_missed_window_costs_fn_weight() {
        let mut s = vec![0.0; 1000];
        s[599] = 1.0;
        let r = rows(&s, &[(500, 599)], 0);
        let late = score_at(&r, 1, &standard(), 0.5).score;
        // Position -1/100 → sigmoid(0.05)/maxTP.
        let want = scaled_sigmoid(-0.01) / scaled_sigmoid(-1.0);
        assert!((late - want).abs() < 1e-12, "{late} vs {want}");
        let none = score_at(&rows(&[0.0; 1000], &[(500, 599)], 0), 1, &standard(), 0.5);
        assert_eq!(none.score, -1.0);
        assert_eq!(none.windows_detected, 0);
    }

    #[test]
    fn false_positives_cost_by_distance_after_the_window() {
        let p = standard();
        let mut s = vec![0.0; 1000];
        s[300] = 1.0; // before any window: full cost
        let r = rows(&s, &[(500, 599)], 0);
        assert!((score_at(&r, 1, &p, 0.5).score - (-1.0 - 0.11)).abs() < 1e-12);
        let mut s = vec![0.0; 1000];
        s[600] = 1.0; // right after the window: almost free
        let r = rows(&s, &[(500, 599)], 0);
        let want = -1.0 + 0.11 * scaled_sigmoid(1.0 / 99.0);
        assert!((score_at(&r, 1, &p, 0.5).score - want).abs() < 1e-12);
        // Inside probation: ignored.
        let mut s = vec![0.0; 1000];
        s[10] = 1.0;
        let r = rows(&s, &[(500, 599)], 0);
        assert_eq!(score_at(&r, 1, &p, 0.5).score, -1.0);
    }

    #[test]
    fn sweep_agrees_with_fixed_threshold_scoring() {
        let s: Vec<f64> = (0..2000)
            .map(|i| ((i * 7919) % 1000) as f64 / 1000.0)
            .collect();
        let w = [(400, 499), (1200, 1399)];
        let r = rows(&s, &w, 0);
        for p in Profile::nab_defaults() {
            for t in sweep(&r, 2, &p).iter().skip(1) {
                let direct = score_at(&r, 2, &p, t.threshold);
                assert!((direct.score - t.score).abs() < 1e-9, "{t:?} vs {direct:?}");
                assert_eq!(direct.windows_detected, t.windows_detected);
                assert_eq!(direct.false_alarms, t.false_alarms);
            }
        }
    }
}
