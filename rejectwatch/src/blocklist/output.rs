//! Keeps the blocklist files (`--blocklist`, `blocklist.paths`) and the
//! state file current: each is rewritten, atomically, when the entries
//! change, so a firewall loader watching the file sees whole versions only.
//! A write that fails (a full disk) is retried every tick until it works.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{
    Blocklist,
    format::{Format, Render},
};
use crate::{
    state::{self, write_atomically},
    time::Secs,
    write_errors::{Kept, WriteErrors, io_kind},
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
    /// The enforcer's failure, reported once, not at every change.
    enforce_failing: bool,
    /// The files' failures, reported once per file and kind, and counted.
    errors: WriteErrors,
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
        Ok(Self { files, state_dir, nft_rule, enforcer: None, enforce_failing: false, errors: WriteErrors::default() })
    }

    /// Counts failed writes into `rejectwatch_write_errors_total`.
    pub fn count_errors(mut self, write_errors: &prometheus::IntCounterVec) -> Self {
        self.errors = WriteErrors::counted(write_errors);
        self
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

    /// Writes everything if the entries changed since the last write,
    /// and the files again if their last write failed.
    pub fn write_if_changed(&mut self, b: &mut Blocklist, now: Secs) {
        let changed = std::mem::take(&mut b.changed);
        if !changed && !self.errors.any() {
            return;
        }
        let entries = b.entries();
        if changed && let Some(e) = &mut self.enforcer {
            match e.apply(&entries).context("cannot update the XDP enforcement maps") {
                Ok(()) => self.enforce_failing = false,
                Err(e) if !self.enforce_failing => {
                    log::error!("{e:#}");
                    self.enforce_failing = true;
                }
                Err(_) => {}
            }
        }
        let r = Render { entries: &entries, now, nft_rule: self.nft_rule };
        for (path, f) in &self.files {
            match write_atomically(path, |w| w.write_all(r.to_string(*f).as_bytes())) {
                Ok(()) => self.errors.succeeded(path),
                Err(e) => {
                    let kind = e.kind();
                    self.errors.failed(
                        Kept::Blocklist,
                        path,
                        kind,
                        &format!("cannot write blocklist {}: {e}", path.display()),
                    )
                }
            }
        }
        if let Some(dir) = &self.state_dir {
            let path = state::blocklist::file(dir);
            match state::blocklist::save(dir, b) {
                Ok(()) => self.errors.succeeded(&path),
                Err(e) => self.errors.failed(Kept::State, &path, io_kind(&e), &format!("{e:#}")),
            }
        }
    }
}
