//! The record: what every source (kernel ring buffer, pcap file) produces
//! and the core consumes. One TCP segment's worth of captured payload,
//! borrowed where it lies (the ring-buffer entry, the capture's frame):
//! the core parses it in place and copies out only what it keeps.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rejectwatch_common::{
    FAMILY_V6, KIND_CONTINUATION, KIND_REQUEST, KIND_RESPONSE, KIND_RESPONSE_CONTINUATION, RECORD_HEADER_LEN,
    RecordHeader, TCP_ACK,
};

use crate::time::Nanos;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A segment that starts a request head (client → server).
    Request,
    /// A later segment of a request head that did not end in one segment.
    Continuation,
    /// A segment that starts with a status line (server → client).
    Response,
    /// A later segment of a status line that ended before its code.
    ResponseContinuation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: Kind,
    pub ts: Nanos,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    /// The segment's acknowledgement number, when its ACK flag is set:
    /// where the sender had got to in the other direction's byte stream.
    /// A request carries how much of the server's stream the client had
    /// received, which places the response that answers it.
    pub ack: Option<u32>,
    /// Payload length of the segment on the wire; `data` may be shorter.
    pub payload_len: u32,
    pub data: &'a [u8],
}

impl Record<'_> {
    /// Whether the capture holds the whole segment payload.
    pub fn whole(&self) -> bool {
        self.data.len() as u64 >= self.payload_len as u64
    }
}

/// Why a kernel record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record shorter than its header")]
    Short,
    #[error("unknown record kind {0}")]
    Kind(u8),
    #[error("captured length exceeds the record")]
    Length,
}

impl DecodeError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Short => "short_record",
            Self::Kind(_) => "unknown_kind",
            Self::Length => "bad_length",
        }
    }
}

fn addr(family: u8, raw: [u8; 16], port: u16) -> SocketAddr {
    let ip = if family == FAMILY_V6 {
        IpAddr::V6(Ipv6Addr::from(raw))
    } else {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    };
    SocketAddr::new(ip, port)
}

/// Decodes one ring-buffer record; `to_wall` maps kernel monotonic time to
/// Unix-epoch nanoseconds.
pub fn decode(raw: &[u8], to_wall: impl Fn(u64) -> Nanos) -> Result<Record<'_>, DecodeError> {
    if raw.len() < RECORD_HEADER_LEN {
        return Err(DecodeError::Short);
    }
    // SAFETY: RecordHeader is plain old data and the length was checked.
    let h: RecordHeader = unsafe { std::ptr::read_unaligned(raw.as_ptr() as *const RecordHeader) };
    let kind = match h.kind {
        KIND_REQUEST => Kind::Request,
        KIND_CONTINUATION => Kind::Continuation,
        KIND_RESPONSE => Kind::Response,
        KIND_RESPONSE_CONTINUATION => Kind::ResponseContinuation,
        k => return Err(DecodeError::Kind(k)),
    };
    let end = RECORD_HEADER_LEN + h.cap_len as usize;
    if end > raw.len() {
        return Err(DecodeError::Length);
    }
    Ok(Record {
        kind,
        ts: to_wall(h.ts_ns),
        src: addr(h.family, h.saddr, h.sport),
        dst: addr(h.family, h.daddr, h.dport),
        seq: h.seq,
        ack: (h.tcp_flags & TCP_ACK != 0).then_some(h.ack),
        payload_len: h.payload_len,
        data: &raw[RECORD_HEADER_LEN..end],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(h: RecordHeader, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; RECORD_HEADER_LEN];
        unsafe { std::ptr::write_unaligned(v.as_mut_ptr() as *mut RecordHeader, h) };
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_v4_and_v6() {
        let mut h = RecordHeader { kind: KIND_REQUEST, family: 4, cap_len: 3, payload_len: 9, ..Default::default() };
        h.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        h.sport = 5555;
        h.dport = 80;
        h.ts_ns = 7;
        let bytes = raw(h, b"GETxx");
        let r = decode(&bytes, |t| t + 1).expect("decodes");
        assert_eq!(r.src, "10.0.0.1:5555".parse().unwrap());
        assert_eq!(r.data, b"GET");
        assert_eq!(r.ts, 8);
        assert!(!r.whole());

        h.family = FAMILY_V6;
        h.saddr = Ipv6Addr::LOCALHOST.octets();
        let bytes = raw(h, b"GET");
        let r = decode(&bytes, |t| t).expect("decodes v6");
        assert_eq!(r.src.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn rejects_bad_records() {
        assert_eq!(decode(&[0u8; 3], |t| t), Err(DecodeError::Short));
        let h = RecordHeader { kind: 9, ..Default::default() };
        assert_eq!(decode(&raw(h, b""), |t| t), Err(DecodeError::Kind(9)));
        let h = RecordHeader { kind: KIND_RESPONSE, cap_len: 100, ..Default::default() };
        assert_eq!(decode(&raw(h, b"short"), |t| t), Err(DecodeError::Length));
    }
}
