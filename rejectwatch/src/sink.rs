//! Sinks: where exchanges and counts go. [`Sinks`] is the observer both
//! `run` and `analyze` hand the core: it counts into the metrics and writes
//! the exchange JSON lines.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
    sync::{Arc, Mutex},
};

use anyhow::Context as _;

use crate::{
    exchange::Exchange,
    metrics::{Metrics, method_label, status_label},
    observe::{Observer, Side, Source},
};

/// `--exchanges PATH|-`: JSON lines to a file or stdout.
pub fn open_output(path: &str) -> anyhow::Result<Box<dyn Write + Send>> {
    if path == "-" {
        return Ok(Box::new(BufWriter::new(io::stdout())));
    }
    let f = File::create(Path::new(path)).with_context(|| format!("--exchanges: cannot create {path}"))?;
    Ok(Box::new(BufWriter::new(f)))
}

pub struct Sinks {
    pub metrics: Arc<Mutex<Metrics>>,
    exchanges: Option<Box<dyn Write + Send>>,
    write_failed: bool,
    /// Totals, for the summary `analyze` prints.
    pub count: u64,
    pub unmatched: u64,
    pub parse_errors: u64,
}

impl Sinks {
    pub fn new(metrics: Arc<Mutex<Metrics>>, exchanges: Option<Box<dyn Write + Send>>) -> Self {
        Self { metrics, exchanges, write_failed: false, count: 0, unmatched: 0, parse_errors: 0 }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.exchanges {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }

    fn metrics(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Observer for Sinks {
    fn exchange(&mut self, ex: Exchange) {
        self.count += 1;
        self.metrics().exchanges.with_label_values(&[method_label(&ex.method), &status_label(ex.status)]).inc();
        if let Some(w) = &mut self.exchanges {
            let line = serde_json::to_string(&ex).expect("exchange serialises");
            if writeln!(w, "{line}").is_err() && !self.write_failed {
                // Keep observing; say so once rather than per exchange.
                self.write_failed = true;
                log::error!("writing exchanges failed; further exchanges are not written");
            }
        }
    }

    fn unmatched(&mut self, side: Side) {
        self.unmatched += 1;
        self.metrics().unmatched.with_label_values(&[side.as_str()]).inc();
    }

    fn parse_error(&mut self, source: Source, reason: &'static str) {
        self.parse_errors += 1;
        self.metrics().parse_errors.with_label_values(&[source.as_str(), reason]).inc();
    }
}
