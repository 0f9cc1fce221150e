//! Operational behaviour of `rejectwatch run` on the real kernel: clear
//! errors, nothing left attached after SIGKILL, drops counted when the ring
//! buffer overflows, and unanswered requests reported on live time.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::Command,
    time::{Duration, Instant},
};

use rejectwatch_tests::*;

/// `rejectwatch` as user `u` holding only capabilities `caps` (e.g.
/// `+bpf,+net_admin`; empty for none), as the systemd unit runs it.
fn as_user(u: &str, caps: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", u, "--regid", u, "--clear-groups"]);
    if caps.is_empty() {
        c.args(["--inh-caps=-all", "--bounding-set=-all"]);
    } else {
        c.arg(format!("--inh-caps=-all,{caps}"))
            .arg(format!("--ambient-caps={caps}"))
            .arg(format!("--bounding-set=-all,{caps}"));
    }
    c.arg(rejectwatch_bin());
    c
}

fn run_error(args: &[&str], user: Option<(&str, &str)>) -> String {
    let mut cmd = match user {
        Some((u, caps)) => as_user(u, caps),
        None => Command::new(rejectwatch_bin()),
    };
    let out = cmd.arg("run").args(args).output().expect("run rejectwatch");
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[test]
fn run_errors_are_one_clear_line() {
    if !kernel_tests_possible("run_errors_are_one_clear_line") {
        return;
    }
    let e = run_error(&["--iface", "nosuchif0", "--listen", "127.0.0.1:0"], None);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("no such network interface: nosuchif0"), "{e}");

    // A state directory that user can write, so the eBPF load is what fails.
    let state = TempDir::new("nobody");
    std::fs::set_permissions(&state.0, std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
    let dir = state.path("state");
    let args = ["--iface", "lo", "--listen", "127.0.0.1:0", "--state-dir", dir.to_str().unwrap()];
    let e = run_error(&args, Some(("65534", "")));
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("not permitted") && e.contains("CAP_BPF"), "{e}");
    // Without CAP_PERFMON the verifier refuses the packet access: still
    // one line, naming it.
    let e = run_error(&args, Some(("65534", "+bpf,+net_admin")));
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("not permitted") && e.contains("CAP_PERFMON"), "{e}");
}

/// The systemd unit's claim: an unprivileged user with CAP_BPF,
/// CAP_PERFMON and CAP_NET_ADMIN only runs the daemon.
#[test]
fn runs_unprivileged_with_the_units_capabilities() {
    if !kernel_tests_possible("runs_unprivileged_with_the_units_capabilities") {
        return;
    }
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/systemd/rejectwatch.service"))
        .expect("read the unit");
    assert!(unit.contains("\nAmbientCapabilities=CAP_BPF CAP_PERFMON CAP_NET_ADMIN\n"), "{unit}");
    assert!(unit.contains("\nCapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_NET_ADMIN\n"), "{unit}");
    let state = TempDir::new("unprivileged");
    std::fs::set_permissions(&state.0, std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
    let dir = state.path("state");
    let listener = TcpListener::bind("127.0.0.1:0").expect("free port");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let listen = format!("127.0.0.1:{port}");
    let mut child = as_user("65534", "+bpf,+perfmon,+net_admin")
        .args(["run", "--iface", "lo", "--port", "18080", "--listen", &listen, "--state-dir", dir.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    let metrics = loop {
        if let Ok(mut s) = TcpStream::connect(&listen) {
            let mut body = String::new();
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("send");
            s.read_to_string(&mut body).expect("read");
            break body;
        }
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!("exited with {st}: {err}");
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no /metrics within 15 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(metrics.contains("rejectwatch_kernel_packets_total"), "{metrics}");
}

/// The BPF link and program ids a process holds, from its fdinfo.
fn bpf_ids(pid: u32) -> (Vec<String>, Vec<String>) {
    let (mut links, mut progs) = (Vec::new(), Vec::new());
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo")).expect("fdinfo").flatten() {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        for line in info.lines() {
            if let Some(id) = line.strip_prefix("link_id:") {
                links.push(id.trim().to_string());
            } else if let Some(id) = line.strip_prefix("prog_id:") {
                progs.push(id.trim().to_string());
            }
        }
    }
    links.sort();
    links.dedup();
    progs.sort();
    progs.dedup();
    (links, progs)
}

fn exists(kind: &str, id: &str) -> bool {
    Command::new("bpftool").args([kind, "show", "id", id]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn nothing_stays_attached_after_sigkill() {
    if !kernel_tests_possible("nothing_stays_attached_after_sigkill") {
        return;
    }
    let net = Netns::new(NetnsOptions::default());
    let dir = TempDir::new("kill");
    let daemon = Daemon::start(&net, &net.srv, &dir, &["--iface", &net.srv_if, "--port", "80"]);
    let (links, progs) = bpf_ids(daemon.pid());
    // An XDP link and a tcx link, and the two programs behind them.
    assert_eq!(links.len(), 2, "links {links:?}");
    assert!(progs.len() >= 2, "programs {progs:?}");
    assert!(links.iter().all(|l| exists("link", l)));
    daemon.kill();
    let start = Instant::now();
    loop {
        let left: Vec<_> =
            links.iter().filter(|l| exists("link", l)).chain(progs.iter().filter(|p| exists("prog", p))).collect();
        if left.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "still present after SIGKILL: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ring_buffer_overflow_is_counted() {
    if !kernel_tests_possible("ring_buffer_overflow_is_counted") {
        return;
    }
    let net = Netns::new(NetnsOptions::default());
    let dir = TempDir::new("drops");
    let _nginx = nginx(&net, &net.srv, &dir, &format!("server {{ listen {SRV_V4}:80; {NGINX_LOCATIONS} }}"));
    wait_listening(&net.cli, format!("{SRV_V4}:80").parse().unwrap());
    // A one-page ring drained once a second overflows under a burst.
    let daemon = Daemon::start(
        &net,
        &net.srv,
        &dir,
        &[
            "--iface",
            &net.srv_if,
            "--port",
            "80",
            "--ringbuf-size",
            "4096",
            "--drain-interval",
            "1s",
            "--wakeup-bytes",
            "1000000",
        ],
    );
    Netns::within(&net.cli, || {
        let mut s = TcpStream::connect(format!("{SRV_V4}:80")).expect("connect");
        let mut r = std::io::BufReader::new(s.try_clone().expect("clone"));
        for _ in 0..200 {
            s.write_all(b"GET /auth HTTP/1.1\r\nHost: api.test\r\nUser-Agent: burst/1\r\n\r\n").expect("send");
            assert_eq!(read_response(&mut r), 401);
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    let m = daemon.metrics();
    let drops = metric_sum(&m, "rejectwatch_ringbuf_drops_total");
    let exchanges = metric_sum(&m, "rejectwatch_http_exchanges_total");
    assert!(drops > 0, "no drops counted:\n{m}");
    assert!(exchanges < 200, "{exchanges} exchanges despite {drops} drops");
    let _ = daemon.stop();
}

#[test]
fn unanswered_request_is_reported_after_the_timeout() {
    if !kernel_tests_possible("unanswered_request_is_reported_after_the_timeout") {
        return;
    }
    let net = Netns::new(NetnsOptions::default());
    let dir = TempDir::new("timeout");
    // A server that reads the request and never answers.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let server = Netns::spawn_within(&net.srv, move || {
        let l = TcpListener::bind(format!("{SRV_V4}:8080")).expect("bind");
        let (mut c, _) = l.accept().expect("accept");
        let mut buf = [0u8; 1024];
        let _ = c.read(&mut buf);
        let _ = rx.recv_timeout(Duration::from_secs(20));
    });
    wait_listening(&net.cli, format!("{SRV_V4}:8080").parse().unwrap());
    let daemon =
        Daemon::start(&net, &net.srv, &dir, &["--iface", &net.srv_if, "--port", "8080", "--response-timeout", "1s"]);
    let client = Netns::spawn_within(&net.cli, || {
        let mut s = TcpStream::connect(format!("{SRV_V4}:8080")).expect("connect");
        s.write_all(b"GET /hangs HTTP/1.1\r\nHost: api.test\r\nUser-Agent: waiter/1\r\n\r\n").expect("send");
        std::thread::sleep(Duration::from_secs(4));
    });
    let m = daemon.wait_exchanges(1);
    assert_eq!(metric_series(&m, "rejectwatch_unmatched_total").get("side=\"request\""), Some(&1), "{m}");
    assert_eq!(
        metric_series(&m, "rejectwatch_http_exchanges_total").get("method=\"GET\",status=\"none\""),
        Some(&1),
        "{m}"
    );
    let ex = daemon.stop();
    assert_eq!(ex.len(), 1, "{ex:?}");
    assert_eq!((ex[0]["target"].as_str(), ex[0]["status"].is_null()), (Some("/hangs"), true));
    let _ = tx.send(());
    client.join().expect("client");
    server.join().expect("server");
}

#[test]
fn bench_floors_pass_the_verifier() {
    // The benchmark's floors only ever load under `cargo xtask
    // bench-kernel`; loading them here (attached nowhere) keeps a change
    // the verifier rejects from reaching the bench first.
    use rejectwatch::source::ebpf::{self, AttachMode, Floor};
    for programs in [(ebpf::FLOOR_XDP_PROGRAM, ebpf::FLOOR_TC_PROGRAM), (ebpf::LOOK_XDP_PROGRAM, ebpf::LOOK_TC_PROGRAM)]
    {
        if let Err(e) = Floor::attach(&[], AttachMode::Auto, programs) {
            panic!("{programs:?} did not load: {e}");
        }
    }
}
