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
    let snapshot = rejectwatch::resume::file(&dir.path("state"));
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
    std::fs::write(rejectwatch::resume::file(&dir.path("state")), b"RWDETECT\x01\x00\x00\x00garbage").expect("write");
    let d = Daemon::start(&net, &net.srv, &dir, &["--iface", &net.srv_if, "--port", "80"]);
    let m = d.metrics();
    assert_eq!(metric_series(&m, "rejectwatch_snapshot_failures_total").values().sum::<u64>(), 1, "{m}");
    d.stop();
    // Replaced at shutdown by a snapshot that loads.
    let bytes = std::fs::read(rejectwatch::resume::file(&dir.path("state"))).expect("snapshot");
    let cfg = rejectwatch::config::Config::default();
    let mut e = rejectwatch::detect::Engine::new(&cfg.detect, cfg.ipv6_prefix);
    e.restore(&bytes).expect("the snapshot written at shutdown loads");
}
