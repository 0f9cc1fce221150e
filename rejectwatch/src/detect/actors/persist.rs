//! The roster in a snapshot: the actors in array order with everything
//! that counts or decides (the verdict is worked out again from the
//! evidence), the ids merged actors forward to, and the next id. Names of
//! evidence kinds and detectors come back as the static names they were.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Actor, Entry, EvidenceEntry, Noted, Roster, Verdict};
use crate::detect::{
    client::ClientKey,
    evidence::{Class, Leaning},
    textlist::TextList,
};
use crate::time::Secs;

/// Field for field what [`Saved`] reads, borrowed.
#[derive(Serialize)]
struct ActorOut<'a> {
    num: u32,
    class: u8,
    noted_next: u8,
    noted: ([u32; super::ENDPOINTS_NOTED], [u32; 2], [u32; 2]),
    first_seen: Secs,
    last_seen: Secs,
    cadence_seconds: Option<Secs>,
    requests: u64,
    rejects: u64,
    undocumented_requests: u64,
    honest_unfolded: u32,
    scanner_unfolded: u32,
    evidence: Vec<EvidenceOut<'a>>,
    id: &'a str,
    clients: &'a [ClientKey],
    countries: Vec<&'a str>,
    asns: &'a [u32],
    user_agents: Vec<&'a str>,
    products: Vec<&'a str>,
    endpoints: Vec<&'a str>,
    cadence: Option<&'a str>,
}

#[derive(Serialize)]
struct EvidenceOut<'a> {
    kind: &'a str,
    leaning: u8,
    weight: u8,
    detector: &'a str,
    count: u32,
    first: Secs,
    summary: &'a str,
}

#[derive(Deserialize)]
struct ActorIn {
    num: u32,
    class: u8,
    noted_next: u8,
    noted: ([u32; super::ENDPOINTS_NOTED], [u32; 2], [u32; 2]),
    first_seen: Secs,
    last_seen: Secs,
    cadence_seconds: Option<Secs>,
    requests: u64,
    rejects: u64,
    undocumented_requests: u64,
    honest_unfolded: u32,
    scanner_unfolded: u32,
    evidence: Vec<EvidenceIn>,
    id: String,
    clients: Vec<ClientKey>,
    countries: Vec<String>,
    asns: Vec<u32>,
    user_agents: Vec<String>,
    products: Vec<String>,
    endpoints: Vec<String>,
    cadence: Option<String>,
}

#[derive(Deserialize)]
struct EvidenceIn {
    kind: String,
    leaning: u8,
    weight: u8,
    detector: String,
    count: u32,
    first: Secs,
    summary: String,
}

#[derive(Serialize)]
struct RosterOut<'a> {
    next: u32,
    evicted: u64,
    forwards: Vec<(u32, u32)>,
    actors: Vec<ActorOut<'a>>,
}

/// A roster as read back from a snapshot, for [`Roster::restore`].
#[derive(Deserialize)]
pub struct Saved {
    next: u32,
    evicted: u64,
    forwards: Vec<(u32, u32)>,
    actors: Vec<ActorIn>,
}

const CLASSES: [Class; 4] = Class::ALL;
const LEANINGS: [Leaning; 4] = [Leaning::Threat, Leaning::Prospect, Leaning::Misconfiguration, Leaning::Neutral];

fn index_of<T: PartialEq>(all: &[T], x: &T) -> u8 {
    all.iter().position(|y| y == x).unwrap_or(0) as u8
}

impl Serialize for Roster {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let actors = self
            .actors
            .iter()
            .map(|a| ActorOut {
                num: a.num,
                class: index_of(&CLASSES, &a.class),
                noted_next: a.noted_next,
                noted: (a.noted.endpoints, a.noted.agents, a.noted.places),
                first_seen: a.first_seen,
                last_seen: a.last_seen,
                cadence_seconds: a.cadence_seconds,
                requests: a.requests,
                rejects: a.rejects,
                undocumented_requests: a.undocumented_requests,
                honest_unfolded: a.honest_unfolded,
                scanner_unfolded: a.scanner_unfolded,
                evidence: a
                    .evidence
                    .iter()
                    .map(|e| EvidenceOut {
                        kind: e.kind,
                        leaning: index_of(&LEANINGS, &e.leaning),
                        weight: e.weight,
                        detector: e.detector,
                        count: e.count,
                        first: e.first,
                        summary: &e.summary,
                    })
                    .collect(),
                id: &a.id,
                clients: &a.clients,
                countries: texts(&a.countries),
                asns: &a.asns,
                user_agents: texts(&a.user_agents),
                products: texts(&a.products),
                endpoints: texts(&a.endpoints),
                cadence: a.cadence.as_deref(),
            })
            .collect();
        let forwards = self
            .index
            .iter()
            .filter_map(|(id, e)| match e {
                Entry::Forward(to) => Some((*id, *to)),
                Entry::Live(_) => None,
            })
            .collect();
        RosterOut { next: self.next, evicted: self.evicted, forwards, actors }.serialize(s)
    }
}

/// The static names that evidence carries (compared by their text, never
/// their address); a snapshot brings them back as the same names. Distinct names are few (kinds and detectors); a corrupt
/// file naming more than [`MAX_NAMES`] loses the entries past them.
struct Names(HashMap<String, &'static str>);

const MAX_NAMES: usize = 256;

impl Names {
    fn get(&mut self, s: String) -> Option<&'static str> {
        if let Some(n) = self.0.get(&s) {
            return Some(n);
        }
        if self.0.len() >= MAX_NAMES {
            return None;
        }
        // Once per name per restore, a few dozen at the start of a process.
        let n: &'static str = Box::leak(s.clone().into_boxed_str());
        self.0.insert(s, n);
        Some(n)
    }
}

fn texts(l: &TextList) -> Vec<&str> {
    l.iter().collect()
}

impl Roster {
    /// Whether id `id` leads (through merges) to a live actor that lists
    /// `key` or is full: what a client's actor id must satisfy, checked for
    /// clients restored beside a roster.
    pub fn holds(&self, mut id: u32, key: ClientKey) -> bool {
        for _ in 0..64 {
            match self.index.get(&id) {
                Some(Entry::Live(s)) => {
                    let a = &self.actors[*s as usize];
                    return a.clients.contains(&key) || a.clients.len() >= super::MAX_CLIENTS;
                }
                Some(Entry::Forward(to)) => id = *to,
                None => return true, // evicted: the client makes a new one
            }
        }
        false
    }

    /// Replaces the roster with a saved one. Past this roster's cap (the
    /// configuration shrank), the most recently seen actors are kept and
    /// forwarders go first. Returns the actors kept.
    pub fn restore(&mut self, saved: Saved) -> usize {
        let mut names = Names(HashMap::new());
        let mut actors: Vec<ActorIn> = saved.actors;
        let mut seen = std::collections::HashSet::new();
        actors.retain(|a| a.num != 0 && seen.insert(a.num));
        if actors.len() > self.cap {
            let mut order: Vec<(Secs, usize)> = actors.iter().enumerate().map(|(i, a)| (a.last_seen, i)).collect();
            order.sort_unstable_by(|a, b| b.cmp(a));
            let mut keep = vec![false; actors.len()];
            for &(_, i) in &order[..self.cap] {
                keep[i] = true;
            }
            let mut i = 0;
            actors.retain(|_| {
                i += 1;
                keep[i - 1]
            });
            self.evicted += (order.len() - self.cap) as u64;
        }
        self.actors = super::Chunked::default();
        self.index.clear();
        let mut next = saved.next.max(1);
        for a in actors {
            next = next.max(a.num.saturating_add(1));
            let text_list = |v: Vec<String>| {
                let mut l = TextList::default();
                for t in &v {
                    l.note(&[t], usize::MAX, usize::MAX);
                }
                l
            };
            let evidence = a
                .evidence
                .into_iter()
                .filter_map(|e| {
                    Some(EvidenceEntry {
                        kind: names.get(e.kind)?,
                        leaning: *LEANINGS.get(e.leaning as usize)?,
                        weight: e.weight,
                        detector: names.get(e.detector)?,
                        count: e.count,
                        first: e.first,
                        summary: e.summary,
                    })
                })
                .collect();
            let mut actor = Actor {
                num: a.num,
                class: CLASSES.get(a.class as usize).copied().unwrap_or(Class::Unknown),
                noted_next: a.noted_next % super::ENDPOINTS_NOTED as u8,
                verdict: Verdict::default(),
                first_seen: a.first_seen,
                last_seen: a.last_seen,
                cadence_seconds: a.cadence_seconds,
                requests: a.requests,
                rejects: a.rejects,
                undocumented_requests: a.undocumented_requests,
                honest_unfolded: a.honest_unfolded,
                scanner_unfolded: a.scanner_unfolded,
                noted: Noted { endpoints: a.noted.0, agents: a.noted.1, places: a.noted.2 },
                evidence,
                id: a.id,
                clients: a.clients,
                countries: text_list(a.countries),
                asns: a.asns,
                user_agents: text_list(a.user_agents),
                products: text_list(a.products),
                endpoints: text_list(a.endpoints),
                cadence: a.cadence,
            };
            actor.clients.truncate(super::MAX_CLIENTS);
            // The verdict follows from the evidence, as when it was noted.
            Self::settle(&mut actor);
            self.index.insert(actor.num, Entry::Live(self.actors.len() as u32));
            self.actors.push(actor);
        }
        // Forwarders to ids still known, as room allows.
        let room = self.cap.saturating_sub(self.index.len());
        for (id, to) in saved.forwards.into_iter().filter(|(id, to)| id != to && *id != 0).take(room) {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.index.entry(id) {
                next = next.max(id.saturating_add(1)).max(to.saturating_add(1));
                slot.insert(Entry::Forward(to));
            }
        }
        self.next = next;
        self.evicted += saved.evicted;
        self.actors.len()
    }
}
