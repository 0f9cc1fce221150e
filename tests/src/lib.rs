//! Harness for rejectwatch's end-to-end tests: network namespaces joined by
//! a veth pair (created and deleted by each test), nginx as the real server,
//! rejectwatch run as a real process inside the server namespace, and
//! clients that run on a thread moved into the client namespace.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;

pub const SRV_V4: &str = "10.200.0.1";
pub const CLI_V4: &str = "10.200.0.2";
pub const SRV_V6: &str = "fd00:200::1";
pub const CLI_V6: &str = "fd00:200::2";

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the kernel tests can run here. They need root; where they are
/// required (CI sets REJECTWATCH_REQUIRE_KERNEL=1) their absence fails.
pub fn kernel_tests_possible(test: &str) -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    let tools = ["nginx", "ip", "tcpdump", "curl"].iter().all(|t| {
        Command::new("sh").args(["-c", &format!("command -v {t}")]).output().is_ok_and(|o| o.status.success())
    });
    if root && tools {
        return true;
    }
    let why = if root { "nginx, iproute2, tcpdump and curl are needed (scripts/deps.sh)" } else { "it needs root" };
    if std::env::var_os("REJECTWATCH_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("{test}: cannot run the kernel test: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// A Python interpreter that imports `modules`, for the tests that check
/// an output with its reference library (scripts/deps.sh installs them).
/// Where none does, the test is skipped with the reason, unless tests are
/// required to run (REJECTWATCH_REQUIRE_KERNEL=1, as in CI): then it fails.
pub fn python_with(test: &str, modules: &[&str]) -> Option<String> {
    let import = format!("import {}", modules.join(", "));
    // The system's interpreter, where pip put them, may not be the first
    // on PATH (pyenv).
    for py in ["python3", "/usr/bin/python3"] {
        if Command::new(py).args(["-c", &import]).output().is_ok_and(|o| o.status.success()) {
            return Some(py.to_string());
        }
    }
    let why = format!("no python3 imports {} (scripts/deps.sh installs them)", modules.join(", "));
    if std::env::var_os("REJECTWATCH_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("{test}: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
    None
}

/// Checks a STIX 2.1 bundle with the reference libraries: `stix2` must
/// parse it (no custom content) and `stix2-validator` find no error.
/// Returns the validator's report, warnings included, on failure.
pub fn check_stix(py: &str, bundle: &Path) -> Result<(), String> {
    const SCRIPT: &str = r#"
import sys, stix2, stix2validator
text = open(sys.argv[1]).read()
stix2.parse(text, allow_custom=False)
opts = stix2validator.ValidationOptions(version="2.1")
res = stix2validator.validate_string(text, opts)
if not res.is_valid:
    stix2validator.print_results(res)
    sys.exit(1)
"#;
    let out = Command::new(py)
        .args(["-c", SCRIPT, bundle.to_str().expect("utf-8")])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Two namespaces (server, client) joined by a veth pair, IPv4 and IPv6.
pub struct Netns {
    pub srv: String,
    pub cli: String,
    pub srv_if: String,
    pub cli_if: String,
}

pub struct NetnsOptions {
    pub mtu: u32,
    /// Disable segmentation offloads on the client side so a large write
    /// really leaves as several MTU-sized segments.
    pub segment_on_client: bool,
}

impl Default for NetnsOptions {
    fn default() -> Self {
        Self { mtu: 1500, segment_on_client: true }
    }
}

impl Netns {
    pub fn new(opts: NetnsOptions) -> Self {
        let id = format!("rw{}x{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst));
        let n =
            Self { srv: format!("{id}s"), cli: format!("{id}c"), srv_if: format!("{id}S"), cli_if: format!("{id}C") };
        sh(&["ip", "netns", "add", &n.srv]);
        sh(&["ip", "netns", "add", &n.cli]);
        sh(&[
            "ip", "link", "add", &n.srv_if, "netns", &n.srv, "type", "veth", "peer", "name", &n.cli_if, "netns", &n.cli,
        ]);
        let mtu = opts.mtu.to_string();
        for (ns, dev, v4, v6) in [(&n.srv, &n.srv_if, SRV_V4, SRV_V6), (&n.cli, &n.cli_if, CLI_V4, CLI_V6)] {
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            sh(&["ip", "-n", ns, "link", "set", dev, "mtu", &mtu]);
            sh(&["ip", "-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev]);
            sh(&["ip", "-n", ns, "addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        if opts.segment_on_client {
            sh(&["ip", "netns", "exec", &n.cli, "ethtool", "-K", &n.cli_if, "tso", "off", "gso", "off"]);
        }
        n
    }

    /// Runs `f` on a thread that lives in namespace `ns`.
    pub fn within<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        Self::spawn_within(ns, f).join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// Like [`Netns::within`], but returns at once; the thread runs on.
    pub fn spawn_within<T: Send + 'static>(
        ns: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            let fd = fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            use std::os::fd::AsRawFd as _;
            // SAFETY: setns on this thread only; the fd is a netns file.
            if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                panic!("setns {path}: {}", std::io::Error::last_os_error());
            }
            f()
        })
    }

    pub fn exec(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(args);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth, and so the pair.
        for ns in [&self.srv, &self.cli] {
            let _ = Command::new("ip").args(["netns", "pids", ns]).output().map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            });
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "rejectwatch-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        Self(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Proc {
    pub fn terminate(mut self) -> std::process::Output {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let child = std::mem::replace(&mut self.child, Command::new("true").spawn().expect("spawn true"));
        child.wait_with_output().unwrap_or_else(|e| panic!("{}: wait: {e}", self.name))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nginx locations every test server has.
pub const NGINX_LOCATIONS: &str = r#"
    location = /ok { return 200 "ok\n"; }
    location = /auth { return 401; }
    location = /forbidden { return 403; }
    location = /limited { return 429; }
    location /api/ { return 404; }
"#;

/// A running tcpdump.
pub struct Tcpdump {
    proc: Proc,
    /// Its stderr after "listening on": the exit summary.
    summary: std::thread::JoinHandle<String>,
}

/// Starts tcpdump on `iface` in `ns`, writing every packet matching
/// `filter` to `pcap` as it comes; returns once it is capturing (a fixed
/// sleep lost the first packets on a busy machine).
///
/// The ring is sized for bursts. In immediate mode libpcap's ring has one
/// fixed slot per packet, sized by the snapshot length: with `-s 0` (256
/// KiB) its default 2 MiB held a handful of packets, and on a loaded
/// machine the kernel dropped part of a test's burst (10 of 54 packets,
/// about one run in four), which the test then missed offline.
pub fn tcpdump(net: &Netns, ns: &str, iface: &str, pcap: &Path, filter: &str) -> Tcpdump {
    let pcap = pcap.to_str().expect("utf-8");
    let ring = ["-s", "16384", "-B", "65536"];
    let args =
        [&["tcpdump", "--immediate-mode", "-Z", "root", "-i", iface][..], &ring, &["-U", "-w", pcap, filter]].concat();
    let mut child = net.exec(ns, &args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("tcpdump");
    let mut err = BufReader::new(child.stderr.take().expect("tcpdump stderr"));
    let proc = Proc { child, name: "tcpdump" };
    let mut line = String::new();
    loop {
        line.clear();
        match err.read_line(&mut line) {
            Ok(0) | Err(_) => panic!("tcpdump ended before capturing"),
            Ok(_) if line.contains("listening on") => break,
            Ok(_) => {}
        }
    }
    // Read as it comes, so that the exit summary never blocks on a full pipe.
    let summary = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    Tcpdump { proc, summary }
}

impl Tcpdump {
    /// Stops it; fails the test if the kernel dropped any packet it
    /// matched, since the capture would then not be the traffic.
    pub fn stop(self) {
        let _ = self.proc.terminate();
        let summary = self.summary.join().unwrap_or_default();
        assert!(summary.lines().any(|l| l == "0 packets dropped by kernel"), "tcpdump lost packets:\n{summary}");
    }
}

/// Starts nginx in `ns` with `servers` (server blocks) in a fresh config.
pub fn nginx(net: &Netns, ns: &str, dir: &TempDir, servers: &str) -> Proc {
    let root = dir.path("www");
    fs::create_dir_all(&root).expect("www dir");
    let d = dir.0.display();
    let conf = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         root {r};\n  keepalive_requests 1000;\n{servers}\n}}\n",
        r = root.display()
    );
    let path = dir.path("nginx.conf");
    fs::write(&path, conf).expect("write nginx.conf");
    let child = net
        .exec(ns, &["nginx", "-c", path.to_str().expect("utf-8"), "-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nginx");
    let p = Proc { child, name: "nginx" };
    std::thread::sleep(Duration::from_millis(300));
    p
}

/// Waits until a TCP connect to `addr` from `ns` succeeds.
pub fn wait_listening(ns: &str, addr: SocketAddr) {
    Netns::within(ns, move || {
        let start = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                panic!("nothing listens on {addr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// The rejectwatch binary built for the tests (cargo builds the package's
/// binaries before its integration tests and names them in the environment).
pub fn rejectwatch_bin() -> String {
    if let Ok(p) = std::env::var("CARGO_BIN_EXE_rejectwatch-e2e") {
        return p;
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join("rejectwatch-e2e").to_string_lossy().into_owned()
}

/// rejectwatch `run` inside `ns`, ready once it says it is watching.
pub struct Daemon {
    proc: Proc,
    pub exchanges: PathBuf,
    pub listen: SocketAddr,
    pub ns: String,
    /// Every line it wrote on stderr so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn start(net: &Netns, ns: &str, dir: &TempDir, args: &[&str]) -> Self {
        Self::start_bin(&rejectwatch_bin(), net, ns, dir, args)
    }

    /// Like [`Daemon::start`] with a given binary (the bench uses release).
    pub fn start_bin(bin: &str, net: &Netns, ns: &str, dir: &TempDir, args: &[&str]) -> Self {
        Self::start_full(bin, net, ns, dir, args, "127.0.0.1:9617".parse().expect("addr"), true, &[])
    }

    /// Like [`Daemon::start`], run by `wrapper` (a command that ends by
    /// running its arguments, such as `unshare -m …`).
    pub fn start_wrapped(net: &Netns, ns: &str, dir: &TempDir, args: &[&str], wrapper: &[&str]) -> Self {
        Self::start_full(&rejectwatch_bin(), net, ns, dir, args, "127.0.0.1:9617".parse().expect("addr"), true, wrapper)
    }

    /// Like [`Daemon::start_bin`], without the exchange log the tests read:
    /// the daemon as the service unit runs it (for the bench).
    pub fn start_deployed(bin: &str, net: &Netns, ns: &str, dir: &TempDir, args: &[&str]) -> Self {
        Self::start_full(bin, net, ns, dir, args, "127.0.0.1:9617".parse().expect("addr"), false, &[])
    }

    /// Like [`Daemon::start`], listening on `listen`.
    pub fn start_listen(net: &Netns, ns: &str, dir: &TempDir, args: &[&str], listen: SocketAddr) -> Self {
        Self::start_full(&rejectwatch_bin(), net, ns, dir, args, listen, true, &[])
    }

    #[allow(clippy::too_many_arguments)] // private; each caller names what it varies
    fn start_full(
        bin: &str,
        net: &Netns,
        ns: &str,
        dir: &TempDir,
        args: &[&str],
        listen: SocketAddr,
        log_exchanges: bool,
        wrapper: &[&str],
    ) -> Self {
        let exchanges = dir.path("exchanges.jsonl");
        let mut cmd = match wrapper.split_first() {
            None => net.exec(ns, &[bin, "run"]),
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).args(["ip", "netns", "exec", ns, bin, "run"]);
                c
            }
        };
        cmd.args(args).args(["--listen", &listen.to_string()]);
        if log_exchanges {
            cmd.args(["--exchanges", exchanges.to_str().expect("utf-8")]);
        }
        cmd.args(["--state-dir", dir.path("state").to_str().expect("utf-8")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn rejectwatch");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            let mut ready = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[rejectwatch] {line}");
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line.clone());
                if !ready && line.contains("watching") {
                    ready = true;
                    let _ = tx.send(Ok(()));
                }
                if !ready && (line.starts_with("rejectwatch:") || line.starts_with("error:")) {
                    let _ = tx.send(Err(line));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => {}
            Ok(Err(line)) => panic!("rejectwatch did not start: {line}"),
            Err(_) => panic!("rejectwatch did not start within 30 s"),
        }
        Self { proc: Proc { child, name: "rejectwatch" }, exchanges, listen, ns: ns.to_string(), log }
    }

    /// The daemon's process id (`ip netns exec` execs it in place).
    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    /// CPU time (user + system) the daemon has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the parenthesised command name start at field 3
        // (state); utime and stime are fields 14 and 15, in clock ticks.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let ticks = field(14) + field(15);
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_nanos(ticks * 1_000_000_000 / hz)
    }

    pub fn metrics(&self) -> String {
        let addr = self.listen;
        Netns::within(&self.ns, move || http_get(addr, "/metrics"))
    }

    /// Waits until `rejectwatch_http_exchanges_total` sums to `n`.
    pub fn wait_exchanges(&self, n: u64) -> String {
        self.wait_metric("rejectwatch_http_exchanges_total", n)
    }

    /// Waits (up to 15 s) until the series of `name` sum to at least `n`;
    /// returns the metrics page that showed it.
    pub fn wait_metric(&self, name: &str, n: u64) -> String {
        let start = Instant::now();
        loop {
            let m = self.metrics();
            let total = metric_sum(&m, name);
            if total >= n {
                return m;
            }
            if start.elapsed() > Duration::from_secs(15) {
                panic!("{name}: only {total} of {n} after 15 s; metrics:\n{m}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the daemon with SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }

    /// Stops the daemon (SIGTERM) and returns the exchanges it wrote.
    pub fn stop(self) -> Vec<Value> {
        let out = self.proc.terminate();
        assert!(out.status.success(), "rejectwatch exited with {}", out.status);
        read_jsonl(&self.exchanges)
    }
}

pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// A one-shot HTTP/1.0 GET, returning the body.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

/// One HTTP/1.0 request with extra header lines; returns status and body.
pub fn http_request(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    write!(s, "{head}\r\n{body}").expect("send");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    let status = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// `curl` from namespace `ns` with source address `from`: one process,
/// one keep-alive connection for all `urls`; returns the statuses, 0 for a
/// request that got no answer within `timeout`.
pub fn curl_from(ns: &str, from: &str, ua: &str, urls: &[String], timeout: Duration) -> Vec<u16> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "curl", "-s", "--interface", from, "-A", ua]);
    cmd.args(["--max-time", &format!("{:.1}", timeout.as_secs_f64()), "-w", "%{http_code}\n", "--path-as-is"]);
    for u in urls {
        // Each URL needs its own output, or the bodies join the codes.
        cmd.args(["-o", "/dev/null", u]);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    let mut codes: Vec<u16> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().parse().unwrap_or(0)).collect();
    codes.resize(urls.len(), 0);
    codes
}

/// Sum of every series of a metric in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> u64 {
    metric_series(text, name).values().sum()
}

/// Series of a metric: label set → value.
pub fn metric_series(text: &str, name: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => {
                    let (labels, v) = r.split_once('}')?;
                    (labels.to_string(), v.trim())
                }
                None if rest.starts_with(' ') => (String::new(), rest.trim()),
                None => return None,
            };
            Some((labels, value.parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// Reads one HTTP/1.1 response (head + Content-Length body) from `s`.
pub fn read_response(s: &mut impl BufRead) -> u16 {
    let mut status_line = String::new();
    s.read_line(&mut status_line).expect("status line");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        s.read_line(&mut line).expect("header line");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().expect("content-length");
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("body");
    status
}

/// The fields of an exchange that do not depend on when or how it was
/// captured, as a sortable key for comparing runs.
pub fn exchange_key(v: &Value) -> String {
    format!(
        "{} {} {} status={} ua={} host={} trunc={} headers={}",
        v["peer"].as_str().unwrap_or("?"),
        v["method"].as_str().unwrap_or("?"),
        v["target"].as_str().unwrap_or("?"),
        v["status"],
        v["user_agent"],
        v["host"],
        v["truncated"],
        v["header_names"],
    )
}

/// The sorted [`exchange_key`]s of `exchanges`.
pub fn exchange_keys(exchanges: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = exchanges.iter().map(exchange_key).collect();
    keys.sort();
    keys
}

/// Analyses the capture `tcpdump` is writing to `pcap` (with `extra`
/// flags) until it gives the same exchanges as `live`, the daemon's of the
/// same packets, or 20 s pass; then stops tcpdump and returns the sorted
/// keys of the capture's exchanges and analyze's summary from the file as
/// tcpdump left it. tcpdump writes each packet once it has read it, and on
/// a loaded machine it may read the last ones late: the capture is read
/// until it agrees rather than after a fixed pause.
pub fn offline_keys(tcpdump: Tcpdump, pcap: &Path, extra: &[&str], live: &[Value]) -> (Vec<String>, String) {
    let want = exchange_keys(live);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let (offline, _) = analyze(&[pcap], extra);
        if exchange_keys(&offline) == want {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    tcpdump.stop();
    let (offline, summary) = analyze(&[pcap], extra);
    (exchange_keys(&offline), summary)
}

/// Runs `rejectwatch analyze FILES EXTRA --state-dir TMP`; returns stderr.
pub fn analyze_with(files: &[&Path], extra: &[&str]) -> String {
    let dir = TempDir::new("analyze");
    let mut cmd = Command::new(rejectwatch_bin());
    cmd.arg("analyze").args(files).args(extra);
    cmd.args(["--state-dir", dir.path("state").to_str().expect("utf-8")]);
    let o = cmd.output().expect("run analyze");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "analyze failed: {stderr}");
    stderr
}

/// Runs `rejectwatch analyze` and returns its exchanges and stderr.
pub fn analyze(files: &[&Path], extra: &[&str]) -> (Vec<Value>, String) {
    let dir = TempDir::new("analyze");
    let out = dir.path("exchanges.jsonl");
    let mut cmd = Command::new(rejectwatch_bin());
    cmd.arg("analyze").args(files).args(extra).args(["--exchanges", out.to_str().expect("utf-8")]);
    cmd.args(["--state-dir", dir.path("state").to_str().expect("utf-8")]);
    let o = cmd.output().expect("run analyze");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "analyze failed: {stderr}");
    (read_jsonl(&out), stderr)
}
