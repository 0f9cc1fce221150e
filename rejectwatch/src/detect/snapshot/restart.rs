//! A restart in the middle of a golden case: the engine restored from a
//! snapshot taken at the split must find, on the rest of the input, what
//! an engine that never stopped finds there, and an engine started fresh
//! on the rest must not (so the comparison can fail).

use std::path::{Path, PathBuf};

use super::*;
use crate::{
    config::Config,
    detect::finding::Finding,
    enrich::{Enricher, geo::Geo},
    exchange::Exchange,
    observe::Collect,
    source::logreader,
    state::marks,
};

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/cases")
}

/// A golden case's configuration and its exchanges, enriched as `analyze`
/// enriches them (with a fixed identity key).
fn case(name: &str) -> (Config, Vec<Exchange>) {
    let dir = cases().join(name);
    let mut cfg = Config::load(&dir.join("config.toml")).expect("case config");
    cfg.geoip.country = Some(cases().join("geo-country.csv"));
    cfg.geoip.asn = Some(cases().join("geo-asn.csv"));
    let geo = Geo::open(cfg.geoip.country.as_deref(), cfg.geoip.asn.as_deref()).expect("case geo");
    let mut enricher = Enricher::with_parts(&cfg, geo, [7; 32]).expect("enricher");
    let mut got = Collect::default();
    let input = dir.join("input.log.gz");
    logreader::replay(&[&input], None, &cfg.json_log, &mut got).expect("case input");
    for ex in &mut got.exchanges {
        enricher.attribute(ex);
        enricher.describe(ex);
    }
    (cfg, got.exchanges)
}

fn engine(cfg: &Config) -> Engine {
    Engine::new(&cfg.detect, cfg.ipv6_prefix)
}

fn feed(e: &mut Engine, exchanges: &[Exchange]) -> Vec<Finding> {
    let mut out = Vec::new();
    for ex in exchanges {
        e.observe(ex, &mut out);
    }
    out
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("serialises")
}

/// Splits the case at `at` (an exchange index) and checks the restored
/// engine against the uninterrupted one; returns the findings of the
/// rest from the uninterrupted, restored and fresh engines.
fn split(name: &str, at: usize, marks: &[marks::Mark]) -> [Vec<serde_json::Value>; 3] {
    let (cfg, exchanges) = case(name);
    let (first, rest) = exchanges.split_at(at);
    let with_marks = |mut e: Engine| {
        for m in marks {
            e.add_mark(m.clone());
        }
        e
    };

    let mut whole = with_marks(engine(&cfg));
    feed(&mut whole, first);
    let mut expected = feed(&mut whole, rest);
    whole.finish(&mut expected);

    let mut before = with_marks(engine(&cfg));
    feed(&mut before, first);
    let bytes = before.snapshot().expect("snapshot");
    drop(before);
    // A new process: restored, then handed the marks again as the daemon
    // does at start.
    let mut after = engine(&cfg);
    let r = after.restore(&bytes).expect("restores");
    assert!(r.dropped.is_empty(), "{name}: dropped {:?}", r.dropped);
    let mut after = with_marks(after);
    let mut got = feed(&mut after, rest);
    after.finish(&mut got);
    assert_eq!(json(&after.roster().actors()), json(&whole.roster().actors()), "{name}: rosters differ");

    let mut fresh = with_marks(engine(&cfg));
    let mut alone = feed(&mut fresh, rest);
    fresh.finish(&mut alone);
    [expected, got, alone].map(|f| f.iter().map(json).collect())
}

fn detectors(f: &[serde_json::Value]) -> Vec<&str> {
    f.iter().map(|f| f["detector"].as_str().unwrap_or_default()).collect()
}

/// The index of the first exchange at or after `ts` (RFC 3339).
fn at_time(name: &str, ts: &str) -> usize {
    let t = crate::time::logtime::rfc3339(ts).expect("time");
    case(name).1.iter().position(|e| e.ts >= t).expect("input reaches the time")
}

#[test]
fn an_address_rotation_48_hours_apart_survives_a_restart_between_them() {
    let name = "address-rotation-other-tool";
    // After the first holder stopped, before the second began.
    let at = at_time(name, "2026-11-03T12:00:00Z");
    let [expected, got, fresh] = split(name, at, &[]);
    assert_eq!(got, expected);
    assert!(detectors(&expected).contains(&"address-rotation"), "{expected:?}");
    assert!(!detectors(&fresh).contains(&"address-rotation"), "found without the first holder: {fresh:?}");
}

#[test]
fn a_slow_harvest_counted_across_a_restart_reaches_its_threshold() {
    // 100 rejects in 24 h, half of them before the restart.
    let name = "single-path";
    let at = at_time(name, "2026-11-02T03:15:00Z");
    let [expected, got, fresh] = split(name, at, &[]);
    assert_eq!(got, expected);
    let when = |f: &[serde_json::Value]| {
        f.iter().find(|f| f["detector"] == "single-path").map(|f| f["ts"].as_str().unwrap_or_default().to_string())
    };
    let due = when(&expected).expect("found after the restart");
    // Started afresh, the count reaches 100 only hours later.
    assert!(when(&fresh).is_none_or(|t| t > due), "found as early from half the requests: {fresh:?}");
}

#[test]
fn a_login_baseline_learned_before_a_restart_judges_the_surge_after_it() {
    let name = "credential-baseline";
    let at = at_time(name, "2026-11-03T00:00:00Z");
    let [expected, got, fresh] = split(name, at, &[]);
    assert_eq!(got, expected);
    assert!(detectors(&expected).contains(&"credential-scanning"), "{expected:?}");
    assert!(!detectors(&fresh).contains(&"credential-scanning"), "found without the baseline: {fresh:?}");
}

#[test]
fn a_disclosure_watch_survives_a_restart_and_its_mark_is_not_judged_twice() {
    let name = "disclosure";
    let mark = marks::parse_flag("disclosure=2026-11-03T12:00:00Z").expect("mark");
    let at = at_time(name, "2026-11-03T14:00:00Z");
    let [expected, got, fresh] = split(name, at, &[mark]);
    assert_eq!(got, expected);
    assert!(detectors(&expected).contains(&"disclosure"), "{expected:?}");
    assert!(!detectors(&fresh).contains(&"disclosure"), "found without the watch: {fresh:?}");
}
