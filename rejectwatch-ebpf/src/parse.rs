//! Header walking shared by the XDP and TC programs: Ethernet (+ up to two
//! 802.1Q/802.1ad tags, + a PPPoE session header) → IPv4/IPv6 (+ common
//! extension headers) → TCP, or → UDP/4789 VXLAN → the inner Ethernet
//! frame, walked the same way once.
//!
//! Reads use direct packet access over the linear part of the packet, which
//! is where every driver and the local TCP stack put headers; a packet whose
//! headers are not there is simply not ours to inspect.

use core::mem::size_of;

use rejectwatch_common::{FAMILY_V4, FAMILY_V6, FlowKey, payload_seq};

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const ETH_P_PPPOE_SESSION: u16 = 0x8864;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const VXLAN_PORT: u16 = 4789;
/// UDP header and VXLAN header before the inner Ethernet frame.
const VXLAN_OVERHEAD: usize = 8 + 8;
// IPv6 extension headers that may sit between the fixed header and TCP.
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_DSTOPTS: u8 = 60;

/// The TCP segment of a packet, as far as the programs need it.
pub struct Segment {
    pub key: FlowKey,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// Offset of the first payload byte from the start of the packet.
    pub payload_off: u32,
    pub payload_len: u32,
}

/// `N` bytes at `off` in the linear part of the packet, if they are there.
#[inline(always)]
pub fn bytes<const N: usize>(start: usize, end: usize, off: usize) -> Option<&'static [u8; N]> {
    if start + off + N > end {
        return None;
    }
    // SAFETY: bounds were checked against the packet end just above.
    Some(unsafe { &*((start + off) as *const [u8; N]) })
}

#[inline(always)]
fn be16(b: &[u8]) -> u16 {
    ((b[0] as u16) << 8) | b[1] as u16
}

#[inline(always)]
fn be32(b: &[u8]) -> u32 {
    ((b[0] as u32) << 24) | ((b[1] as u32) << 16) | ((b[2] as u32) << 8) | b[3] as u32
}

/// Walks the headers of the packet in `[start, end)`. `pkt_len` gives the
/// whole length including non-linear fragments; it is only asked for when
/// the IP length claims more than the linear part holds (a helper call costs
/// more here than the rest of the walk). A VXLAN packet is walked into its
/// inner frame (once: a tunnel in a tunnel is not followed).
#[inline(always)]
pub fn segment(start: usize, end: usize, pkt_len: impl Fn() -> u32 + Copy) -> Option<Segment> {
    match frame(start, end, 0, pkt_len)? {
        Walked::Tcp(seg) => Some(seg),
        Walked::Vxlan(inner) => match frame(start, end, inner, pkt_len)? {
            Walked::Tcp(seg) => Some(seg),
            Walked::Vxlan(_) => None,
        },
    }
}

/// Where a walk of one frame ended.
enum Walked {
    Tcp(Segment),
    /// A VXLAN packet: its inner Ethernet frame starts here.
    Vxlan(usize),
}

/// The link layers of the frame starting at `base`: Ethernet, up to two
/// VLAN tags, a PPPoE session header. Returns the network protocol (an
/// Ethernet type) and where its header starts.
#[inline(always)]
fn link(start: usize, end: usize, base: usize) -> Option<(u16, usize)> {
    let eth = bytes::<ETH_HLEN>(start, end, base)?;
    let mut proto = be16(&eth[12..14]);
    let mut off = base + ETH_HLEN;
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        let tag = bytes::<4>(start, end, off)?;
        proto = be16(&tag[2..4]);
        off += 4;
        if proto == ETH_P_8021Q {
            let tag = bytes::<4>(start, end, off)?;
            proto = be16(&tag[2..4]);
            off += 4;
        }
    }
    if proto == ETH_P_PPPOE_SESSION {
        // Version and type 1, code 0 (session data), session id, length,
        // then the PPP protocol.
        let h = bytes::<8>(start, end, off)?;
        if h[0] != 0x11 || h[1] != 0 {
            return None;
        }
        proto = match be16(&h[6..8]) {
            PPP_IPV4 => ETH_P_IP,
            PPP_IPV6 => ETH_P_IPV6,
            _ => return None,
        };
        off += 8;
    }
    Some((proto, off))
}

/// Walks one Ethernet frame starting at `base`.
#[inline(always)]
fn frame(start: usize, end: usize, base: usize, pkt_len: impl Fn() -> u32) -> Option<Walked> {
    // Bounded for the verifier: an inner frame starts within the first
    // few hundred bytes of the packet.
    let (proto, off) = link(start, end, base & 0x3ff)?;

    let mut key = FlowKey::default();
    let l4_off;
    let l4_len: u32;
    let l4_proto;
    if proto == ETH_P_IP {
        let ip = bytes::<20>(start, end, off)?;
        let ihl = ((ip[0] & 0x0f) as usize) * 4;
        l4_proto = ip[9];
        if ihl < 20 || (l4_proto != IPPROTO_TCP && l4_proto != IPPROTO_UDP) {
            return None;
        }
        // Non-first fragments carry no TCP header.
        if be16(&ip[6..8]) & 0x1fff != 0 {
            return None;
        }
        let total = be16(&ip[2..4]) as u32;
        key.family = FAMILY_V4;
        key.saddr[..4].copy_from_slice(&ip[12..16]);
        key.daddr[..4].copy_from_slice(&ip[16..20]);
        l4_off = off + ihl;
        // TSO super-packets seen on egress may carry 0 as total length.
        l4_len = if total == 0 { u32::MAX } else { total.saturating_sub(ihl as u32) };
    } else if proto == ETH_P_IPV6 {
        let ip = bytes::<40>(start, end, off)?;
        let mut next = ip[6];
        let plen = be16(&ip[4..6]) as u32;
        key.family = FAMILY_V6;
        key.saddr.copy_from_slice(&ip[8..24]);
        key.daddr.copy_from_slice(&ip[24..40]);
        let mut ext_off = off + 40;
        let mut ext_len: u32 = 0;
        let mut i = 0;
        while i < 3 {
            if next != IPV6_HOPOPTS && next != IPV6_ROUTING && next != IPV6_DSTOPTS {
                break;
            }
            let ext = bytes::<2>(start, end, ext_off)?;
            let len = ((ext[1] as usize) + 1) * 8;
            next = ext[0];
            ext_off += len;
            ext_len += len as u32;
            i += 1;
        }
        if next != IPPROTO_TCP && next != IPPROTO_UDP {
            return None;
        }
        l4_proto = next;
        l4_off = ext_off;
        l4_len = if plen == 0 { u32::MAX } else { plen.saturating_sub(ext_len) };
    } else {
        return None;
    }

    if l4_proto == IPPROTO_UDP {
        let udp = bytes::<8>(start, end, l4_off)?;
        if be16(&udp[2..4]) != VXLAN_PORT {
            return None;
        }
        // The I flag: a valid VNI follows.
        let vx = bytes::<8>(start, end, l4_off + 8)?;
        if vx[0] & 0x08 == 0 {
            return None;
        }
        return Some(Walked::Vxlan(l4_off + VXLAN_OVERHEAD));
    }

    let tcp = bytes::<20>(start, end, l4_off)?;
    let doff = ((tcp[12] >> 4) as u32) * 4;
    if doff < 20 || l4_len < doff {
        return None;
    }
    key.sport = be16(&tcp[0..2]);
    key.dport = be16(&tcp[2..4]);
    let payload_off = l4_off as u32 + doff;
    // The IP length is authoritative (it excludes Ethernet padding), but
    // never claim bytes the packet does not have (a lying header, or a TSO
    // super-packet with no length): check against the whole packet when the
    // linear part does not cover the claim.
    let mut payload_len = l4_len - doff;
    let linear = (end - start) as u32;
    if payload_off.saturating_add(payload_len) > linear {
        payload_len = core::cmp::min(payload_len, pkt_len().saturating_sub(payload_off));
    }
    Some(Walked::Tcp(Segment {
        key,
        seq: payload_seq(be32(&tcp[4..8]), tcp[13]),
        ack: be32(&tcp[8..12]),
        flags: tcp[13],
        payload_off,
        payload_len,
    }))
}

/// The source address of the IP packet in `[start, end)` (Ethernet, up
/// to two VLAN tags, a PPPoE session): what enforcement judges before any
/// other parsing. IPv4 addresses fill the first four bytes.
#[inline(always)]
pub fn source(start: usize, end: usize) -> Option<(u8, [u8; 16])> {
    let (proto, off) = link(start, end, 0)?;
    let mut addr = [0u8; 16];
    if proto == ETH_P_IP {
        let ip = bytes::<20>(start, end, off)?;
        addr[..4].copy_from_slice(&ip[12..16]);
        Some((FAMILY_V4, addr))
    } else if proto == ETH_P_IPV6 {
        let ip = bytes::<40>(start, end, off)?;
        addr.copy_from_slice(&ip[8..24]);
        Some((FAMILY_V6, addr))
    } else {
        None
    }
}

const _: () = assert!(size_of::<FlowKey>() == 40);
