//! Signal 10, rate-limit bypass by header manipulation: one socket address
//! sending many distinct X-Forwarded-For / X-Real-IP / X-Originating-IP
//! values. Only headers from peers that are not trusted proxies count
//! (attribution ignored them and kept them as `untrusted_forwarding`);
//! behind a trusted proxy many values are simply many clients.

use std::time::Duration;

use serde::Deserialize;

use super::{at_most, clip, nonzero_duration, positive};
use crate::{
    detect::{
        Detector, Obs,
        client::{ClientKey, ClientState},
        evidence::{HEADER_BYPASS, Signal, emit},
        human,
        keyed::Keyed,
        window::{Distinct, h64},
    },
    time::{Secs, duration_secs},
};

pub const NAME: &str = "header-manipulation";
const MAX_VALUES: usize = 32;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Distinct forwarding values from one address.
    pub min_values: u32,
    pub max_keys: usize,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(3600),
            min_values: 5,
            max_keys: 100_000,
            cooldown: Duration::from_secs(3600),
        }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        nonzero_duration("window", self.window)?;
        positive("min_values", self.min_values as u64)?;
        at_most("min_values", self.min_values as u64, MAX_VALUES as u64)?;
        positive("max_keys", self.max_keys as u64)
    }
    pub fn build(&self) -> HeaderBypass {
        let window = duration_secs(self.window);
        HeaderBypass { window, min: self.min_values as usize, seen: Keyed::new(self.max_keys, window) }
    }
}

pub struct HeaderBypass {
    window: Secs,
    min: usize,
    seen: Keyed<ClientKey, Distinct<u32, MAX_VALUES>>,
}

impl Detector for HeaderBypass {
    fn observe(&mut self, o: &Obs<'_>, _c: &mut ClientState, out: &mut Vec<Signal>) {
        if o.ex.untrusted_forwarding.is_empty() {
            return;
        }
        let window = self.window;
        let d = self.seen.touch(o.key, o.now, Distinct::default);
        let mut n = d.len();
        for v in &o.ex.untrusted_forwarding {
            n = d.add(h64(v.as_bytes()) as u32, o.now, window);
        }
        if n >= self.min {
            emit(out, || {
                Signal::new(
                    NAME,
                    HEADER_BYPASS,
                    o.key.hash32() as u64,
                    vec![o.key],
                    format!("{} sent {n} different forwarding-header values within {}", o.key, human(window)),
                )
                .endpoint(o.endpoint)
                .with("distinct_values", n)
                .with("latest", clip(&o.ex.untrusted_forwarding.join("; "), 200))
            });
        }
    }

    fn sweep(&mut self, now: Secs) {
        self.seen.sweep(now);
    }

    fn keys(&self) -> usize {
        self.seen.len()
    }

    fn save(&self) -> Result<Vec<u8>, crate::detect::codec::Error> {
        crate::detect::codec::encode(&self.seen)
    }

    fn restore(&mut self, saved: &[u8]) -> Result<(), crate::detect::codec::Error> {
        self.seen.restore(crate::detect::codec::decode(saved)?);
        Ok(())
    }
}
