//! Signal 7, behaviour change after disclosure: the operator marks the
//! moment the rejected clients' responses changed (a link to a published
//! investigation, a registration URL). Every client that was polling on
//! an established, regular cadence and was active at that moment is
//! watched. To react to the change it has to read it: a poller that sent
//! at least `min_requests_after` requests after the mark, stopped within
//! `max_periods_after` of its own periods, and then sent nothing for more
//! than `silence_factor` periods went dark: someone reads the responses in
//! real time ("went dark within minutes of us putting a blog post link in
//! the 410 response"). One that keeps polling at its old cadence, or that
//! stopped before it could have read the change, is not reported.

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
    },
    state::marks::Mark,
    time::{Secs, format_ts, secs},
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
    /// Requests after the mark it takes to have read the change.
    pub min_requests_after: u32,
    /// A client still requesting this many periods after the mark kept
    /// polling: it did not go dark.
    pub max_periods_after: u32,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            silence_factor: 3,
            active_periods: 2,
            max_period: Duration::from_secs(86_400),
            min_requests_after: 1,
            max_periods_after: 3,
        }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        positive("silence_factor", self.silence_factor as u64)?;
        positive("active_periods", self.active_periods as u64)?;
        positive("max_periods_after", self.max_periods_after as u64)
    }
    pub fn build(&self) -> Disclosure {
        Disclosure { spec: self.clone(), watch: Vec::new() }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Watch {
    key: ClientKey,
    period: Secs,
    last_before: Secs,
    /// The client's request count at the mark.
    requests_before: u32,
    /// Its last request and count as last seen (an evicted client keeps
    /// what was seen of it).
    last: Secs,
    requests: u32,
    mark: Secs,
    note: Option<String>,
}

pub struct Disclosure {
    spec: Spec,
    watch: Vec<Watch>,
}

impl Disclosure {
    /// The watch list for a snapshot.
    pub fn save(&self) -> Result<Vec<u8>, crate::detect::codec::Error> {
        crate::detect::codec::encode(&self.watch)
    }

    /// Takes back what [`Disclosure::save`] wrote, at most `cap` watches
    /// (one per client a mark found polling).
    pub fn restore(&mut self, saved: &[u8], cap: usize) -> Result<(), crate::detect::codec::Error> {
        let mut watch: Vec<Watch> = crate::detect::codec::decode(saved)?;
        // What `check` subtracts is checked: a corrupt file must not wrap.
        watch.retain(|w| w.last_before <= w.mark);
        watch.truncate(cap);
        self.watch = watch;
        Ok(())
    }

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
            self.watch.push(Watch {
                key: *k,
                period: p,
                last_before: c.last,
                requests_before: c.requests,
                last: c.last,
                requests: c.requests,
                mark: at,
                note: m.note.clone(),
            });
        }
        self.watch.sort_by_key(|w| (w.mark, w.key));
    }

    /// Judges the watched clients whose silence can now be judged.
    pub fn check(&mut self, now: Secs, clients: &Keyed<ClientKey, ClientState>, out: &mut Vec<Signal>) {
        let spec = &self.spec;
        self.watch.retain_mut(|w| {
            if let Some(c) = clients.get(&w.key) {
                (w.last, w.requests) = (c.last.max(w.last), c.requests.max(w.requests));
            }
            let after = w.requests.saturating_sub(w.requests_before);
            if w.last > w.mark && w.last - w.mark > spec.max_periods_after * w.period {
                return false; // kept polling
            }
            if now <= w.last.max(w.mark) + spec.silence_factor * w.period {
                return true; // may still come back
            }
            if after < spec.min_requests_after {
                return false; // stopped before it could have read the change
            }
            let before = w.mark - w.last_before;
            emit(out, || {
                Signal::new(
                    NAME,
                    WENT_DARK,
                    w.key.hash32() as u64 ^ w.mark as u64,
                    vec![w.key],
                    format!(
                        "{} polled every {}, sent {} request{} in the {} after the disclosure mark, and has been silent for {} since{}",
                        w.key,
                        human(w.period),
                        after,
                        if after == 1 { "" } else { "s" },
                        human(w.last - w.mark),
                        human(now - w.last),
                        w.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
                    ),
                )
                .with("period_seconds", w.period)
                .with("mark", format_ts(w.mark as u64 * 1_000_000_000))
                .with("last_request_before_mark_seconds", before)
                .with("requests_after_mark", after)
                .with("stopped", format_ts(w.last as u64 * 1_000_000_000))
                .with("silent_seconds", now - w.last)
                .with("silence_periods", (now - w.last) / w.period.max(1))
            });
            false
        });
    }
}
