//! A short list of distinct texts kept per actor (its user agents,
//! products, endpoints, countries), in the order first seen and capped.
//!
//! Every exchange of an actor checks its texts against these lists, and
//! nearly always finds them there. Comparing strings meant a cache miss on
//! each string's heap buffer, a dozen per exchange for an actor that
//! visits a dozen endpoints (memcmp in `Roster::touch_details` was the
//! largest item of the engine's profile). Each entry keeps a hash of its
//! text beside it, so the check reads one small array; the text is only
//! read to output it.

use std::hash::BuildHasher;

use serde::{Serialize, Serializer};

/// Deterministic (replays must group as live runs do); never output.
fn hash(bytes: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x7e47_1157).hash_one(bytes)
}

/// The hash of `parts` as one text, whichever way it is split into parts
/// (a text clipped into one part must match its unclipped parts).
fn hash_of(parts: &[&str]) -> u64 {
    if let [one] = parts {
        return hash(one.as_bytes());
    }
    let mut buf = [0u8; 256];
    let mut n = 0;
    for p in parts {
        let Some(dst) = buf.get_mut(n..n + p.len()) else {
            return hash(parts.concat().as_bytes());
        };
        dst.copy_from_slice(p.as_bytes());
        n += p.len();
    }
    hash(&buf[..n])
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextList(Vec<(u64, Box<str>)>);

impl TextList {
    /// Adds the text made of `parts`, cut to `max` characters, unless it
    /// is there already or the list holds `cap` texts. Allocates only when
    /// it adds.
    pub fn note(&mut self, parts: &[&str], max: usize, cap: usize) {
        if self.0.len() >= cap {
            return;
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        // A char is at least a byte: no more bytes than `max` means no
        // clipping, which is what runs on nearly every exchange.
        if len <= max {
            let h = hash_of(parts);
            if !self.contains(h) {
                self.0.push((h, parts.concat().into()));
            }
            return;
        }
        let clipped: String = parts.iter().flat_map(|p| p.chars()).take(max).collect();
        let h = hash_of(&[&clipped]);
        if !self.contains(h) {
            self.0.push((h, clipped.into()));
        }
    }

    /// Takes in another list's texts (a merge), up to `cap`.
    pub fn absorb(&mut self, other: TextList, cap: usize) {
        for (h, t) in other.0 {
            if self.0.len() >= cap {
                return;
            }
            if !self.contains(h) {
                self.0.push((h, t));
            }
        }
    }

    fn contains(&self, h: u64) -> bool {
        // Equal hashes stand for equal texts: a 64-bit collision could only
        // leave one descriptive text out of one actor's list.
        self.0.iter().any(|(x, _)| *x == h)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(_, t)| &**t)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The texts joined by `sep` (the prospects CSV).
    pub fn join(&self, sep: &str) -> String {
        self.iter().collect::<Vec<_>>().join(sep)
    }
}

impl Serialize for TextList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_in_order_clipped_and_capped() {
        let mut l = TextList::default();
        l.note(&["curl", "/", "8.5"], usize::MAX, 3);
        l.note(&["curl/8.5"], usize::MAX, 3);
        l.note(&["héllo wörld"], 5, 3);
        l.note(&["héllo there"], 5, 3);
        l.note(&["b"], 5, 3);
        l.note(&["c"], 5, 3);
        assert_eq!(l.iter().collect::<Vec<_>>(), ["curl/8.5", "héllo", "b"]);
        assert_eq!(serde_json::to_value(&l).unwrap(), serde_json::json!(["curl/8.5", "héllo", "b"]));

        let mut m = TextList::default();
        m.note(&["b"], 5, 4);
        m.absorb(l, 4);
        assert_eq!(m.join(" "), "b curl/8.5 héllo");
        // A clipped text is found again whichever way it arrives.
        m.note(&["héllo"], 5, 9);
        assert_eq!(m.len(), 3);
    }
}
