//! Who the client is. Behind a trusted proxy, the right-most address in the
//! forwarding headers that is not itself a trusted proxy; otherwise the
//! socket peer, whatever the headers claim (an attacker writes them, and a
//! forged header must never get an innocent address blocked). Claims from
//! untrusted peers are kept as evidence of header manipulation.

use std::net::IpAddr;

use ipnet::IpNet;

use serde::Deserialize;

use crate::{ascii::length_bit, exchange::Exchange};

/// Forwarding headers that can name the client behind a trusted proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientHeader {
    XForwardedFor,
    Forwarded,
    XRealIp,
}

impl ClientHeader {
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
            Self::XRealIp => "x-real-ip",
        }
    }
}

/// Headers whose presence from an untrusted peer is kept as evidence.
const FORWARDING: [&str; 4] = ["x-forwarded-for", "forwarded", "x-real-ip", "x-originating-ip"];

/// The [`length_bit`]s of the [`FORWARDING`] names: nearly every header
/// name has another length, and is passed over without comparing.
const FORWARDING_LENGTHS: u64 = {
    let mut bits = 0u64;
    let mut i = 0;
    while i < FORWARDING.len() {
        bits |= length_bit(FORWARDING[i].len());
        i += 1;
    }
    bits
};

fn is_forwarding(name: &str) -> bool {
    FORWARDING_LENGTHS & length_bit(name.len()) != 0 && FORWARDING.iter().any(|f| crate::ascii::eq_ignore_case(name, f))
}

#[derive(Clone)]
pub struct Attribution {
    trusted: Vec<IpNet>,
    order: Vec<ClientHeader>,
    ipv6_prefix: u8,
}

impl Attribution {
    pub fn new(trusted: Vec<IpNet>, order: Vec<ClientHeader>, ipv6_prefix: u8) -> Self {
        Self { trusted, order, ipv6_prefix }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    pub fn apply(&self, ex: &mut Exchange) {
        let peer = canonical(ex.peer);
        let (mut client, mut source) = (peer, "peer");
        if self.is_trusted(peer) {
            for h in &self.order {
                if let Some(ip) = self.client_in_header(ex, *h) {
                    (client, source) = (ip, h.name());
                    break;
                }
            }
        } else {
            // Names first: a value is sliced out only for a forwarding
            // header. A plain loop: the iterator chain was not inlined, and
            // cost ~100 instructions a head that has none.
            let mut found = Vec::new();
            for (i, n) in ex.header_names.iter().enumerate() {
                if is_forwarding(n)
                    && let Some(v) = ex.request.value(i)
                {
                    found.push(format!("{n}: {v}"));
                }
            }
            ex.untrusted_forwarding = found;
        }
        ex.client = Some(client);
        ex.client_source = Some(source);
        ex.client_prefix = match client {
            IpAddr::V6(_) => IpNet::new(client, self.ipv6_prefix).ok().map(|n| n.trunc().to_string()),
            IpAddr::V4(_) => None,
        };
    }

    /// The client a header names: the hops are read right to left (nearest
    /// first), trusted proxies skipped; a hop we cannot read ends the walk,
    /// since nothing left of it can be vouched for.
    fn client_in_header(&self, ex: &Exchange, h: ClientHeader) -> Option<IpAddr> {
        let mut hops: Vec<Option<IpAddr>> = Vec::new();
        for v in ex.header(h.name()) {
            match h {
                ClientHeader::XForwardedFor => hops.extend(v.split(',').map(parse_hop)),
                ClientHeader::Forwarded => hops.extend(v.split(',').map(forwarded_for)),
                ClientHeader::XRealIp => hops.push(parse_hop(v)),
            }
        }
        let mut last = None;
        for hop in hops.into_iter().rev() {
            let ip = hop?;
            if !self.is_trusted(ip) {
                return Some(ip);
            }
            last = Some(ip);
        }
        // Every hop is a trusted proxy: the left-most is where it started.
        last
    }
}

/// IPv4-mapped IPv6 addresses are IPv4 clients.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One hop: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok()).map(canonical);
    }
    s.rsplit_once(':').filter(|(ip, _)| !ip.contains(':')).and_then(|(ip, _)| ip.parse().ok()).map(canonical)
}

/// The `for=` of one RFC 7239 element (`for=192.0.2.60;proto=http`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then(|| parse_hop(v)).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(peer: &str, headers: &[(&str, &str)]) -> Exchange {
        let mut e = Exchange { peer: peer.parse().unwrap(), ..Default::default() };
        e.set_headers(headers);
        e
    }

    fn attribution() -> Attribution {
        Attribution::new(
            vec!["10.0.0.0/8".parse().unwrap(), "2001:db8:ffff::/48".parse().unwrap()],
            vec![ClientHeader::XForwardedFor, ClientHeader::Forwarded, ClientHeader::XRealIp],
            64,
        )
    }

    #[test]
    #[allow(clippy::type_complexity)] // a table of cases reads best inline
    fn table() {
        let a = attribution();
        let cases: &[(&str, &[(&str, &str)], &str, &str)] = &[
            // Untrusted peer: headers ignored.
            ("198.51.100.7", &[("X-Forwarded-For", "1.1.1.1")], "198.51.100.7", "peer"),
            // Trusted proxy: right-most untrusted hop.
            (
                "10.0.0.5",
                &[("X-Forwarded-For", "203.0.113.9, 198.51.100.1, 10.0.0.9")],
                "198.51.100.1",
                "x-forwarded-for",
            ),
            // Several header lines are one list, in order.
            (
                "10.0.0.5",
                &[("X-Forwarded-For", "203.0.113.9"), ("x-forwarded-for", "10.1.1.1")],
                "203.0.113.9",
                "x-forwarded-for",
            ),
            // Ports and brackets.
            ("10.0.0.5", &[("X-Forwarded-For", "[2001:db8::7]:443")], "2001:db8::7", "x-forwarded-for"),
            ("10.0.0.5", &[("X-Forwarded-For", "203.0.113.9:5555")], "203.0.113.9", "x-forwarded-for"),
            // RFC 7239.
            (
                "10.0.0.5",
                &[("Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43, for=\"[2001:db8:cafe::17]:4711\"")],
                "2001:db8:cafe::17",
                "forwarded",
            ),
            ("10.0.0.5", &[("Forwarded", "for=unknown")], "10.0.0.5", "peer"),
            ("10.0.0.5", &[("X-Real-IP", "192.0.2.44")], "192.0.2.44", "x-real-ip"),
            // A malformed nearest hop: nothing left of it is trusted.
            ("10.0.0.5", &[("X-Forwarded-For", "192.0.2.1, not-an-ip")], "10.0.0.5", "peer"),
            // Only trusted hops: the left-most started it.
            ("10.0.0.5", &[("X-Forwarded-For", "10.9.9.9, 10.0.0.7")], "10.9.9.9", "x-forwarded-for"),
            // IPv6 trusted proxy, IPv4-mapped peer.
            ("2001:db8:ffff::1", &[("X-Real-IP", "192.0.2.5")], "192.0.2.5", "x-real-ip"),
            ("::ffff:198.51.100.7", &[], "198.51.100.7", "peer"),
        ];
        for (peer, headers, client, source) in cases {
            let mut e = ex(peer, headers);
            a.apply(&mut e);
            assert_eq!(e.client.unwrap().to_string(), *client, "{peer} {headers:?}");
            assert_eq!(e.client_source, Some(*source), "{peer} {headers:?}");
        }
    }

    #[test]
    fn forged_headers_are_evidence_and_prefixes_group_ipv6() {
        let a = attribution();
        let mut e = ex(
            "2001:db8:1:2:3:4:5:6",
            &[("X-Forwarded-For", "8.8.8.8"), ("X-Originating-IP", "9.9.9.9"), ("Host", "a")],
        );
        a.apply(&mut e);
        assert_eq!(e.client.unwrap().to_string(), "2001:db8:1:2:3:4:5:6");
        assert_eq!(e.untrusted_forwarding, ["X-Forwarded-For: 8.8.8.8", "X-Originating-IP: 9.9.9.9"]);
        assert_eq!(e.client_prefix.as_deref(), Some("2001:db8:1:2::/64"));
        let mut e = ex("192.0.2.1", &[]);
        a.apply(&mut e);
        assert_eq!(e.client_prefix, None);
        assert!(e.untrusted_forwarding.is_empty());
    }
}
