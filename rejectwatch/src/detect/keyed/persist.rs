//! A [`Keyed`] table in a snapshot: its entries in array order (iteration
//! and eviction follow the array, never the hash, so a restored table
//! iterates and evicts as the saved one would have) with the eviction
//! sampler's position and the sweep bookkeeping. The hash index is not
//! saved: the hasher is seeded per process, so it is rebuilt on load.

use std::hash::{BuildHasher, Hash};

use serde::{
    Deserialize, Serialize,
    ser::{SerializeSeq, SerializeStruct},
};

use super::{Keyed, Slot};
use crate::time::Secs;

/// A table as read back from a snapshot, before [`Keyed::restore`] fits it
/// into the table the current configuration built. Field for field what
/// `Keyed`'s `Serialize` writes.
#[derive(Deserialize)]
pub struct Saved<K, V> {
    rng: u64,
    evicted: u64,
    latest: Secs,
    added: u64,
    swept: Secs,
    /// Key, record time of its last touch, value.
    pub slots: Vec<(K, Secs, V)>,
}

impl<K: Hash + Eq + Serialize, V: Serialize> Serialize for Keyed<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Slots<'a, K, V>(&'a super::Chunked<Slot<K, V>>);
        impl<K: Serialize, V: Serialize> Serialize for Slots<'_, K, V> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                // With its length first: a chunked walk cannot say it.
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for x in self.0.iter() {
                    seq.serialize_element(&(&x.key, x.last, &x.value))?;
                }
                seq.end()
            }
        }
        let mut st = s.serialize_struct("Saved", 6)?;
        st.serialize_field("rng", &self.rng)?;
        st.serialize_field("evicted", &self.evicted)?;
        st.serialize_field("latest", &self.latest)?;
        st.serialize_field("added", &(self.added as u64))?;
        st.serialize_field("swept", &self.swept)?;
        st.serialize_field("slots", &Slots(&self.slots))?;
        st.end()
    }
}

impl<K: Hash + Eq, V> Keyed<K, V> {
    /// Replaces the table's entries with saved ones. Those idle past this
    /// table's ttl at the saved record time are dropped (a sweep would
    /// have); past this table's cap (the configuration shrank), the most
    /// recently touched are kept; a key saved twice (a corrupt file) is
    /// kept once. Returns the entries kept.
    pub fn restore(&mut self, saved: Saved<K, V>) -> usize {
        self.index.clear();
        self.slots = super::Chunked::default();
        self.latest = self.latest.max(saved.latest);
        let now = self.latest;
        let mut slots: Vec<(K, Secs, V)> =
            saved.slots.into_iter().filter(|(_, last, _)| now.saturating_sub(*last) <= self.ttl).collect();
        if slots.len() > self.cap {
            // The newest `cap`, in their array order.
            let mut order: Vec<(Secs, usize)> = slots.iter().enumerate().map(|(i, s)| (s.1, i)).collect();
            order.sort_unstable_by(|a, b| b.cmp(a));
            let mut keep = vec![false; slots.len()];
            for &(_, i) in &order[..self.cap] {
                keep[i] = true;
            }
            let mut i = 0;
            slots.retain(|_| {
                i += 1;
                keep[i - 1]
            });
            self.evicted += (order.len() - self.cap) as u64;
        }
        for (key, last, value) in slots {
            let hash = self.hasher.hash_one(&key);
            if self.position(hash, &key).is_some() {
                continue;
            }
            let i = self.slots.len();
            self.slots.push(Slot { key, last, value });
            let (slots, hasher) = (&self.slots, &self.hasher);
            self.index.insert_unique(hash, i as u32, |&j| hasher.hash_one(&slots[j as usize].key));
        }
        // A zero state would leave the xorshift sampler at zero for good.
        self.rng = if saved.rng == 0 { self.rng } else { saved.rng };
        self.evicted += saved.evicted;
        self.added = (saved.added as usize).min(self.slots.len());
        self.swept = saved.swept.min(now);
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<V: Serialize + for<'de> Deserialize<'de>>(k: &Keyed<u32, V>, into: &mut Keyed<u32, V>) -> usize {
        let bytes = bincode::serialize(k).expect("encodes");
        into.restore(bincode::deserialize(&bytes).expect("decodes"))
    }

    #[test]
    fn a_restored_table_holds_iterates_and_evicts_as_the_saved_one() {
        // Under other hash seeds: the index is rebuilt with this process's.
        let mut a = Keyed::<u32, u32>::new(50, 1000);
        for i in 0..400u32 {
            *a.touch(i.wrapping_mul(2_654_435_761) % 97, i, || 0) += i;
        }
        let mut b = Keyed::<u32, u32>::new(50, 1000);
        b.hasher = crate::hashseed::state_of(99);
        assert_eq!(round_trip(&a, &mut b), a.len());
        assert_eq!(a.iter().collect::<Vec<_>>(), b.iter().collect::<Vec<_>>());
        for i in 400..900u32 {
            let key = i.wrapping_mul(2_654_435_761) % 131;
            *a.touch(key, i, || 0) += i;
            *b.touch(key, i, || 0) += i;
            assert_eq!(a.get(&key), b.get(&key));
        }
        assert_eq!((a.evicted, a.len()), (b.evicted, b.len()));
        assert_eq!(a.iter().collect::<Vec<_>>(), b.iter().collect::<Vec<_>>());
    }

    #[test]
    fn expired_entries_go_and_a_smaller_cap_keeps_the_newest() {
        let mut a = Keyed::<u32, u32>::new(100, 50);
        for i in 0..100u32 {
            a.touch(i, 1000 + i, || i);
        }
        // Idle past a ttl of 50 at 1099: 0..=48.
        let mut b = Keyed::<u32, u32>::new(100, 50);
        assert_eq!(round_trip(&a, &mut b), 51);
        assert!(b.get(&48).is_none() && b.get(&49) == Some(&49));
        // A cap of 10 keeps the ten touched last.
        let mut c = Keyed::<u32, u32>::new(10, 500);
        assert_eq!(round_trip(&a, &mut c), 10);
        let mut kept: Vec<u32> = c.iter().map(|(k, _)| *k).collect();
        kept.sort();
        assert_eq!(kept, (90..100).collect::<Vec<_>>());
        assert_eq!(c.evicted, 90);
    }
}
