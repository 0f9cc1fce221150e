//! The observer both `run` and `analyze` hand their sources: every
//! exchange is enriched, judged by the detectors, then counted and written
//! by the sinks with the findings it produced; a few dozen at a time, each
//! stage over the whole batch, in their order, so the findings are those of
//! one at a time. On each tick (every second live, once at the end of a
//! replay) the roster is folded into the blocklist and the gauges.

use crate::{
    blocklist::{Blocklist, BlocklistConfig, exempt::Exemptions, output::Outputs},
    detect::{Engine, finding::Finding, inspect::Inspector},
    enrich::{Enricher, geo::Ahead},
    exchange::Exchange,
    observe::{Observer, Side, Source},
    sink::Sinks,
    time::{Secs, secs},
};

pub struct Pipeline {
    pub enricher: Enricher,
    pub detect: Engine,
    pub sinks: Sinks,
    pub blocklist: Blocklist,
    outputs: Outputs,
    nft_rule: bool,
    /// At the end of input, list every threat from this time (a replay's
    /// `--blocklist-ttl-from now`) rather than from its last activity.
    list_from: Option<Secs>,
    /// Time of the last tick.
    now: Secs,
    /// The engine's evictions as last counted into the metrics.
    evicted: [u64; 3],
    findings: Vec<Finding>,
    batch: Vec<Exchange>,
    /// Where each of the batch's clients' states probably is.
    at: Vec<Option<usize>>,
    /// The batch's clients' hashes in the client index.
    hashes: Vec<u64>,
    /// The source prepares what it hands over (a parallel log replay, an
    /// [`Upstream`] per worker thread).
    prepared_upstream: bool,
}

impl Pipeline {
    pub fn new(enricher: Enricher, detect: Engine, sinks: Sinks) -> Self {
        let cfg = BlocklistConfig::default();
        Self {
            enricher,
            detect,
            sinks,
            blocklist: Blocklist::new(&cfg, Exemptions::new(&cfg, &[], &[])),
            outputs: Outputs::new(&[], None, false).expect("no files to check"),
            nft_rule: false,
            list_from: None,
            now: 0,
            evicted: [0; 3],
            findings: Vec::new(),
            batch: Vec::with_capacity(BATCH),
            at: Vec::with_capacity(BATCH),
            hashes: Vec::with_capacity(BATCH),
            prepared_upstream: false,
        }
    }

    /// Whether the exchanges handed over from now on come prepared (by
    /// [`Pipeline::upstream`]s); those waiting are judged first.
    pub fn set_prepared_upstream(&mut self, yes: bool) {
        self.flush_batch();
        self.prepared_upstream = yes;
    }

    /// What a source's worker thread does to each exchange before handing
    /// it over (see [`Upstream`]).
    pub fn upstream(&self) -> Upstream {
        Upstream { enricher: self.enricher.fork(), inspector: Inspector::of(&self.detect) }
    }

    /// Enforces the blocklist in XDP from now on; the current entries at
    /// the next tick.
    pub fn enforce_with(&mut self, enforcer: Box<dyn crate::blocklist::output::Enforce>) {
        self.outputs.enforce_with(enforcer);
        self.blocklist.changed = true;
    }

    /// What is enforced in XDP now.
    pub fn enforced(&self) -> Vec<ipnet::IpNet> {
        self.outputs.enforced()
    }

    /// The blocklist this pipeline keeps, and where it writes it.
    pub fn with_blocklist(mut self, cfg: &BlocklistConfig, blocklist: Blocklist, outputs: Outputs) -> Self {
        self.blocklist = blocklist;
        self.outputs = outputs;
        self.nft_rule = cfg.nft_rule;
        self
    }

    /// At the end of input the blocklist lists every threat actor, each
    /// entry lasting from `now` (the caller's clock: the core has none).
    pub fn listing_from(mut self, now: Secs) -> Self {
        self.list_from = Some(now);
        self
    }

    pub fn now(&self) -> Secs {
        self.now
    }

    pub fn nft_rule(&self) -> bool {
        self.nft_rule
    }

    /// End of input: the detectors judge what record time now allows, and
    /// the blocklist is written as of the last record (or, with
    /// [`Pipeline::listing_from`], as of that time, every threat on it).
    pub fn finish(&mut self) {
        self.flush_batch();
        self.detect.finish(&mut self.findings);
        self.write_findings();
        let now = self.detect.now();
        match self.list_from {
            None => self.tick(now),
            Some(from) => {
                // A clock behind the records (a log from a skewed host)
                // must not make entries end before their activity.
                self.now = self.now.max(now).max(from);
                self.blocklist.update_from_now(self.detect.roster().iter(), self.now);
                self.outputs.write_if_changed(&mut self.blocklist, self.now);
                self.refresh_metrics();
            }
        }
    }

    /// The roster into the blocklist (written if it changed) and the
    /// gauges, at time `now`.
    pub fn tick(&mut self, now: Secs) {
        self.flush_batch();
        self.now = self.now.max(now);
        self.blocklist.update(self.detect.roster().iter(), self.now);
        self.outputs.write_if_changed(&mut self.blocklist, self.now);
        self.refresh_metrics();
    }

    /// Live: the capture clock's time (nanoseconds) for a tick.
    pub fn tick_at(&mut self, now: crate::time::Nanos) {
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
        for ((table, n), last) in self.detect.evictions().into_iter().zip(self.evicted.iter_mut()) {
            m.evictions.with_label_values(&[table]).inc_by(n.saturating_sub(*last));
            *last = n;
        }
        m.blocklist_entries.with_label_values(&["ipv4"]).set(v4 as i64);
        m.blocklist_entries.with_label_values(&["ipv6"]).set(v6 as i64);
    }

    fn write_findings(&mut self) {
        for f in self.findings.drain(..) {
            self.sinks.finding(f);
        }
    }
}

/// The work on an exchange that needs none of the pipeline's state, done
/// by a source's worker threads (a parallel log replay) so that the one
/// thread that judges in order does less: enrichment, with a fork of the
/// pipeline's enricher, then the detectors' searches of the exchange alone
/// ([`Inspector`]). Every field either fills is a function of the exchange
/// and of tables shared with the pipeline, so which worker prepared an
/// exchange changes nothing.
pub struct Upstream {
    enricher: Enricher,
    inspector: Inspector,
}

impl Upstream {
    /// Prepares a batch in passes, as [`Pipeline::flush_batch`] enriches:
    /// the GeoIP lines every lookup needs are asked for ahead.
    pub fn prepare(&mut self, batch: &mut [&mut Exchange]) {
        for ex in batch.iter_mut() {
            self.enricher.attribute(ex);
            self.enricher.prefetch(ex, Ahead::Index);
        }
        for ex in batch.iter() {
            self.enricher.prefetch(ex, Ahead::Rows);
        }
        for ex in batch.iter_mut() {
            self.enricher.describe(ex);
            self.inspector.inspect(ex);
        }
    }
}

/// Exchanges enriched together before the detectors see them. Per
/// exchange the pipeline runs more code than the instruction cache holds,
/// so running one stage over a batch, then the next, fetches each stage's
/// code once per batch instead of once per exchange. Small enough that a
/// batch's exchanges stay in the data cache between the two passes.
const BATCH: usize = 32;

impl Pipeline {
    /// Enriches and judges the exchanges waiting in the batch. Everything
    /// that reads the pipeline's state (ticks, the end of input, the live
    /// drain before it lets go of the pipeline) calls this first, so the
    /// batch never shows: the order of exchanges, and so every finding, is
    /// the same as one at a time.
    pub fn flush_batch(&mut self) {
        let mut batch = std::mem::take(&mut self.batch);
        // The clients' states are fetched while the batch is enriched, long
        // before the detectors need them. Finding a state's slot is itself
        // a walk of the client index, which misses the caches twice in
        // turn (its tags, then the slot numbers beside them): so the index
        // lines of the whole batch are asked for as each client is named,
        // and the walks come after, finding them there, each then asking
        // for its state. Walked as each client was named, the walks were
        // half this pass's own time under perf.
        let mut at = std::mem::take(&mut self.at);
        let mut hashes = std::mem::take(&mut self.hashes);
        let index = self.detect.client_index();
        let enrich = !self.prepared_upstream;
        for ex in batch.iter_mut() {
            if enrich {
                self.enricher.attribute(ex);
                self.enricher.prefetch(ex, Ahead::Index);
            }
            hashes.push(self.detect.prefetch_index(ex, &index));
        }
        at.extend(hashes.drain(..).map(|h| self.detect.prefetch(h)));
        self.hashes = hashes;
        if enrich {
            for ex in batch.iter() {
                self.enricher.prefetch(ex, Ahead::Rows);
            }
            for ex in batch.iter_mut() {
                self.enricher.describe(ex);
            }
        }
        // The states have arrived; what they point to is fetched for the
        // whole batch, again before any of it is needed.
        for &at in &at {
            self.detect.prefetch_more(at);
        }
        // By reference: moving each exchange (~560 bytes) out of the batch
        // was a copy per exchange.
        for (ex, &here) in batch.iter().zip(&at) {
            self.observe_one(ex, here);
        }
        at.clear();
        self.at = at;
        batch.clear();
        self.batch = batch;
    }

    fn observe_one(&mut self, ex: &Exchange, at: Option<usize>) {
        self.detect.observe_at(ex, at, &mut self.findings);
        if let Some(s) = ex.status
            && self.detect.is_reject(s)
        {
            let ep = ex.endpoint.as_deref().unwrap_or("");
            let known = self.detect.documented(ep);
            self.sinks.reject(ex.ts, ep, known);
        }
        self.sinks.exchange(ex);
        if !self.findings.is_empty() {
            self.write_findings();
        }
    }
}

impl Observer for Pipeline {
    fn exchange(&mut self, ex: Exchange) {
        self.batch.push(ex);
        if self.batch.len() >= BATCH {
            self.flush_batch();
        }
    }
    fn unmatched(&mut self, side: Side) {
        self.sinks.unmatched(side);
    }
    fn parse_error(&mut self, source: Source, reason: &'static str) {
        self.sinks.parse_error(source, reason);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::{config::Config, enrich::geo::Geo, metrics::Metrics};

    fn pipeline() -> (Pipeline, Arc<Mutex<Metrics>>) {
        let cfg = Config::default();
        let enricher = Enricher::with_parts(&cfg, Geo::open(None, None).expect("no geo"), [7; 32]).expect("enricher");
        let metrics = Arc::new(Mutex::new(Metrics::new()));
        let sinks = Sinks::new(metrics.clone(), None);
        (Pipeline::new(enricher, Engine::new(&cfg.detect, cfg.ipv6_prefix), sinks), metrics)
    }

    fn exchange(i: u32) -> Exchange {
        Exchange {
            ts: 1_700_000_000_000_000_000 + i as u64 * 1_000_000,
            peer: std::net::IpAddr::from([10, 0, (i >> 8) as u8, i as u8]),
            method: "GET".into(),
            request: crate::exchange::RequestText::new(&format!("/items/{i}")),
            status: Some(401),
            ..Default::default()
        }
    }

    fn counted(m: &Mutex<Metrics>) -> u64 {
        m.lock().unwrap().exchanges.with_label_values(&["GET", "401"]).get()
    }

    #[test]
    fn a_part_batch_is_judged_before_anything_reads_the_state() {
        let (mut p, metrics) = pipeline();
        let n = BATCH as u32 + BATCH as u32 / 2;
        for i in 0..n {
            p.exchange(exchange(i));
        }
        // A whole batch was judged as it filled; the rest waits for its
        // batch to fill or for a reader.
        assert_eq!((counted(&metrics), p.detect.clients()), (BATCH as u64, BATCH));
        p.tick(p.now());
        assert_eq!((counted(&metrics), p.detect.clients()), (n as u64, n as usize));
        p.exchange(exchange(n));
        p.finish();
        assert_eq!((counted(&metrics), p.detect.clients()), (n as u64 + 1, n as usize + 1));
    }
}
