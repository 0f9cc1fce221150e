//! The observer both `run` and `analyze` hand their sources: every
//! exchange is enriched, judged by the detectors, then counted and written
//! by the sinks with the findings it produced. On each tick (every second
//! live, once at the end of a replay) the roster is folded into the
//! blocklist and the gauges.

use crate::{
    blocklist::{Blocklist, BlocklistConfig, output::Outputs},
    detect::{Engine, finding::Finding, secs, window::Secs},
    enrich::Enricher,
    exchange::Exchange,
    observe::{Observer, Side, Source},
    sink::Sinks,
};

pub struct Pipeline {
    pub enricher: Enricher,
    pub detect: Engine,
    pub sinks: Sinks,
    pub blocklist: Blocklist,
    outputs: Outputs,
    nft_rule: bool,
    /// Time of the last tick.
    now: Secs,
    findings: Vec<Finding>,
}

impl Pipeline {
    pub fn new(enricher: Enricher, detect: Engine, sinks: Sinks) -> Self {
        let cfg = BlocklistConfig::default();
        Self {
            enricher,
            detect,
            sinks,
            blocklist: Blocklist::new(&cfg),
            outputs: Outputs::new(&[], None, false).expect("no files to check"),
            nft_rule: false,
            now: 0,
            findings: Vec::new(),
        }
    }

    /// The blocklist this pipeline keeps, and where it writes it.
    pub fn with_blocklist(mut self, cfg: &BlocklistConfig, blocklist: Blocklist, outputs: Outputs) -> Self {
        self.blocklist = blocklist;
        self.outputs = outputs;
        self.nft_rule = cfg.nft_rule;
        self
    }

    pub fn now(&self) -> Secs {
        self.now
    }

    pub fn nft_rule(&self) -> bool {
        self.nft_rule
    }

    /// End of input: the detectors judge what record time now allows, and
    /// the blocklist is written as of the last record.
    pub fn finish(&mut self) {
        self.detect.finish(&mut self.findings);
        self.write_findings();
        let now = self.detect.now();
        self.tick(now);
    }

    /// The roster into the blocklist (written if it changed) and the
    /// gauges, at time `now`.
    pub fn tick(&mut self, now: Secs) {
        self.now = self.now.max(now);
        self.blocklist.update(self.detect.roster().iter(), self.now);
        self.outputs.write_if_changed(&mut self.blocklist, self.now);
        self.refresh_metrics();
    }

    /// Live: the capture clock's time (nanoseconds) for a tick.
    pub fn tick_at(&mut self, now: crate::record::Nanos) {
        self.tick(secs(now));
    }

    /// Roster and table sizes into the gauges.
    pub fn refresh_metrics(&mut self) {
        let mut counts = std::collections::BTreeMap::new();
        for a in self.detect.roster().iter() {
            *counts.entry(a.class.as_str()).or_insert(0i64) += 1;
        }
        let (v4, v6) = self.blocklist.counts();
        let m = self.sinks.metrics.lock().unwrap_or_else(|p| p.into_inner());
        for c in crate::detect::evidence::Class::ALL {
            m.actors.with_label_values(&[c.as_str()]).set(counts.get(c.as_str()).copied().unwrap_or(0));
        }
        m.detector_keys.set(self.detect.keys() as i64);
        m.blocklist_entries.with_label_values(&["ipv4"]).set(v4 as i64);
        m.blocklist_entries.with_label_values(&["ipv6"]).set(v6 as i64);
    }

    fn write_findings(&mut self) {
        for f in self.findings.drain(..) {
            self.sinks.finding(f);
        }
    }
}

impl Observer for Pipeline {
    fn exchange(&mut self, mut ex: Exchange) {
        self.enricher.attribute(&mut ex);
        self.detect.prefetch(&ex);
        self.enricher.describe(&mut ex);
        self.detect.observe(&ex, &mut self.findings);
        if let Some(s) = ex.status
            && self.detect.is_reject(s)
        {
            let ep = ex.endpoint.as_deref().unwrap_or("");
            let known = self.detect.documented(ep);
            self.sinks.reject(ep, known);
        }
        self.sinks.exchange(&ex);
        if !self.findings.is_empty() {
            self.write_findings();
        }
    }
    fn unmatched(&mut self, side: Side) {
        self.sinks.unmatched(side);
    }
    fn parse_error(&mut self, source: Source, reason: &'static str) {
        self.sinks.parse_error(source, reason);
    }
}
