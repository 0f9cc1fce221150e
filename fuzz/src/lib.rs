//! Decoders shared by the fuzz targets: they turn libFuzzer's bytes into
//! the structured input a target feeds (a sequence of kernel records for
//! the join, of TCP segments for the capture rules), so that mutations
//! land on flows, sequence numbers and payloads rather than on a layout
//! the fuzzer would first have to discover. Also the temp files the
//! path-based readers (captures, logs) are fed through.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use rejectwatch::{
    join::JoinConfig,
    record::{Kind, Record},
    source::emulate::Segment,
    time::Nanos,
};

/// A cursor that runs out gracefully: reads past the end give zeros, so
/// every byte string decodes to something.
pub struct Bytes<'a> {
    b: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Self { b }
    }

    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        let (&v, rest) = self.b.split_first().unwrap_or((&0, &[]));
        self.b = rest;
        v
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// A length-prefixed run: one byte, or 255 then two bytes for longer.
    pub fn data(&mut self) -> &'a [u8] {
        let n = match self.u8() {
            255 => self.u16() as usize,
            n => n as usize,
        };
        let (d, rest) = self.b.split_at(n.min(self.b.len()));
        self.b = rest;
        d
    }
}

/// The join's limits, from one byte: tiny tables (eviction, a full
/// pending queue) as often as the defaults.
pub fn join_config(h: u8) -> JoinConfig {
    JoinConfig {
        max_flows: [1, 2, 4, 262_144][(h & 3) as usize],
        max_pending: [1, 2, 4, 64][(h >> 2 & 3) as usize],
        snaplen: [64, 256, 2048, 4096][(h >> 4 & 3) as usize],
        response_timeout: Duration::from_secs(if h & 0x40 != 0 { 1 } else { 30 }),
    }
}

/// Four connections: two IPv4 clients of port 80, one of 8080 whose
/// sequence numbers start just before they wrap, one IPv6 client of 443
/// (not watched unless every port is).
const FLOWS: usize = 4;

fn ends(flow: usize) -> (SocketAddr, SocketAddr) {
    let v4 = |last| IpAddr::V4(Ipv4Addr::new(10, 0, 0, last));
    match flow {
        0 => (SocketAddr::new(v4(1), 40000), SocketAddr::new(v4(100), 80)),
        1 => (SocketAddr::new(v4(2), 40001), SocketAddr::new(v4(100), 80)),
        2 => (SocketAddr::new(v4(3), 40002), SocketAddr::new(v4(100), 8080)),
        _ => (
            SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), 40003),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100)), 443),
        ),
    }
}

/// Where each flow's client (`[0]`) and server (`[1]`) streams start;
/// relative sequence numbers are offsets from these.
const BASES: [[u32; 2]; FLOWS] =
    [[1000, 5000], [0x7fff_ff00, 0x8000_0000], [u32::MAX - 200, u32::MAX - 100], [0, u32::MAX]];

/// The clock: microseconds apart, or a jump of up to 65 s (past the
/// response timeout) when asked.
fn tick(input: &mut Bytes<'_>, ts: &mut Nanos, jump: bool) {
    *ts += if jump { u64::from(input.u16()) * 1_000_000 } else { 1_000 };
}

fn seq(input: &mut Bytes<'_>, flow: usize, side: usize, absolute: bool) -> u32 {
    if absolute { input.u32() } else { BASES[flow][side].wrapping_add(u32::from(input.u16())) }
}

/// Kernel records, each: an op byte (kind: bits 0-1; flow: 2-3; ack: 4;
/// clock jump: 5; payload cut short of its wire length: 6; absolute
/// sequence number: 7), the sequence number (two bytes from the flow's
/// base, or four), the ack (two bytes from the other side's base) when
/// flagged, the cut (one byte) when flagged, then the captured data.
/// Requests and continuations go client to server, responses back.
pub fn records<'a>(input: &mut Bytes<'a>, mut each: impl FnMut(Record<'a>)) {
    let mut ts: Nanos = 1_700_000_000_000_000_000;
    while !input.is_empty() {
        let op = input.u8();
        let kind = [Kind::Request, Kind::Continuation, Kind::Response, Kind::ResponseContinuation][(op & 3) as usize];
        let flow = (op >> 2 & 3) as usize;
        let side = usize::from(matches!(kind, Kind::Response | Kind::ResponseContinuation));
        tick(input, &mut ts, op & 0x20 != 0);
        let seq = seq(input, flow, side, op & 0x80 != 0);
        let ack = (op & 0x10 != 0).then(|| BASES[flow][1 - side].wrapping_add(u32::from(input.u16())));
        let cut = if op & 0x40 != 0 { u32::from(input.u8()) } else { 0 };
        let data = input.data();
        let (client, server) = ends(flow);
        let (src, dst) = if side == 0 { (client, server) } else { (server, client) };
        each(Record { kind, ts, src, dst, seq, ack, payload_len: data.len() as u32 + cut, data });
    }
}

/// TCP segments as a capture decodes them, each: an op byte (direction,
/// server to client when set: bit 0; flow: 1-2; explicit flags: 3, else
/// PSH|ACK; clock jump: 4; payload cut short: 5; absolute sequence number:
/// 6), the flags byte when flagged, the sequence number, the ack (two
/// bytes from the other side's base), the cut when flagged, the payload.
pub fn segments<'a>(input: &mut Bytes<'a>, mut each: impl FnMut(Segment<'a>)) {
    let mut ts: Nanos = 1_700_000_000_000_000_000;
    while !input.is_empty() {
        let op = input.u8();
        let side = usize::from(op & 1);
        let flow = (op >> 1 & 3) as usize;
        let flags = if op & 0x08 != 0 { input.u8() } else { 0x18 };
        tick(input, &mut ts, op & 0x10 != 0);
        let seq = seq(input, flow, side, op & 0x40 != 0);
        let ack = BASES[flow][1 - side].wrapping_add(u32::from(input.u16()));
        let cut = if op & 0x20 != 0 { u32::from(input.u8()) } else { 0 };
        let payload = input.data();
        let (client, server) = ends(flow);
        let (src, dst) = if side == 0 { (client, server) } else { (server, client) };
        each(Segment { ts, src, dst, seq, ack, flags, payload_len: payload.len() as u32 + cut, payload });
    }
}

/// A file of this process's own holding `data`, for readers that take
/// paths; rewritten on every run, left for the OS's temp cleaning. In
/// /dev/shm where there is one: on a disk, truncating it for every input
/// waited on the device (ext4 discards the freed blocks), and the file
/// targets ran a few hundred inputs a second.
pub fn temp_file(name: &str, data: &[u8]) -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    let path = dir.join(format!("rejectwatch-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&path, data).expect("writing the temp file");
    path
}
