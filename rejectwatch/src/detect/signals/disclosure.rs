//! Signal 7, behaviour change after disclosure: the operator marks the
//! moment the rejected clients' responses changed (a link to a published
//! investigation, a registration URL). Every client that was polling on
//! an established, regular cadence and was active at that moment is
//! watched; one that sends nothing for more than `silence_factor` times
//! its own period, measured from the mark, went dark: someone reads the
//! responses in real time.

use std::time::Duration;

use serde::Deserialize;

use super::positive;
use crate::{
    detect::{
        cadence::CadenceRules,
        client::{ClientKey, ClientState},
        evidence::{Signal, WENT_DARK, emit},
        human,
        keyed::Keyed,
        marks::Mark,
        secs,
        window::Secs,
    },
    exchange::format_ts,
};

pub const NAME: &str = "disclosure";

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    /// Silence longer than this many periods after the mark is going dark.
    pub silence_factor: u32,
    /// A client is active at the mark if seen within this many periods.
    pub active_periods: u32,
    /// Poll periods longer than this are not watched.
    #[serde(with = "humantime_serde")]
    pub max_period: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self { silence_factor: 3, active_periods: 2, max_period: Duration::from_secs(86_400) }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        positive("silence_factor", self.silence_factor as u64)?;
        positive("active_periods", self.active_periods as u64)
    }
    pub fn build(&self) -> Disclosure {
        Disclosure { spec: self.clone(), watch: Vec::new() }
    }
}

struct Watch {
    key: ClientKey,
    period: Secs,
    last_before: Secs,
    mark: Secs,
    note: Option<String>,
}

pub struct Disclosure {
    spec: Spec,
    watch: Vec<Watch>,
}

impl Disclosure {
    /// Record time reached a mark: note who is polling right now.
    pub fn on_mark<'a>(
        &mut self,
        m: &Mark,
        clients: impl Iterator<Item = (&'a ClientKey, &'a ClientState)>,
        rules: &CadenceRules,
    ) {
        let at = secs(m.at);
        let max = self.spec.max_period.as_secs() as Secs;
        for (k, c) in clients {
            if c.rejects == 0 {
                continue;
            }
            let Some(p) = c.cadence.regular_period_now(rules) else { continue };
            if p > max || c.last > at || at.saturating_sub(c.last) > self.spec.active_periods * p {
                continue;
            }
            self.watch.push(Watch { key: *k, period: p, last_before: c.last, mark: at, note: m.note.clone() });
        }
        self.watch.sort_by_key(|w| (w.mark, w.key));
    }

    /// Judges the watched clients whose silence can now be judged.
    pub fn check(&mut self, now: Secs, clients: &Keyed<ClientKey, ClientState>, out: &mut Vec<Signal>) {
        let factor = self.spec.silence_factor;
        self.watch.retain(|w| {
            let due = w.mark + factor * w.period;
            if now <= due {
                return true;
            }
            // Came back after the mark: not dark. (Evicted: long silent.)
            let last = clients.get(&w.key).map_or(w.last_before, |c| c.last);
            if last > w.mark {
                return false;
            }
            let before = w.mark - w.last_before;
            emit(out, || {
                Signal::new(
                    NAME,
                    WENT_DARK,
                    w.key.hash32() as u64 ^ w.mark as u64,
                    vec![w.key],
                    format!(
                        "{} polled every {} until {} before the disclosure mark and has been silent for {} since{}",
                        w.key,
                        human(w.period),
                        human(before),
                        human(now - w.mark),
                        w.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
                    ),
                )
                .with("period_seconds", w.period)
                .with("mark", format_ts(w.mark as u64 * 1_000_000_000))
                .with("last_request_before_mark_seconds", before)
                .with("silent_seconds", now - w.mark)
                .with("silence_periods", (now - w.mark) / w.period.max(1))
            });
            false
        });
    }
}
