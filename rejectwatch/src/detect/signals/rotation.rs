//! Signal 6, address rotation by one operator: the same target, the same
//! fingerprint (header order from packets, the exact user agent from
//! logs) and the same cadence from a new address after the previous one
//! stopped (the real case: a second address on the same export endpoint
//! two days after the first). The addresses are grouped into one actor:
//! actors are built from evidence, not from single addresses.

use std::time::Duration;

use serde::Deserialize;

use super::{nonzero_duration, positive, secs};
use crate::detect::{
    Detector, Obs,
    cadence::same_period,
    client::{ClientKey, ClientState},
    evidence::{ROTATION, Signal, emit},
    human,
    keyed::Keyed,
    window::Secs,
};

pub const NAME: &str = "address-rotation";
const HOLDERS: usize = 8;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    /// Longest silence between one address stopping and the next starting.
    #[serde(with = "humantime_serde")]
    pub max_gap: Duration,
    /// Rejected requests each address must have sent on the target.
    pub min_requests: u32,
    pub cadence_tolerance: f64,
    pub max_keys: usize,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            max_gap: Duration::from_secs(7 * 86_400),
            min_requests: 20,
            cadence_tolerance: 0.25,
            max_keys: 10_000,
            cooldown: Duration::from_secs(7 * 86_400),
        }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        nonzero_duration("max_gap", self.max_gap)?;
        positive("min_requests", self.min_requests as u64)?;
        positive("max_keys", self.max_keys as u64)
    }
    pub fn build(&self) -> Rotation {
        let gap = secs(self.max_gap);
        Rotation { spec: self.clone(), gap, targets: Keyed::new(self.max_keys, gap) }
    }
}

#[derive(Clone, Copy)]
struct Holder {
    key: ClientKey,
    first: Secs,
    last: Secs,
    count: u32,
    period: Option<Secs>,
    /// The holder this one took over from, when it started after it ended.
    after: Option<usize>,
}

pub struct Rotation {
    spec: Spec,
    gap: Secs,
    targets: Keyed<u64, Vec<Holder>>,
}

impl Detector for Rotation {
    fn observe(&mut self, o: &Obs<'_>, c: &mut ClientState, out: &mut Vec<Signal>) {
        if !o.rejected {
            return;
        }
        let ex = o.ex;
        // The endpoint's hash is the engine's, a user agent's the
        // classifier's, and a fingerprint is a hash already: nothing is
        // hashed here.
        let tool = match ex.fingerprint {
            Some(fp) => fp.0,
            None => ex.ua_hash(),
        };
        let tk = (o.ep ^ tool.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let period = c.cadence.regular_period(&o.ctx.cadence);
        let gap = self.gap;
        let holders = self.targets.touch(tk, o.now, Vec::new);
        let i = match holders.iter().position(|h| h.key == o.key) {
            Some(i) => i,
            None => {
                if holders.len() == HOLDERS {
                    // Forget the stalest holder nobody follows.
                    let j = (0..HOLDERS).min_by_key(|j| holders[*j].last).expect("full");
                    holders.remove(j);
                    for h in holders.iter_mut() {
                        h.after = match h.after {
                            Some(a) if a == j => None,
                            Some(a) if a > j => Some(a - 1),
                            a => a,
                        };
                    }
                }
                // The most recent holder that had stopped before this one began.
                let after = holders
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| h.last < o.now && o.now - h.last <= gap && h.count >= self.spec.min_requests)
                    .max_by_key(|(_, h)| h.last)
                    .map(|(j, _)| j);
                holders.push(Holder { key: o.key, first: o.now, last: o.now, count: 0, period: None, after });
                holders.len() - 1
            }
        };
        let h = &mut holders[i];
        h.last = o.now;
        h.count += 1;
        h.period = period.or(h.period);
        if h.count != self.spec.min_requests.max(1) {
            return;
        }
        let Some(prev) = h.after.map(|a| holders[a]) else { return };
        let h = holders[i];
        // Still going when the new one started: two clients, not a hand-off.
        if prev.last >= h.first {
            return;
        }
        let cadence_ok = match (prev.period, h.period) {
            (Some(a), Some(b)) => same_period(a, b, self.spec.cadence_tolerance),
            (None, None) => true,
            _ => false,
        };
        if !cadence_ok {
            return;
        }
        let gap = h.first - prev.last;
        emit(out, || {
            Signal::new(
                NAME,
                ROTATION,
                tk,
                vec![o.key, prev.key],
                format!(
                    "{} took over {} from {} {} after it stopped, with the same {}{}",
                    o.key,
                    o.endpoint,
                    prev.key,
                    human(gap),
                    if ex.fingerprint.is_some() { "header fingerprint" } else { "user agent" },
                    h.period.map(|p| format!(" and {} cadence", human(p))).unwrap_or_default()
                ),
            )
            .endpoint(o.endpoint)
            .with("previous_client", prev.key.to_string())
            .with("gap_seconds", gap)
            .with("previous_requests", prev.count)
            .with("requests", h.count)
            .merged()
        });
    }

    fn sweep(&mut self, now: Secs) {
        self.targets.sweep(now);
    }

    fn keys(&self) -> usize {
        self.targets.len()
    }
}
