//! Sinks: where exchanges and counts go. [`Sinks`] is what the pipeline of
//! both `run` and `analyze` hands each exchange, finding and error once the
//! core is done: it counts into the metrics and writes the JSON lines.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    fs::File,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use foldhash::fast::FixedState;
use prometheus::IntCounter;

use crate::{
    detect::{finding::Finding, secs},
    exchange::Exchange,
    metrics::{MAX_ENDPOINT_LABELS, Metrics, may_label_endpoint, method_label, status_key, status_label},
    observe::{Side, Source},
    tally::Tally,
    write_errors::{Kept, WriteErrors},
};

/// `--exchanges PATH|-` (and `--findings`): JSON lines to a file or stdout.
pub fn open_output(path: &str) -> anyhow::Result<Box<dyn Write + Send>> {
    open_named("--exchanges", path)
}

pub fn open_named(flag: &str, path: &str) -> anyhow::Result<Box<dyn Write + Send>> {
    if path == "-" {
        return Ok(Box::new(BufWriter::new(io::stdout())));
    }
    let f = File::create(Path::new(path)).with_context(|| format!("{flag}: cannot create {path}"))?;
    Ok(Box::new(BufWriter::new(f)))
}

/// Writes a whole file for another program: to a temporary file beside
/// it, then renamed over, so a reader never sees half of it.
///
/// Only a regular file (or a missing one) is replaced. A path that is a
/// device, a FIFO or a socket (`/dev/null`, `/dev/stdout`, a pipe another
/// program reads) is written in place: renaming over it would put a plain
/// file where the device was, and as root `/dev/null` itself would become
/// a file every later `>/dev/null` appends to. A symbolic link is followed
/// and its target replaced, so the link stays.
pub fn write_atomically(path: &Path, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let (path, tmp) = match Destination::of(path)? {
        Destination::InPlace(path) => {
            let mut w = BufWriter::new(File::options().write(true).open(&path)?);
            write(&mut w)?;
            return w.flush();
        }
        Destination::Replace { path, tmp } => (path, tmp),
    };
    let result = (|| {
        let mut w = BufWriter::new(File::create(&tmp)?);
        write(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else {
        remove_stale_temporaries(&tmp);
    }
    result
}

/// Removes what writers of the same file killed mid-write left beside it
/// (`.<name>.tmp<pid>` of a process that no longer exists): never renamed
/// over anything, they would otherwise pile up across restarts.
fn remove_stale_temporaries(tmp: &Path) {
    let (Some(dir), Some(own)) = (tmp.parent(), tmp.file_name().and_then(|n| n.to_str())) else { return };
    let Some(prefix) = own.strip_suffix(&std::process::id().to_string()) else { return };
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) else { return };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Fails now, naming `flag`, if [`write_atomically`] could not write
/// `path` later: a run that reads a week of logs should not find out at
/// its end that the directory is missing or read-only. Leaves nothing
/// behind.
pub fn check_writable(flag: &str, path: &Path) -> anyhow::Result<()> {
    let fail = |e: io::Error| anyhow::anyhow!("{flag}: cannot write {}: {e}", path.display());
    match Destination::of(path).map_err(fail)? {
        // Opening it is the test.
        Destination::InPlace(path) => File::options().write(true).open(&path).map(drop).map_err(fail),
        Destination::Replace { tmp, .. } => {
            File::create(&tmp).map_err(fail)?;
            std::fs::remove_file(&tmp).map_err(fail)
        }
    }
}

/// Where [`write_atomically`] writes a path: decided once, for the write
/// and for [`check_writable`]'s probe of it.
enum Destination {
    /// A device, FIFO or socket: written as it is.
    InPlace(PathBuf),
    /// A regular or missing file (at the end of any links): `tmp`, beside
    /// it, is written and renamed over it.
    Replace { path: PathBuf, tmp: PathBuf },
}

impl Destination {
    fn of(path: &Path) -> io::Result<Self> {
        let path = resolve_links(path)?;
        if std::fs::metadata(&path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            return Ok(Self::InPlace(path));
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
        Ok(Self::Replace { path, tmp })
    }
}

/// Where a chain of symbolic links ends, even when the file there does not
/// exist yet (a link made before the first write).
fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    // The kernel's own limit on links followed in one lookup.
    for _ in 0..40 {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&path)?;
                path = match path.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(io::Error::other(format!("{}: too many levels of symbolic links", path.display())))
}

/// How the log names the two JSON-line outputs.
const EXCHANGES: &str = "--exchanges";
const FINDINGS: &str = "--findings";

pub struct Sinks {
    pub metrics: Arc<Mutex<Metrics>>,
    /// `rejectwatch_http_exchanges_total` series by (method label, status
    /// key): a series looked up once, not hashed by its label strings
    /// under the lock on every exchange. At most 10 × 76 entries.
    exchange_series: HashMap<(&'static str, u16), IntCounter, FixedState>,
    /// `rejectwatch_rejects_total` series of the endpoints that have one
    /// (at most [`MAX_ENDPOINT_LABELS`]; a template once admitted keeps
    /// its series), and the one every other endpoint counts under.
    reject_series: HashMap<Box<str>, IntCounter, FixedState>,
    reject_other: IntCounter,
    exchanges: Option<Box<dyn Write + Send>>,
    findings: Option<Box<dyn Write + Send>>,
    /// The latest findings, for the HTTP API.
    recent: VecDeque<Finding>,
    recent_cap: usize,
    /// Failed writes of the exchanges and findings: counted, each kind
    /// said once (a full disk fails every write, every few milliseconds).
    write_errors: WriteErrors,
    /// Totals, for the summary `analyze` prints.
    pub count: u64,
    pub unmatched: u64,
    pub parse_errors: u64,
    /// `parse_errors` by source and reason, for the summary to name them.
    pub parse_error_reasons: BTreeMap<(&'static str, &'static str), u64>,
    pub findings_written: u64,
    /// What the HTML report draws over time, bounded.
    pub tally: Tally,
}

impl Sinks {
    pub fn new(metrics: Arc<Mutex<Metrics>>, exchanges: Option<Box<dyn Write + Send>>) -> Self {
        let (reject_other, write_errors) = {
            let m = metrics.lock().unwrap_or_else(|p| p.into_inner());
            (m.rejects.with_label_values(&["other"]), WriteErrors::counted(&m.write_errors))
        };
        Self {
            metrics,
            exchange_series: HashMap::default(),
            reject_series: HashMap::default(),
            reject_other,
            exchanges,
            findings: None,
            recent: VecDeque::new(),
            recent_cap: 10_000,
            write_errors,
            count: 0,
            unmatched: 0,
            parse_errors: 0,
            parse_error_reasons: BTreeMap::new(),
            findings_written: 0,
            tally: Tally::default(),
        }
    }

    pub fn with_findings(mut self, w: Option<Box<dyn Write + Send>>) -> Self {
        self.findings = w;
        self
    }

    /// How many recent findings to keep for the API.
    pub fn keep_findings(mut self, n: usize) -> Self {
        self.recent_cap = n;
        self
    }

    pub fn recent_findings(&self) -> &VecDeque<Finding> {
        &self.recent
    }

    /// A rejected exchange at `ts`, counted by endpoint template when the
    /// template is part of the API (others, and any past the label cap, as
    /// `other`).
    pub fn reject(&mut self, ts: crate::record::Nanos, endpoint: &str, known: bool) {
        self.tally.reject(secs(ts), endpoint, known);
        if let Some(c) = self.reject_series.get(endpoint) {
            c.inc();
        } else if self.reject_series.len() < MAX_ENDPOINT_LABELS && may_label_endpoint(endpoint, known) {
            let c = self.metrics().rejects.with_label_values(&[endpoint]);
            c.inc();
            self.reject_series.insert(endpoint.into(), c);
        } else {
            self.reject_other.inc();
        }
    }

    /// Flushes both logs; a failure is counted and said once (see
    /// [`WriteErrors`]), and the first is returned.
    pub fn flush(&mut self) -> io::Result<()> {
        let mut first = Ok(());
        for (w, kept, flag) in
            [(&mut self.exchanges, Kept::Exchanges, EXCHANGES), (&mut self.findings, Kept::Findings, FINDINGS)]
        {
            let Some(w) = w else { continue };
            match w.flush() {
                Ok(()) => self.write_errors.succeeded(Path::new(flag)),
                Err(e) => {
                    self.write_errors.failed(kept, Path::new(flag), e.kind(), &format!("cannot write {flag}: {e}"));
                    if first.is_ok() {
                        first = Err(e);
                    }
                }
            }
        }
        first
    }

    pub fn finding(&mut self, f: Finding) {
        self.findings_written += 1;
        self.tally.finding(secs(f.ts), f.classification, f.detector);
        self.metrics().findings.with_label_values(&[f.detector, f.classification.as_str()]).inc();
        if let Some(w) = &mut self.findings {
            let mut line = serde_json::to_string(&f).expect("finding serialises");
            // One write per line: a failure leaves no half line behind in
            // the buffer for the next line to join.
            line.push('\n');
            if let Err(e) = w.write_all(line.as_bytes()) {
                self.write_errors.failed(
                    Kept::Findings,
                    Path::new(FINDINGS),
                    e.kind(),
                    &format!("cannot write {FINDINGS}: {e}"),
                );
            }
        }
        if self.recent_cap > 0 {
            if self.recent.len() >= self.recent_cap {
                self.recent.pop_front();
            }
            self.recent.push_back(f);
        }
    }

    fn metrics(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the pipeline hands on once the core is done with an exchange. By
/// reference: the pipeline owns it, and moving its 600-odd bytes here
/// only to drop them cost a copy per exchange.
impl Sinks {
    pub fn exchange(&mut self, ex: &Exchange) {
        self.count += 1;
        self.tally.request(secs(ex.ts));
        let key = (method_label(&ex.method), status_key(ex.status));
        match self.exchange_series.get(&key) {
            Some(c) => c.inc(),
            None => {
                let c = self.metrics().exchanges.with_label_values(&[key.0, &status_label(ex.status)]);
                c.inc();
                self.exchange_series.insert(key, c);
            }
        }
        if let Some(w) = &mut self.exchanges {
            let mut line = serde_json::to_string(ex).expect("exchange serialises");
            line.push('\n');
            if let Err(e) = w.write_all(line.as_bytes()) {
                // Keep observing; the failure is said once, not per exchange.
                self.write_errors.failed(
                    Kept::Exchanges,
                    Path::new(EXCHANGES),
                    e.kind(),
                    &format!("cannot write {EXCHANGES}: {e}"),
                );
            }
        }
    }

    pub fn unmatched(&mut self, side: Side) {
        self.unmatched += 1;
        self.metrics().unmatched.with_label_values(&[side.as_str()]).inc();
    }

    pub fn parse_error(&mut self, source: Source, reason: &'static str) {
        self.parse_errors += 1;
        *self.parse_error_reasons.entry((source.as_str(), reason)).or_default() += 1;
        self.metrics().parse_errors.with_label_values(&[source.as_str(), reason]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_count_under_other_until_the_endpoint_is_known() {
        let metrics = Arc::new(Mutex::new(Metrics::new()));
        let mut s = Sinks::new(metrics.clone(), None);
        s.reject(0, "/api/a", false);
        s.reject(0, "/x/zq1", false);
        s.reject(0, "/api/a", true); // now part of the API: its own series
        s.reject(0, "/api/a", false); // and it keeps it
        s.reject(0, "/x/zq2", false);
        let m = metrics.lock().unwrap();
        let get = |l: &str| m.rejects.with_label_values(&[l]).get();
        assert_eq!((get("/api/a"), get("other")), (2, 3));
        assert_eq!(get("/x/zq1") + get("/x/zq2"), 0);
    }

    #[test]
    fn parse_errors_are_kept_by_source_and_reason() {
        let metrics = Arc::new(Mutex::new(Metrics::new()));
        let mut s = Sinks::new(metrics.clone(), None);
        s.parse_error(Source::Pcap, "bad_ip");
        s.parse_error(Source::Log, "no_timestamp");
        s.parse_error(Source::Pcap, "bad_ip");
        assert_eq!(s.parse_errors, 3);
        let reasons: Vec<_> = s.parse_error_reasons.iter().map(|(k, n)| (*k, *n)).collect();
        assert_eq!(reasons, [(("log", "no_timestamp"), 1), (("pcap", "bad_ip"), 2)]);
        assert_eq!(metrics.lock().unwrap().parse_errors.with_label_values(&["pcap", "bad_ip"]).get(), 2);
    }

    #[test]
    fn endpoint_series_stop_at_the_cap() {
        let metrics = Arc::new(Mutex::new(Metrics::new()));
        let mut s = Sinks::new(metrics.clone(), None);
        for i in 0..MAX_ENDPOINT_LABELS + 10 {
            s.reject(0, &format!("/api/e{i}"), true);
        }
        s.reject(0, "/api/e0", true);
        s.reject(0, "/api/e0", false);
        s.reject(0, "/api/has space", true);
        let m = metrics.lock().unwrap();
        let get = |l: &str| m.rejects.with_label_values(&[l]).get();
        assert_eq!(get("/api/e0"), 3, "an admitted template keeps its series");
        assert_eq!(get(&format!("/api/e{}", MAX_ENDPOINT_LABELS - 1)), 1);
        assert_eq!(get(&format!("/api/e{MAX_ENDPOINT_LABELS}")), 0, "past the cap");
        assert_eq!(get("other"), 11);
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rw-sink-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        dir
    }

    #[test]
    fn a_regular_file_is_replaced_and_no_temporary_file_stays() {
        let dir = scratch("file");
        let path = dir.join("block.txt");
        std::fs::write(&path, "old\n").unwrap();
        write_atomically(&path, |w| w.write_all(b"new\n")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("block.txt")], "temporary files left in {}", dir.display());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // `--actors /dev/null` once replaced the machine's /dev/null with a
    // file; a FIFO stands in for the device here.
    #[test]
    fn a_fifo_is_written_in_place_not_replaced() {
        use std::os::unix::fs::FileTypeExt as _;
        let dir = scratch("fifo");
        let path = dir.join("feed");
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
        let reader = {
            let path = path.clone();
            std::thread::spawn(move || std::fs::read_to_string(path).unwrap())
        };
        write_atomically(&path, |w| w.write_all(b"10.0.0.1\n")).unwrap();
        assert_eq!(reader.join().unwrap(), "10.0.0.1\n");
        let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
        assert!(kind.is_fifo(), "{} is no longer a FIFO: {kind:?}", path.display());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlink_keeps_pointing_at_its_replaced_target() {
        let dir = scratch("link");
        let (target, link) = (dir.join("real.nft"), dir.join("link.nft"));
        std::fs::write(&target, "old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomically(&link, |w| w.write_all(b"new")).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");

        // A relative link made before its target's first write.
        let (later, link2) = (dir.join("later.nft"), dir.join("link2.nft"));
        std::os::unix::fs::symlink("later.nft", &link2).unwrap();
        write_atomically(&link2, |w| w.write_all(b"first")).unwrap();
        assert!(std::fs::symlink_metadata(&link2).unwrap().file_type().is_symlink(), "the link was replaced");
        assert_eq!(std::fs::read_to_string(&later).unwrap(), "first");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
