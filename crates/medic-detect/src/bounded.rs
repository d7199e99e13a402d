//! A string-keyed map with a size cap that evicts the least recently touched entry, so state
//! keyed by names from the input (services, instances) stays bounded whatever arrives.

use std::collections::BTreeMap;

#[derive(Debug)]
pub(crate) struct BoundedMap<V> {
    entries: BTreeMap<String, (V, u64)>,
    cap: usize,
    clock: u64,
}

impl<V> BoundedMap<V> {
    pub fn new(cap: usize) -> Self {
        BoundedMap {
            entries: BTreeMap::new(),
            cap: cap.max(1),
            clock: 0,
        }
    }

    /// The entry for `key`, created with `make` (evicting the stalest entry when full).
    pub fn touch(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        self.clock += 1;
        let clock = self.clock;
        if !self.entries.contains_key(key) && self.entries.len() >= self.cap {
            // Linear scan: only on insertion into a full map, which normal estates never
            // reach; garbage input pays it, and stays bounded.
            let stalest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone());
            if let Some(k) = stalest {
                self.entries.remove(&k);
            }
        }
        let slot = self
            .entries
            .entry(key.to_string())
            .or_insert_with(|| (make(), clock));
        slot.1 = clock;
        &mut slot.0
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
    fn zero_cap_still_holds_one() {
        let mut m = BoundedMap::new(0);
        m.touch("a", || 1);
        m.touch("b", || 2);
        assert_eq!(m.len(), 1);
        assert_eq!(m.get("b"), Some(&2));
    }
}
