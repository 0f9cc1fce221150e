//! The eBPF programs on bad packets, in the kernel: passing the verifier is
//! not enough. Both programs are loaded (attached nowhere) and run with
//! `BPF_PROG_TEST_RUN` over truncated headers, bogus IHL and data offsets,
//! long IPv6 extension-header chains, zero-length payloads, jumbo frames,
//! broken tunnels and random bytes. Each must let the packet pass and ship
//! nothing that is not in it.

use etherparse::PacketBuilder;
use rejectwatch::source::ebpf::{AttachMode, KernelConfig, Loaded};
use rejectwatch_common::{KIND_REQUEST, KIND_RESPONSE, RECORD_HEADER_LEN};
use rejectwatch_tests::kernel_tests_possible;

const XDP_PASS: u32 = 2;
/// TC_ACT_UNSPEC (-1): the next program, or pass.
const TC_NEXT: u32 = u32::MAX;

fn loaded() -> Loaded {
    let cfg = KernelConfig {
        ifaces: Vec::new(),
        ports: vec![80],
        snaplen: 2048,
        response_snaplen: 1024,
        ringbuf_bytes: 8 << 20,
        wakeup_bytes: 1 << 20,
        mode: AttachMode::Auto,
        enforce: None,
    };
    Loaded::load(&cfg).expect("load the programs")
}

fn v4(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([192, 0, 2, 1], [198, 51, 100, 1], 64)
        .tcp(src_port, dst_port, 1000, 64240)
        .ack(7)
        .psh();
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("build");
    out
}

fn v6(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        )
        .tcp(src_port, dst_port, 1000, 64240)
        .ack(7)
        .psh();
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("build");
    out
}

const HEAD: &[u8] = b"GET /api/v1/orders/1 HTTP/1.1\r\nHost: api\r\nUser-Agent: t/1\r\n\r\n";
const STATUS: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

/// Runs `frame` through both programs: both must pass it, and every record
/// shipped must carry bytes that are in the frame. Returns the records'
/// kinds.
fn judge(l: &mut Loaded, frame: &[u8], what: &str) -> Vec<u8> {
    assert_eq!(l.run_xdp(frame).unwrap_or_else(|e| panic!("{what}: {e:#}")), XDP_PASS, "XDP on {what}");
    // The kernel builds a test skb only of more than an Ethernet header,
    // within a page, and with a whole IP header when it says IP: outside
    // that it refuses the run, before the program.
    let ip_min = match frame.get(12..14) {
        Some([0x08, 0x00]) => 14 + 20,
        Some([0x86, 0xdd]) => 14 + 40,
        _ => 15,
    };
    if frame.len() >= ip_min && frame.len() <= 3500 {
        assert_eq!(l.run_tc(frame).unwrap_or_else(|e| panic!("{what}: {e:#}")), TC_NEXT, "TC on {what}");
    }
    let mut kinds = Vec::new();
    for r in l.records() {
        assert!(r.len() >= RECORD_HEADER_LEN, "{what}: a record shorter than its header");
        let h: rejectwatch_common::RecordHeader =
            unsafe { std::ptr::read_unaligned(r.as_ptr() as *const rejectwatch_common::RecordHeader) };
        let data = &r[RECORD_HEADER_LEN..RECORD_HEADER_LEN + h.cap_len as usize];
        assert!(!data.is_empty(), "{what}: an empty record");
        assert!(
            frame.windows(data.len()).any(|w| w == data),
            "{what}: shipped {} bytes that are not in the frame",
            data.len()
        );
        assert!(h.payload_len as usize <= frame.len(), "{what}: payload longer than the frame");
        kinds.push(h.kind);
    }
    kinds
}

#[test]
fn bad_packets_pass_and_ship_nothing_wrong() {
    if !kernel_tests_possible("bad_packets_pass_and_ship_nothing_wrong") {
        return;
    }
    let mut l = loaded();
    // What good packets ship, for contrast.
    assert_eq!(judge(&mut l, &v4(40000, 80, HEAD), "an IPv4 head"), [KIND_REQUEST]);
    assert_eq!(judge(&mut l, &v6(40001, 80, HEAD), "an IPv6 head"), [KIND_REQUEST]);
    assert_eq!(judge(&mut l, &v4(80, 40000, STATUS), "a status line"), [KIND_RESPONSE]);

    // Every truncation of good frames, and a head on an unwatched port.
    for frame in [v4(40002, 80, HEAD), v6(40003, 80, HEAD), v4(80, 40002, STATUS)] {
        // The kernel builds no test packet shorter than an Ethernet header.
        for n in 14..frame.len() {
            judge(&mut l, &frame[..n], &format!("a frame cut to {n} bytes"));
        }
    }
    assert!(judge(&mut l, &v4(40004, 81, HEAD), "an unwatched port").is_empty());

    // Bogus IHL and data offsets, and IP lengths that lie both ways.
    let good = v4(40005, 80, HEAD);
    for ihl in [0u8, 1, 4, 6, 15] {
        let mut f = good.clone();
        f[14] = 0x40 | ihl;
        judge(&mut l, &f, &format!("IHL {ihl}"));
    }
    for doff in [0u8, 1, 4, 6, 15] {
        let mut f = good.clone();
        f[14 + 20 + 12] = doff << 4;
        judge(&mut l, &f, &format!("data offset {doff}"));
    }
    for total in [0u16, 1, 20, 39, 40, 41, 0xffff] {
        let mut f = good.clone();
        f[16..18].copy_from_slice(&total.to_be_bytes());
        judge(&mut l, &f, &format!("IP total length {total}"));
    }

    // Zero-length payloads: a SYN, a pure ACK.
    assert!(judge(&mut l, &v4(40006, 80, b""), "an empty segment").is_empty());

    // A long IPv6 extension-header chain before TCP, and lying lengths.
    let plain = v6(40007, 80, HEAD);
    for (chain, len_byte) in [(8usize, 0u8), (2, 0), (3, 255)] {
        let mut f = plain[..14].to_vec();
        let mut ip = plain[14..54].to_vec();
        let tcp = &plain[54..];
        ip[6] = 0; // hop-by-hop first
        let mut exts = Vec::new();
        for i in 0..chain {
            let next = if i + 1 == chain { 6 } else { 60 };
            let mut e = vec![next, len_byte, 0, 0, 0, 0, 0, 0];
            e.resize(8 * (len_byte as usize + 1), 0);
            exts.extend(e);
        }
        let plen = (exts.len() + tcp.len()) as u16;
        ip[4..6].copy_from_slice(&plen.to_be_bytes());
        f.extend(ip);
        f.extend(exts);
        f.extend_from_slice(tcp);
        judge(&mut l, &f, &format!("{chain} IPv6 extension headers of {} bytes", 8 * (len_byte as usize + 1)));
    }

    // A jumbo frame carrying a head and 8 KiB of body after it.
    let mut big = HEAD.to_vec();
    big.extend(std::iter::repeat_n(b'x', 8900 - HEAD.len()));
    assert_eq!(judge(&mut l, &v4(40008, 80, &big), "a jumbo frame"), [KIND_REQUEST]);

    // Broken tunnels: PPPoE of another version, VXLAN without its flag or
    // cut short inside the inner frame.
    let inner = v4(40009, 80, HEAD);
    let mut pppoe = inner[..12].to_vec();
    pppoe.extend([0x88, 0x64, 0x21, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x21]);
    pppoe.extend(&inner[14..]);
    judge(&mut l, &pppoe, "PPPoE of version 2");
    let vxlan = |flags: u8, cut: usize| {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 3], [2, 0, 0, 0, 0, 4])
            .ipv4([203, 0, 113, 1], [203, 0, 113, 2], 64)
            .udp(50000, 4789);
        let mut payload = vec![flags, 0, 0, 0, 0, 0, 42, 0];
        payload.extend(&inner[..inner.len() - cut]);
        let mut out = Vec::new();
        b.write(&mut out, &payload).expect("build");
        out
    };
    assert_eq!(judge(&mut l, &vxlan(0x08, 0), "VXLAN"), [KIND_REQUEST]);
    assert!(judge(&mut l, &vxlan(0x00, 0), "VXLAN without its I flag").is_empty());
    for cut in [1, 20, HEAD.len(), HEAD.len() + 20, inner.len() - 10] {
        judge(&mut l, &vxlan(0x08, cut), &format!("VXLAN cut {cut} bytes short"));
    }

    // Random bytes, and good frames with random bytes flipped.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for i in 0..2000 {
        let mut f: Vec<u8> = if i % 2 == 0 {
            (0..14 + (rnd() % 1600) as usize).map(|_| rnd() as u8).collect()
        } else {
            let mut f = [v4(40010, 80, HEAD), v6(40011, 80, HEAD), v4(80, 40010, STATUS)][i % 3].clone();
            for _ in 0..1 + rnd() % 4 {
                let at = (rnd() as usize) % f.len();
                f[at] = rnd() as u8;
            }
            f
        };
        if i % 7 == 0 && f.len() > 12 {
            // Keep an IP ethertype so the walk goes deeper.
            f[12..14].copy_from_slice(if i % 2 == 0 { &[0x08, 0x00] } else { &[0x86, 0xdd] });
        }
        judge(&mut l, &f, &format!("random frame {i}"));
    }
}
