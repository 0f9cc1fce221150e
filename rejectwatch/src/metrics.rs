//! Prometheus metrics. Every label value comes from a fixed, bounded set
//! (normalised methods, three-digit statuses, static reasons): nothing an
//! attacker sends can mint a new series.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::source::ebpf::{Counters, KernelCounts};

const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];

/// The method as a label: one of the registered methods, or `OTHER`.
pub fn method_label(method: &str) -> &'static str {
    METHODS.iter().find(|m| **m == method).copied().unwrap_or("OTHER")
}

/// Registered status codes (IANA) and nginx's 444/499: each its own label.
const STATUSES: &[u16] = &[
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308, 400,
    401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423, 424, 425,
    426, 428, 429, 431, 444, 451, 499, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
];

/// The status as a label: a registered code as itself, any other as its
/// class (`5xx`), `invalid` outside 100–999, `none` when no response was
/// captured. At most 76 values, whatever a server or a log says.
pub fn status_label(status: Option<u16>) -> String {
    match status_key(status) {
        0 => "none".to_string(),
        10 => "invalid".to_string(),
        class @ 1..=9 => format!("{class}xx"),
        code => code.to_string(),
    }
}

/// Which [`status_label`] a status gets, as a number: the code itself
/// when registered, else 1–9 (its class), 10 (`invalid`) or 0 (`none`).
pub fn status_key(status: Option<u16>) -> u16 {
    match status {
        Some(s) if STATUSES.binary_search(&s).is_ok() => s,
        Some(s @ 100..=999) => s / 100,
        Some(_) => 10,
        None => 0,
    }
}

/// Endpoint templates that get their own `rejectwatch_rejects_total`
/// series; the rest are `other`.
pub const MAX_ENDPOINT_LABELS: usize = 50;
const MAX_ENDPOINT_LABEL: usize = 100;

/// Whether an endpoint template may be a label value of its own, while
/// fewer than [`MAX_ENDPOINT_LABELS`] are: only if it is part of the API
/// (`known`: configured or where requests succeed, so an attacker's random
/// paths never qualify) and looks like a path. The rest count as `other`.
pub fn may_label_endpoint(endpoint: &str, known: bool) -> bool {
    known
        && endpoint.len() <= MAX_ENDPOINT_LABEL
        && endpoint.starts_with('/')
        && endpoint.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

pub struct Metrics {
    pub registry: Registry,
    pub exchanges: IntCounterVec,
    pub unmatched: IntCounterVec,
    pub parse_errors: IntCounterVec,
    pub records: IntCounterVec,
    pub flows: IntGauge,
    /// Findings by detector and classification (both fixed sets).
    pub findings: IntCounterVec,
    /// Actors by classification.
    pub actors: IntGaugeVec,
    /// Keys held by the detectors' tables, clients included.
    pub detector_keys: IntGauge,
    pub evictions: IntCounterVec,
    /// Detection snapshots that could not be restored or written.
    pub snapshot_failures: IntCounterVec,
    /// Rejected exchanges by endpoint template (bounded, see
    /// [`may_label_endpoint`]).
    pub rejects: IntCounterVec,
    /// Blocklist entries by address family.
    pub blocklist_entries: IntGaugeVec,
    /// Seconds between a record's capture and its processing.
    pub lag: prometheus::Gauge,
    /// Connections the API turned away at `api.max_connections`.
    pub api_refused: IntCounter,
    /// Failed writes of the files kept for operators and for restarts, by
    /// file (a fixed set: see [`crate::write_errors::Kept`]).
    pub write_errors: IntCounterVec,
    kernel: KernelMetrics,
    /// The live kernel counters, read at every scrape so they are current.
    kernel_source: Option<Counters>,
}

struct KernelMetrics {
    packets: IntCounter,
    heads: IntCounter,
    continuations: IntCounter,
    statuses: IntCounter,
    ringbuf_drops: IntCounter,
    load_failures: IntCounter,
    truncated: IntCounter,
    wakeups: IntCounter,
    split_starts: IntCounter,
    split_statuses: IntCounter,
    not_http: IntCounter,
    dropped_packets: IntCounterVec,
    dropped_bytes: IntCounterVec,
    last: KernelCounts,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("unique metric");
    c
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let build = IntGaugeVec::new(Opts::new("rejectwatch_build_info", "Build information; always 1."), &["version"])
            .expect("valid metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(build)).expect("unique metric");
        let flows = IntGauge::new(
            "rejectwatch_flows",
            "TCP flows tracked by the join: a request waiting for its response, or a head still arriving.",
        )
        .expect("valid");
        registry.register(Box::new(flows.clone())).expect("unique metric");
        let actors = IntGaugeVec::new(
            Opts::new("rejectwatch_actors", "Actors in the roster, by classification."),
            &["classification"],
        )
        .expect("valid metric");
        registry.register(Box::new(actors.clone())).expect("unique metric");
        let blocklist_entries = IntGaugeVec::new(
            Opts::new("rejectwatch_blocklist_entries", "Addresses and networks on the blocklist, by family."),
            &["family"],
        )
        .expect("valid metric");
        registry.register(Box::new(blocklist_entries.clone())).expect("unique metric");
        let lag = prometheus::Gauge::new(
            "rejectwatch_pipeline_lag_seconds",
            "Age of the newest record when it was processed (capture time to join).",
        )
        .expect("valid metric");
        registry.register(Box::new(lag.clone())).expect("unique metric");
        let detector_keys =
            IntGauge::new("rejectwatch_detector_keys", "Keys held by the detectors' bounded tables.").expect("valid");
        registry.register(Box::new(detector_keys.clone())).expect("unique metric");
        Self {
            findings: counter_vec(
                r,
                "rejectwatch_findings_total",
                "Findings written, by detector and the actor's classification.",
                &["detector", "classification"],
            ),
            actors,
            detector_keys,
            evictions: counter_vec(
                r,
                "rejectwatch_evictions_total",
                "Keys evicted from a full bounded table (clients, endpoints, actors): the least recently active go first.",
                &["table"],
            ),
            snapshot_failures: counter_vec(
                r,
                "rejectwatch_snapshot_failures_total",
                "Detection snapshots discarded at start (`load`: unreadable, corrupt, another version or \
                 configuration) or not written (`save`).",
                &["stage"],
            ),
            rejects: counter_vec(
                r,
                "rejectwatch_rejects_total",
                "Rejected exchanges (the reject statuses of the config) by endpoint template; templates outside \
                 the API and beyond the label cap count as `other`.",
                &["endpoint"],
            ),
            blocklist_entries,
            lag,
            api_refused: counter(
                r,
                "rejectwatch_api_refused_connections_total",
                "Connections to the API refused (503) because api.max_connections were being served.",
            ),
            write_errors: counter_vec(
                r,
                "rejectwatch_write_errors_total",
                "Failed writes of rejectwatch's files (a full disk, a lost directory), by file: exchanges, \
                 findings, blocklist, state.",
                &["file"],
            ),
            exchanges: counter_vec(
                r,
                "rejectwatch_http_exchanges_total",
                "HTTP exchanges joined, by method and response status.",
                &["method", "status"],
            ),
            unmatched: counter_vec(
                r,
                "rejectwatch_unmatched_total",
                "Requests without a captured response (after the timeout), responses without a captured request, and requests whose response was sent but could not be read (side=unread_response).",
                &["side"],
            ),
            parse_errors: counter_vec(
                r,
                "rejectwatch_parse_errors_total",
                "Input that could not be parsed, by source and reason.",
                &["source", "reason"],
            ),
            records: counter_vec(r, "rejectwatch_records_total", "Records read from each source.", &["source"]),
            flows,
            kernel: KernelMetrics {
                packets: counter(r, "rejectwatch_kernel_packets_total", "Packets seen by the XDP program."),
                heads: counter(r, "rejectwatch_kernel_heads_total", "Request heads emitted by the kernel."),
                continuations: counter(
                    r,
                    "rejectwatch_kernel_continuations_total",
                    "Request-head continuation segments emitted by the kernel.",
                ),
                statuses: counter(
                    r,
                    "rejectwatch_kernel_statuses_total",
                    "Response status lines emitted by the kernel.",
                ),
                ringbuf_drops: counter(
                    r,
                    "rejectwatch_ringbuf_drops_total",
                    "Records lost because the ring buffer was full.",
                ),
                load_failures: counter(
                    r,
                    "rejectwatch_kernel_load_failures_total",
                    "Packet byte loads that failed in the kernel.",
                ),
                truncated: counter(
                    r,
                    "rejectwatch_kernel_truncated_total",
                    "Request heads longer than the capture length.",
                ),
                wakeups: counter(
                    r,
                    "rejectwatch_ringbuf_wakeups_total",
                    "Ring-buffer reader wakeups forced by backlog.",
                ),
                split_starts: counter(
                    r,
                    "rejectwatch_kernel_split_starts_total",
                    "Request heads whose first segment was too short to judge alone (shipped and continued).",
                ),
                split_statuses: counter(
                    r,
                    "rejectwatch_kernel_split_statuses_total",
                    "Status lines whose first segment ended before the status code (shipped and continued).",
                ),
                not_http: counter(
                    r,
                    "rejectwatch_kernel_not_http_total",
                    "Connections to a watched port whose first bytes were not an HTTP request.",
                ),
                dropped_packets: counter_vec(
                    r,
                    "rejectwatch_xdp_dropped_packets_total",
                    "Packets from blocklisted sources dropped in XDP (--enforce xdp), by address family.",
                    &["family"],
                ),
                dropped_bytes: counter_vec(
                    r,
                    "rejectwatch_xdp_dropped_bytes_total",
                    "Bytes of packets from blocklisted sources dropped in XDP, by address family.",
                    &["family"],
                ),
                last: KernelCounts::default(),
            },
            kernel_source: None,
            registry,
        }
    }

    /// Folds a fresh reading of the kernel's running totals into the
    /// counters (Prometheus counters only move forward by deltas).
    pub fn kernel(&mut self, now: KernelCounts) {
        let k = &mut self.kernel;
        let d = |a: u64, b: u64| a.saturating_sub(b);
        k.packets.inc_by(d(now.packets, k.last.packets));
        k.heads.inc_by(d(now.heads, k.last.heads));
        k.continuations.inc_by(d(now.continuations, k.last.continuations));
        k.statuses.inc_by(d(now.statuses, k.last.statuses));
        k.ringbuf_drops.inc_by(d(now.ringbuf_drops, k.last.ringbuf_drops));
        k.load_failures.inc_by(d(now.load_failures, k.last.load_failures));
        k.truncated.inc_by(d(now.truncated, k.last.truncated));
        k.wakeups.inc_by(d(now.wakeups, k.last.wakeups));
        k.split_starts.inc_by(d(now.split_starts, k.last.split_starts));
        k.split_statuses.inc_by(d(now.split_statuses, k.last.split_statuses));
        k.not_http.inc_by(d(now.not_http, k.last.not_http));
        for (i, family) in ["ipv4", "ipv6"].into_iter().enumerate() {
            k.dropped_packets.with_label_values(&[family]).inc_by(d(now.dropped[i].0, k.last.dropped[i].0));
            k.dropped_bytes.with_label_values(&[family]).inc_by(d(now.dropped[i].1, k.last.dropped[i].1));
        }
        k.last = now;
    }

    /// Reads the kernel counters at every scrape from now on.
    pub fn attach_kernel(&mut self, counters: Counters) {
        self.kernel_source = Some(counters);
        self.refresh_kernel();
    }

    pub fn refresh_kernel(&mut self) {
        let Some(src) = &self.kernel_source else { return };
        match src.read() {
            Ok(c) => self.kernel(c),
            Err(e) => log::warn!("reading kernel counters: {e:#}"),
        }
    }

    /// The text exposition format, with kernel counters read just now.
    pub fn encode(&mut self) -> String {
        self.refresh_kernel();
        use prometheus::Encoder as _;
        let mut buf = Vec::new();
        prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding cannot fail");
        String::from_utf8(buf).expect("text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_keys_name_labels_one_to_one() {
        // The sink caches series by key: one key must mean one label.
        let mut seen = std::collections::HashMap::new();
        for s in (0..=u16::MAX).map(Some).chain([None]) {
            let label = status_label(s);
            assert_eq!(seen.entry(status_key(s)).or_insert_with(|| label.clone()), &label, "{s:?}");
        }
        let labels: std::collections::HashSet<_> = seen.values().collect();
        assert_eq!(labels.len(), seen.len());
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("get"), "OTHER");
        assert_eq!(method_label("PROPFIND"), "OTHER");
        assert_eq!(method_label("\u{202e}GET"), "OTHER");
        assert_eq!(status_label(Some(404)), "404");
        assert_eq!(status_label(Some(7)), "invalid");
        assert_eq!(status_label(Some(599)), "5xx");
        assert_eq!(status_label(Some(999)), "9xx");
        assert!(STATUSES.windows(2).all(|w| w[0] < w[1]), "sorted for binary search");
        assert_eq!(status_label(None), "none");
    }
}
