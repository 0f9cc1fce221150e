//! What `rejectwatch analyze` leaves behind for other programs: the
//! blocklist files are written once, as of the last record, whether or not
//! a threat is still listed then, and the summary says why a threat is not.

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
    ["/.env", "/.git/config", "/wp-config.php.bak"]
        .iter()
        .map(|p| ("203.0.113.66", at, *p, 404, "curl/8.5.0"))
        .collect()
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
            "0 blocklisted (1 threat actor(s) not listed: allowlisted, or quiet for longer than blocklist.ttl (4h)"
        ),
        "{stderr}"
    );
}
