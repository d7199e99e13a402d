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

/// A faster hash for the miner's in-memory shape cache (never persisted, so it may change):
/// whole-word loads, one 64×64→128 multiply per 16 bytes.
#[inline]
pub(crate) fn hash_fast(b: &[u8]) -> u64 {
    let n = b.len();
    let r8 = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(a)
    };
    let r4 = |i: usize| {
        let mut a = [0u8; 4];
        a.copy_from_slice(&b[i..i + 4]);
        u64::from(u32::from_le_bytes(a))
    };
    let seed = K ^ (n as u64).wrapping_mul(K2);
    let (x, y) = if n >= 16 {
        let mut h = seed;
        let mut i = 0;
        while i + 16 < n {
            h = mum(r8(i) ^ K, r8(i + 8) ^ h);
            i += 16;
        }
        (r8(n - 16) ^ h, r8(n - 8))
    } else if n >= 8 {
        (r8(0), r8(n - 8))
    } else if n >= 4 {
        (r4(0), r4(n - 4))
    } else if n > 0 {
        (
            u64::from(b[0]) << 16 | u64::from(b[n >> 1]) << 8 | u64::from(b[n - 1]),
            0,
        )
    } else {
        (0, 0)
    };
    mum(mum(x ^ K, y ^ seed) ^ K2, seed)
}

#[inline(always)]
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
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
