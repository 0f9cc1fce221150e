//! Join behaviour on hand-built segment sequences.

use std::time::Duration;

use super::*;
use crate::observe::Collect;

const C: &str = "10.1.0.2:40000";
const S: &str = "10.1.0.1:80";
const SEC: Nanos = 1_000_000_000;

fn rec<'a>(kind: Kind, ts: Nanos, src: &str, dst: &str, seq: u32, data: &'a [u8]) -> Record<'a> {
    Record {
        kind,
        ts,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        seq,
        ack: None,
        payload_len: data.len() as u32,
        data,
    }
}

fn req(ts: Nanos, seq: u32, data: &[u8]) -> Record<'_> {
    rec(Kind::Request, ts, C, S, seq, data)
}

fn resp(ts: Nanos, seq: u32, data: &[u8]) -> Record<'_> {
    rec(Kind::Response, ts, S, C, seq, data)
}

fn run(cfg: JoinConfig, records: Vec<Record<'_>>) -> Collect {
    let mut j = Joiner::new(cfg, Source::Pcap);
    let mut out = Collect::default();
    for r in records {
        j.push(r, &mut out);
    }
    j.finish(&mut out);
    out
}

fn statuses(c: &Collect) -> Vec<(String, Option<u16>)> {
    c.exchanges.iter().map(|e| (e.target().to_string(), e.status)).collect()
}

fn s(t: &str, st: Option<u16>) -> (String, Option<u16>) {
    (t.to_string(), st)
}

const GET_A: &[u8] = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
const GET_B: &[u8] = b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
const R404: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop";
const R200: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn keep_alive_in_order() {
    let a = GET_A.len() as u32;
    let out = run(
        JoinConfig::default(),
        vec![req(1, 100, GET_A), resp(2, 500, R404), req(3, 100 + a, GET_B), resp(4, 500 + R404.len() as u32, R200)],
    );
    assert_eq!(statuses(&out), [s("/a", Some(404)), s("/b", Some(200))]);
    assert_eq!(out.unmatched_requests + out.unmatched_responses, 0);
}

#[test]
fn pipelined_requests_and_responses() {
    let mut three = GET_A.to_vec();
    three.extend_from_slice(GET_B);
    three.extend_from_slice(b"HEAD /c HTTP/1.1\r\n\r\n");
    let mut two = R404.to_vec();
    // A HEAD answer announces a length but carries no body.
    two.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 9999\r\n\r\n");
    let out =
        run(JoinConfig::default(), vec![req(1, 1, &three), resp(2, 1, R200), resp(3, 1 + R200.len() as u32, &two)]);
    assert_eq!(
        statuses(&out),
        [s("/a", Some(200)), s("/b", Some(404))].into_iter().chain([s("/c", Some(200))]).collect::<Vec<_>>()
    );
}

#[test]
fn unmatched_both_ways() {
    let out = run(JoinConfig::default(), vec![resp(1, 1, R404)]);
    assert_eq!(out.unmatched_responses, 1);
    assert!(out.exchanges.is_empty());

    // A request left unanswered is reported once record time passes the
    // timeout, before the input ends.
    let cfg = JoinConfig { response_timeout: Duration::from_secs(5), ..Default::default() };
    let mut j = Joiner::new(cfg, Source::Pcap);
    let mut c = Collect::default();
    j.push(req(SEC, 1, GET_A), &mut c);
    j.advance(3 * SEC, &mut c);
    assert!(c.exchanges.is_empty(), "too early");
    j.advance(7 * SEC, &mut c);
    assert_eq!(statuses(&c), [s("/a", None)]);
    assert_eq!(c.unmatched_requests, 1);
    assert_eq!(j.flows(), 0);
}

#[test]
fn retransmissions_are_ignored() {
    let out =
        run(JoinConfig::default(), vec![req(1, 10, GET_A), req(2, 10, GET_A), resp(3, 7, R404), resp(4, 7, R404)]);
    assert_eq!(statuses(&out), [s("/a", Some(404))]);
    assert_eq!(out.unmatched_responses, 0);
}

#[test]
fn answered_flows_close_and_remember_where_they_left_off() {
    let a = GET_A.len() as u32;
    let mut j = Joiner::new(JoinConfig::default(), Source::Pcap);
    let mut c = Collect::default();
    j.push(req(SEC, 100, GET_A), &mut c);
    assert_eq!(j.flows(), 1);
    j.push(resp(SEC + 1, 500, R404), &mut c);
    assert_eq!(j.flows(), 0, "every request answered: the flow closed");
    // Late copies of both segments are recognised, and leave nothing open.
    j.push(req(2 * SEC, 100, GET_A), &mut c);
    j.push(resp(2 * SEC, 500, R404), &mut c);
    assert_eq!(j.flows(), 0);
    // The connection is kept alive: its next exchange opens it again.
    j.push(req(3 * SEC, 100 + a, GET_B), &mut c);
    j.push(resp(3 * SEC, 500 + R404.len() as u32, R200), &mut c);
    // Past the response timeout, the same ports are a new connection
    // whose sequence numbers say nothing about the old one's.
    j.push(req(40 * SEC, 50, GET_A), &mut c);
    j.push(resp(40 * SEC, 10, R200), &mut c);
    j.finish(&mut c);
    assert_eq!(statuses(&c), [s("/a", Some(404)), s("/b", Some(200)), s("/a", Some(200))]);
    assert_eq!(c.unmatched_requests + c.unmatched_responses, 0);
    assert_eq!(j.flows(), 0);
}

#[test]
fn head_across_segments() {
    let head = b"GET /split HTTP/1.1\r\nHost: h\r\nUser-Agent: python-requests/2.32.5\r\n\r\n";
    let (one, two) = head.split_at(25);
    let out = run(
        JoinConfig::default(),
        vec![req(1, 1000, one), rec(Kind::Continuation, 2, C, S, 1000 + one.len() as u32, two), resp(3, 1, R200)],
    );
    assert_eq!(statuses(&out), [s("/split", Some(200))]);
    let e = &out.exchanges[0];
    assert!(!e.truncated);
    assert_eq!(e.user_agent(), Some("python-requests/2.32.5"));
}

#[test]
fn lost_continuation_gives_truncated_head() {
    let head = b"GET /split HTTP/1.1\r\nHost: h\r\nUser-Agent: x\r\n\r\n";
    let (one, _) = head.split_at(30);
    let out = run(JoinConfig::default(), vec![req(1, 1000, one), resp(3, 1, R200)]);
    assert_eq!(statuses(&out), [s("/split", Some(200))]);
    assert!(out.exchanges[0].truncated);
    assert_eq!(out.exchanges[0].host(), Some("h"));
}

#[test]
fn snaplen_cut_is_truncated() {
    let mut r = req(1, 1, b"GET /big HTTP/1.1\r\nHost: h\r\nCookie: aaaa");
    r.payload_len = 5000;
    let out = run(JoinConfig::default(), vec![r, resp(2, 1, R404)]);
    assert_eq!(statuses(&out), [s("/big", Some(404))]);
    assert!(out.exchanges[0].truncated);
}

#[test]
fn interim_responses_pop_nothing() {
    let mut both = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
    both.extend_from_slice(R200);
    let post = b"POST /up HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n";
    let out = run(JoinConfig::default(), vec![req(1, 1, post), resp(2, 1, &both)]);
    assert_eq!(statuses(&out), [s("/up", Some(200))]);
    let out = run(
        JoinConfig::default(),
        vec![req(1, 1, post), resp(2, 1, b"HTTP/1.1 100 Continue\r\n\r\n"), resp(3, 26, R404)],
    );
    assert_eq!(statuses(&out), [s("/up", Some(404))]);
}

#[test]
fn ipv6_flows() {
    let c6 = "[2001:db8::2]:40000";
    let s6 = "[2001:db8::1]:8080";
    let out = run(
        JoinConfig::default(),
        vec![rec(Kind::Request, 1, c6, s6, 1, GET_A), rec(Kind::Response, 2, s6, c6, 1, R404)],
    );
    assert_eq!(statuses(&out), [s("/a", Some(404))]);
    assert_eq!(out.exchanges[0].peer.to_string(), "2001:db8::2");
}

#[test]
fn flow_table_is_bounded() {
    let cfg = JoinConfig { max_flows: 2, ..Default::default() };
    let mut recs = Vec::new();
    for i in 0..3u16 {
        recs.push(rec(Kind::Request, i as Nanos, &format!("10.0.0.{}:1000", i + 1), S, 1, GET_A));
    }
    let mut j = Joiner::new(cfg, Source::Pcap);
    let mut c = Collect::default();
    for r in recs {
        j.push(r, &mut c);
    }
    assert_eq!(j.flows(), 2);
    assert_eq!(c.unmatched_requests, 1, "the oldest flow was evicted and reported");
    assert_eq!(c.exchanges[0].peer.to_string(), "10.0.0.1");
}

#[test]
fn pending_queue_is_bounded() {
    let cfg = JoinConfig { max_pending: 2, ..Default::default() };
    let mut recs = Vec::new();
    let mut seq = 1u32;
    for _ in 0..3 {
        recs.push(req(1, seq, GET_A));
        seq += GET_A.len() as u32;
    }
    let out = run(cfg, recs);
    assert_eq!(out.unmatched_requests, 3);
    assert_eq!(out.exchanges.len(), 3);
}

#[test]
fn garbage_is_a_flagged_exchange_not_fatal() {
    let out = run(
        JoinConfig::default(),
        vec![
            req(1, 1, b"GETT\x00\x01 HTTP/1.1\r\n\r\n"),
            resp(2, 1, b"HTTP/1.1 200 OK\r\nbad header line\x00\r\n\r\n"),
        ],
    );
    assert_eq!(statuses(&out), [s("", Some(200))]);
    assert_eq!(out.exchanges[0].malformed, Some(crate::exchange::Malformed::NotHttp));
    assert_eq!((out.unmatched_responses, out.unmatched_requests), (0, 0));
}

fn req_ack(ts: Nanos, seq: u32, ack: u32, data: &[u8]) -> Record<'_> {
    Record { ack: Some(ack), ..req(ts, seq, data) }
}

fn resp_ack(ts: Nanos, seq: u32, data: &[u8]) -> Record<'_> {
    Record { ack: Some(1), ..resp(ts, seq, data) }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes()
}

/// What the server's second answer looks like when it cannot be read.
enum Lost {
    /// The segment never reached the capture.
    Segment,
    /// The status line was split before the status code.
    Split,
    /// `HTTP/1.1 2 OK`.
    Malformed,
}

#[test]
fn a_lost_answer_leaves_its_own_request_without_a_status() {
    // Keep-alive without pipelining: each request is sent once the answer
    // before it has been received, so its acknowledgement is where its own
    // answer starts.
    let second: &[u8] = b"HTTP/1.1 2 OK\r\nContent-Length: 2\r\n\r\nok";
    for lost in [Lost::Segment, Lost::Split, Lost::Malformed] {
        let (g1, g2, g3) = (get("/1"), get("/2"), get("/3"));
        let (c1, c2, c3) = (100, 100 + g1.len() as u32, 100 + (g1.len() + g2.len()) as u32);
        let (s1, s2) = (500, 500 + R200.len() as u32);
        let s3 = s2 + second.len() as u32;
        let mut records = vec![req_ack(1, c1, s1, &g1), resp_ack(2, s1, R200), req_ack(3, c2, s2, &g2)];
        match lost {
            Lost::Segment => {}
            Lost::Split => records.push(resp_ack(4, s2, &second[..7])),
            Lost::Malformed => records.push(resp_ack(4, s2, second)),
        }
        records.extend([req_ack(5, c3, s3, &g3), resp_ack(6, s3, R404)]);
        let out = run(JoinConfig::default(), records);
        assert_eq!(statuses(&out), [s("/1", Some(200)), s("/2", None), s("/3", Some(404))]);
        assert_eq!((out.unread_responses, out.unmatched_responses, out.unmatched_requests), (1, 0, 0));
    }
}

#[test]
fn a_lost_answer_in_a_pipeline_is_placed_by_the_server_stream() {
    // Three pipelined requests sent at once, the second answer lost: the
    // third answer lies past where the first one ended, so the second
    // request was answered in between.
    let pipelined = [get("/1"), get("/2"), get("/3")].concat();
    let lost: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let s2 = 500 + R200.len() as u32;
    let s3 = s2 + lost.len() as u32;
    let out = run(
        JoinConfig::default(),
        vec![req_ack(1, 100, 500, &pipelined), resp_ack(2, 500, R200), resp_ack(3, s3, R404)],
    );
    assert_eq!(statuses(&out), [s("/1", Some(200)), s("/2", None), s("/3", Some(404))]);

    // With four waiting, the gap may hold one answer or two: which request
    // the next status answers is unknowable, so none gets it.
    let pipelined = [get("/1"), get("/2"), get("/3"), get("/4")].concat();
    let s4 = s3 + R404.len() as u32;
    let out = run(
        JoinConfig::default(),
        vec![req_ack(1, 100, 500, &pipelined), resp_ack(2, 500, R200), resp_ack(3, s3, R404), resp_ack(4, s4, R200)],
    );
    assert_eq!(statuses(&out), [s("/1", Some(200)), s("/2", None), s("/3", None), s("/4", None)]);
    assert_eq!((out.unread_responses, out.unmatched_responses), (3, 2));
}

#[test]
fn a_response_never_answers_a_request_sent_after_it() {
    // The request this answer belongs to was not captured; the one
    // waiting was sent after the client had received the answer.
    let g2 = get("/2");
    let out = run(JoinConfig::default(), vec![req_ack(1, 100, 900, &g2), resp_ack(2, 500, R404)]);
    assert_eq!(statuses(&out), [s("/2", None)]);
    assert_eq!(out.unmatched_responses, 1);
}

#[test]
fn malformed_request_lines_are_exchanges_with_their_answer() {
    use crate::exchange::Malformed;
    let r400: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    for (raw, target, why) in [
        (&b"GET /a b HTTP/1.1\r\nHost: h\r\nUser-Agent: probe/1\r\n\r\n"[..], "/a b", Malformed::SpaceInTarget),
        (b"GET /admin\r\nHost: h\r\n\r\n", "/admin", Malformed::NoVersion),
        (b"GET /index.html\r\n", "/index.html", Malformed::Http09),
        (b"GET / HTTP/9.9\r\nHost: h\r\n\r\n", "/", Malformed::BadVersion),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "", Malformed::NotHttp),
    ] {
        let out = run(JoinConfig::default(), vec![req(1, 1, raw), resp(2, 1, r400)]);
        let ex = &out.exchanges;
        assert_eq!(ex.len(), 1, "{raw:?}");
        assert_eq!((ex[0].target(), ex[0].status, ex[0].malformed), (target, Some(400), Some(why)), "{raw:?}");
        assert_eq!(out.unmatched_responses, 0, "{raw:?}");
    }
    let out = run(
        JoinConfig::default(),
        vec![req(1, 1, b"GET /a b HTTP/1.1\r\nHost: h\r\nUser-Agent: probe/1\r\n\r\n"), resp(2, 1, r400)],
    );
    assert_eq!(out.exchanges[0].user_agent(), Some("probe/1"));
    // Well-formed requests carry no flag.
    let out = run(JoinConfig::default(), vec![req(1, 1, GET_A), resp(2, 1, R404)]);
    assert_eq!(out.exchanges[0].malformed, None);
}

fn cont(ts: Nanos, seq: u32, data: &[u8]) -> Record<'_> {
    rec(Kind::Continuation, ts, C, S, seq, data)
}

fn resp_cont(ts: Nanos, seq: u32, data: &[u8]) -> Record<'_> {
    rec(Kind::ResponseContinuation, ts, S, C, seq, data)
}

#[test]
fn a_request_split_before_its_method_is_whole_is_still_seen() {
    let rest = b"T /admin?id=1'+or+'1'='1 HTTP/1.1\r\nHost: h\r\n\r\n";
    let out = run(JoinConfig::default(), vec![req(1, 10, b"GE"), cont(2, 12, rest), resp(3, 1, R404)]);
    assert_eq!(statuses(&out), [s("/admin?id=1'+or+'1'='1", Some(404))]);
    assert_eq!(&*out.exchanges[0].method, "GET");

    // One byte a segment, and a second segment that could itself start a
    // request (`OST /…`): it continues the open head.
    let whole = b"POST /login HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n";
    let mut records = vec![req(1, 100, &whole[..1])];
    records.push(req(2, 101, &whole[1..]));
    records.push(resp(3, 1, R404));
    let out = run(JoinConfig::default(), records);
    assert_eq!(statuses(&out), [s("/login", Some(404))]);
    assert_eq!(&*out.exchanges[0].method, "POST");
    let mut records: Vec<Record<'_>> = (0..4).map(|i| req(1, 100 + i, &whole[i as usize..i as usize + 1])).collect();
    records.push(cont(2, 104, &whole[4..]));
    records.push(resp(3, 1, R200));
    let out = run(JoinConfig::default(), records);
    assert_eq!(statuses(&out), [s("/login", Some(200))]);

    // A short segment that turns out not to start a request is no request.
    let out = run(JoinConfig::default(), vec![req(1, 10, b"OK"), cont(2, 12, b" fine, thanks and more bytes")]);
    assert!(out.exchanges.is_empty(), "{:?}", statuses(&out));
    let out = run(JoinConfig::default(), vec![req(1, 10, b"GE")]);
    assert!(out.exchanges.is_empty(), "never shown to be a request");
}

#[test]
fn a_status_split_before_its_code_is_still_read() {
    let g = get("/x");
    let out = run(
        JoinConfig::default(),
        vec![
            req(1, 10, &g),
            resp(2, 500, b"HTTP/1.1 4"),
            resp_cont(3, 510, b"0"),
            resp_cont(4, 511, b"3 Forbidden\r\nContent-Length: 0\r\n\r\n"),
        ],
    );
    assert_eq!(statuses(&out), [s("/x", Some(403))]);
    // Never completed: its request has no status, counted.
    let out = run(JoinConfig::default(), vec![req(1, 10, &g), resp(2, 500, b"HTTP/1.1 4")]);
    assert_eq!(statuses(&out), [s("/x", None)]);
    assert_eq!(out.unread_responses, 1);
}

/// A response segment of `len` bytes of which only the first `cap` were
/// captured (the response snaplen).
fn resp_cut(ts: Nanos, seq: u32, data: &[u8], cap: usize) -> Record<'_> {
    let mut r = resp_ack(ts, seq, &data[..cap]);
    r.payload_len = data.len() as u32;
    r
}

#[test]
fn a_capture_cut_before_the_body_length_still_places_every_status() {
    // The capture holds the status line but not the Content-Length, so
    // where the next response starts is unknown.
    let long: &[u8] =
        b"HTTP/1.1 401 Unauthorized\r\nServer: s\r\nX-Pad: aaaaaaaaaaaaaaaa\r\nContent-Length: 2\r\n\r\nno";
    let (g1, g2) = (get("/1"), get("/2"));
    let s2 = 500 + long.len() as u32;

    // Keep-alive: one request at a time, each answered in turn, even when
    // the acknowledgement does not point at its answer.
    let out = run(
        JoinConfig::default(),
        vec![
            req_ack(1, 100, 500, &g1),
            resp_cut(2, 500, long, 30),
            req(3, 100 + g1.len() as u32, &g2),
            resp_ack(4, s2, R404),
        ],
    );
    assert_eq!(statuses(&out), [s("/1", Some(401)), s("/2", Some(404))]);

    // Pipelined: the cut segment may hold the second answer too, so the
    // next status could answer /2 or /3; neither gets it.
    let pipelined = [get("/1"), get("/2"), get("/3")].concat();
    let two = [long, R200].concat();
    let s3 = 500 + two.len() as u32;
    let out = run(
        JoinConfig::default(),
        vec![req_ack(1, 100, 500, &pipelined), resp_cut(2, 500, &two, 30), resp_ack(3, s3, R404)],
    );
    assert_eq!(statuses(&out), [s("/1", Some(401)), s("/2", None), s("/3", None)]);
    assert_eq!(out.unread_responses, 2);

    // Captured far enough to read the length: exact, so the gap held the
    // second answer and the third status goes to /3.
    let cut = long.len() - 2;
    let out = run(
        JoinConfig::default(),
        vec![req_ack(1, 100, 500, &pipelined), resp_cut(2, 500, &two, cut), resp_ack(3, s3, R404)],
    );
    assert_eq!(statuses(&out), [s("/1", Some(401)), s("/2", None), s("/3", Some(404))]);
}
