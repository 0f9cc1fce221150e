//! The live daemon's HTTP API under abuse, on its real listener: a 10 MB
//! body is refused (413), so is a 64 KB header (431); a client dribbling
//! its head (slowloris) is closed after `api.header_timeout`, one that
//! never finishes its body gets 408 after `api.request_timeout`; connections
//! past `api.max_connections` are refused and counted while an ordinary
//! client is served once they go; bad JSON and bad query strings get a
//! one-line 400 naming the problem.

use std::{
    io::{BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    sync::mpsc,
    time::Duration,
};

use rejectwatch_tests::*;

const MAX_CONNECTIONS: usize = 4;

/// Sends `head` then `body` from one thread while reading the answer on
/// another, so that a server answering before the body is all sent (as
/// it should) is heard; returns the status and body of the answer.
fn send(addr: SocketAddr, head: String, body: Vec<u8>) -> (u16, String) {
    let s = TcpStream::connect(addr).expect("connect");
    let mut w = s.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        // Refused mid-way: the server stops reading and closes.
        let _ = w.write_all(head.as_bytes()).and_then(|()| w.write_all(&body));
    });
    let mut buf = Vec::new();
    // A reset after the answer arrived still leaves the answer read.
    let _ = (&s).read_to_end(&mut buf);
    let _ = s.shutdown(std::net::Shutdown::Both);
    writer.join().expect("writer");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// A head that comes a header line at a time, each after `pause`, until
/// the server closes the connection; how many lines it took.
fn slowloris(addr: SocketAddr, pause: Duration, most: usize) -> usize {
    let mut s = TcpStream::connect(addr).expect("connect");
    let r = s.try_clone().expect("clone");
    let (closed, on_close) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        // Whatever the server says (a 408 or nothing), then the end.
        while matches!((&r).read(&mut buf), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").expect("request line");
    for i in 0..most {
        // The dribble is the attack, not a wait for something.
        if on_close.recv_timeout(pause).is_ok() {
            return i;
        }
        if s.write_all(format!("X-Drip-{i}: 1\r\n").as_bytes()).is_err() {
            on_close.recv().expect("reader ends");
            return i;
        }
    }
    panic!("the server still reads a head dribbled for {most} lines");
}

/// One keep-alive exchange on a new connection, left open: the server
/// holds a connection slot for it.
fn held(addr: SocketAddr) -> Option<BufReader<TcpStream>> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut r, &mut line).ok()?;
    if !line.contains(" 200 ") {
        return None;
    }
    // The rest of the answer stays unread: the connection is what counts.
    Some(r)
}

#[test]
fn the_api_survives_abuse() {
    if !kernel_tests_possible("the_api_survives_abuse") {
        return;
    }
    let net = Netns::new(NetnsOptions::default());
    let dir = TempDir::new("api-abuse");
    let config = dir.path("rejectwatch.toml");
    std::fs::write(
        &config,
        format!("[api]\nmax_connections = {MAX_CONNECTIONS}\nheader_timeout = \"2s\"\nrequest_timeout = \"2s\"\n"),
    )
    .expect("config");
    let d = Daemon::start(
        &net,
        &net.srv,
        &dir,
        &["--iface", &net.srv_if, "--port", "80", "--config", config.to_str().expect("utf-8")],
    );
    let addr = d.listen;
    Netns::within(&net.srv, move || {
        // 10 MB of body for a marker.
        let big = vec![b' '; 10 << 20];
        let head = format!(
            "POST /api/v1/marks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            big.len()
        );
        let (status, body) = send(addr, head, big);
        assert_eq!(status, 413, "{body}");

        // A 64 KB header.
        let head = format!("GET /api/v1/actors HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(64 << 10));
        assert_eq!(send(addr, head, Vec::new()).0, 431);

        // Bad JSON, a bad query: one line that names what is wrong.
        let bad = br#"{"kind": "disclosure", "at": }"#.to_vec();
        let head = format!(
            "POST /api/v1/marks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            bad.len()
        );
        let (status, body) = send(addr, head, bad);
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("JSON") && body.contains("column") && !body.trim().contains('\n'), "{body}");
        let (status, body) = http_request(addr, "GET", "/api/v1/findings?limit=many", &[], "");
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("limit: \\\"many\\\"") && !body.trim().contains('\n'), "{body}");
        let (status, body) = http_request(addr, "GET", "/api/v1/actors?classification=villain", &[], "");
        assert!(status == 400 && body.contains("classification"), "{body}");

        // A head dribbled a line every 100 ms is cut off (after 2 s).
        let lines = slowloris(addr, Duration::from_millis(100), 600);
        assert!(lines > 0, "closed before the dribble started");

        // A body that never arrives whole: 408 once the request timeout
        // passes (the head came; the rest is the request's time).
        let head =
            "POST /api/v1/marks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
        let (status, body) = send(addr, head.into(), br#"{"kind":"#.to_vec());
        assert_eq!(status, 408, "{body}");

        // More connections than the cap: the extra one is refused, and
        // counted. An idle connection is itself closed after the head
        // timeout, so on a machine too busy to open the rest within it,
        // the cap is tried again.
        let mut refused = false;
        for _ in 0..5 {
            let hold: Vec<_> = (0..MAX_CONNECTIONS).map_while(|_| held(addr)).collect();
            if hold.len() < MAX_CONNECTIONS {
                continue;
            }
            let (status, _) = send(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n".into(), Vec::new());
            drop(hold);
            if status == 503 || status == 0 {
                refused = true;
                break;
            }
        }
        assert!(refused, "a connection past the cap was served each time");
        // Once they go, an ordinary client is served again: the slots are
        // given back when the server sees each close.
        let mut served = None;
        for _ in 0..200 {
            let (status, body) = send(addr, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n".into(), Vec::new());
            if status == 200 {
                served = Some(body);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let metrics = served.expect("no client served after the flood");
        assert!(metric_sum(&metrics, "rejectwatch_api_refused_connections_total") >= 1, "{metrics}");
    });
    d.stop();
}
