//! Signal 15, our own mistakes: an access-policy regression (many
//! distinct identities that succeeded on an endpoint suddenly rejected
//! there within a short window: a misconfigured role or key tier, not an
//! attack) and expired-token loops (one identity that used to succeed,
//! retrying with a credential now refused). Reported as
//! `misconfiguration`, which is never blocked; the finding says which
//! endpoint and since when.

use std::time::Duration;

use serde::Deserialize;

use super::{nonzero_duration, positive};
use crate::{
    detect::{
        Detector, Obs,
        client::{ClientKey, ClientState},
        evidence::{POLICY_REGRESSION, Signal, TOKEN_LOOP, emit},
        human,
        keyed::Keyed,
        window::Rate,
    },
    exchange::Identity,
    time::{Secs, duration_secs, format_ts},
};

pub const NAME: &str = "access-policy";
const MAX_LISTED: usize = 32;
/// Identities still served on an endpoint, remembered beside its
/// refused ones (enough to judge the share refused).
const SERVED: usize = 4 * MAX_LISTED;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Previously successful identities rejected on one endpoint...
    pub min_identities: u32,
    /// ...making at least this share of the formerly good identities that
    /// used the endpoint in the window (a few mistyped passwords among
    /// many good logins are not a regression).
    pub min_share: f64,
    /// How long a success is remembered.
    #[serde(with = "humantime_serde")]
    pub lookback: Duration,
    /// Rejections of one formerly good identity that make a loop.
    pub loop_retries: u32,
    #[serde(with = "humantime_serde")]
    pub loop_window: Duration,
    pub max_keys: usize,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(900),
            min_identities: 5,
            min_share: 0.5,
            lookback: Duration::from_secs(7 * 86_400),
            loop_retries: 20,
            loop_window: Duration::from_secs(600),
            max_keys: 1_000_000,
            cooldown: Duration::from_secs(3600),
        }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        nonzero_duration("window", self.window)?;
        nonzero_duration("lookback", self.lookback)?;
        nonzero_duration("loop_window", self.loop_window)?;
        positive("min_identities", self.min_identities as u64)?;
        super::at_most("min_identities", self.min_identities as u64, MAX_LISTED as u64)?;
        positive("loop_retries", self.loop_retries as u64)?;
        if !(0.0..=1.0).contains(&self.min_share) {
            return Err(format!("min_share: {} is not between 0 and 1", self.min_share));
        }
        positive("max_keys", self.max_keys as u64)
    }
    pub fn build(&self) -> Policy {
        let lookback = duration_secs(self.lookback);
        Policy {
            spec: self.clone(),
            window: duration_secs(self.window),
            loop_window: duration_secs(self.loop_window),
            good_here: Keyed::new(self.max_keys, lookback),
            good: Keyed::new(self.max_keys, lookback),
            regressions: Keyed::new(10_000, duration_secs(self.window)),
            loops: Keyed::new(100_000, duration_secs(self.loop_window)),
        }
    }
}

/// Recent rejections of formerly good identities on one endpoint, and
/// the good identities still served there.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Regression {
    since: Secs,
    identities: Vec<(u32, Secs, ClientKey)>,
    served: Vec<(u32, Secs)>,
}

pub struct Policy {
    spec: Spec,
    window: Secs,
    loop_window: Secs,
    /// (identity, endpoint) → last success.
    good_here: Keyed<u64, Secs>,
    /// identity → last success anywhere.
    good: Keyed<u64, Secs>,
    regressions: Keyed<u64, Regression>,
    loops: Keyed<u64, (Rate, Secs)>,
}

impl Detector for Policy {
    fn observe(&mut self, o: &Obs<'_>, _c: &mut ClientState, out: &mut Vec<Signal>) {
        let Some(Identity(idh)) = o.ex.identity else { return };
        let pair = idh ^ o.ep.rotate_left(1);
        let window = self.window;
        if o.success {
            *self.good_here.touch(pair, o.now, || 0) = o.now;
            *self.good.touch(idh, o.now, || 0) = o.now;
            if let Some(r) = self.regressions.get_mut(&o.ep) {
                // Served again: whatever refused it was not the policy.
                r.identities.retain(|(h, _, _)| *h != idh as u32);
                // Found in place, and the list pruned of what the window
                // left behind only when full: pruning it on every success
                // walked up to 128 entries each time, most of the detector's
                // cost on a busy endpoint. A refusal prunes it before
                // counting, so what is counted is the same.
                match r.served.iter().position(|(h, _)| *h == idh as u32) {
                    Some(i) => r.served[i].1 = o.now,
                    None => {
                        if r.served.len() >= SERVED {
                            r.served.retain(|(_, t)| o.now.saturating_sub(*t) < window);
                        }
                        if r.served.len() < SERVED {
                            r.served.push((idh as u32, o.now));
                        }
                    }
                }
            } else if !self.good_here.is_empty() {
                let r = self.regressions.touch(o.ep, o.now, Regression::default);
                r.served.push((idh as u32, o.now));
            }
            return;
        }
        if !matches!(o.status(), 401 | 403) {
            return;
        }
        if self.good_here.get(&pair).is_some() {
            let r = self.regressions.touch(o.ep, o.now, Regression::default);
            r.identities.retain(|(_, t, _)| o.now.saturating_sub(*t) < window);
            r.served.retain(|(_, t)| o.now.saturating_sub(*t) < window);
            if r.identities.is_empty() {
                r.since = o.now;
            }
            match r.identities.iter().position(|(h, _, _)| *h == idh as u32) {
                Some(i) => r.identities[i].1 = o.now,
                None if r.identities.len() < MAX_LISTED => r.identities.push((idh as u32, o.now, o.key)),
                None => {}
            }
            let n = r.identities.len();
            let share = n as f64 / (n + r.served.len()) as f64;
            if n >= self.spec.min_identities as usize && share >= self.spec.min_share {
                let mut clients = vec![o.key];
                for (_, _, k) in &r.identities {
                    if !clients.contains(k) {
                        clients.push(*k);
                    }
                }
                let since = format_ts(r.since as u64 * 1_000_000_000);
                emit(out, || {
                    Signal::new(
                        NAME,
                        POLICY_REGRESSION,
                        o.ep,
                        clients,
                        format!(
                            "{n} identities that used to succeed on {} are refused ({}) since {since}: check the access policy",
                            o.endpoint,
                            o.status()
                        ),
                    )
                    .endpoint(o.endpoint)
                    .with("form", "policy_regression")
                    .with("identities", n)
                    .with("still_served", r.served.len())
                    .with("since", since)
                    .with("status", o.status())
                });
            }
        }
        // An expired or revoked credential is a 401; a 403 is a refusal of
        // an identity that did authenticate.
        if o.status() == 401 && self.good.get(&idh).is_some() {
            let lw = self.loop_window;
            let (rate, since) = self.loops.touch(idh, o.now, || (Rate::default(), o.now));
            if rate.count(o.now, lw) == 0 {
                *since = o.now;
            }
            let n = rate.add(o.now, lw);
            if n >= self.spec.loop_retries {
                let since = format_ts(*since as u64 * 1_000_000_000);
                emit(out, || {
                    Signal::new(
                        NAME,
                        TOKEN_LOOP,
                        idh,
                        vec![o.key],
                        format!(
                            "{} keeps retrying an identity that used to succeed and is now refused: {n} times within {} since {since} (expired or revoked credential)",
                            o.key,
                            human(lw)
                        ),
                    )
                    .endpoint(o.endpoint)
                    .with("form", "expired_token_loop")
                    .with("retries", n)
                    .with("since", since)
                    .with("identity_kind", o.ex.identity_kind.unwrap_or("unknown"))
                });
            }
        }
    }

    fn sweep(&mut self, now: Secs) {
        self.good_here.sweep(now);
        self.good.sweep(now);
        self.regressions.sweep(now);
        self.loops.sweep(now);
    }

    fn keys(&self) -> usize {
        self.good_here.len() + self.good.len() + self.regressions.len() + self.loops.len()
    }

    fn save(&self) -> Result<Vec<u8>, crate::detect::codec::Error> {
        crate::detect::codec::encode(&(&self.good_here, &self.good, &self.regressions, &self.loops))
    }

    fn restore(&mut self, saved: &[u8]) -> Result<(), crate::detect::codec::Error> {
        let (good_here, good, regressions, loops) = crate::detect::codec::decode(saved)?;
        self.good_here.restore(good_here);
        self.good.restore(good);
        self.regressions.restore(regressions);
        self.loops.restore(loops);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::{
            Engine,
            spec::{DetectConfig, DetectorSpec},
        },
        exchange::{Exchange, RequestText},
    };

    /// The engine with this detector alone, as configured.
    fn engine(spec: Spec) -> Engine {
        let others = DetectorSpec::all_defaults().iter().map(|d| d.name().to_string()).filter(|n| n != NAME).collect();
        let cfg = DetectConfig { disabled: others, detector: vec![DetectorSpec::Policy(spec)], ..Default::default() };
        Engine::new(&cfg, 64)
    }

    fn exchange(t: Secs, id: u64, status: u16) -> Exchange {
        Exchange {
            ts: t as u64 * 1_000_000_000,
            peer: std::net::IpAddr::from([10, 0, (id >> 8) as u8, id as u8]),
            method: "GET".into(),
            request: RequestText::new("/api/v1/reports"),
            endpoint: Some("/api/v1/reports".into()),
            status: Some(status),
            identity: Some(Identity(0x5eed_0000 + id)),
            ..Default::default()
        }
    }

    #[test]
    fn identities_still_served_are_counted_after_a_full_list_ages() {
        let mut e = engine(Spec { min_share: 0.3, ..Default::default() });
        let mut out = Vec::new();
        // 200 identities served, one a second: the list of those served
        // fills with the first 128.
        for i in 0..200 {
            e.observe(&exchange(1000 + i, i as u64, 200), &mut out);
        }
        // One of them refused (which keeps the endpoint's record), then,
        // past the 900 s window of the first 128, ten more served: the
        // first of them finds the list full of entries the window has left
        // behind, and they make room.
        e.observe(&exchange(1800, 0, 403), &mut out);
        for i in 0..10 {
            e.observe(&exchange(2050 + i, 200 + i as u64, 200), &mut out);
        }
        // Four of the ten refused: five formerly good identities refused
        // against ten still served, a regression at the configured share.
        for i in 0..4 {
            e.observe(&exchange(2060 + i, 200 + i as u64, 403), &mut out);
        }
        assert_eq!(out.len(), 1, "{out:?}");
        let f = serde_json::to_value(&out[0]).expect("finding as JSON");
        assert_eq!(
            (&f["evidence"]["identities"], &f["evidence"]["still_served"]),
            (&serde_json::json!(5), &serde_json::json!(10)),
            "{f}"
        );
    }
}
