//! The bounded keyed table every detector's state is kept in, the client
//! table included: capped with sampled least-recently-touched eviction,
//! swept by record time, and laid out for a million keys (a 32-bit hash
//! index over chunked slots: no per-key hash or 64-bit position, and no
//! copy of the whole table when it grows).

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use super::chunked::Chunked;
use crate::time::Secs;

mod persist;
pub use persist::Saved;

/// A bounded map for per-key detector state: at most `cap` keys, and
/// [`Keyed::sweep`] drops keys idle longer than `ttl`.
///
/// Entries live in one dense array (in chunks) indexed by a hash table of
/// 32-bit positions, rather than in a linked LRU list: a touch is a hash
/// probe and one array slot, where relinking list nodes cost a cache miss
/// per neighbour on every exchange. (An `IndexMap` has the same shape but
/// keeps each key's 64-bit hash and a 64-bit position: 16 bytes a client
/// that the client table cannot afford.) When full, the least recently
/// touched of a sample of keys is evicted (as Redis does); sampling is
/// seeded, so a replay evicts exactly what a live run did. Keys are hashed
/// with a per-process seed: they are attacker-chosen, and iteration
/// follows the array, never the hash.
///
/// Expiry is exact on access: a key idle past the ttl reads as absent and
/// a touch starts it afresh, whether or not a sweep has dropped it yet. So
/// sweeping only gives memory back, and a sweep (a walk of the whole
/// array) runs only once the table has grown by a quarter since the last
/// one, or a ttl has passed: a few slot visits per new key. Swept on a
/// fixed record-time interval instead, a replay of days of a quiet API
/// walked every table once a minute of its time whatever its traffic
/// (the seven-actor scenario spent a third of its time in sweeps).
pub struct Keyed<K: Hash + Eq, V> {
    index: HashTable<u32>,
    slots: Chunked<Slot<K, V>>,
    hasher: crate::hashseed::State,
    cap: usize,
    ttl: Secs,
    rng: u64,
    pub evicted: u64,
    /// The newest record time seen (touches and sweeps): what `get` and
    /// `iter` judge expiry against.
    latest: Secs,
    /// Keys added since the last sweep, and when that was.
    added: usize,
    swept: Secs,
}

struct Slot<K, V> {
    key: K,
    /// Record time of the last touch.
    last: Secs,
    value: V,
}

/// Keys sampled to choose one to evict.
const EVICTION_SAMPLE: usize = 8;

impl<K: Hash + Eq, V> Keyed<K, V> {
    pub fn new(cap: usize, ttl: Secs) -> Self {
        // Not reserved up front: a hash index is touched all over as soon
        // as a few keys land in it, so a reserved table of `cap` would be
        // resident at full size on a quiet host.
        Self {
            index: HashTable::new(),
            slots: Chunked::default(),
            hasher: crate::hashseed::state(),
            cap: cap.clamp(1, u32::MAX as usize),
            ttl,
            rng: 0x9e37_79b9_7f4a_7c15,
            evicted: 0,
            latest: 0,
            added: 0,
            swept: 0,
        }
    }

    fn position(&self, hash: u64, k: &K) -> Option<usize> {
        self.index.find(hash, |&i| self.slots[i as usize].key == *k).map(|&i| i as usize)
    }

    /// Whether a key last touched at `last` is idle past the ttl at `now`.
    fn idle(&self, last: Secs, now: Secs) -> bool {
        now.saturating_sub(last) > self.ttl
    }

    /// Where `k`'s live entry is: one idle past the ttl is as good as
    /// swept.
    fn live(&self, k: &K) -> Option<usize> {
        self.position(self.hasher.hash_one(k), k).filter(|&i| !self.idle(self.slots[i].last, self.latest))
    }

    /// The state for `k`, created with `init` if absent or idle past the
    /// ttl (as a sweep would have dropped it); marks it touched.
    pub fn touch(&mut self, k: K, now: Secs, init: impl FnOnce() -> V) -> &mut V {
        self.touch_at(None, k, now, init)
    }

    /// [`Keyed::touch`], told where [`Keyed::prefetch`] guessed `k` is:
    /// believed if that slot holds `k` (it may hold another key whose tag
    /// matched, or a touch since may have evicted `k` or moved another key
    /// there), which spares the hash and the walk of the index.
    pub fn touch_at(&mut self, at: Option<usize>, k: K, now: Secs, init: impl FnOnce() -> V) -> &mut V {
        self.latest = self.latest.max(now);
        let found = match at.filter(|&i| i < self.slots.len() && self.slots[i].key == k) {
            Some(i) => Ok(i),
            None => {
                let hash = self.hasher.hash_one(&k);
                self.position(hash, &k).ok_or(hash)
            }
        };
        let i = match found {
            Ok(i) => {
                if self.idle(self.slots[i].last, now) {
                    self.slots[i].value = init();
                }
                i
            }
            Err(hash) => {
                self.added += 1;
                if self.slots.len() >= self.cap {
                    self.evict_one();
                }
                let i = self.slots.len();
                self.slots.push(Slot { key: k, last: now, value: init() });
                let (slots, hasher) = (&self.slots, &self.hasher);
                self.index.insert_unique(hash, i as u32, |&j| hasher.hash_one(&slots[j as usize].key));
                i
            }
        };
        let slot = &mut self.slots[i];
        slot.last = slot.last.max(now);
        &mut slot.value
    }

    fn evict_one(&mut self) {
        let n = self.slots.len();
        let mut oldest: Option<(usize, Secs)> = None;
        for _ in 0..EVICTION_SAMPLE.min(n) {
            // xorshift64*: cheap, and the same sequence on every run.
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            let i = (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize;
            let last = self.slots[i].last;
            if oldest.is_none_or(|(_, t)| last < t) {
                oldest = Some((i, last));
            }
        }
        if let Some((i, _)) = oldest {
            self.remove_at(i);
            self.evicted += 1;
        }
    }

    /// Removes the entry at `i`, moving the last one into its place.
    fn remove_at(&mut self, i: usize) {
        let hash = self.hasher.hash_one(&self.slots[i].key);
        if let Ok(entry) = self.index.find_entry(hash, |&j| j as usize == i) {
            entry.remove();
        }
        let last = self.slots.len() - 1;
        if i != last {
            let moved = self.hasher.hash_one(&self.slots[last].key);
            if let Some(j) = self.index.find_mut(moved, |&j| j as usize == last) {
                *j = i as u32;
            }
        }
        self.slots.swap_remove(i);
    }

    /// `k`'s hash, as [`Keyed::prefetch`] and [`IndexLines`] take it.
    pub fn hash(&self, k: &K) -> u64 {
        self.hasher.hash_one(k)
    }

    /// Asks the CPU to fetch the slot of the key whose [`Keyed::hash`]
    /// this is into cache, without waiting for it: called well before
    /// [`Keyed::touch`], it takes the slot's cache miss off the critical
    /// path. (The index probe compares the 7-bit tags only; each candidate
    /// slot is prefetched, never read.) Returns the first candidate: nearly
    /// always the key's slot, for [`Keyed::touch_at`].
    pub fn prefetch(&self, hash: u64) -> Option<usize> {
        let mut first = None;
        let _ = self.index.find(hash, |&i| {
            crate::prefetch::read(self.slots.ptr(i as usize));
            first = first.or(Some(i as usize));
            false
        });
        first
    }

    /// Where the index is now, for prefetching the part of it a lookup
    /// reads first ([`IndexLines::prefetch`]) until the next key is added.
    pub fn index_lines(&self) -> IndexLines {
        IndexLines::of(&self.index)
    }

    /// The state in slot `i`, whatever key it holds: for following its
    /// pointers into cache once [`Keyed::prefetch`] brought the slot in.
    pub fn peek(&self, i: usize) -> Option<&V> {
        (i < self.slots.len()).then(|| &self.slots[i].value)
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.live(k).map(|i| &self.slots[i].value)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let i = self.live(k)?;
        Some(&mut self.slots[i].value)
    }

    /// Drops keys not touched for longer than the ttl, if the table has
    /// grown by a quarter since the last sweep or a ttl has passed since
    /// it; returns how many. A table a wave of one-off keys grew gives its
    /// memory back once the wave has passed.
    pub fn sweep(&mut self, now: Secs) -> usize {
        self.latest = self.latest.max(now);
        if self.added * 4 < self.slots.len() && now.saturating_sub(self.swept) <= self.ttl {
            return 0;
        }
        (self.added, self.swept) = (0, now);
        let before = self.slots.len();
        let mut i = 0;
        while i < self.slots.len() {
            if now.saturating_sub(self.slots[i].last) > self.ttl {
                self.remove_at(i);
            } else {
                i += 1;
            }
        }
        let len = self.slots.len();
        self.slots.trim();
        if self.index.capacity() > 4 * len.max(256) {
            let (slots, hasher) = (&self.slots, &self.hasher);
            self.index.shrink_to(2 * len, |&j| hasher.hash_one(&slots[j as usize].key));
        }
        before - len
    }

    /// Keys held, counting those idle past the ttl that no sweep has
    /// dropped yet (their memory is still held).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The most keys it holds.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The live entries, in array order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.slots.iter().filter(|s| !self.idle(s.last, self.latest)).map(|s| (&s.key, &s.value))
    }
}

/// The keys of the `n` items with the smallest order (one pass, no sort):
/// how the capped tables that cannot sample make room in batches.
pub fn smallest<O: Ord, K>(items: impl Iterator<Item = (O, K)>, n: usize) -> Vec<K> {
    if n == 0 {
        return Vec::new();
    }
    let mut v: Vec<(O, K)> = items.collect();
    if n < v.len() {
        v.select_nth_unstable_by(n - 1, |a, b| a.0.cmp(&b.0));
        v.truncate(n);
    }
    v.into_iter().map(|(_, k)| k).collect()
}

/// Where a lookup in a hash index starts reading, so that the lookup's own
/// two cache misses (its first group of tags, then the slot numbers beside
/// them) can be taken a step ahead, for a batch of keys at once: the walks
/// of the client index were half the batch pass's own time under perf,
/// stalled on those two loads, and [`Keyed::prefetch`] itself waited on
/// them before it could prefetch the slot.
///
/// hashbrown does not give these addresses, so they are worked out from
/// the layout its source documents (`RawTableInner::data_end`): `n`
/// control bytes start where the data ends, bucket `i`'s `u32` lies
/// `4 * (i + 1)` bytes before that, and a lookup of `hash` reads the 16
/// tags from `hash & (n - 1)` on, then the slot numbers of those buckets.
/// Only ever prefetched, never read: were the layout to change, the hints
/// would miss and cost a few instructions, no more (the test below checks
/// the data side of it against hashbrown's own answers).
#[derive(Clone, Copy)]
pub struct IndexLines {
    /// Where the data ends and the control bytes start (0: an empty index).
    end: usize,
    mask: usize,
}

/// Tags a lookup reads at once (hashbrown's SSE2 group).
const GROUP: usize = 16;

impl IndexLines {
    fn of(index: &HashTable<u32>) -> Self {
        let end = index
            .iter_buckets()
            .next()
            .and_then(|i| index.get_bucket(i).map(|b| std::ptr::from_ref(b).addr() + 4 * (i + 1)));
        match end {
            Some(end) => Self { end, mask: index.num_buckets() - 1 },
            None => Self { end: 0, mask: 0 },
        }
    }

    /// Where the slot number of bucket `i` is.
    fn bucket(&self, i: usize) -> usize {
        self.end - 4 * (i + 1)
    }

    /// Prefetches the tags and slot numbers a lookup of `hash` reads first.
    #[inline(always)]
    pub fn prefetch(&self, hash: u64) {
        if self.end == 0 {
            return;
        }
        let pos = hash as usize & self.mask;
        let last = (pos + GROUP - 1) & self.mask;
        prefetch_addr(self.end + pos, GROUP);
        // The group's slot numbers run downwards from bucket `pos`; past
        // the last bucket a group wraps to the first.
        if last >= pos {
            prefetch_addr(self.bucket(last), 4 * GROUP);
        } else {
            prefetch_addr(self.bucket(self.mask), 4 * (self.mask - pos + 1));
            prefetch_addr(self.bucket(last), 4 * (last + 1));
        }
    }
}

/// A prefetch hint for the cache lines of `len` bytes at address `addr`
/// (at most 64: its first and last byte name them all), which may be no
/// object at all (see [`IndexLines`]).
#[inline(always)]
fn prefetch_addr(addr: usize, len: usize) {
    debug_assert!((1..=64).contains(&len));
    for at in [addr, addr + len - 1] {
        crate::prefetch::line(std::ptr::without_provenance(at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{
        client::{ClientKey, ClientState},
        window::h64,
    };

    #[test]
    fn a_touch_told_a_stale_place_still_finds_its_own_key() {
        // Under many seeds: which keys share an index tag depends on it,
        // and this test once held for most seeds only.
        for seed in 0..64 {
            told_a_stale_place(seed);
        }
    }

    fn told_a_stale_place(seed: u64) {
        // Twin tables, one touched plainly, the other told a place: the
        // prefetch's guess, a guess made a step before (since moved by an
        // eviction's swap, or evicted), another key's place, or past the
        // end. Both must hold and return the same.
        let mut plain = Keyed::<u32, u32>::new(8, 50);
        let mut told = Keyed::<u32, u32>::new(8, 50);
        plain.hasher = crate::hashseed::state_of(seed);
        told.hasher = crate::hashseed::state_of(seed);
        let mut earlier = None;
        for step in 0..2000u32 {
            let key = step.wrapping_mul(2_654_435_761) >> 27; // 0..32
            let now = step / 4;
            let at = match step % 4 {
                0 => told.prefetch(told.hash(&key)),
                1 => earlier,
                2 => Some(step as usize % 12),
                _ => None,
            };
            let a = plain.touch(key, now, || key * 1000);
            *a += 1;
            let b = told.touch_at(at, key, now, || key * 1000);
            *b += 1;
            assert_eq!(*a, *b, "seed {seed} step {step}: key {key} told {at:?}");
            earlier = told.prefetch(told.hash(&((key + 1) % 32)));
            assert_eq!((plain.len(), plain.evicted), (told.len(), told.evicted), "seed {seed} step {step}");
        }
        // The guess is the first slot whose index tag (the hash's top seven
        // bits) matches: the key's own, unless a key whose tag is the same
        // came first, which touch_at then sees through.
        let tag = |h: u64| h >> 57;
        for key in 0..32 {
            if let Some(at) = told.prefetch(told.hash(&key)).filter(|_| told.get(&key).is_some()) {
                let there = told.slots[at].key;
                assert!(
                    there == key || tag(told.hash(&there)) == tag(told.hash(&key)),
                    "seed {seed}: key {key}'s guess holds {there}, whose tag differs"
                );
            }
        }
    }

    #[test]
    fn a_client_slot_spans_the_lines_its_prefetch_asks_for() {
        // The client table's slot, whose lines the prefetch is for.
        assert_eq!(size_of::<Slot<ClientKey, ClientState>>(), 176);
        assert_eq!(crate::prefetch::lines(4096 + 32, 176).count(), 4);
    }

    #[test]
    fn index_lines_are_where_a_lookup_reads() {
        let empty = Keyed::<u32, u32>::new(10, 60);
        assert_eq!(empty.index_lines().end, 0, "an empty index has no lines");
        empty.index_lines().prefetch(7);
        for n in [1u32, 3, 14, 15, 16, 17, 100, 5_000, 70_000] {
            let mut k = Keyed::<u32, u32>::new(1 << 20, 60);
            for key in 0..n {
                k.touch(key.wrapping_mul(2_654_435_761), 0, || 0);
            }
            let lines = k.index_lines();
            let mut in_first_group = 0;
            for key in (0..n).map(|key| key.wrapping_mul(2_654_435_761)) {
                let hash = k.hash(&key);
                let at = k.index.find_bucket_index(hash, |&j| k.slots[j as usize].key == key);
                let at = at.unwrap_or_else(|| panic!("{n} keys: {key} not in the index"));
                let bucket = k.index.get_bucket(at).map(|b| std::ptr::from_ref(b).addr());
                assert_eq!(Some(lines.bucket(at)), bucket, "{n} keys: bucket {at} is not where hashbrown keeps it");
                // Buckets a group apart from where the probe starts are
                // read (and prefetched) first.
                if at.wrapping_sub(hash as usize & lines.mask) & lines.mask < GROUP {
                    in_first_group += 1;
                }
                lines.prefetch(hash);
            }
            assert!(in_first_group * 10 >= n * 9, "{n} keys: only {in_first_group} in their probe's first group");
        }
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
    fn keys_idle_past_the_ttl_are_gone_before_any_sweep() {
        let mut k: Keyed<u32, u32> = Keyed::new(100, 60);
        *k.touch(1, 100, || 0) += 5;
        *k.touch(2, 150, || 0) += 7;
        // Key 1 is 61 s idle at 161: absent to readers, fresh to a touch,
        // though nothing has swept it.
        k.touch(3, 161, || 0);
        assert_eq!((k.get(&1), k.get(&2)), (None, Some(&7)));
        assert_eq!(k.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(*k.touch(1, 161, || 0), 0);
        assert_eq!(*k.touch(2, 161, || 0), 7, "idle for less than the ttl");
        assert_eq!(k.len(), 3);
    }

    #[test]
    fn sweeps_wait_for_growth_or_a_ttl() {
        let mut k: Keyed<u32, ()> = Keyed::new(10_000, 3600);
        for i in 0..1000 {
            k.touch(i, 0, || ());
        }
        assert_eq!(k.sweep(100), 0);
        // The 1000 keys idle past the ttl, then 100 new ones: not yet
        // worth a walk of 1100 slots...
        for i in 0..100 {
            k.touch(10_000 + i, 3700, || ());
        }
        assert_eq!(k.sweep(3700), 0);
        assert_eq!((k.len(), k.iter().count()), (1100, 100));
        // ...until the table has grown by a quarter since the last walk.
        for i in 100..350 {
            k.touch(10_000 + i, 3700, || ());
        }
        assert_eq!(k.sweep(3700), 1000);
        assert_eq!(k.len(), 350);
        // A quiet table is still walked once a ttl has passed.
        assert_eq!(k.sweep(3700 + 3600), 0);
        assert_eq!(k.sweep(3700 + 3601), 350);
        assert!(k.is_empty());
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
    fn keyed_index_follows_removals() {
        // Over several chunks, after evictions and sweeps have moved
        // entries around: every key iteration sees is found, holding its
        // own value, and no other key is.
        // Values big enough that 2500 of them take several chunks.
        let mut k: Keyed<u64, [u64; 8]> = Keyed::new(2500, 50);
        for i in 0..30_000u64 {
            let key = h64(&i.to_le_bytes()) % 4000;
            assert_eq!(k.touch(key, (i / 100) as Secs, || [key * 3; 8])[7], key * 3);
            if i % 997 == 0 {
                k.sweep((i / 100) as Secs);
            }
        }
        assert!(k.evicted > 0 && k.len() > 2 * Chunked::<Slot<u64, [u64; 8]>>::PER, "{} {}", k.evicted, k.len());
        let kept: std::collections::HashSet<u64> = k
            .iter()
            .map(|(key, v)| {
                assert_eq!(*v, [key * 3; 8]);
                *key
            })
            .collect();
        assert_eq!(kept.len(), k.len());
        for key in 0..4000 {
            assert_eq!(k.get(&key).map(|v| v[0]), kept.contains(&key).then_some(key * 3), "key {key}");
        }
        // Idle, then swept empty: the chunks go.
        assert_eq!(k.sweep(10_000), kept.len());
        assert!(k.is_empty() && k.slots.chunks() <= 1);
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
