//! Sinks: where exchanges and counts go. [`Sinks`] is what the pipeline of
//! both `run` and `analyze` hands each exchange, finding and error once the
//! core is done: it counts into the metrics and writes the JSON lines.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use foldhash::fast::FixedState;
use prometheus::IntCounter;

use crate::{
    detect::finding::Finding,
    exchange::Exchange,
    metrics::{MAX_ENDPOINT_LABELS, Metrics, may_label_endpoint, method_label, status_key, status_label},
    observe::{Side, Source},
    tally::Tally,
    time::secs,
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
    pub fn reject(&mut self, ts: crate::time::Nanos, endpoint: &str, known: bool) {
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
}
