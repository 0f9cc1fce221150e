//! Disclosure markers: the moment the operator changed what rejected
//! clients are told (a link to a published investigation, a registration
//! URL). `rejectwatch mark disclosure` records one in the state directory,
//! where a running daemon picks it up; `analyze --mark
//! disclosure=RFC3339-TIME` gives one to a replay.

use std::path::{Path, PathBuf};

use crate::time::{Nanos, format_ts, logtime};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub kind: String,
    #[serde(with = "ts_text")]
    pub at: Nanos,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

mod ts_text {
    use super::*;
    pub fn serialize<S: serde::Serializer>(t: &Nanos, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_ts(*t))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Nanos, D::Error> {
        let s = String::deserialize(d)?;
        logtime::rfc3339(&s).ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not an RFC 3339 time")))
    }
}

/// The only kind of marker so far.
pub const DISCLOSURE: &str = "disclosure";

/// Parses `disclosure=2026-11-20T10:00:00Z` (the `--mark` flag).
pub fn parse_flag(s: &str) -> Result<Mark, String> {
    let (kind, at) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected KIND=RFC3339-TIME"))?;
    if kind != DISCLOSURE {
        return Err(format!("{kind:?}: the only marker kind is `disclosure`"));
    }
    let at =
        logtime::rfc3339(at).ok_or_else(|| format!("{at:?} is not an RFC 3339 time (e.g. 2026-11-20T10:00:00Z)"))?;
    Ok(Mark { kind: kind.to_string(), at, note: None })
}

pub fn file(state_dir: &Path) -> PathBuf {
    state_dir.join("marks.jsonl")
}

/// Every marker recorded in the state directory (none if no file).
pub fn load(state_dir: &Path) -> anyhow::Result<Vec<Mark>> {
    let path = file(state_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{}:{}: bad marker", path.display(), i + 1)))
        .collect()
}

/// Adds a marker: the whole file is rewritten to a temporary file and
/// renamed over, so a daemon reading it never sees half a line.
pub fn record(state_dir: &Path, m: &Mark) -> anyhow::Result<()> {
    std::fs::create_dir_all(state_dir).with_context(|| format!("cannot create {}", state_dir.display()))?;
    let mut all = load(state_dir)?;
    all.push(m.clone());
    all.sort_by_key(|m| m.at);
    let path = file(state_dir);
    super::write_atomically(&path, |w| {
        for m in &all {
            writeln!(w, "{}", serde_json::to_string(m).map_err(std::io::Error::other)?)?;
        }
        Ok(())
    })
    .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_and_file_round_trip() {
        let m = parse_flag("disclosure=2026-11-20T10:00:00Z").unwrap();
        assert_eq!(m.at, 1_795_168_800_000_000_000);
        assert!(parse_flag("deploy=2026-11-20T10:00:00Z").unwrap_err().contains("disclosure"));
        assert!(parse_flag("disclosure=yesterday").unwrap_err().contains("RFC 3339"));
        let dir = std::env::temp_dir().join(format!("rw-marks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        record(&dir, &Mark { note: Some("added registration link".into()), ..m.clone() }).unwrap();
        record(&dir, &Mark { at: m.at - 1, ..m.clone() }).unwrap();
        let all = load(&dir).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].at, m.at - 1);
        assert_eq!(all[1].note.as_deref(), Some("added registration link"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
