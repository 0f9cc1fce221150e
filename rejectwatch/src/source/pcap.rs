//! Capture files (pcap and pcapng) as a record source for `analyze`.
//!
//! Packets are decoded down to TCP (Ethernet with VLAN tags, PPPoE sessions
//! and VXLAN tunnels, Linux cooked v1/v2, BSD loopback, raw IP and Cisco
//! HDLC framings), then passed
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
    record::Record,
    time::Nanos,
};

/// What one replay read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    pub packets: u64,
    pub records: u64,
    pub last_ts: Nanos,
    /// Frames that were fine but carried no TCP (those that could not be
    /// read are parse errors, reported with their reason).
    pub skipped: Skipped,
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
            Ok(Decoded::Segment(seg)) => {
                if let Some(rec) = rules.segment(&seg) {
                    stats.records += 1;
                    each(Ok(rec));
                }
            }
            Ok(Decoded::Skipped(kind)) => stats.skipped.add(kind),
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
        // Reads of 1 MiB for a big capture or a pipe; no bigger than a
        // small file (zeroing 1 MiB per file was most of the time of
        // reading a few kilobytes).
        let size = file.metadata().ok().filter(|m| m.is_file()).map_or(u64::MAX, |m| m.len());
        let mut reader = BufReader::with_capacity(size.clamp(1 << 12, 1 << 20) as usize, file);
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

/// What a frame decoded to, when it is not broken.
#[derive(Debug)]
pub enum Decoded<'a> {
    Segment(Segment<'a>),
    /// A frame that is fine but carries no TCP segment.
    Skipped(Skip),
}

/// Why a sound frame carried no TCP segment: the ordinary traffic of a
/// link (ARP, DNS, ICMP, PPP control), counted so that every frame read
/// is accounted for in the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not IPv4 or IPv6 (ARP, LLDP, PPPoE discovery, PPP control).
    NotIp,
    /// IP, but not TCP (UDP, ICMP, ESP…).
    NotTcp,
    /// An IPv4 fragment or IPv6 fragment: not reassembled.
    IpFragment,
}

impl Skip {
    pub const ALL: [Skip; 3] = [Self::NotIp, Self::NotTcp, Self::IpFragment];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotIp => "not_ip",
            Self::NotTcp => "not_tcp",
            Self::IpFragment => "ip_fragment",
        }
    }
}

/// Frames skipped, by [`Skip`] kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped([u64; Skip::ALL.len()]);

impl Skipped {
    pub fn add(&mut self, kind: Skip) {
        self.0[kind as usize] += 1;
    }

    pub fn get(&self, kind: Skip) -> u64 {
        self.0[kind as usize]
    }

    /// The kinds seen, with their counts.
    pub fn kinds(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Skip::ALL.iter().map(|k| (k.as_str(), self.get(*k))).filter(|(_, n)| *n > 0)
    }
}

/// Encapsulations (PPPoE, VXLAN) peeled off one frame at most: a VXLAN
/// tunnel carrying PPPoE is two; more is not traffic we were pointed at,
/// and a bound keeps a crafted frame from recursing without end.
const MAX_NESTING: u8 = 2;

/// The IANA port of VXLAN (RFC 7348).
const VXLAN_PORT: u16 = 4789;

/// Decodes a frame down to its TCP segment: [`Decoded::Skipped`] for
/// frames that are fine but not TCP, `Err(reason)` for frames we cannot
/// read. Ethernet frames may carry PPPoE sessions and VXLAN tunnels, which
/// are peeled like VLAN tags.
pub fn decode(linktype: u32, data: &[u8], orig_len: u32, ts: Nanos) -> Result<Decoded<'_>, &'static str> {
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
    // Bytes the capture's snap length cut off the end of the frame were
    // payload on the wire, whatever layers it was inside of.
    let cut = orig_len.saturating_sub(data.len() as u32);
    sliced_segment(sliced, 0, cut, ts)
}

/// The TCP segment of a frame etherparse has sliced, peeling PPPoE and
/// VXLAN (`depth`: how many were peeled already) when it stopped at one.
fn sliced_segment(sliced: LaxSlicedPacket<'_>, depth: u8, cut: u32, ts: Nanos) -> Result<Decoded<'_>, &'static str> {
    let (src_ip, dst_ip, incomplete): (IpAddr, IpAddr, bool) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            (h.source_addr().into(), h.destination_addr().into(), ip.payload().incomplete)
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let h = ip.header();
            (h.source_addr().into(), h.destination_addr().into(), ip.payload().incomplete)
        }
        Some(LaxNetSlice::Arp(_)) => return Ok(Decoded::Skipped(Skip::NotIp)),
        // etherparse stops, without an error, at an Ethernet type it does
        // not know: PPPoE is one.
        None if sliced.stop_err.is_none() => {
            return match sliced.ether_payload() {
                Some(p) if p.ether_type == EtherType(ETHERTYPE_PPPOE_SESSION) => pppoe(p.payload, depth, cut, ts),
                _ => Ok(Decoded::Skipped(Skip::NotIp)),
            };
        }
        None => return stopped(&sliced),
    };
    let udp = match &sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            let payload = tcp.payload();
            let cut = if incomplete { cut } else { 0 };
            return Ok(Decoded::Segment(Segment {
                ts,
                src: SocketAddr::new(src_ip, tcp.source_port()),
                dst: SocketAddr::new(dst_ip, tcp.destination_port()),
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                flags: tcp.slice()[13],
                payload_len: payload.len() as u32 + cut,
                payload,
            }));
        }
        Some(TransportSlice::Udp(udp)) => udp,
        Some(_) => return Ok(Decoded::Skipped(Skip::NotTcp)),
        None if sliced.stop_err.is_some() => return stopped(&sliced),
        None if sliced.ip_payload().is_some_and(|p| p.fragmented) => return Ok(Decoded::Skipped(Skip::IpFragment)),
        None => return Ok(Decoded::Skipped(Skip::NotTcp)),
    };
    if udp.destination_port() != VXLAN_PORT {
        return Ok(Decoded::Skipped(Skip::NotTcp));
    }
    vxlan(udp.payload(), depth, cut, ts)
}

const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;

/// A PPPoE session frame's payload (RFC 2516): version and type (1, 1),
/// code 0, session id, length, then a PPP frame whose protocol says
/// whether an IP packet follows.
fn pppoe(b: &[u8], depth: u8, cut: u32, ts: Nanos) -> Result<Decoded<'_>, &'static str> {
    if depth >= MAX_NESTING {
        return Err("unsupported_encapsulation");
    }
    if b.len() < 7 {
        return Err("truncated_frame");
    }
    if b[0] != 0x11 || b[1] != 0 {
        return Err("unsupported_encapsulation");
    }
    // The length field bounds the PPP frame: Ethernet pads short frames.
    // A longer one than captured was cut by the snap length.
    let len = usize::from(u16::from_be_bytes([b[4], b[5]]));
    let ppp = &b[6..b.len().min(6 + len)];
    // The protocol field is one byte when compressed (RFC 1661 §6.5: odd).
    let (proto, ip) = match ppp {
        [p, rest @ ..] if p & 1 == 1 => (u16::from(*p), rest),
        [hi, lo, rest @ ..] => (u16::from_be_bytes([*hi, *lo]), rest),
        _ => return Err("truncated_frame"),
    };
    match proto {
        0x0021 | 0x0057 => {
            let sliced = LaxSlicedPacket::from_ip(ip).map_err(|_| "bad_ip")?;
            sliced_segment(sliced, depth + 1, cut, ts)
        }
        // LCP, IPCP, authentication, keepalives: the session's own traffic.
        _ => Ok(Decoded::Skipped(Skip::NotIp)),
    }
}

/// A VXLAN packet (RFC 7348): flags (I set: a network id follows),
/// reserved bytes, the 24-bit network id, then an Ethernet frame.
fn vxlan(b: &[u8], depth: u8, cut: u32, ts: Nanos) -> Result<Decoded<'_>, &'static str> {
    if depth >= MAX_NESTING {
        return Err("unsupported_encapsulation");
    }
    if b.len() < 8 {
        return Err("truncated_frame");
    }
    if b[0] & 0x08 == 0 {
        return Err("unsupported_encapsulation");
    }
    let inner = LaxSlicedPacket::from_ethernet(&b[8..]).map_err(|_| "truncated_frame")?;
    sliced_segment(inner, depth + 1, cut, ts)
}

/// A frame decoding stopped short of TCP: fine when it simply is not TCP
/// (a UDP or ICMP packet with a bad header), a counted reason when a
/// header on the way to TCP is malformed or cut.
fn stopped(sliced: &LaxSlicedPacket<'_>) -> Result<Decoded<'static>, &'static str> {
    use etherparse::err::Layer;
    match &sliced.stop_err {
        None => Ok(Decoded::Skipped(Skip::NotTcp)),
        Some((_, Layer::TcpHeader)) => Err("bad_tcp"),
        Some((_, Layer::UdpHeader | Layer::UdpPayload | Layer::Icmpv4 | Layer::Icmpv6)) => {
            Ok(Decoded::Skipped(Skip::NotTcp))
        }
        Some((_, Layer::Icmpv4Timestamp | Layer::Icmpv4TimestampReply)) => Ok(Decoded::Skipped(Skip::NotTcp)),
        Some((_, Layer::Arp)) => Ok(Decoded::Skipped(Skip::NotIp)),
        Some((_, Layer::MacsecHeader | Layer::MacsecPacket)) => Err("unsupported_encapsulation"),
        Some((_, Layer::Ethernet2Header | Layer::VlanHeader | Layer::LinuxSllHeader | Layer::EtherPayload)) => {
            Err("truncated_frame")
        }
        Some(_) => Err("bad_ip"),
    }
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;

    const REQUEST: &[u8] = b"GET /inner HTTP/1.1\r\nHost: api\r\n\r\n";

    fn segment<'a>(d: Result<Decoded<'a>, &'static str>) -> Segment<'a> {
        match d {
            Ok(Decoded::Segment(s)) => s,
            other => panic!("not a segment: {other:?}"),
        }
    }

    fn kind(d: Result<Decoded<'_>, &'static str>) -> Result<Skip, &'static str> {
        match d {
            Ok(Decoded::Skipped(k)) => Ok(k),
            Ok(Decoded::Segment(s)) => panic!("a segment: {s:?}"),
            Err(e) => Err(e),
        }
    }

    /// An IPv4 packet carrying a TCP segment.
    fn ipv4_tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, 7, 64240).ack(1).psh().write(&mut out, payload).unwrap();
        out
    }

    /// An Ethernet header of `ether_type`, then `payload`.
    fn ethernet(ether_type: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend_from_slice(&ether_type.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// A PPPoE session header (length from the PPP frame), then the PPP
    /// protocol and `payload`.
    fn pppoe(proto: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x11, 0x00, 0x12, 0x34];
        p.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        p.extend_from_slice(&proto.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// An Ethernet frame with IPv4 and UDP to the VXLAN port, carrying
    /// `inner` (an Ethernet frame) under network id 42.
    fn vxlan(flags: u8, inner: &[u8]) -> Vec<u8> {
        let mut v = vec![flags, 0, 0, 0, 0, 0, 42, 0];
        v.extend_from_slice(inner);
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 3], [2, 0, 0, 0, 0, 4])
            .ipv4([172, 16, 0, 1], [172, 16, 0, 2], 64)
            .udp(51234, VXLAN_PORT)
            .write(&mut out, &v)
            .unwrap();
        out
    }

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
        frame.extend_from_slice(&ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, payload));
        let d = segment(decode(104, &frame, frame.len() as u32, 5));
        assert_eq!(d.src, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(d.dst.port(), 80);
        assert_eq!(d.seq, 7);
        assert_eq!(d.payload, payload);
        assert_eq!(d.payload_len, payload.len() as u32);
    }

    #[test]
    fn decodes_pppoe_sessions() {
        let ip = ipv4_tcp([100, 64, 0, 9], [198, 51, 100, 1], 40001, 80, REQUEST);
        let mut frame = ethernet(0x8864, &pppoe(0x0021, &ip));
        // Ethernet padding after the PPP frame is not payload.
        frame.extend_from_slice(&[0; 6]);
        let d = segment(decode(1, &frame, frame.len() as u32, 5));
        assert_eq!((d.src, d.dst), ("100.64.0.9:40001".parse().unwrap(), "198.51.100.1:80".parse().unwrap()));
        assert_eq!((d.payload, d.payload_len, d.ts), (REQUEST, REQUEST.len() as u32, 5));

        // IPv6 inside, and a PPPoE session behind an 802.1Q tag.
        let mut ip6 = Vec::new();
        PacketBuilder::ipv6([0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9], [0xfd; 16], 64)
            .tcp(40002, 8080, 1, 100)
            .write(&mut ip6, REQUEST)
            .unwrap();
        let mut tagged = vec![0x00, 0x2a, 0x88, 0x64];
        tagged.extend_from_slice(&pppoe(0x0057, &ip6));
        let frame = ethernet(0x8100, &tagged);
        let d = segment(decode(1, &frame, frame.len() as u32, 0));
        assert_eq!(d.src, "[2001:db8::9]:40002".parse().unwrap());
        assert_eq!((d.dst.port(), d.payload), (8080, REQUEST));

        // A snap length that cut the frame: what is missing was payload.
        let frame = ethernet(0x8864, &pppoe(0x0021, &ip));
        let d = segment(decode(1, &frame[..frame.len() - 10], frame.len() as u32, 0));
        assert_eq!((d.payload, d.payload_len), (&REQUEST[..REQUEST.len() - 10], REQUEST.len() as u32));

        // The session's own traffic and discovery are not IP.
        let lcp = ethernet(0x8864, &pppoe(0xc021, &[1, 1, 0, 4]));
        assert_eq!(kind(decode(1, &lcp, lcp.len() as u32, 0)), Ok(Skip::NotIp));
        let padi = ethernet(0x8863, &[0x11, 0x09, 0, 0, 0, 0]);
        assert_eq!(kind(decode(1, &padi, padi.len() as u32, 0)), Ok(Skip::NotIp));
    }

    #[test]
    fn decodes_vxlan_tunnels() {
        let inner_ip = ipv4_tcp([10, 1, 0, 5], [10, 1, 0, 6], 40003, 80, REQUEST);
        let inner = ethernet(0x0800, &inner_ip);
        let frame = vxlan(0x08, &inner);
        let d = segment(decode(1, &frame, frame.len() as u32, 9));
        assert_eq!((d.src, d.dst), ("10.1.0.5:40003".parse().unwrap(), "10.1.0.6:80".parse().unwrap()));
        assert_eq!((d.payload, d.ts), (REQUEST, 9));

        // PPPoE inside VXLAN: two encapsulations, the most peeled.
        let inner = ethernet(0x8864, &pppoe(0x0021, &inner_ip));
        let frame = vxlan(0x08, &inner);
        assert_eq!(segment(decode(1, &frame, frame.len() as u32, 0)).payload, REQUEST);
        // A third is refused, not recursed into.
        let frame = vxlan(0x08, &vxlan(0x08, &vxlan(0x08, &ethernet(0x0800, &inner_ip))));
        assert_eq!(kind(decode(1, &frame, frame.len() as u32, 0)), Err("unsupported_encapsulation"));

        // UDP to another port is UDP.
        let mut dns = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([1; 4], [2; 4], 64)
            .udp(5353, 53)
            .write(&mut dns, &[0; 12])
            .unwrap();
        assert_eq!(kind(decode(1, &dns, dns.len() as u32, 0)), Ok(Skip::NotTcp));
    }

    #[test]
    fn undecodable_frames_are_counted_by_kind() {
        let ip = ipv4_tcp([100, 64, 0, 9], [198, 51, 100, 1], 40001, 80, REQUEST);
        let good_pppoe = ethernet(0x8864, &pppoe(0x0021, &ip));
        let good_vxlan = vxlan(0x08, &ethernet(0x0800, &ip));
        let mut bad_version = pppoe(0x0021, &ip);
        bad_version[0] = 0x22;
        let mut bad_ip = pppoe(0x0021, &ip);
        bad_ip[8] = 0x75;
        for (frame, want) in [
            (ethernet(0x8864, &[0x11, 0, 0, 1]), Err("truncated_frame")),
            (ethernet(0x8864, &bad_version), Err("unsupported_encapsulation")),
            (ethernet(0x8864, &bad_ip), Err("bad_ip")),
            (ethernet(0x8864, &pppoe(0x0021, &[0x45, 0])), Err("bad_ip")),
            (vxlan(0x08, &[0; 4]), Err("truncated_frame")),
            (vxlan(0x00, &ethernet(0x0800, &ip)), Err("unsupported_encapsulation")),
            (vxlan(0x08, &ethernet(0x0800, &[0x45, 0, 0, 40, 0])), Err("bad_ip")),
            (good_vxlan[..good_vxlan.len() - ip.len() - 14 - 4].to_vec(), Err("truncated_frame")),
            (ethernet(0x0806, &[0; 28]), Ok(Skip::NotIp)),
            (ethernet(0x88cc, &[0; 20]), Ok(Skip::NotIp)),
        ] {
            assert_eq!(kind(decode(1, &frame, frame.len() as u32, 0)), want, "{frame:02x?}");
        }
        // A later IPv4 fragment.
        let mut frag = ip.clone();
        frag[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
        frag[10..12].copy_from_slice(&[0, 0]);
        let frame = ethernet(0x0800, &frag);
        assert_eq!(kind(decode(1, &frame, frame.len() as u32, 0)), Ok(Skip::IpFragment));

        // Every cut of the tunnelled frames, and every byte of them
        // flipped, gives an answer, never a panic.
        for good in [&good_pppoe, &good_vxlan] {
            for n in 0..good.len() {
                let _ = decode(1, &good[..n], good.len() as u32, 0);
                let mut bent = good.clone();
                bent[n] ^= 0xff;
                let _ = decode(1, &bent, bent.len() as u32, 0);
            }
        }
    }

    #[test]
    fn skipped_frames_are_named_by_kind() {
        let mut s = Skipped::default();
        assert_eq!(s.kinds().count(), 0);
        s.add(Skip::NotTcp);
        s.add(Skip::NotTcp);
        s.add(Skip::IpFragment);
        assert_eq!(s.kinds().collect::<Vec<_>>(), [("not_tcp", 2), ("ip_fragment", 1)]);
    }
}
