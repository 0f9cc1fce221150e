//! The metric set stays bounded whatever the traffic: a hostile access
//! log (random methods, paths, user agents, statuses, clients, garbage
//! lines, and random paths that succeed often enough to count as part of
//! the API) goes through `analyze --metrics`, and no label value comes
//! from the input.

use std::{collections::BTreeMap, fmt::Write as _, io::Write as _};

use rejectwatch_tests::*;

/// A small deterministic generator (xorshift): no extra dependency, and
/// the same hostile mix every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A token every hostile string carries, so a leak into a label is
    /// easy to spot.
    fn token(&mut self) -> String {
        let n = self.next();
        format!("zq{n:x}")
    }
}

fn hostile_log(lines: usize) -> String {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let methods = ["GET", "POST", "DELETE", "PROPFIND", "get"];
    let mut s = String::new();
    for i in 0..lines {
        let secs = i as u64 / 20;
        let (h, m, sec) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
        let client = match r.below(3) {
            0 => format!("198.51.{}.{}", r.below(256), r.below(256)),
            1 => format!("2001:db8:{:x}::{:x}", r.below(65536), r.below(65536)),
            _ => format!("203.0.113.{}", r.below(256)),
        };
        let method = if r.below(4) == 0 { r.token().to_uppercase() } else { methods[r.below(5) as usize].to_string() };
        let (path, status) = match r.below(5) {
            // Random paths that succeed, three times each: "part of the
            // API" by what the server said, so candidates for a label.
            0 => {
                let syl = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo"];
                let word: String = (0..3).map(|_| syl[r.below(8) as usize]).collect();
                (format!("/reports/{word}"), if r.below(2) == 0 { 200 } else { 403 })
            }
            // nginx writes a quote in the request line as \x22.
            1 => (format!("/{}/{}?q=\\x22{}\\x5c", r.token(), r.token(), r.token()), 404),
            2 => (format!("/api/{}", r.token()), 100 + r.below(900) as u16),
            3 => ("/ok".to_string(), 200),
            _ => (format!("/%7b{}%7d/{}", r.token(), "\u{202e}ü"), 401),
        };
        let ua = format!("{}/{}.{} ({})", r.token(), r.below(9), r.below(9), r.token());
        let _ = writeln!(
            s,
            "{client} - {user} [22/Nov/2026:{h:02}:{m:02}:{sec:02} +0000] \"{method} {path} HTTP/1.1\" {status} 12 \"-\" \"{ua}\"",
            user = if r.below(10) == 0 { r.token() } else { "-".into() },
        );
        if r.below(50) == 0 {
            let _ = writeln!(s, "{}\u{0}\u{7f} garbage {}", r.token(), r.token());
        }
    }
    s
}

/// Series per metric name in a text exposition.
fn series(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let name_end = l.find(['{', ' ']).unwrap_or(l.len());
        let labels = l[name_end..].strip_prefix('{').and_then(|r| r.rsplit_once('}')).map(|(a, _)| a).unwrap_or("");
        m.entry(l[..name_end].to_string()).or_default().push(labels.to_string());
    }
    m
}

#[test]
fn series_stay_bounded_under_a_hostile_mix() {
    let dir = TempDir::new("hostile");
    let log = dir.path("hostile.log");
    std::fs::File::create(&log).and_then(|mut f| f.write_all(hostile_log(30_000).as_bytes())).expect("write log");
    let prom = dir.path("rejectwatch.prom");
    let stderr = analyze_with(&[&log], &["--metrics", prom.to_str().expect("utf-8")]);
    assert!(stderr.contains("30000 exchanges"), "{stderr}");
    let text = std::fs::read_to_string(&prom).expect("read metrics");
    let all = series(&text);

    // No label value from the input, whatever it was.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(!l.contains("zq") && !l.contains("198.51.") && !l.contains("2001:db8"), "leaked: {l}");
    }
    let count = |name: &str| all.get(name).map_or(0, Vec::len);
    // Methods: 9 + OTHER; statuses: 64 registered + 9 classes + invalid/none.
    assert!(count("rejectwatch_http_exchanges_total") <= 10 * 76, "{}", count("rejectwatch_http_exchanges_total"));
    for labels in &all["rejectwatch_http_exchanges_total"] {
        let method = labels.split('"').nth(1).unwrap_or("");
        assert!(
            ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER"].contains(&method),
            "{labels}"
        );
    }
    // Endpoint templates: only those the API serves, at most 50, + other.
    let rejects = &all["rejectwatch_rejects_total"];
    assert!(rejects.len() <= 51, "{} reject series", rejects.len());
    assert!(rejects.iter().any(|l| l == "endpoint=\"other\""), "{rejects:?}");
    assert!(rejects.len() > 10, "served endpoints should have their own series: {rejects:?}");
    assert!(count("rejectwatch_parse_errors_total") <= 8, "{:?}", all.get("rejectwatch_parse_errors_total"));
    let total: usize = all.values().map(Vec::len).sum();
    assert!(total < 900, "{total} series");
    eprintln!("hostile mix: {total} series in {} metrics", all.len());
}
