//! The kernel benchmark (see the crate doc). Figures come from one run, so
//! ratios compare like with like on the same machine at the same time.

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use rejectwatch::source::ebpf::{self, AttachMode, Floor};
use rejectwatch_tests::{
    Daemon, NGINX_LOCATIONS, Netns, NetnsOptions, Proc, SRV_V4, TempDir, metric_sum, nginx, wait_listening,
};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Length of each wrk run.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Rounds; each round runs every configuration once, interleaved.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// wrk connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Path requested: an nginx location answering 401 by default (the
    /// reject pile, and the programs' worst case: every packet carries a
    /// head or a status line); `/data.json` is a 16 KiB JSON document
    /// answered 200, a typical API response spanning several segments.
    #[arg(long, default_value = "/auth")]
    path: String,
    /// Extra `rejectwatch run` flags for the measured configurations (to
    /// compare tunings, e.g. --rw-arg=--ringbuf-size=1048576).
    #[arg(long = "rw-arg", allow_hyphen_values = true)]
    rw_args: Vec<String>,
    /// Another build's `rejectwatch` binary, measured beside this one in
    /// every round (the programs' cost before and after a change).
    #[arg(long, value_name = "BIN")]
    baseline: Option<PathBuf>,
}

/// The no-op floor's programs, or the look-only floor's.
fn floor_programs(look: bool) -> (&'static str, &'static str) {
    if look {
        (ebpf::LOOK_XDP_PROGRAM, ebpf::LOOK_TC_PROGRAM)
    } else {
        (ebpf::FLOOR_XDP_PROGRAM, ebpf::FLOOR_TC_PROGRAM)
    }
}

/// Keeps a floor attached until this process is killed.
pub fn hold_floor(ifaces: &[String], look: bool) -> anyhow::Result<()> {
    let _floor = Floor::attach(ifaces, AttachMode::Auto, floor_programs(look))?;
    println!("floor attached");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[derive(Default, Clone, Copy)]
struct Sample {
    rps: f64,
    requests: u64,
    xdp_ns: u64,
    xdp_runs: u64,
    tc_ns: u64,
    tc_runs: u64,
    drops: u64,
    exchanges: u64,
    wakeups: u64,
    /// The daemon's CPU time during the load (ns).
    cpu_ns: u64,
    /// Requests wrk completed while run times were accounted.
    stats_requests: u64,
}

impl Sample {
    fn xdp_avg(&self) -> f64 {
        self.xdp_ns as f64 / self.xdp_runs.max(1) as f64
    }
    fn tc_avg(&self) -> f64 {
        self.tc_ns as f64 / self.tc_runs.max(1) as f64
    }
    fn add(&mut self, o: &Sample) {
        self.rps += o.rps;
        self.requests += o.requests;
        self.xdp_ns += o.xdp_ns;
        self.xdp_runs += o.xdp_runs;
        self.tc_ns += o.tc_ns;
        self.tc_runs += o.tc_runs;
        self.drops += o.drops;
        self.exchanges += o.exchanges;
        self.wakeups += o.wakeups;
        self.cpu_ns += o.cpu_ns;
        self.stats_requests += o.stats_requests;
    }
    /// XDP and TC run time per exchange (each request is one exchange).
    fn kernel_ns_per_exchange(&self) -> f64 {
        (self.xdp_ns + self.tc_ns) as f64 / self.stats_requests.max(1) as f64
    }
    fn cpu_per_exchange_us(&self) -> f64 {
        self.cpu_ns as f64 / 1000.0 / self.exchanges.max(1) as f64
    }
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

/// The median of `v` (of an even count, the mean of the middle two).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// For a bench that times code in its own process: `cargo xtask` builds
/// it without optimisation, whose figures (eight times the instructions)
/// mean nothing. In a debug build, runs the same command as a release
/// build and returns true (done); in a release build, returns false.
pub fn ran_as_release(what: &str) -> anyhow::Result<bool> {
    if !cfg!(debug_assertions) {
        return Ok(false);
    }
    eprintln!("{what}: this is a debug build; running the release build instead");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["run", "--quiet", "--release", "--package", "xtask", "--"])
        .args(std::env::args_os().skip(1))
        .current_dir(workspace_root())
        .status()
        .context("running the release build of xtask")?;
    anyhow::ensure!(status.success(), "the release build of {what} failed ({status})");
    Ok(true)
}

/// Runs wrk from the client namespace; returns (requests/s, requests).
fn wrk(net: &Netns, args: &BenchArgs) -> anyhow::Result<(f64, u64)> {
    let url = format!("http://{SRV_V4}{}", args.path);
    let secs = format!("{}s", args.duration.as_secs().max(1));
    let out = net
        .exec(&net.cli, &["wrk", "-t2", &format!("-c{}", args.connections), &format!("-d{secs}"), &url])
        .output()
        .context("run wrk (scripts/deps.sh installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output:\n{text}"))?;
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").map(|(n, _)| n.trim().to_string()))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok((rps, requests))
}

/// Measures a configuration: requests/s with BPF stats off (the kernel's
/// run-time accounting taxes every program run, so it must not be on while
/// throughput is measured), then ns per program run from a second wrk run
/// with stats on.
fn measure(net: &Netns, args: &BenchArgs, xdp: &str, tc: &str) -> anyhow::Result<Sample> {
    let (rps, requests) = wrk(net, args)?;
    let stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).context("enable BPF stats")?;
    let (x0, xr0) = ebpf::program_run_stats(xdp);
    let (t0, tr0) = ebpf::program_run_stats(tc);
    let (_, stats_requests) = wrk(net, args)?;
    let (x1, xr1) = ebpf::program_run_stats(xdp);
    let (t1, tr1) = ebpf::program_run_stats(tc);
    drop(stats);
    Ok(Sample {
        rps,
        requests,
        xdp_ns: x1 - x0,
        xdp_runs: xr1 - xr0,
        tc_ns: t1 - t0,
        tc_runs: tr1 - tr0,
        stats_requests,
        ..Default::default()
    })
}

fn with_rejectwatch(bin: &str, net: &Netns, args: &BenchArgs, extra: &[&str]) -> anyhow::Result<Sample> {
    with_rejectwatch_state(bin, net, args, extra, None)
}

/// A blocklist state file listing `nets` for an hour from now.
fn state_listing(nets: impl Iterator<Item = String>) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let entries: Vec<String> = nets
        .map(|n| {
            format!(
                "{{\"net\":\"{n}\",\"expires\":{},\"listed\":{now},\"seen\":{now},\"offences\":1,\"actor\":\"a-bench\"}}",
                now + 3600
            )
        })
        .collect();
    format!("{{\"version\":1,\"entries\":[{}],\"past\":[]}}", entries.join(","))
}

/// Like [`with_rejectwatch`], with a blocklist state restored at start.
fn with_rejectwatch_state(
    bin: &str,
    net: &Netns,
    args: &BenchArgs,
    extra: &[&str],
    state: Option<&str>,
) -> anyhow::Result<Sample> {
    let dir = TempDir::new("bench-rw");
    if let Some(text) = state {
        std::fs::create_dir_all(dir.path("state"))?;
        std::fs::write(dir.path("state").join("blocklist.json"), text)?;
    }
    let mut run_args = vec!["--iface", net.srv_if.as_str()];
    if !args.rw_args.iter().any(|a| a.starts_with("--port")) {
        run_args.extend(["--port", "80"]);
    }
    run_args.extend(args.rw_args.iter().map(String::as_str));
    run_args.extend_from_slice(extra);
    // As the service unit runs it: metrics, findings and blocklists, no
    // exchange log (that is opt-in, `--exchanges`, and costs ~1.4 µs an
    // exchange of JSON).
    let daemon = Daemon::start_deployed(bin, net, &net.srv, &dir, &run_args);
    let before = daemon.metrics();
    let cpu0 = daemon.cpu_time();
    let mut s = measure(net, args, ebpf::XDP_PROGRAM, ebpf::TC_PROGRAM)?;
    std::thread::sleep(Duration::from_millis(300)); // let the last drain land
    s.cpu_ns = (daemon.cpu_time() - cpu0).as_nanos() as u64;
    let after = daemon.metrics();
    let delta = |name: &str| metric_sum(&after, name).saturating_sub(metric_sum(&before, name));
    s.drops = delta("rejectwatch_ringbuf_drops_total");
    s.exchanges = delta("rejectwatch_http_exchanges_total");
    s.wakeups = delta("rejectwatch_ringbuf_wakeups_total");
    drop(daemon);
    Ok(s)
}

fn with_floor(net: &Netns, args: &BenchArgs, look: bool) -> anyhow::Result<Sample> {
    let me = std::env::current_exe()?;
    let mut argv = vec![me.to_str().expect("utf-8"), "floor", "--iface", &net.srv_if];
    if look {
        argv.push("--look");
    }
    let mut child = net.exec(&net.srv, &argv).stdout(Stdio::piped()).spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line)?;
    if !line.contains("attached") {
        bail!("floor programs did not attach");
    }
    let guard = Proc { child, name: "floor" };
    let (xdp, tc) = floor_programs(look);
    let s = measure(net, args, xdp, tc);
    drop(guard);
    s
}

/// What a UDP flood from one listed source came to: packets a second
/// sent, and dropped by rejectwatch's XDP program; then the same sender
/// against an nftables rule dropping that source in the raw prerouting
/// hook (what the `.nft` blocklist with `--nft-rule` does).
struct Flood {
    xdp_sent: f64,
    xdp_dropped: f64,
    nft_sent: f64,
    nft_dropped: f64,
}

const FLOODER: &str = "10.200.0.9";

/// Sends 64-byte UDP datagrams from FLOODER for `d`; returns how many.
fn flood_from(net: &Netns, d: Duration) -> u64 {
    Netns::within(&net.cli, move || {
        let s = std::net::UdpSocket::bind(format!("{FLOODER}:0")).expect("bind the flooder");
        s.connect(format!("{SRV_V4}:9")).expect("connect");
        let end = std::time::Instant::now() + d;
        let (payload, mut sent) = ([0u8; 64], 0u64);
        while std::time::Instant::now() < end {
            for _ in 0..256 {
                sent += u64::from(s.send(&payload).is_ok());
            }
        }
        sent
    })
}

fn flood(net: &Netns, bin: &str, d: Duration) -> anyhow::Result<Flood> {
    rejectwatch_tests::sh(&["ip", "-n", &net.cli, "addr", "add", &format!("{FLOODER}/24"), "dev", &net.cli_if]);
    let secs = d.as_secs_f64();
    let dir = TempDir::new("bench-flood");
    std::fs::create_dir_all(dir.path("state"))?;
    std::fs::write(dir.path("state").join("blocklist.json"), state_listing([format!("{FLOODER}/32")].into_iter()))?;
    let config = dir.path("rejectwatch.toml");
    std::fs::write(&config, "[blocklist]\nblock_private = true\n")?;
    let args =
        ["--iface", &net.srv_if, "--port", "80", "--enforce", "xdp", "--config", config.to_str().expect("utf-8")];
    let daemon = Daemon::start_deployed(bin, net, &net.srv, &dir, &args);
    let listen = daemon.listen;
    let start = std::time::Instant::now();
    loop {
        let (_, body) = Netns::within(&net.srv, move || {
            rejectwatch_tests::http_request(listen, "GET", "/api/v1/enforced", &[], "")
        });
        if body.contains("\"count\":1") {
            break;
        }
        anyhow::ensure!(start.elapsed() < Duration::from_secs(10), "the flooder was not enforced: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let dropped = |d: &Daemon| metric_sum(&d.metrics(), "rejectwatch_xdp_dropped_packets_total");
    let before = dropped(&daemon);
    let xdp_sent = flood_from(net, d);
    let xdp_dropped = dropped(&daemon) - before;
    drop(daemon);

    let rules = format!(
        "table inet rwbench {{\n  chain pre {{\n    type filter hook prerouting priority raw; policy accept;\n    \
         ip saddr {FLOODER} counter drop\n  }}\n}}\n"
    );
    let script = dir.path("flood.nft");
    std::fs::write(&script, rules)?;
    let out = net.exec(&net.srv, &["nft", "-f", script.to_str().expect("utf-8")]).output()?;
    anyhow::ensure!(out.status.success(), "nft -f: {}", String::from_utf8_lossy(&out.stderr));
    let nft_sent = flood_from(net, d);
    let listing = net.exec(&net.srv, &["nft", "list", "chain", "inet", "rwbench", "pre"]).output()?;
    let text = String::from_utf8_lossy(&listing.stdout);
    let nft_dropped: u64 = text
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no packet counter in {text}"))?;
    let _ = net.exec(&net.srv, &["nft", "delete", "table", "inet", "rwbench"]).output();
    Ok(Flood {
        xdp_sent: xdp_sent as f64 / secs,
        xdp_dropped: xdp_dropped as f64 / secs,
        nft_sent: nft_sent as f64 / secs,
        nft_dropped: nft_dropped as f64 / secs,
    })
}

pub fn bench_kernel(args: BenchArgs) -> anyhow::Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench-kernel needs root (network namespaces, eBPF)");
    }
    let root = workspace_root();
    let status = Command::new("cargo")
        .args(["build", "--release", "-p", "rejectwatch"])
        .current_dir(&root)
        .status()
        .context("cargo build")?;
    if !status.success() {
        bail!("building rejectwatch failed");
    }
    let bin = root.join("target/release/rejectwatch").to_string_lossy().into_owned();

    let net = Netns::new(NetnsOptions { mtu: 1500, segment_on_client: false });
    let dir = TempDir::new("bench");
    let _nginx = nginx(
        &net,
        &net.srv,
        &dir,
        &format!("server {{ listen {SRV_V4}:80 reuseport; access_log off; {NGINX_LOCATIONS} }}"),
    );
    wait_listening(&net.cli, format!("{SRV_V4}:80").parse()?);
    let item = r#"{"id":12345,"name":"widget","price":19.99,"tags":["a","b"]},"#;
    let doc = format!("[{}{{}}]\n", item.repeat(16 * 1024 / item.len()));
    std::fs::write(dir.path("www/data.json"), doc).context("write data.json")?;

    // The first seconds of load on a fresh nginx run slow; not a config's fault.
    wrk(&net, &args)?;
    let baseline = args.baseline.as_ref().map(|p| p.to_string_lossy().into_owned());
    if let Some(b) = &baseline {
        anyhow::ensure!(std::path::Path::new(b).is_file(), "--baseline: no such file: {b}");
    }
    let names = [
        "nothing attached",
        "no-op floor",
        "look-only floor",
        "rejectwatch, default wakeups",
        "rejectwatch",
        "baseline",
        "rejectwatch --enforce xdp",
    ];
    let mut totals = [Sample::default(); 7];
    let mut rps: [Vec<f64>; 7] = Default::default();
    // Enforcement's lookup on traffic it does not block: ten thousand
    // other addresses and networks listed.
    let unrelated = state_listing(
        (0..5_000u32)
            .map(|i| format!("{}/32", std::net::Ipv4Addr::from(0x6440_0000 + i)))
            .chain((0..5_000u32).map(|i| format!("{}/24", std::net::Ipv4Addr::from(0x6480_0000 + (i << 8))))),
    );
    for round in 1..=args.rounds {
        let samples = [
            measure(&net, &args, "-", "-")?,
            with_floor(&net, &args, false)?,
            with_floor(&net, &args, true)?,
            with_rejectwatch(&bin, &net, &args, &["--wakeup-bytes", "0"])?,
            with_rejectwatch(&bin, &net, &args, &[])?,
            match &baseline {
                Some(b) => with_rejectwatch(b, &net, &args, &[])?,
                None => Sample::default(),
            },
            with_rejectwatch_state(&bin, &net, &args, &["--enforce", "xdp"], Some(&unrelated))?,
        ];
        eprintln!("round {round}:");
        for (n, s) in names.iter().zip(&samples).filter(|(_, s)| s.rps > 0.0) {
            eprintln!(
                "  {n:<30} {:>10.0} req/s  xdp {:>6.1} ns  tc {:>6.1} ns  daemon {:>5.2} µs CPU/exchange",
                s.rps,
                s.xdp_avg(),
                s.tc_avg(),
                s.cpu_per_exchange_us()
            );
        }
        for ((t, s), r) in totals.iter_mut().zip(&samples).zip(rps.iter_mut()) {
            t.add(s);
            r.push(s.rps);
        }
    }
    let r = args.rounds as f64;
    // Throughput: the median round (load on a 2-core machine is noisy);
    // per-run costs: totals over all rounds.
    for (t, v) in totals.iter_mut().zip(rps) {
        t.rps = median(v);
    }
    let [base, floor, look, naive, rw, before, enforcing] = totals;
    let f = flood(&net, &bin, args.duration)?;
    println!(
        "\nbench-kernel: {} rounds of {:?} wrk, {} connections, GET {}, one run\n",
        args.rounds, args.duration, args.connections, args.path
    );
    println!(
        "{:<32} {:>12} {:>10} {:>10} {:>12} {:>10}",
        "configuration", "median req/s", "vs none", "XDP ns", "TC ns", "wakeups"
    );
    for (n, s) in
        names.iter().zip([&base, &floor, &look, &naive, &rw, &before, &enforcing]).filter(|(_, s)| s.rps > 0.0)
    {
        let (x, t) = if s.xdp_runs > 0 {
            (format!("{:.1}", s.xdp_avg()), format!("{:.1}", s.tc_avg()))
        } else {
            ("-".into(), "-".into())
        };
        println!("{n:<32} {:>12.0} {:>9.3}x {x:>10} {t:>12} {:>10}", s.rps, s.rps / base.rps, s.wakeups);
    }
    println!();
    let goal =
        if args.path == "/auth" { " (goal >= 0.93x on the 401 mix)" } else { " (goal >= 0.96x on the JSON mix)" };
    println!(
        "throughput vs none:  {:.3}x{goal}; the no-op floor {:.3}x in the same rounds",
        rw.rps / base.rps,
        floor.rps / base.rps
    );
    println!(
        "look-only floor:     XDP {:.2}x and TC {:.2}x the no-op floor; rejectwatch {:.2}x and {:.2}x the look-only floor",
        look.xdp_avg() / floor.xdp_avg(),
        look.tc_avg() / floor.tc_avg(),
        rw.xdp_avg() / look.xdp_avg(),
        rw.tc_avg() / look.tc_avg()
    );
    println!(
        "batched vs default wakeups, XDP ns/run: {:.2}x; TC ns/run: {:.2}x",
        rw.xdp_avg() / naive.xdp_avg(),
        rw.tc_avg() / naive.tc_avg()
    );
    if baseline.is_some() {
        println!(
            "this build vs baseline, same rounds: XDP ns/run {:.3}x, TC ns/run {:.3}x, throughput {:.3}x",
            rw.xdp_avg() / before.xdp_avg(),
            rw.tc_avg() / before.tc_avg(),
            rw.rps / before.rps
        );
        println!("baseline kernel CPU: {:.0} ns XDP+TC run time per exchange", before.kernel_ns_per_exchange());
    }
    println!(
        "kernel CPU:          {:.0} ns XDP+TC run time per exchange (goal <= 500 ns)",
        rw.kernel_ns_per_exchange()
    );
    println!(
        "enforcement lookup, 10 000 entries listed, traffic not blocked: XDP {:.1} ns/run with, {:.1} without ({:.3}x)",
        enforcing.xdp_avg(),
        rw.xdp_avg(),
        enforcing.xdp_avg() / rw.xdp_avg()
    );
    println!(
        "flood from a listed source, one sender: XDP dropped {:.0} pkt/s of {:.0} sent; nftables (raw prerouting) \
         dropped {:.0} of {:.0} ({:.2}x the drops, {:.2}x the sender's rate)",
        f.xdp_dropped,
        f.xdp_sent,
        f.nft_dropped,
        f.nft_sent,
        f.xdp_dropped / f.nft_dropped.max(1.0),
        f.xdp_sent / f.nft_sent.max(1.0)
    );
    println!("ring-buffer drops:   {} (goal 0)", rw.drops + naive.drops);
    println!(
        "exchanges joined:    {} over both runs of each round; wrk completed {} in the throughput runs",
        rw.exchanges, rw.requests
    );
    println!(
        "daemon CPU:          {:.2} µs per exchange ({:.0}% of a core at {:.0} exchanges/s)",
        rw.cpu_per_exchange_us(),
        rw.cpu_ns as f64 / (args.duration.as_nanos() as f64 * r * 2.0) * 100.0,
        rw.exchanges as f64 / (args.duration.as_secs_f64() * r * 2.0)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
