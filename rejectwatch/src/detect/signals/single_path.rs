//! Signal 1, single-path obsession: one client sends hundreds of rejected
//! requests to one endpoint and tries no other. An automated collector or
//! a probe; the path tells what it wants. (The real case: 362 rejected
//! requests in 24 h to a CSV export endpoint, stripped user agent.)

use std::time::Duration;

use serde::Deserialize;

use super::{nonzero_duration, positive, secs};
use crate::detect::{
    Detector, Obs,
    client::ClientState,
    evidence::{SINGLE_PATH, Signal, emit},
    human,
    window::{Rate, Secs},
};

pub const NAME: &str = "single-path";

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Rejected requests to the one endpoint within the window.
    pub min_requests: u32,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self { window: Duration::from_secs(86_400), min_requests: 100, cooldown: Duration::from_secs(86_400) }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        nonzero_duration("window", self.window)?;
        positive("min_requests", self.min_requests as u64)
    }
    pub fn build(&self) -> SinglePath {
        SinglePath { window: secs(self.window), min: self.min_requests }
    }
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    endpoint: u32,
    count: Rate,
    /// Last request for any other endpoint.
    other_at: Secs,
}

/// Whether every rejected request of `c` so far was for endpoint `ep`
/// (what the address-rotation detector calls the shape of a single-path
/// collector's work).
pub fn only(c: &ClientState, ep: u64) -> bool {
    c.rejected.as_ref().is_none_or(|r| {
        let s = &r.single_path;
        (s.endpoint == 0 || s.endpoint == ep as u32) && s.other_at == 0
    })
}

pub struct SinglePath {
    window: Secs,
    min: u32,
}

impl Detector for SinglePath {
    fn observe(&mut self, o: &Obs<'_>, c: &mut ClientState, out: &mut Vec<Signal>) {
        let ep = o.ep as u32;
        if !o.rejected {
            if let Some(r) = &mut c.rejected
                && r.single_path.endpoint != ep
            {
                r.single_path.other_at = o.now;
            }
            return;
        }
        let s = &mut c.reject_state().single_path;
        if s.endpoint != ep {
            if s.endpoint != 0 || s.other_at != 0 {
                s.other_at = o.now;
            }
            (s.endpoint, s.count) = (ep, Rate::default());
        }
        let n = s.count.add(o.now, self.window);
        let alone = s.other_at == 0 || o.now.saturating_sub(s.other_at) >= self.window;
        if n >= self.min && alone && !o.cooling(o.key.hash32() as u64 ^ o.ep) {
            emit(out, || {
                Signal::new(
                    NAME,
                    SINGLE_PATH,
                    o.key.hash32() as u64 ^ o.ep,
                    vec![o.key],
                    format!(
                        "{} sent {n} rejected requests to {} within {} and tried no other endpoint",
                        o.key,
                        o.endpoint,
                        human(self.window)
                    ),
                )
                .endpoint(o.endpoint)
                .with("rejected_requests", n)
                .with("window_seconds", self.window)
                .with("last_status", o.status())
            });
        }
    }
}
