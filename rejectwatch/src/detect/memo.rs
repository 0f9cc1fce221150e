//! What a pattern search over a short text came to, remembered by the text
//! itself: a reject pile repeats its paths (every expired-token retry, every
//! scanner asking for the same `/.env`), and the sensitive-file and
//! injection detectors each ran an Aho-Corasick automaton over the same
//! bytes again for every one of them (~450 instructions a search, on nearly
//! half the exchanges of `bench-detect`'s mix).
//!
//! Exact, not probabilistic: a slot keeps the text's bytes and is believed
//! only when they are equal to the text asked about, so a hash collision,
//! chosen by an attacker or not, costs a search and never changes a
//! verdict. Texts longer than a slot holds are not remembered. Fixed size,
//! direct-mapped: a new text overwrites whatever its slot held.

use std::hash::BuildHasher;

/// Bytes of text a slot holds (a slot is one cache line).
pub const MAX_TEXT: usize = 61;

/// Slots: a power of two. 16 KiB, so that the slots of a busy reject pile
/// stay in the caches beside the tables every exchange touches.
const SLOTS: usize = 256;

/// What a search found: the pattern's index, or none.
const NO_MATCH: u16 = u16::MAX;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Slot {
    found: u16,
    /// Length of the text, plus one (0: an empty slot).
    len: u8,
    text: [u8; MAX_TEXT],
}

const EMPTY: Slot = Slot { found: NO_MATCH, len: 0, text: [0; MAX_TEXT] };

// One cache line a slot, as the docs above say.
const _: () = assert!(size_of::<Slot>() == 64);

pub struct SearchMemo {
    slots: Box<[Slot]>,
    /// Seeded per process: where a text lands is not the sender's to choose.
    hasher: crate::hashseed::State,
}

impl Default for SearchMemo {
    fn default() -> Self {
        Self::with_slots(SLOTS)
    }
}

impl SearchMemo {
    fn with_slots(n: usize) -> Self {
        assert!(n.is_power_of_two());
        Self { slots: vec![EMPTY; n].into_boxed_slice(), hasher: crate::hashseed::state() }
    }

    fn slot(&self, text: &[u8]) -> usize {
        self.hasher.hash_one(text) as usize & (self.slots.len() - 1)
    }

    /// The index of the pattern `search` finds in `text`, remembered from
    /// an earlier call with the same text when its slot still holds it.
    /// Patterns past `u16::MAX - 1` are never remembered.
    pub fn find(&mut self, text: &[u8], search: impl FnOnce() -> Option<usize>) -> Option<usize> {
        if text.len() > MAX_TEXT {
            return search();
        }
        let i = self.slot(text);
        let slot = &mut self.slots[i];
        if usize::from(slot.len) == text.len() + 1 && slot.text[..text.len()] == *text {
            return (slot.found != NO_MATCH).then_some(usize::from(slot.found));
        }
        let found = search();
        match found.map(u16::try_from) {
            Some(Ok(p)) if p != NO_MATCH => slot.found = p,
            None => slot.found = NO_MATCH,
            // Not representable: not remembered.
            Some(_) => return found,
        }
        slot.len = text.len() as u8 + 1;
        slot.text[..text.len()].copy_from_slice(text);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a search answers, counting the searches made.
    fn search(text: &[u8], searches: &mut usize) -> Option<usize> {
        *searches += 1;
        text.windows(4).position(|w| w == b".env")
    }

    #[test]
    fn a_remembered_text_answers_as_the_search_did() {
        let texts = [&b"/.env"[..], b"/api/v1/.env.bak", b"/api/v1/orders", b""];
        // The seed is random, and two of the four texts share one of the 256
        // slots about once in forty seeds; then one evicts the other and
        // both are searched again (as the next test shows). Take a seed that
        // keeps them apart, so the count below is exact.
        let mut m = std::iter::repeat_with(SearchMemo::default)
            .find(|m| {
                let mut slots: Vec<_> = texts.iter().map(|t| m.slot(t)).collect();
                slots.sort_unstable();
                slots.dedup();
                slots.len() == texts.len()
            })
            .expect("repeat_with never ends");
        let mut searches = 0;
        for _ in 0..3 {
            for t in texts {
                assert_eq!(m.find(t, || search(t, &mut searches)), search(t, &mut 0), "{t:?}");
            }
        }
        assert_eq!(searches, 4, "each text searched once");
    }

    #[test]
    fn texts_sharing_a_slot_never_answer_for_each_other() {
        // One slot: every text collides with every other.
        let mut m = SearchMemo::with_slots(1);
        let mut searches = 0;
        let texts: [&[u8]; 4] = [b"/.env", b"/.enx", b"/a/.env", b"/.env/"];
        for _ in 0..2 {
            for t in texts {
                assert_eq!(m.find(t, || search(t, &mut searches)), search(t, &mut 0), "{t:?}");
            }
        }
        assert_eq!(searches, 8, "each text evicted the one before it");
        // A text that is a prefix of the one held is not it.
        assert_eq!(m.find(b"/.env", || search(b"/.env", &mut searches)), Some(1));
        assert_eq!(m.find(b"/.en", || search(b"/.en", &mut searches)), None);
        assert_eq!(searches, 10);
    }

    #[test]
    fn long_texts_and_unrepresentable_answers_are_searched_every_time() {
        let mut m = SearchMemo::default();
        let long = [b'a'; MAX_TEXT + 1];
        let mut searches = 0;
        for _ in 0..2 {
            assert_eq!(m.find(&long, || search(&long, &mut searches)), None);
        }
        let fits = [b'a'; MAX_TEXT];
        for _ in 0..2 {
            assert_eq!(m.find(&fits, || search(&fits, &mut searches)), None);
        }
        for _ in 0..2 {
            assert_eq!(
                m.find(b"/x", || {
                    searches += 1;
                    Some(usize::from(u16::MAX))
                }),
                Some(usize::from(u16::MAX))
            );
        }
        assert_eq!(searches, 2 + 1 + 2);
    }
}
