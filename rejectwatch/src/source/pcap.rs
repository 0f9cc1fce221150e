//! Capture files (pcap and pcapng) as a record source for `analyze`.
//!
//! Packets are decoded down to TCP (Ethernet with VLAN tags, Linux cooked
//! v1/v2, BSD loopback, raw IP and Cisco HDLC framings), then passed
//! through [`KernelRules`] so the records are those the kernel programs
//! would have emitted. Time comes from the packets; several captures are
//! read as one, in the order of their packets' times.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    fs::File,
    io::{BufRead as _, BufReader, Read},
    net::{IpAddr, SocketAddr},
    path::Path,
};

use anyhow::{Context as _, bail};
use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_file::{
    DataLink,
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader},
};

use super::emulate::{KernelRules, Segment};
use crate::{
    join::Joiner,
    observe::{Observer, Source},
    record::{Nanos, Record},
};

/// What one replay read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    pub packets: u64,
    pub records: u64,
    pub last_ts: Nanos,
}

const PCAP_MAGICS: [[u8; 4]; 4] =
    [[0xd4, 0xc3, 0xb2, 0xa1], [0xa1, 0xb2, 0xc3, 0xd4], [0x4d, 0x3c, 0xb2, 0xa1], [0xa1, 0xb2, 0x3c, 0x4d]];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Is this file a capture (by its magic number)?
pub fn is_capture(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok()
        && (PCAP_MAGICS.contains(&magic) || magic == PCAPNG_MAGIC)
}

/// Feeds every packet of the captures at `paths`, in time order across
/// them (see [`records`]), through `rules` into `join`.
pub fn replay(
    paths: &[&Path],
    rules: &mut KernelRules,
    join: &mut Joiner,
    obs: &mut dyn Observer,
) -> anyhow::Result<ReplayStats> {
    records(paths, rules, |r| match r {
        Ok(rec) => join.push(rec, obs),
        Err(reason) => obs.parse_error(Source::Pcap, reason),
    })
}

/// Every record the kernel programs would have emitted for the captures
/// at `paths` (through `rules`), or the reason a frame could not be read.
/// The captures are read together, earliest frame first (ties: in the
/// order given), as one capture of all their traffic would have been: the
/// detectors' time only moves forward, so a week-old file read after
/// today's would be judged as late news, and captures taken on two
/// interfaces (requests on one, responses on the other) join only when
/// read as one. Every file is opened, and its format checked, before any
/// is read; then each is opened again only when the stream reaches its
/// first frame, and closed at its end, so a month of hourly captures
/// (`tcpdump -G`) holds one or two open, not hundreds of descriptors and
/// read buffers. What [`replay`] joins, and what a benchmark holds in
/// memory to time the core on an operator's own traffic.
pub fn records(
    paths: &[&Path],
    rules: &mut KernelRules,
    mut each: impl for<'r> FnMut(Result<Record<'r>, &'static str>),
) -> anyhow::Result<ReplayStats> {
    let mut frame = Frame::default();
    // Each capture by the time of its first frame (a damaged first record:
    // at once, to be reported), sorted so that the earliest is popped first.
    let mut due = Vec::with_capacity(paths.len());
    for (i, p) in paths.iter().enumerate() {
        let first = match Capture::open(p)?.read(&mut frame) {
            Ok(true) => frame.ts,
            Ok(false) => continue,
            Err(_) => 0,
        };
        due.push(Reverse((first, i)));
    }
    due.sort_unstable();
    let mut open: Vec<Option<(Capture, Frame)>> = paths.iter().map(|_| None).collect();
    let mut stats = ReplayStats::default();
    // The next frame of each open capture, earliest first.
    let mut next = BinaryHeap::new();
    loop {
        while let Some(&Reverse((first, i))) = due.last() {
            if next.peek().is_some_and(|Reverse((ts, _))| *ts < first) {
                break;
            }
            due.pop();
            let mut c = Capture::open(paths[i])?;
            let mut f = Frame::default();
            if c.advance(&mut f, i, &mut next, &mut each) {
                open[i] = Some((c, f));
            }
        }
        let Some(Reverse((_, i))) = next.pop() else { break };
        let (c, f) = open[i].as_mut().expect("a queued capture is open");
        stats.packets += 1;
        stats.last_ts = stats.last_ts.max(f.ts);
        match decode(f.linktype, &f.data, f.orig_len, f.ts) {
            Ok(Some(seg)) => {
                if let Some(rec) = rules.segment(&seg) {
                    stats.records += 1;
                    each(Ok(rec));
                }
            }
            Ok(None) => {}
            Err(reason) => each(Err(reason)),
        }
        if !c.advance(f, i, &mut next, &mut each) {
            open[i] = None;
        }
    }
    Ok(stats)
}

/// A frame copied out of its capture, so that several captures can be held
/// open at once, each at its next frame.
#[derive(Default)]
struct Frame {
    linktype: u32,
    ts: Nanos,
    orig_len: u32,
    data: Vec<u8>,
}

impl Frame {
    fn set(&mut self, linktype: u32, ts: Nanos, orig_len: u32, data: &[u8]) {
        (self.linktype, self.ts, self.orig_len) = (linktype, ts, orig_len);
        self.data.clear();
        self.data.extend_from_slice(data);
    }
}

/// An open capture, read a frame at a time.
enum Capture {
    Pcap {
        r: PcapReader<BufReader<File>>,
        linktype: u32,
    },
    /// The link types of the current section's interfaces, by interface id.
    PcapNg {
        r: PcapNgReader<BufReader<File>>,
        links: Vec<u32>,
    },
}

impl Capture {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let shown = path.display();
        let file = File::open(path).with_context(|| format!("cannot read capture {shown}"))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let magic: [u8; 4] = match reader.fill_buf().with_context(|| format!("cannot read capture {shown}"))? {
            b if b.len() >= 4 => [b[0], b[1], b[2], b[3]],
            _ => bail!("cannot read capture {shown}: file too short"),
        };
        if PCAP_MAGICS.contains(&magic) {
            let r = PcapReader::new(reader).with_context(|| format!("cannot read capture {shown}"))?;
            let linktype = u32::from(r.header().datalink);
            Ok(Self::Pcap { r, linktype })
        } else if magic == PCAPNG_MAGIC {
            let r = PcapNgReader::new(reader).with_context(|| format!("cannot read capture {shown}"))?;
            Ok(Self::PcapNg { r, links: Vec::new() })
        } else {
            bail!("cannot read capture {shown}: not a pcap or pcapng file")
        }
    }

    /// Reads the next frame into `f`: `Ok(false)` at the end; a damaged
    /// record ends the capture (a cut-off last record is common: a capture
    /// killed mid-write).
    fn read(&mut self, f: &mut Frame) -> Result<bool, &'static str> {
        match self {
            Self::Pcap { r, linktype } => match r.next_packet() {
                None => Ok(false),
                Some(Ok(p)) => {
                    f.set(*linktype, p.timestamp.as_nanos() as Nanos, p.orig_len, &p.data);
                    Ok(true)
                }
                Some(Err(_)) => Err("bad_capture_record"),
            },
            Self::PcapNg { r, links } => loop {
                match r.next_block() {
                    None => return Ok(false),
                    Some(Ok(Block::InterfaceDescription(idb))) => links.push(u32::from(idb.linktype)),
                    Some(Ok(Block::SectionHeader(_))) => links.clear(),
                    Some(Ok(Block::EnhancedPacket(p))) => {
                        let link = links.get(p.interface_id as usize).copied().unwrap_or(u32::MAX);
                        f.set(link, p.timestamp.as_nanos() as Nanos, p.original_len, &p.data);
                        return Ok(true);
                    }
                    Some(Ok(Block::SimplePacket(p))) => {
                        // No timestamp of its own: it keeps its place,
                        // at the time of the frame before it.
                        let link = links.first().copied().unwrap_or(u32::MAX);
                        f.set(link, f.ts, p.original_len, &p.data);
                        return Ok(true);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) => return Err("bad_capture_record"),
                }
            },
        }
    }

    /// Reads capture `i`'s next frame into `f` and queues it by its time;
    /// false at the end (a damaged record is reported, and is the end).
    fn advance(
        &mut self,
        f: &mut Frame,
        i: usize,
        next: &mut BinaryHeap<Reverse<(Nanos, usize)>>,
        each: &mut impl for<'r> FnMut(Result<Record<'r>, &'static str>),
    ) -> bool {
        match self.read(f) {
            Ok(true) => {
                next.push(Reverse((f.ts, i)));
                true
            }
            Ok(false) => false,
            Err(reason) => {
                each(Err(reason));
                false
            }
        }
    }
}

/// Decodes a frame down to its TCP segment. `Ok(None)` for frames that are
/// fine but not TCP; `Err(reason)` for frames we cannot read.
pub fn decode(linktype: u32, data: &[u8], orig_len: u32, ts: Nanos) -> Result<Option<Segment<'_>>, &'static str> {
    let sliced = match DataLink::from(linktype) {
        DataLink::ETHERNET => LaxSlicedPacket::from_ethernet(data).map_err(|_| "truncated_frame")?,
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => LaxSlicedPacket::from_ip(data).map_err(|_| "bad_ip")?,
        DataLink::NULL | DataLink::LOOP => {
            // BSD loopback: a 4-byte address family (host order for NULL,
            // network order for LOOP; accept both), then an IP packet.
            if data.len() < 4 {
                return Err("truncated_frame");
            }
            LaxSlicedPacket::from_ip(&data[4..]).map_err(|_| "bad_ip")?
        }
        DataLink::LINUX_SLL => {
            if data.len() < 16 {
                return Err("truncated_frame");
            }
            let proto = u16::from_be_bytes([data[14], data[15]]);
            LaxSlicedPacket::from_ether_type(EtherType(proto), &data[16..])
        }
        DataLink::LINUX_SLL2 => {
            if data.len() < 20 {
                return Err("truncated_frame");
            }
            let proto = u16::from_be_bytes([data[0], data[1]]);
            LaxSlicedPacket::from_ether_type(EtherType(proto), &data[20..])
        }
        DataLink::C_HDLC => {
            // Cisco HDLC: address, control, then an Ethernet type.
            if data.len() < 4 {
                return Err("truncated_frame");
            }
            let proto = u16::from_be_bytes([data[2], data[3]]);
            LaxSlicedPacket::from_ether_type(EtherType(proto), &data[4..])
        }
        _ => return Err("unsupported_linktype"),
    };
    let (src_ip, dst_ip, incomplete): (IpAddr, IpAddr, bool) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            (h.source_addr().into(), h.destination_addr().into(), ip.payload().incomplete)
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let h = ip.header();
            (h.source_addr().into(), h.destination_addr().into(), ip.payload().incomplete)
        }
        _ => return stopped(&sliced),
    };
    let Some(TransportSlice::Tcp(tcp)) = &sliced.transport else {
        return stopped(&sliced);
    };
    let payload = tcp.payload();
    // Bytes the capture's snap length cut off the end of the frame were
    // payload on the wire.
    let cut = if incomplete { orig_len.saturating_sub(data.len() as u32) } else { 0 };
    Ok(Some(Segment {
        ts,
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags: tcp.slice()[13],
        payload_len: payload.len() as u32 + cut,
        payload,
    }))
}

/// A frame decoding stopped short of TCP: fine when it simply is not TCP
/// (ARP, UDP, a later IP fragment), a counted reason when a header is
/// malformed or cut.
fn stopped(sliced: &LaxSlicedPacket<'_>) -> Result<Option<Segment<'static>>, &'static str> {
    use etherparse::err::Layer;
    match &sliced.stop_err {
        None => Ok(None),
        Some((_, Layer::TcpHeader)) => Err("bad_tcp"),
        Some((_, Layer::UdpHeader | Layer::UdpPayload | Layer::Icmpv4 | Layer::Icmpv6 | Layer::Arp)) => Ok(None),
        Some((_, Layer::Icmpv4Timestamp | Layer::Icmpv4TimestampReply)) => Ok(None),
        Some((_, Layer::Ethernet2Header | Layer::VlanHeader | Layer::LinuxSllHeader)) => Err("truncated_frame"),
        Some(_) => Err("bad_ip"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_frames_are_reasons_not_panics() {
        for lt in [0u32, 1, 101, 104, 113, 276, 228, 229, 9999] {
            for data in [&[][..], &[0u8; 3], &[0xffu8; 60], &[0x45u8, 0, 0, 20]] {
                let _ = decode(lt, data, data.len() as u32, 0);
            }
        }
        assert_eq!(decode(9999, &[0u8; 40], 40, 0).err(), Some("unsupported_linktype"));
        assert!(matches!(decode(1, &[0u8; 10], 10, 0), Err("truncated_frame")));
    }

    #[test]
    fn decodes_hdlc_ipv4_tcp() {
        let mut frame = vec![0x0f, 0x00, 0x08, 0x00];
        let payload = b"GET / HTTP/1.1\r\n\r\n";
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let total = (20 + 20 + payload.len()) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&7u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&tcp);
        frame.extend_from_slice(payload);
        let d = decode(104, &frame, frame.len() as u32, 5).expect("ok").expect("tcp");
        assert_eq!(d.src, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(d.dst.port(), 80);
        assert_eq!(d.seq, 7);
        assert_eq!(d.payload, payload);
        assert_eq!(d.payload_len, payload.len() as u32);
    }
}
