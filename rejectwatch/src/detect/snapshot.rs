//! The engine's detection state as bytes, so that a restart resumes the
//! windows instead of starting them again: a slow attacker who spreads
//! work across a restart, or an address rotation two days apart with a
//! restart between, is still seen. Pure: the daemon decides when to take
//! one and where to keep it (`crate::state::snapshot`).
//!
//! What is kept: the client table (with every client-keyed detector's
//! part and the cadence trackers), the endpoint statistics, the counts
//! that feed thresholds, the cooldowns, the actor roster, each detector's
//! own tables and the disclosure watch list. What is not: memos of
//! pattern searches and caches, which only save work.
//!
//! Layout: an 8-byte magic, a little-endian `u32` format version, the
//! payload's length (`u64`) and a 64-bit checksum of it, then the payload
//! (bincode, variable-length integers). A file that is not that, whole,
//! is refused as one [`Error`] and the engine stays fresh.
//!
//! Configuration changes (decided here, documented in
//! docs/operations.md): a different IPv6 prefix or set of reject
//! statuses changes what a client and a reject are, so the whole snapshot
//! is dropped. A detector disabled, or whose settings changed, loses its
//! own part (its tables and cooldowns) and the others are restored; the
//! client table, actors and counts are kept. Caps that shrank keep the
//! most recently active entries, and entries idle past their ttl at the
//! saved record time are dropped.

use serde::{Deserialize, Serialize};

use crate::{state::marks::Mark, time::Secs};

use super::codec::options;
pub use super::codec::{Error, VERSION, decode, encode};

use super::{
    Detector as _, EndpointStats, Engine, actors,
    client::{ClientKey, ClientState},
    keyed::{Keyed, Saved},
};

const MAGIC: &[u8; 8] = b"RWDETECT";
const HEADER: usize = 8 + 4 + 8 + 8;

fn checksum(payload: &[u8]) -> u64 {
    super::window::key64(payload)
}

/// The payload framed with the header.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0; HEADER];
    out.extend_from_slice(payload);
    seal(&mut out);
    out
}

/// Fills in the header of a buffer whose payload follows its first
/// [`HEADER`] bytes: the payload is encoded in place, never copied.
fn seal(buf: &mut [u8]) {
    let (header, payload) = buf.split_at_mut(HEADER);
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    header[20..28].copy_from_slice(&checksum(payload).to_le_bytes());
}

/// The payload of a framed snapshot, checked whole.
pub fn unframe(bytes: &[u8]) -> Result<&[u8], Error> {
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(Error::Magic);
    }
    let word = |at: usize, n: usize| bytes.get(at..at + n).ok_or(Error::Truncated(bytes.len(), HEADER as u64));
    let version = u32::from_le_bytes(word(8, 4)?.try_into().map_err(|_| Error::Magic)?);
    if version != VERSION {
        return Err(Error::Version(version));
    }
    let len = u64::from_le_bytes(word(12, 8)?.try_into().map_err(|_| Error::Magic)?);
    let sum = u64::from_le_bytes(word(20, 8)?.try_into().map_err(|_| Error::Magic)?);
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != len {
        return Err(Error::Truncated(bytes.len(), HEADER as u64 + len));
    }
    if checksum(payload) != sum {
        return Err(Error::Checksum);
    }
    Ok(payload)
}

/// The engine as written; [`Loaded`] reads the same fields in order.
#[derive(Serialize)]
struct Out<'a> {
    now: Secs,
    last_sweep: Secs,
    v6_prefix: u8,
    rejects: Vec<u16>,
    exchanges: u64,
    served: u64,
    served_without_user_agent: u64,
    clients: &'a Keyed<ClientKey, ClientState>,
    endpoints: &'a Keyed<u64, EndpointStats>,
    /// Name, settings' fingerprint, own state.
    detectors: Vec<(&'static str, u64, Vec<u8>)>,
    /// Whose cooldowns the cooldown table's detector numbers are.
    cooldown_names: Vec<&'static str>,
    cooldowns: &'a Keyed<(u8, u64), Secs>,
    roster: &'a actors::Roster,
    /// Its fingerprint and watch list.
    disclosure: Option<(u64, Vec<u8>)>,
    /// Marks not yet reached: kind, time, note.
    marks: Vec<(&'a str, u64, Option<&'a str>)>,
}

#[derive(Deserialize)]
struct Loaded {
    now: Secs,
    last_sweep: Secs,
    v6_prefix: u8,
    rejects: Vec<u16>,
    exchanges: u64,
    served: u64,
    served_without_user_agent: u64,
    clients: Saved<ClientKey, ClientState>,
    endpoints: Saved<u64, EndpointStats>,
    detectors: Vec<(String, u64, Vec<u8>)>,
    cooldown_names: Vec<String>,
    cooldowns: Saved<(u8, u64), Secs>,
    roster: actors::Saved,
    disclosure: Option<(u64, Vec<u8>)>,
    marks: Vec<(String, u64, Option<String>)>,
}

/// What a restore brought back, for the one line the daemon logs.
#[derive(Debug, Default)]
pub struct Restored {
    /// The record time the snapshot had reached.
    pub now: Secs,
    pub clients: usize,
    pub actors: usize,
    /// Detectors whose own state came back.
    pub detectors: usize,
    /// Detectors whose state was dropped (settings changed, disabled, or
    /// unreadable), by name.
    pub dropped: Vec<String>,
}

impl Engine {
    fn reject_statuses(&self) -> Vec<u16> {
        (0..1000u16).filter(|s| self.rejects[*s as usize]).collect()
    }

    fn fingerprint(&self, name: &str) -> Option<u64> {
        self.fingerprints.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    /// The detection state as a framed snapshot (see the module docs).
    pub fn snapshot(&self) -> Result<Vec<u8>, Error> {
        let detectors = self
            .detectors
            .iter()
            .map(|d| Ok((d.name, self.fingerprint(d.name).unwrap_or(0), d.det.save()?)))
            .collect::<Result<Vec<_>, Error>>()?;
        let disclosure = match &self.disclosure {
            Some(d) => Some((self.fingerprint(super::signals::disclosure::NAME).unwrap_or(0), d.save()?)),
            None => None,
        };
        let out = Out {
            now: self.now,
            last_sweep: self.last_sweep,
            v6_prefix: self.v6_prefix,
            rejects: self.reject_statuses(),
            exchanges: self.ctx.exchanges,
            served: self.ctx.served,
            served_without_user_agent: self.ctx.served_without_user_agent,
            clients: &self.clients,
            endpoints: &self.ctx.endpoints,
            detectors,
            cooldown_names: self.detectors.iter().map(|d| d.name).collect(),
            cooldowns: &self.cooldown,
            roster: &self.roster,
            disclosure,
            marks: self.marks.iter().map(|m| (m.kind.as_str(), m.at, m.note.as_deref())).collect(),
        };
        // Encoded behind room for the header, in a buffer about the size
        // it will reach (clients are most of it, a few hundred bytes
        // each): a growing buffer copied a full engine's 200 MB over and
        // over while the core waited.
        let mut buf = Vec::with_capacity(HEADER + 256 * self.clients.len() + 64 * self.keys() + 4096);
        buf.resize(HEADER, 0);
        {
            use bincode::Options as _;
            options().serialize_into(&mut buf, &out)?;
        }
        seal(&mut buf);
        Ok(buf)
    }

    /// Resumes from a snapshot, into an engine that has seen nothing yet.
    /// On an error the engine is left as it was: fresh.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<Restored, Error> {
        let l: Loaded = decode(unframe(bytes)?)?;
        if l.v6_prefix != self.v6_prefix {
            return Err(Error::Incompatible("ipv6_prefix", format!("/{} then, /{} now", l.v6_prefix, self.v6_prefix)));
        }
        if l.rejects != self.reject_statuses() {
            let now = self.reject_statuses();
            return Err(Error::Incompatible("detect.reject_statuses", format!("{:?} then, {now:?} now", l.rejects)));
        }
        let mut r = Restored { now: l.now, ..Default::default() };
        // Each detector's own part first: one that cannot take it back is
        // rebuilt fresh and named.
        let mut restored = Vec::new();
        for (name, fp, state) in &l.detectors {
            let Some(d) = self.detectors.iter_mut().find(|d| d.name == name) else {
                r.dropped.push(name.clone());
                continue;
            };
            let same = self.fingerprints.iter().any(|(n, f)| n == name && f == fp);
            if same && d.det.restore(state).is_ok() {
                restored.push(d.name);
            } else {
                r.dropped.push(name.clone());
            }
        }
        r.detectors = restored.len();
        let disclosure_fp = self.fingerprint(super::signals::disclosure::NAME);
        let cap = self.clients.cap();
        let watch_kept = match (&mut self.disclosure, l.disclosure) {
            (Some(d), Some((fp, watch))) if Some(fp) == disclosure_fp => d.restore(&watch, cap).is_ok(),
            (_, Some(_)) => false,
            (_, None) => true,
        };
        if !watch_kept {
            r.dropped.push(super::signals::disclosure::NAME.into());
        }
        r.actors = self.roster.restore(l.roster);
        let mut clients = l.clients;
        for (key, _, c) in &mut clients.slots {
            // A client whose actor does not list it (a corrupt file) starts
            // without one, as a client whose actor was evicted does.
            if c.actor != 0 && !self.roster.holds(c.actor, *key) {
                (c.actor, c.actor_slot) = (0, Default::default());
            }
        }
        r.clients = self.clients.restore(clients);
        self.ctx.endpoints.restore(l.endpoints);
        (self.ctx.exchanges, self.ctx.served, self.ctx.served_without_user_agent) =
            (l.exchanges, l.served, l.served_without_user_agent);
        // Cooldowns follow their detector to its number in this engine,
        // and only for detectors restored (the others start afresh).
        let mut cooldowns = l.cooldowns;
        let renumber = |old: u8| -> Option<u8> {
            if old == u8::MAX {
                return Some(u8::MAX); // not a detector's: disclosure's
            }
            let name = l.cooldown_names.get(old as usize)?;
            let name = restored.iter().find(|n| *n == name)?;
            self.detectors.iter().position(|d| d.name == *name).map(|i| i as u8)
        };
        cooldowns.slots = cooldowns
            .slots
            .into_iter()
            .filter_map(|((d, key), last, v)| renumber(d).map(|d| ((d, key), last, v)))
            .collect();
        self.cooldown.restore(cooldowns);
        self.marks = l.marks.into_iter().map(|(kind, at, note)| Mark { kind, at, note }).collect();
        self.marks.sort_by_key(|m| m.at);
        self.now = self.now.max(l.now);
        self.last_sweep = l.last_sweep.min(self.now);
        self.resumed = self.now.max(1);
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::spec::{DetectConfig, DetectorSpec},
        exchange::Exchange,
    };

    /// An engine that has seen a stripped client on one path (single-path
    /// and stripped-identity state, an actor once it signals) and some
    /// served traffic.
    fn busy(cfg: &DetectConfig) -> Engine {
        let mut e = Engine::new(cfg, 64);
        let mut out = Vec::new();
        for i in 0..60u64 {
            let ex = |ip: [u8; 4], path: &str, status| Exchange {
                ts: (1_700_000_000 + i * 60) * 1_000_000_000,
                peer: std::net::IpAddr::from(ip),
                method: "GET".into(),
                request: crate::exchange::RequestText::new(path),
                status: Some(status),
                ..Default::default()
            };
            e.observe(&ex([198, 51, 100, 10], "/export.csv", 403), &mut out);
            e.observe(&ex([192, 0, 2, (i % 7) as u8], "/items", 200), &mut out);
        }
        e
    }

    #[test]
    fn what_is_not_a_snapshot_leaves_the_engine_fresh() {
        let cfg = DetectConfig::default();
        let good = busy(&cfg).snapshot().expect("snapshot");
        let mut wrong_version = good.clone();
        wrong_version[8..12].copy_from_slice(&0u32.to_le_bytes());
        // The payload cut and framed again: the checksum holds, the
        // decoding cannot.
        let cut = frame(&unframe(&good).expect("whole")[..good.len() / 2]);
        for (what, bytes) in [
            ("empty", Vec::new()),
            ("truncated", good[..good.len() - 7].to_vec()),
            ("flipped", good.iter().enumerate().map(|(i, b)| if i == good.len() / 2 { !b } else { *b }).collect()),
            ("old version", wrong_version),
            ("cut payload", cut),
            ("JSON", br#"{"version":1}"#.to_vec()),
        ] {
            let mut e = Engine::new(&cfg, 64);
            assert!(e.restore(&bytes).is_err(), "{what} restored");
            assert_eq!((e.clients(), e.roster().len(), e.now(), e.resumed), (0, 0, 0, 0), "{what}");
        }
        let mut e = Engine::new(&cfg, 64);
        let r = e.restore(&good).expect("the whole one restores");
        assert_eq!((r.clients, e.clients()), (8, 8));
    }

    #[test]
    fn a_changed_detector_loses_only_its_own_part_and_a_changed_prefix_everything() {
        let cfg = DetectConfig::default();
        let bytes = busy(&cfg).snapshot().expect("snapshot");
        let mut changed = cfg.clone();
        changed.detector.push(DetectorSpec::SinglePath(crate::detect::signals::single_path::Spec {
            min_requests: 50,
            ..Default::default()
        }));
        changed.disabled.push("tool-spread".into());
        let mut e = Engine::new(&changed, 64);
        let r = e.restore(&bytes).expect("restores");
        assert_eq!(r.dropped, ["single-path", "tool-spread"]);
        assert_eq!(r.detectors, e.detector_names().len() - 1);
        assert_eq!(r.clients, 8, "the client table is kept");
        let mut e = Engine::new(&cfg, 48);
        assert!(matches!(e.restore(&bytes), Err(Error::Incompatible("ipv6_prefix", _))));
        assert_eq!(e.clients(), 0);
        let fewer = DetectConfig { reject_statuses: vec![401], ..cfg.clone() };
        assert!(matches!(Engine::new(&fewer, 64).restore(&bytes), Err(Error::Incompatible(..))));
        // A smaller client cap keeps the most recently seen.
        let small = DetectConfig { max_clients: 3, ..cfg };
        let mut e = Engine::new(&small, 64);
        assert_eq!(e.restore(&bytes).expect("restores").clients, 3);
        let kept: Vec<String> = e.clients.iter().map(|(k, _)| k.to_string()).collect();
        assert!(kept.contains(&"198.51.100.10".to_string()), "{kept:?}");
    }

    #[test]
    fn a_mangled_payload_is_refused_or_restores_an_engine_that_runs() {
        // Past the checksum (framed again): what a bug in this build, or
        // bytes altered on purpose, could hand the decoder. Whatever it
        // makes of them, nothing may panic, then or while judging.
        let cfg = DetectConfig::default();
        let good = busy(&cfg).snapshot().expect("snapshot");
        let payload = unframe(&good).expect("whole").to_vec();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut restored = 0;
        for _ in 0..120 {
            let mut p = payload.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % p.len() as u64) as usize;
                p[at] = next() as u8;
            }
            let mut e = Engine::new(&cfg, 64);
            if e.restore(&frame(&p)).is_err() {
                continue;
            }
            restored += 1;
            let mut out = Vec::new();
            for i in 0..30u64 {
                let ex = Exchange {
                    ts: (1_700_003_600 + i * 600) * 1_000_000_000,
                    peer: std::net::IpAddr::from([198, 51, 100, 10 + (i % 2) as u8]),
                    method: "GET".into(),
                    request: crate::exchange::RequestText::new(if i % 3 == 0 { "/.env" } else { "/export.csv" }),
                    status: Some(403),
                    ..Default::default()
                };
                e.observe(&ex, &mut out);
            }
            e.finish(&mut out);
        }
        // Most single-byte changes land in counts and times, which decode.
        assert!(restored > 10, "only {restored} of 120 mangled payloads decoded");
    }

    #[test]
    fn a_change_to_what_a_client_keeps_bumps_the_version() {
        // Every field of the client's state and of each client-keyed
        // detector's part, encoded at its default: one byte or more each.
        // A field added or removed changes this; then bump VERSION (old
        // snapshots are refused, not misread) and the figure here.
        let c = ClientState { rejected: Some(Default::default()), ..Default::default() };
        assert_eq!((VERSION, encode(&c).expect("encodes").len()), (1, 79));
    }

    #[test]
    fn frames_refuse_what_is_not_a_whole_snapshot() {
        let f = frame(b"payload");
        assert_eq!(unframe(&f).expect("whole"), b"payload");
        assert!(matches!(unframe(b"RWDETE"), Err(Error::Magic)));
        assert!(matches!(unframe(b"{\"version\": 1}"), Err(Error::Magic)));
        assert!(matches!(unframe(&f[..f.len() - 1]), Err(Error::Truncated(..))));
        assert!(matches!(unframe(&f[..14]), Err(Error::Truncated(..))));
        let mut bad = f.clone();
        *bad.last_mut().expect("bytes") ^= 1;
        assert!(matches!(unframe(&bad), Err(Error::Checksum)));
        let mut old = f;
        old[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
        assert!(matches!(unframe(&old), Err(Error::Version(v)) if v == VERSION + 1));
    }
}

#[cfg(test)]
mod restart;
