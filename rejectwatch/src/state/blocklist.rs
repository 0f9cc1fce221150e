//! The blocklist's state file (`<state dir>/blocklist.json`): entries and
//! past offences survive a restart, so a daemon that restarts neither
//! forgets whom it blocked nor lets them off early. Written to a temporary
//! file and renamed over.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::write_atomically;
use crate::{
    blocklist::{Blocklist, Entry, Past},
    time::Secs,
};

pub fn file(state_dir: &Path) -> PathBuf {
    state_dir.join("blocklist.json")
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    entries: Vec<StateEntry>,
    #[serde(default)]
    past: Vec<PastEntry>,
}

/// Times are Unix seconds: the file is for rejectwatch, not for people.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateEntry {
    net: IpNet,
    expires: Secs,
    listed: Secs,
    seen: Secs,
    offences: u32,
    actor: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PastEntry {
    net: IpNet,
    offences: u32,
    seen: Secs,
}

pub fn save(state_dir: &Path, b: &Blocklist) -> anyhow::Result<()> {
    std::fs::create_dir_all(state_dir).with_context(|| format!("cannot create {}", state_dir.display()))?;
    let s = StateFile {
        version: 1,
        entries: b
            .held()
            .map(|e| StateEntry {
                net: e.net,
                expires: e.expires,
                listed: e.listed,
                seen: e.seen,
                offences: e.offences,
                actor: e.actor.clone(),
            })
            .collect(),
        past: b.past().map(|(n, p)| PastEntry { net: *n, offences: p.offences, seen: p.seen }).collect(),
    };
    let path = file(state_dir);
    write_atomically(&path, |w| {
        // The I/O error's own kind (a full disk), not `Other`, for the log.
        serde_json::to_writer(w, &s)
            .map_err(|e| std::io::Error::new(e.io_error_kind().unwrap_or(std::io::ErrorKind::Other), e))
    })
    .with_context(|| format!("cannot write {}", path.display()))
}

/// Restores the state into `b` (nothing if there is no file yet); entries
/// already expired at `now` are dropped.
pub fn load(state_dir: &Path, b: &mut Blocklist, now: Secs) -> anyhow::Result<usize> {
    let path = file(state_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let s: StateFile =
        serde_json::from_str(&text).with_context(|| format!("{}: not a blocklist state", path.display()))?;
    let entries: Vec<Entry> = s
        .entries
        .into_iter()
        .map(|e| Entry {
            net: e.net,
            expires: e.expires,
            listed: e.listed,
            seen: e.seen,
            offences: e.offences,
            actor: e.actor,
        })
        .collect();
    let past = s.past.into_iter().map(|p| (p.net, Past { offences: p.offences, seen: p.seen })).collect();
    b.restore(entries, past, now);
    Ok(b.len())
}
