//! What `rejectwatch analyze` leaves behind for other programs: the
//! blocklist files are written once, as of the last record, whether or not
//! a threat is still listed then, and the summary says why a threat is not;
//! the prospects name who owns the networks they poll from.

use std::{fs, path::Path};

use rejectwatch_tests::{TempDir, analyze_with};

/// Common-format lines: `(client, seconds after 10:00, path, status, user agent)`.
fn write_log(path: &Path, lines: &[(&str, u32, &str, u16, &str)]) {
    let text: String = lines
        .iter()
        .map(|(ip, s, p, st, ua)| {
            let (h, m, sec) = (10 + s / 3600, s / 60 % 60, s % 60);
            format!("{ip} - - [22/Nov/2026:{h:02}:{m:02}:{sec:02} +0000] \"GET {p} HTTP/1.1\" {st} 0 \"-\" \"{ua}\"\n")
        })
        .collect();
    fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn probes(at: u32) -> Vec<(&'static str, u32, &'static str, u16, &'static str)> {
    probes_from("203.0.113.66", at)
}

fn probes_from(ip: &'static str, at: u32) -> Vec<(&'static str, u32, &'static str, u16, &'static str)> {
    ["/.env", "/.git/config", "/wp-config.php.bak"].iter().map(|p| (ip, at, *p, 404, "curl/8.5.0")).collect()
}

fn entries(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{} not written: {e}", path.display()));
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(str::to_string).collect()
}

#[test]
fn blocklist_is_written_as_of_the_last_record() {
    let dir = TempDir::new("analyze-blocklist");
    let (txt, nft) = (dir.path("block.txt"), dir.path("block.nft"));
    let args = ["--blocklist", txt.to_str().expect("utf-8"), "--blocklist", nft.to_str().expect("utf-8")];

    // The prober's last request is within the default four hours of the
    // log's end: listed.
    let recent = dir.path("recent.log");
    let mut lines = probes(0);
    lines.push(("198.51.100.7", 3600, "/api/v1/account", 200, "Mozilla/5.0"));
    write_log(&recent, &lines);
    let stderr = analyze_with(&[&recent], &args);
    assert_eq!(entries(&txt), ["203.0.113.66"], "{stderr}");
    assert!(fs::read_to_string(&nft).expect("nft written").contains("203.0.113.66"), "{stderr}");
    assert!(stderr.contains("1 blocklisted") && !stderr.contains("not listed"), "{stderr}");

    // Five hours of ordinary traffic after the probes: the entry has
    // expired by the end, and the files say so rather than keep the
    // earlier run's list or go unwritten.
    let stale = dir.path("stale.log");
    let mut lines = probes(0);
    lines.push(("198.51.100.7", 5 * 3600, "/api/v1/account", 200, "Mozilla/5.0"));
    write_log(&stale, &lines);
    let stderr = analyze_with(&[&stale], &args);
    assert_eq!(entries(&txt), Vec::<String>::new(), "{stderr}");
    assert!(!fs::read_to_string(&nft).expect("nft written").contains("203.0.113.66"), "{stderr}");
    assert!(stderr.contains("1 threat, "), "{stderr}");
    assert!(
        stderr.contains(
            "0 blocklisted (1 threat actor(s) not listed: 1 quiet for longer than blocklist.ttl (4h) by the last record)"
        ),
        "{stderr}"
    );
}

#[test]
fn blocklist_ttl_from_now_lists_last_weeks_threats() {
    let dir = TempDir::new("analyze-ttl-from");
    let (txt, nft) = (dir.path("block.txt"), dir.path("block.nft"));
    // The prober went quiet thirteen hours before the last record.
    let log = dir.path("week.log");
    let mut lines = probes(0);
    lines.push(("198.51.100.7", 13 * 3600, "/api/v1/account", 200, "Mozilla/5.0"));
    write_log(&log, &lines);
    let args = |from: &'static str| {
        vec![
            "--blocklist".to_string(),
            txt.display().to_string(),
            "--blocklist".to_string(),
            nft.display().to_string(),
            "--blocklist-ttl-from".to_string(),
            from.to_string(),
        ]
    };
    let run = |from| {
        let a = args(from);
        analyze_with(&[&log], &a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let stderr = run("last-record");
    assert_eq!(entries(&txt), Vec::<String>::new(), "{stderr}");
    let stderr = run("now");
    assert_eq!(entries(&txt), ["203.0.113.66"], "{stderr}");
    assert!(stderr.contains("1 blocklisted") && !stderr.contains("not listed"), "{stderr}");
    // Its entry lasts the default four hours from the run, not from 2026.
    let script = fs::read_to_string(&nft).expect("nft written");
    let timeout: u64 = script
        .split("203.0.113.66 timeout ")
        .nth(1)
        .and_then(|t| t.split('s').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no timeout for the prober: {script}"));
    assert!((4 * 3600 - 60..=4 * 3600).contains(&timeout), "{timeout}: {script}");
}

/// Threats from loopback, a private address and a trusted proxy are
/// actors that say why they are not listed; one from a documentation
/// address is listed; with `block_private` the private one is too.
#[test]
fn never_blocks_loopback_private_ranges_or_trusted_proxies() {
    let dir = TempDir::new("analyze-not-blocked");
    let (txt, actors, config) = (dir.path("block.txt"), dir.path("actors.json"), dir.path("rw.toml"));
    let log = dir.path("probes.log");
    let mut lines = Vec::new();
    for (i, ip) in ["127.0.0.1", "10.1.2.3", "192.0.2.80", "203.0.113.66"].into_iter().enumerate() {
        lines.extend(probes_from(ip, 60 * i as u32));
    }
    write_log(&log, &lines);
    let run = |block_private: bool| {
        fs::write(&config, format!("[blocklist]\nblock_private = {block_private}\n")).expect("write config");
        let args = [
            "--config",
            config.to_str().expect("utf-8"),
            "--trusted-proxy",
            "192.0.2.80",
            "--blocklist",
            txt.to_str().expect("utf-8"),
            "--actors",
            actors.to_str().expect("utf-8"),
        ];
        let stderr = analyze_with(&[&log], &args);
        let roster: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&actors).expect("actors written")).expect("actors json");
        let mut notes: Vec<(String, String, serde_json::Value)> = roster
            .as_array()
            .expect("array")
            .iter()
            .map(|a| {
                let client = a["clients"][0].as_str().unwrap_or("").to_string();
                (client, a["classification"].as_str().unwrap_or("").to_string(), a["not_blocked"].clone())
            })
            .collect();
        notes.sort_by(|a, b| a.0.cmp(&b.0));
        (stderr, notes)
    };
    let note = |ip: &str, why: &str| serde_json::json!({ ip: why });
    let threat = |ip: &str, n: serde_json::Value| (ip.to_string(), "threat".to_string(), n);

    let (stderr, notes) = run(false);
    assert_eq!(entries(&txt), ["203.0.113.66"], "{stderr}");
    assert_eq!(
        notes,
        [
            threat("10.1.2.3", note("10.1.2.3", "private_range")),
            threat("127.0.0.1", note("127.0.0.1", "loopback")),
            threat("192.0.2.80", note("192.0.2.80", "trusted_proxy")),
            threat("203.0.113.66", serde_json::Value::Null),
        ],
        "{stderr}"
    );
    assert!(stderr.contains("1 blocklisted (3 threat actor(s) not listed: 3 never listed ("), "{stderr}");

    let (stderr, notes) = run(true);
    assert_eq!(entries(&txt), ["10.1.2.3", "203.0.113.66"], "{stderr}");
    assert_eq!(notes[0], threat("10.1.2.3", serde_json::Value::Null), "{stderr}");
    assert_eq!(notes[1], threat("127.0.0.1", note("127.0.0.1", "loopback")), "{stderr}");
}

/// Three days of a TAXII connector polling hourly from one address in each
/// of the case data's two ASNs, every poll refused.
#[test]
fn prospects_name_their_networks_owners() {
    let dir = TempDir::new("analyze-prospects");
    let log = dir.path("poll.log");
    let feed = "/taxii2/root/collections/0b6a2f4e-1c3d-4e5f-8a9b-0c1d2e3f4a5b/objects/";
    let mut lines = Vec::new();
    for hour in 0..60u32 {
        for (i, ip) in ["198.51.100.20", "203.0.113.40"].into_iter().enumerate() {
            let at = hour * 3600 + i as u32 * 420 + hour % 7;
            let day = 20 + at / 86_400;
            let (h, m, sec) = (at / 3600 % 24, at / 60 % 60, at % 60);
            lines.push((at, format!(
                "{ip} - - [{day}/Nov/2026:{h:02}:{m:02}:{sec:02} +0000] \"GET {feed} HTTP/1.1\" 403 0 \"-\" \"python-requests/2.32.5\"\n"
            )));
        }
    }
    lines.sort();
    fs::write(&log, lines.into_iter().map(|(_, l)| l).collect::<String>()).expect("write log");
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let csv = dir.path("prospects.csv");
    let stderr = analyze_with(
        &[&log],
        &[
            "--geoip-asn",
            cases.join("geo-asn.csv").to_str().expect("utf-8"),
            "--prospects",
            csv.to_str().expect("utf-8"),
        ],
    );
    let text = fs::read_to_string(&csv).unwrap_or_else(|e| panic!("{}: {e}", csv.display()));
    let mut rows = text.lines();
    let header: Vec<&str> = rows.next().expect("header").split(',').collect();
    let row: Vec<&str> = rows.next().unwrap_or_else(|| panic!("no prospect: {stderr}")).split(',').collect();
    let field =
        |name: &str| row[header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{name}: {header:?}"))];
    assert_eq!(field("product_version"), "python-requests/2.32.5", "{text}");
    assert_eq!(field("cadence"), "60m", "{text}");
    let asns: Vec<&str> = field("asns").split(' ').collect();
    let orgs: Vec<&str> = field("as_orgs").split("; ").collect();
    let owner = |asn: &str| match asn {
        "AS64500" => "Example Cloud US",
        "AS64501" => "Example Hosting DE",
        other => panic!("unexpected {other}: {text}"),
    };
    assert_eq!(orgs, asns.iter().map(|a| owner(a)).collect::<Vec<_>>(), "{text}");
    assert_eq!(asns.len(), 2, "{text}");
}

/// One file in each format `analyze` knows, wrapped as it is found on
/// hosts (a container runtime's framing, syslog), read with no
/// `--format`: each file's format is found from its lines, and every
/// exchange names the client, method, target, status and user agent its
/// line did.
#[test]
fn every_preset_and_wrapper_is_detected() {
    let dir = TempDir::new("analyze-formats");
    let ua = "curl/8.5.0";
    let clf = |ip: &str, sec: u32, path: &str| {
        format!(r#"{ip} - - [07/Dec/2026:14:00:{sec:02} +0000] "GET {path} HTTP/1.1" 404 0 "-" "{ua}""#)
    };
    let files: Vec<(&str, String)> = vec![
        ("traefik.json", format!(
            r#"{{"ClientAddr":"203.0.113.1:50000","ClientHost":"203.0.113.1","DownstreamStatus":404,"RequestHost":"app.example.com","RequestMethod":"GET","RequestPath":"/traefik-json","RequestProtocol":"HTTP/1.1","StartUTC":"2026-12-07T14:00:01Z","level":"info","msg":"","request_User-Agent":"{ua}","time":"2026-12-07T14:00:01Z"}}"#
        )),
        ("traefik.log", format!(r#"{} 7 "app@docker" "http://172.18.0.3:80" 2ms"#, clf("203.0.113.2", 2, "/traefik-clf"))),
        ("caddy.json", format!(
            r#"{{"level":"info","ts":"2026-12-07T14:00:03Z","logger":"http","msg":"server running"}}
{{"level":"info","ts":1796652003.25,"logger":"http.log.access.log0","msg":"handled request","request":{{"remote_ip":"10.0.0.2","remote_port":"41342","client_ip":"203.0.113.3","proto":"HTTP/1.1","method":"GET","host":"shop.example.com","uri":"/caddy","headers":{{"User-Agent":["{ua}"]}}}},"status":404,"size":0}}"#
        )),
        ("envoy.log", format!(
            r#"[2026-12-07T14:00:04.000Z] "GET /envoy-text HTTP/1.1" 404 NR 0 0 0 - "203.0.113.4" "{ua}" "5fd2b9a4" "example.com" "-""#
        )),
        ("envoy.json", format!(
            r#"{{"start_time":"2026-12-07T14:00:05.000Z","method":"GET","path":"/envoy-json","protocol":"HTTP/1.1","response_code":404,"user_agent":"{ua}","authority":"example.com","downstream_remote_address":"203.0.113.5:61000"}}"#
        )),
        ("haproxy.log",
            r#"<134>Dec  7 14:00:06 lb1 haproxy[14389]: 203.0.113.6:33317 [07/Dec/2026:14:00:06.655] http-in static/srv1 10/0/30/69/109 404 2750 - - ---- 1/1/1/1/0 0/0 {example.com} {} "GET /haproxy HTTP/1.1""#.to_string()),
        ("alb.log", format!(
            r#"https 2026-12-07T14:00:07.186641Z app/my-lb/50dc6c495c0c9188 203.0.113.7:2817 10.0.0.1:80 0.000 0.001 0.000 404 404 34 366 "GET https://www.example.com:443/alb?x=1 HTTP/1.1" "{ua}" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/t/73e2 "Root=1-58337262-36d228ad5d99923122bbe354" "www.example.com" "-" 0 2026-12-07T14:00:07.000000Z "forward" "-" "-" "10.0.0.1:80" "404" "-" "-""#
        )),
        ("ingress.log", format!(
            "{} 221 0.001 [default-web-80] [] 10.244.0.5:8080 0 0.001 404 6b0c3a8f2d1e4b5a",
            clf("203.0.113.8", 8, "/ingress-nginx")
        )),
        // CRI: a line split in two pieces, the nginx error log on stderr
        // between them.
        ("cri.log", {
            let line = clf("203.0.113.9", 9, "/cri");
            let (a, b) = line.split_at(30);
            format!(
                "2026-12-07T14:00:09.1Z stdout P {a}\n\
                 2026-12-07T14:00:09.1Z stderr F 2026/12/07 14:00:09 [error] 29#29: *1 open() \"/usr/share/nginx/html/cri\" failed\n\
                 2026-12-07T14:00:09.2Z stdout F {b}"
            )
        }),
        ("syslog.log", format!("<190>Dec  7 14:00:10 web1 nginx: {}", clf("203.0.113.10", 10, "/syslog"))),
        ("docker.log", serde_json::json!({"log": format!("{}\n", clf("203.0.113.11", 11, "/docker")), "stream": "stdout", "time": "2026-12-07T14:00:11Z"}).to_string()),
    ];
    let mut paths = Vec::new();
    for (name, text) in &files {
        let p = dir.path(name);
        fs::write(&p, format!("{text}\n")).expect("write log");
        paths.push(p);
    }
    let (exchanges, stderr) = rejectwatch_tests::analyze(&paths.iter().map(|p| p.as_path()).collect::<Vec<_>>(), &[]);
    let got: Vec<(String, String, String, u64, String)> = exchanges
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
            (s("peer"), s("method"), s("target"), e["status"].as_u64().unwrap_or(0), s("user_agent"))
        })
        .collect();
    let want: Vec<(String, String, String, u64, String)> = [
        ("203.0.113.1", "/traefik-json"),
        ("203.0.113.2", "/traefik-clf"),
        ("203.0.113.3", "/caddy"),
        ("203.0.113.4", "/envoy-text"),
        ("203.0.113.5", "/envoy-json"),
        ("203.0.113.6", "/haproxy"),
        ("203.0.113.7", "/alb?x=1"),
        ("203.0.113.8", "/ingress-nginx"),
        ("203.0.113.9", "/cri"),
        ("203.0.113.10", "/syslog"),
        ("203.0.113.11", "/docker"),
    ]
    .iter()
    .map(|(ip, target)| {
        // HAProxy logs no user agent unless it captures one.
        let ua = if *target == "/haproxy" { "" } else { ua };
        (ip.to_string(), "GET".to_string(), target.to_string(), 404, ua.to_string())
    })
    .collect();
    assert_eq!(got, want, "{stderr}");
    for part in [
        "read: alb 1, caddy 1, combined 3, envoy 2, haproxy 1, ingress-nginx 1, traefik 2",
        "unwrapped: cri 3, docker 1, syslog 2",
        "error_log_line 2",
    ] {
        assert!(stderr.contains(part), "{part}: {stderr}");
    }
    assert!(!stderr.contains("unreadable") && stderr.contains(" 0 parse errors"), "{stderr}");

    // Forced, a format reads only its own lines, and says why not.
    let (exchanges, stderr) =
        rejectwatch_tests::analyze(&[&dir.path("ingress.log"), &dir.path("alb.log")], &["--format", "haproxy"]);
    assert!(exchanges.is_empty(), "{stderr}");
    assert!(stderr.contains("unreadable 2: bad_address 1, no_timestamp 1"), "{stderr}");
}
