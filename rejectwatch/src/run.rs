//! `rejectwatch run`: the live daemon. Attaches the kernel programs, drains
//! the ring buffer into the core on a short timer (and on the kernel's
//! backlog wakeups), refreshes kernel counters, keeps the blocklist (state
//! file and blocklist files) current every second, serves /metrics and the
//! API, and detaches on SIGINT/SIGTERM (the bpf_links go with the process
//! anyway).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
    time::{MissedTickBehavior, interval, interval_at},
};

use crate::{
    api::{self, Api},
    assemble::{Assembled, Builder},
    cli::{DEFAULT_PORTS, RunArgs},
    join::Joiner,
    netif,
    observe::{Observer as _, Source},
    pipeline::Pipeline,
    record,
    source::ebpf::{Kernel, KernelConfig},
    state::{self, marks::Mark, snapshot as resume},
    time::clock::Clock,
};

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let ifaces = if args.iface.is_empty() { vec![netif::default_route_iface()?] } else { args.iface.clone() };
    let ports = if args.port.is_empty() { DEFAULT_PORTS.to_vec() } else { args.port.clone() };
    let p = &args.pipeline;
    let mut cfg = KernelConfig {
        enforce: None,
        ifaces: ifaces.clone(),
        ports: ports.clone(),
        snaplen: p.snaplen,
        response_snaplen: p.response_snaplen,
        ringbuf_bytes: args.ringbuf_size,
        wakeup_bytes: args.wakeup_bytes.unwrap_or((args.ringbuf_size / 4) as u64),
        mode: args.xdp_mode,
    };
    // Everything that can be wrong with the configuration fails here,
    // before anything is attached.
    let mut config = p.config()?;
    if let Some(mode) = args.enforce {
        config.enforce.mode = mode;
    }
    if config.enforce.mode == crate::enforce::Mode::Xdp {
        cfg.enforce = Some(config.enforce.max_entries);
        if !config.trusted_proxies.is_empty() {
            // XDP sees the socket peer: behind a proxy, every client is the
            // proxy, which is never blocked.
            eprintln!(
                "rejectwatch: --enforce xdp drops by socket address, and clients behind the trusted proxies \
                 reach this host as the proxy, which is never dropped: enforce their blocks at the proxy or \
                 through a bouncer"
            );
        }
    }
    let state_dir = config.state_dir.clone().unwrap_or_else(state::default_state_dir);
    let token = config.api.resolve_token()?;
    api::check_exposure(args.listen, &token)?;
    let clock = Clock::new();
    // Whatever they do, the host itself and its proxies are never listed.
    let own = netif::own_addresses()?;
    let snapshots = config.snapshot.enabled.then(|| state_dir.clone());
    // `resumed` is said once the daemon is watching, with the other
    // restored state.
    let Assembled { pipeline, metrics, restored, resumed } = Builder::new(&config, p)
        .own_addresses(&own)
        .state_in(state_dir.clone(), crate::time::secs(clock.now()))
        .resume_from(snapshots.clone())
        .keep_findings(config.api.findings_kept)
        .build()?;
    let mut marks = MarkWatch::new(state_dir.clone());
    let notices = pipeline.enricher.notices();
    let pipeline = Arc::new(Mutex::new(pipeline));
    let api = Api {
        pipeline: pipeline.clone(),
        metrics: metrics.clone(),
        token: token.map(Into::into),
        state_dir,
        bouncers: config.api.bouncer_keys.iter().map(|k| k.trim().to_string()).collect(),
        decisions: Default::default(),
        stix: config.stix.clone(),
    };
    let addr = api::serve(args.listen, api, &config.api).await?;
    fn lock(p: &Mutex<Pipeline>) -> std::sync::MutexGuard<'_, Pipeline> {
        p.lock().unwrap_or_else(|e| e.into_inner())
    }
    let mut kernel = Kernel::attach(&cfg)?;
    let ring = kernel.take_ring()?;
    metrics.lock().unwrap_or_else(|e| e.into_inner()).attach_kernel(kernel.take_counters()?);
    if cfg.enforce.is_some() {
        lock(&pipeline).enforce_with(Box::new(kernel.take_enforcer()?));
    }
    eprintln!("rejectwatch: watching {} on ports {:?}; metrics on http://{addr}/metrics", ifaces.join(", "), ports);
    for n in notices {
        eprintln!("rejectwatch: {n}");
    }
    if restored > 0 {
        eprintln!("rejectwatch: {restored} blocklist entries restored from the state file");
    }
    if let Some(line) = resumed {
        eprintln!("rejectwatch: {line}");
    }
    lock(&pipeline).tick_at(clock.now());

    let mut join = Joiner::new(p.join_config(), Source::Kernel);
    // SAFETY: the ring buffer owns its fd and lives inside the AsyncFd, so
    // the fd stays open for as long as it is registered.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }.context("ring buffer fd")?;
    let mut drain_tick = interval(args.drain_interval);
    drain_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut stats_tick = interval(Duration::from_secs(1));
    // Wall-clock, at the edge: when to write, never what is in it.
    let every = config.snapshot.interval;
    let mut snapshot_tick = interval_at(tokio::time::Instant::now() + every, every);
    snapshot_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let (records, lag) = {
        let m = metrics.lock().unwrap_or_else(|e| e.into_inner());
        (m.records.with_label_values(&["kernel"]), m.lag.clone())
    };

    let drain = |ring: &mut RingBuf<MapData>, join: &mut Joiner, sinks: &mut Pipeline| {
        let mut n = 0u64;
        let mut newest = 0;
        while let Some(item) = ring.next() {
            n += 1;
            match record::decode(&item, |t| clock.to_wall(t)) {
                // The record borrows the ring entry, released once the
                // core has copied out what it keeps.
                Ok(rec) => {
                    newest = newest.max(rec.ts);
                    join.push(rec, sinks);
                }
                Err(e) => sinks.parse_error(Source::Kernel, e.reason()),
            }
        }
        // What was drained is judged now, not when the next batch fills.
        sinks.flush_batch();
        records.inc_by(n);
        if n > 0 {
            lag.set(clock.now().saturating_sub(newest) as f64 / 1e9);
        }
    };

    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("ring buffer poll")?;
                drain(guard.get_inner_mut(), &mut join, &mut lock(&pipeline));
                guard.clear_ready();
            }
            _ = drain_tick.tick() => {
                let mut p = lock(&pipeline);
                drain(ring.get_mut(), &mut join, &mut p);
                join.advance(clock.now(), &mut *p);
                p.flush_batch();
                // A failure is logged (once) and counted by the sinks.
                let _ = p.sinks.flush();
            }
            _ = stats_tick.tick() => {
                let mut p = lock(&pipeline);
                for m in marks.new_marks() {
                    p.detect.add_mark(m);
                }
                p.tick_at(clock.now());
                drop(p);
                let mut m = metrics.lock().unwrap_or_else(|e| e.into_inner());
                m.refresh_kernel();
                m.flows.set(join.flows() as i64);
            }
            _ = snapshot_tick.tick(), if snapshots.is_some() => {
                let encoded = resume::encode(&lock(&pipeline).detect);
                resume::save(snapshots.as_deref(), encoded, &metrics);
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    let mut p = lock(&pipeline);
    drain(ring.get_mut(), &mut join, &mut p);
    join.finish(&mut *p);
    p.finish();
    p.tick_at(clock.now());
    p.sinks.flush()?;
    let encoded = snapshots.is_some().then(|| resume::encode(&p.detect));
    drop(p);
    if let Some(encoded) = encoded {
        resume::save(snapshots.as_deref(), encoded, &metrics);
    }
    drop(kernel);
    eprintln!("rejectwatch: detached");
    Ok(())
}

/// Markers recorded by `rejectwatch mark` while the daemon runs: the
/// state file is re-read when it changes, and only new markers are taken.
struct MarkWatch {
    dir: std::path::PathBuf,
    modified: Option<std::time::SystemTime>,
    seen: Vec<Mark>,
}

impl MarkWatch {
    fn new(dir: std::path::PathBuf) -> Self {
        Self { dir, modified: None, seen: Vec::new() }
    }

    fn new_marks(&mut self) -> Vec<Mark> {
        let path = crate::state::marks::file(&self.dir);
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        if modified.is_none() || modified == self.modified {
            return Vec::new();
        }
        self.modified = modified;
        match crate::state::marks::load(&self.dir) {
            Ok(all) => {
                let fresh: Vec<Mark> = all.into_iter().filter(|m| !self.seen.contains(m)).collect();
                self.seen.extend(fresh.iter().cloned());
                for m in &fresh {
                    eprintln!("rejectwatch: disclosure mark at {}", crate::time::format_ts(m.at));
                }
                fresh
            }
            Err(e) => {
                log::error!("{e:#}");
                Vec::new()
            }
        }
    }
}
