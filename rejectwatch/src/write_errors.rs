//! Failed writes of the files rejectwatch keeps (the exchange log, the
//! findings, the blocklists, the state file), as on a full disk: each is
//! counted in `rejectwatch_write_errors_total{file}`, whose label is one
//! of a fixed set (never a path), and said in the log once per file and
//! kind of error until that file is written again (then that is said),
//! rather than at every finding or every second. Capture and detection go
//! on meanwhile; the writers retry.

use std::{
    io,
    path::{Path, PathBuf},
};

use prometheus::{IntCounter, IntCounterVec};

/// Which file: the metric's label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    Exchanges,
    Findings,
    Blocklist,
    State,
}

impl Kept {
    pub const ALL: [Kept; 4] = [Kept::Exchanges, Kept::Findings, Kept::Blocklist, Kept::State];

    pub fn as_str(self) -> &'static str {
        match self {
            Kept::Exchanges => "exchanges",
            Kept::Findings => "findings",
            Kept::Blocklist => "blocklist",
            Kept::State => "state",
        }
    }
}

/// The failing files and how they fail, for the log to say each once.
#[derive(Default)]
pub struct WriteErrors {
    counters: Option<[IntCounter; 4]>,
    /// (path, kind of error, failures since it last wrote): one per path
    /// and kind, so at most a few.
    failing: Vec<(PathBuf, io::ErrorKind, u64)>,
}

impl WriteErrors {
    /// Counting into `rejectwatch_write_errors_total` (every label's series
    /// made now, at zero, so an alert rule sees it before the first
    /// failure).
    pub fn counted(vec: &IntCounterVec) -> Self {
        Self { counters: Some(Kept::ALL.map(|k| vec.with_label_values(&[k.as_str()]))), failing: Vec::new() }
    }

    /// A failed write of `path`, a file of kind `file`; `e` says what
    /// failed, for the log.
    pub fn failed(&mut self, file: Kept, path: &Path, kind: io::ErrorKind, e: &dyn std::fmt::Display) {
        if let Some(c) = &self.counters {
            c[Kept::ALL.iter().position(|k| *k == file).unwrap_or(0)].inc();
        }
        match self.failing.iter_mut().find(|(p, k, _)| p == path && *k == kind) {
            Some((_, _, n)) => *n += 1,
            None => {
                log::error!("{e} (said once until it works again; rejectwatch_write_errors_total counts each)");
                self.failing.push((path.to_path_buf(), kind, 1));
            }
        }
    }

    pub fn succeeded(&mut self, path: &Path) {
        if !self.failing.iter().any(|(p, ..)| p == path) {
            return;
        }
        let n: u64 = self.failing.iter().filter(|(p, ..)| p == path).map(|(.., n)| n).sum();
        self.failing.retain(|(p, ..)| p != path);
        log::warn!("{} is written again, after {n} failed writes", path.display());
    }

    /// Whether any file failed its last write (to be retried).
    pub fn any(&self) -> bool {
        !self.failing.is_empty()
    }
}

/// The kind of the I/O error at the root of `e` (`Other` if none is).
pub fn io_kind(e: &anyhow::Error) -> io::ErrorKind {
    e.chain()
        .find_map(|c| c.downcast_ref::<io::Error>())
        .map(|io| match io.get_ref().and_then(|i| i.downcast_ref::<serde_json::Error>()) {
            Some(j) => j.io_error_kind().unwrap_or(io.kind()),
            None => io.kind(),
        })
        .unwrap_or(io::ErrorKind::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_and_kind_is_said_once_and_every_failure_counted() {
        let vec = IntCounterVec::new(prometheus::Opts::new("w", "w"), &["file"]).unwrap();
        let mut w = WriteErrors::counted(&vec);
        let (a, b) = (Path::new("/x/a.nft"), Path::new("/x/state.json"));
        let full = io::Error::from(io::ErrorKind::StorageFull);
        for _ in 0..5 {
            w.failed(Kept::Blocklist, a, io::ErrorKind::StorageFull, &full);
        }
        w.failed(Kept::State, b, io::ErrorKind::StorageFull, &full);
        w.failed(Kept::State, b, io::ErrorKind::PermissionDenied, &full);
        assert_eq!(w.failing.len(), 3);
        assert_eq!(vec.with_label_values(&["blocklist"]).get(), 5);
        assert_eq!(vec.with_label_values(&["state"]).get(), 2);
        assert_eq!(vec.with_label_values(&["findings"]).get(), 0);
        w.succeeded(a);
        assert!(w.any());
        w.succeeded(b);
        assert!(!w.any());
    }

    #[test]
    fn the_kind_is_found_under_context_and_json() {
        let e = anyhow::Error::from(io::Error::from(io::ErrorKind::StorageFull)).context("cannot write x");
        assert_eq!(io_kind(&e), io::ErrorKind::StorageFull);
        let j = serde_json::Error::io(io::Error::from(io::ErrorKind::StorageFull));
        let e = anyhow::Error::from(io::Error::other(j)).context("cannot write state");
        assert_eq!(io_kind(&e), io::ErrorKind::StorageFull);
        assert_eq!(io_kind(&anyhow::anyhow!("no io")), io::ErrorKind::Other);
    }
}
