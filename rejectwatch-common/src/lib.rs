//! Records and classifiers shared by the eBPF programs and userspace.
//!
//! Everything here is `#[repr(C)]` plain data or a pure function over a few
//! bytes, so the kernel programs and the offline (pcap) source decide the
//! same things the same way: the pcap path emulates the kernel with these
//! very functions, which is what keeps live and offline output identical.
#![no_std]

/// Largest request-head capture the kernel can be asked for (bytes).
pub const MAX_SNAPLEN: u32 = 4096;
/// Default request-head capture (bytes).
pub const DEFAULT_SNAPLEN: u32 = 2048;
/// Default response capture (bytes): the status line and the headers of a
/// typical reject, so the body's length is read and the join knows where
/// the next response starts. Bytes the ring does not carry are what the
/// programs cost most (every record cycles the ring through the cache):
/// with 1 KiB, the earlier default, both programs took about 1.10x the
/// run time on the 401 mix (docs/benchmarks.md). Pipelined answers past the capture are reported without a
/// status, never with another's; `--response-snaplen` takes more.
pub const DEFAULT_RESPONSE_SNAPLEN: u32 = 256;

/// Bytes the kernel inspects at the start of a payload to classify it.
pub const PEEK_LEN: usize = 16;

/// Reservation size classes for captured payload. The verifier only accepts
/// constant ring-buffer reservations, so a record takes the smallest class
/// that holds its capture instead of always paying for `MAX_SNAPLEN`. Every
/// power of two: a record wastes less than half its reservation, so the
/// ring holds more records per byte and the bytes the programs write stay
/// within a smaller, cache-resident ring.
pub const SIZE_CLASSES: [u32; 7] = [64, 128, 256, 512, 1024, 2048, 4096];

/// Record kinds.
pub const KIND_REQUEST: u8 = 1;
/// A later segment of a request head that did not end in its first packet.
pub const KIND_CONTINUATION: u8 = 2;
pub const KIND_RESPONSE: u8 = 3;
/// A later segment of a status line that did not reach its status code in
/// the segment that started it.
pub const KIND_RESPONSE_CONTINUATION: u8 = 4;

/// Bytes shipped for the first payload of a connection that is not HTTP:
/// enough to tell a TLS hello or an SSH banner apart.
pub const NOT_HTTP_SNAPLEN: u32 = 64;

pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// TCP flag bits as they appear in `RecordHeader::tcp_flags`.
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// Header of every ring-buffer record; `cap_len` payload bytes follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) in the kernel; userspace maps
    /// it to wall-clock time once, at start.
    pub ts_ns: u64,
    /// Source address; IPv4 occupies the first four bytes.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// TCP sequence number of the first payload byte (host order).
    pub seq: u32,
    pub ack: u32,
    /// TCP payload length of the packet (may exceed `cap_len`).
    pub payload_len: u32,
    pub ifindex: u32,
    pub sport: u16,
    pub dport: u16,
    /// Payload bytes captured after this header.
    pub cap_len: u16,
    pub kind: u8,
    pub family: u8,
    pub tcp_flags: u8,
    pub _pad: [u8; 7],
}

pub const RECORD_HEADER_LEN: usize = core::mem::size_of::<RecordHeader>();

/// Indexes of the per-CPU counters array.
pub mod counter {
    pub const PACKETS: u32 = 0;
    pub const HEADS: u32 = 1;
    pub const CONTINUATIONS: u32 = 2;
    pub const STATUSES: u32 = 3;
    pub const RINGBUF_DROPS: u32 = 4;
    pub const LOAD_FAILURES: u32 = 5;
    pub const TRUNCATED: u32 = 6;
    pub const WAKEUPS: u32 = 7;
    /// Records submitted (paces the backlog check).
    pub const SUBMITS: u32 = 8;
    /// Request heads whose first segment was too short to judge alone.
    pub const SPLIT_STARTS: u32 = 9;
    /// Status lines whose first segment ended before the status code.
    pub const SPLIT_STATUSES: u32 = 10;
    /// Connections whose first bytes on a watched port were not HTTP.
    pub const NOT_HTTP: u32 = 11;
    pub const COUNT: u32 = 12;
}

/// Enforcement (`--enforce xdp`): the blocklist in kernel maps, in two
/// sets so that a full reload fills the idle set and then swaps, never
/// freeing a large trie under the packet path.
pub mod enforce {
    /// `CONTROL[ACTIVE]`: the set the XDP program looks in (0 or 1).
    pub const ACTIVE: u32 = 0;
    /// `CONTROL[KINDS + set]`: which of that set's maps hold entries
    /// (the bits below), so that empty maps cost no lookup.
    pub const KINDS: u32 = 1;
    pub const CONTROL_LEN: u32 = 3;
    pub const EXACT4: u32 = 1;
    pub const EXACT6: u32 = 2;
    pub const PREFIX4: u32 = 4;
    pub const PREFIX6: u32 = 8;
    /// Indexes of the per-CPU drop counters.
    pub const DROPPED_V4_PACKETS: u32 = 0;
    pub const DROPPED_V4_BYTES: u32 = 1;
    pub const DROPPED_V6_PACKETS: u32 = 2;
    pub const DROPPED_V6_BYTES: u32 = 3;
    pub const DROP_COUNTERS: u32 = 4;
    /// Entries each map is made for unless the loader says otherwise.
    pub const DEFAULT_MAX_ENTRIES: u32 = 100_000;
    /// The names of the maps of set 0 and set 1: exact IPv4, exact IPv6,
    /// IPv4 prefixes, IPv6 prefixes.
    pub const MAPS: [[&str; 4]; 2] =
        [["BLOCK4_0", "BLOCK6_0", "PREFIX4_0", "PREFIX6_0"], ["BLOCK4_1", "BLOCK6_1", "PREFIX4_1", "PREFIX6_1"]];
}

/// Set of watched TCP ports: one bit per port, one map entry.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PortSet {
    pub bits: [u64; 1024],
}

impl PortSet {
    pub const fn empty() -> Self {
        Self { bits: [0; 1024] }
    }

    #[inline(always)]
    pub fn contains(&self, port: u16) -> bool {
        let word = (port >> 6) as usize & 1023;
        self.bits[word] & (1u64 << (port & 63)) != 0
    }

    pub fn insert(&mut self, port: u16) {
        let word = (port >> 6) as usize & 1023;
        self.bits[word] |= 1u64 << (port & 63);
    }
}

/// Per-flow state the kernel keeps while a request head spans segments.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenHead {
    /// Sequence number the next continuation segment must carry.
    pub next_seq: u32,
    /// Capture budget left for this head (bytes).
    pub budget: u32,
}

/// Per-flow state the egress program keeps while a status line spans
/// segments.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenStatus {
    /// Sequence number the segment that continues the status line carries.
    pub next_seq: u32,
    /// Bytes of the status line shipped so far.
    pub have: u32,
}

/// Bytes of a status line up to and including its code (`HTTP/1.1 404`).
pub const STATUS_LINE_MIN: u32 = 12;

/// Flows tracked from their SYN until their first payload.
pub const FRESH_FLOWS: u32 = 65536;
/// Flows whose status line is split, tracked at once.
pub const OPEN_STATUS_FLOWS: u32 = 16384;

/// Key of a TCP flow in kernel maps (client → server direction).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowKey {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub family: u8,
    pub _pad: [u8; 3],
}

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::RecordHeader {}
    unsafe impl aya::Pod for super::PortSet {}
    unsafe impl aya::Pod for super::OpenHead {}
    unsafe impl aya::Pod for super::OpenStatus {}
    unsafe impl aya::Pod for super::FlowKey {}
}

#[inline(always)]
fn is_upper(b: u8) -> bool {
    b.wrapping_sub(b'A') < 26
}

#[inline(always)]
fn is_digit(b: u8) -> bool {
    b.wrapping_sub(b'0') < 10
}

/// Does a payload start like an HTTP/1.x request line?
///
/// A method token of 3 to 12 capital letters, a space, then a request
/// target in origin form (`/`), asterisk form (`*`) or absolute form
/// (`http://`), or for CONNECT in authority form (`host:port`). Any method
/// is accepted, not just the registered ones: scanners send odd methods
/// and those are exactly what we want to see.
#[inline(always)]
pub fn looks_like_request(p: &[u8; PEEK_LEN]) -> bool {
    could_start_request(p, PEEK_LEN)
}

/// `p[i]`, with an index masked so that no bounds check (and no panic
/// path, which the verifier refuses) is left to remove.
#[inline(always)]
fn at(p: &[u8; PEEK_LEN], i: usize) -> u8 {
    p[i & (PEEK_LEN - 1)]
}

/// `CONNECT ` at the start of `p`.
#[inline(always)]
fn is_connect(p: &[u8; PEEK_LEN]) -> bool {
    p[0] == b'C' && p[1] == b'O' && p[2] == b'N' && p[3] == b'N' && p[4] == b'E' && p[5] == b'C' && p[6] == b'T'
}

/// Could the first `len` bytes of `p` (the rest zero) be the start of a
/// request line? What [`looks_like_request`] requires, as far as the bytes
/// go: a request whose first segment is too short to judge alone (`GE`,
/// then `T /admin…`) is judged on what it has, so how a sender splits its
/// bytes cannot hide a request.
#[inline(always)]
pub fn could_start_request(p: &[u8; PEEK_LEN], len: usize) -> bool {
    if len == 0 {
        return false;
    }
    let mut i = 0;
    // Unrolled by the compiler: a fixed, small bound the verifier accepts.
    while i < 13 {
        if i >= len {
            return true;
        }
        let b = at(p, i);
        if b == b' ' && i >= 3 {
            if i + 1 >= len {
                return true;
            }
            let t = at(p, i + 1);
            return t == b'/'
                || t == b'*'
                || t == b'h'
                || t == b'H'
                || (is_connect(p) && i == 7 && t > b' ' && t < 0x7f);
        }
        if !is_upper(b) {
            return false;
        }
        i += 1;
    }
    false
}

/// Could the first `len` bytes of `p` be the start of a status line
/// (`HTTP/1.1 404`)? As [`looks_like_response`], as far as they go.
#[inline(always)]
pub fn could_start_response(p: &[u8; PEEK_LEN], len: usize) -> bool {
    if len == 0 {
        return false;
    }
    let mut i = 0;
    while i < 12 {
        if i >= len {
            return true;
        }
        // By position, not from a table: the verifier cannot bound an
        // index into read-only data computed in a loop.
        let b = at(p, i);
        let ok = match i {
            0 => b == b'H',
            1 | 2 => b == b'T',
            3 => b == b'P',
            4 => b == b'/',
            5 => b == b'1',
            6 => b == b'.',
            8 => b == b' ',
            _ => is_digit(b),
        };
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

/// Does a payload start with an HTTP/1.x status line (`HTTP/1.1 404`)?
#[inline(always)]
pub fn looks_like_response(p: &[u8; PEEK_LEN]) -> bool {
    p[0] == b'H'
        && p[1] == b'T'
        && p[2] == b'T'
        && p[3] == b'P'
        && p[4] == b'/'
        && p[5] == b'1'
        && p[6] == b'.'
        && is_digit(p[7])
        && p[8] == b' '
        && is_digit(p[9])
        && is_digit(p[10])
        && is_digit(p[11])
}

/// Does a captured segment end a request head? Only the last four payload
/// bytes are inspected: a head whose first segment ends in CRLF CRLF needs
/// no continuation.
#[inline(always)]
pub fn ends_head(last4: &[u8; 4]) -> bool {
    last4 == b"\r\n\r\n"
}

/// Sequence number of the first payload byte: a SYN (TCP Fast Open data)
/// consumes one sequence number before its payload.
#[inline(always)]
pub fn payload_seq(seq: u32, flags: u8) -> u32 {
    if flags & TCP_SYN != 0 { seq.wrapping_add(1) } else { seq }
}

/// The smallest reservation class that holds `len` bytes.
#[inline(always)]
pub fn size_class(len: u32) -> u32 {
    let mut i = 0;
    while i + 1 < SIZE_CLASSES.len() && len > SIZE_CLASSES[i] {
        i += 1;
    }
    SIZE_CLASSES[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peek(s: &[u8]) -> [u8; PEEK_LEN] {
        let mut p = [0u8; PEEK_LEN];
        let n = s.len().min(PEEK_LEN);
        p[..n].copy_from_slice(&s[..n]);
        p
    }

    #[test]
    fn request_lines() {
        for ok in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST /api/v1/x HTTP/1.1",
            b"OPTIONS * HTTP/1.1",
            b"CONNECT http://a",
            b"CONNECT example.com:443 HTTP/1.1",
            b"CONNECT [2001:db8::1]:22 HTTP/1.1",
            b"PROPFIND /dav HTTP/1.1",
            b"GET http://x/ HTTP/1.0",
        ] {
            assert!(looks_like_request(&peek(ok)), "{:?}", core::str::from_utf8(ok));
        }
        for bad in [
            &b"get / HTTP/1.1"[..],
            b"GE / HTTP/1.1",
            b"HTTP/1.1 200 OK",
            b"GET  / HTTP/1.1",
            b"\x16\x03\x01\x02\x00\x01\x00",
            b"",
            b"ABCDEFGHIJKLMNOP",
            b"GET example.com:443 HTTP/1.1",
            b"CONNECT  x",
            b"GET /",
        ] {
            // "GET /" followed by zeros still starts like a request line;
            // the length guard in the callers rejects such a short payload.
            if bad == b"GET /" {
                continue;
            }
            assert!(!looks_like_request(&peek(bad)), "{:?}", core::str::from_utf8(bad));
        }
    }

    #[test]
    fn request_starts_however_split() {
        let whole = b"GET /admin?id=1'+or+'1'='1 HTTP/1.1\r\n";
        for n in 1..PEEK_LEN {
            assert!(could_start_request(&peek(&whole[..n]), n), "{n} bytes");
        }
        let connect = b"CONNECT example.com:443 HTTP/1.1";
        for n in 1..PEEK_LEN {
            assert!(could_start_request(&peek(&connect[..n]), n), "CONNECT, {n} bytes");
        }
        for (bad, n) in [
            (&b"ge"[..], 2),
            (b"{\"a\":1}", 7),
            (b"\x16\x03\x01", 3),
            (b"GE /", 4),
            (b"GET x", 5),
            (b"", 0),
            (b"ABCDEFGHIJKLMN", 14),
        ] {
            assert!(!could_start_request(&peek(bad), n), "{:?}", core::str::from_utf8(bad));
        }
        // The whole check, where the bytes are enough to judge.
        assert!(could_start_request(&peek(whole), PEEK_LEN));
        let status = b"HTTP/1.1 404 Not Found\r\n";
        for n in 1..PEEK_LEN {
            assert!(could_start_response(&peek(&status[..n]), n), "{n} bytes");
        }
        for bad in [&b"HTTX"[..], b"HTTP/2 ", b"HTTP/1.1 2 ", b"<html>"] {
            assert!(!could_start_response(&peek(bad), bad.len()), "{:?}", core::str::from_utf8(bad));
        }
    }

    #[test]
    fn status_lines() {
        assert!(looks_like_response(&peek(b"HTTP/1.1 404 Not Found")));
        assert!(looks_like_response(&peek(b"HTTP/1.0 200 OK")));
        assert!(!looks_like_response(&peek(b"HTTP/2 200")));
        assert!(!looks_like_response(&peek(b"HTTP/1.1 20x")));
        assert!(!looks_like_response(&peek(b"GET / HTTP/1.1")));
    }

    #[test]
    fn classes() {
        assert_eq!(size_class(1), 64);
        assert_eq!(size_class(64), 64);
        assert_eq!(size_class(65), 128);
        assert_eq!(size_class(257), 512);
        assert_eq!(size_class(1025), 2048);
        assert_eq!(size_class(4096), 4096);
        assert_eq!(size_class(9999), 4096);
        assert_eq!(RECORD_HEADER_LEN % 8, 0);
    }

    #[test]
    fn ports() {
        let mut s = PortSet::empty();
        s.insert(80);
        s.insert(65535);
        assert!(s.contains(80) && s.contains(65535) && !s.contains(81) && !s.contains(0));
    }
}
