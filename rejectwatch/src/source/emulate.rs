//! The kernel programs' capture rules, replayed in userspace for capture
//! files, so that `analyze` sees exactly the records a live run would have
//! seen for the same packets (same classifiers, same snap lengths, same
//! continuation budget). If the eBPF side changes a rule, this file changes
//! with it; the kernel-vs-pcap end-to-end test holds the two together.

use std::{net::SocketAddr, num::NonZeroUsize};

use lru::LruCache;
use rejectwatch_common::{
    FRESH_FLOWS, MAX_SNAPLEN, NOT_HTTP_SNAPLEN, OPEN_STATUS_FLOWS, PEEK_LEN, PortSet, STATUS_LINE_MIN, TCP_ACK,
    TCP_SYN, could_start_request, could_start_response, ends_head, looks_like_request, looks_like_response,
    payload_seq,
};

use crate::{
    record::{Kind, Record},
    time::Nanos,
};

/// Which server ports are watched.
#[derive(Clone)]
pub enum Ports {
    All,
    Set(Box<PortSet>),
}

impl Ports {
    pub fn from_list(ports: &[u16]) -> Self {
        let mut set = Box::new(PortSet::empty());
        for &p in ports {
            set.insert(p);
        }
        Self::Set(set)
    }

    pub fn contains(&self, port: u16) -> bool {
        match self {
            Self::All => true,
            Self::Set(s) => s.contains(port),
        }
    }
}

#[derive(Clone, Copy)]
struct OpenHead {
    next_seq: u32,
    budget: u32,
}

/// One TCP segment as decoded from a capture.
#[derive(Debug)]
pub struct Segment<'a> {
    pub ts: Nanos,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// Payload length on the wire (the capture may hold less).
    pub payload_len: u32,
    pub payload: &'a [u8],
}

pub struct KernelRules {
    ports: Ports,
    snaplen: u32,
    response_snaplen: u32,
    /// Mirrors the kernel's OPEN_HEADS LRU map (same capacity).
    open: LruCache<(SocketAddr, SocketAddr), OpenHead>,
    /// Mirrors FRESH: connections from their SYN to their first payload.
    fresh: LruCache<(SocketAddr, SocketAddr), u32>,
    /// Mirrors OPEN_STATUSES: (next sequence, bytes so far) of a split
    /// status line, keyed server → client.
    open_status: LruCache<(SocketAddr, SocketAddr), (u32, u32)>,
}

fn lru<V>(n: u32) -> LruCache<(SocketAddr, SocketAddr), V> {
    LruCache::new(NonZeroUsize::new(n as usize).expect("non-zero"))
}

impl KernelRules {
    pub fn new(ports: Ports, snaplen: u32, response_snaplen: u32) -> Self {
        Self {
            ports,
            snaplen: snaplen.min(MAX_SNAPLEN),
            response_snaplen: response_snaplen.min(MAX_SNAPLEN),
            open: lru(65536),
            fresh: lru(FRESH_FLOWS),
            open_status: lru(OPEN_STATUS_FLOWS),
        }
    }

    /// The record the kernel would emit for this segment, if any.
    pub fn segment<'a>(&mut self, s: &Segment<'a>) -> Option<Record<'a>> {
        let seq = payload_seq(s.seq, s.flags);
        let to_server = self.ports.contains(s.dst.port());
        // Ingress side (XDP): request heads to a watched port. With every
        // port watched, a capture's direction is not known: what ingress
        // does not claim may be egress.
        if to_server && let Some(r) = self.ingress(s, seq) {
            return Some(r);
        }
        // Egress side (TC): status lines from a watched port.
        if self.ports.contains(s.src.port()) && s.payload_len > 0 {
            return self.egress(s, seq);
        }
        None
    }

    fn ingress<'a>(&mut self, s: &Segment<'a>, seq: u32) -> Option<Record<'a>> {
        let key = (s.src, s.dst);
        if s.payload_len == 0 {
            if s.flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
                self.fresh.put(key, seq);
            }
            return None;
        }
        let peek = peek(s.payload).filter(|_| s.payload_len >= PEEK_LEN as u32);
        if peek.is_some_and(|p| looks_like_request(&p)) {
            return Some(self.request_head(s, seq));
        }
        if self.open.contains(&key) {
            return self.continuation(s, seq);
        }
        let first = self.fresh.pop(&key) == Some(seq);
        if s.payload_len < PEEK_LEN as u32 && (s.payload.len() as u32) == s.payload_len {
            let n = s.payload.len();
            let mut p = [0u8; PEEK_LEN];
            p[..n].copy_from_slice(s.payload);
            if could_start_request(&p, n) {
                let open = OpenHead { next_seq: seq.wrapping_add(s.payload_len), budget: self.snaplen - s.payload_len };
                self.open.put(key, open);
                return Some(record(Kind::Request, s, seq, s.payload_len));
            }
        }
        first.then(|| record(Kind::Request, s, seq, NOT_HTTP_SNAPLEN))
    }

    fn egress<'a>(&mut self, s: &Segment<'a>, seq: u32) -> Option<Record<'a>> {
        let key = (s.src, s.dst);
        let peek = peek(s.payload).filter(|_| s.payload_len >= PEEK_LEN as u32);
        if peek.is_some_and(|p| looks_like_response(&p)) {
            return Some(record(Kind::Response, s, seq, self.response_snaplen));
        }
        if let Some(&(next_seq, have)) = self.open_status.get(&key) {
            if seq != next_seq {
                if (seq.wrapping_sub(next_seq) as i32) > 0 {
                    self.open_status.pop(&key);
                }
                return None;
            }
            let have = have.saturating_add(s.payload_len);
            if have >= STATUS_LINE_MIN {
                self.open_status.pop(&key);
            } else {
                self.open_status.put(key, (next_seq.wrapping_add(s.payload_len), have));
            }
            return Some(record(Kind::ResponseContinuation, s, seq, self.response_snaplen));
        }
        if s.payload_len < STATUS_LINE_MIN && (s.payload.len() as u32) == s.payload_len {
            let n = s.payload.len();
            let mut p = [0u8; PEEK_LEN];
            p[..n].copy_from_slice(s.payload);
            if could_start_response(&p, n) {
                self.open_status.put(key, (seq.wrapping_add(s.payload_len), s.payload_len));
                return Some(record(Kind::Response, s, seq, s.payload_len));
            }
        }
        None
    }

    fn request_head<'a>(&mut self, s: &Segment<'a>, seq: u32) -> Record<'a> {
        let snap = self.snaplen;
        if s.payload_len < snap && !ends(s) {
            self.open.put(
                (s.src, s.dst),
                OpenHead { next_seq: seq.wrapping_add(s.payload_len), budget: snap - s.payload_len },
            );
        }
        record(Kind::Request, s, seq, snap)
    }

    fn continuation<'a>(&mut self, s: &Segment<'a>, seq: u32) -> Option<Record<'a>> {
        let key = (s.src, s.dst);
        let open = *self.open.get(&key)?;
        if seq != open.next_seq {
            if (seq.wrapping_sub(open.next_seq) as i32) > 0 {
                self.open.pop(&key);
            }
            return None;
        }
        let done = s.payload_len >= open.budget || (s.payload_len >= 4 && ends(s));
        if done {
            self.open.pop(&key);
        } else {
            self.open.put(
                key,
                OpenHead { next_seq: open.next_seq.wrapping_add(s.payload_len), budget: open.budget - s.payload_len },
            );
        }
        Some(record(Kind::Continuation, s, seq, open.budget))
    }
}

/// The first PEEK_LEN payload bytes, when the capture holds them.
fn peek(payload: &[u8]) -> Option<[u8; PEEK_LEN]> {
    payload.get(..PEEK_LEN).map(|p| p.try_into().expect("PEEK_LEN bytes"))
}

/// Whether the segment's last four bytes end a head. A capture that lost
/// the segment's tail cannot tell; the kernel would have seen the bytes, so
/// treat the head as continuing (the join then reports it truncated).
fn ends(s: &Segment<'_>) -> bool {
    if (s.payload.len() as u32) < s.payload_len || s.payload.len() < 4 {
        return false;
    }
    let tail: [u8; 4] = s.payload[s.payload.len() - 4..].try_into().expect("4 bytes");
    ends_head(&tail)
}

fn record<'a>(kind: Kind, s: &Segment<'a>, seq: u32, cap: u32) -> Record<'a> {
    let n = (s.payload_len.min(cap) as usize).min(s.payload.len());
    let ack = (s.flags & TCP_ACK != 0).then_some(s.ack);
    Record { kind, ts: s.ts, src: s.src, dst: s.dst, seq, ack, payload_len: s.payload_len, data: &s.payload[..n] }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg<'a>(src: &str, dst: &str, seq: u32, payload: &'a [u8]) -> Segment<'a> {
        Segment {
            ts: 1,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            seq,
            ack: 0,
            flags: 0x18,
            payload_len: payload.len() as u32,
            payload,
        }
    }

    #[test]
    fn classifies_like_the_kernel() {
        let mut k = KernelRules::new(Ports::from_list(&[80]), 2048, 1024);
        let r = k.segment(&seg("1.1.1.1:5000", "2.2.2.2:80", 1, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert_eq!(r.map(|r| r.kind), Some(Kind::Request));
        let r = k.segment(&seg("2.2.2.2:80", "1.1.1.1:5000", 1, b"HTTP/1.1 404 Not Found\r\n\r\n"));
        assert_eq!(r.map(|r| r.kind), Some(Kind::Response));
        // Unwatched port, body bytes, a too-short payload: nothing.
        assert!(k.segment(&seg("1.1.1.1:5000", "2.2.2.2:81", 1, b"GET / HTTP/1.1\r\n\r\n")).is_none());
        assert!(k.segment(&seg("1.1.1.1:5000", "2.2.2.2:80", 99, b"{\"json\": 1}")).is_none());
        assert!(k.segment(&seg("1.1.1.1:5000", "2.2.2.2:80", 99, b"body")).is_none());
    }

    fn syn(src: &str, dst: &str, isn: u32) -> Segment<'static> {
        Segment { flags: TCP_SYN, payload_len: 0, payload: b"", ..seg(src, dst, isn, b"") }
    }

    #[test]
    fn a_request_start_is_found_however_split() {
        let mut k = KernelRules::new(Ports::from_list(&[80]), 2048, 1024);
        let (c, srv) = ("1.1.1.1:5000", "2.2.2.2:80");
        let r = k.segment(&seg(c, srv, 10, b"GE")).expect("a short start that could be a request");
        assert_eq!((r.kind, r.data), (Kind::Request, &b"GE"[..]));
        let rest = b"T /admin?id=1'+or+'1'='1 HTTP/1.1\r\nHost: a\r\n\r\n";
        let r = k.segment(&seg(c, srv, 12, rest)).expect("continued");
        assert_eq!((r.kind, r.data.len()), (Kind::Continuation, rest.len()));
        // The head ended: what follows is body, not shipped.
        assert!(k.segment(&seg(c, srv, 12 + rest.len() as u32, b"GE")).is_some(), "a new short start");
        // A short segment that cannot start a request is not shipped.
        assert!(k.segment(&seg("1.1.1.1:5001", srv, 1, b"ok")).is_none());
    }

    #[test]
    fn first_bytes_that_are_not_http_are_shipped() {
        let mut k = KernelRules::new(Ports::from_list(&[80]), 2048, 1024);
        let (c, srv) = ("1.1.1.1:5000", "2.2.2.2:80");
        assert!(k.segment(&syn(c, srv, 999)).is_none());
        let hello = [0x16u8; 300];
        let r = k.segment(&seg(c, srv, 1000, &hello)).expect("first bytes of the connection");
        assert_eq!((r.kind, r.data.len()), (Kind::Request, NOT_HTTP_SNAPLEN as usize));
        // Only the first: later bytes of it are not.
        assert!(k.segment(&seg(c, srv, 1300, &hello)).is_none());
        // A connection that starts with a request is not flagged.
        assert!(k.segment(&syn("1.1.1.1:5002", srv, 5)).is_none());
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(k.segment(&seg("1.1.1.1:5002", srv, 6, get)).map(|r| r.kind), Some(Kind::Request));
        assert!(k.segment(&seg("1.1.1.1:5002", srv, 6 + get.len() as u32, &hello)).is_none());
    }

    #[test]
    fn a_status_line_is_found_however_split() {
        let mut k = KernelRules::new(Ports::from_list(&[80]), 2048, 1024);
        let (srv, c) = ("2.2.2.2:80", "1.1.1.1:5000");
        let r = k.segment(&seg(srv, c, 50, b"HTTP/1.1 4")).expect("split status");
        assert_eq!(r.kind, Kind::Response);
        let r = k.segment(&seg(srv, c, 60, b"0")).expect("still short of the code");
        assert_eq!(r.kind, Kind::ResponseContinuation);
        let r = k.segment(&seg(srv, c, 61, b"3 Forbidden\r\n\r\n")).expect("the code completed");
        assert_eq!(r.kind, Kind::ResponseContinuation);
        assert!(k.segment(&seg(srv, c, 78, b"body bytes")).is_none(), "then body");
        assert!(k.segment(&seg(srv, c, 90, b"<html>")).is_none());
    }

    #[test]
    fn continuation_budget_and_snaplen() {
        let mut k = KernelRules::new(Ports::All, 64, 1024);
        let first = b"GET /long HTTP/1.1\r\nHost: a\r\n";
        let r = k.segment(&seg("1.1.1.1:5000", "2.2.2.2:80", 100, first)).expect("head");
        assert_eq!(r.data.len(), first.len());
        let second = [b'x'; 50];
        let c = k.segment(&seg("1.1.1.1:5000", "2.2.2.2:80", 100 + first.len() as u32, &second)).expect("cont");
        assert_eq!(c.kind, Kind::Continuation);
        assert_eq!(c.data.len(), 64 - first.len(), "budget caps the continuation");
        // Budget spent: nothing more is emitted.
        assert!(k.segment(&seg("1.1.1.1:5000", "2.2.2.2:80", 150 + first.len() as u32, b"more")).is_none());

        let big = [b'G'; 100];
        let mut s = seg("1.1.1.1:5001", "2.2.2.2:80", 1, &big);
        s.payload =
            b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        s.payload_len = s.payload.len() as u32;
        let r = k.segment(&s).expect("head");
        assert_eq!(r.data.len(), 64);
        assert!(!r.whole());
    }

    #[test]
    fn syn_data_starts_after_the_syn() {
        let mut k = KernelRules::new(Ports::All, 2048, 1024);
        let mut s = seg("1.1.1.1:5000", "2.2.2.2:80", 41, b"GET /tfo HTTP/1.1\r\n");
        s.flags = rejectwatch_common::TCP_SYN;
        assert_eq!(k.segment(&s).expect("head").seq, 42);
    }
}
