//! The small, fixed-size building blocks detectors keep per key: a sliding
//! count, an exact small distinct set, a distinct-count estimate, and the
//! bounded keyed map every detector's table is made of (capped with sampled
//! least-recently-touched eviction, swept by record time). Time here is
//! whole seconds of record time.

use std::hash::Hash;

use indexmap::IndexMap;

/// Record time in whole seconds since the Unix epoch (fits until 2106).
pub type Secs = u32;

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

/// Combines hashes of several parts (order matters).
pub fn h64_parts(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for p in parts {
        h = (h ^ h64(p)).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(17);
    }
    h
}

/// A count over a sliding window, approximated from the current and the
/// previous fixed window (the previous one weighted by how much of it
/// still overlaps the sliding window). 12 bytes; never undercounts a burst
/// that straddles a window boundary by more than the approximation.
#[derive(Clone, Copy, Debug, Default)]
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

/// An exact set of up to `N` distinct 32-bit hashes; `len` stops at `N`
/// (enough to say "at least N"). Reset when its window ends.
#[derive(Clone, Copy, Debug)]
pub struct Distinct<const N: usize> {
    start: Secs,
    len: u8,
    items: [u32; N],
}

impl<const N: usize> Default for Distinct<N> {
    fn default() -> Self {
        Self { start: 0, len: 0, items: [0; N] }
    }
}

impl<const N: usize> Distinct<N> {
    /// Adds `item` seen at `now`; returns the number of distinct items in
    /// the current window (at most `N`).
    pub fn add(&mut self, item: u32, now: Secs, window: Secs) -> usize {
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

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Linear counting over `64 * W` bits: a distinct-count estimate in `8 * W`
/// bytes, accurate to a few percent well past 100 items for W = 4. Kept in
/// 32-bit words so that it packs with the 32-bit fields around it in the
/// client table (a 64-bit alignment cost every client 8 bytes).
#[derive(Clone, Copy, Debug)]
pub struct Sketch<const W: usize> {
    start: Secs,
    bits: [[u32; 2]; W],
}

impl<const W: usize> Default for Sketch<W> {
    fn default() -> Self {
        Self { start: 0, bits: [[0; 2]; W] }
    }
}

impl<const W: usize> Sketch<W> {
    pub fn add(&mut self, hash: u64, now: Secs, window: Secs) -> u32 {
        if now.saturating_sub(self.start) >= window {
            (self.start, self.bits) = (now, [[0; 2]; W]);
        }
        // A finaliser first: FNV's low bits are poor on short inputs.
        let mut z = hash ^ (hash >> 30);
        z = z.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z ^= z >> 27;
        z = z.wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let bit = (z % (64 * W as u64)) as usize;
        self.bits[bit / 64][(bit % 64) / 32] |= 1 << (bit % 32);
        self.estimate()
    }

    pub fn estimate(&self) -> u32 {
        let m = (64 * W) as f64;
        let zero = m - self.bits.iter().flatten().map(|b| b.count_ones() as f64).sum::<f64>();
        if zero < 1.0 {
            // Saturated: the estimate is at least this.
            return (m * m.ln()) as u32;
        }
        (m * (m / zero).ln()).round() as u32
    }
}

/// A bounded map for per-key detector state: at most `cap` keys, and
/// [`Keyed::sweep`] drops keys idle longer than `ttl`.
///
/// Entries live in one dense array (an [`IndexMap`]) rather than a linked
/// LRU list: a touch is a hash probe and one array slot, where relinking
/// list nodes cost a cache miss per neighbour on every exchange. When full,
/// the least recently touched of a sample of keys is evicted (as Redis
/// does); sampling is seeded, so a replay evicts exactly what a live run
/// did. Sweeps walk the whole array, but only once per sweep interval.
pub struct Keyed<K: Hash + Eq, V> {
    map: IndexMap<K, (Secs, V), foldhash::fast::RandomState>,
    cap: usize,
    ttl: Secs,
    rng: u64,
    pub evicted: u64,
}

/// Keys sampled to choose one to evict.
const EVICTION_SAMPLE: usize = 8;

impl<K: Hash + Eq, V> Keyed<K, V> {
    pub fn new(cap: usize, ttl: Secs) -> Self {
        // Not reserved up front: a hash index is touched all over as soon
        // as a few keys land in it, so a reserved table of `cap` would be
        // resident at full size on a quiet host.
        Self {
            map: IndexMap::with_hasher(Default::default()),
            cap: cap.max(1),
            ttl,
            rng: 0x9e37_79b9_7f4a_7c15,
            evicted: 0,
        }
    }

    /// The state for `k`, created with `init` if absent; marks it touched.
    pub fn touch(&mut self, k: K, now: Secs, init: impl FnOnce() -> V) -> &mut V {
        if self.map.len() >= self.cap && !self.map.contains_key(&k) {
            self.evict_one();
        }
        let slot = self.map.entry(k).or_insert_with(|| (now, init()));
        slot.0 = slot.0.max(now);
        &mut slot.1
    }

    fn evict_one(&mut self) {
        let n = self.map.len();
        let mut oldest: Option<(usize, Secs)> = None;
        for _ in 0..EVICTION_SAMPLE.min(n) {
            // xorshift64*: cheap, and the same sequence on every run.
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            let i = (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize;
            let last = self.map[i].0;
            if oldest.is_none_or(|(_, t)| last < t) {
                oldest = Some((i, last));
            }
        }
        if let Some((i, _)) = oldest {
            self.map.swap_remove_index(i);
            self.evicted += 1;
        }
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k).map(|(_, v)| v)
    }

    /// Drops keys not touched for longer than the ttl; returns how many.
    pub fn sweep(&mut self, now: Secs) -> usize {
        let before = self.map.len();
        let ttl = self.ttl;
        self.map.retain(|_, (last, _)| now.saturating_sub(*last) <= ttl);
        before - self.map.len()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, (_, v))| (k, v))
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
        let mut d = Distinct::<3>::default();
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
            s.add(h64(&i.to_le_bytes()), 0, 100);
        }
        let e = s.estimate();
        assert!((135..=165).contains(&e), "{e}");
    }

    #[test]
    fn keyed_is_bounded_and_swept_by_record_time() {
        let mut k: Keyed<u32, u32> = Keyed::new(3, 60);
        for i in 0..5 {
            *k.touch(i, 100 + i, || 0) += 1;
        }
        // A table no larger than the sample evicts exactly the oldest.
        assert_eq!(k.len(), 3);
        assert_eq!(k.evicted, 2);
        let mut keys: Vec<u32> = k.iter().map(|(k, _)| *k).collect();
        keys.sort();
        assert_eq!(keys, [2, 3, 4]);
        k.touch(2, 200, || 0);
        assert_eq!(k.sweep(200), 2);
        assert_eq!(k.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn keyed_evicts_idle_keys_not_busy_ones() {
        // 1000 busy keys touched every second, then a stream of one-off
        // keys: the busy ones survive the churn (a sample of 8 almost
        // always holds a one-off key older than any busy key).
        let mut k: Keyed<u32, ()> = Keyed::new(2000, 3600);
        for t in 0..10 {
            for i in 0..1000 {
                k.touch(i, t, || ());
            }
        }
        for j in 0..20_000u32 {
            let t = 10 + j / 100;
            k.touch(1_000_000 + j, t, || ());
            if j % 100 == 0 {
                for i in 0..1000 {
                    k.touch(i, t, || ());
                }
            }
        }
        assert_eq!(k.len(), 2000);
        let busy = (0..1000).filter(|i| k.get(i).is_some()).count();
        assert!(busy >= 990, "only {busy} of 1000 busy keys kept");
    }

    #[test]
    fn keyed_replays_identically() {
        let run = || {
            let mut k: Keyed<u64, u64> = Keyed::new(100, 60);
            for i in 0..10_000u64 {
                *k.touch(h64(&i.to_le_bytes()) % 500, (i / 50) as Secs, || 0) += 1;
            }
            k.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
