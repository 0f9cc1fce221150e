//! The observer both `run` and `analyze` hand their sources: every
//! exchange is enriched, judged by the detectors, then counted and written
//! by the sinks with the findings it produced.

use crate::{
    detect::{Engine, finding::Finding},
    enrich::Enricher,
    exchange::Exchange,
    observe::{Observer, Side, Source},
    sink::Sinks,
};

pub struct Pipeline {
    pub enricher: Enricher,
    pub detect: Engine,
    pub sinks: Sinks,
    findings: Vec<Finding>,
}

impl Pipeline {
    pub fn new(enricher: Enricher, detect: Engine, sinks: Sinks) -> Self {
        Self { enricher, detect, sinks, findings: Vec::new() }
    }

    /// End of input: the detectors judge what record time now allows.
    pub fn finish(&mut self) {
        self.detect.finish(&mut self.findings);
        self.write_findings();
    }

    /// Roster and table sizes into the gauges.
    pub fn refresh_metrics(&mut self) {
        let mut counts = std::collections::BTreeMap::new();
        for a in self.detect.roster().actors() {
            *counts.entry(a.class.as_str()).or_insert(0i64) += 1;
        }
        let m = self.sinks.metrics.lock().unwrap_or_else(|p| p.into_inner());
        for c in ["threat", "prospect", "misconfiguration", "unknown"] {
            m.actors.with_label_values(&[c]).set(counts.get(c).copied().unwrap_or(0));
        }
        m.detector_keys.set(self.detect.keys() as i64);
    }

    fn write_findings(&mut self) {
        for f in self.findings.drain(..) {
            self.sinks.finding(&f);
        }
    }
}

impl Observer for Pipeline {
    fn exchange(&mut self, mut ex: Exchange) {
        self.enricher.enrich(&mut ex);
        self.detect.observe(&ex, &mut self.findings);
        self.sinks.exchange(ex);
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
