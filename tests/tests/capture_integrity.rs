//! How a sender splits its bytes must not hide a request or move a status,
//! on the kernel path: clients and a scripted server in namespaces that
//! control segmentation (TCP_NODELAY writes with pauses), rejectwatch on
//! the server's veth. The same packets, captured and analysed offline,
//! must give the same exchanges.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    process::Stdio,
    time::Duration,
};

use rejectwatch_tests::*;

/// A keep-alive server whose answers are scripted per path: a good one, a
/// malformed status line, and a status line written in two segments split
/// before its code.
const SCRIPTED_SERVER: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = c.makefile("rb")
    while True:
        line = f.readline()
        if not line:
            break
        path = line.split(b" ")[1] if len(line.split(b" ")) > 1 else b"/"
        while f.readline() not in (b"\r\n", b"\n", b""):
            pass
        if path == b"/2":
            c.sendall(b"HTTP/1.1 2 OK\r\nContent-Length: 2\r\n\r\nok")
        elif path == b"/3":
            c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        elif path == b"/split":
            c.sendall(b"HTTP/1.1 4")
            time.sleep(0.1)
            c.sendall(b"03 Forbidden\r\nContent-Length: 0\r\n\r\n")
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    c.close()
"#;

fn connect(addr: &str) -> TcpStream {
    let addr: SocketAddr = addr.parse().expect("addr");
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s
}

/// Writes `parts` as separate segments: Nagle off, and a pause after each
/// so that the stack sends it before the next is written.
fn send_split(s: &mut TcpStream, parts: &[&[u8]]) {
    for p in parts {
        s.write_all(p).expect("send");
        s.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(60));
    }
}

/// Reads one response (head and `Content-Length` body); its status line
/// as sent, whatever it says.
fn read_answer(r: &mut BufReader<TcpStream>) -> String {
    let mut status = String::new();
    r.read_line(&mut status).expect("status line");
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("header");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().expect("length");
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).expect("body");
    status.trim_end().to_string()
}

/// Reads until the server closes (it answers what it cannot parse, then
/// closes): the status line of what it sent.
fn read_until_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_string()
}

fn find<'a>(live: &'a [serde_json::Value], target: &str) -> &'a serde_json::Value {
    live.iter().find(|e| e["target"] == target).unwrap_or_else(|| panic!("no exchange for {target:?} in {live:#?}"))
}

#[test]
fn split_bytes_hide_no_request_and_move_no_status() {
    if !kernel_tests_possible("split_bytes_hide_no_request_and_move_no_status") {
        return;
    }
    let net = Netns::new(NetnsOptions::default());
    let dir = TempDir::new("integrity");
    let _nginx = nginx(&net, &net.srv, &dir, &format!("server {{ listen {SRV_V4}:80; {NGINX_LOCATIONS} }}"));
    let _scripted = Proc {
        child: net
            .exec(&net.srv, &["python3", "-c", SCRIPTED_SERVER, SRV_V4, "8081"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3"),
        name: "scripted server",
    };
    wait_listening(&net.cli, format!("{SRV_V4}:80").parse().unwrap());
    wait_listening(&net.cli, format!("{SRV_V4}:8081").parse().unwrap());
    let pcap = dir.path("integrity.pcap");
    let tcpdump = tcpdump(&net, &net.srv, &net.srv_if, &pcap, "tcp");
    let daemon = Daemon::start(&net, &net.srv, &dir, &["--iface", &net.srv_if, "--port", "80", "--port", "8081"]);

    let seen = Netns::within(&net.cli, || {
        let mut seen = Vec::new();
        let v4 = format!("{SRV_V4}:80");
        // A request whose first segment is too short to judge alone.
        let mut s = connect(&v4);
        send_split(&mut s, &[b"GE", b"T /forbidden?id=1'+or+'1'='1 HTTP/1.1\r\nHost: api.test\r\n\r\n"]);
        seen.push(read_answer(&mut BufReader::new(s.try_clone().unwrap())));
        // One byte, then the rest, which could start a request itself.
        let mut s = connect(&v4);
        send_split(&mut s, &[b"P", b"OST /auth HTTP/1.1\r\nHost: api.test\r\nContent-Length: 0\r\n\r\n"]);
        seen.push(read_answer(&mut BufReader::new(s.try_clone().unwrap())));
        // Open-proxy probing.
        let mut s = connect(&v4);
        s.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").unwrap();
        seen.push(read_until_close(&mut s));
        // Malformed request lines nginx still answers, and bytes that are
        // not HTTP at all (a TLS hello).
        let mut s = connect(&v4);
        s.write_all(b"GET /a b HTTP/1.1\r\nHost: api.test\r\n\r\n").unwrap();
        seen.push(read_until_close(&mut s));
        let mut s = connect(&v4);
        s.write_all(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x00\x01\x02\x03\x04\x05\x06\x07\x08").unwrap();
        seen.push(read_until_close(&mut s));
        // Keep-alive: /2's status line is malformed, /split's status line
        // is split before its code.
        let mut s = connect(&format!("{SRV_V4}:8081"));
        let mut r = BufReader::new(s.try_clone().unwrap());
        for path in ["/1", "/2", "/3", "/split"] {
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: api.test\r\n\r\n").as_bytes()).unwrap();
            seen.push(read_answer(&mut r));
        }
        seen
    });
    assert_eq!(seen[0], "HTTP/1.1 403 Forbidden");
    assert_eq!(seen[1], "HTTP/1.1 401 Unauthorized");
    assert!(seen[3].starts_with("HTTP/1.1 400"), "{seen:?}");
    assert_eq!(&seen[5..], ["HTTP/1.1 200 OK", "HTTP/1.1 2 OK", "HTTP/1.1 404 Not Found", "HTTP/1.1 403 Forbidden"]);

    let metrics = daemon.wait_exchanges(9);
    assert!(metric_sum(&metrics, "rejectwatch_kernel_split_starts_total") >= 2, "{metrics}");
    assert_eq!(metric_sum(&metrics, "rejectwatch_kernel_split_statuses_total"), 1, "{metrics}");
    assert_eq!(metric_sum(&metrics, "rejectwatch_kernel_not_http_total"), 1, "{metrics}");
    let unread = metric_series(&metrics, "rejectwatch_unmatched_total");
    assert_eq!(unread.get("side=\"unread_response\"").copied(), Some(1), "{metrics}");
    let live = daemon.stop();

    let split = find(&live, "/forbidden?id=1'+or+'1'='1");
    assert_eq!((split["method"].as_str(), split["status"].as_u64()), (Some("GET"), Some(403)), "{split}");
    let post = find(&live, "/auth");
    assert_eq!((post["method"].as_str(), post["status"].as_u64()), (Some("POST"), Some(401)), "{post}");
    let connect = find(&live, "example.com:443");
    assert_eq!(connect["method"], "CONNECT", "{connect}");
    assert!(connect["status"].is_u64(), "nginx answers CONNECT: {connect}");
    let space = find(&live, "/a b");
    assert_eq!((space["malformed_reason"].as_str(), space["status"].as_u64()), (Some("space_in_target"), Some(400)));
    let tls = live.iter().find(|e| e["malformed_reason"] == "not_http").expect("the TLS hello");
    assert_eq!(tls["status"], 400, "{tls}");
    let by_target = |t: &str| find(&live, t)["status"].clone();
    assert_eq!(by_target("/1"), 200);
    assert!(by_target("/2").is_null(), "a status that cannot be read leaves its own request without one");
    assert_eq!(by_target("/3"), 404, "and the next status goes to the request it answers");
    assert_eq!(by_target("/split"), 403, "a status line split before its code is read");

    // The same packets offline: the capture rules as analyze emulates them.
    let (okeys, summary) = offline_keys(tcpdump, &pcap, &["--port", "80", "--port", "8081"], &live);
    assert_eq!(okeys, exchange_keys(&live), "kernel and pcap paths disagree ({summary})");
}

#[test]
fn vxlan_tunnelled_exchanges_are_read_on_the_underlay() {
    if !kernel_tests_possible("vxlan_tunnelled_exchanges_are_read_on_the_underlay") {
        return;
    }
    let net = Netns::new(NetnsOptions::default());
    // A VXLAN overlay over the veth pair: rejectwatch watches the underlay,
    // where every exchange is UDP/4789 around an inner Ethernet frame.
    for (ns, dev, local, remote, addr) in [
        (&net.srv, &net.srv_if, SRV_V4, CLI_V4, "10.201.0.1/24"),
        (&net.cli, &net.cli_if, CLI_V4, SRV_V4, "10.201.0.2/24"),
    ] {
        sh(&[
            "ip", "-n", ns, "link", "add", "vx42", "type", "vxlan", "id", "42", "local", local, "remote", remote,
            "dstport", "4789", "dev", dev,
        ]);
        sh(&["ip", "-n", ns, "addr", "add", addr, "dev", "vx42"]);
        sh(&["ip", "-n", ns, "link", "set", "vx42", "up"]);
    }
    let dir = TempDir::new("vxlan");
    let _nginx = nginx(&net, &net.srv, &dir, &format!("server {{ listen 10.201.0.1:80; {NGINX_LOCATIONS} }}"));
    wait_listening(&net.cli, "10.201.0.1:80".parse().unwrap());
    let pcap = dir.path("vxlan.pcap");
    let tcpdump = tcpdump(&net, &net.srv, &net.srv_if, &pcap, "udp port 4789");
    let daemon = Daemon::start(&net, &net.srv, &dir, &["--iface", &net.srv_if, "--port", "80"]);
    let urls: Vec<String> =
        ["/ok", "/auth", "/forbidden", "/api/v1/x"].iter().map(|p| format!("http://10.201.0.1{p}")).collect();
    let codes = curl_from(&net.cli, "10.201.0.2", "vxlan-client/1.0", &urls, Duration::from_secs(5));
    assert_eq!(codes, [200, 401, 403, 404]);
    daemon.wait_exchanges(4);
    let live = daemon.stop();
    let mut got: Vec<(String, String, u64)> = live
        .iter()
        .map(|e| {
            (
                e["peer"].as_str().unwrap_or("").to_string(),
                e["target"].as_str().unwrap_or("").to_string(),
                e["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    got.sort();
    let want: Vec<(String, String, u64)> = [("/api/v1/x", 404), ("/auth", 401), ("/forbidden", 403), ("/ok", 200)]
        .iter()
        .map(|(t, s)| ("10.201.0.2".to_string(), t.to_string(), *s))
        .collect();
    assert_eq!(got, want, "{live:#?}");
    let (okeys, summary) = offline_keys(tcpdump, &pcap, &["--port", "80"], &live);
    assert_eq!(okeys, exchange_keys(&live), "kernel and pcap paths disagree ({summary})");
}
