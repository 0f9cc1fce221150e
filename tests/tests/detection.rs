//! The golden detector cases: every directory under `tests/cases` holds an
//! input (`input.log.gz` access log or `input.pcap` capture, written by
//! `cargo xtask gen-cases`), a `config.toml`, optionally extra `analyze`
//! arguments (`args`, one per line) and the expected findings
//! (`expected.jsonl`, compared line by line) and actor roster
//! (`expected-actors.json`: each actor's addresses and classification).
//! `CASE=name` runs one case; `BLESS=1` rewrites the expectations from
//! the current output (review the diff before committing it).

use std::{
    fs,
    path::{Path, PathBuf},
};

use rejectwatch_tests::{TempDir, analyze_with, read_jsonl};
use serde_json::Value;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cases")
}

/// Each actor as (sorted addresses, classification), sorted.
fn roster(actors: &Value) -> Vec<(Vec<String>, String)> {
    let mut v: Vec<(Vec<String>, String)> = actors
        .as_array()
        .unwrap_or_else(|| panic!("actors is not an array: {actors}"))
        .iter()
        .map(|a| {
            let mut clients: Vec<String> = a["clients"]
                .as_array()
                .expect("clients")
                .iter()
                .map(|c| c.as_str().expect("str").to_string())
                .collect();
            clients.sort();
            (clients, a["classification"].as_str().expect("classification").to_string())
        })
        .collect();
    v.sort();
    v
}

fn run_case(dir: &Path) -> (Vec<Value>, Value) {
    let input = ["input.log.gz", "input.pcap"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{}: no input.log.gz or input.pcap", dir.display()));
    let root = cases_dir();
    let tmp = TempDir::new("case");
    let findings = tmp.path("findings.jsonl");
    let actors = tmp.path("actors.json");
    let mut args: Vec<String> = vec![
        "--config".into(),
        dir.join("config.toml").display().to_string(),
        "--geoip-country".into(),
        root.join("geo-country.csv").display().to_string(),
        "--geoip-asn".into(),
        root.join("geo-asn.csv").display().to_string(),
        "--findings".into(),
        findings.display().to_string(),
        "--actors".into(),
        actors.display().to_string(),
    ];
    if let Ok(extra) = fs::read_to_string(dir.join("args")) {
        args.extend(extra.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
    }
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    analyze_with(&[&input], &arg_refs);
    let roster: Value =
        serde_json::from_str(&fs::read_to_string(&actors).expect("actors written")).expect("actors json");
    (read_jsonl(&findings), roster)
}

#[test]
fn golden_detector_cases() {
    let only = std::env::var("CASE").ok();
    let bless = std::env::var_os("BLESS").is_some();
    let mut names: Vec<PathBuf> = fs::read_dir(cases_dir())
        .expect("tests/cases")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    let mut ran = 0;
    for dir in names {
        let name = dir.file_name().expect("name").to_string_lossy().into_owned();
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let (findings, actors) = run_case(&dir);
        let expected_path = dir.join("expected.jsonl");
        let actors_path = dir.join("expected-actors.json");
        if bless {
            let text: String = findings.iter().map(|f| format!("{f}\n")).collect();
            fs::write(&expected_path, text).expect("write expected.jsonl");
            let r: Vec<Value> = roster(&actors)
                .into_iter()
                .map(|(c, k)| serde_json::json!({"clients": c, "classification": k}))
                .collect();
            fs::write(&actors_path, serde_json::to_string_pretty(&r).expect("json") + "\n").expect("write actors");
        }
        let expected = read_jsonl(&expected_path);
        for (i, (got, want)) in findings.iter().zip(&expected).enumerate() {
            assert_eq!(got, want, "{name}: finding {} differs", i + 1);
        }
        assert_eq!(
            findings.len(),
            expected.len(),
            "{name}: {} findings, expected {}: {:#?}",
            findings.len(),
            expected.len(),
            if findings.len() > expected.len() { &findings[expected.len()..] } else { &expected[findings.len()..] }
        );
        let want: Value = serde_json::from_str(&fs::read_to_string(&actors_path).expect("expected-actors.json"))
            .expect("expected-actors.json");
        let want: Vec<(Vec<String>, String)> = want
            .as_array()
            .expect("array")
            .iter()
            .map(|a| {
                let c = a["clients"].as_array().expect("clients").iter().map(|c| c.as_str().expect("s").to_string());
                (c.collect(), a["classification"].as_str().expect("classification").to_string())
            })
            .collect();
        assert_eq!(roster(&actors), want, "{name}: actor roster differs");
        ran += 1;
    }
    assert!(ran > 0 || only.is_some(), "no cases under {}", cases_dir().display());
    assert!(ran > 0, "no case named {only:?}");
}
