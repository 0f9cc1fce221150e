//! What `deploy/` ships, against real components: the systemd units pass
//! `systemd-analyze verify` and score well on `systemd-analyze security`;
//! the Prometheus rules pass `promtool check rules` and `promtool test
//! rules`; every
//! metric the rules, the dashboard, the README and docs/operations.md name is one rejectwatch
//! declares (and every declared one is documented); and a real Prometheus
//! server scrapes a live daemon on a veth, loads the rules healthy, and
//! answers every dashboard query.

use std::{
    collections::BTreeSet,
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use rejectwatch_tests::*;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn have(tool: &str, test: &str) -> bool {
    let ok = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var_os("REJECTWATCH_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
            panic!("{test}: {tool} is needed (scripts/deps.sh installs the prometheus package)");
        }
        eprintln!("SKIPPED {test}: {tool} is missing");
    }
    ok
}

/// `rejectwatch_…` names in a text (metric names end before `{`, `[`, `(`,
/// space, quote or backtick).
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("rejectwatch_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// The metrics rejectwatch declares: the name literals in metrics.rs. Each
/// from its opening quote: counting quotes from the top of the file goes
/// wrong at the first quote in a char literal (`b'"'`).
fn declared() -> BTreeSet<String> {
    let src = read("rejectwatch/src/metrics.rs");
    src.match_indices("\"rejectwatch_")
        .map(|(i, _)| {
            let name = &src[i + 1..];
            name[..name.find('"').unwrap_or(name.len())].to_string()
        })
        .collect()
}

fn dashboard_exprs() -> Vec<String> {
    let d: Value = serde_json::from_str(&read("deploy/grafana/rejectwatch.json")).expect("dashboard is JSON");
    let panels = d["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut exprs = Vec::new();
    for p in panels {
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("panel {} has no targets", p["title"]));
        assert!(!targets.is_empty(), "panel {} has no queries", p["title"]);
        assert!(p["gridPos"]["w"].as_u64().is_some(), "panel {} has no position", p["title"]);
        for t in targets {
            exprs.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    exprs
}

#[test]
fn rules_dashboard_and_readme_name_only_real_metrics() {
    let declared = declared();
    assert!(declared.len() >= 20, "{declared:?}");
    let alerts = read("deploy/prometheus/alerts.yml");
    let dash = read("deploy/grafana/rejectwatch.json");
    let readme = read("README.md");
    // The metric table lives with the rest of operating it.
    let ops = read("docs/operations.md");
    for (what, text) in
        [("alerts.yml", &alerts), ("rejectwatch.json", &dash), ("README.md", &readme), ("docs/operations.md", &ops)]
    {
        for n in names_in(text) {
            assert!(declared.contains(&n), "{what} names {n}, which rejectwatch does not export");
        }
    }
    let documented = names_in(&ops);
    for n in &declared {
        assert!(documented.contains(n), "{n} is not in docs/operations.md's metric table");
    }
    dashboard_exprs();
}

#[test]
fn promtool_checks_and_tests_the_rules() {
    if !have("promtool", "promtool_checks_and_tests_the_rules") {
        return;
    }
    let dir = repo().join("deploy/prometheus");
    for args in [&["check", "rules", "alerts.yml"][..], &["test", "rules", "alerts.test.yml"]] {
        let o = Command::new("promtool").args(args).current_dir(&dir).output().expect("run promtool");
        assert!(
            o.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn systemd_units_verify() {
    if !Command::new("sh").args(["-c", "command -v systemd-analyze"]).output().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED systemd_units_verify: systemd-analyze is missing (a host without systemd)");
        return;
    }
    let dir = TempDir::new("units");
    let bin = rejectwatch_bin();
    let mut units = Vec::new();
    for name in ["rejectwatch.service", "rejectwatch-nft.path", "rejectwatch-nft.service"] {
        // verify wants ExecStart to exist: point it at the binary built here.
        let text = read(&format!("deploy/systemd/{name}")).replace("/usr/local/bin/rejectwatch", &bin);
        std::fs::write(dir.path(name), text).expect("write unit");
        units.push(dir.path(name));
    }
    let o = Command::new("systemd-analyze").arg("verify").args(&units).output().expect("run systemd-analyze");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.trim().is_empty(), "systemd-analyze verify: {err}");
    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=25"])
        .arg(&units[0])
        .output()
        .expect("run systemd-analyze security");
    let out = String::from_utf8_lossy(&o.stdout);
    let level = out.lines().find(|l| l.contains("Overall exposure level")).unwrap_or("");
    assert!(o.status.success() && level.contains(" OK"), "exposure: {level}\n{}", String::from_utf8_lossy(&o.stderr));
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query(ns: &str, prom: SocketAddr, q: &str) -> Value {
    let path = format!("/api/v1/query?query={}", encode(q));
    let body = Netns::within(ns, move || http_get(prom, &path));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{q}: {body}: {e}"))
}

#[test]
fn prometheus_scrapes_a_live_daemon_and_loads_the_rules() {
    let test = "prometheus_scrapes_a_live_daemon_and_loads_the_rules";
    if !kernel_tests_possible(test) || !have("prometheus", test) {
        return;
    }
    let net = Netns::new(NetnsOptions::default());
    let dir = TempDir::new("prometheus");
    let _nginx = nginx(&net, &net.srv, &dir, &format!("server {{ listen {SRV_V4}:80; {NGINX_LOCATIONS} }}"));
    wait_listening(&net.cli, format!("{SRV_V4}:80").parse().expect("addr"));
    let d = Daemon::start(&net, &net.srv, &dir, &["--iface", &net.srv_if, "--port", "80"]);

    let config = dir.path("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: rejectwatch\n    static_configs:\n      - targets: ['{}']\n",
            repo().join("deploy/prometheus/alerts.yml").display(),
            d.listen
        ),
    )
    .expect("write prometheus.yml");
    let prom: SocketAddr = "127.0.0.1:9090".parse().expect("addr");
    let mut child = net
        .exec(&net.srv, &["prometheus"])
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path("tsdb").display()))
        .arg(format!("--web.listen-address={prom}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn prometheus");
    let log = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for l in BufReader::new(log).lines().map_while(Result::ok) {
            if l.contains("level=error") || l.contains("level=warn") {
                eprintln!("[prometheus] {l}");
            }
        }
    });
    let _prometheus = Proc { child, name: "prometheus" };
    wait_listening(&net.srv, prom);
    // Prometheus opens its port before its TSDB is loaded, and answers 503 to
    // queries until then: wait for its own readiness endpoint.
    let start = Instant::now();
    loop {
        let (status, body) = Netns::within(&net.srv, move || http_request(prom, "GET", "/-/ready", &[], ""));
        if status == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "Prometheus not ready after 30 s: {status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Traffic: 12 exchanges, 9 of them rejects.
    let urls: Vec<String> = ["/ok", "/auth", "/forbidden", "/limited", "/api/x"]
        .iter()
        .cycle()
        .take(12)
        .map(|p| format!("http://{SRV_V4}{p}"))
        .collect();
    let codes = curl_from(&net.cli, CLI_V4, "curl/8.5.0", &urls, Duration::from_secs(5));
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 3, "{codes:?}");
    d.wait_exchanges(12);

    let start = Instant::now();
    loop {
        let v = query(&net.srv, prom, "sum(rejectwatch_http_exchanges_total{job=\"rejectwatch\"})");
        let got = v["data"]["result"][0]["value"][1].as_str().unwrap_or("").to_string();
        if got == "12" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "Prometheus has {got:?} exchanges: {v}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let v = query(&net.srv, prom, "sum(rejectwatch_rejects_total)");
    assert_eq!(v["data"]["result"][0]["value"][1], "9", "{v}");
    let v = query(&net.srv, prom, "rejectwatch_build_info");
    assert_eq!(v["data"]["result"][0]["metric"]["version"], env!("CARGO_PKG_VERSION"), "{v}");

    // Every rule loaded and evaluates.
    let want = read("deploy/prometheus/alerts.yml").matches("- alert:").count();
    let start = Instant::now();
    loop {
        let body = Netns::within(&net.srv, move || http_get(prom, "/api/v1/rules"));
        let v: Value = serde_json::from_str(&body).expect("rules JSON");
        let rules: Vec<&Value> = v["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        let healthy = rules.iter().filter(|r| r["health"] == "ok").count();
        if rules.len() == want && healthy == want {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "rules not all healthy: {body}");
        std::thread::sleep(Duration::from_millis(250));
    }

    // Every dashboard query is valid PromQL against the live data.
    for e in dashboard_exprs() {
        let q = e.replace("$__rate_interval", "1m").replace("$instance", ".*");
        let v = query(&net.srv, prom, &q);
        assert_eq!(v["status"], "success", "{q}: {v}");
    }
    drop(d.stop());
}
