//! The detection snapshot's file, `<state dir>/detect.snapshot`: taken
//! by the daemon every `snapshot.interval` and at a clean shutdown, read
//! back when it starts, so that detection windows (72 h for rotation and
//! convergence) survive a restart. The bytes are the core's
//! ([`crate::detect::snapshot`]); this is where they are kept: written to
//! a temporary file and renamed over, so a crash mid-write leaves the
//! previous snapshot. A file that cannot be restored is counted, named in
//! one line, and the daemon starts fresh.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde::Deserialize;

use super::write_atomically;
use crate::detect::Engine;

/// The `[snapshot]` section.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    /// Keep and restore the detection state at all.
    pub enabled: bool,
    /// How often the daemon writes it (wall-clock); also written at a
    /// clean shutdown.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self { enabled: true, interval: Duration::from_secs(300) }
    }
}

impl SnapshotConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.interval < Duration::from_secs(1) {
            return Err("snapshot.interval: must be at least 1s".into());
        }
        Ok(())
    }
}

pub fn file(state_dir: &Path) -> PathBuf {
    state_dir.join("detect.snapshot")
}

/// What loading found.
#[derive(Debug)]
pub enum Loaded {
    /// No snapshot yet: a first start.
    Absent,
    /// Restored; the line to log.
    Restored(String),
    /// Unreadable or incompatible: the engine is fresh; the line to log.
    Discarded(String),
}

/// Restores `engine` (fresh) from the state directory's snapshot, if
/// there is one that it can take.
pub fn load(state_dir: &Path, engine: &mut Engine) -> Loaded {
    let path = file(state_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Absent,
        Err(e) => return Loaded::Discarded(format!("{}: {e}; detection starts fresh", path.display())),
    };
    match engine.restore(&bytes) {
        Ok(r) => {
            let dropped = if r.dropped.is_empty() {
                String::new()
            } else {
                format!("; dropped the state of {} (settings changed or disabled)", r.dropped.join(", "))
            };
            Loaded::Restored(format!(
                "detection state restored from {} as of {}: {} clients, {} actors, {} detectors{dropped}",
                path.display(),
                crate::time::format_ts(r.now as u64 * 1_000_000_000),
                r.clients,
                r.actors,
                r.detectors,
            ))
        }
        Err(e) => Loaded::Discarded(format!("{}: {e}; detection starts fresh", path.display())),
    }
}

/// A snapshot written: how big and how long it took (encoding, under the
/// caller's lock, and writing).
#[derive(Clone, Copy, Debug)]
pub struct Written {
    pub bytes: usize,
    pub encode: Duration,
    pub write: Duration,
}

/// The engine's state now, as bytes: taken under the pipeline's lock.
pub fn encode(engine: &Engine) -> anyhow::Result<(Vec<u8>, Duration)> {
    let start = Instant::now();
    let bytes = engine.snapshot().context("detection snapshot")?;
    Ok((bytes, start.elapsed()))
}

/// Writes what [`encode`] made, over the previous snapshot.
pub fn write(state_dir: &Path, (bytes, encode): (Vec<u8>, Duration)) -> anyhow::Result<Written> {
    let start = Instant::now();
    std::fs::create_dir_all(state_dir).with_context(|| format!("cannot create {}", state_dir.display()))?;
    let path = file(state_dir);
    write_atomically(&path, |w| w.write_all(&bytes)).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Written { bytes: bytes.len(), encode, write: start.elapsed() })
}

/// The daemon's: restores the detection state kept in `dir`; returns the one line that
/// says what came back or why nothing did (counted).
pub fn restore(
    dir: &std::path::Path,
    engine: &mut Engine,
    metrics: &std::sync::Mutex<crate::metrics::Metrics>,
) -> Option<String> {
    match load(dir, engine) {
        Loaded::Absent => None,
        Loaded::Restored(line) => Some(line),
        Loaded::Discarded(line) => {
            metrics.lock().unwrap_or_else(|e| e.into_inner()).snapshot_failures.with_label_values(&["load"]).inc();
            Some(line)
        }
    }
}

/// The daemon's: writes an encoded snapshot (outside the pipeline's lock); a failure is
/// logged and counted, and the next one tries again.
pub fn save(
    dir: Option<&std::path::Path>,
    encoded: anyhow::Result<(Vec<u8>, Duration)>,
    metrics: &std::sync::Mutex<crate::metrics::Metrics>,
) {
    let Some(dir) = dir else { return };
    match encoded.and_then(|e| write(dir, e)) {
        Ok(w) => {
            log::debug!("detection snapshot: {} bytes, encoded in {:?}, written in {:?}", w.bytes, w.encode, w.write)
        }
        Err(e) => {
            log::error!("{e:#}");
            metrics.lock().unwrap_or_else(|e| e.into_inner()).snapshot_failures.with_label_values(&["save"]).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::spec::DetectConfig;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rw-resume-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_bad_file_is_discarded_in_one_line_and_a_good_one_restored() {
        let cfg = DetectConfig::default();
        let d = dir("load");
        assert!(matches!(load(&d, &mut Engine::new(&cfg, 64)), Loaded::Absent));
        let mut e = Engine::new(&cfg, 64);
        let mut out = Vec::new();
        e.observe(
            &crate::exchange::Exchange {
                ts: 1_700_000_000_000_000_000,
                peer: std::net::IpAddr::from([192, 0, 2, 1]),
                status: Some(401),
                ..Default::default()
            },
            &mut out,
        );
        let w = write(&d, encode(&e).expect("encodes")).expect("writes");
        assert_eq!(w.bytes as u64, std::fs::metadata(file(&d)).expect("written").len());
        let mut back = Engine::new(&cfg, 64);
        match load(&d, &mut back) {
            Loaded::Restored(line) => assert!(line.contains("1 clients") && !line.contains('\n'), "{line}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(back.clients(), 1);
        std::fs::write(file(&d), b"RWDETECT\x01\x00\x00\x00 cut").expect("writes");
        match load(&d, &mut Engine::new(&cfg, 64)) {
            Loaded::Discarded(line) => assert!(line.contains("truncated") && !line.contains('\n'), "{line}"),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
