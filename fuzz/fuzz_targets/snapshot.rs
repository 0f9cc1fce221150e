//! The detection snapshot as a restarting daemon reads it back: the file's
//! bytes are its own (written by an earlier run), but a disk, a copy or an
//! operator can hand it anything. The input drives an engine through a
//! few exchanges (clients, paths, statuses, agents from the bytes), takes
//! its snapshot, flips bytes of the payload where the input says and
//! frames it again (so the checksum holds and the decoder, not the
//! checksum, meets the damage), then restores it into a fresh engine. A
//! restore that succeeds must give an engine that snapshots again.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rejectwatch::{
    detect::{
        Engine,
        signals::{injection, sensitive},
        snapshot,
        spec::DetectConfig,
    },
    exchange::{Exchange, RequestText},
};
use rejectwatch_fuzz::Bytes;

const PATHS: [&str; 6] = ["/login", "/api/v1/users/7", "/.env", "/export.csv", "/wp-login.php", "/items?page=2"];
const AGENTS: [&str; 4] = ["python-requests/2.32.5", "curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64)", ""];
const STATUSES: [u16; 6] = [200, 401, 403, 404, 429, 500];

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    // Small tables keep each snapshot small. The two detectors that build
    // pattern automata are left out: building them took 97% of a run
    // (50 runs a second), and what they save is the same bounded tables
    // the others save.
    static CFG: OnceLock<DetectConfig> = OnceLock::new();
    let cfg = CFG.get_or_init(|| DetectConfig {
        max_clients: 64,
        max_endpoints: 64,
        max_actors: 32,
        disabled: vec![sensitive::NAME.into(), injection::NAME.into()],
        ..Default::default()
    });
    let mut engine = Engine::new(cfg, 64);
    let mut out = Vec::new();
    let mut ts: u64 = 1_700_000_000_000_000_000;
    for _ in 0..(b.u8() % 64) {
        ts += u64::from(b.u16()) * 1_000_000_000;
        let peer = std::net::IpAddr::from([198, 51, 100, b.u8() % 16]);
        let mut request = RequestText::new(PATHS[b.u8() as usize % PATHS.len()]);
        let agent = AGENTS[b.u8() as usize % AGENTS.len()];
        if !agent.is_empty() {
            request = request.with_user_agent(Some(agent));
        }
        let ex = Exchange {
            ts,
            peer,
            method: "GET".into(),
            request,
            status: Some(STATUSES[b.u8() as usize % STATUSES.len()]),
            ..Default::default()
        };
        engine.observe(&ex, &mut out);
    }
    let Ok(good) = engine.snapshot() else { return };
    let Ok(payload) = snapshot::unframe(&good) else { return };
    let mut payload = payload.to_vec();
    // Damage: (position, xor) pairs, or a cut.
    while !b.is_empty() && !payload.is_empty() {
        match b.u8() {
            0 => payload.truncate(b.u16() as usize % (payload.len() + 1)),
            x => {
                let at = b.u16() as usize % payload.len();
                payload[at] ^= x;
            }
        }
    }
    let mut fresh = Engine::new(cfg, 64);
    if fresh.restore(&snapshot::frame(&payload)).is_ok() {
        let _ = fresh.snapshot();
    }
});
