//! The seam between the pure core and its sinks: the core reports what it
//! finds through an [`Observer`], and sinks (metrics, JSON lines, tests)
//! implement it.

use crate::exchange::Exchange;

/// Where a record came from; a fixed set, used as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Kernel,
    Pcap,
    Log,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Pcap => "pcap",
            Self::Log => "log",
        }
    }
}

/// Which half of an exchange is missing its other half.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// A request that got no captured response before its timeout.
    Request,
    /// A response with no captured request to answer.
    Response,
    /// A request whose answer was sent (its place in the server's byte
    /// stream is known) but could not be read: lost, split before the
    /// status, or malformed. It is reported with no status.
    Unread,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Response => "response",
            Self::Unread => "unread_response",
        }
    }
}

pub trait Observer {
    fn exchange(&mut self, ex: Exchange);
    fn unmatched(&mut self, side: Side);
    /// `reason` is one of a fixed set of static strings, never input text.
    fn parse_error(&mut self, source: Source, reason: &'static str);
}

/// Collects everything; for tests and for `analyze` sorting.
#[derive(Debug, Default)]
pub struct Collect {
    pub exchanges: Vec<Exchange>,
    pub unmatched_requests: u64,
    pub unmatched_responses: u64,
    pub unread_responses: u64,
    pub parse_errors: Vec<(Source, &'static str)>,
}

impl Observer for Collect {
    fn exchange(&mut self, ex: Exchange) {
        self.exchanges.push(ex);
    }
    fn unmatched(&mut self, side: Side) {
        match side {
            Side::Request => self.unmatched_requests += 1,
            Side::Response => self.unmatched_responses += 1,
            Side::Unread => self.unread_responses += 1,
        }
    }
    fn parse_error(&mut self, source: Source, reason: &'static str) {
        self.parse_errors.push((source, reason));
    }
}
