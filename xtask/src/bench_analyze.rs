//! `bench-analyze`: `rejectwatch analyze` on a generated combined log, with
//! enrichment (attribution, user agents, endpoint templates, identity; GeoIP
//! when given), timed on one core. Prints lines/s and CPU per line for the
//! same file with and without writing the exchange JSON.

use std::{
    io::{BufWriter, Write as _},
    path::Path,
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};
use rejectwatch_tests::TempDir;

#[derive(clap::Args)]
pub struct BenchAnalyzeArgs {
    /// Lines in the generated log.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Extra `rejectwatch analyze` flags (e.g. --rw-arg=--geoip-country=FILE).
    #[arg(long = "rw-arg", allow_hyphen_values = true)]
    rw_args: Vec<String>,
    /// The binary to time (e.g. target/pgo/rejectwatch); by default
    /// target/release/rejectwatch, built first.
    #[arg(long, value_name = "PATH")]
    bin: Option<std::path::PathBuf>,
}

const AGENTS: [&str; 8] = [
    "python-requests/2.32.5",
    "okhttp/4.12.0",
    "curl/8.5.0",
    "axios/1.7.2",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 14_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0.3 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Go-http-client/1.1",
    "-",
];
const STATUSES: [u16; 8] = [200, 200, 200, 401, 403, 404, 429, 200];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// A deterministic mix: 50 000 clients, templated and plain paths, the
/// reject statuses, a handful of user agents; one line per 10 ms.
fn generate(path: &Path, lines: u64) -> anyhow::Result<u64> {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for i in 0..lines {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let client = x % 50_000;
        let secs = i / 100;
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let day = 1 + (secs / 86400) % 28;
        let path = match x % 5 {
            0 => format!("/api/v1/orders/{}", x % 100_000),
            1 => format!("/api/v1/users/{}/keys?limit={}", x % 5000, x % 50),
            2 => "/api/v1/export.csv".to_string(),
            3 => format!("/files/{:08x}-4f89-11d3-9a0c-0305e82c3301", x as u32),
            _ => "/.env".to_string(),
        };
        writeln!(
            w,
            "{}.{}.{}.{} - - [{day:02}/{}/2026:{h:02}:{m:02}:{s:02} +0000] \"GET {path} HTTP/1.1\" {} {} \"-\" \"{}\"",
            10 + (client >> 16),
            (client >> 8) & 255,
            client & 255,
            1 + (x >> 40) % 250,
            MONTHS[10],
            STATUSES[(x >> 8) as usize % 8],
            x % 4000,
            AGENTS[(x >> 16) as usize % 8],
        )?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

fn children_cpu_ns() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1000;
    t(ru.ru_utime) + t(ru.ru_stime)
}

pub fn bench_analyze(args: BenchAnalyzeArgs) -> anyhow::Result<()> {
    let root = crate::bench::workspace_root();
    let bin = match args.bin {
        Some(b) => b,
        None => {
            let built =
                Command::new("cargo").args(["build", "--release", "-p", "rejectwatch"]).current_dir(&root).status()?;
            if !built.success() {
                bail!("building rejectwatch failed");
            }
            root.join("target/release/rejectwatch")
        }
    };
    let dir = TempDir::new("bench-analyze");
    let log = dir.path("access.log");
    let bytes = generate(&log, args.lines).context("generating the log")?;
    let state = dir.path("state");
    println!("bench-analyze: {} combined-log lines ({:.1} MB), one run\n", args.lines, bytes as f64 / 1e6);
    println!("{:<34} {:>10} {:>14} {:>16}", "configuration", "seconds", "lines/s", "CPU ns/line");
    let mut rates = Vec::new();
    for (name, out) in [("enrich, no output", None), ("enrich + exchange JSON", Some(dir.path("out.jsonl")))] {
        let mut cmd = Command::new(&bin);
        cmd.arg("analyze").arg(&log).args(["--state-dir", state.to_str().expect("utf-8")]).args(&args.rw_args);
        if let Some(o) = &out {
            cmd.args(["--exchanges", o.to_str().expect("utf-8")]);
        }
        let cpu0 = children_cpu_ns();
        let t0 = Instant::now();
        let o = cmd.output()?;
        let secs = t0.elapsed().as_secs_f64();
        let cpu = children_cpu_ns() - cpu0;
        if !o.status.success() {
            bail!("analyze failed: {}", String::from_utf8_lossy(&o.stderr));
        }
        let rate = args.lines as f64 / secs;
        rates.push(rate);
        println!("{name:<34} {secs:>10.2} {rate:>14.0} {:>16.0}", cpu as f64 / args.lines as f64);
    }
    println!("\nlines/s vs goal of 1 000 000: {:.2}x (no output), {:.2}x (with JSON)", rates[0] / 1e6, rates[1] / 1e6);
    Ok(())
}
