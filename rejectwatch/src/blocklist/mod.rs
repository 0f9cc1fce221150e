//! The blocklist: threat actors' addresses (IPv6 clients as their
//! network) with an expiry, minus the allowlist. Prospects and
//! misconfigurations are never on it: a prospect is someone to sell to, a
//! misconfiguration is our own mistake, and blocking either hurts us.
//!
//! An entry lasts `ttl` from the actor's last activity; an address listed
//! again after its entry expired is a repeat offender and stays twice as
//! long each time, up to `max_ttl`. (`analyze --blocklist-ttl-from now`
//! counts every threat's `ttl` from the time of the run instead, so a past
//! week's threats are blocked from now on.) Time is whatever the caller says it is
//! (record time in replays, the capture clock live), so a replay lists
//! and expires exactly as the live daemon did.
//!
//! Who is never listed, and why, is in [`exempt`]; formats are in
//! [`format`], the files and the state that survives a restart in
//! [`output`] and [`state`].

pub mod exempt;
pub mod format;
pub mod output;

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    time::Duration,
};

use ipnet::IpNet;
use serde::Deserialize;

use self::exempt::{Exemptions, NotBlocked};
use crate::{
    detect::{actors::Actor, client::ClientKey, evidence::Class, keyed},
    time::{Secs, duration_secs},
};

/// `[blocklist]` in the config file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlocklistConfig {
    /// Files to keep up to date; the format follows the extension (`.nft`,
    /// `.ipset`, `.txt`). `--blocklist` adds to these.
    pub paths: Vec<std::path::PathBuf>,
    /// How long an entry lasts after the actor's last activity.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// The longest a repeat offender is listed for.
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// Never listed, whatever they do (addresses or CIDRs): monitoring,
    /// partners, us.
    #[serde(deserialize_with = "crate::config::value::nets")]
    pub allowlist: Vec<IpNet>,
    /// List threats from private ranges (10/8, 172.16/12, 192.168/16,
    /// fc00::/7) too; by default they are our own networks' and kept off.
    pub block_private: bool,
    /// Also write the drop rules into the `.nft` script (`--nft-rule`).
    pub nft_rule: bool,
    /// The most entries kept; past it the entries expiring soonest go.
    pub max_entries: usize,
}

impl Default for BlocklistConfig {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            ttl: Duration::from_secs(4 * 3600),
            max_ttl: Duration::from_secs(7 * 86_400),
            allowlist: Vec::new(),
            block_private: false,
            nft_rule: false,
            max_entries: 100_000,
        }
    }
}

impl BlocklistConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.ttl.as_secs() == 0 {
            return Err("blocklist.ttl: must be at least one second".into());
        }
        if self.max_ttl < self.ttl {
            return Err(format!(
                "blocklist.max_ttl: {} is shorter than ttl ({})",
                humantime::format_duration(self.max_ttl),
                humantime::format_duration(self.ttl)
            ));
        }
        if self.max_entries == 0 {
            return Err("blocklist.max_entries: must be at least 1".into());
        }
        for p in &self.paths {
            format::Format::from_path(p).map_err(|e| format!("blocklist.paths: {e}"))?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub net: IpNet,
    pub expires: Secs,
    /// When it was listed.
    pub listed: Secs,
    /// The actor's latest activity this entry covers.
    pub seen: Secs,
    /// 1 the first time; more for a repeat offender.
    pub offences: u32,
    /// The actor that put it there (for the operator, not the firewall).
    pub actor: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Past {
    pub offences: u32,
    pub seen: Secs,
}

pub struct Blocklist {
    entries: BTreeMap<IpNet, Entry>,
    /// Offences of addresses whose entries expired and the latest
    /// activity those covered, so a return is recognised and old activity
    /// is not punished twice (bounded like the entries).
    past: HashMap<IpNet, Past>,
    ttl: Secs,
    max_ttl: Secs,
    exempt: Exemptions,
    max_entries: usize,
    /// Set whenever the entries changed; cleared by whoever writes them.
    pub changed: bool,
    pub evicted: u64,
}

/// The network a client key stands for: an IPv4 address as /32, an IPv6
/// client as its network.
pub fn net_of(k: &ClientKey) -> IpNet {
    IpNet::new(k.ip(), k.prefix_len()).expect("prefix length within the family").trunc()
}

impl Blocklist {
    /// `exempt` (built from `cfg`, the trusted proxies and the host's
    /// addresses) says whom it never lists.
    pub fn new(cfg: &BlocklistConfig, exempt: Exemptions) -> Self {
        Self {
            entries: BTreeMap::new(),
            past: HashMap::new(),
            ttl: duration_secs(cfg.ttl),
            max_ttl: duration_secs(cfg.max_ttl),
            exempt,
            max_entries: cfg.max_entries,
            changed: false,
            evicted: 0,
        }
    }

    /// Why client `k` is never listed, whatever it does, if it is not.
    pub fn not_blocked(&self, k: &ClientKey) -> Option<NotBlocked> {
        self.exempt.reason(&net_of(k))
    }

    fn ttl_for(&self, offences: u32) -> Secs {
        let doubled = (self.ttl as u64) << offences.saturating_sub(1).min(20);
        doubled.min(self.max_ttl as u64) as Secs
    }

    /// Brings the entries in line with the roster at time `now`: threat
    /// actors' addresses listed or extended, prospects' and
    /// misconfigurations' removed, expired entries dropped.
    pub fn update<'a>(&mut self, actors: impl IntoIterator<Item = &'a Actor>, now: Secs) {
        self.reconcile(actors, now, false);
    }

    /// As [`Blocklist::update`], but every threat actor's entry lasts from
    /// `now` rather than from its last activity: for a replay of a past
    /// week whose threats are to be blocked from the time of the run on,
    /// `now` being that time, not the last record's.
    pub fn update_from_now<'a>(&mut self, actors: impl IntoIterator<Item = &'a Actor>, now: Secs) {
        self.reconcile(actors, now, true);
    }

    fn reconcile<'a>(&mut self, actors: impl IntoIterator<Item = &'a Actor>, now: Secs, from_now: bool) {
        for a in actors {
            match a.class {
                Class::Threat => {
                    let from = if from_now { a.last_seen.max(now) } else { a.last_seen };
                    for k in &a.clients {
                        self.list(net_of(k), a, from, now);
                    }
                }
                Class::Prospect | Class::Misconfiguration => {
                    for k in &a.clients {
                        if self.entries.remove(&net_of(k)).is_some() {
                            self.changed = true;
                        }
                    }
                }
                Class::Unknown => {}
            }
        }
        self.trim_entries();
        self.expire(now);
    }

    /// Lists `net` for actor `a`, its entry lasting from `from` (the
    /// actor's last activity, unless the caller counts from elsewhere).
    fn list(&mut self, net: IpNet, a: &Actor, from: Secs, now: Secs) {
        if self.exempt.reason(&net).is_some() {
            return;
        }
        let offences = self.entries.get(&net).map(|e| e.offences);
        if let Some(offences) = offences {
            let ttl = self.ttl_for(offences);
            let e = self.entries.get_mut(&net).expect("present");
            let until = from.saturating_add(ttl);
            e.seen = e.seen.max(a.last_seen);
            if until > e.expires {
                // Still at it: the clock restarts from the latest activity.
                // Not a change the files must show at once (their
                // timeouts are relative), so `changed` is left alone
                // unless the extension is substantial.
                if until - e.expires >= ttl / 8 {
                    self.changed = true;
                }
                e.expires = until;
            }
            return;
        }
        let past = self.past.get(&net).copied();
        if past.is_some_and(|p| a.last_seen <= p.seen) {
            // Served its time for this already.
            return;
        }
        let offences = past.map_or(0, |p| p.offences) + 1;
        let expires = from.saturating_add(self.ttl_for(offences));
        if expires <= now {
            return;
        }
        let e = Entry { net, expires, listed: now, seen: a.last_seen, offences, actor: a.id.clone() };
        self.entries.insert(net, e);
        self.changed = true;
        // Trimmed in batches (and at the end of each update): looking for
        // the soonest-expiring entry on every insert walked the whole list
        // per new threat once it was full, which a flood makes the rule.
        if self.entries.len() >= 2 * self.max_entries.max(1) {
            self.trim_entries();
        }
    }

    /// Down to `max_entries`, dropping the entries that expire soonest.
    fn trim_entries(&mut self) {
        let excess = self.entries.len().saturating_sub(self.max_entries);
        for net in keyed::smallest(self.entries.values().map(|e| ((e.expires, e.net), e.net)), excess) {
            self.entries.remove(&net);
            self.evicted += 1;
        }
    }

    /// Down to `max_entries` remembered offences, forgetting the mildest.
    fn trim_past(&mut self) {
        let excess = self.past.len().saturating_sub(self.max_entries);
        for net in keyed::smallest(self.past.iter().map(|(n, p)| ((p.offences, p.seen, *n), *n)), excess) {
            self.past.remove(&net);
        }
    }

    /// Drops the entries whose time is up, remembering their offences.
    pub fn expire(&mut self, now: Secs) {
        let gone: Vec<IpNet> = self.entries.values().filter(|e| e.expires <= now).map(|e| e.net).collect();
        for n in gone {
            let e = self.entries.remove(&n).expect("present");
            self.past.insert(n, Past { offences: e.offences, seen: e.seen });
            if self.past.len() >= 2 * self.max_entries.max(1) {
                self.trim_past();
            }
            self.changed = true;
        }
        self.trim_past();
    }

    /// Restores entries and offences from the state file; the exemptions
    /// of this run apply to them too.
    pub fn restore(&mut self, entries: Vec<Entry>, past: Vec<(IpNet, Past)>, now: Secs) {
        for (n, p) in past.into_iter().take(self.max_entries) {
            self.past.insert(n.trunc(), p);
        }
        for e in entries {
            let net = e.net.trunc();
            if e.expires > now && self.exempt.reason(&net).is_none() && self.entries.len() < self.max_entries {
                self.entries.insert(net, Entry { net, ..e });
            }
        }
        self.changed = true;
    }

    /// Current entries, with networks contained in another entry folded
    /// into it (nftables interval sets refuse overlaps): ordered by
    /// address, IPv4 first.
    /// Every entry as held, none merged into another: what the state file
    /// keeps.
    pub fn held(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn entries(&self) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::with_capacity(self.entries.len());
        let mut sorted: Vec<&Entry> = self.entries.values().collect();
        sorted.sort_by_key(|e| (e.net.network(), e.net.prefix_len()));
        for e in sorted {
            match out.last_mut() {
                Some(last) if last.net.contains(&e.net) => last.expires = last.expires.max(e.expires),
                _ => out.push(e.clone()),
            }
        }
        out
    }

    pub fn past(&self) -> impl Iterator<Item = (&IpNet, &Past)> {
        self.past.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether client `k`'s network has an entry of its own.
    pub fn lists(&self, k: &ClientKey) -> bool {
        self.entries.contains_key(&net_of(k))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entry counts by family (IPv4, IPv6), for the gauge.
    pub fn counts(&self) -> (usize, usize) {
        let v4 = self.entries.keys().filter(|n| matches!(n.addr(), IpAddr::V4(_))).count();
        (v4, self.entries.len() - v4)
    }
}

#[cfg(test)]
mod tests;
