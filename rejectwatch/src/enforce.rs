//! Enforcement in XDP (`--enforce xdp`, `[enforce] mode = "xdp"`): the
//! blocklist kept in the XDP program's maps, so a listed source's packets
//! are dropped before the stack (or rejectwatch's own parsing) sees them.
//!
//! Single addresses (IPv4, IPv6 /128) go in exact hash maps, networks (an
//! IPv6 client's /64, CIDRs) in longest-prefix tries. The maps come in two
//! sets; the program reads the one `CONTROL[ACTIVE]` names. Changes are
//! applied to the active set as the blocklist changes (once a second at
//! most, the blocklist's own pace); a full reload (start, or a change as
//! large as what is listed) fills the idle set, swaps, and only then empties
//! the old set from here, so no large trie is ever freed under the packet
//! path. The allowlist and every address that is never blocked never reach
//! the blocklist, so they never reach these maps.

use std::{collections::BTreeSet, net::IpAddr};

use anyhow::Context as _;
use aya::maps::{Array, HashMap, LpmTrie, MapData, lpm_trie::Key};
use ipnet::IpNet;
use rejectwatch_common::enforce::{ACTIVE, EXACT4, EXACT6, KINDS, MAPS, PREFIX4, PREFIX6};
use serde::Deserialize;

use crate::blocklist::{Entry, output::Enforce};

/// `[enforce]` in the config file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnforceConfig {
    /// `off` (observe only) or `xdp` (drop listed sources in XDP).
    pub mode: Mode,
    /// Entries each kernel map is made for (the blocklist keeps at most
    /// `blocklist.max_entries`; maps allocate per entry, not up front).
    pub max_entries: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Off,
    Xdp,
}

impl Default for EnforceConfig {
    fn default() -> Self {
        Self { mode: Mode::Off, max_entries: rejectwatch_common::enforce::DEFAULT_MAX_ENTRIES }
    }
}

impl EnforceConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_entries == 0 {
            return Err("enforce.max_entries: must be at least 1".into());
        }
        Ok(())
    }
}

/// One set's four maps.
struct Set {
    exact4: HashMap<MapData, [u8; 4], u8>,
    exact6: HashMap<MapData, [u8; 16], u8>,
    prefix4: LpmTrie<MapData, [u8; 4], u8>,
    prefix6: LpmTrie<MapData, [u8; 16], u8>,
}

/// Which map of a set an entry belongs in.
fn kind_of(net: &IpNet) -> u32 {
    match (net.addr(), net.prefix_len()) {
        (IpAddr::V4(_), 32) => EXACT4,
        (IpAddr::V6(_), 128) => EXACT6,
        (IpAddr::V4(_), _) => PREFIX4,
        (IpAddr::V6(_), _) => PREFIX6,
    }
}

impl Set {
    fn insert(&mut self, net: &IpNet) -> anyhow::Result<()> {
        match (net.addr(), kind_of(net)) {
            (IpAddr::V4(a), EXACT4) => self.exact4.insert(a.octets(), 1, 0)?,
            (IpAddr::V6(a), EXACT6) => self.exact6.insert(a.octets(), 1, 0)?,
            (IpAddr::V4(a), _) => self.prefix4.insert(&Key::new(net.prefix_len() as u32, a.octets()), 1, 0)?,
            (IpAddr::V6(a), _) => self.prefix6.insert(&Key::new(net.prefix_len() as u32, a.octets()), 1, 0)?,
        }
        Ok(())
    }

    fn remove(&mut self, net: &IpNet) -> anyhow::Result<()> {
        let r = match (net.addr(), kind_of(net)) {
            (IpAddr::V4(a), EXACT4) => self.exact4.remove(&a.octets()),
            (IpAddr::V6(a), EXACT6) => self.exact6.remove(&a.octets()),
            (IpAddr::V4(a), _) => self.prefix4.remove(&Key::new(net.prefix_len() as u32, a.octets())),
            (IpAddr::V6(a), _) => self.prefix6.remove(&Key::new(net.prefix_len() as u32, a.octets())),
        };
        // Already gone is what was wanted.
        match r {
            Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            r => Ok(r?),
        }
    }
}

/// The blocklist in the XDP program's maps.
pub struct XdpEnforcer {
    sets: [Set; 2],
    control: Array<MapData, u32>,
    active: usize,
    /// What the active set holds.
    applied: BTreeSet<IpNet>,
}

/// Changes at most this many, or a quarter of what is listed, are applied
/// in place; more is a full reload into the idle set.
const IN_PLACE: usize = 4096;

impl XdpEnforcer {
    /// Takes the maps out of the loaded object.
    pub fn from_ebpf(ebpf: &mut aya::Ebpf) -> anyhow::Result<Self> {
        let mut take = |name: &str| ebpf.take_map(name).with_context(|| format!("{name} map missing"));
        let mut set = |i: usize| -> anyhow::Result<Set> {
            let [e4, e6, p4, p6] = MAPS[i];
            Ok(Set {
                exact4: HashMap::try_from(take(e4)?)?,
                exact6: HashMap::try_from(take(e6)?)?,
                prefix4: LpmTrie::try_from(take(p4)?)?,
                prefix6: LpmTrie::try_from(take(p6)?)?,
            })
        };
        let sets = [set(0)?, set(1)?];
        let control = Array::try_from(take("CONTROL")?)?;
        Ok(Self { sets, control, active: 0, applied: BTreeSet::new() })
    }

    fn kinds(nets: &BTreeSet<IpNet>) -> u32 {
        nets.iter().fold(0, |k, n| k | kind_of(n))
    }

    fn set_kinds(&mut self, set: usize, kinds: u32) -> anyhow::Result<()> {
        self.control.set(KINDS + set as u32, kinds, 0).context("enforcement control map")
    }

    /// Fills the idle set with `want`, swaps, empties the old set.
    fn reload(&mut self, want: BTreeSet<IpNet>) -> anyhow::Result<()> {
        let idle = 1 - self.active;
        for net in &want {
            self.sets[idle].insert(net)?;
        }
        self.set_kinds(idle, Self::kinds(&want))?;
        self.control.set(ACTIVE, idle as u32, 0).context("enforcement control map")?;
        let old = std::mem::replace(&mut self.applied, want);
        let was = self.active;
        self.active = idle;
        self.set_kinds(was, 0)?;
        for net in &old {
            self.sets[was].remove(net)?;
        }
        Ok(())
    }
}

impl Enforce for XdpEnforcer {
    fn apply(&mut self, entries: &[Entry]) -> anyhow::Result<()> {
        let want: BTreeSet<IpNet> = entries.iter().map(|e| e.net).collect();
        let added: Vec<IpNet> = want.difference(&self.applied).copied().collect();
        let gone: Vec<IpNet> = self.applied.difference(&want).copied().collect();
        if added.is_empty() && gone.is_empty() {
            return Ok(());
        }
        if added.len() + gone.len() > IN_PLACE.max(self.applied.len() / 4) {
            return self.reload(want);
        }
        let set = self.active;
        // New kinds are announced once their entries are in; kinds that
        // emptied, before their last entries go.
        for net in &added {
            self.sets[set].insert(net)?;
        }
        self.set_kinds(set, Self::kinds(&self.applied) | Self::kinds(&want))?;
        for net in &gone {
            self.sets[set].remove(net)?;
        }
        self.set_kinds(set, Self::kinds(&want))?;
        self.applied = want;
        Ok(())
    }

    fn enforced(&self) -> Vec<IpNet> {
        self.applied.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_go_to_the_map_of_their_kind() {
        let k = |s: &str| kind_of(&s.parse().unwrap());
        assert_eq!(k("203.0.113.7/32"), EXACT4);
        assert_eq!(k("2001:db8::1/128"), EXACT6);
        assert_eq!(k("198.51.100.0/24"), PREFIX4);
        assert_eq!(k("2001:db8:1:2::/64"), PREFIX6);
    }

    #[test]
    fn config_is_checked() {
        assert!(EnforceConfig::default().validate().is_ok());
        assert_eq!(EnforceConfig::default().mode, Mode::Off);
        let e = EnforceConfig { max_entries: 0, ..Default::default() }.validate().unwrap_err();
        assert!(e.starts_with("enforce.max_entries"), "{e}");
    }
}
