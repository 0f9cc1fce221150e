//! The observer both `run` and `analyze` hand their sources: every
//! exchange is enriched, then counted and written by the sinks.

use crate::{
    enrich::Enricher,
    exchange::Exchange,
    observe::{Observer, Side, Source},
    sink::Sinks,
};

pub struct Pipeline {
    pub enricher: Enricher,
    pub sinks: Sinks,
}

impl Observer for Pipeline {
    fn exchange(&mut self, mut ex: Exchange) {
        self.enricher.enrich(&mut ex);
        self.sinks.exchange(ex);
    }
    fn unmatched(&mut self, side: Side) {
        self.sinks.unmatched(side);
    }
    fn parse_error(&mut self, source: Source, reason: &'static str) {
        self.sinks.parse_error(source, reason);
    }
}
