//! Actors: clients grouped by strong evidence (the same tool, target and
//! cadence; a hand-off between addresses on one endpoint; the same
//! identity), each with what it did and a classification explained by the
//! evidence that produced it. Only clients a detector or their cadence
//! brought to attention become actors, so the roster stays small; it is
//! capped all the same (the least recently seen actor goes first).
//!
//! Grouping is union-find: a merged actor forwards to its survivor (the
//! older), so clients pointing at it need no rewrite and ids stay stable.
//!
//! The actors themselves live in one dense array (in chunks), found
//! through a small index from id to slot (eight bytes an actor, so it
//! stays in cache where a map holding the actors did not): the engine looks
//! the slot up as soon as it has the client's state and prefetches the
//! cache lines of the actor that the exchange's counts touch, only after
//! every detector ran.

use std::{collections::HashMap, hash::BuildHasher};

use serde::Serialize;

use super::{
    cadence::CadenceRules,
    chunked::Chunked,
    client::{ClientKey, ClientState, SlotHint},
    evidence::{self, Class, Kind, Leaning},
    human,
    textlist::TextList,
    window::h64,
};
use crate::{
    exchange::Exchange,
    time::{Secs, format_ts},
};

mod persist;
pub use persist::Saved;

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

/// An actor. Laid out for its every exchange: what [`Roster::touch`] reads
/// and counts fills the first two cache lines, ahead of the evidence, lists
/// and texts that only output and new evidence read. (The
/// compiler's own order spread those fields over all seven lines of the
/// struct: once the actors outgrew the caches, several misses for every
/// exchange of an actor.) Serialized in the order of [`ActorJson`], not
/// this one.
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub struct Actor {
    /// The id clients and the index know it by.
    num: u32,
    pub class: Class,
    noted_next: u8,
    verdict: Verdict,
    pub first_seen: Secs,
    pub last_seen: Secs,
    /// Regular polling period in seconds, if any.
    pub cadence_seconds: Option<Secs>,
    pub requests: u64,
    pub rejects: u64,
    /// Requests to endpoints that are not part of the API.
    pub undocumented_requests: u64,
    /// Exchanges that repeated the honest and the scanning user agent's
    /// evidence, not yet added to those entries' counts ([`Roster::fold`]):
    /// counted here, beside the other counts, an actor's every exchange
    /// with such a user agent no longer reads its evidence list, a cache
    /// miss of its own (through the list's buffer) that needed a prefetch
    /// pass of its own over each batch.
    honest_unfolded: u32,
    scanner_unfolded: u32,
    /// Which descriptive texts the lists hold already (see [`Noted`]).
    noted: Noted,
    /// Ordered by weight, strongest first. Two kinds' counts lag (see
    /// `honest_unfolded`): read them through [`Actor::evidence`].
    evidence: Vec<EvidenceEntry>,

    pub id: String,
    /// Addresses (IPv6: networks), in the order they joined.
    pub clients: Vec<ClientKey>,
    pub countries: TextList,
    pub asns: Vec<u32>,
    pub user_agents: TextList,
    /// `product/version` of the user agents that name one.
    pub products: TextList,
    pub endpoints: TextList,
    pub cadence: Option<String>,
}

/// The part of an [`Actor`] that [`Roster::touch`] reads and counts, which
/// [`Roster::prefetch`] fetches: the first two cache lines.
const COUNTED_BYTES: usize = 128;

// The claim above, kept true (and the size the roster's docs give).
const _: () = assert!(
    size_of::<Actor>() == 384
        && std::mem::offset_of!(Actor, scanner_unfolded) < COUNTED_BYTES
        && std::mem::offset_of!(Actor, noted) + size_of::<Noted>() == COUNTED_BYTES
        && std::mem::offset_of!(Actor, evidence) == COUNTED_BYTES
        && std::mem::offset_of!(Actor, id) == 152
);

/// How an actor is written out (the roster, the API).
#[derive(Serialize)]
struct ActorJson<'a> {
    id: &'a str,
    classification: Class,
    clients: &'a [ClientKey],
    countries: &'a TextList,
    asns: &'a [u32],
    user_agents: &'a TextList,
    products: &'a TextList,
    endpoints: &'a TextList,
    #[serde(serialize_with = "secs_rfc3339")]
    first_seen: Secs,
    #[serde(serialize_with = "secs_rfc3339")]
    last_seen: Secs,
    requests: u64,
    rejects: u64,
    undocumented_requests: u64,
    cadence_seconds: Option<Secs>,
    cadence: Option<&'a str>,
    evidence: &'a [EvidenceEntry],
}

impl Actor {
    /// The evidence, strongest first, each with its whole count.
    pub fn evidence(&self) -> Vec<EvidenceEntry> {
        let mut v = self.evidence.clone();
        add_unfolded(&mut v, (self.honest_unfolded, self.scanner_unfolded));
        v
    }
}

/// Adds counts kept apart (`Actor::honest_unfolded`, `scanner_unfolded`)
/// to their kinds' entries.
fn add_unfolded(entries: &mut [EvidenceEntry], (honest, scanner): (u32, u32)) {
    for e in entries {
        let n = match e.kind {
            k if k == evidence::HONEST_UA.name => honest,
            k if k == evidence::SCANNER_UA.name => scanner,
            _ => continue,
        };
        e.count = e.count.saturating_add(n);
    }
}

impl Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ActorJson {
            id: &self.id,
            classification: self.class,
            clients: &self.clients,
            countries: &self.countries,
            asns: &self.asns,
            user_agents: &self.user_agents,
            products: &self.products,
            endpoints: &self.endpoints,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            requests: self.requests,
            rejects: self.rejects,
            undocumented_requests: self.undocumented_requests,
            cadence_seconds: self.cadence_seconds,
            cadence: self.cadence.as_deref(),
            evidence: &self.evidence(),
        }
        .serialize(s)
    }
}

/// Signatures of the descriptive texts an actor's lists hold already, one
/// memory per family of lists, so that an exchange checks only the lists
/// whose text is new to the actor. Lists only grow, so a text once noted
/// is there for good (or its capped list was full, and stays full):
/// skipping its check changes nothing. One signature over all of an
/// exchange's texts, as before, made each new endpoint, or a rotating
/// actor's each new address, check every list: a cache miss on each
/// list's buffer (`TextList::note` was the largest item of the actors'
/// work under callgrind's cache model). 64 bytes, the second half of the
/// actor's counted bytes. A false match (about one in 350 million for a
/// new endpoint) would leave one text off a descriptive list.
#[derive(Clone, Copy, Debug, Default)]
struct Noted {
    /// Endpoint templates, newest overwriting oldest (`noted_next`).
    endpoints: [u32; ENDPOINTS_NOTED],
    /// User agents (with their product/version), newest first.
    agents: [u32; 2],
    /// Country and ASN together, newest first.
    places: [u32; 2],
}

/// Endpoints an actor remembers having noted: a dozen, what fits beside
/// the other memories (the generated mix's clients visit twelve). An actor
/// that goes round more only checks its endpoint list more often.
const ENDPOINTS_NOTED: usize = 12;

impl Noted {
    /// Whether `sig` is new to a two-entry memory, remembering it first.
    fn first_of_two(pair: &mut [u32; 2], sig: u32) -> bool {
        if pair.contains(&sig) {
            return false;
        }
        *pair = [sig, pair[0]];
        true
    }
}

/// Signatures are never 0, the value of an empty memory.
fn sig32(h: u64) -> u32 {
    (h ^ h >> 32) as u32 | 1
}

/// The user agent's signature, from the hash its classifier worked out
/// (the product and version follow from the text; its raw length tells
/// apart what trimming made equal).
fn agent_signature(ex: &Exchange) -> u32 {
    sig32(match (ex.user_agent(), ex.ua_key) {
        (None, _) => 0,
        (Some(t), 0) => crate::enrich::useragent::key_of(t),
        (Some(t), k) => k ^ (t.len() as u64).rotate_left(40),
    })
}

fn place_signature(ex: &Exchange) -> u32 {
    if ex.country.is_none() && ex.asn.is_none() {
        return 1;
    }
    sig32(foldhash::fast::FixedState::with_seed(0x5167_0a7e).hash_one((ex.country, ex.asn)))
}

/// What an actor's evidence says, worked out when the evidence changes
/// rather than on every exchange of the actor (sorting and scanning the
/// evidence, and the lists' checks, were a tenth of the pipeline once
/// most exchanges came from actors).
#[derive(Clone, Copy, Debug, Default)]
struct Verdict {
    /// The weights of a few dozen kinds at most: two bytes, so that the
    /// counts of [`Actor`] fit its first two cache lines.
    threat: u16,
    misconfigured: bool,
    /// Evidence a misconfiguration does not explain.
    unexplained: bool,
    regular: bool,
    documented_only: bool,
    /// Entries counted on every exchange of a user agent of the kind.
    honest: bool,
    scanner: bool,
}

impl Actor {
    /// An actor with only an id, a class, clients and times (for tests of
    /// what consumes the roster).
    #[cfg(test)]
    pub fn stub(id: &str, class: Class, clients: Vec<ClientKey>, first_seen: Secs, last_seen: Secs) -> Self {
        Self {
            id: id.to_string(),
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
            num: 0,
            verdict: Verdict::default(),
            noted: Noted::default(),
            noted_next: 0,
            honest_unfolded: 0,
            scanner_unfolded: 0,
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

/// Where an id leads: a live actor's slot, or (merged) its survivor's id.
#[derive(Clone, Copy, Debug)]
enum Entry {
    Live(u32),
    Forward(u32),
}

pub struct Roster {
    /// Live actors, in no order (eviction moves the last into the hole).
    /// In chunks: a flood of new actors doubled a vector of them, 384
    /// bytes an actor, copying it whole each time.
    actors: Chunked<Actor>,
    /// Every id still known, live or forwarding. Ids are small counters:
    /// SipHash, std's default, was most of a lookup.
    index: HashMap<u32, Entry, foldhash::fast::FixedState>,
    next: u32,
    cap: usize,
    pub evicted: u64,
}

impl Roster {
    pub fn new(cap: usize) -> Self {
        Self { actors: Chunked::default(), index: HashMap::default(), next: 1, cap: cap.max(1), evicted: 0 }
    }

    fn slot(&self, id: u32) -> Option<usize> {
        match self.index.get(&id)? {
            Entry::Live(s) => Some(*s as usize),
            Entry::Forward(_) => None,
        }
    }

    /// Starts fetching the counted part of the actor a client last found
    /// at `hint`, two cache lines (see [`Actor`]): call as soon as the
    /// client's state is at hand, long before [`Roster::touch`]. By the
    /// hint, not the id: with tens of thousands of actors the index
    /// outgrows the caches, and its walk was a miss of its own, taken
    /// before the prefetch could even start. A stale hint fetches some
    /// other actor, which costs nothing but the fetch.
    pub fn prefetch(&self, hint: SlotHint) {
        if let Some(a) = hint.get().and_then(|s| self.actors.get(s)) {
            crate::prefetch::read((a as *const Actor).cast::<[u8; COUNTED_BYTES]>());
        }
    }

    /// The live actor a client's index stands for (following merges), if
    /// it has not been evicted. Ids are never reused and an actor's clients
    /// only ever move to its survivor, so a live actor always holds the
    /// client (or is full): no need to scan its list, up to 256 keys, on
    /// every exchange.
    pub fn resolve(&self, id: u32, key: ClientKey) -> Option<u32> {
        self.resolve_slot(id, key).map(|s| self.actors[s].num)
    }

    fn resolve_slot(&self, mut id: u32, key: ClientKey) -> Option<usize> {
        for _ in 0..64 {
            match *self.index.get(&id)? {
                Entry::Live(s) => {
                    let a = &self.actors[s as usize];
                    debug_assert!(a.clients.contains(&key) || a.clients.len() >= MAX_CLIENTS, "{key} not in {}", a.id);
                    return Some(s as usize);
                }
                Entry::Forward(to) => id = to,
            }
        }
        None
    }

    pub fn get(&self, id: u32) -> Option<&Actor> {
        self.slot(id).map(|s| &self.actors[s])
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut Actor> {
        self.slot(id).map(|s| &mut self.actors[s])
    }

    /// Live actors, oldest first.
    pub fn actors(&self) -> Vec<&Actor> {
        let mut v: Vec<&Actor> = self.actors.iter().collect();
        v.sort_by(|a, b| (a.first_seen, &a.id).cmp(&(b.first_seen, &b.id)));
        v
    }

    /// Live actors in no particular order (cheaper than [`Roster::actors`]).
    pub fn iter(&self) -> impl Iterator<Item = &Actor> {
        self.actors.iter()
    }

    pub fn len(&self) -> usize {
        self.actors.len()
    }

    /// Takes actor `id` out of the array (the last one moves into its slot)
    /// and out of the index.
    fn take(&mut self, id: u32) -> Option<Actor> {
        let s = self.slot(id)?;
        self.index.remove(&id);
        let a = self.actors.swap_remove(s);
        if let Some(moved) = self.actors.get(s) {
            self.index.insert(moved.num, Entry::Live(s as u32));
        }
        Some(a)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A new actor for one client, seeded from what the client table knows.
    pub fn create(&mut self, key: ClientKey, c: &ClientState, rules: &CadenceRules) -> u32 {
        if self.index.len() >= self.cap {
            self.evict();
        }
        let id = self.next;
        self.next += 1;
        let period = c.cadence.regular_period_now(rules);
        let stable = h64(format!("{key}@{}", c.first).as_bytes());
        let a = Actor {
            id: format!("a-{:012x}", stable & 0xffff_ffff_ffff),
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
            num: id,
            verdict: Verdict::default(),
            noted: Noted::default(),
            noted_next: 0,
            honest_unfolded: 0,
            scanner_unfolded: 0,
        };
        self.index.insert(id, Entry::Live(self.actors.len() as u32));
        self.actors.push(a);
        id
    }

    /// Makes room: forwarders first (they hold nothing), then the least
    /// recently seen, a sixteenth of the roster at a time. Finding the
    /// oldest walks every actor; doing that for each new actor turned a
    /// flood of new scanners past the cap into a walk of the whole roster
    /// per exchange (throughput fell twelvefold), where a batch pays one
    /// walk per cap/16 new actors.
    fn evict(&mut self) {
        // The live ones from the array in its order: reading each one's
        // last sight through the index, in hash order, was a cache miss
        // per actor.
        let forwards = self.index.iter().filter_map(|(id, e)| matches!(e, Entry::Forward(_)).then_some(*id));
        let order = forwards
            .map(|id| ((false, 0, id), id))
            .chain(self.actors.iter().map(|a| ((true, a.last_seen, a.num), a.num)));
        for id in super::keyed::smallest(order, (self.cap / 16).max(1)) {
            if self.take(id).is_none() {
                self.index.remove(&id);
            }
            self.evicted += 1;
        }
        self.actors.trim();
    }

    /// Counts one exchange of a client that belongs to actor `id`. `ep`
    /// is the hash of the exchange's endpoint ([`h64`]); `period` the
    /// client's regular period, asked for only when `burst` says its
    /// intervals changed.
    #[allow(clippy::too_many_arguments)]
    pub fn touch(
        &mut self,
        (id, hint): (&mut u32, &mut SlotHint),
        key: ClientKey,
        ex: &Exchange,
        (now, ep, burst): (Secs, u64, bool),
        rejected: bool,
        documented: bool,
        period: impl FnOnce() -> Option<Secs>,
    ) {
        let s = match hint.get().filter(|&s| self.actors.get(s).is_some_and(|a| a.num == *id)) {
            Some(s) => s,
            None => {
                let Some(s) = self.resolve_slot(*id, key) else { return };
                // The survivor's id, so that a merged client's next
                // exchange finds its actor by the hint too.
                (*id, *hint) = (self.actors[s].num, SlotHint::new(s));
                s
            }
        };
        let a = &mut self.actors[s];
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
        if let Some(a) = self.get_mut(id) {
            Self::details(a, ex, ep, documented);
        }
    }

    fn details(a: &mut Actor, ex: &Exchange, ep: u64, documented: bool) {
        if Noted::first_of_two(&mut a.noted.places, place_signature(ex)) {
            if let Some(c) = &ex.country {
                a.countries.note(&[c], usize::MAX, MAX_LIST);
            }
            if let Some(n) = ex.asn {
                push_capped(&mut a.asns, n, MAX_LIST);
            }
        }
        if Noted::first_of_two(&mut a.noted.agents, agent_signature(ex)) {
            if let Some(ua) = ex.user_agent() {
                a.user_agents.note(&[ua], 256, 8);
            }
            if let (Some(p), Some(v)) = (&ex.ua_product, &ex.ua_version) {
                a.products.note(&[p, "/", v], usize::MAX, 8);
            }
        }
        let sig = sig32(ep);
        if !a.noted.endpoints.contains(&sig) {
            if let Some(e) = &ex.endpoint {
                a.endpoints.note(&[e], 256, MAX_LIST);
            }
            a.noted.endpoints[a.noted_next as usize % ENDPOINTS_NOTED] = sig;
            a.noted_next = (a.noted_next + 1) % ENDPOINTS_NOTED as u8;
        }
        if !documented {
            a.undocumented_requests += 1;
        }
        if ex.ua_family == Some("scanner") {
            if a.verdict.scanner {
                a.scanner_unfolded = a.scanner_unfolded.saturating_add(1);
            } else {
                Self::note_with(a, evidence::SCANNER_UA, "user-agent", || "identifies as a scanning tool".into(), 0);
            }
        }
        let honest = matches!(ex.ua_family, Some("http-library" | "cli")) && ex.ua_version.is_some();
        if honest {
            if a.verdict.honest {
                a.honest_unfolded = a.honest_unfolded.saturating_add(1);
            } else {
                let p = ex.ua_product.as_deref().unwrap_or("");
                let v = ex.ua_version.as_deref().unwrap_or("");
                Self::note_with(
                    a,
                    evidence::HONEST_UA,
                    "user-agent",
                    || format!("sends an unaltered {p}/{v} user agent"),
                    0,
                );
            }
        }
        Self::classify(a);
    }

    /// Adds the counts [`Roster::details`] kept beside the actor's others
    /// to their entries, before the entries move or combine.
    fn fold(a: &mut Actor) {
        let unfolded = (std::mem::take(&mut a.honest_unfolded), std::mem::take(&mut a.scanner_unfolded));
        add_unfolded(&mut a.evidence, unfolded);
    }

    /// Groups actors into the oldest of them; returns the survivor.
    pub fn merge(&mut self, ids: &[u32]) -> u32 {
        let live: Vec<u32> = ids.iter().copied().filter(|id| self.get(*id).is_some()).collect();
        let Some(&survivor) = live.iter().min_by_key(|id| (self.get(**id).map(|a| a.first_seen), **id)) else {
            return ids[0];
        };
        for id in live {
            if id == survivor {
                continue;
            }
            let mut other = self.take(id).expect("live");
            let s = self.get_mut(survivor).expect("live");
            // Counts by entry from here: the entries move and combine.
            Self::fold(&mut other);
            Self::fold(s);
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
            self.index.insert(id, Entry::Forward(survivor));
        }
        survivor
    }

    pub fn add_evidence(&mut self, id: u32, kind: Kind, detector: &'static str, summary: &str, now: Secs) {
        if let Some(a) = self.get_mut(id) {
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
        let sum = |l: Leaning| a.evidence.iter().filter(|e| e.leaning == l).map(|e| u16::from(e.weight)).sum::<u16>();
        let has = |k: Kind| a.evidence.iter().any(|e| e.kind == k.name);
        a.verdict = Verdict {
            threat: sum(Leaning::Threat),
            misconfigured: sum(Leaning::Misconfiguration) > 0,
            unexplained: a.evidence.iter().any(|e| evidence::beyond_misconfiguration(e.kind)),
            regular: has(evidence::REGULAR_CADENCE),
            documented_only: has(evidence::DOCUMENTED_ONLY),
            honest: has(evidence::HONEST_UA),
            scanner: has(evidence::SCANNER_UA),
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
        } else if u32::from(v.threat) >= evidence::THREAT_AT {
            Class::Threat
        } else if v.misconfigured {
            Class::Misconfiguration
        } else if u32::from(v.threat) <= evidence::PROSPECT_TOLERATES
            && v.honest
            && v.regular
            // Someone the API turns away; one it serves is a customer.
            && a.rejects * 2 > a.requests
        {
            Class::Prospect
        } else {
            Class::Unknown
        };
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
        let ex = |endpoint: &str, ua: &str, (country, asn): (&'static str, u32)| Exchange {
            request: crate::exchange::RequestText::new("/x").with_user_agent(Some(ua)),
            endpoint: Some(endpoint.to_string()),
            ua_family: Some("http-library"),
            ua_product: Some("python-requests".into()),
            ua_version: Some(ua.rsplit('/').next().unwrap_or_default().into()),
            country: Some(country),
            asn: Some(asn),
            ..Default::default()
        };
        // More endpoints (14), user agents (4) and places (3) than the
        // actor remembers (12, 2, 2), round and round at different paces,
        // then a new text after them.
        let endpoints = ["/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h", "/i", "/j", "/k", "/l", "/m", "/n"];
        let agents = ["python-requests/2.28", "python-requests/2.29", "python-requests/2.30", "python-requests/2.31"];
        let places = [("NL", 1136), ("DE", 3320), ("US", 16509)];
        let (mut client_id, mut hint) = (id, SlotHint::default());
        for i in 0..240 {
            let endpoint = endpoints[i % endpoints.len()];
            let e = ex(endpoint, agents[(i / 5) % 4], places[i % 3]);
            let at = (10 + i as Secs, h64(endpoint.as_bytes()), false);
            r.touch((&mut client_id, &mut hint), key, &e, at, true, true, || None);
        }
        let e = ex("/a", "python-requests/2.32", places[0]);
        r.touch((&mut client_id, &mut hint), key, &e, (1000, h64(b"/a"), true), false, false, || None);
        let a = r.get(id).expect("live");
        assert_eq!(a.endpoints.iter().collect::<Vec<_>>(), endpoints);
        assert_eq!(a.user_agents.iter().collect::<Vec<_>>(), [&agents[..], &["python-requests/2.32"]].concat());
        assert_eq!(
            a.products.iter().collect::<Vec<_>>(),
            [&agents[..], &["python-requests/2.32"]].concat(),
            "product/version follows each user agent"
        );
        assert_eq!(a.countries.iter().collect::<Vec<_>>(), ["NL", "DE", "US"]);
        assert_eq!(a.asns, [1136, 3320, 16509]);
        assert_eq!((a.requests, a.rejects, a.undocumented_requests), (241, 240, 1));
        let honest = a.evidence().into_iter().find(|e| e.kind == evidence::HONEST_UA.name).expect("honest evidence");
        assert_eq!(honest.count, 241);
    }

    #[test]
    fn user_agent_counts_kept_beside_the_actor_survive_a_merge_and_are_written() {
        let rules = CadenceSpec::default().rules();
        let mut r = Roster::new(8);
        let key = |i: u8| ClientKey::new(std::net::IpAddr::from([10, 0, 0, i]), 64);
        let ex = |family: &'static str, ua: &str| Exchange {
            request: crate::exchange::RequestText::new("/x").with_user_agent(Some(ua)),
            ua_family: Some(family),
            ua_product: Some(ua.split('/').next().unwrap_or_default().into()),
            ua_version: Some("1.0".into()),
            ..Default::default()
        };
        let count = |a: &Actor, kind: Kind| a.evidence().iter().find(|e| e.kind == kind.name).map(|e| e.count);
        // Client 1: 5 honest exchanges; client 2: 3 honest and 4 scanning.
        let mut touch = |i: u8, e: &Exchange, n: usize| {
            let id = r.create(key(i), &ClientState { first: i as Secs, last: i as Secs, ..Default::default() }, &rules);
            let (mut id2, mut hint) = (id, SlotHint::default());
            for t in 0..n {
                r.touch((&mut id2, &mut hint), key(i), e, (10 + t as Secs, 1, false), true, true, || None);
            }
            id
        };
        let a = touch(1, &ex("http-library", "curl/1.0"), 5);
        let b = touch(2, &ex("http-library", "curl/1.0"), 3);
        let (mut b2, mut hint) = (b, SlotHint::default());
        for t in 0..4 {
            r.touch((&mut b2, &mut hint), key(2), &ex("scanner", "sqlmap/1.0"), (20 + t, 2, false), true, true, || {
                None
            });
        }
        let before = r.get(b).expect("live");
        assert_eq!((count(before, evidence::HONEST_UA), count(before, evidence::SCANNER_UA)), (Some(3), Some(4)));
        assert_eq!(r.merge(&[a, b]), a);
        let merged = r.get(a).expect("live");
        assert_eq!((count(merged, evidence::HONEST_UA), count(merged, evidence::SCANNER_UA)), (Some(8), Some(4)));
        // Counted on after the merge, and written whole.
        let (mut a2, mut hint) = (a, SlotHint::default());
        r.touch((&mut a2, &mut hint), key(1), &ex("scanner", "sqlmap/1.0"), (40, 2, false), true, true, || None);
        let json = serde_json::to_value(r.get(a).expect("live")).expect("serialises");
        let counts: Vec<(String, u64)> = json["evidence"]
            .as_array()
            .expect("evidence")
            .iter()
            .map(|e| (e["kind"].as_str().unwrap_or_default().to_string(), e["count"].as_u64().unwrap_or(0)))
            .collect();
        assert!(counts.contains(&("honest_library_user_agent".into(), 8)), "{counts:?}");
        assert!(counts.contains(&("scanner_user_agent".into(), 5)), "{counts:?}");
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

    #[test]
    fn merged_and_evicted_actors_leave_every_other_id_finding_its_own_actor() {
        // Taking an actor out of the array moves the last one into its
        // slot: every id must still lead to its own actor, and a merged id
        // to its survivor, through merges and evictions alike.
        let rules = CadenceSpec::default().rules();
        let mut r = Roster::new(64);
        let key = |i: u32| ClientKey::new(std::net::IpAddr::from([10, 1, (i >> 8) as u8, i as u8]), 64);
        let ids: Vec<u32> = (0..48u32)
            .map(|i| r.create(key(i), &ClientState { first: 1 + i, last: 100 + i, ..Default::default() }, &rules))
            .collect();
        // Pairs (i, i + 1) for even i below 16 merge into i, the older.
        for i in (0..16).step_by(2) {
            assert_eq!(r.merge(&[ids[i + 1], ids[i]]), ids[i]);
        }
        let ex = Exchange::default();
        // What each client's state holds: its actor's id and where it was.
        let mut clients: Vec<(u32, SlotHint)> = ids.iter().map(|&id| (id, SlotHint::default())).collect();
        for (i, (id, hint)) in clients.iter_mut().enumerate() {
            r.touch((id, hint), key(i as u32), &ex, (200, 0, false), false, true, || None);
        }
        // 48 ids are known (40 live, 8 forwarding) of the 64 the roster
        // holds: 28 newcomers make it evict three batches of cap/16 = 4,
        // the forwarders first (oldest ids first), then the least recently
        // seen, the oldest survivors (0, 2, 4, 6), from the middle of the
        // array.
        let more: Vec<u32> = (48..76u32)
            .map(|i| r.create(key(i), &ClientState { first: 300, last: 300, ..Default::default() }, &rules))
            .collect();
        assert_eq!((r.len(), r.evicted), (64, 12));
        for (i, id) in ids.iter().enumerate() {
            let (survivor, requests) = if i < 16 { (ids[i & !1], 2) } else { (*id, 1) };
            let found = r.resolve(*id, key(i as u32));
            match i {
                0..8 => assert_eq!((found, r.get(survivor).is_some()), (None, false), "actor {i}"),
                8..16 if i % 2 == 1 => assert_eq!((found, r.get(survivor).is_some()), (None, true), "actor {i}"),
                _ => assert_eq!(found, Some(survivor), "actor {i}"),
            }
            if let Some(a) = r.get(survivor) {
                assert!(a.clients.contains(&key(i as u32)), "actor {i}: {:?}", a.clients);
                assert_eq!(a.requests, requests, "actor {i}");
            }
        }
        for (j, id) in more.iter().enumerate() {
            assert_eq!(r.resolve(*id, key(48 + j as u32)), Some(*id));
        }
        assert_eq!(r.iter().count(), r.len());
        // The clients' hints went stale as evictions moved actors between
        // slots: each client still counts on its own actor, a merged one
        // on its survivor (its state took the survivor's id at its first
        // exchange after the merge, so the forwarder's eviction does not
        // lose it).
        for (i, (id, hint)) in clients.iter_mut().enumerate() {
            r.touch((id, hint), key(i as u32), &ex, (400, 0, false), false, true, || None);
        }
        for (i, (id, _)) in clients.iter().enumerate() {
            let (survivor, requests) = if i < 16 { (ids[i & !1], 4) } else { (ids[i], 2) };
            if let Some(a) = r.get(survivor) {
                assert_eq!((*id, a.requests), (survivor, requests), "actor {i}");
            }
        }
        // A hint past the array, or to another actor, is not believed.
        let (mut id, mut hint) = (more[0], SlotHint::new(1 << 20));
        r.touch((&mut id, &mut hint), key(48), &ex, (500, 0, false), false, true, || None);
        assert_eq!((id, r.get(more[0]).map(|a| a.requests)), (more[0], Some(1)));
        assert_eq!(r.actors.get(hint.get().expect("a hint")).map(|a| a.num), Some(more[0]));
        assert_eq!((SlotHint::new(usize::MAX).get(), SlotHint::new(0xff_fffe).get()), (None, Some(0xff_fffe)));
    }
}
