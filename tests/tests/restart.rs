//! A restart in the middle of a slow scan: the live daemon sees the first
//! half of a client's rejected requests to one path, is stopped with
//! SIGTERM (writing its detection snapshot), starts again on the same
//! state directory, sees the second half, and reports the single-path
//! finding that only both halves together reach.

use std::time::Duration;

use rejectwatch_tests::*;

const SCANNER: &str = "10.200.0.9";
/// The threshold: more than either half alone.
const MIN_REQUESTS: usize = 20;
const HALF: usize = 12;

fn half(net: &Netns) {
    let urls = vec![format!("http://{SRV_V4}/api/v1/export.csv"); HALF];
    let codes = curl_from(&net.cli, SCANNER, "", &urls, Duration::from_secs(5));
    assert_eq!(codes, vec![403; HALF]);
}

fn single_path(findings: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    findings.iter().filter(|f| f["detector"] == "single-path").collect()
}

#[test]
fn a_slow_scan_split_by_a_restart_is_found() {
    if !kernel_tests_possible("a_slow_scan_split_by_a_restart_is_found") {
        return;
    }
    let net = Netns::new(NetnsOptions::default());
    sh(&["ip", "-n", &net.cli, "addr", "add", &format!("{SCANNER}/24"), "dev", &net.cli_if]);
    let dir = TempDir::new("restart");
    let _nginx = nginx(&net, &net.srv, &dir, &format!("server {{ listen {SRV_V4}:80; return 403; }}"));
    wait_listening(&net.cli, format!("{SRV_V4}:80").parse().expect("addr"));
    let config = dir.path("rejectwatch.toml");
    std::fs::write(
        &config,
        format!("[[detect.detector]]\nkind = \"single-path\"\nmin_requests = {MIN_REQUESTS}\n\n[snapshot]\ninterval = \"1h\"\n"),
    )
    .expect("write config");
    let start = |findings: &str| {
        let findings = dir.path(findings);
        let args = ["--iface", &net.srv_if, "--port", "80", "--config", config.to_str().expect("utf-8")];
        let args = [&args[..], &["--findings", findings.to_str().expect("utf-8")]].concat();
        (Daemon::start(&net, &net.srv, &dir, &args), findings)
    };

    let (d, findings) = start("before.jsonl");
    half(&net);
    d.wait_exchanges(HALF as u64);
    d.stop();
    assert!(single_path(&read_jsonl(&findings)).is_empty(), "found from one half");
    let snapshot = rejectwatch::state::snapshot::file(&dir.path("state"));
    assert!(snapshot.exists(), "no snapshot written at SIGTERM");

    let (d, findings) = start("after.jsonl");
    half(&net);
    let m = d.wait_exchanges(HALF as u64);
    assert_eq!(metric_sum(&m, "rejectwatch_snapshot_failures_total"), 0, "{m}");
    d.stop();
    let found = read_jsonl(&findings);
    let found = single_path(&found);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["clients"][0], SCANNER);
    assert_eq!(found[0]["evidence"]["rejected_requests"], MIN_REQUESTS as u64);
}

#[test]
fn a_corrupt_snapshot_is_counted_and_the_daemon_starts_fresh() {
    if !kernel_tests_possible("a_corrupt_snapshot_is_counted_and_the_daemon_starts_fresh") {
        return;
    }
    let net = Netns::new(NetnsOptions::default());
    let dir = TempDir::new("restart-corrupt");
    std::fs::create_dir_all(dir.path("state")).expect("state dir");
    std::fs::write(rejectwatch::state::snapshot::file(&dir.path("state")), b"RWDETECT\x01\x00\x00\x00garbage")
        .expect("write");
    let d = Daemon::start(&net, &net.srv, &dir, &["--iface", &net.srv_if, "--port", "80"]);
    let m = d.metrics();
    assert_eq!(metric_series(&m, "rejectwatch_snapshot_failures_total").values().sum::<u64>(), 1, "{m}");
    d.stop();
    // Replaced at shutdown by a snapshot that loads.
    let bytes = std::fs::read(rejectwatch::state::snapshot::file(&dir.path("state"))).expect("snapshot");
    let cfg = rejectwatch::config::Config::default();
    let mut e = rejectwatch::detect::Engine::new(&cfg.detect, cfg.ipv6_prefix);
    e.restore(&bytes).expect("the snapshot written at shutdown loads");
}

/// `analyze --resume DIR` in two parts, split between the two holders of
/// an address rotation 48 h apart: the second part finds what one run
/// over the whole log finds there, and alone it does not.
#[test]
fn a_replay_in_two_parts_resumes_where_the_first_stopped() {
    let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let input = case.join("address-rotation-other-tool/input.log.gz");
    let out = std::process::Command::new("zcat").arg(&input).output().expect("zcat");
    let text = String::from_utf8(out.stdout).expect("utf-8 log");
    // Combined log lines, in time order, all in November 2026: day and
    // time from `[DD/Nov/2026:HH:MM:SS`.
    let when = |l: &str| l.split_once('[').map(|(_, t)| (t[..2].to_string(), t[12..20].to_string()));
    let split = text.lines().position(|l| when(l) >= Some(("03".into(), "12:00:00".into()))).expect("a second part");
    let lines: Vec<&str> = text.lines().collect();
    let dir = TempDir::new("resume");
    let (first, second) = (dir.path("first.log"), dir.path("second.log"));
    std::fs::write(&first, lines[..split].join("\n") + "\n").expect("write");
    std::fs::write(&second, lines[split..].join("\n") + "\n").expect("write");
    let resume = dir.path("snapshots");
    let run = |files: &[&std::path::Path], findings: &str, resume_dir: bool| {
        let findings = dir.path(findings);
        let mut args = vec![
            "--config".to_string(),
            case.join("address-rotation-other-tool/config.toml").display().to_string(),
            "--geoip-country".into(),
            case.join("geo-country.csv").display().to_string(),
            "--geoip-asn".into(),
            case.join("geo-asn.csv").display().to_string(),
            "--findings".into(),
            findings.display().to_string(),
        ];
        if resume_dir {
            args.extend(["--resume".to_string(), resume.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = analyze_with(files, &args);
        (read_jsonl(&findings), stderr)
    };
    let (whole, _) = run(&[&input], "whole.jsonl", false);
    let cut = whole.iter().position(|f| f["ts"].as_str() >= Some("2026-11-03T12:00:00")).unwrap_or(whole.len());
    let (_, first_said) = run(&[&first], "first.jsonl", true);
    assert!(!first_said.contains("restored"), "nothing to resume from yet: {first_said}");
    let (resumed, said) = run(&[&second], "second.jsonl", true);
    assert!(said.contains("detection state restored"), "{said}");
    assert_eq!(resumed, whole[cut..]);
    assert!(resumed.iter().any(|f| f["detector"] == "address-rotation"), "{resumed:?}");
    let (alone, _) = run(&[&second], "alone.jsonl", false);
    assert!(!alone.iter().any(|f| f["detector"] == "address-rotation"), "found without the first holder: {alone:?}");
}
