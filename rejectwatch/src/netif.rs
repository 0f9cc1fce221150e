//! Finds the interface of the default route, which `run` watches when no
//! `--iface` is given.

use anyhow::bail;

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
