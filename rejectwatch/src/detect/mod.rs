//! Detection: the signals of docs/detection.md over enriched exchanges, the
//! actors they group clients into, and the findings they write. Pure and
//! synchronous: time is the exchanges' own (whole seconds of record time),
//! so a replayed log gives the findings a live run gave.
//!
//! The [`Engine`] keeps one bounded table of clients (IPv4 address or IPv6
//! network) whose compact state the client-keyed detectors share, hands
//! each exchange to every detector, applies cooldowns to what they signal,
//! groups clients into actors ([`actors`]) and turns signals into
//! [`finding::Finding`]s.

pub mod actors;
pub mod cadence;
pub mod chunked;
pub mod client;
pub mod codec;
pub mod decode;
pub mod evidence;
pub mod finding;
pub mod glob;
pub mod inspect;
pub mod keyed;
pub mod knowledge;
pub mod memo;
pub mod payload;
pub mod signals;
pub mod snapshot;
pub mod spec;
pub mod textlist;
pub mod window;

use std::collections::HashSet;

use crate::state::marks::Mark;
use crate::{
    exchange::Exchange,
    time::{Nanos, Secs, secs},
};
use actors::Roster;
use cadence::CadenceRules;
use client::{ClientKey, ClientState, EVER_SUCCEEDED, RejectState, SENT_NON_GET};
use evidence::Signal;
use finding::Finding;
use glob::Globs;
use keyed::Keyed;
use spec::DetectConfig;
use window::key64;

/// What every detector sees of one exchange.
pub struct Obs<'a> {
    pub ex: &'a Exchange,
    pub now: Secs,
    pub key: ClientKey,
    /// The status is one of the configured reject statuses.
    pub rejected: bool,
    /// 2xx.
    pub success: bool,
    /// The endpoint template (or the path when there is none).
    pub endpoint: &'a str,
    pub ep: u64,
    pub ctx: &'a Ctx,
    cooldowns: &'a Keyed<(u8, u64), Secs>,
    detector: u8,
    cooldown: Secs,
}

impl Obs<'_> {
    /// Whether a finding for `key` would be held back by the detector's
    /// cooldown: detectors skip building it (the summary is the costly
    /// part on a busy attacker's every request).
    pub fn cooling(&self, key: u64) -> bool {
        self.cooldowns.get(&(self.detector, key)).is_some_and(|&t| t != 0 && self.now.saturating_sub(t) < self.cooldown)
    }

    pub fn status(&self) -> u16 {
        self.ex.status.unwrap_or(0)
    }
}

/// A detector: observes exchanges, keeps bounded state, signals.
pub trait Detector: Send {
    fn observe(&mut self, o: &Obs<'_>, client: &mut ClientState, out: &mut Vec<Signal>);
    /// Drops state idle past its window (record time).
    fn sweep(&mut self, _now: Secs) {}
    /// Keys held, for the metrics.
    fn keys(&self) -> usize {
        0
    }
    /// Its own tables for a snapshot ([`snapshot`]); none by default.
    fn save(&self) -> Result<Vec<u8>, codec::Error> {
        Ok(Vec::new())
    }
    /// Takes back what [`Detector::save`] wrote, into a detector built
    /// from the same settings.
    fn restore(&mut self, _saved: &[u8]) -> Result<(), codec::Error> {
        Ok(())
    }
}

/// What the API as a whole looks like, shared with the detectors.
pub struct Ctx {
    pub endpoints: Keyed<u64, EndpointStats>,
    pub exchanges: u64,
    /// Successful exchanges, and those among them without a user agent:
    /// what the API's served clients normally send.
    pub served: u64,
    pub served_without_user_agent: u64,
    pub cadence: CadenceRules,
    documented: Globs,
}

/// Per endpoint template: what has succeeded there.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct EndpointStats {
    pub successes: u32,
    /// Successful requests by method other than GET/HEAD/OPTIONS.
    pub write_successes: u32,
}

/// Successful responses an endpoint needs before it counts as documented
/// (in use by clients the API serves) when none are configured.
const LEARNED_DOCUMENTED: u32 = 3;

impl Ctx {
    /// Whether an endpoint is part of the API: configured as documented,
    /// or (with none configured) one where requests succeed.
    pub fn documented(&self, ep: u64, endpoint: &str) -> bool {
        if !self.documented.is_empty() {
            return self.documented.any(endpoint);
        }
        self.endpoints.get(&ep).is_some_and(|s| s.successes >= LEARNED_DOCUMENTED)
    }

    /// Share of served exchanges without a user agent so far.
    pub fn empty_user_agent_share(&self) -> f64 {
        if self.served == 0 { 0.0 } else { self.served_without_user_agent as f64 / self.served as f64 }
    }
}

struct Built {
    name: &'static str,
    cooldown: Secs,
    det: signals::Any,
}

/// How often (record time) idle state is swept and marks are checked.
const SWEEP_EVERY: Secs = 60;

pub struct Engine {
    rejects: [bool; 1000],
    v6_prefix: u8,
    clients: Keyed<ClientKey, ClientState>,
    detectors: Vec<Built>,
    disclosure: Option<signals::disclosure::Disclosure>,
    ctx: Ctx,
    cooldown: Keyed<(u8, u64), Secs>,
    roster: Roster,
    marks: Vec<Mark>,
    now: Secs,
    last_sweep: Secs,
    scratch: Vec<Signal>,
    /// Each detector's settings, hashed: a snapshot restores a detector's
    /// part only into one built from the same ([`snapshot`]).
    fingerprints: Vec<(&'static str, u64)>,
    /// Record time a restored snapshot had reached: marks up to it were
    /// judged before the restart (0: none restored).
    resumed: Secs,
}

impl Engine {
    pub fn new(cfg: &DetectConfig, v6_prefix: u8) -> Self {
        let mut rejects = [false; 1000];
        for s in &cfg.reject_statuses {
            rejects[*s as usize % 1000] = true;
        }
        let (detectors, disclosure) = cfg.build();
        let idle = cfg.client_idle.as_secs().min(u32::MAX as u64) as Secs;
        Self {
            rejects,
            v6_prefix,
            clients: Keyed::new(cfg.max_clients, idle),
            detectors: detectors.into_iter().map(|(name, cooldown, det)| Built { name, cooldown, det }).collect(),
            disclosure,
            ctx: Ctx {
                endpoints: Keyed::new(cfg.max_endpoints, idle),
                exchanges: 0,
                served: 0,
                served_without_user_agent: 0,
                cadence: cfg.cadence.rules(),
                documented: Globs::new(&cfg.documented_endpoints),
            },
            cooldown: Keyed::new(cfg.max_clients, 7 * 86_400),
            roster: Roster::new(cfg.max_actors),
            marks: Vec::new(),
            now: 0,
            last_sweep: 0,
            scratch: Vec::new(),
            fingerprints: spec::fingerprints(cfg),
            resumed: 0,
        }
    }

    /// A disclosure marker; judged once record time passes it.
    pub fn add_mark(&mut self, m: Mark) {
        if self.resumed != 0 && (secs(m.at) <= self.resumed || self.marks.contains(&m)) {
            return; // judged, or kept, before a restart
        }
        self.marks.push(m);
        self.marks.sort_by_key(|m| m.at);
    }

    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// The detectors judging exchanges, in order.
    pub fn detectors(&self) -> impl Iterator<Item = &signals::Any> {
        self.detectors.iter().map(|d| &d.det)
    }

    /// The newest record time seen.
    pub fn now(&self) -> Secs {
        self.now
    }

    /// Whether `status` is one of the configured reject statuses.
    pub fn is_reject(&self, status: u16) -> bool {
        status != 0 && self.rejects[status as usize % 1000]
    }

    /// Whether an endpoint template is part of the API (configured, or
    /// learned from where requests succeed).
    pub fn documented(&self, endpoint: &str) -> bool {
        self.ctx.documented(key64(endpoint.as_bytes()), endpoint)
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Keys evicted so far to keep each bounded table within its cap
    /// (none is ever swept for being idle: that is not an eviction).
    pub fn evictions(&self) -> [(&'static str, u64); 3] {
        [
            ("clients", self.clients.evicted),
            ("endpoints", self.ctx.endpoints.evicted),
            ("actors", self.roster().evicted),
        ]
    }

    /// Keys held by every table, for the metrics.
    pub fn keys(&self) -> usize {
        self.clients.len() + self.detectors.iter().map(|d| d.det.keys()).sum::<usize>()
    }

    pub fn detector_names(&self) -> Vec<&'static str> {
        self.detectors.iter().map(|d| d.name).collect()
    }

    /// Where the client index is, until a client is added: for
    /// [`Engine::prefetch_index`].
    pub fn client_index(&self) -> keyed::IndexLines {
        self.clients.index_lines()
    }

    /// The first of the steps that fetch the state of the exchange's
    /// client into cache (the client table outgrows the caches on a busy
    /// API), for a batch of exchanges, each step over the whole batch
    /// before the next: starts fetching the part of the client index
    /// (`lines`, from [`Engine::client_index`]) that finding the client
    /// reads, and returns the client's hash for [`Engine::prefetch`].
    pub fn prefetch_index(&self, ex: &Exchange, lines: &keyed::IndexLines) -> u64 {
        let hash = self.clients.hash(&self.client_key(ex));
        lines.prefetch(hash);
        hash
    }

    /// The second step: once the index lines have arrived, finds where the
    /// state of the client whose hash this is probably is, and starts
    /// fetching it. Call after attribution and some work before
    /// [`Engine::observe`]. The place is for [`Engine::prefetch_more`] and
    /// [`Engine::observe_at`].
    pub fn prefetch(&self, hash: u64) -> Option<usize> {
        self.clients.prefetch(hash)
    }

    fn client_key(&self, ex: &Exchange) -> ClientKey {
        ClientKey::new(ex.client.unwrap_or(ex.peer), self.v6_prefix)
    }

    /// The step after [`Engine::prefetch`], once the state at `at` has
    /// arrived: starts fetching what it points to, the reject-only state
    /// and the actor. Fetched when the exchange was judged, the reject-only
    /// state came a few dozen instructions before its first reader, and
    /// that read was a fifth of the engine's own samples under perf. No
    /// key is checked: a wrong guess fetches what another client needs.
    pub fn prefetch_more(&self, at: Option<usize>) {
        let Some(c) = at.and_then(|i| self.clients.peek(i)) else { return };
        if let Some(r) = &c.rejected {
            crate::prefetch::read(&**r as *const RejectState);
        }
        if c.actor != 0 {
            self.roster.prefetch(c.actor_slot);
        }
    }

    pub fn observe(&mut self, ex: &Exchange, out: &mut Vec<Finding>) {
        self.observe_at(ex, None, out);
    }

    /// [`Engine::observe`], told where [`Engine::prefetch`] guessed the
    /// client's state is.
    pub fn observe_at(&mut self, ex: &Exchange, at: Option<usize>, out: &mut Vec<Finding>) {
        let now = secs(ex.ts);
        self.now = self.now.max(now);
        self.housekeeping(out);

        let key = self.client_key(ex);
        let status = ex.status.unwrap_or(0);
        let rejected = self.rejects[status as usize % 1000] && status != 0;
        let success = (200..300).contains(&status);
        let endpoint = ex.endpoint.as_deref().unwrap_or_else(|| ex.path());
        let ep = key64(endpoint.as_bytes());
        self.ctx.exchanges += 1;
        if success {
            self.ctx.served += 1;
            if ex.user_agent().is_none_or(|u| crate::ascii::trim(u).is_empty()) {
                self.ctx.served_without_user_agent += 1;
            }
        }

        let mut signals = std::mem::take(&mut self.scratch);
        // What the state points to was fetched a stage ahead (see
        // `Engine::prefetch_more`): fetched here, it came too late.
        let c = self.clients.touch_at(at, key, now, || ClientState { first: now, ..Default::default() });
        let prev = c.last;
        c.last = c.last.max(now);
        c.requests = c.requests.saturating_add(1);
        if rejected {
            c.rejects = c.rejects.saturating_add(1);
        }
        if success {
            c.flags |= EVER_SUCCEEDED;
        }
        if !matches!(&*ex.method, "GET" | "HEAD") {
            c.flags |= SENT_NON_GET;
        }
        let burst = c.cadence.observe(now, prev, &self.ctx.cadence);
        // A poller the API turns away (one it serves is a customer already).
        if burst
            && c.actor == 0
            && c.rejects > 0
            && !c.has(EVER_SUCCEEDED)
            && let Some(p) = c.cadence.regular_period(&self.ctx.cadence)
        {
            signals.push(
                Signal::new("cadence", evidence::REGULAR_CADENCE, 0, vec![key], format!("polls every {}", human(p)))
                    .silent(),
            );
        }
        // Built once: filling all of it for each detector was 290
        // instructions per exchange.
        let mut o = Obs {
            ex,
            now,
            key,
            rejected,
            success,
            endpoint,
            ep,
            ctx: &self.ctx,
            cooldowns: &self.cooldown,
            detector: 0,
            cooldown: 0,
        };
        for (i, d) in self.detectors.iter_mut().enumerate() {
            (o.detector, o.cooldown) = (i as u8, d.cooldown);
            let before = signals.len();
            d.det.observe(&o, c, &mut signals);
            debug_assert!(signals[before..].iter().all(|s| s.detector == d.name), "{}", d.name);
        }
        let actor = c.actor;

        if success {
            let s = self.ctx.endpoints.touch(ep, now, EndpointStats::default);
            s.successes = s.successes.saturating_add(1);
            if !matches!(&*ex.method, "GET" | "HEAD" | "OPTIONS") {
                s.write_successes = s.write_successes.saturating_add(1);
            }
        }
        if actor != 0 {
            let documented = self.ctx.documented(ep, endpoint);
            let (cadence, rules) = (&mut c.cadence, &self.ctx.cadence);
            self.roster.touch(
                (&mut c.actor, &mut c.actor_slot),
                key,
                ex,
                (now, ep, burst),
                rejected,
                documented,
                || cadence.regular_period(rules),
            );
        }
        if !signals.is_empty() {
            self.apply(&mut signals, ex, out);
        }
        self.scratch = signals;
    }

    /// Marks that record time has reached, sweeps, and disclosure checks.
    fn housekeeping(&mut self, out: &mut Vec<Finding>) {
        let now = self.now;
        while self.marks.first().is_some_and(|m| secs(m.at) <= now) {
            let m = self.marks.remove(0);
            if let Some(d) = &mut self.disclosure {
                d.on_mark(&m, self.clients.iter(), &self.ctx.cadence);
            }
        }
        if now < self.last_sweep + SWEEP_EVERY {
            return;
        }
        self.last_sweep = now;
        self.clients.sweep(now);
        self.ctx.endpoints.sweep(now);
        self.cooldown.sweep(now);
        for d in &mut self.detectors {
            d.det.sweep(now);
        }
        self.check_disclosure(out);
    }

    fn check_disclosure(&mut self, out: &mut Vec<Finding>) {
        let Some(d) = &mut self.disclosure else { return };
        let mut signals = Vec::new();
        d.check(self.now, &self.clients, &mut signals);
        if !signals.is_empty() {
            let ex = Exchange { ts: self.now as Nanos * 1_000_000_000, ..Default::default() };
            self.apply(&mut signals, &ex, out);
        }
    }

    /// End of input: judge what record time now allows and stop.
    pub fn finish(&mut self, out: &mut Vec<Finding>) {
        self.check_disclosure(out);
    }

    /// Cooldowns, actors, classification, findings. Out of line: most
    /// exchanges signal nothing.
    #[cold]
    #[inline(never)]
    fn apply(&mut self, signals: &mut Vec<Signal>, ex: &Exchange, out: &mut Vec<Finding>) {
        let now = secs(ex.ts).max(self.now);
        for s in signals.drain(..) {
            let idx = self.detectors.iter().position(|d| d.name == s.detector).map_or(u8::MAX, |i| i as u8);
            let cooldown = self.detectors.get(idx as usize).map_or(self.disclosure_cooldown(), |d| d.cooldown);
            let mut report = s.report;
            if report {
                let last = self.cooldown.touch((idx, s.key), now, || 0);
                if *last != 0 && now.saturating_sub(*last) < cooldown {
                    report = false;
                } else {
                    *last = now.max(1);
                }
            }
            // Actors for the clients concerned (created as needed).
            let mut ids = Vec::with_capacity(s.clients.len());
            let mut seen = HashSet::<u32, foldhash::fast::FixedState>::default();
            for k in &s.clients {
                let Some(c) = self.clients.get_mut(k) else { continue };
                let id = match self.roster.resolve(c.actor, *k) {
                    Some(id) => id,
                    None => {
                        let id = self.roster.create(*k, c, &self.ctx.cadence);
                        c.actor = id;
                        if *k == s.clients[0] && ex.ts != 0 && self.client_key(ex) == *k {
                            let ep = ex.endpoint.as_deref().unwrap_or("");
                            let h = key64(ep.as_bytes());
                            let doc = self.ctx.documented(h, ep);
                            self.roster.touch_details(id, ex, h, doc);
                        }
                        id
                    }
                };
                if seen.insert(id) {
                    ids.push(id);
                }
            }
            if s.merge && ids.len() > 1 {
                let survivor = self.roster.merge(&ids);
                for k in &s.clients {
                    if let Some(c) = self.clients.get_mut(k) {
                        c.actor = survivor;
                    }
                }
                ids = vec![survivor];
            }
            for id in &ids {
                self.roster.add_evidence(*id, s.kind, s.detector, &s.summary, now);
            }
            if !report {
                continue;
            }
            let primary = ids.first().and_then(|id| self.roster.get(*id));
            out.push(Finding {
                ts: if ex.ts != 0 { ex.ts } else { now as Nanos * 1_000_000_000 },
                detector: s.detector,
                actor: primary.map(|a| a.id.clone()),
                classification: primary.map_or(evidence::Class::Unknown, |a| a.class),
                clients: s.clients.iter().map(ToString::to_string).collect(),
                endpoint: s.endpoint,
                summary: s.summary,
                evidence: s.evidence,
            });
        }
    }

    fn disclosure_cooldown(&self) -> Secs {
        u32::MAX
    }
}

/// `3600` → `60m`, `90` → `90s`, `86400` → `24h`.
pub fn human(secs: Secs) -> String {
    match secs {
        s if s >= 86_400 && s % 3600 == 0 && s >= 2 * 86_400 => format!("{}d", s / 86_400),
        s if s >= 7200 => format!("{}h", (s + 1800) / 3600),
        s if s >= 120 => format!("{}m", (s + 30) / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(3600), "60m");
        assert_eq!(human(7200), "2h");
        assert_eq!(human(45), "45s");
    }
}
