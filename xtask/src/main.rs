//! `cargo xtask`: the project's harness for what needs root, namespaces and
//! load rather than unit tests.
//!
//! `bench-kernel` measures, in one run and side by side: the average cost
//! per program run of rejectwatch's XDP and TC programs against no-op
//! programs attached at the same places (the floor) and against look-only
//! programs (walk to TCP, read the first payload bytes, nothing else), with
//! the kernel's default ring-buffer wakeups and with rejectwatch's batched
//! wakeups; ring-buffer drops; and wrk's requests/s against nginx in a
//! namespace with nothing attached, each floor, and rejectwatch.

mod bench;
mod bench_analyze;
mod bench_detect;
mod bench_pairs;
mod bench_snapshot;
mod cases;
mod cases_bursts;
mod cases_probes;
mod pgo;
mod traffic;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Benchmark the kernel path (needs root, nginx and wrk: scripts/deps.sh).
    BenchKernel(bench::BenchArgs),
    /// Benchmark `analyze` with enrichment on a generated combined log.
    BenchAnalyze(bench_analyze::BenchAnalyzeArgs),
    /// Benchmark join + enrichment + detectors on one core, and memory per client.
    BenchDetect(bench_detect::BenchDetectArgs),
    /// This build's bench-detect against another build's, in interleaved pairs on one core.
    BenchPairs(bench_pairs::BenchPairsArgs),
    /// Size and time of the detection snapshot of a full engine.
    BenchSnapshot(bench_snapshot::BenchSnapshotArgs),
    /// Write the golden detector cases' inputs (tests/cases).
    GenCases(cases::GenCasesArgs),
    /// Profile-guided release build of the daemon (target/pgo/rejectwatch).
    Pgo(pgo::PgoArgs),
    /// Internal: attach a floor's programs and wait to be killed.
    #[command(hide = true)]
    Floor {
        #[arg(long)]
        iface: Vec<String>,
        /// The look-only floor instead of the no-op one.
        #[arg(long)]
        look: bool,
    },
}

fn main() -> anyhow::Result<()> {
    // As the daemon runs: the benches measure the core as it is shipped.
    rejectwatch::alloc::tune();
    match Cli::parse().cmd {
        Cmd::BenchKernel(args) => bench::bench_kernel(args),
        Cmd::BenchAnalyze(args) => bench_analyze::bench_analyze(args),
        Cmd::BenchDetect(args) => bench_detect::bench_detect(args),
        Cmd::BenchPairs(args) => bench_pairs::bench_pairs(args),
        Cmd::BenchSnapshot(args) => bench_snapshot::bench_snapshot(args),
        Cmd::GenCases(args) => cases::gen_cases(args),
        Cmd::Pgo(args) => pgo::pgo(args),
        Cmd::Floor { iface, look } => bench::hold_floor(&iface, look),
    }
}
