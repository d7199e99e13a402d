//! Shared plumbing for counter-based detectors: turning cumulative counters into increases
//! (with counter resets), and summing increases over a sliding time window in bounded slots.

use crate::bounded::BoundedMap;
use medic_core::{MetricSample, Ts};
use std::collections::{BTreeMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

/// Most counter series remembered per instance; further new series are ignored.
pub(crate) const MAX_SERIES_PER_INSTANCE: usize = 256;
/// Slots per window: the window sum is exact to within one slot (1/64 of the window).
const SLOTS_PER_WINDOW: i64 = 64;

/// The last value of every counter series of one instance.
#[derive(Debug, Default)]
pub(crate) struct CounterInstance {
    last: BTreeMap<u64, f64>,
    primed: bool,
    pub last_seen: Ts,
}

impl CounterInstance {
    /// Whether a scrape of this instance was seen before: the first scrape only sets the
    /// starting point, like Prometheus' `increase()`, since we cannot know what part of a
    /// counter's value is recent.
    pub fn is_primed(&self) -> bool {
        self.primed
    }

    pub fn mark_primed(&mut self, ts: Ts) {
        self.primed = true;
        self.last_seen = ts;
    }

    /// Increase of one series since its previous sample. A smaller value than before is a
    /// counter reset (a new process starts from 0), so the new value is the increase. A series
    /// first seen on an already primed instance counts fully (it was created since the last
    /// scrape). `None` for values that are not counters (NaN, infinite, negative).
    pub fn increase(&mut self, sample: &MetricSample) -> Option<f64> {
        let v = sample.value;
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        let key = series_key(sample);
        let inc = match self.last.get(&key) {
            Some(&prev) if v >= prev => v - prev,
            Some(_) => v,
            None if self.last.len() >= MAX_SERIES_PER_INSTANCE => return None,
            None if self.primed => v,
            None => 0.0,
        };
        self.last.insert(key, v);
        Some(if self.primed { inc } else { 0.0 })
    }

    pub fn series(&self) -> usize {
        self.last.len()
    }
}

/// Identity of a series (name and labels), hashed so that hostile label sets cost 8 bytes.
fn series_key(sample: &MetricSample) -> u64 {
    let mut h = DefaultHasher::new();
    sample.name.hash(&mut h);
    sample.labels.hash(&mut h);
    h.finish()
}

/// Values accumulated into time slots, summed over a sliding window.
#[derive(Debug)]
pub(crate) struct SlotRing<T> {
    slot_ms: i64,
    window_ms: i64,
    slots: VecDeque<(i64, T)>,
}

impl<T> SlotRing<T> {
    pub fn new(window: Duration) -> Self {
        let window_ms = i64::try_from(window.as_millis())
            .unwrap_or(i64::MAX / 4)
            .max(1);
        SlotRing {
            slot_ms: (window_ms / SLOTS_PER_WINDOW).max(1),
            window_ms,
            slots: VecDeque::new(),
        }
    }

    /// Merge a value into the slot of `ts`, creating it with `make` when needed.
    pub fn add(&mut self, ts: Ts, make: impl FnOnce() -> T, merge: impl FnOnce(&mut T)) {
        let idx = ts.0.div_euclid(self.slot_ms);
        match self.slots.back_mut() {
            Some((last, v)) if *last == idx => merge(v),
            Some((last, _)) if *last > idx => {
                // Out of order (another source's clock lags): merge into its slot, or insert
                // one if the window can still hold it; anything older is dropped.
                if let Some((_, v)) = self.slots.iter_mut().find(|(i, _)| *i == idx) {
                    merge(v);
                } else if idx > self.newest_idx().saturating_sub(self.max_slots()) {
                    let pos = self
                        .slots
                        .iter()
                        .position(|(i, _)| *i > idx)
                        .unwrap_or(self.slots.len());
                    let mut v = make();
                    merge(&mut v);
                    self.slots.insert(pos, (idx, v));
                }
            }
            _ => {
                let mut v = make();
                merge(&mut v);
                self.slots.push_back((idx, v));
            }
        }
        let oldest_kept = self.newest_idx().saturating_sub(self.max_slots());
        while self.slots.front().is_some_and(|(i, _)| *i <= oldest_kept) {
            self.slots.pop_front();
        }
    }

    /// Slots that start inside the window `(now - window, now]` (exact to within one slot).
    pub fn in_window(&self, now: Ts) -> impl Iterator<Item = &T> {
        let start = now.0.saturating_sub(self.window_ms);
        let slot_ms = self.slot_ms;
        self.slots
            .iter()
            .filter(move |(i, _)| i.saturating_mul(slot_ms) > start)
            .map(|(_, v)| v)
    }

    /// Drop slots that can no longer fall in any window ending at or after `now`.
    pub fn expire(&mut self, now: Ts) {
        let start = now.0.saturating_sub(self.window_ms);
        while self
            .slots
            .front()
            .is_some_and(|(i, _)| i.saturating_mul(self.slot_ms) <= start)
        {
            self.slots.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    fn newest_idx(&self) -> i64 {
        self.slots.back().map(|(i, _)| *i).unwrap_or(i64::MIN)
    }

    fn max_slots(&self) -> i64 {
        SLOTS_PER_WINDOW + 2
    }
}

/// How long an instance may stay silent before it is forgotten (scaled in, renamed).
pub(crate) fn stale_after(window: Duration) -> i64 {
    let w = i64::try_from(window.as_millis()).unwrap_or(i64::MAX / 8);
    w.saturating_mul(4).max(60_000)
}

/// Most instances tracked per service; the least recently seen one is dropped for a new one.
pub(crate) const MAX_INSTANCES_PER_SERVICE: usize = 64;

/// Requests and errors of one service (all its instances), summed over a sliding window.
#[derive(Debug)]
pub(crate) struct RequestWindow {
    instances: BoundedMap<CounterInstance>,
    slots: SlotRing<(f64, f64)>,
    stale_ms: i64,
}

/// Which samples are requests and which of those are errors.
pub(crate) struct RequestMatcher<'a> {
    pub metric: &'a str,
    pub code_label: &'a str,
    pub error_prefix: &'a str,
}

impl RequestMatcher<'_> {
    pub fn matches_any(&self, samples: &[MetricSample]) -> bool {
        samples.iter().any(|s| s.name == self.metric)
    }
}

impl RequestWindow {
    pub fn new(window: Duration) -> Self {
        RequestWindow {
            instances: BoundedMap::new(MAX_INSTANCES_PER_SERVICE),
            slots: SlotRing::new(window),
            stale_ms: stale_after(window),
        }
    }

    /// Add one scrape of one instance.
    pub fn observe(
        &mut self,
        instance: &str,
        ts: Ts,
        samples: &[MetricSample],
        m: &RequestMatcher,
    ) {
        let inst = self.instances.touch(instance, CounterInstance::default);
        let (mut total, mut errors) = (0.0, 0.0);
        for s in samples.iter().filter(|s| s.name == m.metric) {
            if let Some(inc) = inst.increase(s) {
                total += inc;
                if s.label(m.code_label)
                    .is_some_and(|c| c.starts_with(m.error_prefix))
                {
                    errors += inc;
                }
            }
        }
        let primed = inst.is_primed();
        inst.mark_primed(ts);
        if primed {
            self.slots.add(
                ts,
                || (0.0, 0.0),
                |v| {
                    v.0 += total;
                    v.1 += errors;
                },
            );
        }
    }

    /// (requests, errors) in the window ending at `now`; `None` when no scrape fell in it.
    pub fn totals(&self, now: Ts) -> Option<(f64, f64)> {
        let mut any = false;
        let (mut total, mut errors) = (0.0, 0.0);
        for (t, e) in self.slots.in_window(now) {
            any = true;
            total += t;
            errors += e;
        }
        any.then_some((total, errors))
    }

    /// Forget old slots and instances not seen for a while (scaled in, gone).
    pub fn expire(&mut self, now: Ts) {
        self.slots.expire(now);
        let cutoff = now.0.saturating_sub(self.stale_ms);
        self.instances.retain(|_, i| i.last_seen.0 >= cutoff);
    }

    #[cfg(test)]
    pub fn instances(&self) -> usize {
        self.instances.len()
    }

    pub fn footprint(&self) -> usize {
        self.slots.len()
            + self
                .instances
                .values()
                .map(|i| 1 + i.series())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sample(code: &str, v: f64) -> MetricSample {
        MetricSample {
            name: "reqs".into(),
            labels: BTreeMap::from([("code".into(), code.into())]),
            value: v,
        }
    }

    #[test]
    fn first_scrape_primes_then_deltas() {
        let mut c = CounterInstance::default();
        assert_eq!(c.increase(&sample("200", 100.0)), Some(0.0));
        c.mark_primed(Ts(0));
        assert_eq!(c.increase(&sample("200", 110.0)), Some(10.0));
        assert_eq!(c.increase(&sample("200", 110.0)), Some(0.0));
    }

    #[test]
    fn reset_counts_new_value() {
        let mut c = CounterInstance::default();
        c.increase(&sample("200", 100.0));
        c.mark_primed(Ts(0));
        assert_eq!(c.increase(&sample("200", 3.0)), Some(3.0));
        assert_eq!(c.increase(&sample("200", 5.0)), Some(2.0));
    }

    #[test]
    fn new_series_on_primed_instance_counts_fully() {
        let mut c = CounterInstance::default();
        c.increase(&sample("200", 1.0));
        c.mark_primed(Ts(0));
        assert_eq!(c.increase(&sample("500", 4.0)), Some(4.0));
    }

    #[test]
    fn non_counter_values_are_refused() {
        let mut c = CounterInstance::default();
        c.mark_primed(Ts(0));
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0] {
            assert_eq!(c.increase(&sample("200", v)), None);
        }
        assert_eq!(c.series(), 0);
    }

    #[test]
    fn series_are_capped() {
        let mut c = CounterInstance::default();
        c.mark_primed(Ts(0));
        for i in 0..MAX_SERIES_PER_INSTANCE + 10 {
            c.increase(&sample(&i.to_string(), 1.0));
        }
        assert_eq!(c.series(), MAX_SERIES_PER_INSTANCE);
    }

    #[test]
    fn window_sums_recent_slots_only() {
        let mut r: SlotRing<f64> = SlotRing::new(Duration::from_secs(5));
        for s in 0..20 {
            r.add(Ts(s * 1000), || 0.0, |v| *v += 1.0);
        }
        let sum: f64 = r.in_window(Ts(19_000)).sum();
        assert_eq!(sum, 5.0); // 15..=19
        assert!(r.len() <= 66);
        r.expire(Ts(100_000));
        assert_eq!(r.in_window(Ts(100_000)).count(), 0);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn out_of_order_samples_merge_or_drop() {
        let mut r: SlotRing<f64> = SlotRing::new(Duration::from_secs(5));
        r.add(Ts(10_000), || 0.0, |v| *v += 1.0);
        r.add(Ts(12_000), || 0.0, |v| *v += 1.0);
        r.add(Ts(11_000), || 0.0, |v| *v += 1.0);
        r.add(Ts(10_000), || 0.0, |v| *v += 1.0);
        r.add(Ts(-5_000_000), || 0.0, |v| *v += 1.0);
        let sum: f64 = r.in_window(Ts(12_000)).sum();
        assert_eq!(sum, 4.0);
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut r: SlotRing<f64> = SlotRing::new(Duration::from_secs(u64::MAX / 2));
        r.add(Ts(i64::MAX), || 0.0, |v| *v += 1.0);
        r.add(Ts(i64::MIN), || 0.0, |v| *v += 1.0);
        let _ = r.in_window(Ts(i64::MIN)).count();
        r.expire(Ts(i64::MAX));
        assert!(r.len() <= 66);
    }
}
