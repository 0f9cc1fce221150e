//! A full disk under a live daemon: its state directory, findings log and
//! blocklist file live on a 1 MiB tmpfs (mounted in a mount namespace of
//! the daemon's own, so nothing outlives it), which the test fills. The
//! writes fail with one log line per file and kind of error and are
//! counted in `rejectwatch_write_errors_total`, while capture, detection
//! and the API go on; once space returns, the files are written again.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use rejectwatch_tests::*;

const ATTACKER: &str = "10.200.0.5";
const LATER: &str = "10.200.0.6";

fn attack(ns: &str, from: &str) -> Vec<u16> {
    let urls: Vec<String> = ["/.env", "/.git/config", "/api/v1/users?id=1%27%20OR%20%271%27=%271", "/auth"]
        .iter()
        .map(|p| format!("http://{SRV_V4}{p}"))
        .collect();
    curl_from(ns, from, "sqlmap/1.8.2#stable", &urls, Duration::from_secs(5))
}

/// Waits until `ok` holds of the daemon's metrics.
fn await_metrics(d: &Daemon, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let m = d.metrics();
        if ok(&m) {
            return m;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{what}, after 30 s:\n{m}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn errors(m: &str, file: &str) -> u64 {
    metric_series(m, "rejectwatch_write_errors_total").get(&format!("file=\"{file}\"")).copied().unwrap_or(0)
}

fn lines_with(d: &Daemon, needle: &str) -> usize {
    d.log.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|l| l.contains(needle)).count()
}

#[test]
fn a_full_disk_is_counted_said_once_and_survived() {
    if !kernel_tests_possible("a_full_disk_is_counted_said_once_and_survived") {
        return;
    }
    let net = Netns::new(NetnsOptions::default());
    for ip in [ATTACKER, LATER] {
        sh(&["ip", "-n", &net.cli, "addr", "add", &format!("{ip}/24"), "dev", &net.cli_if]);
    }
    let dir = TempDir::new("full-disk");
    let _nginx = nginx(&net, &net.srv, &dir, &format!("server {{ listen {SRV_V4}:80; {NGINX_LOCATIONS} }}"));
    wait_listening(&net.cli, format!("{SRV_V4}:80").parse().expect("addr"));
    let small = dir.path("state");
    std::fs::create_dir_all(&small).expect("mount point");
    let config = dir.path("rejectwatch.toml");
    std::fs::write(&config, "[blocklist]\nblock_private = true\n").expect("config");
    let (findings, blocklist) = (small.join("findings.jsonl"), small.join("blocklist.txt"));
    let mount = format!("mount -t tmpfs -o size=1m rejectwatch-full-disk {} && exec \"$@\"", small.display());
    let d = Daemon::start_wrapped(
        &net,
        &net.srv,
        &dir,
        &[
            "--iface",
            &net.srv_if,
            "--port",
            "80",
            "--config",
            config.to_str().expect("utf-8"),
            "--findings",
            findings.to_str().expect("utf-8"),
            "--blocklist",
            blocklist.to_str().expect("utf-8"),
        ],
        &["unshare", "--mount", "--propagation", "private", "sh", "-c", &mount, "sh"],
    );
    // The tmpfs as the daemon sees it, from outside its mount namespace.
    let inside = |p: &PathBuf| PathBuf::from(format!("/proc/{}/root{}", d.pid(), p.display()));
    // Fill it.
    let filler = inside(&small.join("filler"));
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 64 << 10];
        let full = loop {
            if let Err(e) = f.write_all(&chunk) {
                break e;
            }
        };
        assert_eq!(full.raw_os_error(), Some(libc::ENOSPC), "{full}");
    }

    // An attack: a threat, findings and a blocklist entry, none of which
    // can be written.
    assert_eq!(attack(&net.cli, ATTACKER), [404, 404, 404, 401]);
    let m = await_metrics(&d, "the writes did not fail, or not repeatedly", |m| {
        errors(m, "blocklist") >= 3 && errors(m, "state") >= 3 && errors(m, "findings") >= 1
    });
    // Detection went on: findings counted, the address listed.
    assert!(metric_sum(&m, "rejectwatch_findings_total") >= 2, "{m}");
    assert_eq!(metric_sum(&m, "rejectwatch_blocklist_entries"), 1, "{m}");
    // Said once each, however often it failed.
    assert_eq!(lines_with(&d, "cannot write blocklist"), 1);
    assert_eq!(lines_with(&d, "blocklist.json"), 1);
    assert_eq!(lines_with(&d, "cannot write --findings"), 1);
    // Capture goes on, and the API answers.
    let before = metric_sum(&m, "rejectwatch_http_exchanges_total");
    assert_eq!(attack(&net.cli, LATER), [404, 404, 404, 401]);
    d.wait_exchanges(before + 4);
    let listen = d.listen;
    let (status, actors) = Netns::within(&net.srv, move || http_request(listen, "GET", "/api/v1/actors", &[], ""));
    assert!(status == 200 && actors.contains(ATTACKER), "{status} {actors}");

    // Space returns: the next writes succeed, and say so. The three files
    // are written one after another, each at its own pace: each is waited
    // for.
    std::fs::remove_file(&filler).expect("remove filler");
    let start = Instant::now();
    loop {
        let listed = std::fs::read_to_string(inside(&blocklist)).unwrap_or_default();
        let found = std::fs::read_to_string(inside(&findings)).unwrap_or_default();
        let state = std::fs::read_to_string(inside(&small.join("blocklist.json"))).unwrap_or_default();
        if listed.contains(ATTACKER) && listed.contains(LATER) && found.contains(ATTACKER) && state.contains(ATTACKER) {
            // Whole lines only, each one JSON.
            for l in found.lines() {
                serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
            }
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not written again: blocklist {listed:?}, findings {found:?}, state {state:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let start = Instant::now();
    while lines_with(&d, "is written again") < 3 {
        assert!(start.elapsed() < Duration::from_secs(30), "{:?}", d.log.lock().unwrap_or_else(|e| e.into_inner()));
        std::thread::sleep(Duration::from_millis(100));
    }
    d.stop();
}
