//! Signal 5, stripped identity: rejected requests with an empty or missing
//! User-Agent, on an API whose clients normally identify themselves (the
//! API-wide share of such requests stays under `max_api_share`).

use std::time::Duration;

use serde::Deserialize;

use super::{nonzero_duration, positive, secs};
use crate::detect::{
    Detector, Obs,
    client::ClientState,
    evidence::{STRIPPED, Signal, emit},
    human,
    window::{Rate, Secs},
};

pub const NAME: &str = "stripped-identity";

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    pub min_requests: u32,
    /// Above this share of the API's successful exchanges, a missing user
    /// agent is normal for this API and says nothing.
    pub max_api_share: f64,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(86_400),
            min_requests: 10,
            max_api_share: 0.05,
            cooldown: Duration::from_secs(86_400),
        }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        nonzero_duration("window", self.window)?;
        positive("min_requests", self.min_requests as u64)?;
        if !(0.0..=1.0).contains(&self.max_api_share) {
            return Err(format!("max_api_share: {} is not between 0 and 1", self.max_api_share));
        }
        Ok(())
    }
    pub fn build(&self) -> Stripped {
        Stripped { window: secs(self.window), min: self.min_requests, max_share: self.max_api_share }
    }
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    count: Rate,
}

pub struct Stripped {
    window: Secs,
    min: u32,
    max_share: f64,
}

impl Detector for Stripped {
    fn observe(&mut self, o: &Obs<'_>, c: &mut ClientState, out: &mut Vec<Signal>) {
        if !o.rejected || o.ex.user_agent().is_some_and(|u| !crate::ascii::trim(u).is_empty()) {
            return;
        }
        let n = c.reject_state().stripped.count.add(o.now, self.window);
        let share = o.ctx.empty_user_agent_share();
        if n >= self.min && share <= self.max_share && !o.cooling(o.key.hash32() as u64) {
            emit(out, || {
                Signal::new(
                    NAME,
                    STRIPPED,
                    o.key.hash32() as u64,
                    vec![o.key],
                    format!(
                        "{} sent {n} rejected requests without a User-Agent within {} ({:.1}% of served requests lack one)",
                        o.key,
                        human(self.window),
                        share * 100.0
                    ),
                )
                .endpoint(o.endpoint)
                .with("requests_without_user_agent", n)
                .with("served_share_without_user_agent", (share * 10_000.0).round() / 10_000.0)
            });
        }
    }
}
