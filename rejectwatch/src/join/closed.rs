//! Where recently closed flows left off, so that a segment retransmitted
//! after its flow closed is still recognised.
//!
//! The joiner closes a flow as soon as every request on it is answered:
//! behind a proxy almost every flow carries one exchange, and keeping each
//! for the response timeout after its answer held tens of thousands of
//! finished flows, with their queues, out of cache. What a finished flow
//! still needs is only the stream positions past its last request and
//! response, to ignore a retransmission (a response whose ACK was lost is
//! sent again). Those are kept here, in a fixed, direct-mapped table: a
//! closed flow's entry lasts until another closed flow takes its slot or the
//! response timeout passes. A retransmission that arrives later than that
//! is counted as an unmatched response, the fate the timeout already gave
//! a flow that stayed idle.

use std::hash::BuildHasher;

use crate::time::Nanos;

/// Stream positions just past the last request and response segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ends {
    pub req: Option<u32>,
    pub resp: Option<u32>,
}

#[derive(Clone, Copy, Default)]
struct Entry {
    /// The flow's key hash, or 0 for an empty slot.
    tag: u64,
    closed_at: Nanos,
    ends: Ends,
}

/// Slots: 4 096 entries of 32 bytes, 128 KiB, cover the closes of a
/// fraction of a second at 10 000 exchanges/s, the span in which TCP
/// retransmits a segment whose acknowledgement was lost (200 ms at least).
const SLOTS: usize = 4096;

pub struct Closed {
    slots: Box<[Entry]>,
    hasher: foldhash::fast::FixedState,
}

impl Closed {
    pub fn new() -> Self {
        Self {
            slots: vec![Entry::default(); SLOTS].into_boxed_slice(),
            hasher: foldhash::fast::FixedState::with_seed(0x636c_6f73_6564),
        }
    }

    /// The key's hash, never 0, and its slot (from high bits: the tag's
    /// lowest is always set).
    fn tag(&self, key: &impl std::hash::Hash) -> (u64, usize) {
        let tag = self.hasher.hash_one(key) | 1;
        (tag, (tag >> 40) as usize % SLOTS)
    }

    /// Notes where the flow `key`, closed at `at`, left off.
    pub fn remember(&mut self, key: &impl std::hash::Hash, at: Nanos, ends: Ends) {
        let (tag, slot) = self.tag(key);
        self.slots[slot] = Entry { tag, closed_at: at, ends };
    }

    /// Where the flow `key` left off if it closed no longer than `ttl`
    /// before `now`, forgotten once recalled (the flow is open again).
    pub fn recall(&mut self, key: &impl std::hash::Hash, now: Nanos, ttl: Nanos) -> Option<Ends> {
        let (tag, slot) = self.tag(key);
        let e = &mut self.slots[slot];
        if e.tag != tag {
            return None;
        }
        let fresh = now.saturating_sub(e.closed_at) <= ttl;
        let ends = e.ends;
        *e = Entry::default();
        fresh.then_some(ends)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDS: Ends = Ends { req: Some(10), resp: Some(20) };

    #[test]
    fn recalled_once_within_the_ttl() {
        let mut c = Closed::new();
        c.remember(&1u64, 100, ENDS);
        assert_eq!(c.recall(&2u64, 101, 50), None, "another flow");
        assert_eq!(c.recall(&1u64, 150, 50), Some(ENDS));
        assert_eq!(c.recall(&1u64, 150, 50), None, "the flow is open again");
        c.remember(&1u64, 100, ENDS);
        assert_eq!(c.recall(&1u64, 151, 50), None, "too late: a new connection on the same ports");
    }

    #[test]
    fn a_slot_holds_the_latest_flow_to_take_it() {
        let mut c = Closed::new();
        let n = 3 * SLOTS as u64;
        for k in 0..n {
            c.remember(&k, 0, Ends { req: Some(k as u32), resp: None });
        }
        let mut recalled = 0;
        for k in 0..n {
            if let Some(ends) = c.recall(&k, 0, 1) {
                assert_eq!(ends.req, Some(k as u32), "flow {k} recalled another flow's ends");
                recalled += 1;
            }
        }
        assert!(recalled <= SLOTS && recalled > SLOTS * 9 / 10, "{recalled} of {n} recalled");
        c.remember(&0u64, 0, ENDS);
        c.remember(&(n - 1), 0, ENDS);
        assert_eq!(c.recall(&(n - 1), 0, 1), Some(ENDS), "the newest close is always kept");
    }
}
