//! Signal 13, scraping: one client doing nothing but GETs, at volume,
//! across many resources. A client that ever sent anything else is an
//! application, not a scraper.

use std::time::Duration;

use serde::Deserialize;

use super::{nonzero_duration, positive, secs};
use crate::detect::{
    Detector, Obs,
    client::{ClientState, SENT_NON_GET},
    evidence::{SCRAPING, Signal, emit},
    human,
    window::{Rate, Secs, Sketch, h64},
};

pub const NAME: &str = "scraping";

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    pub min_requests: u32,
    /// Distinct paths among them.
    pub min_resources: u32,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(600),
            min_requests: 300,
            min_resources: 100,
            cooldown: Duration::from_secs(3600),
        }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        nonzero_duration("window", self.window)?;
        positive("min_requests", self.min_requests as u64)?;
        positive("min_resources", self.min_resources as u64)
    }
    pub fn build(&self) -> Scraping {
        Scraping { window: secs(self.window), min: self.min_requests, min_resources: self.min_resources }
    }
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    gets: Rate,
    resources: Sketch<4>,
}

pub struct Scraping {
    window: Secs,
    min: u32,
    min_resources: u32,
}

impl Detector for Scraping {
    fn observe(&mut self, o: &Obs<'_>, c: &mut ClientState, out: &mut Vec<Signal>) {
        if o.ex.method != "GET" || c.has(SENT_NON_GET) {
            return;
        }
        let s = &mut c.scraping;
        let n = s.gets.add(o.now, self.window);
        let path = o.ex.path();
        // The sketch's window restarts on its own; the rate slides.
        s.resources.insert(h64(path.as_bytes()), o.now, self.window);
        if n < self.min {
            return;
        }
        let r = s.resources.estimate();
        if r >= self.min_resources && !o.cooling(o.key.hash32() as u64) {
            emit(out, || {
                Signal::new(
                    NAME,
                    SCRAPING,
                    o.key.hash32() as u64,
                    vec![o.key],
                    format!(
                        "{} sent {n} GETs across about {r} distinct paths within {} and nothing else",
                        o.key,
                        human(self.window)
                    ),
                )
                .with("gets", n)
                .with("distinct_paths", r)
                .with("window_seconds", self.window)
            });
        }
    }
}
