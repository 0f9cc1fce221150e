//! `bench-snapshot`: what the detection snapshot of a full engine costs.
//! Fills an engine to its default caps (1 M clients, each with the state
//! only rejected clients keep, and the roster's 100 000 actors, from
//! probes) with generated exchanges, then times `Engine::snapshot`, the
//! write to a file (temp + rename, as the daemon), the read and
//! `Engine::restore` into a fresh engine, and reports the size.

use std::time::Instant;

use rejectwatch::{
    config::Config,
    detect::Engine,
    enrich::{Enricher, geo::Geo},
    exchange::{Exchange, RequestText},
};
use rejectwatch_tests::TempDir;

#[derive(clap::Args)]
pub struct BenchSnapshotArgs {
    /// Distinct clients (the default cap).
    #[arg(long, default_value_t = 1_000_000)]
    clients: u32,
    /// Requests per client.
    #[arg(long, default_value_t = 3)]
    requests: u32,
}

const AGENTS: [&str; 4] = [
    "python-requests/2.32.5",
    "okhttp/4.12.0",
    "curl/8.5.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/128.0",
];

pub fn bench_snapshot(args: BenchSnapshotArgs) -> anyhow::Result<()> {
    let cfg = Config::default();
    let mut enricher = Enricher::with_parts(&cfg, Geo::open(None, None)?, [7; 32])?;
    let mut engine = Engine::new(&cfg.detect, cfg.ipv6_prefix);
    let mut out = Vec::new();
    let t0 = 1_800_000_000u64;
    let fill = Instant::now();
    for round in 0..args.requests {
        for i in 0..args.clients {
            let path = match i % 10 {
                // A tenth probe for secrets: each becomes an actor.
                0 if round == 0 => "/.env".to_string(),
                _ => format!("/api/v1/orders/{}", (i.wrapping_mul(2_654_435_761) >> 12) % 50_000),
            };
            let mut ex = Exchange {
                ts: (t0 + round as u64 * 600 + i as u64 / 2_000) * 1_000_000_000,
                peer: std::net::IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()),
                method: "GET".into(),
                request: RequestText::new(&path).with_user_agent(Some(AGENTS[i as usize % AGENTS.len()])),
                status: Some([401, 403, 404][i as usize % 3]),
                ..Default::default()
            };
            enricher.enrich(&mut ex);
            engine.observe(&ex, &mut out);
            out.clear();
        }
    }
    let filled = fill.elapsed();
    let (clients, actors, keys) = (engine.clients(), engine.roster().len(), engine.keys());

    let t = Instant::now();
    let bytes = engine.snapshot()?;
    let encode = t.elapsed();
    let dir = TempDir::new("bench-snapshot");
    let path = dir.path("detect.snapshot");
    let t = Instant::now();
    rejectwatch::state::write_atomically(&path, |w| w.write_all(&bytes))?;
    let write = t.elapsed();
    drop(engine);
    let t = Instant::now();
    let read = std::fs::read(&path)?;
    let mut fresh = Engine::new(&cfg.detect, cfg.ipv6_prefix);
    let r = fresh.restore(&read)?;
    let restore = t.elapsed();
    anyhow::ensure!(
        r.clients == clients && r.actors == actors,
        "restored {r:?}, saved {clients} clients, {actors} actors"
    );
    println!(
        "engine: {clients} clients, {actors} actors, {keys} keys (filled in {:.1} s)\n\
         snapshot: {:.1} MB ({:.0} bytes a client); encode {:.2} s (under the lock), write {:.2} s, read + restore {:.2} s",
        filled.as_secs_f64(),
        bytes.len() as f64 / 1e6,
        bytes.len() as f64 / clients.max(1) as f64,
        encode.as_secs_f64(),
        write.as_secs_f64(),
        restore.as_secs_f64(),
    );
    Ok(())
}
