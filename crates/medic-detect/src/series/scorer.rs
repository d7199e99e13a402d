//! The per-point streaming anomaly scorer: one instance per series, O(1) amortised per point,
//! bounded memory (~10 KB), and a score in [0, 1] that depends only on points up to and
//! including the current one.
//!
//! An ensemble of cheap robust statistics, each a robust z-score (median and IQR of a sliding
//! window): the value against recent values (spikes, level shifts), the first difference
//! against recent differences (sudden jumps, changes of noise), and, once the series shows a
//! daily or weekly cycle, the residual from a per-phase seasonal profile learned online. The
//! largest is squashed into a raw score, and the raw score goes through an "anomaly
//! likelihood" step (as HTM's): the tail probability of the recent average raw score against
//! this series' own long-run raw-score distribution. That makes one threshold mean the same on
//! a noisy series as on a quiet one, with no per-series tuning. Alarms are kept sparse: after
//! a strong score, scores are damped for a refractory period, since only the first alarm of an
//! episode is useful.

use super::rolling::Rolling;

/// Every knob of the scorer; the defaults are the shipped detector (no per-series tuning).
#[derive(Clone, Debug, PartialEq)]
pub struct ScorerParams {
    /// Points in the sliding windows of values, differences and seasonal residuals.
    pub window: usize,
    /// Points before any score other than 0 is emitted.
    pub warmup: usize,
    /// z-score at which the squashed raw score reaches ~0.76 (`tanh(z / z_scale)`).
    pub z_scale: f64,
    /// Raw scores averaged for the likelihood step (sudden anomalies).
    pub short_window: usize,
    /// A longer average for a second likelihood (anomalies that are a change of rate, e.g.
    /// spikes arriving more often); 0 turns it off.
    pub medium_window: usize,
    /// How raw z-scores are compressed: 0 = tanh(z / z_scale), 1 = ln(1 + z).
    pub raw_log: bool,
    /// Weight of each new raw score in the long-run mean and variance.
    pub long_alpha: f64,
    /// Final score at or above which an alarm starts a refractory period.
    pub alarm_level: f64,
    /// Points after an alarm during which scores are damped.
    pub refractory: usize,
    /// Factor applied to scores during the refractory period.
    pub refractory_damping: f64,
    /// Seasonal profile bins per period.
    pub season_bins: usize,
    /// The seasonal residual is used once it explains this share of the variance.
    pub season_min_gain: f64,
}

impl Default for ScorerParams {
    fn default() -> Self {
        ScorerParams {
            window: 192,
            warmup: 64,
            z_scale: 12.0,
            short_window: 3,
            medium_window: 0,
            raw_log: true,
            long_alpha: 0.0003,
            alarm_level: 0.35,
            refractory: 100,
            refractory_damping: 0.0,
            season_bins: 288,
            season_min_gain: 0.7,
        }
    }
}

/// Why a point was not scored.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// NaN or ±Inf.
    NonFinite,
    /// Older than the last accepted point.
    OutOfOrder,
    /// Same timestamp as the last accepted point.
    Duplicate,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NonFinite => "non_finite",
            DropReason::OutOfOrder => "out_of_order",
            DropReason::Duplicate => "duplicate_timestamp",
        }
    }
}

/// Counts of dropped points by reason.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    pub non_finite: u64,
    pub out_of_order: u64,
    pub duplicate: u64,
}

impl Drops {
    pub fn total(&self) -> u64 {
        self.non_finite + self.out_of_order + self.duplicate
    }
    fn count(&mut self, r: DropReason) {
        match r {
            DropReason::NonFinite => self.non_finite += 1,
            DropReason::OutOfOrder => self.out_of_order += 1,
            DropReason::Duplicate => self.duplicate += 1,
        }
    }
}

/// A scored point: the final score and the parts behind it, for findings and debugging.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Scored {
    /// In [0, 1].
    pub score: f64,
    /// The squashed ensemble score before the likelihood step, in [0, 1].
    pub raw: f64,
    /// The robust median of recent values (the baseline).
    pub baseline: f64,
    /// Which statistic dominated.
    pub kind: AnomalyKind,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AnomalyKind {
    /// The value is far from recent values (spike or level shift).
    Level,
    /// The step from the previous point is far from recent steps.
    Jump,
    /// The value is far from what this time of day/week usually looks like.
    Seasonal,
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::Level => "level",
            AnomalyKind::Jump => "jump",
            AnomalyKind::Seasonal => "seasonal",
        }
    }
}

const DAY_MS: i64 = 86_400_000;
const WEEK_MS: i64 = 7 * DAY_MS;

/// A per-phase profile of one period, learned online, and how much variance it explains.
#[derive(Clone, Debug)]
struct Season {
    period_ms: i64,
    bins: Vec<f32>,
    counts: Vec<u16>,
    /// EW mean squared residual against the profile, and against the overall EW mean.
    var_res: f64,
    var_raw: f64,
}

impl Season {
    fn new(period_ms: i64, bins: usize) -> Self {
        Season {
            period_ms,
            bins: vec![0.0; bins],
            counts: vec![0; bins],
            var_res: 0.0,
            var_raw: 0.0,
        }
    }

    fn bin(&self, ts: i64) -> usize {
        let n = self.bins.len().max(1) as i64;
        (ts.rem_euclid(self.period_ms) * n / self.period_ms).clamp(0, n - 1) as usize
    }

    /// The expected value at `ts`, once this phase has been seen at least twice.
    fn expect(&self, ts: i64) -> Option<f64> {
        let b = self.bin(ts);
        (self.counts.get(b).copied().unwrap_or(0) >= 2).then(|| f64::from(self.bins[b]))
    }

    fn update(&mut self, ts: i64, x: f64, mean: f64) {
        let b = self.bin(ts);
        if let Some(e) = self.expect(ts) {
            let a = 0.01;
            self.var_res += a * ((x - e).powi(2) - self.var_res);
            self.var_raw += a * ((x - mean).powi(2) - self.var_raw);
        }
        let (Some(v), Some(c)) = (self.bins.get_mut(b), self.counts.get_mut(b)) else {
            return;
        };
        *c = c.saturating_add(1);
        // The first few visits average; later ones move a bin slowly, so one anomaly does
        // not rewrite the profile.
        let a = (1.0 / f64::from(*c)).max(0.1);
        *v += (a * (x - f64::from(*v))) as f32;
    }

    fn explains(&self, min_gain: f64) -> bool {
        self.var_raw > 0.0 && self.var_res < (1.0 - min_gain) * self.var_raw
    }
}

/// The streaming scorer of one series.
#[derive(Clone, Debug)]
pub struct SeriesScorer {
    p: ScorerParams,
    n: u64,
    last: Option<(i64, f64)>,
    first_ts: i64,
    vals: Rolling,
    diffs: Rolling,
    resid: Rolling,
    daily: Season,
    weekly: Season,
    mean: f64,
    /// Long-run mean absolute first difference: a floor for the robust scale, so a window
    /// that happens to be flat does not make the next ordinary wiggle infinitely surprising.
    abs_diff: f64,
    /// The last raw scores (ring of `max(short, medium)`), with running sums of the last
    /// `short` and `medium` of them.
    ring: Vec<f64>,
    ring_pos: usize,
    pushed: u64,
    short_sum: f64,
    medium_sum: f64,
    long_mean: f64,
    long_var: f64,
    since_alarm: usize,
    drops: Drops,
}

impl SeriesScorer {
    pub fn new(p: ScorerParams) -> Self {
        let bins = p.season_bins.max(1);
        SeriesScorer {
            vals: Rolling::new(p.window),
            diffs: Rolling::new(p.window),
            resid: Rolling::new(p.window),
            daily: Season::new(DAY_MS, bins),
            weekly: Season::new(WEEK_MS, bins),
            ring: vec![0.0; p.short_window.max(p.medium_window).max(1)],
            ring_pos: 0,
            pushed: 0,
            short_sum: 0.0,
            medium_sum: 0.0,
            n: 0,
            last: None,
            first_ts: 0,
            mean: 0.0,
            abs_diff: 0.0,
            long_mean: 0.0,
            long_var: 0.0,
            since_alarm: usize::MAX,
            drops: Drops::default(),
            p,
        }
    }

    pub fn drops(&self) -> Drops {
        self.drops
    }

    /// Points accepted so far.
    pub fn accepted(&self) -> u64 {
        self.n
    }

    /// Timestamp (ms) of the last accepted point.
    pub fn last_ts(&self) -> Option<i64> {
        self.last.map(|l| l.0)
    }

    /// Approximate bytes this scorer holds (struct plus heap).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.vals.heap_bytes()
            + self.diffs.heap_bytes()
            + self.resid.heap_bytes()
            + (self.daily.bins.capacity() + self.weekly.bins.capacity()) * 6
            + self.ring.capacity() * 8
    }

    /// Score one point (`ts` in ms). A bad point is counted and returns `Err` without touching
    /// the state.
    pub fn push(&mut self, ts: i64, x: f64) -> Result<Scored, DropReason> {
        let reason = if !x.is_finite() {
            Some(DropReason::NonFinite)
        } else {
            match self.last {
                Some((t, _)) if ts < t => Some(DropReason::OutOfOrder),
                Some((t, _)) if ts == t => Some(DropReason::Duplicate),
                _ => None,
            }
        };
        if let Some(r) = reason {
            self.drops.count(r);
            return Err(r);
        }
        let scored = self.score(ts, x);
        self.learn(ts, x);
        Ok(scored)
    }

    fn z(w: &Rolling, x: f64, floor: f64) -> f64 {
        match w.center_scale() {
            Some((m, s)) => (x - m).abs() / s.max(floor),
            None => 0.0,
        }
    }

    fn score(&mut self, ts: i64, x: f64) -> Scored {
        let baseline = self.vals.quantile(0.5).unwrap_or(x);
        if (self.n as usize) < self.p.warmup || !self.vals.is_full() {
            return Scored {
                score: 0.0,
                raw: 0.0,
                baseline,
                kind: AnomalyKind::Level,
            };
        }
        let floor = (0.1 * self.abs_diff).max(1e-9 * (1.0 + baseline.abs()));
        let mut best = (Self::z(&self.vals, x, floor), AnomalyKind::Level);
        if let Some((_, px)) = self.last {
            let zd = Self::z(&self.diffs, x - px, floor);
            if zd > best.0 {
                best = (zd, AnomalyKind::Jump);
            }
        }
        if let Some(e) = self.seasonal_expect(ts) {
            let zs = Self::z(&self.resid, x - e, floor);
            // The seasonal residual replaces the plain level test when a cycle is present:
            // the daily peak is then not a level anomaly.
            if best.1 == AnomalyKind::Level || zs > best.0 {
                best = (zs, AnomalyKind::Seasonal);
            }
        }
        let raw01 = (best.0 / self.p.z_scale).tanh();
        let raw = if self.p.raw_log {
            best.0.ln_1p()
        } else {
            raw01
        };
        let score = self.likelihood(raw);
        let raw = raw01;
        let score = self.refract(score);
        Scored {
            score,
            raw,
            baseline,
            kind: best.1,
        }
    }

    fn seasonal_expect(&self, ts: i64) -> Option<f64> {
        // Need two full periods before trusting a profile.
        let span = ts.saturating_sub(self.first_ts);
        if span >= 2 * WEEK_MS && self.weekly.explains(self.p.season_min_gain) {
            return self.weekly.expect(ts);
        }
        if span >= 2 * DAY_MS && self.daily.explains(self.p.season_min_gain) {
            return self.daily.expect(ts);
        }
        None
    }

    /// Tail probability of the recent mean raw score against the long-run distribution,
    /// mapped to [0, 1] on a log scale so that the rare tail keeps resolution.
    fn likelihood(&mut self, raw: f64) -> f64 {
        let cap = self.ring.len();
        let k = self.p.short_window.clamp(1, cap);
        let m = self.p.medium_window.min(cap);
        // Values leaving each running window: `k` and `m` pushes ago.
        let at = |back: usize| (self.ring_pos + cap - back % cap) % cap;
        let out_k = if self.pushed >= k as u64 {
            self.ring[at(k)]
        } else {
            0.0
        };
        let out_m = if m > 0 && self.pushed >= m as u64 {
            self.ring[at(m)]
        } else {
            0.0
        };
        self.short_sum += raw - out_k;
        self.medium_sum += raw - out_m;
        if let Some(slot) = self.ring.get_mut(self.ring_pos) {
            *slot = raw;
        }
        self.ring_pos = (self.ring_pos + 1) % cap;
        self.pushed += 1;
        let sd = self.long_var.sqrt().max(1e-4);
        let n = self.pushed as f64;
        let short = self.short_sum / n.min(k as f64);
        let mut z = (short - self.long_mean) / sd;
        if m > 0 {
            // The mean of m draws has sd/sqrt(m): a sustained small rise is as telling as one
            // large raw score.
            let med = self.medium_sum / n.min(m as f64);
            let zm = (med - self.long_mean) / (sd / (n.min(m as f64)).sqrt());
            z = z.max(zm);
        }
        // Plain averages until 1/n falls below the EW weight: the long-run estimate is then
        // usable from the first points instead of starting from zero.
        let a = self.p.long_alpha.max(1.0 / n);
        let d = raw - self.long_mean;
        self.long_mean += a * d;
        self.long_var = (1.0 - a) * (self.long_var + a * d * d);
        if self.pushed <= self.p.warmup as u64 {
            // The long-run distribution is not known yet: no judgement.
            return 0.0;
        }
        let tail = 0.5 * erfc(z / std::f64::consts::SQRT_2);
        (tail.max(1e-10).ln() / 1e-10f64.ln()).clamp(0.0, 1.0)
    }

    fn refract(&mut self, score: f64) -> f64 {
        self.since_alarm = self.since_alarm.saturating_add(1);
        if self.since_alarm <= self.p.refractory {
            return score * self.p.refractory_damping;
        }
        if score >= self.p.alarm_level {
            self.since_alarm = 0;
        }
        score
    }

    fn learn(&mut self, ts: i64, x: f64) {
        if self.n == 0 {
            self.first_ts = ts;
            self.mean = x;
        }
        if let Some((_, px)) = self.last {
            let d = x - px;
            self.diffs.push(d);
            let a = 1.0 / (self.n as f64).clamp(1.0, 1000.0);
            self.abs_diff += a * (d.abs() - self.abs_diff);
        }
        if let Some(e) = self.seasonal_expect(ts) {
            self.resid.push(x - e);
        }
        self.daily.update(ts, x, self.mean);
        self.weekly.update(ts, x, self.mean);
        self.mean += 0.01 * (x - self.mean);
        self.vals.push(x);
        self.last = Some((ts, x));
        self.n += 1;
    }
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, |error| < 1.2e-7): the
/// standard library has none.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}
