//! Keeps the blocklist files (`--blocklist`, `blocklist.paths`) and the
//! state file current: each is rewritten, atomically, when the entries
//! change, so a firewall loader watching the file sees whole versions only.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{
    Blocklist,
    format::{Format, Render},
};
use crate::{
    state::{self, write_atomically},
    time::Secs,
};

/// Where the blocklist is enforced directly (the XDP program's maps):
/// given every version of the entries, as the files are.
pub trait Enforce: Send {
    fn apply(&mut self, entries: &[super::Entry]) -> anyhow::Result<()>;
    /// What is enforced now.
    fn enforced(&self) -> Vec<ipnet::IpNet>;
}

pub struct Outputs {
    files: Vec<(PathBuf, Format)>,
    state_dir: Option<PathBuf>,
    nft_rule: bool,
    enforcer: Option<Box<dyn Enforce>>,
    /// Reported once per failing file, not at every change.
    failing: Vec<PathBuf>,
}

impl Outputs {
    /// Checks every path now (creating its directory), so a wrong
    /// extension or an unwritable place fails at start-up rather than at
    /// the first threat.
    pub fn new(paths: &[PathBuf], state_dir: Option<PathBuf>, nft_rule: bool) -> anyhow::Result<Self> {
        let mut files = Vec::new();
        for p in paths {
            let f = Format::from_path(p).map_err(|e| anyhow::anyhow!("--blocklist: {e}"))?;
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("--blocklist: {}: cannot create {}: {e}", p.display(), dir.display()))?;
            files.push((p.clone(), f));
        }
        Ok(Self { files, state_dir, nft_rule, enforcer: None, failing: Vec::new() })
    }

    /// Enforces every version of the entries from now on (the current
    /// one at the next write).
    pub fn enforce_with(&mut self, enforcer: Box<dyn Enforce>) {
        self.enforcer = Some(enforcer);
    }

    /// What the enforcer enforces now (nothing without one).
    pub fn enforced(&self) -> Vec<ipnet::IpNet> {
        self.enforcer.as_ref().map(|e| e.enforced()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.state_dir.is_none() && self.enforcer.is_none()
    }

    /// Writes everything if the entries changed since the last write.
    pub fn write_if_changed(&mut self, b: &mut Blocklist, now: Secs) {
        if !b.changed {
            return;
        }
        b.changed = false;
        let entries = b.entries();
        if let Some(e) = &mut self.enforcer {
            let result = e.apply(&entries).context("cannot update the XDP enforcement maps");
            self.report(Path::new("XDP enforcement maps"), result);
        }
        let r = Render { entries: &entries, now, nft_rule: self.nft_rule };
        for i in 0..self.files.len() {
            let (path, f) = self.files[i].clone();
            let result = write_atomically(&path, |w| w.write_all(r.to_string(f).as_bytes()))
                .with_context(|| format!("cannot write blocklist {}", path.display()));
            self.report(&path, result);
        }
        if let Some(dir) = self.state_dir.clone() {
            let result = state::blocklist::save(&dir, b);
            self.report(&state::blocklist::file(&dir), result);
        }
    }

    fn report(&mut self, path: &Path, result: anyhow::Result<()>) {
        match result {
            Ok(()) => self.failing.retain(|p| p != path),
            Err(e) if !self.failing.iter().any(|p| p == path) => {
                log::error!("{e:#}");
                self.failing.push(path.to_path_buf());
            }
            Err(_) => {}
        }
    }
}
