//! Actors: clients grouped by strong evidence (the same tool, target and
//! cadence; a hand-off between addresses on one endpoint; the same
//! identity), each with what it did and a classification explained by the
//! evidence that produced it. Only clients a detector or their cadence
//! brought to attention become actors, so the roster stays small; it is
//! capped all the same (the least recently seen actor goes first).
//!
//! Grouping is union-find: a merged actor forwards to its survivor (the
//! older), so clients pointing at it need no rewrite and ids stay stable.

use std::{collections::HashMap, hash::BuildHasher};

use serde::Serialize;

use super::{
    cadence::CadenceRules,
    client::{ClientKey, ClientState},
    evidence::{self, Class, Kind, Leaning},
    human,
    textlist::TextList,
    window::{Secs, h64},
};
use crate::exchange::{Exchange, format_ts};

/// Lists kept per actor are capped: an actor with more is summarised by
/// its counts.
const MAX_CLIENTS: usize = 256;
const MAX_LIST: usize = 16;

#[derive(Clone, Debug, Serialize)]
pub struct EvidenceEntry {
    pub kind: &'static str,
    pub leaning: Leaning,
    pub weight: u8,
    pub detector: &'static str,
    /// How often it was signalled (not while its detector cools down).
    pub count: u32,
    #[serde(serialize_with = "secs_rfc3339")]
    pub first: Secs,
    pub summary: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Actor {
    pub id: String,
    pub classification: Class,
    /// Addresses (IPv6: networks), in the order they joined.
    pub clients: Vec<ClientKey>,
    pub countries: TextList,
    pub asns: Vec<u32>,
    pub user_agents: TextList,
    /// `product/version` of the user agents that name one.
    pub products: TextList,
    pub endpoints: TextList,
    #[serde(serialize_with = "secs_rfc3339")]
    pub first_seen: Secs,
    #[serde(serialize_with = "secs_rfc3339")]
    pub last_seen: Secs,
    pub requests: u64,
    pub rejects: u64,
    /// Requests to endpoints that are not part of the API.
    pub undocumented_requests: u64,
    /// Regular polling period in seconds, if any.
    pub cadence_seconds: Option<Secs>,
    pub cadence: Option<String>,
    /// Ordered by weight, strongest first.
    pub evidence: Vec<EvidenceEntry>,
    #[serde(skip)]
    pub class: Class,
    #[serde(skip)]
    forward: u32,
    #[serde(skip)]
    verdict: Verdict,
    /// Signatures of the descriptive texts of recent exchanges (see
    /// [`detail_signature`]), newest overwriting oldest.
    #[serde(skip)]
    recent: [u64; RECENT],
    #[serde(skip)]
    recent_next: u8,
}

/// Exchanges whose descriptive texts an actor remembers having noted.
const RECENT: usize = 16;

/// What an actor's evidence says, worked out when the evidence changes
/// rather than on every exchange of the actor (sorting and scanning the
/// evidence, and the lists' checks, were a tenth of the pipeline once
/// most exchanges came from actors).
#[derive(Clone, Copy, Debug, Default)]
struct Verdict {
    threat: u32,
    misconfigured: bool,
    /// Evidence a misconfiguration does not explain.
    unexplained: bool,
    regular: bool,
    documented_only: bool,
    /// Where the entries counted on every exchange are (at most a few
    /// dozen kinds, so an index fits a byte).
    honest_at: Option<u8>,
    scanner_at: Option<u8>,
}

/// A hash of the texts an exchange adds to its actor's lists. When an
/// actor has noted an exchange with the same signature, the lists hold all
/// of them already (lists only grow), so checking each list, an
/// allocation apiece, can be skipped. Finer than the lists' own identity
/// (texts unclipped): a difference only costs a check. Made of hashes the
/// earlier stages worked out (the user agent's by its classifier, the
/// endpoint's by the engine), so that an actor's every exchange does not
/// hash its texts again: the product and version follow from the user
/// agent, and its raw length tells apart what trimming made equal.
fn detail_signature(ex: &Exchange, ep: u64) -> u64 {
    let ua = match (ex.user_agent(), ex.ua_key) {
        (None, _) => 0,
        (Some(t), 0) => crate::enrich::useragent::key_of(t),
        (Some(t), k) => k ^ (t.len() as u64).rotate_left(40),
    };
    // Never 0, the value of an empty memory.
    foldhash::fast::FixedState::with_seed(0x5167_0a7e).hash_one((ex.country.as_deref(), ex.asn, ua, ep)) | 1
}

impl Actor {
    /// An actor with only an id, a class, clients and times (for tests of
    /// what consumes the roster).
    #[cfg(test)]
    pub fn stub(id: &str, class: Class, clients: Vec<ClientKey>, first_seen: Secs, last_seen: Secs) -> Self {
        Self {
            id: id.to_string(),
            classification: class,
            clients,
            countries: TextList::default(),
            asns: Vec::new(),
            user_agents: TextList::default(),
            products: TextList::default(),
            endpoints: TextList::default(),
            first_seen,
            last_seen,
            requests: 0,
            rejects: 0,
            undocumented_requests: 0,
            cadence_seconds: None,
            cadence: None,
            evidence: Vec::new(),
            class,
            forward: 0,
            verdict: Verdict::default(),
            recent: [0; RECENT],
            recent_next: 0,
        }
    }
}

fn secs_rfc3339<S: serde::Serializer>(t: &Secs, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_ts(*t as u64 * 1_000_000_000))
}

fn push_capped<T: PartialEq>(v: &mut Vec<T>, x: T, cap: usize) {
    if v.len() < cap && !v.contains(&x) {
        v.push(x);
    }
}

pub struct Roster {
    /// Ids are small counters: SipHash, std's default, was most of a
    /// lookup, and an actor-heavy exchange makes several.
    actors: HashMap<u32, Actor, foldhash::fast::FixedState>,
    next: u32,
    cap: usize,
    pub evicted: u64,
}

impl Roster {
    pub fn new(cap: usize) -> Self {
        Self { actors: HashMap::default(), next: 1, cap: cap.max(1), evicted: 0 }
    }

    /// The live actor a client's index stands for (following merges), if
    /// it has not been evicted. Ids are never reused and an actor's clients
    /// only ever move to its survivor, so a live actor always holds the
    /// client (or is full): no need to scan its list, up to 256 keys, on
    /// every exchange.
    pub fn resolve(&self, mut id: u32, key: ClientKey) -> Option<u32> {
        for _ in 0..64 {
            let a = self.actors.get(&id)?;
            if a.forward == 0 {
                debug_assert!(a.clients.contains(&key) || a.clients.len() >= MAX_CLIENTS, "{key} not in {}", a.id);
                return Some(id);
            }
            id = a.forward;
        }
        None
    }

    pub fn get(&self, id: u32) -> Option<&Actor> {
        self.actors.get(&id).filter(|a| a.forward == 0)
    }

    /// Live actors, oldest first.
    pub fn actors(&self) -> Vec<&Actor> {
        let mut v: Vec<&Actor> = self.actors.values().filter(|a| a.forward == 0).collect();
        v.sort_by(|a, b| (a.first_seen, &a.id).cmp(&(b.first_seen, &b.id)));
        v
    }

    /// Live actors in no particular order (cheaper than [`Roster::actors`]).
    pub fn iter(&self) -> impl Iterator<Item = &Actor> {
        self.actors.values().filter(|a| a.forward == 0)
    }

    pub fn len(&self) -> usize {
        self.actors.values().filter(|a| a.forward == 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A new actor for one client, seeded from what the client table knows.
    pub fn create(&mut self, key: ClientKey, c: &ClientState, rules: &CadenceRules) -> u32 {
        if self.actors.len() >= self.cap {
            self.evict();
        }
        let id = self.next;
        self.next += 1;
        let period = c.cadence.regular_period(rules);
        let stable = h64(format!("{key}@{}", c.first).as_bytes());
        let a = Actor {
            id: format!("a-{:012x}", stable & 0xffff_ffff_ffff),
            classification: Class::Unknown,
            clients: vec![key],
            countries: TextList::default(),
            asns: Vec::new(),
            user_agents: TextList::default(),
            products: TextList::default(),
            endpoints: TextList::default(),
            first_seen: c.first,
            last_seen: c.last,
            requests: c.requests as u64,
            rejects: c.rejects as u64,
            undocumented_requests: 0,
            cadence_seconds: period,
            cadence: period.map(human),
            evidence: Vec::new(),
            class: Class::Unknown,
            forward: 0,
            verdict: Verdict::default(),
            recent: [0; RECENT],
            recent_next: 0,
        };
        self.actors.insert(id, a);
        id
    }

    /// Makes room: forwarders first (they hold nothing), then the least
    /// recently seen, a sixteenth of the roster at a time. Finding the
    /// oldest walks every actor; doing that for each new actor turned a
    /// flood of new scanners past the cap into a walk of the whole roster
    /// per exchange (throughput fell twelvefold), where a batch pays one
    /// walk per cap/16 new actors.
    fn evict(&mut self) {
        let order = self.actors.iter().map(|(id, a)| ((a.forward == 0, a.last_seen, *id), *id));
        for id in super::keyed::smallest(order, (self.cap / 16).max(1)) {
            self.actors.remove(&id);
            self.evicted += 1;
        }
    }

    /// Counts one exchange of a client that belongs to actor `id`. `ep`
    /// is the hash of the exchange's endpoint ([`h64`]); `period` the
    /// client's regular period, asked for only when `burst` says its
    /// intervals changed.
    #[allow(clippy::too_many_arguments)]
    pub fn touch(
        &mut self,
        id: u32,
        key: ClientKey,
        ex: &Exchange,
        (now, ep, burst): (Secs, u64, bool),
        rejected: bool,
        documented: bool,
        period: impl FnOnce() -> Option<Secs>,
    ) {
        let Some(id) = self.resolve(id, key) else { return };
        let Some(a) = self.actors.get_mut(&id) else { return };
        a.last_seen = a.last_seen.max(now);
        a.first_seen = a.first_seen.min(now);
        a.requests += 1;
        if rejected {
            a.rejects += 1;
        }
        // Working the period out sorts the client's intervals: only for an
        // actor that has none yet, when a new burst added an interval (the
        // actor took the period its client had when it was made or merged).
        if a.cadence_seconds.is_none()
            && burst
            && let Some(p) = period()
        {
            a.cadence_seconds = Some(p);
            a.cadence = Some(human(p));
        }
        Self::details(a, ex, ep, documented);
    }

    /// The descriptive lists: country, ASN, user agent, endpoint.
    pub fn touch_details(&mut self, id: u32, ex: &Exchange, ep: u64, documented: bool) {
        if let Some(a) = self.actors.get_mut(&id) {
            Self::details(a, ex, ep, documented);
        }
    }

    fn details(a: &mut Actor, ex: &Exchange, ep: u64, documented: bool) {
        let sig = detail_signature(ex, ep);
        if !a.recent.contains(&sig) {
            if let Some(c) = &ex.country {
                a.countries.note(&[c], usize::MAX, MAX_LIST);
            }
            if let Some(n) = ex.asn {
                push_capped(&mut a.asns, n, MAX_LIST);
            }
            if let Some(ua) = ex.user_agent() {
                a.user_agents.note(&[ua], 256, 8);
            }
            if let (Some(p), Some(v)) = (&ex.ua_product, &ex.ua_version) {
                a.products.note(&[p, "/", v], usize::MAX, 8);
            }
            if let Some(e) = &ex.endpoint {
                a.endpoints.note(&[e], 256, MAX_LIST);
            }
            a.recent[a.recent_next as usize % RECENT] = sig;
            a.recent_next = a.recent_next.wrapping_add(1);
        }
        if !documented {
            a.undocumented_requests += 1;
        }
        if ex.ua_family == Some("scanner") {
            match a.verdict.scanner_at {
                Some(i) => Self::count(a, i),
                None => {
                    Self::note_with(a, evidence::SCANNER_UA, "user-agent", || "identifies as a scanning tool".into(), 0)
                }
            }
        }
        let honest = matches!(ex.ua_family, Some("http-library" | "cli")) && ex.ua_version.is_some();
        if honest {
            match a.verdict.honest_at {
                Some(i) => Self::count(a, i),
                None => {
                    let p = ex.ua_product.as_deref().unwrap_or("");
                    let v = ex.ua_version.as_deref().unwrap_or("");
                    Self::note_with(
                        a,
                        evidence::HONEST_UA,
                        "user-agent",
                        || format!("sends an unaltered {p}/{v} user agent"),
                        0,
                    )
                }
            }
        }
        Self::classify(a);
    }

    fn count(a: &mut Actor, entry: u8) {
        if let Some(e) = a.evidence.get_mut(entry as usize) {
            e.count = e.count.saturating_add(1);
        }
    }

    /// Groups actors into the oldest of them; returns the survivor.
    pub fn merge(&mut self, ids: &[u32]) -> u32 {
        let live: Vec<u32> = ids.iter().copied().filter(|id| self.get(*id).is_some()).collect();
        let Some(&survivor) = live.iter().min_by_key(|id| (self.actors[id].first_seen, **id)) else {
            return ids[0];
        };
        for id in live {
            if id == survivor {
                continue;
            }
            let mut other = self.actors.remove(&id).expect("live");
            let s = self.actors.get_mut(&survivor).expect("live");
            for c in other.clients.drain(..) {
                push_capped(&mut s.clients, c, MAX_CLIENTS);
            }
            s.countries.absorb(std::mem::take(&mut other.countries), MAX_LIST);
            for n in other.asns.drain(..) {
                push_capped(&mut s.asns, n, MAX_LIST);
            }
            s.user_agents.absorb(std::mem::take(&mut other.user_agents), 8);
            s.products.absorb(std::mem::take(&mut other.products), 8);
            s.endpoints.absorb(std::mem::take(&mut other.endpoints), MAX_LIST);
            s.first_seen = s.first_seen.min(other.first_seen);
            s.last_seen = s.last_seen.max(other.last_seen);
            s.requests += other.requests;
            s.rejects += other.rejects;
            s.undocumented_requests += other.undocumented_requests;
            if s.cadence_seconds.is_none() {
                (s.cadence_seconds, s.cadence) = (other.cadence_seconds, other.cadence.take());
            }
            for e in other.evidence.drain(..) {
                match s.evidence.iter_mut().find(|x| x.kind == e.kind) {
                    Some(x) => {
                        x.count += e.count;
                        x.first = x.first.min(e.first);
                    }
                    None => s.evidence.push(e),
                }
            }
            Self::settle(s);
            Self::classify(s);
            // A stub that forwards to the survivor.
            self.actors.insert(id, Actor { forward: survivor, ..other });
        }
        survivor
    }

    pub fn add_evidence(&mut self, id: u32, kind: Kind, detector: &'static str, summary: &str, now: Secs) {
        if let Some(a) = self.actors.get_mut(&id) {
            Self::note(a, kind, detector, summary, now);
            Self::classify(a);
        }
    }

    fn note(a: &mut Actor, kind: Kind, detector: &'static str, summary: &str, now: Secs) {
        Self::note_with(a, kind, detector, || summary.to_string(), now);
    }

    /// The summary is only made for new evidence: repeats just count.
    fn note_with(a: &mut Actor, kind: Kind, detector: &'static str, summary: impl FnOnce() -> String, now: Secs) {
        match a.evidence.iter_mut().find(|e| e.kind == kind.name) {
            Some(e) => e.count = e.count.saturating_add(1),
            None => {
                a.evidence.push(EvidenceEntry {
                    kind: kind.name,
                    leaning: kind.leaning,
                    weight: kind.weight,
                    detector,
                    count: 1,
                    first: if now == 0 { a.last_seen } else { now },
                    summary: summary(),
                });
                Self::settle(a);
            }
        }
    }

    /// After the evidence changed: orders it by weight and works out what
    /// it says. Counts do not enter into either.
    fn settle(a: &mut Actor) {
        a.evidence.sort_by(|x, y| y.weight.cmp(&x.weight).then(x.first.cmp(&y.first)).then(x.kind.cmp(y.kind)));
        let at = |k: Kind| a.evidence.iter().position(|e| e.kind == k.name).and_then(|i| u8::try_from(i).ok());
        let sum = |l: Leaning| a.evidence.iter().filter(|e| e.leaning == l).map(|e| e.weight as u32).sum::<u32>();
        let has = |k: Kind| a.evidence.iter().any(|e| e.kind == k.name);
        a.verdict = Verdict {
            threat: sum(Leaning::Threat),
            misconfigured: sum(Leaning::Misconfiguration) > 0,
            unexplained: a.evidence.iter().any(|e| evidence::beyond_misconfiguration(e.kind)),
            regular: has(evidence::REGULAR_CADENCE),
            documented_only: has(evidence::DOCUMENTED_ONLY),
            honest_at: at(evidence::HONEST_UA),
            scanner_at: at(evidence::SCANNER_UA),
        };
    }

    /// The dual read: threat evidence outweighs everything; our own
    /// mistakes are never threats unless something else makes them one; a
    /// prospect is an honest library on a regular cadence with no more than
    /// weak threat evidence.
    fn classify(a: &mut Actor) {
        if a.undocumented_requests == 0 && a.requests > 0 && a.verdict.regular && !a.verdict.documented_only {
            Self::note(a, evidence::DOCUMENTED_ONLY, "endpoints", "polls only documented endpoints", 0);
        } else if a.undocumented_requests > 0 && a.verdict.documented_only {
            a.evidence.retain(|e| e.kind != evidence::DOCUMENTED_ONLY.name);
            Self::settle(a);
        }
        if a.cadence_seconds.is_some() && !a.verdict.regular {
            let c = a.cadence.clone().unwrap_or_default();
            Self::note(a, evidence::REGULAR_CADENCE, "cadence", &format!("polls every {c}"), 0);
        }
        let v = a.verdict;
        a.class = if v.misconfigured && !v.unexplained {
            Class::Misconfiguration
        } else if v.threat >= evidence::THREAT_AT {
            Class::Threat
        } else if v.misconfigured {
            Class::Misconfiguration
        } else if v.threat <= evidence::PROSPECT_TOLERATES
            && v.honest_at.is_some()
            && v.regular
            // Someone the API turns away; one it serves is a customer.
            && a.rejects * 2 > a.requests
        {
            Class::Prospect
        } else {
            Class::Unknown
        };
        a.classification = a.class;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::spec::CadenceSpec;

    #[test]
    fn repeated_exchanges_keep_lists_and_counts_exact() {
        let rules = CadenceSpec::default().rules();
        let mut r = Roster::new(8);
        let key = ClientKey::new("10.0.0.1".parse().unwrap(), 64);
        let id = r.create(key, &ClientState { first: 1, last: 1, ..Default::default() }, &rules);
        let ex = |endpoint: &str, ua: &str| Exchange {
            request: crate::exchange::RequestText::new("/x").with_user_agent(Some(ua)),
            endpoint: Some(endpoint.to_string()),
            ua_family: Some("http-library"),
            ua_product: Some("python-requests".into()),
            ua_version: Some("2.31".into()),
            country: Some("NL".into()),
            ..Default::default()
        };
        // More distinct exchanges (24) than the actor remembers (16), round
        // and round, then a new text after them.
        let endpoints = ["/a", "/b", "/c", "/d", "/e", "/f"];
        let agents = ["python-requests/2.28", "python-requests/2.29", "python-requests/2.30", "python-requests/2.31"];
        for i in 0..240 {
            let e = ex(endpoints[i % 6], agents[(i / 6) % 4]);
            r.touch(id, key, &e, (10 + i as Secs, h64(endpoints[i % 6].as_bytes()), false), true, true, || None);
        }
        r.touch(id, key, &ex("/a", "python-requests/2.32"), (1000, h64(b"/a"), true), false, false, || None);
        let a = r.get(id).expect("live");
        assert_eq!(a.endpoints.iter().collect::<Vec<_>>(), endpoints);
        assert_eq!(a.user_agents.len(), 5);
        assert_eq!(a.countries.iter().collect::<Vec<_>>(), ["NL"]);
        assert_eq!((a.requests, a.rejects, a.undocumented_requests), (241, 240, 1));
        let honest = a.evidence.iter().find(|e| e.kind == evidence::HONEST_UA.name).expect("honest evidence");
        assert_eq!(honest.count, 241);
    }

    #[test]
    fn a_full_roster_makes_room_by_the_least_recently_seen() {
        let rules = CadenceSpec::default().rules();
        let mut r = Roster::new(32);
        let mut ids = Vec::new();
        for i in 0..32u32 {
            let key = ClientKey::new(std::net::IpAddr::from([10, 0, 0, i as u8]), 64);
            // Seen in an order unlike creation: actor i last at 1000 - i.
            let c = ClientState { first: 1, last: 1000 - i, ..Default::default() };
            ids.push((r.create(key, &c, &rules), key));
        }
        assert_eq!((r.len(), r.evicted), (32, 0));
        let newcomer = ClientKey::new("10.0.1.1".parse().unwrap(), 64);
        let id = r.create(newcomer, &ClientState { first: 2000, last: 2000, ..Default::default() }, &rules);
        // A batch of cap/16 = 2 went: the two seen longest ago (31 and 30).
        assert_eq!((r.len(), r.evicted), (31, 2));
        for (i, (old, key)) in ids.iter().enumerate() {
            assert_eq!(r.resolve(*old, *key).is_some(), i < 30, "actor {i}");
        }
        assert_eq!(r.resolve(id, newcomer), Some(id));
    }
}
