//! `bench-detect`: the pure core on one core, in one run and side by side:
//! exchanges/s for a generated multi-million-exchange mix through join +
//! enrichment with no detectors, and through join + enrichment + every
//! detector; then the memory of tracking 1 M distinct clients (peak RSS,
//! and bytes per tracked client from the RSS growth while they arrive).
//! Records are generated in chunks outside the timed sections. The same
//! stages run over a capture instead (`--capture`, the operator's own
//! traffic) or over the multi-day scenario of the seven actor models among
//! ordinary users (`--scenario`), read into memory before the timing.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use rejectwatch::{
    alloc::count::allocations as allocations_so_far,
    config::Config,
    detect::{Engine, spec::DetectConfig},
    enrich::{Enricher, geo::Geo},
    exchange::{Exchange, RequestText},
    http,
    join::{JoinConfig, Joiner},
    metrics::Metrics,
    observe::{Observer as _, Source},
    pipeline::Pipeline,
    record::{Kind, Record},
    sink::Sinks,
    source::{
        emulate::{KernelRules, Ports},
        pcap,
    },
    state::marks::{Mark, parse_flag},
};
use rejectwatch_common::{DEFAULT_RESPONSE_SNAPLEN, DEFAULT_SNAPLEN};
use rejectwatch_tests::TempDir;

use crate::{
    cases::{SEVEN_ACTORS_DISCLOSURE, seven_actors},
    traffic::{ANDROID_APP, CHROME_WIN, FIREFOX_LINUX, Rng, SAFARI_IOS_14, T0, write_pcap},
};
use rejectwatch::time::format_ts;

#[derive(clap::Args)]
pub struct BenchDetectArgs {
    /// Exchanges in the throughput mix.
    #[arg(long, default_value_t = 3_000_000)]
    exchanges: u64,
    /// Distinct clients in the throughput mix. More than the roster's
    /// 100 000 actors (say 4 000 000 over as many exchanges) is a flood of
    /// new scanners: actors are evicted to make room all the while.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=u32::MAX as u64))]
    mix_clients: u64,
    /// Distinct clients in the memory run.
    #[arg(long, default_value_t = 1_000_000)]
    clients: u64,
    /// Run only one configuration (for a profiler, or `bench-pairs`),
    /// and not the memory run: `parse`, `join`, `enrich`, `none` (the
    /// engine, no detectors) or `all` detectors.
    #[arg(long, value_parser = ["parse", "join", "enrich", "none", "all"])]
    only: Option<String>,
    /// Instead of timing, count the instructions the processing executes
    /// per exchange, under valgrind's callgrind: a figure that, unlike time
    /// on a shared VM, is the same on every run, for comparing builds.
    /// Needs valgrind, and runs about 50x slower: ~300 000 exchanges for a
    /// quick comparison. Those are three a client, too early for what
    /// costs only once clients are a few dozen requests old (their
    /// cadence, the allocator's page moves): the whole mix, 3 M exchanges,
    /// takes about four minutes.
    /// Counts the configuration `--only` names (default: every detector);
    /// the parse floor has no join to count in.
    #[arg(long)]
    instructions: bool,
    /// Also time each detector alone (the engine plus that one detector)
    /// and print what each adds: which detector to look at first. On a
    /// shared VM, differences under ~100 ns are noise.
    #[arg(long, conflicts_with_all = ["only", "instructions", "detector"])]
    per_detector: bool,
    /// Run this one detector (by kind, e.g. `scraping`) as the `all`
    /// configuration, to time or count it alone.
    #[arg(long)]
    detector: Option<String>,
    /// Time the stages on this capture (pcap or pcapng: your own traffic)
    /// instead of the generated mix: the records the kernel programs would
    /// have emitted for it, as `analyze` reads them, held in memory.
    #[arg(long, value_name = "FILE", conflicts_with = "scenario")]
    capture: Option<PathBuf>,
    /// Time the stages on the seven actor models of docs/detection.md among
    /// this many ordinary users over five days (the multi-day scenario
    /// case, scaled up; 100 000 users make about 3.6 M exchanges) instead
    /// of the generated mix, with the scenario's disclosure marker.
    #[arg(long, value_name = "USERS", value_parser = clap::value_parser!(u32).range(1..))]
    scenario: Option<u32>,
    /// A marker for `--capture`, as `analyze --mark` takes it
    /// (`disclosure=RFC3339-TIME`); repeatable.
    #[arg(long, value_name = "KIND=TIME", value_parser = parse_flag, requires = "capture")]
    mark: Vec<Mark>,
    /// Internal: the memory run, in a process of its own.
    #[arg(long, hide = true)]
    memory_only: bool,
}

const AGENTS: [&str; 8] = [
    CHROME_WIN,
    FIREFOX_LINUX,
    SAFARI_IOS_14,
    ANDROID_APP,
    "python-requests/2.32.5",
    "okhttp/3.14.9",
    "curl/8.5.0",
    "",
];

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One exchange of the mix: mostly served traffic of 100 000 clients, a
/// reject pile of 401/403/404/429, and a few scanners and pollers.
fn exchange_text(rng: &mut Rng, i: u64, clients: u64) -> (u32, String, u16) {
    let r = rng.next();
    let client = (r % clients) as u32;
    let ua = AGENTS[(client % 8) as usize];
    let (method, target, status) = match (r >> 20) % 20 {
        0..=5 => ("GET", format!("/api/v1/products/{}", (r >> 32) % 5000), 200),
        6..=8 => ("GET", format!("/api/v1/orders/{}", client * 10 + (i % 3) as u32), 200),
        9..=10 => ("POST", "/api/v1/cart".to_string(), 201),
        11 => ("GET", "/api/v1/reports".to_string(), 403),
        12 => ("POST", "/api/v1/login".to_string(), 401),
        13 => ("GET", "/api/v1/export.csv".to_string(), 403),
        14 => ("GET", format!("/api/v1/products/{}", 90_000 + (r >> 32) % 100), 404),
        15 => ("GET", "/taxii2/root/collections/0b6a2f4e-1c3d-4e5f-8a9b-0c1d2e3f4a5b/objects/".into(), 403),
        16 => ("GET", "/api/v1/search?q=shoes&page=2".to_string(), 429),
        17 => ("GET", ["/.env", "/.git/config", "/wp-login.php"][(r >> 40) as usize % 3].to_string(), 404),
        _ => ("GET", "/api/v1/account".to_string(), 200),
    };
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: api.example.com\r\n");
    if !ua.is_empty() {
        head.push_str(&format!("User-Agent: {ua}\r\n"));
    }
    head.push_str("Accept: */*\r\nAccept-Language: en\r\n");
    if client.is_multiple_of(3) {
        head.push_str(&format!("Authorization: Basic dXNlcnt9OnB3{:08x}\r\n", client));
    }
    head.push_str("\r\n");
    (client, head, status)
}

fn pipeline(detect: &DetectConfig, marks: &[Mark]) -> Pipeline {
    let cfg = Config { detect: detect.clone(), ..Default::default() };
    let enricher = Enricher::with_parts(&cfg, Geo::open(None, None).expect("no geo"), [7; 32]).expect("enricher");
    let mut engine = Engine::new(&cfg.detect, cfg.ipv6_prefix);
    for m in marks {
        engine.add_mark(m.clone());
    }
    Pipeline::new(enricher, engine, Sinks::new(Arc::new(Mutex::new(Metrics::new())), None))
}

/// What a throughput run measured.
#[derive(Clone, Copy)]
struct Run {
    /// Thread CPU time of the processing only.
    spent: Duration,
    exchanges: u64,
    findings: u64,
    /// Allocations made by the processing.
    allocations: u64,
}

impl Run {
    /// Runs `f`, adding its CPU time and allocations to the run's.
    fn measure(&mut self, f: impl FnOnce()) {
        let (t, a) = (thread_cpu(), allocations_so_far());
        f();
        self.allocations += allocations_so_far() - a;
        self.spent += thread_cpu() - t;
    }
}

/// The generated mix: how many exchanges, from how many clients.
#[derive(Clone, Copy)]
struct Mix {
    exchanges: u64,
    clients: u64,
}

/// What the stages run over: the generated mix, made in chunks as it is
/// consumed, or records read into memory beforehand (a capture, the
/// scenario) with the markers that go with them.
enum Input {
    Mix(Mix),
    Records { records: Held, marks: Vec<Mark>, requests: u64 },
}

impl Input {
    /// Held records, counting those that start a request head once.
    fn records(records: Held, marks: Vec<Mark>) -> Self {
        let requests = records.records.iter().filter(|r| r.kind == Kind::Request).count() as u64;
        Self::Records { records, marks, requests }
    }

    fn marks(&self) -> &[Mark] {
        match self {
            Self::Mix(_) => &[],
            Self::Records { marks, .. } => marks,
        }
    }

    /// Exchanges it holds: for records, those that start a request head
    /// (a segment of pipelined heads holds more, which the join counts).
    fn exchanges(&self) -> u64 {
        match self {
            Self::Mix(mix) => mix.exchanges,
            Self::Records { requests, .. } => *requests,
        }
    }
}

/// Records as a source hands them to the core: back to back in one
/// buffer, as the kernel's ring buffer holds them for the live drain (the
/// core reads each in place), rather than each in an allocation of its
/// own scattered over the heap, which made reading the heads miss the
/// caches more than a live run does.
#[derive(Default)]
struct Held {
    records: Vec<Meta>,
    bytes: Vec<u8>,
}

/// A held record's fields, and where its payload is in [`Held::bytes`].
struct Meta {
    kind: Kind,
    ts: u64,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: Option<u32>,
    payload_len: u32,
    at: usize,
    len: usize,
}

impl Held {
    fn with_capacity(records: usize, bytes: usize) -> Self {
        Self { records: Vec::with_capacity(records), bytes: Vec::with_capacity(bytes) }
    }

    /// A whole segment's payload at the start of its stream.
    fn push_whole(&mut self, kind: Kind, ts: u64, src: SocketAddr, dst: SocketAddr, data: &[u8]) {
        let r = Record { kind, ts, src, dst, seq: 1, ack: None, payload_len: data.len() as u32, data };
        self.push(&r);
    }

    fn push(&mut self, r: &Record<'_>) {
        let Record { kind, ts, src, dst, seq, ack, payload_len, data } = *r;
        // Ring-buffer entries start 8-byte aligned.
        self.bytes.resize(self.bytes.len().next_multiple_of(8), 0);
        let at = self.bytes.len();
        self.bytes.extend_from_slice(data);
        self.records.push(Meta { kind, ts, src, dst, seq, ack, payload_len, at, len: data.len() });
    }

    fn iter(&self) -> impl Iterator<Item = Record<'_>> {
        self.records.iter().map(|m| Record {
            kind: m.kind,
            ts: m.ts,
            src: m.src,
            dst: m.dst,
            seq: m.seq,
            ack: m.ack,
            payload_len: m.payload_len,
            data: &self.bytes[m.at..m.at + m.len],
        })
    }
}

/// The records the kernel programs would have emitted for a capture (every
/// port watched, default snap lengths: what `analyze FILE` reads).
fn capture_records(path: &Path) -> anyhow::Result<Held> {
    let mut rules = KernelRules::new(Ports::All, DEFAULT_SNAPLEN, DEFAULT_RESPONSE_SNAPLEN);
    let mut records = Held::default();
    pcap::records(&[path], &mut rules, |r| {
        if let Ok(r) = r {
            records.push(&r);
        }
    })?;
    anyhow::ensure!(
        records.records.iter().any(|r| r.kind == Kind::Request),
        "--capture {}: no HTTP request heads in it",
        path.display()
    );
    Ok(records)
}

/// The records of exchanges `from..to` of the mix: each request on a flow
/// of its own, answered 200 µs later.
fn records(rng: &mut Rng, clients: u64, from: u64, to: u64) -> Held {
    let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 100, 1)), 80);
    let mut records = Held::with_capacity(2 * (to - from) as usize, 400 * (to - from) as usize);
    for i in from..to {
        let (client, head, status) = exchange_text(rng, i, clients);
        let ts = (T0 + i / 2000) * 1_000_000_000 + (i % 2000) * 500_000;
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | client));
        let src = SocketAddr::new(ip, 1024 + (i % 60_000) as u16);
        records.push_whole(Kind::Request, ts, src, server, head.as_bytes());
        let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
        records.push_whole(Kind::Response, ts + 200_000, server, src, resp.as_bytes());
    }
    records
}

/// Runs `each` over the input's records, then `end`. The mix's records
/// are generated in chunks outside the timed sections (and freed outside
/// them: a live source's records borrow its buffers); a capture's are
/// timed in chunks of the same size.
fn timed<S>(input: &Input, state: &mut S, mut each: impl FnMut(&mut S, Record<'_>), end: impl FnOnce(&mut S)) -> Run {
    let chunk = 100_000;
    let mut run = Run { spent: Duration::ZERO, exchanges: input.exchanges(), findings: 0, allocations: 0 };
    match input {
        Input::Mix(mix) => {
            let mut rng = Rng::new(42);
            let n = mix.exchanges;
            let mut done = 0;
            while done < n {
                let to = (done + chunk).min(n);
                let records = records(&mut rng, mix.clients, done, to);
                run.measure(|| records.iter().for_each(|r| each(state, r)));
                done = to;
            }
        }
        Input::Records { records, .. } => {
            let mut all = records.iter().peekable();
            while all.peek().is_some() {
                let part = all.by_ref().take(2 * chunk as usize);
                run.measure(|| part.for_each(|r| each(state, r)));
            }
        }
    }
    run.measure(|| end(state));
    run
}

/// The floor: each record's head parsed (httparse, the headers copied out
/// as the joiner keeps them), nothing joined or enriched. What the goal
/// leaves for everything else is the budget minus this.
fn parse_floor(input: &Input) -> Run {
    timed(
        input,
        &mut (),
        |_, r| match r.kind {
            Kind::Request => drop(std::hint::black_box(http::parse_request(r.data))),
            Kind::Response => drop(std::hint::black_box(http::parse_response(r.data))),
            // The rest of a head cut across segments: the joiner's to
            // stitch, nothing to parse alone.
            Kind::Continuation | Kind::ResponseContinuation => {}
        },
        |_| {},
    )
}

/// The stages before the engine, for the decomposition: the joined
/// exchanges enriched (or not) and dropped.
struct Upto {
    enricher: Option<Enricher>,
    exchanges: u64,
}

impl rejectwatch::observe::Observer for Upto {
    fn exchange(&mut self, mut ex: Exchange) {
        if let Some(e) = &mut self.enricher {
            e.enrich(&mut ex);
        }
        self.exchanges += 1;
        drop(std::hint::black_box(ex));
    }
    fn unmatched(&mut self, _: rejectwatch::observe::Side) {}
    fn parse_error(&mut self, _: Source, _: &'static str) {}
}

/// Join (+ enrichment) with nothing after it, over `n` exchanges.
fn join_floor(input: &Input, enrich: bool) -> Run {
    let enricher = enrich.then(|| {
        Enricher::with_parts(&Config::default(), Geo::open(None, None).expect("no geo"), [7; 32]).expect("enricher")
    });
    let mut state = (Joiner::new(JoinConfig::default(), Source::Pcap), Upto { enricher, exchanges: 0 });
    let run = timed(input, &mut state, |(join, upto), r| join.push(r, upto), |(join, upto)| join.finish(upto));
    Run { exchanges: state.1.exchanges, ..run }
}

/// Join + enrichment + the engine (+ detectors) over `n` exchanges.
fn throughput(detect: &DetectConfig, input: &Input) -> Run {
    let mut state = (Joiner::new(JoinConfig::default(), Source::Pcap), pipeline(detect, input.marks()));
    let run = timed(
        input,
        &mut state,
        |(join, pipe), r| join.push(r, pipe),
        |(join, pipe)| {
            join.finish(pipe);
            pipe.finish();
        },
    );
    let pipe = &state.1;
    Run { exchanges: pipe.sinks.count, findings: pipe.sinks.findings_written, ..run }
}

/// Exchanges from `clients` distinct addresses (two each) straight into
/// the pipeline; returns (RSS growth in bytes, clients tracked, peak RSS).
fn memory(clients: u64) -> (u64, usize, u64) {
    let mut pipe = pipeline(&DetectConfig::default(), &[]);
    let mut rng = Rng::new(7);
    let before = status_kb("VmRSS:") * 1024;
    for round in 0..2u64 {
        for c in 0..clients {
            let (_, _, status) = exchange_text(&mut rng, c, 100_000);
            let r = rng.next();
            let ip = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + c as u32));
            // One user agent per client, as in the throughput mix.
            let ua = AGENTS[(c % 8) as usize];
            let ex = Exchange {
                ts: (T0 + round * 3600 + c / 1000) * 1_000_000_000,
                peer: ip,
                method: "GET".into(),
                request: RequestText::new(&format!("/api/v1/products/{}", r % 5000))
                    .with_user_agent((!ua.is_empty()).then_some(ua)),
                status: Some(status),
                header_names: vec!["Host".into(), "User-Agent".into(), "Accept".into()],
                version: Some(1),
                ..Default::default()
            };
            pipe.exchange(ex);
        }
    }
    let after = status_kb("VmRSS:") * 1024;
    (after.saturating_sub(before), pipe.detect.clients(), status_kb("VmHWM:") * 1024)
}

/// `none` (every detector disabled) with detector `name` enabled again.
fn alone(none: &DetectConfig, name: &str) -> DetectConfig {
    DetectConfig { disabled: none.disabled.iter().filter(|n| *n != name).cloned().collect(), ..none.clone() }
}

pub fn bench_detect(args: BenchDetectArgs) -> anyhow::Result<()> {
    // The bench runs the core in this process.
    if crate::bench::ran_as_release("bench-detect")? {
        return Ok(());
    }
    let none = DetectConfig {
        disabled: rejectwatch::detect::spec::DetectorSpec::all_defaults()
            .iter()
            .map(|d| d.name().to_string())
            .collect(),
        ..Default::default()
    };
    let all = match &args.detector {
        None => DetectConfig::default(),
        Some(name) => {
            anyhow::ensure!(none.disabled.contains(name), "--detector: no detector called {name:?}");
            alone(&none, name)
        }
    };
    if args.memory_only {
        memory_report(&args);
        return Ok(());
    }
    let named = input(&args)?;
    if args.instructions {
        return instructions(&args, &named);
    }
    println!("bench-detect: {}, one core (thread CPU time of the processing only)", named.what);
    let n = &named.input;
    let only = args.only.as_deref();
    let wanted = |name| only.is_none_or(|o| o == name);
    let floors = [
        ("parse", "floor: parsing the two heads only", parse_floor as fn(&Input) -> Run),
        ("join", "join", |n| join_floor(n, false)),
        ("enrich", "join + enrichment", |n| join_floor(n, true)),
    ]
    .into_iter()
    .filter(|(name, ..)| wanted(*name))
    .map(|(_, what, f)| (what, f(n)))
    .collect::<Vec<_>>();
    let bare = wanted("none").then(|| throughput(&none, n));
    let full = wanted("all").then(|| throughput(&all, n));
    let per_exchange = |r: &Run| r.spent.as_secs_f64() / r.exchanges.max(1) as f64;
    let allocs = |r: &Run| r.allocations as f64 / r.exchanges.max(1) as f64;
    for (what, r) in &floors {
        println!(
            "  {:<36} {:>10.0} exchanges/s ({:.0} ns, {:.2} allocations each) = {:.2}x the 1 µs budget",
            format!("{what}:"),
            1.0 / per_exchange(r),
            per_exchange(r) * 1e9,
            allocs(r),
            per_exchange(r) * 1e6
        );
    }
    if let Some(r) = &bare {
        println!(
            "  + engine (clients, actors, metrics): {:>10.0} exchanges/s ({:.0} ns, {:.2} allocations each)",
            1.0 / per_exchange(r),
            per_exchange(r) * 1e9,
            allocs(r)
        );
    }
    if let Some(r) = &full {
        let what = args.detector.as_deref().map_or("+ 14 detectors:".to_string(), |d| format!("+ {d} alone:"));
        println!(
            "  {what:<36} {:>10.0} exchanges/s ({:.0} ns, {:.2} allocations each), {} findings",
            1.0 / per_exchange(r),
            per_exchange(r) * 1e9,
            allocs(r),
            r.findings
        );
    }
    if let (Some(r0), Some(r1)) = (&bare, &full) {
        println!(
            "  detectors cost {:.2}x of everything before them; with them: {:.2}x the 1 M exchanges/s goal",
            per_exchange(r1) / per_exchange(r0) - 1.0,
            1.0 / per_exchange(r1) / 1e6
        );
        if args.per_detector {
            // Each against a run without detectors made just before it: the
            // VM's speed drifts over the minutes all of them take, by more
            // than a small detector costs.
            println!("  each detector alone, over a run without detectors just before it:");
            for name in &none.disabled {
                let (r0, r) = (throughput(&none, n), throughput(&alone(&none, name), n));
                println!(
                    "    {name:<32} {:>+6.0} ns ({:>+5.2} allocations) = {:.2}x of the engine without detectors",
                    (per_exchange(&r) - per_exchange(&r0)) * 1e9,
                    allocs(&r) - allocs(&r0),
                    per_exchange(&r) / per_exchange(&r0) - 1.0
                );
            }
        }
    }
    // One configuration is a run for a profiler or for `bench-pairs`:
    // the memory of 1 M clients is not what it asked for.
    if only.is_some() {
        return Ok(());
    }
    // In a fresh process: freed memory of the throughput runs stays
    // resident in the allocator and would hide the clients' growth.
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["bench-detect", "--memory-only", "--clients", &args.clients.to_string()])
        .output()?;
    anyhow::ensure!(out.status.success(), "memory run failed: {}", String::from_utf8_lossy(&out.stderr));
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

/// The input the arguments name.
struct Named {
    input: Input,
    /// How the report's first line puts it.
    what: String,
    /// The arguments that give a child run of this bench the same input.
    args: Vec<String>,
    /// Where the scenario's capture lies while the run needs it.
    _dir: Option<TempDir>,
}

fn input(args: &BenchDetectArgs) -> anyhow::Result<Named> {
    let (path, marks, what, dir) = if let Some(path) = &args.capture {
        (path.clone(), args.mark.clone(), format!("capture {}", path.display()), None)
    } else if let Some(users) = args.scenario {
        let dir = TempDir::new("bench-scenario");
        let path = dir.path("scenario.pcap");
        let mut reqs = Vec::new();
        seven_actors(&mut Rng::new(0x5ce_0a10), users, &mut reqs);
        write_pcap(&mut reqs, &path)?;
        let marks = vec![parse_flag(SEVEN_ACTORS_DISCLOSURE).map_err(anyhow::Error::msg)?];
        (path, marks, format!("the seven actor models among {users} users over five days"), Some(dir))
    } else {
        let mix = Mix { exchanges: args.exchanges, clients: args.mix_clients };
        return Ok(Named {
            input: Input::Mix(mix),
            what: format!("{} exchanges from {} clients", mix.exchanges, mix.clients),
            args: ["--exchanges", &mix.exchanges.to_string(), "--mix-clients", &mix.clients.to_string()]
                .map(String::from)
                .to_vec(),
            _dir: None,
        });
    };
    let mut child = vec!["--capture".to_string(), path.display().to_string()];
    child.extend(marks.iter().flat_map(|m| ["--mark".to_string(), format!("{}={}", m.kind, format_ts(m.at))]));
    let input = Input::records(capture_records(&path)?, marks);
    Ok(Named { what: format!("{what}: {} request records", input.exchanges()), input, args: child, _dir: dir })
}

/// Runs one configuration of this bench under callgrind, collecting only
/// inside the joiner (which drives everything after it), and prints the
/// instructions per exchange.
fn instructions(args: &BenchDetectArgs, named: &Named) -> anyhow::Result<()> {
    let only = args.only.as_deref().unwrap_or("all");
    anyhow::ensure!(
        only != "parse",
        "--instructions: the parse floor has no joiner to count in; use join, enrich, none or all"
    );
    let out = std::env::temp_dir().join(format!("rejectwatch-callgrind.{}", std::process::id()));
    let run = std::process::Command::new("valgrind")
        .args(["--tool=callgrind", "--toggle-collect=*Joiner*push*"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(std::env::current_exe()?)
        .args(["bench-detect", "--only", only, "--clients", "1000"])
        .args(&named.args)
        .args(args.detector.iter().flat_map(|d| ["--detector", d]))
        .output()
        .context("--instructions: running valgrind (on Debian: apt-get install valgrind)")?;
    let text = std::fs::read_to_string(&out);
    let _ = std::fs::remove_file(&out);
    anyhow::ensure!(run.status.success(), "valgrind failed: {}", String::from_utf8_lossy(&run.stderr));
    let text = text.context("--instructions: reading callgrind's output")?;
    let total: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("summary: ").or_else(|| l.strip_prefix("totals: ")))
        .and_then(|v| v.trim().parse().ok())
        .context("--instructions: no total in callgrind's output")?;
    let only = match &args.detector {
        Some(d) if only == "all" => format!("all --detector {d}"),
        _ => only.to_string(),
    };
    println!(
        "bench-detect --only {only}: {}: {:.0} instructions per exchange (callgrind)",
        named.what,
        total as f64 / named.input.exchanges().max(1) as f64
    );
    Ok(())
}

fn memory_report(args: &BenchDetectArgs) {
    let (grown, tracked, peak) = memory(args.clients);
    println!(
        "  {} distinct clients: {tracked} tracked, RSS grew {:.1} MiB = {:.0} bytes per tracked client ({:.2}x the 256 B goal); peak RSS {:.1} MiB",
        args.clients,
        grown as f64 / (1 << 20) as f64,
        grown as f64 / tracked.max(1) as f64,
        grown as f64 / tracked.max(1) as f64 / 256.0,
        peak as f64 / (1 << 20) as f64
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_records_come_back_as_they_went_in_back_to_back() {
        let mut rng = Rng::new(3);
        let held = records(&mut rng, 50, 0, 200);
        let mut rng = Rng::new(3);
        let mut previous_end = 0;
        for (i, r) in held.iter().enumerate() {
            let at = r.data.as_ptr() as usize - held.bytes.as_ptr() as usize;
            assert!(at.is_multiple_of(8) && at >= previous_end && at - previous_end < 8, "record {i} at {at}");
            previous_end = at + r.data.len();
            if i % 2 == 0 {
                let (_, head, status) = exchange_text(&mut rng, i as u64 / 2, 50);
                assert_eq!((r.kind, r.data, r.payload_len as usize), (Kind::Request, head.as_bytes(), head.len()));
                let next = held.iter().nth(i + 1).expect("its response");
                assert!(next.data.starts_with(format!("HTTP/1.1 {status} ").as_bytes()), "record {}", i + 1);
            }
        }
        assert_eq!(held.iter().count(), 400);
    }

    #[test]
    fn a_capture_is_timed_as_analyze_reads_it() {
        // The scenario at a small scale, as a capture: every request it
        // holds is one exchange through the join, and the whole pipeline
        // judges the same ones and finds its actors.
        let mut reqs = Vec::new();
        seven_actors(&mut Rng::new(1), 20, &mut reqs);
        let n = reqs.len() as u64;
        let dir = TempDir::new("bench-capture");
        let path = dir.path("scenario.pcap");
        write_pcap(&mut reqs, &path).unwrap_or_else(|e| panic!("writing {}: {e:#}", path.display()));
        let records = capture_records(&path).unwrap_or_else(|e| panic!("reading {}: {e:#}", path.display()));
        let marks = vec![parse_flag(SEVEN_ACTORS_DISCLOSURE).expect("the scenario's mark")];
        let input = Input::records(records, marks);
        let joined = join_floor(&input, true);
        assert_eq!(joined.exchanges, n, "exchanges joined from the capture's {n} requests");
        let judged = throughput(&DetectConfig::default(), &input);
        assert_eq!(judged.exchanges, n);
        assert!(judged.findings >= 7, "{} findings from the seven actor models", judged.findings);
    }
}
