//! Signal 4, user-agent spoofing: a client whose claims contradict each
//! other, in its rejected requests (a client the API has served is not
//! judged: a household behind one address really has an iPhone and an
//! Android phone). Three forms:
//! - a browser on one platform and a library tied to another from the
//!   same source (iPhone Safari 14.4 and `okhttp/3.14.9`);
//! - a browser user agent whose headers are a script's (no
//!   Accept-Language: every browser sends it);
//! - many user agents rotating from one address;
//! - a user agent no browser sends (a browser's prefix and no engine, a
//!   version never shipped, an iOS with a Safari it never came with: the
//!   user-agent table's `impossible`, `version` and `ios_safari` data).
//!   This one is judged even for a client the API has served: no
//!   household explains a browser that does not exist.

use std::time::Duration;

use serde::Deserialize;

use super::{at_most, clip, nonzero_duration, positive, secs};
use crate::detect::{
    Detector, Obs,
    client::{ClientState, EVER_SUCCEEDED},
    evidence::{SPOOFING, Signal, emit},
    human,
    window::{Distinct, Secs, h16},
};

pub const NAME: &str = "user-agent-spoofing";
const MAX_AGENTS: usize = 16;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Distinct user agents from one client that make a rotation.
    pub max_user_agents: u32,
    /// Browser-claiming requests with a script's headers before it counts.
    pub min_script_like: u32,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(86_400),
            max_user_agents: 5,
            min_script_like: 3,
            cooldown: Duration::from_secs(86_400),
        }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        nonzero_duration("window", self.window)?;
        positive("max_user_agents", self.max_user_agents as u64)?;
        at_most("max_user_agents", self.max_user_agents as u64, MAX_AGENTS as u64)?;
        positive("min_script_like", self.min_script_like as u64)
    }
    pub fn build(&self) -> Spoofing {
        Spoofing {
            window: secs(self.window),
            max_agents: self.max_user_agents as usize,
            min_script: self.min_script_like,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    browser_platforms: u8,
    library_platforms: u8,
    script_like: u16,
    agents: Distinct<u16, MAX_AGENTS>,
}

fn platform_bit(p: Option<&str>) -> u8 {
    match p {
        Some("ios") => 1,
        Some("android") => 2,
        Some("windows") => 4,
        Some("macos") => 8,
        Some("linux") => 16,
        _ => 0,
    }
}

fn platform_names(bits: u8) -> String {
    ["ios", "android", "windows", "macos", "linux"]
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join("+")
}

/// The `impossible_user_agent` form, out of line: rare.
#[cold]
fn impossible(o: &Obs<'_>, why: &'static str, out: &mut Vec<Signal>) {
    let ua = o.ex.user_agent().unwrap_or("");
    emit(out, || {
        Signal::new(
            NAME,
            SPOOFING,
            o.key.hash32() as u64 ^ 4,
            vec![o.key],
            format!("{} sends a user agent no browser sends ({})", o.key, why.replace('_', " ")),
        )
        .endpoint(o.endpoint)
        .with("form", "impossible_user_agent")
        .with("reason", why)
        .with("user_agent", clip(ua, 200))
    });
}

pub struct Spoofing {
    window: Secs,
    max_agents: usize,
    min_script: u32,
}

impl Detector for Spoofing {
    fn observe(&mut self, o: &Obs<'_>, c: &mut ClientState, out: &mut Vec<Signal>) {
        if !o.rejected {
            return;
        }
        let ex = o.ex;
        if let Some(why) = ex.ua_impossible
            && !o.cooling(o.key.hash32() as u64 ^ 4)
        {
            impossible(o, why, out);
        }
        if c.has(EVER_SUCCEEDED) {
            return;
        }
        let s = &mut c.reject_state().spoofing;
        // One window for all three forms: the agent set's (it restarts
        // in `add` below under this very condition).
        if o.now.saturating_sub(s.agents.started()) >= self.window {
            *s = State { agents: s.agents, ..Default::default() };
        }
        let bit = platform_bit(ex.ua_platform);
        let family = ex.ua_family.unwrap_or("other");
        let ua = ex.user_agent().unwrap_or("");
        let base = o.key.hash32() as u64;
        match family {
            "browser" => s.browser_platforms |= bit,
            // A library that exists on one platform only (okhttp, Dalvik,
            // CFNetwork) pins the platform the way a browser claims one.
            "http-library" => s.library_platforms |= bit,
            _ => {}
        }
        let (b, l) = (s.browser_platforms, s.library_platforms);
        if b != 0 && l != 0 && (l & !b) != 0 && !o.cooling(base ^ 1) {
            emit(out, || {
                Signal::new(
                    NAME,
                    SPOOFING,
                    base ^ 1,
                    vec![o.key],
                    format!(
                        "{} claims a {} browser and also sends a {} library's user agent",
                        o.key,
                        platform_names(b),
                        platform_names(l & !b)
                    ),
                )
                .endpoint(o.endpoint)
                .with("form", "contradicting_platforms")
                .with("browser_platforms", platform_names(b))
                .with("library_platforms", platform_names(l))
                .with("user_agent", clip(ua, 200))
            });
        }
        if family == "browser"
            && !ex.header_names.is_empty()
            && !ex.header_names.iter().any(|h| crate::ascii::eq_ignore_case(h, "accept-language"))
        {
            s.script_like = s.script_like.saturating_add(1);
            if s.script_like as u32 >= self.min_script && !o.cooling(base ^ 2) {
                let accept = ex.header_names.iter().any(|h| crate::ascii::eq_ignore_case(h, "accept"));
                emit(out, || {
                    Signal::new(
                        NAME,
                        SPOOFING,
                        base ^ 2,
                        vec![o.key],
                        format!(
                            "{} claims to be {} but sends a script's headers (no Accept-Language{})",
                            o.key,
                            ex.ua_product.as_deref().unwrap_or("a browser"),
                            if accept { "" } else { ", no Accept" }
                        ),
                    )
                    .endpoint(o.endpoint)
                    .with("form", "script_headers")
                    .with("requests", s.script_like)
                    .with("header_names", ex.header_names.join(","))
                    .with("user_agent", clip(ua, 200))
                });
            }
        }
        // The classifier's hash of the user agent, not another walk of its
        // hundred-odd bytes.
        let n = s.agents.add(h16(ex.ua_hash()), o.now, self.window);
        if n >= self.max_agents && !o.cooling(base ^ 3) {
            emit(out, || {
                Signal::new(
                    NAME,
                    SPOOFING,
                    base ^ 3,
                    vec![o.key],
                    format!("{} rotated through {n} user agents within {}", o.key, human(self.window)),
                )
                .endpoint(o.endpoint)
                .with("form", "rotating_user_agents")
                .with("user_agents", n)
                .with("latest_user_agent", clip(ua, 200))
            });
        }
    }
}
