//! One captured frame decoded down to TCP, for each link type the capture
//! reader takes (Ethernet with VLAN, PPPoE and VXLAN; Linux cooked v1 and
//! v2; BSD loopback; raw IP; Cisco HDLC) and one it does not. The first
//! byte picks the link type, the next four are the frame's length on the
//! wire (usually the captured length), the rest is the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rejectwatch::source::pcap::{Decoded, decode};

/// DLT numbers: NULL, ETHERNET, RAW (OpenBSD 12, 14), C_HDLC, LOOP,
/// LINUX_SLL, RAW 101, IPV4, IPV6, LINUX_SLL2, and an unsupported one.
const LINKTYPES: [u32; 12] = [0, 1, 12, 14, 104, 108, 113, 101, 228, 229, 276, 147];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let linktype = LINKTYPES[pick as usize % LINKTYPES.len()];
    let (orig_len, frame) = if pick & 0x80 != 0 && rest.len() >= 4 {
        (u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]), &rest[4..])
    } else {
        (rest.len() as u32, rest)
    };
    if let Ok(Decoded::Segment(s)) = decode(linktype, frame, orig_len, 1) {
        assert!(s.payload.len() as u64 <= u64::from(s.payload_len), "payload beyond its wire length");
    }
});
