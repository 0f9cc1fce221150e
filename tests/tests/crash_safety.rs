//! Crash safety of the files rejectwatch writes for other programs and for
//! itself: a writer that keeps rewriting a blocklist (`.nft`), the state
//! file and the detection snapshot, each alternating between two versions,
//! is killed with SIGKILL at random moments 200 times. After every kill the
//! blocklist must be the whole previous or the whole new version (and `nft
//! -c -f` accepts it in a namespace of its own), the state file must load,
//! and the snapshot must be one version or the other byte for byte (each
//! shown to restore as itself).
//!
//! The writer is this test binary itself, run again as a child with
//! `CRASH_WRITER_DIR` set, so that the kill lands in a real process doing
//! exactly what the daemon does (`write_atomically`, `state::blocklist::save`,
//! `state::snapshot::write`).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use rejectwatch::{
    blocklist::{
        Blocklist, BlocklistConfig, Entry,
        exempt::Exemptions,
        format::{Format, Render},
    },
    detect::Engine,
    state::{self, write_atomically},
};
use rejectwatch_tests::*;

const NOW: u32 = 1_800_000_000;

/// Version `v` of the entries: a few thousand, so a write takes a while.
fn entries(v: u32) -> Vec<Entry> {
    (0..4000u32)
        .map(|i| Entry {
            net: format!("{}/32", std::net::Ipv4Addr::from(0xcb00_7100 + (i % 256) + ((i / 256) << 16)))
                .parse()
                .expect("net"),
            expires: NOW + 3600 + v,
            listed: NOW,
            seen: NOW,
            offences: 1 + v,
            actor: format!("a-v{v}-{i}"),
        })
        .collect()
}

fn nft(v: u32) -> String {
    Render { entries: &entries(v), now: NOW, nft_rule: true }.to_string(Format::Nft)
}

fn blocklist(v: u32) -> Blocklist {
    let cfg = BlocklistConfig { max_entries: 10_000, block_private: true, ..Default::default() };
    let mut b = Blocklist::new(&cfg, Exemptions::new(&cfg, &[], &[]));
    b.restore(entries(v), Vec::new(), NOW);
    b
}

/// The engine's config for the snapshots: the defaults without the two
/// detectors that build pattern automata, which took most of a debug
/// build's time to build for each of the 200 checks (what they save is the
/// same kind of bounded table the others save).
fn detect_config() -> rejectwatch::detect::spec::DetectConfig {
    use rejectwatch::detect::signals::{injection, sensitive};
    rejectwatch::detect::spec::DetectConfig {
        disabled: vec![sensitive::NAME.into(), injection::NAME.into()],
        ..Default::default()
    }
}

/// Clients in version `v` of the detection snapshot: what tells the two
/// apart once restored.
fn snapshot_clients(v: u32) -> usize {
    5_000 + v as usize
}

/// Version `v` of the detection snapshot: an engine that saw that many
/// rejected clients (a few megabytes, so a write takes a while).
fn snapshot(v: u32) -> Vec<u8> {
    let mut e = Engine::new(&detect_config(), 64);
    let mut out = Vec::new();
    for i in 0..snapshot_clients(v) as u32 {
        let ex = rejectwatch::exchange::Exchange {
            ts: (NOW as u64 + i as u64 / 100) * 1_000_000_000,
            peer: std::net::IpAddr::from((0x0a00_0000 + i).to_be_bytes()),
            method: "GET".into(),
            request: rejectwatch::exchange::RequestText::new(&format!("/orders/{i}")),
            status: Some(401),
            ..Default::default()
        };
        e.observe(&ex, &mut out);
    }
    e.snapshot().expect("snapshot")
}

/// Which version of the snapshot `bytes` restores as, if either.
fn restored_version(bytes: &[u8]) -> Result<u32, String> {
    let mut e = Engine::new(&detect_config(), 64);
    let r = e.restore(bytes).map_err(|e| format!("the snapshot does not load: {e}"))?;
    (0..2).find(|&v| snapshot_clients(v) == r.clients).ok_or(format!("restored {} clients", r.clients))
}

/// Which version the snapshot in `dir` is. It must be one of `versions`
/// byte for byte, each shown to restore as itself once; restoring it after
/// every kill too took a debug build 0.3 s, most of the test's time, and
/// said no more. Every `full` check restores the file itself as well.
fn snapshot_version(dir: &Path, versions: &[Vec<u8>; 2], full: bool) -> Result<u32, String> {
    let bytes = std::fs::read(state::snapshot::file(dir)).map_err(|e| format!("the snapshot vanished: {e}"))?;
    let v = versions
        .iter()
        .position(|v| *v == bytes)
        .ok_or(format!("the snapshot is neither version ({} bytes)", bytes.len()))?;
    if full && restored_version(&bytes)? != v as u32 {
        return Err(format!("version {v} of the snapshot restores as the other"));
    }
    Ok(v as u32)
}

/// The child: rewrites the files forever, alternating versions.
fn writer(dir: &Path) -> ! {
    // Made once by the parent: made here, every writer would spend its
    // first half second on it.
    let snap = |v| std::fs::read(dir.join(format!("snapshot.v{v}"))).expect("snapshot version");
    let versions = [(nft(0), blocklist(0), snap(0)), (nft(1), blocklist(1), snap(1))];
    let path = dir.join("blocklist.nft");
    // Told to the parent, so that its kill lands while this writes.
    std::fs::write(dir.join("writing"), b"").expect("marker");
    // Kills land in a writer's first few writes, so the writers vary
    // which version, and which file, they write first: always the same,
    // the files on disk stayed the first version, and a kill never fell in
    // the write that replaces one, nor in the snapshot's, written last.
    let pid = std::process::id() as usize;
    let first = pid % 2;
    loop {
        for (text, b, snap) in [&versions[first], &versions[1 - first]] {
            for file in (0..3).map(|i| (i + pid / 2) % 3) {
                match file {
                    0 => write_atomically(&path, |w| w.write_all(text.as_bytes())).expect("write blocklist"),
                    1 => state::blocklist::save(dir, b).expect("save state"),
                    _ => drop(state::snapshot::write(dir, (snap.clone(), Duration::ZERO)).expect("write snapshot")),
                }
            }
        }
    }
}

#[test]
fn writes_survive_sigkill() {
    if let Some(dir) = std::env::var_os("CRASH_WRITER_DIR") {
        writer(Path::new(&dir));
    }
    if !kernel_tests_possible("writes_survive_sigkill") {
        return;
    }
    let dir = TempDir::new("crash");
    let versions = [nft(0), nft(1)];
    assert_ne!(versions[0], versions[1]);
    let snapshots = [snapshot(0), snapshot(1)];
    for (v, bytes) in snapshots.iter().enumerate() {
        assert_eq!(restored_version(bytes), Ok(v as u32));
        std::fs::write(dir.path(&format!("snapshot.v{v}")), bytes).expect("snapshot version");
    }
    let ns = Netns::new(NetnsOptions::default());
    let me = std::env::current_exe().expect("test binary");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let spawn = || {
        Command::new(&me)
            .args(["--exact", "writes_survive_sigkill", "--test-threads", "1"])
            .env("CRASH_WRITER_DIR", &dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the writer")
    };
    // A first version on disk, and the state beside it.
    let mut first = spawn();
    while !(dir.path("blocklist.nft").exists()
        && state::blocklist::file(&dir.0).exists()
        && state::snapshot::file(&dir.0).exists())
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let mut seen = [0u32; 2];
    let mut snapshots_seen = [0u32; 2];
    let marker = dir.path("writing");
    for kill in 0..200 {
        let _ = std::fs::remove_file(&marker);
        let mut child = spawn();
        // Once it is writing (however slowly this machine starts it), at a
        // random moment within a few of its writes.
        let start = std::time::Instant::now();
        while !marker.exists() {
            assert!(start.elapsed() < Duration::from_secs(30), "the writer never started");
            std::thread::sleep(Duration::from_micros(200));
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_micros(x % 20_000));
        child.kill().expect("SIGKILL");
        let _ = child.wait();

        let path = dir.path("blocklist.nft");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("kill {kill}: the blocklist vanished: {e}"));
        let which = versions.iter().position(|v| *v == text);
        let which =
            which.unwrap_or_else(|| panic!("kill {kill}: the blocklist is neither version ({} bytes)", text.len()));
        seen[which] += 1;
        let mut b = blocklist(0);
        state::blocklist::load(&dir.0, &mut b, NOW)
            .unwrap_or_else(|e| panic!("kill {kill}: the state file does not load: {e:#}"));
        assert_eq!(b.len(), 4000, "kill {kill}: the state file lost entries");
        let v = snapshot_version(&dir.0, &snapshots, kill % 50 == 0).unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        snapshots_seen[v as usize] += 1;
        // Temporary files of killed writes are left for nobody to read
        // (they are never renamed over), and are not what loaders see.
        if kill % 50 == 0 {
            check_loads(&ns, &path);
        }
    }
    // What killed writers left is cleared by the next whole write.
    let before = leftovers(&dir.0);
    write_atomically(&dir.path("blocklist.nft"), |w| w.write_all(versions[0].as_bytes())).expect("write");
    state::blocklist::save(&dir.0, &blocklist(0)).expect("save");
    state::snapshot::write(&dir.0, (snapshot(0), Duration::ZERO)).expect("write snapshot");
    assert_eq!(leftovers(&dir.0), 0, "temporary files of killed writers left behind");
    eprintln!(
        "200 kills survived; versions {seen:?}, snapshots {snapshots_seen:?}; {before} temporary files of killed \
         writes, cleared by the next"
    );
}

fn check_loads(ns: &Netns, path: &Path) {
    let out = ns.exec(&ns.srv, &["nft", "-c", "-f", path.to_str().expect("utf-8")]).output().expect("nft");
    assert!(out.status.success(), "nft -c -f refused it: {}", String::from_utf8_lossy(&out.stderr));
}

fn leftovers(dir: &PathBuf) -> usize {
    std::fs::read_dir(dir)
        .map_or(0, |d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().contains(".tmp")).count())
}
