//! The kernel path for real: rejectwatch attached to a veth (or lo) in a
//! namespace, nginx answering, clients in another namespace. Asserts the
//! exact exchanges and metric counts, and that a capture of the same
//! traffic analysed offline gives the same exchanges.

use std::{
    io::{BufReader, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use rejectwatch_tests::*;

fn server_block(port: u16) -> String {
    format!("server {{ listen {SRV_V4}:{port}; listen [{SRV_V6}]:{port}; {NGINX_LOCATIONS} }}")
}

fn connect(addr: &str) -> TcpStream {
    let addr: SocketAddr = addr.parse().expect("addr");
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_nodelay(true).expect("nodelay");
    s
}

fn get(path: &str, ua: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: api.test\r\nUser-Agent: {ua}\r\nAccept: */*\r\n{extra}\r\n")
}

/// The traffic mix: keep-alive, pipelining, IPv6, an unusual method and a
/// head larger than one MTU. Returns the statuses the client saw.
fn client_mix() -> Vec<u16> {
    let mut seen = Vec::new();
    let v4 = format!("{SRV_V4}:80");
    // Keep-alive: three requests, one after another, on one connection.
    let mut s = connect(&v4);
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    for path in ["/ok", "/auth", "/forbidden"] {
        s.write_all(get(path, "python-requests/2.32.5", "").as_bytes()).expect("send");
        seen.push(read_response(&mut r));
    }
    // Pipelining: three requests in one write, answers in order.
    let mut s = connect(&v4);
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let batch =
        [get("/api/v1/orders/1", "curl/8.5.0", ""), get("/limited", "curl/8.5.0", ""), get("/ok", "curl/8.5.0", "")]
            .concat();
    s.write_all(batch.as_bytes()).expect("send");
    for _ in 0..3 {
        seen.push(read_response(&mut r));
    }
    // IPv6.
    let mut s = connect(&format!("[{SRV_V6}]:80"));
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    s.write_all(get("/auth", "okhttp/4.12.0", "").as_bytes()).expect("send");
    seen.push(read_response(&mut r));
    // An unusual method.
    s.write_all(b"DELETE /forbidden HTTP/1.1\r\nHost: api.test\r\nUser-Agent: curl/8.5.0\r\n\r\n").expect("send");
    seen.push(read_response(&mut r));
    // A head of ~3 kB: three segments at MTU 1500 with offloads off.
    let mut s = connect(&v4);
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let pad = "a".repeat(3000);
    s.write_all(get("/ok", "big-head/1.0", &format!("X-Pad: {pad}\r\nX-After: 1\r\n")).as_bytes()).expect("send");
    seen.push(read_response(&mut r));
    seen
}

#[test]
fn veth_exchanges_metrics_and_pcap_agree() {
    if !kernel_tests_possible("veth_exchanges_metrics_and_pcap_agree") {
        return;
    }
    let net = Netns::new(NetnsOptions::default());
    let dir = TempDir::new("veth");
    let _nginx = nginx(&net, &net.srv, &dir, &server_block(80));
    wait_listening(&net.cli, format!("{SRV_V4}:80").parse().unwrap());
    let pcap = dir.path("veth.pcap");
    let tcpdump = tcpdump(&net, &net.srv, &net.srv_if, &pcap, "tcp port 80");
    let daemon = Daemon::start(&net, &net.srv, &dir, &["--iface", &net.srv_if, "--port", "80", "--snaplen", "4096"]);

    let seen = Netns::within(&net.cli, client_mix);
    assert_eq!(seen, [200, 401, 403, 404, 429, 200, 401, 403, 200]);

    let metrics = daemon.wait_exchanges(9);
    let by_label = metric_series(&metrics, "rejectwatch_http_exchanges_total");
    let expect = [
        ("method=\"GET\",status=\"200\"", 3),
        ("method=\"GET\",status=\"401\"", 2),
        ("method=\"GET\",status=\"403\"", 1),
        ("method=\"GET\",status=\"404\"", 1),
        ("method=\"GET\",status=\"429\"", 1),
        ("method=\"DELETE\",status=\"403\"", 1),
    ];
    for (labels, n) in expect {
        assert_eq!(by_label.get(labels).copied(), Some(n), "{labels} in {by_label:?}");
    }
    assert_eq!(by_label.len(), expect.len(), "unexpected series: {by_label:?}");
    assert_eq!(metric_sum(&metrics, "rejectwatch_unmatched_total"), 0, "{metrics}");
    assert_eq!(metric_sum(&metrics, "rejectwatch_ringbuf_drops_total"), 0);
    assert_eq!(metric_sum(&metrics, "rejectwatch_parse_errors_total"), 0);
    assert!(metric_sum(&metrics, "rejectwatch_kernel_packets_total") > 0);
    assert!(metric_sum(&metrics, "rejectwatch_kernel_continuations_total") >= 1, "the big head was continued");

    let live = daemon.stop();
    assert_eq!(live.len(), 9, "{live:#?}");
    let big = live.iter().find(|e| e["user_agent"] == "big-head/1.0").expect("big head exchange");
    assert_eq!(big["truncated"], false, "{big}");
    assert_eq!(big["status"], 200);
    assert_eq!(big["header_names"], serde_json::json!(["Host", "User-Agent", "Accept", "X-Pad", "X-After"]));
    let v6 = live.iter().find(|e| e["user_agent"] == "okhttp/4.12.0").expect("v6 exchange");
    assert_eq!((v6["peer"].as_str(), v6["status"].as_u64()), (Some(CLI_V6), Some(401)));
    let del = live.iter().find(|e| e["method"] == "DELETE").expect("DELETE exchange");
    assert_eq!(del["status"], 403);
    for e in &live {
        assert_eq!(e["host"], "api.test");
        assert!(e["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    }
    let pipelined: Vec<_> = live.iter().filter(|e| e["user_agent"] == "curl/8.5.0" && e["method"] == "GET").collect();
    assert_eq!(pipelined.len(), 3);

    // The same packets, captured by tcpdump and analysed offline, give the
    // same exchanges: one core, two sources.
    let (okeys, summary) = offline_keys(tcpdump, &pcap, &["--port", "80", "--snaplen", "4096"], &live);
    assert_eq!(okeys, exchange_keys(&live), "kernel and pcap paths disagree ({summary})");

    // nginx's own access log of the same requests, analysed, agrees on what
    // a log can say (no header names there).
    let log_key = |e: &serde_json::Value| {
        format!("{} {} {} {} {} {}", e["client"], e["method"], e["target"], e["status"], e["user_agent"], e["endpoint"])
    };
    let (from_log, summary) = analyze(&[&dir.path("access.log")], &[]);
    let mut lkeys: Vec<String> = from_log.iter().map(log_key).collect();
    lkeys.sort();
    let mut kkeys: Vec<String> = live.iter().map(log_key).collect();
    kkeys.sort();
    assert_eq!(lkeys, kkeys, "nginx's access log and the kernel disagree ({summary})");
    let order = from_log.iter().find(|e| e["target"] == "/api/v1/orders/1").expect("orders exchange");
    assert_eq!((order["endpoint"].as_str(), order["resource_id"].as_str()), (Some("/api/v1/orders/{id}"), Some("1")));
}

#[test]
fn tls_terminated_on_veth_observed_on_lo() {
    if !kernel_tests_possible("tls_terminated_on_veth_observed_on_lo") {
        return;
    }
    let net = Netns::new(NetnsOptions::default());
    let dir = TempDir::new("tls");
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    sh(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=api.test",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    let servers = format!(
        "server {{ listen {SRV_V4}:443 ssl; ssl_certificate {c}; ssl_certificate_key {k};\n\
           location / {{ proxy_pass http://127.0.0.1:8080; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }} }}\n\
         upstream app {{ server 127.0.0.1:8080; keepalive 4; }}\n\
         server {{ listen 127.0.0.1:8080; {NGINX_LOCATIONS} }}",
        c = cert.display(),
        k = key.display()
    );
    let _nginx = nginx(&net, &net.srv, &dir, &servers);
    wait_listening(&net.cli, format!("{SRV_V4}:443").parse().unwrap());
    // The proxy on loopback is trusted: its X-Forwarded-For names the client.
    let daemon =
        Daemon::start(&net, &net.srv, &dir, &["--iface", "lo", "--port", "8080", "--trusted-proxy", "127.0.0.1/32"]);

    for (path, ua) in [
        ("/ok", "python-requests/2.32.5"),
        ("/auth", "curl/8.5.0"),
        ("/api/v1/x", "okhttp/4.12.0"),
        ("/limited", "axios/1.7.2"),
    ] {
        let out = net
            .exec(
                &net.cli,
                &["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-A", ua, &format!("https://{SRV_V4}{path}")],
            )
            .output()
            .expect("curl");
        assert!(out.status.success(), "curl {path}: {}", String::from_utf8_lossy(&out.stderr));
    }
    daemon.wait_exchanges(4);
    let live = daemon.stop();
    let mut got: Vec<(String, u64, String)> = live
        .iter()
        .map(|e| {
            (
                e["target"].as_str().unwrap().to_string(),
                e["status"].as_u64().unwrap_or(0),
                e["user_agent"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("/api/v1/x".into(), 404, "okhttp/4.12.0".into()),
            ("/auth".into(), 401, "curl/8.5.0".into()),
            ("/limited".into(), 429, "axios/1.7.2".into()),
            ("/ok".into(), 200, "python-requests/2.32.5".into()),
        ]
    );
    for e in &live {
        // The socket peer is the proxy; the client is who it forwarded for.
        assert_eq!(e["peer"], "127.0.0.1");
        assert_eq!(e["client"], CLI_V4, "{e}");
        assert_eq!(e["client_source"], "x-forwarded-for", "{e}");
        assert_eq!(e["host"], SRV_V4);
        assert!(e.get("untrusted_forwarding").is_none(), "{e}");
    }
    let ok = live.iter().find(|e| e["target"] == "/ok").expect("/ok");
    assert_eq!(
        (ok["ua_product"].as_str(), ok["ua_version"].as_str(), ok["ua_family"].as_str()),
        (Some("python-requests"), Some("2.32.5"), Some("http-library"))
    );
    assert_eq!(ok["endpoint"], "/ok");
    assert!(ok["fingerprint"].as_str().is_some_and(|f| f.len() == 12), "{ok}");
}

#[test]
fn jumbo_frame_head_is_read_across_fragments() {
    if !kernel_tests_possible("jumbo_frame_head_is_read_across_fragments") {
        return;
    }
    // MTU 9000 with offloads on: a 6 kB head arrives as one multi-buffer
    // frame, which only an `xdp.frags` program may see; the capture stops
    // at the 4096-byte maximum and says so.
    let net = Netns::new(NetnsOptions { mtu: 9000, segment_on_client: false });
    let dir = TempDir::new("jumbo");
    let _nginx = nginx(&net, &net.srv, &dir, &format!("large_client_header_buffers 4 16k;\n{}", server_block(80)));
    wait_listening(&net.cli, format!("{SRV_V4}:80").parse().unwrap());
    let daemon = Daemon::start(&net, &net.srv, &dir, &["--iface", &net.srv_if, "--port", "80", "--snaplen", "4096"]);
    let status = Netns::within(&net.cli, || {
        let mut s = connect(&format!("{SRV_V4}:80"));
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        let pad = "b".repeat(6000);
        s.write_all(get("/auth", "jumbo/1.0", &format!("X-Pad: {pad}\r\nX-Tail: 1\r\n")).as_bytes()).expect("send");
        read_response(&mut r)
    });
    assert_eq!(status, 401);
    let metrics = daemon.wait_exchanges(1);
    assert!(metric_sum(&metrics, "rejectwatch_kernel_truncated_total") >= 1, "{metrics}");
    let live = daemon.stop();
    assert_eq!(live.len(), 1, "{live:#?}");
    let e = &live[0];
    assert_eq!(
        (e["target"].as_str(), e["status"].as_u64(), e["truncated"].as_bool()),
        (Some("/auth"), Some(401), Some(true))
    );
    assert_eq!(e["user_agent"], "jumbo/1.0");
    assert_eq!(e["header_names"], serde_json::json!(["Host", "User-Agent", "Accept"]), "cut inside X-Pad");
}

/// The Ethernet captures of ../shared with the server ports tshark saw.
fn ethernet_captures() -> Vec<(std::path::PathBuf, Vec<u16>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/suricata-verify");
    if !root.is_dir() {
        eprintln!("SKIPPED replay: {} is absent (not part of a clone)", root.display());
        return Vec::new();
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&root).expect("captures dir") {
        let dir = entry.expect("entry").path();
        for f in std::fs::read_dir(&dir).into_iter().flatten() {
            let pcap = f.expect("entry").path();
            if pcap.extension().is_none_or(|e| e != "pcap") {
                continue;
            }
            let head = std::fs::read(&pcap).expect("read pcap");
            // Ethernet only: tcpreplay puts frames on the veth as they are.
            if head.len() < 24 || u32::from_le_bytes(head[20..24].try_into().unwrap()) != 1 {
                continue;
            }
            let tshark = std::fs::read_to_string(pcap.with_extension("tshark-http.jsonl")).expect("tshark jsonl");
            let mut ports: Vec<u16> = tshark
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["dport"].as_str().and_then(|p| p.parse().ok()))
                .collect();
            ports.sort();
            ports.dedup();
            if !ports.is_empty() {
                out.push((pcap, ports));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn replayed_captures_match_offline_analysis() {
    if !kernel_tests_possible("replayed_captures_match_offline_analysis") {
        return;
    }
    let captures = ethernet_captures();
    if captures.is_empty() {
        return;
    }
    assert!(captures.len() >= 8, "expected the Ethernet captures, found {captures:?}");
    // One namespace holding both ends of a veth: tcpreplay writes every frame
    // into one end (its egress, where the classifier sees responses) and
    // it arrives at the other (ingress, where XDP sees requests).
    let net = Netns::new(NetnsOptions { mtu: 9000, segment_on_client: false });
    let (inject, receive) = (net.cli_if.clone(), format!("{}r", net.srv));
    sh(&[
        "ip", "-n", &net.srv, "link", "add", &inject, "mtu", "9000", "type", "veth", "peer", "name", &receive, "mtu",
        "9000",
    ]);
    for dev in [&inject, &receive] {
        sh(&["ip", "-n", &net.srv, "link", "set", dev, "up"]);
    }
    for (pcap, ports) in captures {
        let name = pcap.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
        let dir = TempDir::new("replay");
        let mut args = vec!["--iface".to_string(), inject.clone(), "--iface".into(), receive.clone()];
        for p in &ports {
            args.extend(["--port".to_string(), p.to_string()]);
        }
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let daemon = Daemon::start(&net, &net.srv, &dir, &arg_refs);
        // A fixed packet rate keeps the original order without the
        // captures' original (sometimes seconds-long) pauses.
        let out = net
            .exec(&net.srv, &["tcpreplay", "-q", "-p", "1000", "-i", &inject, pcap.to_str().unwrap()])
            .output()
            .expect("tcpreplay");
        assert!(out.status.success(), "{name}: tcpreplay: {}", String::from_utf8_lossy(&out.stderr));
        // The last frames may still wait in the veth's queue when tcpreplay
        // returns: wait until XDP has seen every frame it sent.
        let stats = String::from_utf8_lossy(&out.stdout);
        let sent: u64 = stats
            .lines()
            .find_map(|l| l.trim().strip_prefix("Successful packets:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name}: no packet count in tcpreplay's output: {stats}"));
        daemon.wait_metric("rejectwatch_kernel_packets_total", sent);
        let live = exchange_keys(&daemon.stop());
        let port_args: Vec<String> = ports.iter().flat_map(|p| ["--port".to_string(), p.to_string()]).collect();
        let port_refs: Vec<&str> = port_args.iter().map(String::as_str).collect();
        let (offline, _) = analyze(&[&pcap], &port_refs);
        let offline = exchange_keys(&offline);
        assert!(!offline.is_empty() || name == "http-async-srv", "{name}: nothing found offline");
        assert_eq!(live, offline, "{name}: kernel (replayed) and pcap paths disagree");
    }
}
