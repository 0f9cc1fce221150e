//! Signal 9, object enumeration (BOLA/IDOR): one client walking many
//! distinct resource ids on one endpoint template (`/api/v1/orders/{id}`),
//! often sequentially. Counted on every response, not only rejects: a
//! walk that succeeds is the one that leaks. The distinct count is a
//! linear-counting estimate (256 bits per client), exact enough at the
//! default threshold of 50 and small enough to keep for every client.

use std::time::Duration;

use serde::Deserialize;

use super::{nonzero_duration, positive, secs};
use crate::detect::{
    Detector, Obs,
    client::ClientState,
    evidence::{ENUMERATION, Signal, emit},
    human,
    window::{Secs, Sketch, h64},
};

pub const NAME: &str = "object-enumeration";

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// More than this many distinct ids on one template.
    pub max_ids: u32,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self { window: Duration::from_secs(3600), max_ids: 50, cooldown: Duration::from_secs(3600) }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        nonzero_duration("window", self.window)?;
        positive("max_ids", self.max_ids as u64)
    }
    pub fn build(&self) -> Enumeration {
        Enumeration {
            window: secs(self.window),
            max: self.max_ids,
            ones_beyond_max: IdSketch::ones_beyond(self.max_ids),
        }
    }
}

/// The distinct ids a client asked for on one template.
type IdSketch = Sketch<4>;

#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    template: u32,
    last_id: u32,
    sequential: u16,
    rejected: u16,
    ids: IdSketch,
}

pub struct Enumeration {
    window: Secs,
    max: u32,
    /// Bits the id sketch must have set before its estimate can pass `max`.
    ones_beyond_max: u32,
}

impl Detector for Enumeration {
    fn observe(&mut self, o: &Obs<'_>, c: &mut ClientState, out: &mut Vec<Signal>) {
        let Some(id) = o.ex.resource_id.as_deref() else { return };
        let s = &mut c.enumeration;
        let t = o.ep as u32;
        if s.template != t {
            *s = State { template: t, ..Default::default() };
        }
        let numeric: Option<u32> = id.parse().ok();
        if let Some(n) = numeric {
            if n.abs_diff(s.last_id) == 1 {
                s.sequential = s.sequential.saturating_add(1);
            }
            s.last_id = n;
        }
        if o.rejected {
            s.rejected = s.rejected.saturating_add(1);
        }
        s.ids.insert(h64(id.as_bytes()), o.now, self.window);
        if s.ids.ones() < self.ones_beyond_max {
            return;
        }
        let n = s.ids.estimate();
        if n > self.max && !o.cooling(o.key.hash32() as u64 ^ o.ep) {
            emit(out, || {
                Signal::new(
                    NAME,
                    ENUMERATION,
                    o.key.hash32() as u64 ^ o.ep,
                    vec![o.key],
                    format!(
                        "{} requested about {n} distinct ids on {} within {} ({} in sequence)",
                        o.key,
                        o.endpoint,
                        human(self.window),
                        s.sequential
                    ),
                )
                .endpoint(o.endpoint)
                .with("distinct_ids", n)
                .with("sequential_steps", s.sequential)
                .with("rejected", s.rejected)
                .with("last_id", super::clip(id, 64))
            });
        }
    }
}
