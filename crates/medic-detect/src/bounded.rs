//! A string-keyed map with a size cap that evicts the least recently touched entry, so state
//! keyed by names from the input (services, instances) stays bounded whatever arrives.

use std::collections::{BTreeMap, VecDeque};

#[derive(Debug)]
pub(crate) struct BoundedMap<V> {
    entries: BTreeMap<String, (V, u64)>,
    /// Eviction candidates, oldest first, with the clock they were queued at. An entry touched
    /// since is queued again instead of evicted, so eviction is O(1) amortised.
    queue: VecDeque<(u64, String)>,
    cap: usize,
    clock: u64,
}

impl<V> BoundedMap<V> {
    pub fn new(cap: usize) -> Self {
        BoundedMap {
            entries: BTreeMap::new(),
            queue: VecDeque::new(),
            cap: cap.max(1),
            clock: 0,
        }
    }

    /// The entry for `key`, created with `make` (evicting the stalest entry when full).
    pub fn touch(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        self.clock += 1;
        let clock = self.clock;
        if !self.entries.contains_key(key) {
            while self.entries.len() >= self.cap {
                self.evict_one();
            }
            self.queue.push_back((clock, key.to_string()));
            if self.queue.len() > 2 * self.cap + 16 {
                self.rebuild_queue();
            }
        }
        let slot = self
            .entries
            .entry(key.to_string())
            .or_insert_with(|| (make(), clock));
        slot.1 = clock;
        &mut slot.0
    }

    fn evict_one(&mut self) {
        while let Some((queued, k)) = self.queue.pop_front() {
            match self.entries.get(&k) {
                Some((_, touched)) if *touched == queued => {
                    self.entries.remove(&k);
                    return;
                }
                Some((_, touched)) => {
                    let touched = *touched;
                    self.queue.push_back((touched, k));
                }
                None => {}
            }
        }
        // The queue lost track (cannot happen while every insert is queued): start over.
        self.rebuild_queue();
        if let Some(k) = self.queue.pop_front().map(|(_, k)| k) {
            self.entries.remove(&k);
        }
    }

    /// Re-queue every entry in touch order, dropping leftovers of removed entries.
    fn rebuild_queue(&mut self) {
        let mut all: Vec<(u64, String)> = self
            .entries
            .iter()
            .map(|(k, (_, t))| (*t, k.clone()))
            .collect();
        all.sort_unstable();
        self.queue = all.into();
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key).map(|(v, _)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(v, _)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.entries.iter().map(|(k, (v, _))| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut V)> {
        self.entries.iter_mut().map(|(k, (v, _))| (k, v))
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values().map(|(v, _)| v)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut V) -> bool) {
        self.entries.retain(|k, (v, _)| keep(k, v));
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_touched() {
        let mut m = BoundedMap::new(2);
        *m.touch("a", || 0) += 1;
        *m.touch("b", || 0) += 1;
        *m.touch("a", || 0) += 1;
        m.touch("c", || 0);
        assert_eq!(m.len(), 2);
        assert_eq!(m.get("a"), Some(&2));
        assert_eq!(m.get("b"), None);
        assert!(m.get("c").is_some());
    }

    #[test]
    fn churn_keeps_queue_and_map_bounded() {
        let mut m = BoundedMap::new(8);
        for i in 0..10_000u32 {
            m.touch("hot", || 0);
            m.touch(&format!("k{}", i % 50), || 0);
            if i % 7 == 0 {
                m.retain(|k, _| !k.ends_with('3'));
            }
            assert!(m.len() <= 8);
            assert!(m.queue.len() <= 2 * 8 + 16);
        }
        assert!(m.get("hot").is_some(), "the most used key was evicted");
    }

    #[test]
    fn zero_cap_still_holds_one() {
        let mut m = BoundedMap::new(0);
        m.touch("a", || 1);
        m.touch("b", || 2);
        assert_eq!(m.len(), 1);
        assert_eq!(m.get("b"), Some(&2));
    }
}
