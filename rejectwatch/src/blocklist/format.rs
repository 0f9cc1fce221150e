//! The blocklist in the formats firewalls load: an `nft -f` script, an
//! `ipset restore` file, and plain text (one address or CIDR per line, the
//! format of threat-feed URLs). Timeouts are relative to the moment of
//! rendering, so a file is meant to be loaded when it changes.

use std::{fmt::Write as _, net::IpAddr, path::Path};

use ipnet::IpNet;

use super::Entry;
use crate::time::{Secs, format_ts};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Nft,
    Ipset,
    Txt,
}

impl Format {
    pub fn from_path(p: &Path) -> Result<Self, String> {
        match p.extension().and_then(|e| e.to_str()) {
            Some("nft") => Ok(Self::Nft),
            Some("ipset") => Ok(Self::Ipset),
            Some("txt") => Ok(Self::Txt),
            _ => Err(format!("{}: the format follows the extension: .nft, .ipset or .txt", p.display())),
        }
    }

    pub fn content_type(self) -> &'static str {
        "text/plain; charset=utf-8"
    }
}

/// Names in the firewall: `table inet rejectwatch` with sets `v4`/`v6`;
/// ipset sets `rejectwatch-v4`/`rejectwatch-v6`.
pub const NFT_TABLE: &str = "rejectwatch";
pub const IPSET_PREFIX: &str = "rejectwatch";

/// How the entries are written.
pub struct Render<'a> {
    pub entries: &'a [Entry],
    pub now: Secs,
    /// Add the drop rules to the nftables script.
    pub nft_rule: bool,
}

impl Render<'_> {
    pub fn to_string(&self, f: Format) -> String {
        match f {
            Format::Nft => self.nft(),
            Format::Ipset => self.ipset(),
            Format::Txt => self.txt(),
        }
    }

    fn timeout(&self, e: &Entry) -> Secs {
        e.expires.saturating_sub(self.now).max(1)
    }

    fn header(&self, out: &mut String, comment: &str) {
        let _ = writeln!(
            out,
            "{comment} rejectwatch blocklist: {} entries, timeouts from {}",
            self.entries.len(),
            format_ts(self.now as u64 * 1_000_000_000)
        );
    }

    fn family<'e>(&'e self, v6: bool) -> impl Iterator<Item = &'e Entry> + 'e {
        self.entries.iter().filter(move |e| matches!(e.net.addr(), IpAddr::V6(_)) == v6)
    }

    /// Single addresses without their /32 or /128: that is how every
    /// consumer prints them, and some only accept them so.
    fn addr(net: &IpNet) -> String {
        if net.prefix_len() == net.max_prefix_len() { net.addr().to_string() } else { net.to_string() }
    }

    /// Creates the table and sets if missing, then replaces their
    /// elements; `nft -f` applies the whole script atomically.
    fn nft(&self) -> String {
        let mut s = String::new();
        self.header(&mut s, "#");
        let t = NFT_TABLE;
        let _ = writeln!(s, "table inet {t} {{");
        for (set, ty) in [("v4", "ipv4_addr"), ("v6", "ipv6_addr")] {
            let _ = writeln!(s, "\tset {set} {{\n\t\ttype {ty}\n\t\tflags interval, timeout\n\t}}");
        }
        if self.nft_rule {
            // Before conntrack, so a blocked client costs no state; the
            // prerouting hook covers traffic to this host and traffic it
            // forwards.
            let _ = writeln!(
                s,
                "\tchain prerouting {{\n\t\ttype filter hook prerouting priority raw; policy accept;\n\t}}"
            );
        }
        let _ = writeln!(s, "}}");
        for set in ["v4", "v6"] {
            let _ = writeln!(s, "flush set inet {t} {set}");
        }
        for (set, v6) in [("v4", false), ("v6", true)] {
            let elems: Vec<String> =
                self.family(v6).map(|e| format!("{} timeout {}s", Self::addr(&e.net), self.timeout(e))).collect();
            // `add element` with no elements is a syntax error.
            for chunk in elems.chunks(1000) {
                let _ = writeln!(s, "add element inet {t} {set} {{ {} }}", chunk.join(", "));
            }
        }
        if self.nft_rule {
            let _ = writeln!(s, "flush chain inet {t} prerouting");
            let _ = writeln!(s, "add rule inet {t} prerouting ip saddr @v4 counter drop");
            let _ = writeln!(s, "add rule inet {t} prerouting ip6 saddr @v6 counter drop");
        }
        s
    }

    /// Fills a fresh set and swaps it in, so the live set is never empty
    /// half-way; `-exist` makes the script re-runnable.
    fn ipset(&self) -> String {
        let mut s = String::new();
        self.header(&mut s, "#");
        for (v6, fam) in [(false, "inet"), (true, "inet6")] {
            let name = format!("{IPSET_PREFIX}-{}", if v6 { "v6" } else { "v4" });
            let tmp = format!("{name}-new");
            for n in [&name, &tmp] {
                let _ = writeln!(s, "create {n} hash:net family {fam} timeout 0 maxelem 1048576 -exist");
            }
            let _ = writeln!(s, "flush {tmp}");
            for e in self.family(v6) {
                let _ = writeln!(s, "add {tmp} {} timeout {} -exist", Self::addr(&e.net), self.timeout(e));
            }
            let _ = writeln!(s, "swap {tmp} {name}");
            let _ = writeln!(s, "destroy {tmp}");
        }
        s
    }

    fn txt(&self) -> String {
        let mut s = String::new();
        self.header(&mut s, "#");
        for e in self.entries {
            let _ = writeln!(s, "{}", Self::addr(&e.net));
        }
        s
    }
}
