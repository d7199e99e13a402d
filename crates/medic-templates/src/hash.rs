//! Small, fast, non-cryptographic hashing for tokens (keys are never attacker-chosen sets large
//! enough to matter: every map here is bounded by a cap).

use std::hash::{BuildHasherDefault, Hasher};

const K: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xBF58_476D_1CE4_E5B9;

/// Hashes bytes eight at a time.
#[inline]
pub(crate) fn hash_bytes(b: &[u8]) -> u64 {
    let mut h: u64 = 0x243F_6A88_85A3_08D3 ^ (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(a)).wrapping_mul(K).rotate_left(29);
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        let mut a = [0u8; 8];
        a[..rem.len()].copy_from_slice(rem);
        h = (h ^ u64::from_le_bytes(a)).wrapping_mul(K).rotate_left(29);
    }
    fmix(h)
}

#[inline]
pub(crate) fn fmix(mut h: u64) -> u64 {
    h ^= h >> 31;
    h = h.wrapping_mul(K2);
    h ^= h >> 29;
    h
}

#[inline]
pub(crate) fn combine(h: u64, x: u64) -> u64 {
    (h.rotate_left(5) ^ x).wrapping_mul(K)
}

/// A hasher for keys that are already well-mixed u64 hashes (or small integers).
#[derive(Default, Clone, Copy)]
pub(crate) struct PassHasher(u64);

impl Hasher for PassHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = combine(self.0, hash_bytes(bytes));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = combine(self.0, n);
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = combine(self.0, u64::from(n));
    }
    fn finish(&self) -> u64 {
        fmix(self.0)
    }
}

pub(crate) type PassBuild = BuildHasherDefault<PassHasher>;
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, PassBuild>;
