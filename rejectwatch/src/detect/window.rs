//! The small, fixed-size building blocks detectors keep per key: a sliding
//! count, an exact small distinct set, a distinct-count estimate, and the
//! deterministic hashes they key by. (The bounded table they are kept in
//! is [`super::keyed`].) Time here is whole seconds of record time.

use serde::{Deserialize, Serialize};

use crate::time::Secs;

/// A deterministic 64-bit hash (FNV-1a): replays must key, sample and
/// order exactly as live runs did, so no per-process random seed.
pub fn h64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The seed of [`key64`]: fixed, so that replays key as live runs did.
const KEY_SEED: u64 = 0x7265_6a65_6374_7721;

/// A deterministic 64-bit hash for keying tables by text (an endpoint, a
/// tool on an endpoint): foldhash, a word at a time, where [`h64`]
/// multiplies once a byte in one dependent chain. The sketches, and the
/// actor ids, keep [`h64`]: what they compute from it shows in findings.
pub fn key64(bytes: &[u8]) -> u64 {
    use std::hash::BuildHasher as _;
    foldhash::fast::FixedState::with_seed(KEY_SEED).hash_one(bytes)
}

/// [`key64`] of several parts together (order matters; each part's
/// length is hashed with it, so no two splits of one text collide).
pub fn key64_parts(parts: &[&[u8]]) -> u64 {
    use std::hash::{BuildHasher as _, Hash as _, Hasher as _};
    let mut h = foldhash::fast::FixedState::with_seed(KEY_SEED).build_hasher();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

/// A count over a sliding window, approximated from the current and the
/// previous fixed window (the previous one weighted by how much of it
/// still overlaps the sliding window). 12 bytes; never undercounts a burst
/// that straddles a window boundary by more than the approximation.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Rate {
    start: Secs,
    cur: u32,
    prev: u32,
}

impl Rate {
    /// Adds one event at `now` and returns the sliding count.
    pub fn add(&mut self, now: Secs, window: Secs) -> u32 {
        self.roll(now, window);
        self.cur = self.cur.saturating_add(1);
        self.count(now, window)
    }

    pub fn count(&self, now: Secs, window: Secs) -> u32 {
        let w = window.max(1) as u64;
        let elapsed = now.saturating_sub(self.start) as u64;
        if elapsed >= 2 * w {
            return 0;
        }
        if elapsed >= w {
            // `roll` has not run for this window yet: `cur` is the previous.
            let overlap = 2 * w - elapsed;
            return (self.cur as u64 * overlap / w) as u32;
        }
        let overlap = w - elapsed;
        self.cur + (self.prev as u64 * overlap / w) as u32
    }

    fn roll(&mut self, now: Secs, window: Secs) {
        let w = window.max(1);
        if self.cur == 0 && self.prev == 0 {
            self.start = now;
            return;
        }
        let elapsed = now.saturating_sub(self.start);
        if elapsed >= 2 * w {
            (self.start, self.cur, self.prev) = (now, 0, 0);
        } else if elapsed >= w {
            (self.start, self.prev, self.cur) = (self.start + w, self.cur, 0);
        }
    }
}

/// An exact set of up to `N` distinct hashes (32- or 16-bit); `len` stops at `N`
/// (enough to say "at least N"). Reset when its window ends.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de> + Copy + Default"))]
pub struct Distinct<T, const N: usize> {
    start: Secs,
    #[serde(deserialize_with = "crate::detect::codec::len_within::<_, N>")]
    len: u8,
    #[serde(with = "crate::detect::codec::array")]
    items: [T; N],
}

impl<T: Copy + Default, const N: usize> Default for Distinct<T, N> {
    fn default() -> Self {
        Self { start: 0, len: 0, items: [T::default(); N] }
    }
}

impl<T: Copy + Default + PartialEq, const N: usize> Distinct<T, N> {
    /// Adds `item` seen at `now`; returns the number of distinct items in
    /// the current window (at most `N`).
    pub fn add(&mut self, item: T, now: Secs, window: Secs) -> usize {
        if now.saturating_sub(self.start) >= window {
            (self.start, self.len) = (now, 0);
        }
        let n = self.len as usize;
        if !self.items[..n].contains(&item) && n < N {
            self.items[n] = item;
            self.len += 1;
        }
        self.len as usize
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// When the current window started.
    pub fn started(&self) -> Secs {
        self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A 16-bit digest of a 64-bit hash, for exact small distinct sets where
/// two of a handful of items sharing a digest (an undercount by one) is
/// rarer than one in ten thousand.
pub fn h16(hash: u64) -> u16 {
    (hash ^ (hash >> 16) ^ (hash >> 32) ^ (hash >> 48)) as u16
}

/// Linear counting over `64 * W` bits: a distinct-count estimate in `8 * W`
/// bytes, accurate to a few percent well past 100 items for W = 4. Kept in
/// 32-bit words so that it packs with the 32-bit fields around it in the
/// client table (a 64-bit alignment cost every client 8 bytes).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Sketch<const W: usize> {
    start: Secs,
    #[serde(with = "crate::detect::codec::array")]
    bits: [[u32; 2]; W],
}

impl<const W: usize> Default for Sketch<W> {
    fn default() -> Self {
        Self { start: 0, bits: [[0; 2]; W] }
    }
}

impl<const W: usize> Sketch<W> {
    const BITS: u32 = 64 * W as u32;

    pub fn insert(&mut self, hash: u64, now: Secs, window: Secs) {
        if now.saturating_sub(self.start) >= window {
            (self.start, self.bits) = (now, [[0; 2]; W]);
        }
        // A finaliser first: FNV's low bits are poor on short inputs.
        let mut z = hash ^ (hash >> 30);
        z = z.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z ^= z >> 27;
        z = z.wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let bit = (z % Self::BITS as u64) as usize;
        self.bits[bit / 64][(bit % 64) / 32] |= 1 << (bit % 32);
    }

    pub fn estimate(&self) -> u32 {
        Self::estimate_for(self.ones())
    }

    /// Bits set: the estimate grows with it, so a detector compares this
    /// with [`Sketch::ones_beyond`] of its threshold and takes the
    /// logarithm only for the few sketches that may be past it.
    pub fn ones(&self) -> u32 {
        self.bits.iter().flatten().map(|b| b.count_ones()).sum()
    }

    fn estimate_for(ones: u32) -> u32 {
        let m = Self::BITS as f64;
        let zero = m - ones as f64;
        if zero < 1.0 {
            // Saturated: the estimate is at least this.
            return (m * m.ln()) as u32;
        }
        (m * (m / zero).ln()).round() as u32
    }

    /// The fewest bits set at which the estimate exceeds `n`: below it,
    /// it does not (`u32::MAX` if it never does).
    pub fn ones_beyond(n: u32) -> u32 {
        (0..=Self::BITS).find(|&k| Self::estimate_for(k) > n).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_slides() {
        let mut r = Rate::default();
        for t in 0..100 {
            r.add(1000 + t, 100);
        }
        assert_eq!(r.count(1099, 100), 100);
        // Half of the previous window still overlaps.
        assert_eq!(r.add(1150, 100), 51);
        assert_eq!(r.count(1400, 100), 0);
        assert_eq!(r.add(1400, 100), 1);
    }

    #[test]
    fn distinct_caps_and_resets() {
        let mut d = Distinct::<u32, 3>::default();
        assert_eq!(d.add(1, 0, 10), 1);
        assert_eq!(d.add(1, 1, 10), 1);
        assert_eq!(d.add(2, 2, 10), 2);
        assert_eq!(d.add(3, 3, 10), 3);
        assert_eq!(d.add(4, 4, 10), 3);
        assert_eq!(d.add(5, 20, 10), 1);
    }

    #[test]
    fn sketch_estimates() {
        let mut s = Sketch::<4>::default();
        for i in 0..150u64 {
            s.insert(h64(&i.to_le_bytes()), 0, 100);
        }
        let e = s.estimate();
        assert!((135..=165).contains(&e), "{e}");
    }

    #[test]
    fn a_sketch_below_the_bits_beyond_n_estimates_at_most_n() {
        for n in [0, 1, 20, 100, 500, 1418, 1419, 5000] {
            let k = Sketch::<4>::ones_beyond(n);
            for ones in 0..=256 {
                let e = Sketch::<4>::estimate_for(ones);
                assert!(ones >= k || e <= n, "n {n}: {ones} bits estimate {e} but the gate is {k}");
            }
        }
        assert_eq!(Sketch::<4>::ones_beyond(5000), u32::MAX);
    }
}
