//! Enforcement in XDP, for real: with `--enforce xdp` a live daemon on a
//! veth drops a threat's packets before the stack sees them (its
//! connections time out, nginx never logs them) while other clients are
//! served; the entry goes when it expires; an allowlisted client doing the
//! same is never dropped, before or after a restart; and maps made for a
//! million entries load one.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use rejectwatch_tests::*;
use serde_json::Value;

const ATTACKER: &str = "10.200.0.5";
const ALLOWED: &str = "10.200.0.6";

fn url(path: &str) -> String {
    format!("http://{SRV_V4}{path}")
}

fn probe(ns: &str, from: &str) -> Vec<u16> {
    curl_from(ns, from, "sqlmap/1.8.2#stable", &[url("/.env"), url("/.git/config")], Duration::from_secs(2))
}

fn ok(ns: &str, from: &str) -> u16 {
    curl_from(ns, from, "curl/8.5.0", &[url("/ok")], Duration::from_secs(2))[0]
}

fn enforced(ns: &str, addr: SocketAddr) -> Vec<String> {
    let (status, body) = Netns::within(ns, move || http_request(addr, "GET", "/api/v1/enforced", &[], ""));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
    v["enforced"].as_array().expect("list").iter().map(|n| n.as_str().unwrap_or("").to_string()).collect()
}

/// Polls `f` until it holds or `within` passes.
fn eventually(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn access_log_lines_from(dir: &TempDir, ip: &str) -> usize {
    std::fs::read_to_string(dir.path("access.log")).unwrap_or_default().lines().filter(|l| l.starts_with(ip)).count()
}

#[test]
fn xdp_drops_the_threat_and_nobody_else() {
    if !kernel_tests_possible("xdp_drops_the_threat_and_nobody_else") {
        return;
    }
    let net = Netns::new(NetnsOptions::default());
    for ip in [ATTACKER, ALLOWED] {
        sh(&["ip", "-n", &net.cli, "addr", "add", &format!("{ip}/24"), "dev", &net.cli_if]);
    }
    let dir = TempDir::new("enforce");
    let _nginx = nginx(&net, &net.srv, &dir, &format!("server {{ listen {SRV_V4}:80; {NGINX_LOCATIONS} }}"));
    wait_listening(&net.cli, format!("{SRV_V4}:80").parse().expect("addr"));
    // The attackers are in a private range, kept off blocklists by default.
    let config = dir.path("rejectwatch.toml");
    std::fs::write(&config, format!("[blocklist]\nttl = \"8s\"\nallowlist = [\"{ALLOWED}\"]\nblock_private = true\n"))
        .expect("config");
    let listen: SocketAddr = "127.0.0.1:9617".parse().expect("addr");
    let args =
        ["--iface", &net.srv_if, "--port", "80", "--config", config.to_str().expect("utf-8"), "--enforce", "xdp"];
    let d = Daemon::start_listen(&net, &net.srv, &dir, &args, listen);

    assert_eq!(ok(&net.cli, ATTACKER), 200, "not listed yet");
    assert_eq!(probe(&net.cli, ATTACKER), [404, 404]);
    assert_eq!(probe(&net.cli, ALLOWED), [404, 404]);
    eventually(Duration::from_secs(10), "the attacker enforced", || {
        enforced(&d.ns, listen) == [ATTACKER.to_string() + "/32"]
    });

    // Its packets go no further than XDP: the connection times out and
    // nginx never hears of it. Everyone else is served.
    let logged = access_log_lines_from(&dir, ATTACKER);
    assert_eq!(ok(&net.cli, ATTACKER), 0, "the attacker's connection should time out");
    assert_eq!(access_log_lines_from(&dir, ATTACKER), logged, "nginx saw a dropped client");
    assert_eq!(ok(&net.cli, ALLOWED), 200, "the allowlist always wins");
    assert_eq!(ok(&net.cli, CLI_V4), 200);
    let m = d.metrics();
    let drops = metric_series(&m, "rejectwatch_xdp_dropped_packets_total");
    assert!(drops.get("family=\"ipv4\"").copied().unwrap_or(0) > 0, "{m}");
    assert!(metric_sum(&m, "rejectwatch_xdp_dropped_bytes_total") > 0);

    // Silent (its packets never reach the daemon either), the entry
    // expires with the blocklist's ttl and leaves the map.
    eventually(Duration::from_secs(20), "the entry expired", || enforced(&d.ns, listen).is_empty());
    assert_eq!(ok(&net.cli, ATTACKER), 200, "served again once expired");

    // Listed again, then a restart: the state restores the entry into the
    // maps, and the allowlisted client is still never dropped.
    assert_eq!(probe(&net.cli, ATTACKER), [404, 404]);
    eventually(Duration::from_secs(10), "listed again", || !enforced(&d.ns, listen).is_empty());
    d.stop();
    let d = Daemon::start_listen(&net, &net.srv, &dir, &args, listen);
    eventually(Duration::from_secs(10), "restored into the maps", || {
        enforced(&d.ns, listen) == [ATTACKER.to_string() + "/32"]
    });
    assert_eq!(ok(&net.cli, ATTACKER), 0, "still dropped after the restart");
    assert_eq!(ok(&net.cli, ALLOWED), 200, "still never dropped after the restart");
    d.stop();
}

#[test]
fn a_million_entry_blocklist_loads_into_the_maps() {
    if !kernel_tests_possible("a_million_entry_blocklist_loads_into_the_maps") {
        return;
    }
    let net = Netns::new(NetnsOptions::default());
    let dir = TempDir::new("enforce-1m");
    // A state file with a million listed addresses, far from expiry.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let state = dir.path("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let n = 1_000_000u32;
    let mut entries = String::with_capacity(n as usize * 120);
    for i in 0..n {
        if i > 0 {
            entries.push(',');
        }
        // 100.64.0.0/10 and beyond: public-looking, no private range.
        let a = 0x6440_0000u32 + i;
        let ip = std::net::Ipv4Addr::from(a);
        entries.push_str(&format!(
            "{{\"net\":\"{ip}/32\",\"expires\":{e},\"listed\":{now},\"seen\":{now},\"offences\":1,\"actor\":\"a-test\"}}",
            e = now + 3600
        ));
    }
    let state_text = format!("{{\"version\":1,\"entries\":[{entries}],\"past\":[]}}");
    std::fs::write(rejectwatch::state::blocklist::file(&state), state_text).expect("write state");
    let config = dir.path("rejectwatch.toml");
    std::fs::write(&config, "[blocklist]\nmax_entries = 1000000\n\n[enforce]\nmax_entries = 1000000\n")
        .expect("config");
    let listen: SocketAddr = "127.0.0.1:9617".parse().expect("addr");
    let args =
        ["--iface", &net.srv_if, "--port", "80", "--config", config.to_str().expect("utf-8"), "--enforce", "xdp"];
    let d = Daemon::start_listen(&net, &net.srv, &dir, &args, listen);
    let start = Instant::now();
    eventually(Duration::from_secs(120), "a million entries enforced", || {
        let (status, body) = Netns::within(&d.ns, move || http_request(listen, "GET", "/api/v1/enforced", &[], ""));
        status == 200 && serde_json::from_str::<Value>(&body).is_ok_and(|v| v["count"] == n)
    });
    eprintln!("a million entries in the maps {:?} after start", start.elapsed());
    d.stop();
}
