//! `analyze --stix`: the bundle a threat-intelligence platform imports
//! parses with the reference `stix2` library and passes `stix2-validator`,
//! holds the threats and nobody else, and is the same bundle (same ids,
//! same times) when the same log is analysed again.

use std::{fs, path::Path};

use rejectwatch_tests::{TempDir, analyze_with, check_stix, python_with};
use serde_json::Value;

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

const ATTACKER: &str = "203.0.113.66";
const ATTACKER6: &str = "2001:db8:77::5";
const ALLOWED: &str = "203.0.113.99";
const PROSPECT: &str = "198.51.100.7";

fn log(dir: &TempDir) -> std::path::PathBuf {
    let mut lines = Vec::new();
    for (i, p) in
        ["/.env", "/.git/config", "/wp-config.php.bak", "/api/v1/users?id=1%27%20OR%20%271%27=%271"].iter().enumerate()
    {
        for ip in [ATTACKER, ATTACKER6, ALLOWED] {
            lines.push((ip, i as u32, *p, 404, "sqlmap/1.8.2#stable"));
        }
    }
    // A steady poller, turned away each time.
    for i in 0..8 {
        lines.push((PROSPECT, 60 * i, "/api/v1/orders", 401, "python-requests/2.32.5"));
    }
    lines.sort_by_key(|l| l.1);
    let path = dir.path("access.log");
    write_log(&path, &lines);
    path
}

fn objects<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
    bundle["objects"].as_array().expect("objects").iter().filter(|o| o["type"] == kind).collect()
}

#[test]
fn stix_bundle_validates_and_is_stable() {
    let dir = TempDir::new("stix");
    let log = log(&dir);
    let config = dir.path("rejectwatch.toml");
    fs::write(&config, format!("[blocklist]\nallowlist = [\"{ALLOWED}\"]\n\n[stix]\ntlp = \"green\"\n"))
        .expect("config");
    let out = dir.path("bundle.json");
    let args = ["--config", config.to_str().expect("utf-8"), "--stix", out.to_str().expect("utf-8")];
    let stderr = analyze_with(&[&log], &args);
    let text = fs::read_to_string(&out).unwrap_or_else(|e| panic!("no bundle ({e}): {stderr}"));
    let bundle: Value = serde_json::from_str(&text).expect("JSON");

    assert_eq!(bundle["type"], "bundle");
    let actors = objects(&bundle, "threat-actor");
    // The attackers, but for the allowlisted one: a threat, but never
    // blocked, so not shared.
    assert_eq!(actors.len(), 2, "{stderr}\n{text}");
    let patterns: Vec<&str> = objects(&bundle, "indicator").iter().filter_map(|o| o["pattern"].as_str()).collect();
    assert!(patterns.contains(&"[ipv4-addr:value = '203.0.113.66']"), "{patterns:?}");
    assert!(patterns.contains(&"[ipv6-addr:value = '2001:db8:77::/64']"), "{patterns:?}");
    assert_eq!(patterns.len(), 2, "{patterns:?}");
    assert!(!text.contains(ALLOWED) && !text.contains(PROSPECT), "{text}");
    assert_eq!(objects(&bundle, "sighting").len(), 2);
    assert_eq!(objects(&bundle, "relationship").len(), 2);
    let tlp = objects(&bundle, "marking-definition");
    assert_eq!(tlp[0]["name"], "TLP:GREEN");
    // Record time, not the time of the run.
    assert!(actors[0]["created"].as_str().is_some_and(|t| t.starts_with("2026-11-22T10:00:0")), "{}", actors[0]);
    assert!(actors[0]["description"].as_str().is_some_and(|d| d.contains("Evidence:")), "{}", actors[0]);

    // Analysed again: the same bundle, byte for byte.
    analyze_with(&[&log], &args);
    assert_eq!(fs::read_to_string(&out).expect("bundle"), text, "a re-export must update, not duplicate");

    if let Some(py) = python_with("stix_bundle_validates_and_is_stable", &["stix2", "stix2validator"]) {
        check_stix(&py, &out).unwrap_or_else(|e| panic!("the bundle does not validate:\n{e}\n{text}"));
    }
}
