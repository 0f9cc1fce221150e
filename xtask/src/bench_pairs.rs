//! `bench-pairs`: this build's `bench-detect` against another build's, in
//! interleaved pairs on one pinned core, reported as the median of the
//! pairs' ratios. On a shared VM the same binary runs 10–20% faster or
//! slower from one hour to the next, more than most changes move it, so
//! only runs side by side compare two builds; the median of many pairs
//! is what this project's notes and README quote as a change's effect.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::bench::median;

#[derive(clap::Args)]
pub struct BenchPairsArgs {
    /// The other build's xtask binary, for example one built in a
    /// worktree of the commit before: `git worktree add /tmp/base HEAD~1
    /// && (cd /tmp/base && cargo build --release -p xtask)`, then
    /// `--baseline /tmp/base/target/release/xtask`.
    #[arg(long, value_name = "XTASK")]
    baseline: PathBuf,
    /// Pairs to run (a pair is two runs of the mix: ~15 s here).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pairs: u32,
    /// The CPU that every run is pinned to.
    #[arg(long, default_value_t = 1)]
    core: usize,
    /// Arguments for both builds' `bench-detect --only all`, after `--`:
    /// `-- --detector scraping`, `-- --mix-clients 4000000 --exchanges
    /// 4000000`, `-- --scenario 20000`.
    #[arg(last = true, allow_hyphen_values = true)]
    bench_args: Vec<String>,
}

/// What one run of `bench-detect --only all` reports.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Timed {
    ns: f64,
    findings: u64,
}

/// The timed configuration's line of `bench-detect --only all` (`  + 14
/// detectors: ... (1754 ns, 4.74 allocations each), 77680 findings`, or
/// `  + NAME alone: ...`). Read from the text, not a flag of its own, so
/// that a baseline built before this command existed can be compared.
fn timed(report: &str) -> Option<Timed> {
    let line = report.lines().find(|l| l.trim_start().starts_with("+ ") && l.ends_with(" findings"))?;
    let ns = line.split_once('(')?.1.split_once(" ns")?.0.trim().parse().ok()?;
    let findings = line.rsplit_once(", ")?.1.strip_suffix(" findings")?.trim().parse().ok()?;
    Some(Timed { ns, findings })
}

fn run(xtask: &Path, args: &[String]) -> anyhow::Result<Timed> {
    let out = Command::new(xtask)
        .args(["bench-detect", "--only", "all"])
        .args(args)
        .output()
        .with_context(|| format!("running {}", xtask.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("{} bench-detect failed ({}): {}", xtask.display(), out.status, String::from_utf8_lossy(&out.stderr));
    }
    timed(&text).with_context(|| format!("{}: no timed line in its report:\n{text}", xtask.display()))
}

/// Pins this process, and so every run it starts, to one CPU.
fn pin(core: usize) -> anyhow::Result<()> {
    anyhow::ensure!(core < libc::CPU_SETSIZE as usize, "--core {core}: no such CPU");
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside
    // it (the index was checked above), and sched_setaffinity only reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        bail!("--core {core}: not a CPU this process may run on ({cpus} online): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

pub fn bench_pairs(args: BenchPairsArgs) -> anyhow::Result<()> {
    // This build is one of the two timed.
    if crate::bench::ran_as_release("bench-pairs")? {
        return Ok(());
    }
    anyhow::ensure!(args.baseline.is_file(), "--baseline {}: no such file", args.baseline.display());
    let this = std::env::current_exe().context("this build's own path")?;
    pin(args.core)?;
    let command = ["bench-detect", "--only", "all"].into_iter().chain(args.bench_args.iter().map(String::as_str));
    println!(
        "bench-pairs: {}, {} pair{} on CPU {}, each pair's order the other way round from the last",
        command.collect::<Vec<_>>().join(" "),
        args.pairs,
        if args.pairs == 1 { "" } else { "s" },
        args.core
    );
    let (mut ratios, mut ours, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    let mut findings_differ = None;
    for i in 0..args.pairs {
        // Alternating which goes first: a drift within a pair then favours
        // neither build over the whole series.
        let (a, b) = if i % 2 == 0 {
            let a = run(&this, &args.bench_args)?;
            (a, run(&args.baseline, &args.bench_args)?)
        } else {
            let b = run(&args.baseline, &args.bench_args)?;
            (run(&this, &args.bench_args)?, b)
        };
        let ratio = a.ns / b.ns;
        println!("  pair {:>2}: this build {:>6.0} ns, baseline {:>6.0} ns: {ratio:.3}x", i + 1, a.ns, b.ns);
        if a.findings != b.findings {
            findings_differ = Some((a.findings, b.findings));
        }
        ratios.push(ratio);
        ours.push(a.ns);
        theirs.push(b.ns);
    }
    let (lo, hi) = ratios.iter().fold((f64::MAX, f64::MIN), |(l, h), &r| (l.min(r), h.max(r)));
    println!(
        "  this build takes {:.2}x the baseline's time at the median of {} pairs' ratios ({lo:.2}-{hi:.2}x); median times {:.0} and {:.0} ns",
        median(ratios),
        args.pairs,
        median(ours),
        median(theirs)
    );
    match findings_differ {
        None => println!("  findings: the same in every pair"),
        Some((a, b)) => println!("  findings DIFFER: this build {a}, baseline {b} (not a change of speed alone)"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timed_line_is_read_from_either_report() {
        let all = "bench-detect: 3000000 exchanges from 100000 clients, one core (thread CPU time of the processing only)\n  \
                   + 14 detectors:                          569971 exchanges/s (1754 ns, 4.74 allocations each), 77680 findings\n  \
                   1000 distinct clients: 1000 tracked, RSS grew 4.3 MiB\n";
        assert_eq!(timed(all), Some(Timed { ns: 1754.0, findings: 77680 }));
        let alone = "  + scraping alone:                        812345 exchanges/s (1231 ns, 3.80 allocations each), 0 findings\n";
        assert_eq!(timed(alone), Some(Timed { ns: 1231.0, findings: 0 }));
        assert_eq!(
            timed("  + engine (clients, actors, metrics): 1037807 exchanges/s (964 ns, 3.76 allocations each)\n"),
            None
        );
        assert_eq!(timed(""), None);
    }
}
