//! Memory under attack: a log spraying a million distinct IPv6 clients
//! (random /128s, each in a /64 of its own), a million distinct user agents
//! and a million distinct paths through `analyze`, with the client table
//! capped below the spray. The peak RSS must stay within what the caps
//! promise, the metric series must not grow with the spray, and the
//! evictions must be counted.

use std::{io::Write as _, os::unix::process::ExitStatusExt as _, process::Command};

use rejectwatch_tests::*;

/// Lines of the spray: one client, user agent and path each.
const LINES: u64 = 1_000_000;
/// Clients tracked at once (the cap the spray runs into).
const MAX_CLIENTS: u64 = 20_000;

fn spray(path: &std::path::Path, lines: u64) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("log"));
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..lines {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let (m, s) = ((i / 60) % 60, i % 60);
        writeln!(
            w,
            "2001:db8:{:x}:{:x}::{:x} - - [07/Dec/2026:10:{m:02}:{s:02} +0000] \"GET /p/{r:x}/{i} HTTP/1.1\" 404 0 \"-\" \"sprayer/{r:x}.{i}\"",
            (r >> 48) as u16,
            (r >> 32) as u16,
            r as u16
        )
        .expect("write");
    }
}

/// Runs `analyze` on `log`; its metrics text and peak RSS (KiB).
fn run(dir: &TempDir, log: &std::path::Path, config: &std::path::Path) -> (String, u64) {
    let metrics = dir.path("metrics.prom");
    let mut child = Command::new(rejectwatch_bin())
        .args(["analyze", log.to_str().expect("utf-8"), "--config", config.to_str().expect("utf-8")])
        .args([
            "--metrics",
            metrics.to_str().expect("utf-8"),
            "--state-dir",
            dir.path("state").to_str().expect("utf-8"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("analyze");
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for this child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    let _ = child.try_wait();
    assert!(std::process::ExitStatus::from_raw(status).success(), "analyze failed ({status})");
    (std::fs::read_to_string(&metrics).expect("metrics"), usage.ru_maxrss as u64)
}

fn series(metrics: &str) -> usize {
    metrics.lines().filter(|l| !l.starts_with('#')).count()
}

#[test]
fn a_spray_stays_within_the_caps() {
    let dir = TempDir::new("spray");
    let config = dir.path("rejectwatch.toml");
    std::fs::write(&config, format!("[detect]\nmax_clients = {MAX_CLIENTS}\nmax_actors = 5000\n")).expect("config");
    let (small_log, big_log) = (dir.path("small.log"), dir.path("spray.log"));
    spray(&small_log, 50_000);
    spray(&big_log, LINES);
    let (small, small_rss) = run(&dir, &small_log, &config);
    let (big, big_rss) = run(&dir, &big_log, &config);
    eprintln!(
        "spray of {LINES}: peak RSS {} MiB (50 000 lines: {} MiB), {} series (50 000 lines: {}), evictions {:?}",
        big_rss / 1024,
        small_rss / 1024,
        series(&big),
        series(&small),
        metric_series(&big, "rejectwatch_evictions_total")
    );
    // The caps hold: 20 000 clients of ~250 bytes, 5 000 actors, the
    // detectors' and the endpoints' bounded tables and the caches fit in
    // far less than the spray would take unbounded (a million clients is
    // ~240 MiB on its own); twenty times the input barely moves the peak.
    assert!(big_rss < 200 * 1024, "peak RSS {} MiB", big_rss / 1024);
    assert!(big_rss < small_rss * 2, "peak RSS grew with the spray: {small_rss} KiB → {big_rss} KiB");
    assert_eq!(series(&big), series(&small), "metric series grew with the spray");
    let evicted = metric_series(&big, "rejectwatch_evictions_total");
    assert!(evicted.get("table=\"clients\"").copied().unwrap_or(0) >= LINES - MAX_CLIENTS - 1000, "{evicted:?}");
}
