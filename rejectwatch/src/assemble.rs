//! The one place the core and its sinks are put together, for `run` and
//! `analyze` alike: metrics, the exchange and findings outputs, the
//! enricher, the detection engine, the blocklist with its exemptions and
//! files, and the pipeline that joins them. What differs between the two
//! commands (the host's own addresses, kept state, findings kept for the
//! API, markers) is said to the builder, not assembled again.

use std::{
    net::IpAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use crate::{
    blocklist::{Blocklist, exempt::Exemptions, output::Outputs},
    cli::PipelineArgs,
    config::Config,
    detect::Engine,
    enrich::Enricher,
    metrics::Metrics,
    pipeline::Pipeline,
    sink::{Sinks, open_named, open_output},
    state::{self, marks::Mark},
    time::Secs,
};

/// What the builder makes: the pipeline, the metrics it counts into (also
/// read by `/metrics` and `--metrics`), how many blocklist entries came
/// back from the state directory, and the line that says what came back
/// of a detection snapshot (or why nothing did).
pub struct Assembled {
    pub pipeline: Pipeline,
    pub metrics: Arc<Mutex<Metrics>>,
    pub restored: usize,
    pub resumed: Option<String>,
}

pub struct Builder<'a> {
    cfg: &'a Config,
    args: &'a PipelineArgs,
    own: &'a [IpAddr],
    /// Live: the blocklist is restored from and kept in this directory,
    /// as of this time.
    state: Option<(PathBuf, Secs)>,
    findings_kept: usize,
    marks: &'a [Mark],
    /// The detection snapshot's directory.
    resume: Option<PathBuf>,
}

impl<'a> Builder<'a> {
    /// A replay's pipeline by default: no own addresses, no kept state,
    /// no findings kept in memory, no markers.
    pub fn new(cfg: &'a Config, args: &'a PipelineArgs) -> Self {
        Self { cfg, args, own: &[], state: None, findings_kept: 0, marks: &[], resume: None }
    }

    /// The host's own addresses: never listed, whatever they do.
    pub fn own_addresses(mut self, own: &'a [IpAddr]) -> Self {
        self.own = own;
        self
    }

    /// Restores the blocklist from `dir` (entries still running at `now`)
    /// and keeps it there.
    pub fn state_in(mut self, dir: PathBuf, now: Secs) -> Self {
        self.state = Some((dir, now));
        self
    }

    /// Findings kept in memory for the API.
    pub fn keep_findings(mut self, n: usize) -> Self {
        self.findings_kept = n;
        self
    }

    /// Continues detection from the snapshot in `dir`, when there is one
    /// (before the markers: those it had judged are not judged again).
    pub fn resume_from(mut self, dir: Option<PathBuf>) -> Self {
        self.resume = dir;
        self
    }

    pub fn marks(mut self, marks: &'a [Mark]) -> Self {
        self.marks = marks;
        self
    }

    /// Opens every file and table; each failure names its flag or key.
    pub fn build(self) -> anyhow::Result<Assembled> {
        let cfg = self.cfg;
        let enricher = Enricher::new(cfg)?;
        let out = self.args.exchanges.as_deref().map(open_output).transpose()?;
        let findings = self.args.findings.as_deref().map(|f| open_named("--findings", f)).transpose()?;
        let metrics = Arc::new(Mutex::new(Metrics::new()));
        let mut engine = Engine::new(&cfg.detect, cfg.ipv6_prefix);
        let resumed = self.resume.as_deref().and_then(|dir| state::snapshot::restore(dir, &mut engine, &metrics));
        for m in self.marks {
            engine.add_mark(m.clone());
        }
        let sinks = Sinks::new(metrics.clone(), out).with_findings(findings).keep_findings(self.findings_kept);
        let exempt = Exemptions::new(&cfg.blocklist, &cfg.trusted_proxies, self.own);
        let mut blocklist = Blocklist::new(&cfg.blocklist, exempt);
        let mut restored = 0;
        let state_dir = match self.state {
            Some((dir, now)) => {
                restored = state::blocklist::load(&dir, &mut blocklist, now)?;
                Some(dir)
            }
            None => None,
        };
        let outputs = Outputs::new(&cfg.blocklist.paths, state_dir, cfg.blocklist.nft_rule)?
            .count_errors(&metrics.lock().unwrap_or_else(|e| e.into_inner()).write_errors);
        let pipeline = Pipeline::new(enricher, engine, sinks).with_blocklist(&cfg.blocklist, blocklist, outputs);
        Ok(Assembled { pipeline, metrics, restored, resumed })
    }
}
