//! Polling cadence: a client's requests are grouped into bursts (a gap of
//! at least `burst_gap` starts a new one; a poller's run may send several
//! requests), and the period is the median of the last eight intervals
//! between burst starts. The cadence is *regular* when the median absolute
//! deviation of those intervals is within `tolerance` of the period, so a
//! 60-minute poller with a few seconds of jitter comes out as 60 min and
//! a person's browsing never does. Evidence for `prospect` and the base of
//! the disclosure detector.

use serde::{Deserialize, Serialize};

use crate::time::Secs;

const RING: usize = 8;

/// 24 bytes, kept for every client: the intervals are stored as 16-bit
/// floats (see [`pack`]); the time of the client's last request is the
/// client state's, not repeated here.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Cadence {
    last_burst: Secs,
    intervals: [u16; RING],
    /// How many intervals there are, and [`STALE`].
    #[serde(deserialize_with = "counted")]
    n: u8,
    #[serde(deserialize_with = "crate::detect::codec::len_within::<_, { RING - 1 }>")]
    pos: u8,
    /// The regular period as of the last interval, packed (0: none), once
    /// asked for: it changes only when an interval is added, and the
    /// detectors ask for it on every rejected exchange, where working it
    /// out each time (two sorts) was a few percent of the whole on a long
    /// run; working it out at every burst instead cost every client that
    /// is never asked. The period is one of the intervals, which are kept
    /// packed: nothing is lost. In what was padding.
    regular: u16,
}

/// Set in [`Cadence::n`] when an interval was added after `regular` was
/// worked out.
const STALE: u8 = 0x80;

// Every client keeps one: what it costs is in the memory goal.
const _: () = assert!(size_of::<Cadence>() == 24);

/// [`Cadence::n`] from a snapshot: at most [`RING`] intervals, whatever
/// the file says (it indexes the ring).
fn counted<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let n = u8::deserialize(d)?;
    if (n & !STALE) as usize > RING {
        return Err(serde::de::Error::custom(format!("{} intervals in a ring of {RING}", n & !STALE)));
    }
    Ok(n)
}

/// Encodes an interval as 12 significant bits, rounded to nearest, and a
/// 4-bit shift: exact to 4095 s (an hourly poller's jitter stays visible),
/// within 1/4096 above, and capped at 4.2 years.
fn pack(v: u32) -> u16 {
    let mut shift = (32 - v.leading_zeros()).saturating_sub(12);
    let mut top = if shift == 0 { v } else { ((v as u64 + (1 << (shift - 1))) >> shift) as u32 };
    if top == 4096 {
        (top, shift) = (2048, shift + 1);
    }
    if shift > 15 {
        (top, shift) = (4095, 15);
    }
    ((shift << 12) | top) as u16
}

fn unpack(c: u16) -> u32 {
    ((c & 0xfff) as u32) << (c >> 12)
}

/// What the engine's cadence settings are.
#[derive(Clone, Copy, Debug)]
pub struct CadenceRules {
    pub burst_gap: Secs,
    pub min_intervals: usize,
    pub tolerance: f64,
}

impl Cadence {
    /// Notes a request at `now` from a client whose previous request was
    /// at `prev` (0 for its first); returns true when it started a burst.
    pub fn observe(&mut self, now: Secs, prev: Secs, rules: &CadenceRules) -> bool {
        let new_burst = prev == 0 || now.saturating_sub(prev) >= rules.burst_gap;
        if new_burst {
            if self.last_burst != 0 {
                self.intervals[self.pos as usize] = pack(now.saturating_sub(self.last_burst));
                self.pos = (self.pos + 1) % RING as u8;
                self.n = (self.count() as u8 + 1).min(RING as u8) | STALE;
            }
            self.last_burst = now;
        }
        new_burst
    }

    /// The intervals, sorted, in a stack buffer.
    fn sorted(&self) -> ([u32; RING], usize) {
        let n = self.count();
        // Empty places sort last, so the first `n` are the intervals.
        let mut v = [u32::MAX; RING];
        for (d, c) in v.iter_mut().zip(&self.intervals[..n]) {
            *d = unpack(*c);
        }
        sort8(&mut v);
        (v, n)
    }

    /// The median interval between bursts, once there are enough.
    pub fn period(&self, rules: &CadenceRules) -> Option<Secs> {
        let (v, n) = self.sorted();
        (n >= rules.min_intervals.max(1)).then(|| v[n / 2])
    }

    /// The period, only if the intervals are regular; worked out once
    /// after each new interval, and kept. `rules` are the engine's, the
    /// same for every call.
    pub fn regular_period(&mut self, rules: &CadenceRules) -> Option<Secs> {
        if self.n & STALE != 0 {
            self.regular = self.work_out_regular_period(rules).map_or(0, pack);
            self.n &= !STALE;
        }
        (self.regular != 0).then(|| unpack(self.regular))
    }

    /// [`Cadence::regular_period`] without keeping it, for a reader that
    /// may not write (the disclosure check, a new actor).
    pub fn regular_period_now(&self, rules: &CadenceRules) -> Option<Secs> {
        match self.n & STALE {
            0 => (self.regular != 0).then(|| unpack(self.regular)),
            _ => self.work_out_regular_period(rules),
        }
    }

    fn work_out_regular_period(&self, rules: &CadenceRules) -> Option<Secs> {
        if self.count() < rules.min_intervals.max(1) {
            return None;
        }
        let (v, n) = self.sorted();
        let p = v[n / 2];
        // The median absolute deviation is within the tolerance exactly
        // when more than half of the deviations are: counted rather than
        // sorted, which was a second sort, a fifth of this function.
        let within = rules.tolerance * p as f64;
        let close = v[..n].iter().filter(|i| i.abs_diff(p) as f64 <= within).count();
        (p > 0 && close > n / 2).then_some(p)
    }

    pub fn last_burst(&self) -> Secs {
        self.last_burst
    }

    pub fn intervals(&self) -> usize {
        self.count()
    }

    fn count(&self) -> usize {
        (self.n & !STALE) as usize
    }
}

/// Sorts eight values with a sorting network (19 compare-exchanges in six
/// rounds, each a min and a max): no branch to mispredict, where an
/// insertion sort of eight intervals in no order mispredicts about one
/// compare in two. On the dense mix every request of a client starts a
/// burst, so its period is worked out again on nearly every reject.
///
/// Written out pair by pair: as a loop over a table of pairs the release
/// build kept the loop, copied the table onto the stack and checked both
/// indices of every pair, ~400 instructions a sort where the network
/// itself is ~70 (on a 3 M-exchange mix, 300 an exchange).
fn sort8(v: &mut [u32; RING]) {
    const _: () = assert!(RING == 8, "the network sorts eight");
    macro_rules! network {
        ($(($a:literal, $b:literal)),* $(,)?) => {
            $(
                let (x, y) = (v[$a], v[$b]);
                (v[$a], v[$b]) = (x.min(y), x.max(y));
            )*
        };
    }
    // One round a line.
    #[rustfmt::skip]
    network!(
        (0, 2), (1, 3), (4, 6), (5, 7),
        (0, 4), (1, 5), (2, 6), (3, 7),
        (0, 1), (2, 3), (4, 5), (6, 7),
        (2, 4), (3, 5),
        (1, 4), (3, 6),
        (1, 2), (3, 4), (5, 6),
    );
}

/// Whether two periods are the same cadence within `tolerance`.
pub fn same_period(a: Secs, b: Secs, tolerance: f64) -> bool {
    let (lo, hi) = (a.min(b) as f64, a.max(b) as f64);
    hi > 0.0 && (hi - lo) <= tolerance * hi
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: CadenceRules = CadenceRules { burst_gap: 30, min_intervals: 4, tolerance: 0.1 };

    /// A client's requests at `times`, as the engine feeds them.
    fn feed(times: &[Secs]) -> Cadence {
        let (mut c, mut prev) = (Cadence::default(), 0);
        for &t in times {
            c.observe(t, prev, &RULES);
            prev = prev.max(t);
        }
        c
    }

    #[test]
    fn the_network_sorts_every_input() {
        // By the 0-1 principle, a network that sorts every sequence of
        // zeros and ones sorts every sequence; and some of each kind.
        for bits in 0..256u32 {
            let mut v: [u32; RING] = std::array::from_fn(|i| bits >> i & 1);
            let mut want = v;
            want.sort_unstable();
            sort8(&mut v);
            assert_eq!(v, want, "{bits:08b}");
        }
        let mut v = [7, 3, u32::MAX, 0, 3, 9, 1, u32::MAX];
        sort8(&mut v);
        assert_eq!(v, [0, 1, 3, 3, 7, 9, u32::MAX, u32::MAX]);
    }

    #[test]
    fn intervals_pack_closely() {
        for v in [8191, 8193, 86_399, 604_801, 100_000_000] {
            let back = unpack(pack(v));
            assert!(back.abs_diff(v) as f64 <= v as f64 / 4096.0, "{v} -> {back}");
        }
        for v in [0, 1, 59, 3599, 3601, 4095, 7200, 86_400] {
            assert_eq!(unpack(pack(v)), v);
        }
        assert_eq!(unpack(pack(u32::MAX)), 4095 << 15);
    }

    #[test]
    fn a_sixty_minute_poller_is_sixty_minutes() {
        let mut times = Vec::new();
        let mut t = 1_700_000_000;
        for i in 0..10u32 {
            // Two requests per run, and a few seconds of jitter.
            times.extend([t, t + 2]);
            t += 3600 + (i * 7) % 11;
        }
        let mut c = feed(&times);
        let p = c.regular_period_now(&RULES).expect("regular");
        assert_eq!(c.regular_period(&RULES), Some(p), "kept as worked out");
        assert_eq!((c.regular_period(&RULES), c.regular_period_now(&RULES)), (Some(p), Some(p)), "and again");
        assert!((3595..=3615).contains(&p), "{p}");
    }

    #[test]
    fn browsing_is_not_regular() {
        let mut times = Vec::new();
        let mut t = 1_700_000_000;
        for gap in [40, 900, 65, 3000, 120, 45, 7200, 300, 50] {
            times.push(t);
            t += gap;
        }
        let mut c = feed(&times);
        assert!(c.period(&RULES).is_some());
        assert_eq!(c.regular_period(&RULES), None);
    }

    #[test]
    fn counting_the_close_deviations_decides_as_their_median_did() {
        // The median absolute deviation, as it was worked out before: every
        // deviation sorted, the middle one against the tolerance.
        let by_median = |c: &Cadence| {
            if c.count() < RULES.min_intervals {
                return None;
            }
            let (v, n) = c.sorted();
            let p = v[n / 2];
            let mut dev: Vec<u32> = v[..n].iter().map(|i| i.abs_diff(p)).collect();
            dev.sort_unstable();
            (p > 0 && dev[n / 2] as f64 <= RULES.tolerance * p as f64).then_some(p)
        };
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut regular = 0;
        for case in 0..20_000 {
            // Bursts around a period with more or less jitter, some wild.
            let period = 30 + (case % 97) * 40;
            let (mut t, mut times) = (1_000, Vec::new());
            for _ in 0..(4 + case % 6) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let jitter = (x % (1 + period as u64 / (1 + case as u64 % 5))) as Secs;
                t += period + jitter;
                times.push(t);
            }
            let c = feed(&times);
            let p = c.work_out_regular_period(&RULES);
            assert_eq!(p, by_median(&c), "{times:?}");
            regular += usize::from(p.is_some());
        }
        // Both answers are given, many times each.
        assert!((2_000..18_000).contains(&regular), "{regular} regular of 20 000");
    }

    #[test]
    fn too_few_intervals_say_nothing() {
        let c = feed(&[100, 200, 300]);
        assert_eq!(c.period(&RULES), None);
        assert!(same_period(3600, 3500, 0.05) && !same_period(3600, 1800, 0.25));
    }
}
