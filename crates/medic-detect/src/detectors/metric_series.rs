//! `metric_series`: the streaming series scorer ([`crate::series`]) over the configured metrics
//! of every service (each label set its own series), raising `metric_anomaly` findings, and the
//! growth forecaster raising `predicted_breach` before a series crosses its limit.
//!
//! Per-target correlation: anomalies of distinct series of one target (service and instance)
//! within `correlation_window` form one group (e.g. memory growth with restarts and latency).
//! Each alarm raises one finding naming every series of its group, with evidence for each and
//! their scores combined by noisy-OR (`1 - Π(1 - score)`), once the group has
//! `min_correlated` series; until then the alarm is held (counted) and joins a later group.

use crate::series::{Forecaster, ScorerParams, SeriesScorer};
use crate::{Detector, finding_id};
use medic_config::{DetectorsConfig, MetricSeriesConfig};
use medic_core::{
    Evidence, Finding, FindingKind, MetricSample, Signal, SignalPayload, Symptom, SymptomState, Ts,
};
use std::collections::{BTreeMap, HashMap, VecDeque};

const NAME: &str = "metric_series";
/// How long a series stays "anomalous" for the verifier after its last alarm.
const HOLD_MS: i64 = 60_000;
/// Recent anomalies remembered per target for correlation (distinct series; the oldest goes).
const MAX_RECENT: usize = 32;

/// Where a forecast metric's threshold comes from.
#[derive(Clone, Debug, PartialEq)]
enum Limit {
    Value(f64),
    Metric(String),
}

#[derive(Debug)]
struct Series {
    service: String,
    instance: String,
    metric: String,
    /// `metric{label="value",...}`: how findings name the series.
    display: String,
    scorer: SeriesScorer,
    forecaster: Option<Forecaster>,
    /// Last raw counter value and its time, for counters.
    counter: Option<(i64, f64)>,
    last_seen: i64,
    last_value: f64,
    baseline: f64,
    anomalous_until: i64,
    breach_open: bool,
}

/// Drop and reset counts, by reason (nothing is dropped silently).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesCounts {
    pub non_finite: u64,
    pub out_of_order: u64,
    pub duplicate: u64,
    pub counter_resets: u64,
    pub over_series_cap: u64,
    pub stale_series: u64,
    /// Alarms not raised (yet) because fewer than `min_correlated` series of their target
    /// were anomalous within the correlation window.
    pub uncorrelated_held: u64,
}

/// One recent alarm of a target, kept for correlation.
#[derive(Clone, Debug)]
struct Recent {
    ts: i64,
    /// The series key (distinctness) and how it is named.
    key: String,
    display: String,
    value: f64,
    baseline: f64,
    score: f64,
}

pub struct MetricSeries {
    cfg: MetricSeriesConfig,
    params: ScorerParams,
    limits: BTreeMap<String, Limit>,
    series: HashMap<String, Series>,
    /// Latest value of limit metrics, by (service, instance, metric).
    limit_values: HashMap<(String, String, String), f64>,
    /// Recent alarms by target (service, instance).
    recent: HashMap<(String, String), VecDeque<Recent>>,
    counts: SeriesCounts,
}

fn parse_limits(cfg: &MetricSeriesConfig) -> BTreeMap<String, Limit> {
    cfg.forecast
        .iter()
        .filter_map(|s| {
            let (m, l) = s.split_once('=')?;
            let (m, l) = (m.trim(), l.trim());
            if m.is_empty() || l.is_empty() {
                return None;
            }
            let limit = match l.parse::<f64>() {
                Ok(v) if v.is_finite() => Limit::Value(v),
                _ => Limit::Metric(l.to_string()),
            };
            Some((m.to_string(), limit))
        })
        .collect()
}

/// The scorer parameters a config asks for.
pub fn scorer_params(cfg: &MetricSeriesConfig) -> ScorerParams {
    ScorerParams {
        window: cfg.window,
        warmup: cfg.warmup,
        short_window: cfg.short_window,
        long_alpha: cfg.long_alpha,
        alarm_level: cfg.alarm_score,
        refractory: cfg.refractory,
        season_bins: cfg.season_bins,
        season_min_gain: cfg.season_min_gain,
        ..ScorerParams::default()
    }
}

fn display_name(s: &MetricSample) -> String {
    if s.labels.is_empty() {
        return s.name.clone();
    }
    let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{}{{{}}}", s.name, labels.join(","))
}

fn series_key(service: &str, instance: &str, s: &MetricSample) -> String {
    let mut k = format!("{service}\u{1f}{instance}\u{1f}{}", s.name);
    for (a, b) in &s.labels {
        k.push('\u{1f}');
        k.push_str(a);
        k.push('=');
        k.push_str(b);
    }
    k
}

impl MetricSeries {
    pub fn new(cfg: &DetectorsConfig) -> Self {
        let c = cfg.metric_series.clone();
        MetricSeries {
            params: scorer_params(&c),
            limits: parse_limits(&c),
            cfg: c,
            series: HashMap::new(),
            limit_values: HashMap::new(),
            recent: HashMap::new(),
            counts: SeriesCounts::default(),
        }
    }

    /// Dropped points, counter resets and dropped series so far.
    pub fn counts(&self) -> SeriesCounts {
        let mut c = self.counts.clone();
        for s in self.series.values() {
            let d = s.scorer.drops();
            c.non_finite += d.non_finite;
            c.out_of_order += d.out_of_order;
            c.duplicate += d.duplicate;
        }
        c
    }

    fn threshold(&self, s: &Series) -> Option<f64> {
        match self.limits.get(&s.metric)? {
            Limit::Value(v) => Some(*v),
            Limit::Metric(m) => self
                .limit_values
                .get(&(s.service.clone(), s.instance.clone(), m.clone()))
                .copied()
                .filter(|v| v.is_finite() && *v > 0.0),
        }
    }

    fn observe_sample(
        &mut self,
        ts: Ts,
        service: &str,
        instance: &str,
        sample: &MetricSample,
        out: &mut Vec<Finding>,
    ) {
        let key = series_key(service, instance, sample);
        if !self.series.contains_key(&key) {
            if self.series.len() >= self.cfg.max_series {
                self.counts.over_series_cap += 1;
                return;
            }
            let forecaster = (self.limits.contains_key(&sample.name)
                && !sample.name.ends_with("_total"))
            .then(|| Forecaster::new(self.cfg.forecast_points));
            self.series.insert(
                key.clone(),
                Series {
                    service: service.to_string(),
                    instance: instance.to_string(),
                    metric: sample.name.clone(),
                    display: display_name(sample),
                    scorer: SeriesScorer::new(self.params.clone()),
                    forecaster,
                    counter: None,
                    last_seen: ts.0,
                    last_value: sample.value,
                    baseline: sample.value,
                    anomalous_until: i64::MIN,
                    breach_open: false,
                },
            );
        }
        let Some(s) = self.series.get_mut(&key) else {
            return;
        };
        let mut value = sample.value;
        if sample.name.ends_with("_total") {
            // Counters: score the per-second rate; a decrease is a reset (new process), after
            // which the next sample starts a new rate.
            let prev = s.counter;
            if value.is_finite() && prev.is_none_or(|(t, _)| ts.0 > t) {
                s.counter = Some((ts.0, value));
            }
            match prev {
                Some((_, v)) if value < v => {
                    self.counts.counter_resets += 1;
                    return;
                }
                Some((t, v)) if ts.0 > t => value = (value - v) / ((ts.0 - t) as f64 / 1000.0),
                // First sample, or a duplicate/out-of-order one: let the scorer count it.
                Some(_) => {}
                None => return,
            }
        }
        let Ok(scored) = s.scorer.push(ts.0, value) else {
            return;
        };
        s.last_seen = s.last_seen.max(ts.0);
        s.last_value = value;
        s.baseline = scored.baseline;
        if let Some(f) = &mut s.forecaster {
            if value < s.baseline * 0.5 && s.baseline > 0.0 {
                // A sharp fall is a restart or cleanup: the old trend no longer applies.
                f.reset();
            }
            f.push(ts.0, value);
        }
        if scored.score < self.cfg.alarm_score {
            return;
        }
        s.anomalous_until = ts.0.saturating_add(HOLD_MS);
        let alarm = Recent {
            ts: ts.0,
            key,
            display: s.display.clone(),
            value,
            baseline: scored.baseline,
            score: scored.score,
        };
        let kind = scored.kind.as_str();
        self.correlate(ts, service, instance, alarm, kind, out);
    }

    /// Adds an alarm to its target's group and raises the group's finding once it has
    /// `min_correlated` distinct series.
    fn correlate(
        &mut self,
        ts: Ts,
        service: &str,
        instance: &str,
        alarm: Recent,
        kind: &str,
        out: &mut Vec<Finding>,
    ) {
        let window = i64::try_from(self.cfg.correlation_window.as_millis()).unwrap_or(i64::MAX);
        let group = self
            .recent
            .entry((service.to_string(), instance.to_string()))
            .or_default();
        // A series' newer alarm replaces its older one: a group counts distinct series.
        group.retain(|r| ts.0.saturating_sub(r.ts) <= window && r.key != alarm.key);
        group.push_back(alarm);
        while group.len() > MAX_RECENT {
            group.pop_front();
        }
        if group.len() < self.cfg.min_correlated.max(1) {
            self.counts.uncorrelated_held += 1;
            return;
        }
        let Some(newest) = group.back() else {
            return;
        };
        let combined = 1.0 - group.iter().fold(1.0, |acc, r| acc * (1.0 - r.score));
        let mut summary = format!(
            "{service} {} {kind} anomaly: {:.4} vs baseline {:.4} (score {:.2})",
            newest.display, newest.value, newest.baseline, newest.score
        );
        if group.len() > 1 {
            let others: Vec<&str> = group
                .iter()
                .rev()
                .skip(1)
                .map(|r| r.display.as_str())
                .collect();
            summary.push_str(&format!(
                "; together with {} on the same target: {} series anomalous within {}s (combined score {combined:.2})",
                others.join(", "),
                group.len(),
                window / 1000
            ));
        }
        // Newest first: the alarm that raised the finding leads its evidence.
        let evidence = group
            .iter()
            .rev()
            .map(|r| Evidence::Metric {
                ts: Ts(r.ts),
                service: service.to_string(),
                name: r.display.clone(),
                value: r.value,
                baseline: Some(r.baseline),
                unit: String::new(),
            })
            .collect();
        out.push(Finding {
            id: finding_id(
                NAME,
                service,
                ts,
                FindingKind::MetricAnomaly,
                Some(&newest.key),
            ),
            ts,
            service: service.to_string(),
            instance: (!instance.is_empty()).then(|| instance.to_string()),
            kind: FindingKind::MetricAnomaly,
            detector: NAME.into(),
            score: combined.clamp(0.0, 1.0),
            summary,
            evidence,
        });
    }

    fn worst(&self, service: &str, kind: FindingKind, now: Ts) -> Option<&Series> {
        self.series
            .values()
            .filter(|s| s.service == service)
            .filter(|s| match kind {
                FindingKind::MetricAnomaly => s.anomalous_until >= now.0,
                _ => s.breach_open,
            })
            .max_by(|a, b| a.last_seen.cmp(&b.last_seen))
    }
}

impl Detector for MetricSeries {
    fn name(&self) -> &'static str {
        NAME
    }

    fn observe(&mut self, s: &Signal, out: &mut Vec<Finding>) {
        let (SignalPayload::Metrics { samples }, Some(service)) = (&s.payload, &s.service) else {
            return;
        };
        let instance = s.instance.as_deref().unwrap_or("");
        for sample in samples {
            if self
                .limits
                .values()
                .any(|l| matches!(l, Limit::Metric(m) if *m == sample.name))
                && self.limit_values.len() < self.cfg.max_series
            {
                self.limit_values.insert(
                    (service.clone(), instance.to_string(), sample.name.clone()),
                    sample.value,
                );
            }
            if self.cfg.metrics.contains(&sample.name) {
                self.observe_sample(s.ts, service, instance, sample, out);
            }
        }
    }

    fn evaluate(&mut self, now: Ts, out: &mut Vec<Finding>) {
        let stale_ms = i64::try_from(self.cfg.stale_after.as_millis()).unwrap_or(i64::MAX);
        let before = self.series.len();
        let mut gone = crate::series::Drops::default();
        self.series.retain(|_, s| {
            let keep = now.0.saturating_sub(s.last_seen) <= stale_ms;
            if !keep {
                let d = s.scorer.drops();
                gone.non_finite += d.non_finite;
                gone.out_of_order += d.out_of_order;
                gone.duplicate += d.duplicate;
            }
            keep
        });
        self.counts.stale_series += (before - self.series.len()) as u64;
        let window = i64::try_from(self.cfg.correlation_window.as_millis()).unwrap_or(i64::MAX);
        self.recent.retain(|_, g| {
            g.back()
                .is_some_and(|r| now.0.saturating_sub(r.ts) <= window)
        });
        self.counts.non_finite += gone.non_finite;
        self.counts.out_of_order += gone.out_of_order;
        self.counts.duplicate += gone.duplicate;
        let horizon = self.cfg.horizon.as_secs_f64();
        let keys: Vec<String> = self
            .series
            .iter()
            .filter(|(_, s)| s.forecaster.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            let Some(s) = self.series.get(&k) else {
                continue;
            };
            let Some(threshold) = self.threshold(s) else {
                continue;
            };
            let eta = s.forecaster.as_ref().and_then(|f| f.eta(threshold));
            let Some(s) = self.series.get_mut(&k) else {
                continue;
            };
            match eta {
                Some(e) if e.lower_secs <= horizon => {
                    if s.breach_open {
                        continue;
                    }
                    s.breach_open = true;
                    let upper = if e.upper_secs.is_finite() {
                        format!("{:.0}s", e.upper_secs)
                    } else {
                        "never".into()
                    };
                    out.push(Finding {
                        id: finding_id(
                            NAME,
                            &s.service,
                            now,
                            FindingKind::PredictedBreach,
                            Some(&s.metric),
                        ),
                        ts: now,
                        service: s.service.clone(),
                        instance: (!s.instance.is_empty()).then(|| s.instance.clone()),
                        kind: FindingKind::PredictedBreach,
                        detector: NAME.into(),
                        score: (1.0 - e.lower_secs / horizon.max(1.0)).clamp(0.5, 1.0),
                        summary: format!(
                            "{} {} forecast to reach {threshold:.4} in {:.0}s (between {:.0}s and {upper}), growing {:.4}/s",
                            s.service, s.metric, e.secs, e.lower_secs, e.slope_per_sec
                        ),
                        evidence: vec![Evidence::Metric {
                            ts: now,
                            service: s.service.clone(),
                            name: s.metric.clone(),
                            value: s.last_value,
                            baseline: Some(threshold),
                            unit: String::new(),
                        }],
                    });
                }
                // Clear only well outside the horizon, so a forecast that wobbles around it
                // does not raise a new finding each time.
                Some(e) if e.lower_secs > 2.0 * horizon => s.breach_open = false,
                None => s.breach_open = false,
                Some(_) => {}
            }
        }
    }

    fn status(&self, symptom: &Symptom, now: Ts) -> Option<SymptomState> {
        if !matches!(
            symptom.kind,
            FindingKind::MetricAnomaly | FindingKind::PredictedBreach
        ) {
            return None;
        }
        if !self.series.values().any(|s| s.service == symptom.service) {
            return Some(SymptomState::Unknown);
        }
        Some(match self.worst(&symptom.service, symptom.kind, now) {
            Some(_) => SymptomState::Anomalous,
            None => SymptomState::Clear,
        })
    }

    fn describe(&self, symptom: &Symptom, now: Ts) -> Option<Evidence> {
        if !matches!(
            symptom.kind,
            FindingKind::MetricAnomaly | FindingKind::PredictedBreach
        ) {
            return None;
        }
        let s = self.worst(&symptom.service, symptom.kind, now)?;
        Some(Evidence::Metric {
            ts: Ts(s.last_seen),
            service: s.service.clone(),
            name: s.metric.clone(),
            value: s.last_value,
            baseline: Some(s.baseline),
            unit: String::new(),
        })
    }

    fn footprint(&self) -> usize {
        self.series.len() + self.limit_values.len() + self.recent.len()
    }
}

#[cfg(test)]
mod tests;
