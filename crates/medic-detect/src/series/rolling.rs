//! A fixed-size sliding window kept both in arrival order and sorted, so any quantile is O(1)
//! and a push is O(log n) search plus a short memmove: cheap enough for millions of points a
//! second at the window sizes used here (≤ 256). Values are stored as `f32`: half the memory
//! per series, and 7 significant digits are plenty for quantiles of a metric.

#[derive(Clone, Debug)]
pub struct Rolling {
    ring: Vec<f32>,
    head: usize,
    sorted: Vec<f32>,
    cap: usize,
}

impl Rolling {
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Rolling {
            ring: Vec::with_capacity(cap),
            head: 0,
            sorted: Vec::with_capacity(cap),
            cap,
        }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.sorted.len() == self.cap
    }

    /// Add a finite value, evicting the oldest when full. Non-finite values are ignored: the
    /// callers drop them earlier, and one NaN would break the sort order for good.
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        let x = x.clamp(f64::from(f32::MIN), f64::from(f32::MAX)) as f32;
        if self.ring.len() == self.cap {
            let old = std::mem::replace(&mut self.ring[self.head], x);
            self.head = (self.head + 1) % self.cap;
            let i = self.sorted.partition_point(|v| *v < old);
            if i < self.sorted.len() {
                self.sorted.remove(i);
            }
        } else {
            self.ring.push(x);
        }
        let j = self.sorted.partition_point(|v| *v < x);
        self.sorted.insert(j, x);
    }

    /// The `q` quantile (nearest rank), `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let i = ((q.clamp(0.0, 1.0) * (n - 1) as f64).round() as usize).min(n - 1);
        self.sorted.get(i).copied().map(f64::from)
    }

    /// Median and robust sigma (IQR / 1.349).
    pub fn center_scale(&self) -> Option<(f64, f64)> {
        let m = self.quantile(0.5)?;
        let iqr = self.quantile(0.75)? - self.quantile(0.25)?;
        Some((m, iqr / 1.349))
    }

    /// Values oldest first.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let (a, b) = self.ring.split_at(self.head.min(self.ring.len()));
        b.iter().chain(a.iter()).map(|&v| f64::from(v))
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        (self.ring.capacity() + self.sorted.capacity()) * std::mem::size_of::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_cap_values_sorted() {
        let mut r = Rolling::new(5);
        for x in [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 0.0] {
            r.push(x);
        }
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![4.0, 2.0, 3.0, 10.0, 0.0]);
        assert_eq!(r.quantile(0.5), Some(3.0));
        assert_eq!(r.quantile(0.0), Some(0.0));
        assert_eq!(r.quantile(1.0), Some(10.0));
        r.push(f64::NAN);
        assert_eq!(r.len(), 5);
    }
}
