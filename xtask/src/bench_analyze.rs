//! `bench-analyze`: `rejectwatch analyze` on a generated combined log, with
//! a generated country database (MaxMind DB) and ASN ranges (CSV) and every
//! detector, side by side in one run, alternating, against the manual
//! technique on the same file (`awk '$9 ~ /^40[13]$/ {print $1, $7}' | sort
//! | uniq -c | sort -rn`), on 1 and 2 threads, and with no detector (reading,
//! parsing and enrichment, and the engine's floor) on 1 and 2 threads. First
//! it times the two GeoIP lookups per address in this process, against the
//! lookups as they were (the file's tree, a search of every CSV row, the
//! names copied).

use std::{
    collections::HashMap,
    hint::black_box,
    io::{BufWriter, Write as _},
    net::{IpAddr, Ipv4Addr},
    path::Path,
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};
use rejectwatch::enrich::geo::{
    Geo,
    testdb::{self, Value},
};
use rejectwatch_tests::TempDir;

use crate::traffic::Rng;

#[derive(clap::Args)]
pub struct BenchAnalyzeArgs {
    /// Lines in the generated log.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Rounds; each runs every configuration once, in turn.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Extra `rejectwatch analyze` flags (e.g. --rw-arg=--exchanges=/dev/null).
    #[arg(long = "rw-arg", allow_hyphen_values = true)]
    rw_args: Vec<String>,
    /// The binary to time (e.g. target/pgo/rejectwatch); by default
    /// target/release/rejectwatch, built first.
    #[arg(long, value_name = "PATH")]
    bin: Option<std::path::PathBuf>,
    /// Write the generated log and GeoIP files into DIR and keep them
    /// (to profile or rerun by hand), instead of a temporary directory.
    #[arg(long, value_name = "DIR")]
    keep_in: Option<std::path::PathBuf>,
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
const COUNTRIES: [&str; 12] = ["US", "DE", "NL", "FR", "GB", "BR", "IN", "CN", "JP", "SG", "RU", "ZA"];

/// Client `n`'s address: spread over the public unicast space, so that
/// lookups land all over the tables as real clients' do.
fn client_addr(n: u64) -> Ipv4Addr {
    let x = (n as u32).wrapping_mul(0x9e37_79b1);
    Ipv4Addr::from(((1 + (x >> 24) % 223) << 24) | (x & 0x00ff_ffff))
}

/// A deterministic mix: 50 000 clients, templated and plain paths, the
/// reject statuses, a handful of user agents; one line per 10 ms.
fn generate(path: &Path, lines: u64) -> anyhow::Result<u64> {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut r = Rng::new(0x9e3779b97f4a7c15);
    for i in 0..lines {
        let x = r.next();
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
            "{} - - [{day:02}/{}/2026:{h:02}:{m:02}:{s:02} +0000] \"GET {path} HTTP/1.1\" {} {} \"-\" \"{}\"",
            client_addr(client),
            MONTHS[10],
            STATUSES[(x >> 8) as usize % 8],
            x % 4000,
            AGENTS[(x >> 16) as usize % 8],
        )?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// A country database the size of the free ones (about 200 000 IPv4
/// networks of /16 to /20 over 1.0.0.0-223.255.255.255) as a MaxMind DB,
/// and about 450 000 ASN ranges as `start,end,asn,org` CSV; returns how
/// many of each.
fn generate_geo(country: &Path, asn: &Path) -> anyhow::Result<(usize, usize)> {
    let mut r = Rng::new(0x51_7cc1_b727_220a);
    let mut nets: Vec<(String, Value)> = Vec::new();
    for a in 1u32..224 {
        for b in 0u32..256 {
            // A /16 whole, or cut into two to eight pieces.
            let bits = (r.next() % 4) as u32;
            for piece in 0..1u32 << bits {
                let len = 16 + bits;
                let third = piece << (8 - bits);
                let cc = COUNTRIES[(r.next() % COUNTRIES.len() as u64) as usize];
                nets.push((
                    format!("{a}.{b}.{third}.0/{len}"),
                    Value::Map(vec![("country".into(), Value::Map(vec![("iso_code".into(), Value::Str(cc.into()))]))]),
                ));
            }
        }
    }
    let refs: Vec<(&str, Value)> = nets.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    let n_country = refs.len();
    std::fs::write(country, testdb::build("bench-country", &refs)).context("writing the country database")?;
    let mut w = BufWriter::new(std::fs::File::create(asn)?);
    writeln!(w, "start,end,asn,org")?;
    let (mut at, end) = (1u64 << 24, 224u64 << 24);
    let mut n_asn = 0;
    while at < end {
        let len = 1u64 << (8 + r.next() % 9);
        let asn = 1 + r.next() % 30_000;
        let org = if asn.is_multiple_of(5) { format!("\"Org {asn}, Inc.\"") } else { format!("ORG-{asn}") };
        writeln!(
            w,
            "{},{},{asn},{org}",
            Ipv4Addr::from(at as u32),
            Ipv4Addr::from((at + len - 1).min(end - 1) as u32)
        )?;
        at += len;
        n_asn += 1;
    }
    w.flush()?;
    Ok((n_country, n_asn))
}

/// The lookups as they were, for the side-by-side: the country from the
/// file's tree, the AS by a binary search of every row, the names copied.
struct Before {
    reader: maxminddb::Reader<Vec<u8>>,
    rows: Vec<(u32, u32, u32, u32)>,
    orgs: Vec<String>,
}

#[derive(serde::Deserialize)]
struct IsoCode<'a> {
    iso_code: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
}

impl Before {
    fn open(country: &Path, asn: &Path) -> anyhow::Result<Self> {
        let reader = maxminddb::Reader::open_readfile(country)?;
        let (mut rows, mut orgs, mut ids) = (Vec::new(), Vec::new(), HashMap::new());
        for line in std::fs::read_to_string(asn)?.lines().skip(1) {
            let mut f = line.splitn(4, ',');
            let (Some(s), Some(e), Some(n), Some(o)) = (f.next(), f.next(), f.next(), f.next()) else { continue };
            let (s, e): (Ipv4Addr, Ipv4Addr) = (s.parse()?, e.parse()?);
            let next = ids.len() as u32;
            let id = *ids.entry(o.to_string()).or_insert_with(|| {
                orgs.push(o.trim_matches('"').to_string());
                next
            });
            rows.push((u32::from(s), u32::from(e), n.parse()?, id));
        }
        rows.sort_unstable();
        Ok(Self { reader, rows, orgs })
    }

    fn lookup(&self, ip: Ipv4Addr) -> (Option<String>, Option<u32>, Option<String>) {
        let country = match self.reader.lookup::<CountryRecord>(IpAddr::V4(ip)) {
            Ok(Some(r)) => r.country.and_then(|c| c.iso_code).map(str::to_string),
            _ => None,
        };
        let x = u32::from(ip);
        let i = self.rows.partition_point(|r| r.0 <= x);
        match i.checked_sub(1).map(|i| self.rows[i]) {
            Some(r) if x <= r.1 => (country, Some(r.2), Some(self.orgs[r.3 as usize].clone())),
            _ => (country, None, None),
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// ns per address for both lookups, this build's against the lookups as
/// they were, alternating; over addresses all different.
fn bench_geo(country: &Path, asn: &Path, rounds: usize) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let geo = Geo::open(Some(country), Some(asn))?;
    let load = t0.elapsed();
    let before = Before::open(country, asn)?;
    const N: u32 = 1_000_000;
    // Multiplying by an odd number permutes u32: every address differs.
    let addrs: Vec<Ipv4Addr> = (0..N).map(|i| Ipv4Addr::from(i.wrapping_mul(0x9e37_79b1) | 0x0100_0000)).collect();
    // Same answers, or the comparison means nothing.
    for &a in addrs.iter().step_by(97) {
        let (g, b) = (geo.lookup(IpAddr::V4(a)), before.lookup(a));
        anyhow::ensure!(
            (g.country, g.asn, g.as_org) == (b.0.as_deref(), b.1, b.2.as_deref()),
            "{a}: {g:?} against {b:?}"
        );
    }
    let (mut now, mut was, mut ratios, mut allocs) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for _ in 0..rounds.max(3) {
        let a0 = rejectwatch::alloc::count::allocations();
        let t = Instant::now();
        for &a in &addrs {
            black_box(geo.lookup(IpAddr::V4(black_box(a))));
        }
        let n = t.elapsed().as_nanos() as f64 / f64::from(N);
        allocs = rejectwatch::alloc::count::allocations() - a0;
        let t = Instant::now();
        for &a in &addrs {
            black_box(before.lookup(black_box(a)));
        }
        let w = t.elapsed().as_nanos() as f64 / f64::from(N);
        now.push(n);
        was.push(w);
        ratios.push(n / w);
    }
    println!(
        "GeoIP, country and ASN per address, {N} different addresses, {} rounds (median ns/lookup):\n  \
         this build {:.0} ns ({allocs} allocations in the last round; tables built in {:.0} ms)\n  \
         as it was (tree, search of every row, names copied) {:.0} ns\n  ratio {:.2}x (min {:.2}, max {:.2})\n",
        now.len(),
        median(&mut now),
        load.as_secs_f64() * 1e3,
        median(&mut was),
        median(&mut ratios.clone()),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
    );
    Ok(())
}

fn children_cpu_ns() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1000;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// One timed run: wall seconds and CPU seconds of the children.
fn time(cmd: &mut Command) -> anyhow::Result<(f64, f64)> {
    let cpu0 = children_cpu_ns();
    let t0 = Instant::now();
    let o = cmd.output()?;
    let secs = t0.elapsed().as_secs_f64();
    if !o.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok((secs, (children_cpu_ns() - cpu0) as f64 / 1e9))
}

pub fn bench_analyze(args: BenchAnalyzeArgs) -> anyhow::Result<()> {
    if crate::bench::ran_as_release("bench-analyze")? {
        return Ok(());
    }
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
    let tmp = TempDir::new("bench-analyze");
    let dir = match &args.keep_in {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("--keep-in: cannot create {}", d.display()))?;
            d.clone()
        }
        None => tmp.0.clone(),
    };
    let log = dir.join("access.log");
    let bytes = generate(&log, args.lines).context("generating the log")?;
    let (country, asn) = (dir.join("country.mmdb"), dir.join("asn.csv"));
    let (n_country, n_asn) = generate_geo(&country, &asn).context("generating the GeoIP data")?;
    println!(
        "bench-analyze: {} combined-log lines ({:.1} MB); {n_country} country networks (MaxMind DB), \
         {n_asn} ASN ranges (CSV); {} rounds\n",
        args.lines,
        bytes as f64 / 1e6,
        args.rounds
    );
    bench_geo(&country, &asn, args.rounds)?;
    let none = dir.join("no-detectors.toml");
    let names: Vec<String> =
        rejectwatch::detect::spec::DetectorSpec::all_defaults().iter().map(|d| format!("{:?}", d.name())).collect();
    std::fs::write(&none, format!("[detect]\ndisabled = [{}]\n", names.join(", ")))?;
    if args.rounds == 0 {
        return Ok(());
    }
    let state = dir.join("state");
    let analyze = |threads: u32, config: Option<&Path>| {
        let mut cmd = Command::new(&bin);
        cmd.arg("analyze").arg(&log).args(["--threads", &threads.to_string()]);
        cmd.arg("--geoip-country").arg(&country).arg("--geoip-asn").arg(&asn).arg("--state-dir").arg(&state);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(&args.rw_args);
        cmd
    };
    let manual =
        format!("awk '$9 ~ /^40[13]$/ {{print $1, $7}}' '{}' | sort | uniq -c | sort -rn >/dev/null", log.display());
    let configs: Vec<(String, Box<dyn Fn() -> Command>)> = vec![
        (
            "awk | sort | uniq -c | sort -rn".into(),
            Box::new(|| {
                let mut c = Command::new("sh");
                c.args(["-c", &manual]);
                c
            }),
        ),
        ("analyze, every detector, 1 thread".into(), Box::new(|| analyze(1, None))),
        ("analyze, every detector, 2 threads".into(), Box::new(|| analyze(2, None))),
        ("analyze, no detector, 1 thread".into(), Box::new(|| analyze(1, Some(&none)))),
        ("analyze, no detector, 2 threads".into(), Box::new(|| analyze(2, Some(&none)))),
    ];
    // Warm the page cache and the state directory (identity key) first.
    for (_, c) in &configs {
        time(&mut c())?;
    }
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new(); configs.len()];
    for _ in 0..args.rounds {
        for (i, (_, c)) in configs.iter().enumerate() {
            runs[i].push(time(&mut c())?);
        }
    }
    let ratio = |a: usize, b: usize| {
        let mut r: Vec<f64> = runs[a].iter().zip(&runs[b]).map(|(x, y)| x.0 / y.0).collect();
        let (lo, hi) = (r.iter().copied().fold(f64::INFINITY, f64::min), r.iter().copied().fold(0.0, f64::max));
        (median(&mut r), lo, hi)
    };
    println!(
        "{:<38} {:>9} {:>12} {:>12} {:>6} {:>22}",
        "configuration", "wall s", "lines/s", "CPU ns/line", "cores", "wall vs awk (min-max)"
    );
    for (i, (name, _)) in configs.iter().enumerate() {
        let wall = median(&mut runs[i].iter().map(|r| r.0).collect::<Vec<_>>());
        let cpu = median(&mut runs[i].iter().map(|r| r.1).collect::<Vec<_>>());
        let (r, lo, hi) = ratio(i, 0);
        println!(
            "{name:<38} {wall:>9.2} {:>12.0} {:>12.0} {:>6.2} {:>10.2}x ({lo:.2}-{hi:.2})",
            args.lines as f64 / wall,
            cpu * 1e9 / args.lines as f64,
            cpu / wall,
            r
        );
    }
    let (all, all_lo, all_hi) = ratio(1, 2);
    let (floor, floor_lo, floor_hi) = ratio(3, 4);
    println!(
        "\nspeed-up from 1 to 2 threads (wall, median of the rounds' ratios): every detector {all:.2}x \
         ({all_lo:.2}-{all_hi:.2}), no detector {floor:.2}x ({floor_lo:.2}-{floor_hi:.2})\n\
         cores: CPU time over wall time, what the runs got of the machine; below the threads asked \
         for, other work held the rest, and wall times cannot show the scaling"
    );
    Ok(())
}
