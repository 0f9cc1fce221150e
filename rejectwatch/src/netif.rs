//! Finds the interface of the default route, which `run` watches when no
//! `--iface` is given, and the host's own addresses, which the blocklist
//! never holds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::bail;

/// Every address of every interface of this host (in this network
/// namespace), as they are at the call: read once at start, so an address
/// added later is not spared until the next start.
pub fn own_addresses() -> anyhow::Result<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        bail!("cannot list the host's addresses: {}", std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut at = head;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs returned, alive
        // until freeifaddrs; its address, when set, is as long as its
        // family says.
        let ifa = unsafe { &*at };
        at = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        let ip = match unsafe { (*ifa.ifa_addr).sa_family } as i32 {
            libc::AF_INET => {
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
            }
            libc::AF_INET6 => {
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
            }
            _ => continue,
        };
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    // SAFETY: the list from getifaddrs, freed once, not used after.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The interface of the IPv4 default route, else of the IPv6 one.
pub fn default_route_iface() -> anyhow::Result<String> {
    if let Ok(t) = std::fs::read_to_string("/proc/net/route")
        && let Some(i) = from_route_table(&t)
    {
        return Ok(i);
    }
    if let Ok(t) = std::fs::read_to_string("/proc/net/ipv6_route")
        && let Some(i) = from_ipv6_route_table(&t)
    {
        return Ok(i);
    }
    bail!("no default route found: name the interface to watch with --iface")
}

fn from_route_table(t: &str) -> Option<String> {
    t.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000").then(|| f[0].to_string())
    })
}

fn from_ipv6_route_table(t: &str) -> Option<String> {
    t.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 10 && f[0] == "00000000000000000000000000000000" && f[1] == "00" && f[9] != "lo")
            .then(|| f[9].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_own_addresses() {
        let own = own_addresses().unwrap();
        let mut dedup = own.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), own.len(), "{own:?}");
        // Loopback is up wherever a test runs; an unconfigured one would
        // list nothing, which is no error either.
        assert!(own.iter().all(|a| !a.is_unspecified()), "{own:?}");
    }

    #[test]
    fn parses_route_tables() {
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                  eth1\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(from_route_table(v4).as_deref(), Some("eth1"));
        assert_eq!(from_route_table("Iface\n"), None);
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 ens3\n";
        assert_eq!(from_ipv6_route_table(v6).as_deref(), Some("ens3"));
    }
}
