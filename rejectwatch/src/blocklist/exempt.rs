//! Whom the blocklist never holds, whatever they did, and why: loopback,
//! the host's own addresses, link-local addresses, the trusted proxies,
//! the allowlist and, unless `block_private` is set, private ranges.
//! Listing any of them blocks ourselves or everyone behind them (a
//! proxy's address is every proxied client's; a private address is most
//! often our own network's), which no detector's verdict is worth. The
//! actors stay on the roster; each of their clients kept off says why.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::BlocklistConfig;

/// Why a client is never listed. A fixed set: it is part of the actors'
/// JSON (`not_blocked`), which other programs read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotBlocked {
    Loopback,
    OwnAddress,
    LinkLocal,
    TrustedProxy,
    Allowlisted,
    PrivateRange,
}

impl NotBlocked {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::OwnAddress => "own_address",
            Self::LinkLocal => "link_local",
            Self::TrustedProxy => "trusted_proxy",
            Self::Allowlisted => "allowlisted",
            Self::PrivateRange => "private_range",
        }
    }
}

const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];
const LINK_LOCAL: [&str; 2] = ["169.254.0.0/16", "fe80::/10"];
/// RFC 1918 and IPv6 unique local addresses. Shared address space
/// (100.64/10, carrier-grade NAT) is not here: behind it are other
/// people's subscribers, as blockable as any public address.
const PRIVATE: [&str; 4] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];

#[derive(Clone, Debug)]
pub struct Exemptions {
    /// In order of precedence: a network matching several rules is
    /// given the first one's reason (the most specific to this host).
    rules: Vec<(IpNet, NotBlocked)>,
}

impl Exemptions {
    /// The exemptions of `cfg` with these trusted proxies and the host's
    /// own addresses (none for a replay: its host is not this one).
    pub fn new(cfg: &BlocklistConfig, trusted_proxies: &[IpNet], own: &[IpAddr]) -> Self {
        let fixed = |nets: &[&str], why| -> Vec<(IpNet, NotBlocked)> {
            nets.iter().map(|n| (n.parse().expect("a valid constant network"), why)).collect()
        };
        let mut rules = fixed(&LOOPBACK, NotBlocked::Loopback);
        rules.extend(own.iter().map(|a| (IpNet::from(*a), NotBlocked::OwnAddress)));
        rules.extend(fixed(&LINK_LOCAL, NotBlocked::LinkLocal));
        rules.extend(trusted_proxies.iter().map(|n| (n.trunc(), NotBlocked::TrustedProxy)));
        rules.extend(cfg.allowlist.iter().map(|n| (n.trunc(), NotBlocked::Allowlisted)));
        if !cfg.block_private {
            rules.extend(fixed(&PRIVATE, NotBlocked::PrivateRange));
        }
        Self { rules }
    }

    /// Why `net` is never listed, if it is not: it lies within an exempt
    /// network, or holds one (listing it would block that one too).
    pub fn reason(&self, net: &IpNet) -> Option<NotBlocked> {
        self.rules.iter().find(|(r, _)| r.contains(net) || net.contains(r)).map(|(_, why)| *why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(e: &Exemptions, net: &str) -> Option<&'static str> {
        e.reason(&net.parse().unwrap()).map(NotBlocked::as_str)
    }

    #[test]
    fn each_reason_and_its_precedence() {
        let cfg = BlocklistConfig { allowlist: vec!["192.0.2.0/28".parse().unwrap()], ..Default::default() };
        let own = ["198.51.100.1".parse().unwrap(), "2001:db8:5::1".parse().unwrap()];
        let e = Exemptions::new(&cfg, &["10.0.0.7/32".parse().unwrap()], &own);
        for (net, want) in [
            ("127.0.0.1/32", Some("loopback")),
            ("127.1.2.3/32", Some("loopback")),
            ("::/64", Some("loopback")),
            ("198.51.100.1/32", Some("own_address")),
            // A client network that holds our address: listing it blocks us.
            ("2001:db8:5::/64", Some("own_address")),
            ("169.254.10.1/32", Some("link_local")),
            ("fe80::/64", Some("link_local")),
            ("10.0.0.7/32", Some("trusted_proxy")),
            ("192.0.2.3/32", Some("allowlisted")),
            ("10.1.2.3/32", Some("private_range")),
            ("172.31.0.1/32", Some("private_range")),
            ("192.168.1.1/32", Some("private_range")),
            ("fd00:200::/64", Some("private_range")),
            // Public and documentation addresses are ordinary clients, and
            // so is the shared address space of carrier-grade NAT.
            ("198.51.100.2/32", None),
            ("203.0.113.7/32", None),
            ("192.0.2.30/32", None),
            ("2001:db8:6::/64", None),
            ("100.64.1.1/32", None),
            ("172.32.0.1/32", None),
            ("8.8.8.8/32", None),
        ] {
            assert_eq!(why(&e, net), want, "{net}");
        }
    }

    #[test]
    fn block_private_lets_private_ranges_be_listed_but_nothing_else() {
        let cfg = BlocklistConfig { block_private: true, ..Default::default() };
        let e = Exemptions::new(&cfg, &["10.0.0.7/32".parse().unwrap()], &["10.9.9.9".parse().unwrap()]);
        assert_eq!(why(&e, "10.1.2.3/32"), None);
        assert_eq!(why(&e, "fd00:200::/64"), None);
        assert_eq!(why(&e, "10.0.0.7/32"), Some("trusted_proxy"));
        assert_eq!(why(&e, "10.9.9.9/32"), Some("own_address"));
        assert_eq!(why(&e, "127.0.0.1/32"), Some("loopback"));
    }
}
