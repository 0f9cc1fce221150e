//! Command-line interface: `run` (live, kernel) and `analyze` (capture
//! files). Flag errors are one line naming the flag (clap's own format).

use std::{net::SocketAddr, time::Duration};

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
    /// Read capture files (pcap, pcapng) through the same pipeline.
    Analyze(AnalyzeArgs),
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
    /// Response capture length in bytes (status line, headers, small bodies).
    #[arg(long, default_value_t = DEFAULT_RESPONSE_SNAPLEN, value_parser = clap::value_parser!(u32).range(16..=MAX_SNAPLEN as i64))]
    pub response_snaplen: u32,
    /// A request with no response after this long is reported without one.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub response_timeout: Duration,
    /// Write one JSON line per exchange to PATH (`-` for stdout).
    #[arg(long, value_name = "PATH|-")]
    pub exchanges: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interface to watch (repeatable); default: the default route's.
    #[arg(long)]
    pub iface: Vec<String>,
    /// Server TCP port to watch (repeatable); default: 80, 8080, 8000, 3000.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Vec<u16>,
    /// Address for the Prometheus /metrics endpoint.
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

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Capture files (pcap or pcapng).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<std::path::PathBuf>,
    /// Only these server ports (repeatable); default: every port, since a
    /// capture was usually taken for the service it holds.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Vec<u16>,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

impl PipelineArgs {
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
    }
}
