//! Command-line interface: `run` (live, kernel) and `analyze` (capture
//! files). Flag errors are one line naming the flag (clap's own format).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use rejectwatch_common::{DEFAULT_RESPONSE_SNAPLEN, DEFAULT_SNAPLEN, MAX_SNAPLEN};

use crate::source::ebpf::AttachMode;

/// Ports watched by `run` when none are given.
pub const DEFAULT_PORTS: [u16; 4] = [80, 8080, 8000, 3000];

#[derive(Debug, Parser)]
#[command(name = "rejectwatch", version, about = "Turns an API's reject pile into intelligence")]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach to interfaces and observe live traffic.
    Run(RunArgs),
    /// Read captures (pcap, pcapng) and access logs through the same pipeline.
    Analyze(AnalyzeArgs),
    /// Record a marker for the detectors (picked up by a running daemon).
    Mark(MarkArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MarkKind {
    /// The rejected clients' responses changed (investigation link,
    /// registration URL): who goes dark after it?
    Disclosure,
}

#[derive(Debug, Args)]
pub struct MarkArgs {
    #[arg(value_enum)]
    pub kind: MarkKind,
    /// When it happened (RFC 3339) [default: now].
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    pub at: Option<u64>,
    /// What changed, for the findings.
    #[arg(long)]
    pub note: Option<String>,
    /// State directory of the daemon [default: /var/lib/rejectwatch as root].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

fn rfc3339(s: &str) -> Result<u64, String> {
    crate::time::logtime::rfc3339(s).ok_or_else(|| format!("{s:?} is not an RFC 3339 time (e.g. 2026-11-20T10:00:00Z)"))
}

fn mark(s: &str) -> Result<crate::state::marks::Mark, String> {
    crate::state::marks::parse_flag(s)
}

fn blocklist_path(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    crate::blocklist::format::Format::from_path(&p)?;
    Ok(p)
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 30s, 5m)"))
}

/// Options shared by every input.
#[derive(Debug, Args, Clone)]
pub struct PipelineArgs {
    /// Request-head capture length in bytes.
    #[arg(long, default_value_t = DEFAULT_SNAPLEN, value_parser = clap::value_parser!(u32).range(64..=MAX_SNAPLEN as i64))]
    pub snaplen: u32,
    /// Response capture length in bytes: the status line and headers by default; more reads pipelined answers that share a segment.
    #[arg(long, default_value_t = DEFAULT_RESPONSE_SNAPLEN, value_parser = clap::value_parser!(u32).range(16..=MAX_SNAPLEN as i64))]
    pub response_snaplen: u32,
    /// A request with no response after this long is reported without one.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub response_timeout: Duration,
    /// Write one JSON line per exchange to PATH (`-` for stdout).
    #[arg(long, value_name = "PATH|-")]
    pub exchanges: Option<String>,
    /// Write one JSON line per finding to PATH (`-` for stdout).
    #[arg(long, value_name = "PATH|-")]
    pub findings: Option<String>,
    /// Keep a blocklist of threat actors in PATH, rewritten atomically when
    /// it changes; the format follows the extension: `.nft` (an `nft -f`
    /// script), `.ipset` (`ipset restore`), `.txt` (one address or CIDR per
    /// line). Repeatable.
    #[arg(long, value_name = "PATH", value_parser = blocklist_path)]
    pub blocklist: Vec<PathBuf>,
    /// Put the drop rules into `.nft` blocklists too (table inet
    /// rejectwatch, prerouting), not only the sets.
    #[arg(long)]
    pub nft_rule: bool,
    /// Never blocklist these (address or CIDR, repeatable; adds to
    /// blocklist.allowlist).
    #[arg(long, value_name = "ADDR|CIDR", value_parser = crate::config::value::parse_net)]
    pub allow: Vec<ipnet::IpNet>,
    /// TOML configuration file; the flags below override it.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// A proxy whose forwarding headers name the client (address or CIDR,
    /// repeatable).
    #[arg(long, value_name = "ADDR|CIDR", value_parser = crate::config::value::parse_net)]
    pub trusted_proxy: Vec<ipnet::IpNet>,
    /// MaxMind-DB-format country database.
    #[arg(long, value_name = "PATH")]
    pub geoip_country: Option<PathBuf>,
    /// MaxMind-DB-format ASN database, or CSV ranges `start,end,asn,org`.
    #[arg(long, value_name = "PATH")]
    pub geoip_asn: Option<PathBuf>,
    /// Prefix length that groups IPv6 clients [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=128))]
    pub ipv6_prefix: Option<u8>,
    /// State directory (identity key) [default: /var/lib/rejectwatch as root].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interface to watch (repeatable); default: the default route's.
    #[arg(long)]
    pub iface: Vec<String>,
    /// Server TCP port to watch (repeatable); default: 80, 8080, 8000, 3000.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Vec<u16>,
    /// Address for /metrics, the API and the blocklist feeds; beyond
    /// loopback it needs api.token in the config.
    #[arg(long, default_value = "127.0.0.1:9617")]
    pub listen: SocketAddr,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    pub xdp_mode: AttachMode,
    /// Ring-buffer size in bytes (a power of two, multiple of the page size).
    #[arg(long, default_value_t = 8 << 20, value_parser = ringbuf_size)]
    pub ringbuf_size: u32,
    /// Unread ring-buffer bytes at which the kernel wakes the reader; below
    /// it records wait for the drain timer (0: the kernel's default policy,
    /// a wakeup for nearly every record, which costs microseconds each).
    #[arg(long, value_name = "BYTES")]
    pub wakeup_bytes: Option<u64>,
    /// How often the ring buffer is drained when the kernel does not wake us.
    #[arg(long, default_value = "5ms", value_parser = duration)]
    pub drain_interval: Duration,
    /// Enforce the blocklist: `xdp` drops listed sources' packets in the
    /// XDP program, before the stack sees them (overrides enforce.mode).
    #[arg(long, value_enum, value_name = "MODE")]
    pub enforce: Option<crate::enforce::Mode>,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

fn ringbuf_size(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|_| format!("{s:?} is not a byte count"))?;
    if n < 4096 || !n.is_power_of_two() {
        return Err(format!("{n} is not a power of two of at least 4096"));
    }
    Ok(n)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// pcap/pcapng by magic number, else an access log detected by its
    /// first readable lines.
    Auto,
    Pcap,
    Combined,
    Common,
    /// JSON lines with the config's `json_log` fields.
    Json,
    /// Kubernetes ingress-nginx's default format.
    IngressNginx,
    /// Traefik's access log, JSON or CLF.
    Traefik,
    /// Caddy's JSON access log.
    Caddy,
    /// Envoy's default text format, or JSON with Istio's keys.
    Envoy,
    /// HAProxy's `option httplog`.
    Haproxy,
    /// AWS Application Load Balancer access logs.
    Alb,
}

impl InputFormat {
    /// The access-log format this names, if it names one.
    pub fn log_format(self) -> Option<crate::source::logformat::LogFormat> {
        use crate::source::logformat::LogFormat as L;
        Some(match self {
            Self::Auto | Self::Pcap => return None,
            Self::Combined => L::Combined,
            Self::Common => L::Common,
            Self::Json => L::Json,
            Self::IngressNginx => L::IngressNginx,
            Self::Traefik => L::Traefik,
            Self::Caddy => L::Caddy,
            Self::Envoy => L::Envoy,
            Self::Haproxy => L::Haproxy,
            Self::Alb => L::Alb,
        })
    }
}

/// Where `analyze` counts a blocklist entry's ttl from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TtlFrom {
    /// The threat's last request, as the live daemon does: the list is the
    /// one the daemon would have held at the last record.
    LastRecord,
    /// The time of this run: every threat in the input is listed.
    Now,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Captures (pcap, pcapng) or access logs (combined, common, JSON
    /// lines, and the formats of `--format`; gzip or plain; `-` for stdin). Captures are read as one, in
    /// packet-time order, and logs merged in time order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<std::path::PathBuf>,
    /// Input format.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    pub format: InputFormat,
    /// Only these server ports (repeatable); default: every port, since a
    /// capture was usually taken for the service it holds.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Vec<u16>,
    /// Write the actor roster (JSON) to PATH at the end.
    #[arg(long, value_name = "PATH")]
    pub actors: Option<PathBuf>,
    /// Write the prospects to contact (CSV) to PATH at the end.
    #[arg(long, value_name = "PATH")]
    pub prospects: Option<PathBuf>,
    /// Write the metrics at the end to PATH in the Prometheus text format
    /// (for node_exporter's textfile collector).
    #[arg(long, value_name = "PATH")]
    pub metrics: Option<PathBuf>,
    /// Write the report (one self-contained HTML page: verdict, timeline,
    /// actors, prospects, misconfigurations, endpoints) to PATH at the end.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Write the threat actors as a STIX 2.1 bundle (JSON) to PATH at the
    /// end, for OpenCTI or MISP; marked with `stix.tlp` from the config.
    #[arg(long, value_name = "PATH")]
    pub stix: Option<PathBuf>,
    /// A marker, e.g. `disclosure=2026-11-20T10:00:00Z` (repeatable).
    #[arg(long, value_name = "KIND=TIME", value_parser = mark)]
    pub mark: Vec<crate::state::marks::Mark>,
    /// Continue from the detection snapshot in DIR (`detect.snapshot`, if
    /// there is one) and write it back there at the end: a replay in
    /// parts, each resuming where the last stopped. Not a running
    /// daemon's state directory.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Where the blocklist's ttl counts from: each threat's last request
    /// (so threats quiet for longer than the ttl by the last record are
    /// left out), or now, listing every threat of the input.
    #[arg(long, value_enum, value_name = "FROM", default_value_t = TtlFrom::LastRecord)]
    pub blocklist_ttl_from: TtlFrom,
    /// Threads that parse and enrich access-log lines and run the
    /// detectors' payload searches (judging stays on one, in input order:
    /// the results do not depend on it); default: the available cores.
    /// Captures are read on one thread.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

impl PipelineArgs {
    /// The config file (if any) with these flags applied over it.
    pub fn config(&self) -> anyhow::Result<crate::config::Config> {
        let mut cfg = match &self.config {
            Some(p) => crate::config::Config::load(p)?,
            None => crate::config::Config::default(),
        };
        cfg.trusted_proxies.extend(self.trusted_proxy.iter().copied());
        if let Some(p) = &self.geoip_country {
            cfg.geoip.country = Some(p.clone());
        }
        if let Some(p) = &self.geoip_asn {
            cfg.geoip.asn = Some(p.clone());
        }
        if let Some(n) = self.ipv6_prefix {
            cfg.ipv6_prefix = n;
        }
        if let Some(d) = &self.state_dir {
            cfg.state_dir = Some(d.clone());
        }
        cfg.blocklist.paths.extend(self.blocklist.iter().cloned());
        cfg.blocklist.allowlist.extend(self.allow.iter().copied());
        cfg.blocklist.nft_rule |= self.nft_rule;
        cfg.validate().map_err(anyhow::Error::msg)?;
        Ok(cfg)
    }

    pub fn join_config(&self) -> crate::join::JoinConfig {
        crate::join::JoinConfig { snaplen: self.snaplen, response_timeout: self.response_timeout, ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_errors_name_the_flag() {
        let e = Cli::try_parse_from(["rejectwatch", "run", "--snaplen", "99999"]).unwrap_err().to_string();
        assert!(e.contains("--snaplen"), "{e}");
        let e = Cli::try_parse_from(["rejectwatch", "run", "--response-timeout", "soon"]).unwrap_err().to_string();
        assert!(e.contains("--response-timeout"), "{e}");
        let e = Cli::try_parse_from(["rejectwatch", "run", "--ringbuf-size", "5000"]).unwrap_err().to_string();
        assert!(e.contains("--ringbuf-size"), "{e}");
        assert!(Cli::try_parse_from(["rejectwatch", "analyze"]).is_err());
        let ok = Cli::try_parse_from(["rejectwatch", "run", "--iface", "lo", "--port", "80", "--exchanges", "-"]);
        assert!(ok.is_ok());
        let e = Cli::try_parse_from(["rejectwatch", "analyze", "--trusted-proxy", "10.0.0.300/8", "x"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--trusted-proxy"), "{e}");
        let ok = Cli::try_parse_from(["rejectwatch", "analyze", "--trusted-proxy", "10.0.0.7", "--allow", "::1", "x"]);
        assert!(ok.is_ok(), "a plain address is a /32 or /128: {:?}", ok.err());
        let e = Cli::try_parse_from(["rejectwatch", "analyze", "--ipv6-prefix", "129", "x"]).unwrap_err().to_string();
        assert!(e.contains("--ipv6-prefix"), "{e}");
        let e =
            Cli::try_parse_from(["rejectwatch", "analyze", "--blocklist", "/tmp/b.json", "x"]).unwrap_err().to_string();
        assert!(e.contains("--blocklist") && e.contains(".nft, .ipset or .txt"), "{e}");
        let e = Cli::try_parse_from(["rejectwatch", "analyze", "--blocklist-ttl-from", "then", "x"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--blocklist-ttl-from") && e.contains("last-record"), "{e}");
        let ok = Cli::try_parse_from(["rejectwatch", "analyze", "--blocklist-ttl-from", "now", "x"]);
        assert!(ok.is_ok_and(|c| matches!(c.cmd, Command::Analyze(a) if a.blocklist_ttl_from == TtlFrom::Now)));
    }
}
