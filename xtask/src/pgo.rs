//! `pgo`: a profile-guided release build of the daemon.
//!
//! Per exchange the daemon runs more code than the instruction cache
//! holds, and most of that code (signals, findings, actors) runs rarely.
//! A profile tells the compiler which paths are hot, so it lays them out
//! together and moves the rest aside. The profile comes from traffic that
//! is not the benchmark's: the seven actor models of docs/detection.md's seeds
//! over five days of an ordinary API with many users, as a capture (the
//! live path: heads parsed, joined, enriched, judged) and as an access log
//! (the offline path), each analysed once by an instrumented build.
//!
//! `--train FILE` trains on an operator's own captures or logs instead:
//! the profile is only as good as its likeness to the traffic the build
//! will see. Writes `target/pgo/rejectwatch` (and, with `--bench`,
//! `target/pgo/xtask` built with the same profile, so `bench-detect` can
//! measure the build side by side with the plain one).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use rejectwatch_tests::TempDir;

use crate::{
    cases::{SEVEN_ACTORS_DISCLOSURE, seven_actors},
    traffic::{Rng, write_log, write_pcap},
};

#[derive(clap::Args)]
pub struct PgoArgs {
    /// Also build the benchmark harness with the profile (target/pgo/xtask).
    #[arg(long)]
    bench: bool,
    /// Users of the ordinary API in the generated training traffic.
    #[arg(long, default_value_t = 20_000)]
    clients: u32,
    /// Train on these captures or access logs (your own traffic) instead
    /// of the generated traffic; `rejectwatch analyze` reads each.
    #[arg(long, value_name = "FILE")]
    train: Vec<PathBuf>,
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// The host's target triple: builds name it so that the profile flags
/// reach only the code built for it, not build scripts or the eBPF object.
fn host() -> anyhow::Result<String> {
    let v = output(Command::new("rustc").arg("-vV"))?;
    v.lines().find_map(|l| l.strip_prefix("host: ")).map(str::to_string).context("rustc -vV names no host")
}

/// `llvm-profdata` of the toolchain's own LLVM (rustup's llvm-tools).
fn profdata(host: &str) -> anyhow::Result<PathBuf> {
    let sysroot = output(Command::new("rustc").args(["--print", "sysroot"]))?;
    let p = Path::new(sysroot.trim()).join("lib/rustlib").join(host).join("bin/llvm-profdata");
    if !p.exists() {
        bail!("{} is missing: rustup component add llvm-tools (scripts/deps.sh does)", p.display());
    }
    Ok(p)
}

/// `cargo build --release` of `packages` for `host` into `dir`, with
/// `flag` added to the rustflags (encoded, so a path with spaces stays one).
fn build(root: &Path, host: &str, dir: &Path, flag: &str, packages: &[&str]) -> anyhow::Result<()> {
    let user = std::env::var("RUSTFLAGS").unwrap_or_default();
    let mut flags: Vec<&str> = user.split_whitespace().collect();
    flags.push(flag);
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root).args(["build", "--locked", "--release", "--target", host, "--target-dir"]).arg(dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    run(cmd.env_remove("RUSTFLAGS").env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f")))
}

pub fn pgo(args: PgoArgs) -> anyhow::Result<()> {
    let root = crate::bench::workspace_root();
    let host = host()?;
    let profdata = profdata(&host)?;
    let out = root.join("target/pgo");
    let raw = out.join("profiles");
    if raw.exists() {
        std::fs::remove_dir_all(&raw).with_context(|| format!("cannot empty {}", raw.display()))?;
    }

    eprintln!("pgo: instrumented build");
    build(&root, &host, &out.join("build-gen"), &format!("-Cprofile-generate={}", raw.display()), &["rejectwatch"])?;
    let instrumented = out.join("build-gen").join(&host).join("release/rejectwatch");

    let tmp = TempDir::new("pgo");
    let (inputs, marks) = if args.train.is_empty() {
        eprintln!("pgo: training on the seven actor models among {} users", args.clients);
        let mut reqs = Vec::new();
        seven_actors(&mut Rng::new(0x9e0_5eed), args.clients, &mut reqs);
        let (pcap, log) = (tmp.path("train.pcap"), tmp.path("train.log.gz"));
        write_pcap(&mut reqs, &pcap)?;
        write_log(&mut reqs, &log)?;
        // The scenario's poller goes dark after its disclosure.
        (vec![pcap, log], vec!["--mark", SEVEN_ACTORS_DISCLOSURE])
    } else {
        eprintln!("pgo: training on {} file(s) given", args.train.len());
        (args.train.clone(), vec![])
    };
    for input in &inputs {
        run(Command::new(&instrumented)
            .arg("analyze")
            .arg(input)
            .args(&marks)
            .args(["--findings", "/dev/null", "--actors", "/dev/null"])
            .stdout(std::process::Stdio::null()))?;
    }
    let merged = out.join("rejectwatch.profdata");
    run(Command::new(&profdata).arg("merge").arg("-o").arg(&merged).arg(&raw))?;

    let mut packages = vec!["rejectwatch"];
    if args.bench {
        packages.push("xtask");
    }
    eprintln!("pgo: optimised build of {}", packages.join(", "));
    build(&root, &host, &out.join("build-use"), &format!("-Cprofile-use={}", merged.display()), &packages)?;
    for p in &packages {
        let from = out.join("build-use").join(&host).join("release").join(p);
        std::fs::copy(&from, out.join(p)).with_context(|| format!("cannot copy {}", from.display()))?;
        eprintln!("pgo: wrote {}", out.join(p).display());
    }
    Ok(())
}
