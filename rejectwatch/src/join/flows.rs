//! The joiner's flow table: flows by 4-tuple, least recently active first
//! out, with no allocation per flow.
//!
//! A linked LRU (the `lru` crate) allocated a node per flow and freed it
//! when the flow expired; with a flow per request, as behind most proxies,
//! that was two allocator calls and a cold node per exchange, and the
//! largest single cost of the join. Here flows live in one slab, linked by
//! 32-bit slot numbers, and a slot freed by expiry is reused by the next
//! new flow together with its request queue's buffer. The index is a hash
//! table of slot numbers; each slot keeps its key's hash, so unlinking an
//! expired flow compares slot numbers and never rehashes the key.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

const NIL: u32 = u32::MAX;

struct Slot<K, V> {
    key: K,
    hash: u64,
    /// Towards the most recently touched end, and away from it.
    newer: u32,
    older: u32,
    value: V,
}

/// Flows by key, in order of last touch, at most `cap` of them.
pub struct FlowTable<K, V> {
    index: HashTable<u32>,
    slots: Vec<Slot<K, V>>,
    /// Slots whose flow has gone, to be reused.
    free: Vec<u32>,
    newest: u32,
    oldest: u32,
    hasher: crate::hashseed::State,
    cap: usize,
}

/// What a value must do to be kept in a reused slot.
pub trait Recycle: Default {
    /// Empties the value for a new key, keeping what it allocated when
    /// `keep_buffers` (the table holds few unused slots).
    fn recycle(&mut self, keep_buffers: bool);
}

impl<K: Hash + Eq + Copy, V: Recycle> FlowTable<K, V> {
    pub fn new(cap: usize) -> Self {
        Self {
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
            hasher: crate::hashseed::state(),
            cap: cap.clamp(1, (NIL - 1) as usize),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_full(&self) -> bool {
        self.len() >= self.cap
    }

    fn find(&self, hash: u64, key: &K) -> Option<u32> {
        self.index.find(hash, |&i| self.slots[i as usize].key == *key).copied()
    }

    #[cfg(test)]
    pub fn contains(&self, key: &K) -> bool {
        self.find(self.hasher.hash_one(key), key).is_some()
    }

    /// The value for `key`, created empty if absent, now the most recently
    /// touched. The caller makes room first: this does not evict.
    #[cfg(test)]
    pub fn touch(&mut self, key: K) -> &mut V {
        self.touch_with(key, None::<fn(K, &mut V)>).0
    }

    /// [`FlowTable::touch`], and when `key` is new and the table full, the
    /// least recently touched flow goes first, handed to `evict`. One hash
    /// and one probe, where a check for room before the touch took two.
    /// True with the value when `key` is new.
    pub fn touch_making_room(&mut self, key: K, evict: impl FnOnce(K, &mut V)) -> (&mut V, bool) {
        self.touch_with(key, Some(evict))
    }

    fn touch_with(&mut self, key: K, evict: Option<impl FnOnce(K, &mut V)>) -> (&mut V, bool) {
        let hash = self.hasher.hash_one(key);
        let (i, new) = match self.find(hash, &key) {
            Some(i) => {
                self.unlink(i);
                (i, false)
            }
            None => {
                if let Some(evict) = evict
                    && self.is_full()
                {
                    // Rebuilding the index on a shrink keeps `hash` valid:
                    // it is the key's, not a position.
                    self.pop_oldest(evict);
                }
                (self.insert(key, hash), true)
            }
        };
        self.link_newest(i);
        (&mut self.slots[i as usize].value, new)
    }

    fn insert(&mut self, key: K, hash: u64) -> u32 {
        let i = match self.free.pop() {
            Some(i) => {
                let s = &mut self.slots[i as usize];
                (s.key, s.hash) = (key, hash);
                i
            }
            None => {
                self.slots.push(Slot { key, hash, newer: NIL, older: NIL, value: V::default() });
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, i, |&j| {
            let s = &slots[j as usize];
            debug_assert_eq!(s.hash, hasher.hash_one(s.key));
            s.hash
        });
        i
    }

    fn unlink(&mut self, i: u32) {
        let (newer, older) = {
            let s = &self.slots[i as usize];
            (s.newer, s.older)
        };
        match newer {
            NIL => self.newest = older,
            n => self.slots[n as usize].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => self.slots[o as usize].newer = newer,
        }
    }

    fn link_newest(&mut self, i: u32) {
        let old_newest = self.newest;
        {
            let s = &mut self.slots[i as usize];
            (s.newer, s.older) = (NIL, old_newest);
        }
        match old_newest {
            NIL => self.oldest = i,
            n => self.slots[n as usize].newer = i,
        }
        self.newest = i;
    }

    /// The least recently touched flow.
    pub fn oldest(&self) -> Option<(&K, &V)> {
        (self.oldest != NIL).then(|| {
            let s = &self.slots[self.oldest as usize];
            (&s.key, &s.value)
        })
    }

    /// Removes the least recently touched flow, handing it to `f` before
    /// its slot is recycled; false when the table is empty.
    pub fn pop_oldest(&mut self, f: impl FnOnce(K, &mut V)) -> bool {
        self.remove(self.oldest, f)
    }

    /// Removes the most recently touched flow (the one a touch just
    /// returned), recycling its slot.
    pub fn remove_newest(&mut self) {
        self.remove(self.newest, |_, _| {});
    }

    fn remove(&mut self, i: u32, f: impl FnOnce(K, &mut V)) -> bool {
        if i == NIL {
            return false;
        }
        self.unlink(i);
        let hash = self.slots[i as usize].hash;
        if let Ok(e) = self.index.find_entry(hash, |&j| j == i) {
            e.remove();
        }
        // Flows that close as soon as they are answered leave the table
        // nearly empty: a few hundred spare buffers are still worth keeping
        // for the next flows rather than an allocation each.
        let keep_buffers = self.free.len() < self.len().max(1024);
        let s = &mut self.slots[i as usize];
        f(s.key, &mut s.value);
        s.value.recycle(keep_buffers);
        self.free.push(i);
        self.shrink_if_sparse();
        true
    }

    /// After a wave of flows has passed, gives the slab back: rebuilt with
    /// the live flows only, in the same order, when under a quarter full.
    fn shrink_if_sparse(&mut self) {
        let live = self.len();
        if self.slots.len() < 4096 || live * 4 > self.slots.len() {
            return;
        }
        let mut slots = Vec::with_capacity(live * 2);
        let mut i = self.oldest;
        while i != NIL {
            let s = &mut self.slots[i as usize];
            let next = s.newer;
            slots.push(Slot { key: s.key, hash: s.hash, newer: NIL, older: NIL, value: std::mem::take(&mut s.value) });
            i = next;
        }
        let n = slots.len() as u32;
        for (j, s) in slots.iter_mut().enumerate() {
            let j = j as u32;
            s.older = if j == 0 { NIL } else { j - 1 };
            s.newer = if j + 1 == n { NIL } else { j + 1 };
        }
        (self.oldest, self.newest) = if n == 0 { (NIL, NIL) } else { (0, n - 1) };
        self.index.clear();
        self.index.shrink_to(live, |_| 0);
        for (j, s) in slots.iter().enumerate() {
            self.index.insert_unique(s.hash, j as u32, |&k| slots[k as usize].hash);
        }
        self.slots = slots;
        self.free = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, PartialEq)]
    struct V(Vec<u32>);

    impl Recycle for V {
        fn recycle(&mut self, keep: bool) {
            self.0.clear();
            if !keep {
                self.0 = Vec::new();
            }
        }
    }

    fn drain(t: &mut FlowTable<u32, V>) -> Vec<(u32, Vec<u32>)> {
        let mut out = Vec::new();
        while t.pop_oldest(|k, v| out.push((k, std::mem::take(&mut v.0)))) {}
        out
    }

    #[test]
    fn least_recently_touched_leaves_first() {
        let mut t = FlowTable::<u32, V>::new(8);
        for k in [1, 2, 3] {
            t.touch(k).0.push(k * 10);
        }
        t.touch(1).0.push(11);
        assert_eq!(t.oldest().map(|(k, _)| *k), Some(2));
        assert!(t.contains(&3) && !t.contains(&4));
        assert_eq!(drain(&mut t), vec![(2, vec![20]), (3, vec![30]), (1, vec![10, 11])]);
        assert_eq!(t.len(), 0);
        assert!(t.oldest().is_none());
    }

    #[test]
    fn reused_slots_start_empty_and_keep_the_order() {
        let mut t = FlowTable::<u32, V>::new(4);
        let mut evicted = Vec::new();
        for round in 0..1000u32 {
            let k = round % 7;
            let expect = (t.is_full() && !t.contains(&k)).then(|| *t.oldest().unwrap().0);
            t.touch_making_room(k, |old, _| evicted.push(old)).0.0.push(round);
            assert_eq!(evicted.pop(), expect, "round {round}: the oldest flow goes, and only when needed");
            assert!(evicted.is_empty() && t.len() <= 4);
        }
        let out = drain(&mut t);
        let keys: Vec<u32> = out.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, vec![2, 3, 4, 5], "the last four keys touched (999 % 7 = 5), oldest first");
        // Each flow holds only what it was given since it last came in.
        assert_eq!(out[3].1, vec![999]);
    }

    #[test]
    fn a_sparse_table_shrinks_and_stays_consistent() {
        let mut t = FlowTable::<u32, V>::new(100_000);
        for k in 0..20_000u32 {
            t.touch(k).0.push(k);
        }
        while t.len() > 1000 {
            t.pop_oldest(|_, _| {});
        }
        assert!(t.slots.len() < 20_000, "slab shrank to {}", t.slots.len());
        t.touch(19_500).0.push(1);
        let out = drain(&mut t);
        assert_eq!(out.len(), 1000);
        assert_eq!(out[0].0, 19_000);
        assert_eq!(out.last().map(|(k, v)| (*k, v.clone())), Some((19_500, vec![19_500, 1])));
    }
}
