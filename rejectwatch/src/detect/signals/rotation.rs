//! Signal 6, address rotation by one operator: the same rarely requested,
//! rejected target and the same shape of work from a new address after the
//! previous one stopped ("a different Chinese IP had hit the same endpoint
//! two days earlier — different hash, different user agent, same target").
//! The addresses are grouped into one actor: actors are built from
//! evidence, not from single addresses.
//!
//! The shape of work is the same cadence, or the same tool (header-order
//! fingerprint from packets, the exact user agent from logs) when neither
//! polls regularly. When the tools differ, both must have asked for this
//! target alone, on the same cadence, from the same country or ASN. And the
//! target must be rare: never one the API serves (documented, or learned
//! from successes) and asked for by at most `max_clients` clients, so that
//! a popular endpoint (a login, a health check) never links clients on its
//! own.

use std::time::Duration;

use serde::Deserialize;

use super::{nonzero_duration, positive, single_path};
use crate::{
    detect::{
        Detector, Obs,
        cadence::same_period,
        client::{ClientKey, ClientState},
        evidence::{ROTATION, Signal, emit},
        human,
        keyed::Keyed,
        window::h64,
    },
    time::{Secs, duration_secs},
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
    /// A target more clients than this asked for within `max_gap` is not
    /// rare: it never links clients.
    pub max_clients: usize,
    pub cadence_tolerance: f64,
    pub max_keys: usize,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            max_gap: Duration::from_secs(72 * 3600),
            min_requests: 20,
            max_clients: 3,
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
        positive("max_clients", self.max_clients as u64)?;
        if self.max_clients >= HOLDERS {
            return Err(format!("max_clients: at most {} (the clients remembered a target)", HOLDERS - 1));
        }
        positive("max_keys", self.max_keys as u64)
    }
    pub fn build(&self) -> Rotation {
        let gap = duration_secs(self.max_gap);
        Rotation { spec: self.clone(), gap, targets: Keyed::new(self.max_keys, gap) }
    }
}

#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Holder {
    key: ClientKey,
    first: Secs,
    last: Secs,
    count: u32,
    period: Option<Secs>,
    /// The tool: header fingerprint, or user agent.
    tool: u64,
    /// Country (hashed) and ASN, 0 when unknown.
    country: u64,
    asn: u32,
    /// Every rejected request of the client was for this target.
    single: bool,
    /// The holder this one took over from, when it started after it ended.
    after: Option<usize>,
}

/// How two holders of a target are one operator's addresses, if they are.
fn same_shape(prev: &Holder, h: &Holder, tolerance: f64) -> Option<&'static str> {
    let cadence = match (prev.period, h.period) {
        (Some(a), Some(b)) => Some(same_period(a, b, tolerance)),
        (None, None) => None,
        _ => Some(false),
    };
    if prev.tool == h.tool {
        return (cadence != Some(false)).then_some("same_tool");
    }
    let place = (prev.country != 0 && prev.country == h.country) || (prev.asn != 0 && prev.asn == h.asn);
    (cadence == Some(true) && place && prev.single && h.single).then_some("same_target_cadence_and_place")
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
        // classifier's, and a fingerprint is a hash already.
        let tool = match ex.fingerprint {
            Some(fp) => fp.0,
            None => ex.ua_hash(),
        };
        let period = c.cadence.regular_period(&o.ctx.cadence);
        let single = single_path::only(c, o.ep);
        let gap = self.gap;
        let (min_requests, max_clients) = (self.spec.min_requests, self.spec.max_clients);
        let holders = self.targets.touch(o.ep, o.now, Vec::new);
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
                    .filter(|(_, h)| h.last < o.now && o.now - h.last <= gap && h.count >= min_requests)
                    .max_by_key(|(_, h)| h.last)
                    .map(|(j, _)| j);
                holders.push(Holder {
                    key: o.key,
                    first: o.now,
                    last: o.now,
                    count: 0,
                    period: None,
                    tool,
                    country: ex.country.map_or(0, |c| h64(c.as_bytes()) | 1),
                    asn: ex.asn.unwrap_or(0),
                    single,
                    after,
                });
                holders.len() - 1
            }
        };
        let h = &mut holders[i];
        h.last = o.now;
        h.count += 1;
        h.period = period.or(h.period);
        h.single &= single;
        if h.count != min_requests.max(1) {
            return;
        }
        let Some(prev) = h.after.map(|a| holders[a]) else { return };
        let h = holders[i];
        // Still going when the new one started: two clients, not a hand-off.
        if prev.last >= h.first {
            return;
        }
        // A target the API serves, or that many ask for, links nobody.
        let clients = holders.iter().filter(|x| o.now - x.last <= gap).count();
        if clients > max_clients || o.ctx.documented(o.ep, o.endpoint) {
            return;
        }
        let Some(how) = same_shape(&prev, &h, self.spec.cadence_tolerance) else { return };
        let gap = h.first - prev.last;
        emit(out, || {
            let same = match how {
                "same_tool" if ex.fingerprint.is_some() => "the same header fingerprint".to_string(),
                "same_tool" => "the same user agent".to_string(),
                _ => "another tool, from the same place,".to_string(),
            };
            Signal::new(
                NAME,
                ROTATION,
                o.ep,
                vec![o.key, prev.key],
                format!(
                    "{} took over {} from {} {} after it stopped, with {}{}",
                    o.key,
                    o.endpoint,
                    prev.key,
                    human(gap),
                    same,
                    h.period.map(|p| format!(" and {} cadence", human(p))).unwrap_or_default()
                ),
            )
            .endpoint(o.endpoint)
            .with("previous_client", prev.key.to_string())
            .with("client", o.key.to_string())
            .with("gap_seconds", gap)
            .with("previous_requests", prev.count)
            .with("requests", h.count)
            .with("linked_by", how)
            .merged()
        });
    }

    fn sweep(&mut self, now: Secs) {
        self.targets.sweep(now);
    }

    fn keys(&self) -> usize {
        self.targets.len()
    }

    fn save(&self) -> Result<Vec<u8>, crate::detect::codec::Error> {
        crate::detect::codec::encode(&self.targets)
    }

    fn restore(&mut self, saved: &[u8]) -> Result<(), crate::detect::codec::Error> {
        let mut targets: crate::detect::keyed::Saved<u64, Vec<Holder>> = crate::detect::codec::decode(saved)?;
        // What indexes the holders is checked: a corrupt file must not.
        for (_, _, holders) in &mut targets.slots {
            holders.truncate(HOLDERS);
            let n = holders.len();
            for h in holders.iter_mut() {
                h.after = h.after.filter(|&a| a < n);
            }
        }
        self.targets.restore(targets);
        Ok(())
    }
}
