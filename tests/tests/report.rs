//! The HTML report (`analyze --report`) as a browser shows it: headless
//! Chromium loads the file with nothing else to hand (as on an offline
//! gateway), runs its script without an error, draws a page that is not
//! blank, lists the actors, filters them by classification from the
//! address, and shows hostile user agents and paths as text.
//!
//! Chromium comes from `scripts/deps.sh` (Debian's `chromium`); where it
//! is missing the tests skip, unless REJECTWATCH_REQUIRE_KERNEL=1 (CI),
//! where they fail.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use rejectwatch_tests::{TempDir, analyze_with};
use serde_json::Value;

/// The browser, if there is one (or a failure where it is required).
fn chromium(test: &str) -> Option<String> {
    let found = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"].into_iter().find(|b| {
        Command::new("sh").args(["-c", &format!("command -v {b}")]).output().is_ok_and(|o| o.status.success())
    });
    if let Some(b) = found {
        return Some(b.to_string());
    }
    let why = "chromium is needed (scripts/deps.sh installs it)";
    if std::env::var_os("REJECTWATCH_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("{test}: cannot run the browser test: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
    None
}

/// Headless Chromium on `url` with `extra` (`--dump-dom`, `--screenshot=…`),
/// a profile of its own; returns (stdout, stderr) with the console logged
/// to stderr.
fn browse(browser: &str, dir: &TempDir, url: &str, extra: &[&str]) -> (String, String) {
    let profile = dir.path(&format!("profile-{}", extra.len()));
    let out = Command::new("timeout")
        .arg("120")
        .arg(browser)
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .args(["--disable-extensions", "--hide-scrollbars", "--window-size=1280,2000", "--virtual-time-budget=5000"])
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {browser}: {e}"));
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{browser} failed ({}): {stderr}", out.status);
    (stdout, stderr)
}

/// Script errors and blocked loads: recorded by the page on itself
/// (`data-js-errors`), and in Chromium's console log.
fn assert_no_errors(dom: &str, stderr: &str) {
    let root = dom.find("<html").map(|i| &dom[i..i + dom[i..].find('>').expect("tag ends")]).expect("an html element");
    assert_eq!(attr(root, "data-js-errors"), None, "script errors");
    assert_eq!(attr(root, "data-js-ready"), Some("1"), "the page's script did not finish: {}", head(dom));
    for bad in ["Uncaught", "Refused to", "net::ERR_"] {
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(bad)).collect();
        assert!(lines.is_empty(), "console: {lines:#?}");
    }
}

fn head(dom: &str) -> &str {
    &dom[..dom.len().min(400)]
}

/// Each actor's `<tbody>` opening tag in the dumped DOM.
fn actor_tags(dom: &str) -> Vec<&str> {
    dom.match_indices("<tbody class=\"actor").map(|(i, _)| &dom[i..i + dom[i..].find('>').expect("tag ends")]).collect()
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    tag[at..].split('"').next()
}

fn url(path: &Path, fragment: &str) -> String {
    format!("file://{}{fragment}", path.display())
}

fn case_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cases")
}

#[test]
fn the_seven_actor_report_loads_shows_its_actors_and_filters_them() {
    let Some(browser) = chromium("the_seven_actor_report_loads_shows_its_actors_and_filters_them") else { return };
    let dir = TempDir::new("report");
    let (report, actors) = (dir.path("report.html"), dir.path("actors.json"));
    let case = case_dir().join("scenario-seven-actors");
    let mut args: Vec<String> = vec![
        "--config".into(),
        case.join("config.toml").display().to_string(),
        "--geoip-country".into(),
        case_dir().join("geo-country.csv").display().to_string(),
        "--geoip-asn".into(),
        case_dir().join("geo-asn.csv").display().to_string(),
        "--actors".into(),
        actors.display().to_string(),
        "--report".into(),
        report.display().to_string(),
    ];
    args.extend(fs::read_to_string(case.join("args")).unwrap_or_default().lines().map(str::to_string));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    analyze_with(&[&case.join("input.log.gz")], &refs);
    let roster: Value = serde_json::from_str(&fs::read_to_string(&actors).expect("actors written")).expect("json");
    let roster = roster.as_array().expect("an array");
    let threats = roster.iter().filter(|a| a["classification"] == "threat").count();
    assert!(threats > 0 && threats < roster.len(), "the case has threats and others: {roster:?}");

    let (dom, stderr) = browse(&browser, &dir, &url(&report, ""), &["--dump-dom"]);
    assert_no_errors(&dom, &stderr);
    let tags = actor_tags(&dom);
    assert_eq!(tags.len(), roster.len(), "one row per actor");
    assert!(tags.iter().all(|t| attr(t, "hidden").is_none()), "all shown unfiltered: {tags:#?}");
    for a in roster {
        let id = a["id"].as_str().expect("id");
        assert!(dom.contains(&format!("id=\"actor-{id}\"")), "{id} has no row");
    }
    for section in ["verdict", "timeline", "actors", "prospects", "misconfigurations", "endpoints"] {
        assert!(dom.contains(&format!("<section id=\"{section}\"")), "no {section} section");
    }
    assert!(dom.contains("<svg class=\"chart\""), "no timeline");
    assert!(dom.contains("class=\"marker threat\""), "the threats' findings are not marked on the timeline");

    // Filtered from the address, as a link to the report would be.
    let (dom, stderr) = browse(&browser, &dir, &url(&report, "#class=threat"), &["--dump-dom"]);
    assert_no_errors(&dom, &stderr);
    let tags = actor_tags(&dom);
    assert_eq!(tags.len(), roster.len());
    let shown: Vec<&&str> = tags.iter().filter(|t| attr(t, "hidden").is_none()).collect();
    assert_eq!(shown.len(), threats, "only the threats shown: {tags:#?}");
    assert!(shown.iter().all(|t| attr(t, "data-class") == Some("threat")), "{shown:#?}");
    assert!(dom.contains(&format!("Showing {threats} of {} actors (threat)", roster.len())), "no count shown");

    // The drawn page: a screenshot that is not blank.
    let shot = dir.path("report.png");
    let (_, stderr) = browse(&browser, &dir, &url(&report, ""), &[&format!("--screenshot={}", shot.display())]);
    let (w, h, distinct, inked) = picture(&shot);
    assert_eq!((w, h), (1280, 2000), "{stderr}");
    assert!(distinct > 50, "{distinct} colours: a blank page?");
    assert!(inked > 0.02, "{:.1}% of the page drawn on: a blank page?", inked * 100.0);
}

/// A screenshot's size, how many distinct colours it has and what share
/// of it differs from its most common colour (the background).
fn picture(path: &Path) -> (u32, u32, usize, f64) {
    let file = fs::File::open(path).unwrap_or_else(|e| panic!("no screenshot {}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let px = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    let mut counts = std::collections::HashMap::new();
    for p in &pixels {
        *counts.entry(&p[..px.min(3)]).or_insert(0usize) += 1;
    }
    let background = counts.values().copied().max().unwrap_or(0);
    (info.width, info.height, counts.len(), 1.0 - background as f64 / pixels.len().max(1) as f64)
}

#[test]
fn hostile_user_agents_and_paths_are_shown_as_text() {
    let Some(browser) = chromium("hostile_user_agents_and_paths_are_shown_as_text") else { return };
    let dir = TempDir::new("report-hostile");
    let (log, report) = (dir.path("access.log"), dir.path("report.html"));
    let ua = "<script>document.title='pwned'</script>";
    let lines: String =
        ["/.env", "/.git/config", "/wp-config.php.bak", "/<script>alert(2)</script><img/src=x/onerror=alert(3)>"]
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!("203.0.113.66 - - [22/Nov/2026:10:00:{i:02} +0000] \"GET {p} HTTP/1.1\" 404 0 \"-\" \"{ua}\"\n")
            })
            .collect();
    fs::write(&log, lines).expect("write log");
    let stderr = analyze_with(&[&log], &["--report", report.to_str().expect("utf-8")]);
    assert!(stderr.contains("1 threat"), "{stderr}");
    let page = fs::read_to_string(&report).expect("report written");
    assert_eq!(page.matches("<script").count(), 1, "only the page's own script");

    let (dom, stderr) = browse(&browser, &dir, &url(&report, ""), &["--dump-dom"]);
    assert_no_errors(&dom, &stderr);
    assert_eq!(dom.matches("<script").count(), 1, "an element was injected");
    assert!(!dom.contains("<img"), "an element was injected");
    assert!(!dom.contains("<title>pwned"), "the user agent's script ran");
    assert!(dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"), "the user agent is not shown");
    assert!(dom.contains("&lt;img/src=x/onerror=alert(3)&gt;"), "the path is not shown");
}
