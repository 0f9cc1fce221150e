//! Polling cadence: a client's requests are grouped into bursts (a gap of
//! at least `burst_gap` starts a new one; a poller's run may send several
//! requests), and the period is the median of the last eight intervals
//! between burst starts. The cadence is *regular* when the median absolute
//! deviation of those intervals is within `tolerance` of the period, so a
//! 60-minute poller with a few seconds of jitter comes out as 60 min and
//! a person's browsing never does. Evidence for `prospect` and the base of
//! the disclosure detector.

use super::window::Secs;

const RING: usize = 8;

#[derive(Clone, Copy, Debug, Default)]
pub struct Cadence {
    last_burst: Secs,
    last: Secs,
    intervals: [u32; RING],
    n: u8,
    pos: u8,
}

/// What the engine's cadence settings are.
#[derive(Clone, Copy, Debug)]
pub struct CadenceRules {
    pub burst_gap: Secs,
    pub min_intervals: usize,
    pub tolerance: f64,
}

impl Cadence {
    /// Notes a request at `now`; returns true when it started a burst.
    pub fn observe(&mut self, now: Secs, rules: &CadenceRules) -> bool {
        let new_burst = self.last == 0 || now.saturating_sub(self.last) >= rules.burst_gap;
        if new_burst {
            if self.last_burst != 0 {
                self.intervals[self.pos as usize] = now.saturating_sub(self.last_burst);
                self.pos = (self.pos + 1) % RING as u8;
                self.n = (self.n + 1).min(RING as u8);
            }
            self.last_burst = now;
        }
        self.last = self.last.max(now);
        new_burst
    }

    /// The median interval between bursts, once there are enough.
    pub fn period(&self, rules: &CadenceRules) -> Option<Secs> {
        let n = self.n as usize;
        if n < rules.min_intervals.max(1) {
            return None;
        }
        let mut v: Vec<u32> = self.intervals[..n].to_vec();
        v.sort_unstable();
        Some(v[n / 2])
    }

    /// The period, only if the intervals are regular.
    pub fn regular_period(&self, rules: &CadenceRules) -> Option<Secs> {
        let p = self.period(rules)?;
        let n = self.n as usize;
        let mut dev: Vec<u32> = self.intervals[..n].iter().map(|i| i.abs_diff(p)).collect();
        dev.sort_unstable();
        let mad = dev[n / 2] as f64;
        (p > 0 && mad <= rules.tolerance * p as f64).then_some(p)
    }

    pub fn last_burst(&self) -> Secs {
        self.last_burst
    }

    pub fn intervals(&self) -> usize {
        self.n as usize
    }
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

    #[test]
    fn a_sixty_minute_poller_is_sixty_minutes() {
        let mut c = Cadence::default();
        let mut t = 1_700_000_000;
        for i in 0..10u32 {
            // Two requests per run, and a few seconds of jitter.
            c.observe(t, &RULES);
            c.observe(t + 2, &RULES);
            t += 3600 + (i * 7) % 11;
        }
        let p = c.regular_period(&RULES).expect("regular");
        assert!((3595..=3615).contains(&p), "{p}");
    }

    #[test]
    fn browsing_is_not_regular() {
        let mut c = Cadence::default();
        let mut t = 1_700_000_000;
        for gap in [40, 900, 65, 3000, 120, 45, 7200, 300, 50] {
            c.observe(t, &RULES);
            t += gap;
        }
        assert!(c.period(&RULES).is_some());
        assert_eq!(c.regular_period(&RULES), None);
    }

    #[test]
    fn too_few_intervals_say_nothing() {
        let mut c = Cadence::default();
        for t in [100, 200, 300] {
            c.observe(t, &RULES);
        }
        assert_eq!(c.period(&RULES), None);
        assert!(same_period(3600, 3500, 0.05) && !same_period(3600, 1800, 0.25));
    }
}
