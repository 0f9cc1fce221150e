//! Where the seeds of the tables keyed by attacker-chosen text come from.
//!
//! Each table draws its own 64-bit seed, so a sender cannot aim its keys
//! at one chain of a table it cannot see. Nothing in the output depends on
//! the seed (tables iterate in insertion order, never hash order), and the
//! tests prove it: `REJECTWATCH_HASH_SEED=N` fixes the seeds of a whole
//! process (each table still gets its own, derived from N and the order in
//! which tables were made), so a failure under one seed can be replayed,
//! and CI runs the unit tests under several.

use std::{
    hash::BuildHasher,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

/// The hasher state of the seeded tables: both of foldhash's seeds, the
/// per-table one and the shared one its mixing starts from, come from the
/// process's base seed, as `RandomState`'s come from the OS.
pub type State = foldhash::fast::SeedableRandomState;

/// The environment variable that fixes every seed of the process.
pub const ENV: &str = "REJECTWATCH_HASH_SEED";

/// A fresh state for one table.
pub fn state() -> State {
    State::with_seed(next(), shared())
}

/// The state a test names: per-table and shared seed from `seed` (a few
/// dozen leaked bytes per distinct seed, for tests only).
pub fn state_of(seed: u64) -> State {
    let shared: &'static foldhash::SharedSeed = Box::leak(Box::new(foldhash::SharedSeed::from_u64(mix(seed ^ SHARED))));
    State::with_seed(mix(seed), shared)
}

/// Told apart from the per-table seeds drawn from the same base.
const SHARED: u64 = 0x5ba2_ed5e_ed00_0001;

fn shared() -> &'static foldhash::SharedSeed {
    static SEED: OnceLock<foldhash::SharedSeed> = OnceLock::new();
    SEED.get_or_init(|| foldhash::SharedSeed::from_u64(mix(base() ^ SHARED)))
}

/// A fresh 64-bit seed: from the process's base seed and a counter.
pub fn next() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    mix(base().wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

fn base() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    *BASE.get_or_init(|| match std::env::var(ENV) {
        Ok(s) => parse(&s).unwrap_or_else(|| {
            // Before any logger may exist, and a wrong value must not pass
            // silently as a random seed.
            panic!("{ENV}: expected an unsigned integer, got {s:?}")
        }),
        // SipHash keyed by the OS's randomness.
        Err(_) => std::hash::RandomState::new().hash_one(0x5eed_u64),
    })
}

fn parse(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// splitmix64's finaliser: neighbouring counters give unrelated seeds.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_between_tables() {
        let (a, b) = (next(), next());
        assert_ne!(a, b);
        assert_ne!(state().hash_one(1u32), state().hash_one(1u32));
    }

    #[test]
    fn a_seed_is_a_decimal_or_hex_number() {
        assert_eq!(parse("42"), Some(42));
        assert_eq!(parse(" 0x2a\n"), Some(42));
        assert_eq!(parse("forty-two"), None);
        assert_eq!(parse("-1"), None);
    }
}
