//! CrowdSec's own firewall bouncer, unmodified (Debian's
//! crowdsec-firewall-bouncer), enforcing a live daemon's blocklist through
//! the CrowdSec-compatible decisions API: in the server namespace it pulls
//! `/v1/decisions/stream` every second and loads what it gets into its
//! nftables set. The attacker is dropped within a few pulls of being
//! listed and let through again when the entry expires; an allowlisted
//! attacker and a polling prospect are never banned. The same API is
//! checked by hand too (keys, live mode, the decisions' shape), and the
//! live STIX bundle with the reference libraries.

use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use rejectwatch_tests::*;
use serde_json::Value;

/// Secondary client addresses (the primary, CLI_V4, is the test's own).
const ATTACKER: &str = "10.200.0.5";
const ALLOWED: &str = "10.200.0.6";
const PROSPECT: &str = "10.200.0.7";
/// The bouncer's key, and one for the test's own pulls: each key has its
/// own place in the stream, so the test's pulls take nothing from the
/// bouncer's.
const BOUNCER_KEY: &str = "bouncer-key-0123456789abcdef";
const TEST_KEY: &str = "test-key-0123456789abcdef";
const TTL: Duration = Duration::from_secs(20);
const BOUNCER: &str = "/usr/bin/crowdsec-firewall-bouncer";
/// The bouncer's tables: its own names, clashing with nothing else.
const TABLE4: &str = "rwtest";

fn url(path: &str) -> String {
    format!("http://{SRV_V4}{path}")
}

fn attack(ns: &str, from: &str) -> Vec<u16> {
    let urls = [url("/.env"), url("/api/v1/users?id=1%27%20OR%20%271%27=%271"), url("/.git/config"), url("/auth")];
    curl_from(ns, from, "sqlmap/1.8.2#stable", &urls, Duration::from_secs(5))
}

fn required() -> bool {
    std::env::var_os("REJECTWATCH_REQUIRE_KERNEL").is_some_and(|v| v == "1")
}

/// The bouncer's configuration: nftables in its own tables, in the
/// foreground, logging into the test's directory.
fn bouncer_config(dir: &TempDir, api: SocketAddr) -> String {
    format!(
        "mode: nftables\n\
         pid_dir: {d}\n\
         update_frequency: 1s\n\
         daemonize: false\n\
         log_mode: file\n\
         log_dir: {d}\n\
         log_level: debug\n\
         api_url: http://{api}/\n\
         api_key: {BOUNCER_KEY}\n\
         disable_ipv6: false\n\
         deny_action: DROP\n\
         deny_log: false\n\
         supported_decisions_types:\n  - ban\n\
         blacklists_ipv4: rwtest-blacklist\n\
         blacklists_ipv6: rwtest6-blacklist\n\
         nftables:\n\
         \x20 ipv4:\n    enabled: true\n    set-only: false\n    table: {TABLE4}\n    chain: rwtest-chain\n\
         \x20 ipv6:\n    enabled: true\n    set-only: false\n    table: rwtest6\n    chain: rwtest6-chain\n\
         prometheus:\n  enabled: false\n  listen_addr: 127.0.0.1\n  listen_port: 60601\n",
        d = dir.0.display()
    )
}

/// What the bouncer's IPv4 table holds now (its set's elements).
fn banned(ns: &str) -> String {
    let out = Command::new("ip").args(["netns", "exec", ns, "nft", "list", "table", "ip", TABLE4]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

fn bouncer_log(dir: &TempDir) -> String {
    std::fs::read_to_string(dir.path("crowdsec-firewall-bouncer.log")).unwrap_or_default()
}

fn get(ns: &str, addr: SocketAddr, path: &str, key: Option<&str>) -> (u16, String) {
    let (path, header) = (path.to_string(), key.map(|k| format!("X-Api-Key: {k}")));
    Netns::within(ns, move || {
        let headers: Vec<&str> = header.iter().map(String::as_str).collect();
        http_request(addr, "GET", &path, &headers, "")
    })
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{body}: {e}"))
}

fn values(list: &Value) -> Vec<String> {
    list.as_array().map_or(Vec::new(), |l| l.iter().filter_map(|d| d["value"].as_str().map(str::to_string)).collect())
}

#[test]
fn crowdsec_firewall_bouncer_enforces_the_blocklist() {
    let test = "crowdsec_firewall_bouncer_enforces_the_blocklist";
    if !kernel_tests_possible(test) {
        return;
    }
    if !std::path::Path::new(BOUNCER).exists()
        || !Command::new("sh").args(["-c", "command -v nft"]).output().is_ok_and(|o| o.status.success())
    {
        if required() {
            panic!("{test}: {BOUNCER} and nft are needed (scripts/deps.sh installs them)");
        }
        eprintln!("SKIPPED {test}: {BOUNCER} or nft is missing (scripts/deps.sh installs them)");
        return;
    }
    let net = Netns::new(NetnsOptions::default());
    for ip in [ATTACKER, ALLOWED, PROSPECT] {
        sh(&["ip", "-n", &net.cli, "addr", "add", &format!("{ip}/24"), "dev", &net.cli_if]);
    }
    let dir = TempDir::new("crowdsec");
    let _nginx = nginx(&net, &net.srv, &dir, &format!("server {{ listen {SRV_V4}:80; {NGINX_LOCATIONS} }}"));
    wait_listening(&net.cli, format!("{SRV_V4}:80").parse().expect("addr"));
    // The test's addresses are private, kept off the blocklist by default.
    let config = dir.path("rejectwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[detect.cadence]\nburst_gap = \"1s\"\nmin_intervals = 3\ntolerance = 0.4\n\n\
             [blocklist]\nttl = \"{}s\"\nallowlist = [\"{ALLOWED}\"]\nblock_private = true\n\n\
             [api]\nbouncer_keys = [\"{BOUNCER_KEY}\", \"{TEST_KEY}\"]\n",
            TTL.as_secs()
        ),
    )
    .expect("write config");
    let args = ["--iface", &net.srv_if, "--port", "80", "--config", config.to_str().expect("utf-8")];
    let d = Daemon::start(&net, &net.srv, &dir, &args);
    let api = d.listen;

    // The bouncer, as its service runs it, but in the foreground, in the
    // server namespace, with its own configuration.
    let bcfg = dir.path("bouncer.yaml");
    std::fs::write(&bcfg, bouncer_config(&dir, api)).expect("write bouncer config");
    let child = net
        .exec(&net.srv, &[BOUNCER, "-c", bcfg.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the bouncer");
    let bouncer = Proc { child, name: "crowdsec-firewall-bouncer" };
    let start = Instant::now();
    while !banned(&net.srv).contains("rwtest-blacklist") {
        assert!(start.elapsed() < Duration::from_secs(10), "the bouncer set nothing up:\n{}", bouncer_log(&dir));
        std::thread::sleep(Duration::from_millis(100));
    }

    // A prospect polls on a steady cadence and is turned away each time.
    let cli = net.cli.clone();
    let poller = std::thread::spawn(move || {
        let start = Instant::now();
        for i in 0..5u32 {
            let at = Duration::from_secs(3) * i;
            if let Some(wait) = at.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
            let codes = curl_from(&cli, PROSPECT, "python-requests/2.32.5", &[url("/auth")], Duration::from_secs(5));
            assert_eq!(codes, [401], "prospect poll {i}");
        }
    });
    assert_eq!(attack(&net.cli, ALLOWED), [404, 404, 404, 401]);
    assert_eq!(attack(&net.cli, ATTACKER), [404, 404, 404, 401]);
    let attacked = Instant::now();

    // Dropped by the bouncer's set within a few of its pulls.
    loop {
        let set = banned(&net.srv);
        assert!(!set.contains(ALLOWED) && !set.contains(PROSPECT), "banned the wrong client:\n{set}");
        if set.contains(ATTACKER) {
            break;
        }
        assert!(
            attacked.elapsed() < Duration::from_secs(10),
            "the attacker was never banned:\n{set}\n{}",
            bouncer_log(&dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let banned_after = attacked.elapsed();
    eprintln!("crowdsec: attacker banned {banned_after:?} after its last request");
    let ok = |from| curl_from(&net.cli, from, "curl/8.5.0", &[url("/ok")], Duration::from_secs(2));
    assert_eq!(ok(ATTACKER), [0], "the attacker still gets through");
    assert_eq!(ok(ALLOWED), [200], "the allowlisted client is blocked");
    assert_eq!(ok(CLI_V4), [200], "an ordinary client is blocked");
    poller.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert_eq!(ok(PROSPECT), [200], "the prospect is blocked");

    // The API by hand: a key is needed, and the decisions have the shape
    // CrowdSec's bouncers read.
    assert_eq!(get(&net.srv, api, "/v1/decisions/stream?startup=true", None).0, 403);
    assert_eq!(get(&net.srv, api, "/v1/decisions/stream", Some("wrong-key-0123456789abcdef")).0, 403);
    let (status, body) = get(&net.srv, api, "/v1/decisions/stream?startup=true", Some(TEST_KEY));
    assert_eq!(status, 200, "{body}");
    let stream = json(&body);
    assert_eq!(values(&stream["new"]), [ATTACKER], "{body}");
    assert_eq!(stream["deleted"], serde_json::json!([]), "{body}");
    let d0 = &stream["new"][0];
    assert_eq!((&d0["scope"], &d0["type"], &d0["origin"]), (&"Ip".into(), &"ban".into(), &"rejectwatch".into()));
    assert!(d0["scenario"].as_str().is_some_and(|s| s.starts_with("rejectwatch/") && s.len() > 12), "{d0}");
    assert!(d0["id"].as_i64().is_some() && d0["uuid"].as_str().is_some_and(|u| u.len() == 36), "{d0}");
    let left = d0["duration"].as_str().unwrap_or("");
    assert!(left.ends_with('s') && !left.starts_with('-') && !left.contains('h'), "{d0}");
    // Nothing new since: an empty stream.
    let (_, body) = get(&net.srv, api, "/v1/decisions/stream", Some(TEST_KEY));
    assert_eq!(json(&body), serde_json::json!({ "new": [], "deleted": [] }));
    // Live mode.
    let (status, body) = get(&net.srv, api, &format!("/v1/decisions?ip={ATTACKER}"), Some(TEST_KEY));
    assert_eq!((status, values(&json(&body))), (200, vec![ATTACKER.to_string()]), "{body}");
    for who in [ALLOWED, PROSPECT] {
        let (status, body) = get(&net.srv, api, &format!("/v1/decisions?ip={who}"), Some(TEST_KEY));
        assert_eq!((status, body.trim()), (200, "null"), "{who}");
    }
    let (status, body) = get(&net.srv, api, "/v1/decisions?range=10.200.0.0/24&contains=false", Some(TEST_KEY));
    assert_eq!((status, values(&json(&body))), (200, vec![ATTACKER.to_string()]), "{body}");
    let usage = Netns::within(&net.srv, move || {
        http_request(api, "POST", "/v1/usage-metrics", &[&format!("X-Api-Key: {TEST_KEY}")], "{}")
    });
    assert_eq!(usage.0, 201, "{usage:?}");

    // The live STIX bundle, checked by the reference libraries.
    let (status, body) = get(&net.srv, api, "/api/v1/stix", None);
    assert_eq!(status, 200, "{body}");
    let stix = json(&body);
    assert!(body.contains(&format!("[ipv4-addr:value = '{ATTACKER}']")), "{body}");
    assert!(!body.contains(ALLOWED) && !body.contains(PROSPECT), "{body}");
    if let Some(py) = python_with(test, &["stix2", "stix2validator"]) {
        let path = dir.path("live.stix.json");
        std::fs::write(&path, serde_json::to_string_pretty(&stix).expect("JSON")).expect("write bundle");
        check_stix(&py, &path).unwrap_or_else(|e| panic!("the live bundle does not validate:\n{e}\n{body}"));
    }

    // The entry expires TTL after the attacker's last request; the
    // bouncer is told (and its set's own timeout says the same).
    loop {
        if !banned(&net.srv).contains(ATTACKER) {
            break;
        }
        assert!(attacked.elapsed() < TTL + Duration::from_secs(10), "the ban did not end:\n{}", bouncer_log(&dir));
        std::thread::sleep(Duration::from_millis(200));
    }
    let lifted_after = attacked.elapsed();
    eprintln!("crowdsec: ban lifted {lifted_after:?} after the attacker's last request (ttl {TTL:?})");
    // Record time is kept in whole seconds, hence the slack.
    assert!(lifted_after >= TTL - Duration::from_secs(2), "lifted early: {lifted_after:?}");
    assert_eq!(ok(ATTACKER), [200], "still dropped after the ban ended");
    let (_, body) = get(&net.srv, api, "/v1/decisions/stream", Some(TEST_KEY));
    let stream = json(&body);
    assert_eq!((values(&stream["new"]), values(&stream["deleted"])), (vec![], vec![ATTACKER.to_string()]), "{body}");
    let log = bouncer_log(&dir);
    assert!(log.contains("1 decision added") && log.contains("1 decision deleted"), "{log}");
    assert!(!log.contains(ALLOWED) && !log.contains(PROSPECT), "{log}");

    // Its tables go with the namespace.
    drop(bouncer.terminate());
    drop(d.stop());
}
