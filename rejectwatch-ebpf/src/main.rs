//! rejectwatch's kernel side: an XDP program on ingress that ships HTTP/1.x
//! request heads, and a TC (tcx) classifier on egress that ships response
//! status lines, both through one ring buffer. Both are pure observers: every
//! packet continues on its way whatever happens here.
#![no_std]
#![no_main]

mod parse;

use core::{cmp::min, ffi::c_void};

use aya_ebpf::{
    Global,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, TC_ACT_UNSPEC, xdp_action},
    helpers::generated::{bpf_ktime_get_ns, bpf_skb_load_bytes, bpf_xdp_get_buff_len, bpf_xdp_load_bytes},
    macros::{classifier, map, xdp},
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf, lpm_trie::Key},
    programs::{TcContext, XdpContext},
};
use parse::Segment;
use rejectwatch_common::{
    FRESH_FLOWS, FlowKey, KIND_CONTINUATION, KIND_REQUEST, KIND_RESPONSE, KIND_RESPONSE_CONTINUATION, MAX_SNAPLEN,
    NOT_HTTP_SNAPLEN, OPEN_STATUS_FLOWS, OpenHead, OpenStatus, PEEK_LEN, PortSet, RECORD_HEADER_LEN, RecordHeader,
    STATUS_LINE_MIN, TCP_ACK, TCP_SYN, could_start_request, could_start_response, counter, ends_head, enforce,
    looks_like_request, looks_like_response, size_class,
};

/// Request-head capture length, set by the loader (bytes, ≤ MAX_SNAPLEN).
#[unsafe(no_mangle)]
static SNAPLEN: Global<u32> = Global::new(rejectwatch_common::DEFAULT_SNAPLEN);
/// Response capture length, set by the loader (bytes, ≤ MAX_SNAPLEN).
#[unsafe(no_mangle)]
static RESPONSE_SNAPLEN: Global<u32> = Global::new(rejectwatch_common::DEFAULT_RESPONSE_SNAPLEN);
/// Unread bytes in the ring buffer at which a submit wakes the reader.
/// Below it records are submitted silently and userspace drains on a short
/// timer: a wakeup costs microseconds, far more than the record itself.
#[unsafe(no_mangle)]
static WAKEUP_BYTES: Global<u64> = Global::new(1 << 20);
/// Non-zero: drop packets from blocklisted sources (`--enforce xdp`).
#[unsafe(no_mangle)]
static ENFORCE: Global<u32> = Global::new(0);

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

#[map]
static PORTS: Array<PortSet> = Array::with_max_entries(1, 0);

/// Flows whose request head did not end in the segment that started it.
#[map]
static OPEN_HEADS: LruHashMap<FlowKey, OpenHead> = LruHashMap::with_max_entries(65536, 0);

/// Connections to a watched port that have opened (SYN seen) and sent
/// nothing yet, with the sequence number of their first payload byte: a
/// first payload that is not a request head is reported as not HTTP.
/// Apart from OPEN_HEADS, so that a SYN flood cannot evict open heads.
#[map]
static FRESH: LruHashMap<FlowKey, u32> = LruHashMap::with_max_entries(FRESH_FLOWS, 0);

/// Flows (server → client) whose status line ended before its code in the
/// segment that started it.
#[map]
static OPEN_STATUSES: LruHashMap<FlowKey, OpenStatus> = LruHashMap::with_max_entries(OPEN_STATUS_FLOWS, 0);

/// Non-zero once any status line has been split: until then, egress
/// segments that start no status line skip the OPEN_STATUSES lookup.
#[map]
static STATUS_SPLIT_SEEN: Array<u32> = Array::with_max_entries(1, 0);

// The blocklist, in two sets (see rejectwatch_common::enforce). Hash maps
// and tries allocate per entry (BPF_F_NO_PREALLOC): sized for the most the
// operator allows, they cost only what is listed.
const NO_PREALLOC: u32 = 1;
const BLOCK_MAX: u32 = rejectwatch_common::enforce::DEFAULT_MAX_ENTRIES;
#[map]
static BLOCK4_0: HashMap<[u8; 4], u8> = HashMap::with_max_entries(BLOCK_MAX, NO_PREALLOC);
#[map]
static BLOCK6_0: HashMap<[u8; 16], u8> = HashMap::with_max_entries(BLOCK_MAX, NO_PREALLOC);
#[map]
static PREFIX4_0: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(BLOCK_MAX, NO_PREALLOC);
#[map]
static PREFIX6_0: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(BLOCK_MAX, NO_PREALLOC);
#[map]
static BLOCK4_1: HashMap<[u8; 4], u8> = HashMap::with_max_entries(BLOCK_MAX, NO_PREALLOC);
#[map]
static BLOCK6_1: HashMap<[u8; 16], u8> = HashMap::with_max_entries(BLOCK_MAX, NO_PREALLOC);
#[map]
static PREFIX4_1: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(BLOCK_MAX, NO_PREALLOC);
#[map]
static PREFIX6_1: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(BLOCK_MAX, NO_PREALLOC);
/// The active set, and which of each set's maps hold entries.
#[map]
static CONTROL: Array<u32> = Array::with_max_entries(enforce::CONTROL_LEN, 0);
#[map]
static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(enforce::DROP_COUNTERS, 0);

#[xdp(frags)]
pub fn rejectwatch_xdp(ctx: XdpContext) -> u32 {
    if ENFORCE.load() != 0 && blocked(&ctx) {
        return xdp_action::XDP_DROP;
    }
    let _ = try_xdp(&ctx);
    xdp_action::XDP_PASS
}

/// Whether the packet's source is on the blocklist; counts the drop.
#[inline(always)]
fn blocked(ctx: &XdpContext) -> bool {
    let Some((family, addr)) = parse::source(ctx.data(), ctx.data_end()) else {
        return false;
    };
    let set = CONTROL.get(enforce::ACTIVE).map_or(0, |s| *s & 1);
    let kinds = CONTROL.get(enforce::KINDS + set).map_or(0, |k| *k);
    let v4 = family == rejectwatch_common::FAMILY_V4;
    let hit = if v4 {
        let a = [addr[0], addr[1], addr[2], addr[3]];
        (kinds & enforce::EXACT4 != 0
            && unsafe { if set == 0 { BLOCK4_0.get(&a) } else { BLOCK4_1.get(&a) } }.is_some())
            || (kinds & enforce::PREFIX4 != 0 && {
                let k = Key::new(32, a);
                if set == 0 { PREFIX4_0.get(&k) } else { PREFIX4_1.get(&k) }.is_some()
            })
    } else {
        (kinds & enforce::EXACT6 != 0
            && unsafe { if set == 0 { BLOCK6_0.get(&addr) } else { BLOCK6_1.get(&addr) } }.is_some())
            || (kinds & enforce::PREFIX6 != 0 && {
                let k = Key::new(128, addr);
                if set == 0 { PREFIX6_0.get(&k) } else { PREFIX6_1.get(&k) }.is_some()
            })
    };
    if hit {
        let (packets, bytes) = if v4 {
            (enforce::DROPPED_V4_PACKETS, enforce::DROPPED_V4_BYTES)
        } else {
            (enforce::DROPPED_V6_PACKETS, enforce::DROPPED_V6_BYTES)
        };
        let len = unsafe { bpf_xdp_get_buff_len(ctx.ctx) };
        if let Some(p) = DROPS.get_ptr_mut(packets) {
            unsafe { *p += 1 };
        }
        if let Some(p) = DROPS.get_ptr_mut(bytes) {
            unsafe { *p += len };
        }
    }
    hit
}

#[classifier]
pub fn rejectwatch_tc(ctx: TcContext) -> i32 {
    let _ = try_tc(&ctx);
    // TCX_NEXT: let any program attached after us decide, and pass when
    // there is none. TC_ACT_OK would end the tcx chain and bypass them.
    TC_ACT_UNSPEC
}

/// The benchmark's floor: same attach points and entry shape, no work. The
/// bench reports rejectwatch's cost per packet next to these.
#[xdp(frags)]
pub fn floor_xdp(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[classifier]
pub fn floor_tc(_ctx: TcContext) -> i32 {
    TC_ACT_UNSPEC
}

/// The benchmark's second floor: what rejectwatch does to decide whether a
/// packet is its business (walk the headers to TCP, read the first payload
/// bytes; every port counts as watched), and nothing after it. Next to the
/// no-op floor it shows what merely looking at a packet costs (cache misses
/// on packet data the stack would take a moment later anyway), and next to
/// rejectwatch what shipping it costs.
#[xdp(frags)]
pub fn look_xdp(ctx: XdpContext) -> u32 {
    let _ = try_look(&ctx, looks_like_request, || unsafe { bpf_xdp_get_buff_len(ctx.ctx) } as u32);
    xdp_action::XDP_PASS
}

#[classifier]
pub fn look_tc(ctx: TcContext) -> i32 {
    let _ = try_look(&ctx, looks_like_response, || ctx.len());
    TC_ACT_UNSPEC
}

#[inline(always)]
fn try_look<C: LoadBytes>(
    ctx: &C,
    looks: impl Fn(&[u8; PEEK_LEN]) -> bool,
    len: impl Fn() -> u32 + Copy,
) -> Result<(), ()> {
    let (start, end) = ctx.linear();
    let seg = parse::segment(start, end, len).ok_or(())?;
    if (seg.payload_len as usize) < PEEK_LEN {
        return Ok(());
    }
    let peek = ctx.peek::<PEEK_LEN>(seg.payload_off)?;
    core::hint::black_box(looks(&peek));
    Ok(())
}

/// Reads packet bytes wherever they live (linear part or fragments).
trait LoadBytes {
    fn load_into(&self, off: u32, dst: *mut u8, len: u32) -> Result<(), ()>;
    fn linear(&self) -> (usize, usize);

    /// `N` bytes at `off`: straight from the linear part when they are
    /// there (no helper call), else through the load helper.
    #[inline(always)]
    fn peek<const N: usize>(&self, off: u32) -> Result<[u8; N], ()> {
        let (start, end) = self.linear();
        // Bounded for the verifier; a larger offset is never linear anyway.
        if off < 0xfff0 {
            if let Some(b) = parse::bytes::<N>(start, end, (off & 0xffff) as usize) {
                return Ok(*b);
            }
        }
        let mut buf = [0u8; N];
        self.load_into(off, buf.as_mut_ptr(), N as u32).map_err(|_| bump(counter::LOAD_FAILURES))?;
        Ok(buf)
    }
}

impl LoadBytes for XdpContext {
    #[inline(always)]
    fn load_into(&self, off: u32, dst: *mut u8, len: u32) -> Result<(), ()> {
        let ret = unsafe { bpf_xdp_load_bytes(self.ctx, off, dst as *mut c_void, len) };
        if ret == 0 { Ok(()) } else { Err(()) }
    }
    #[inline(always)]
    fn linear(&self) -> (usize, usize) {
        (self.data(), self.data_end())
    }
}

impl LoadBytes for TcContext {
    #[inline(always)]
    fn load_into(&self, off: u32, dst: *mut u8, len: u32) -> Result<(), ()> {
        let ret = unsafe { bpf_skb_load_bytes(self.skb.skb as *const c_void, off, dst as *mut c_void, len) };
        if ret == 0 { Ok(()) } else { Err(()) }
    }
    #[inline(always)]
    fn linear(&self) -> (usize, usize) {
        (self.data(), self.data_end())
    }
}

#[inline(always)]
fn bump(idx: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn watched(port: u16) -> bool {
    match PORTS.get(0) {
        Some(ports) => ports.contains(port),
        None => false,
    }
}

fn try_xdp(ctx: &XdpContext) -> Result<(), ()> {
    bump(counter::PACKETS);
    let seg =
        parse::segment(ctx.data(), ctx.data_end(), || unsafe { bpf_xdp_get_buff_len(ctx.ctx) } as u32).ok_or(())?;
    if !watched(seg.key.dport) {
        return Ok(());
    }
    if seg.payload_len == 0 {
        if seg.flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
            // `seq` is already past the SYN: where the first payload starts.
            let _ = FRESH.insert(&seg.key, &seg.seq, 0);
        }
        return Ok(());
    }
    if seg.payload_len >= PEEK_LEN as u32 {
        let peek = ctx.peek::<PEEK_LEN>(seg.payload_off)?;
        if looks_like_request(&peek) {
            return request_head(ctx, &seg);
        }
    }
    if let Some(open) = OPEN_HEADS.get_ptr_mut(&seg.key) {
        return continuation(ctx, &seg, unsafe { &mut *open });
    }
    let first = match unsafe { FRESH.get(&seg.key) } {
        Some(&at) => {
            let _ = FRESH.remove(&seg.key);
            at == seg.seq
        }
        None => false,
    };
    if seg.payload_len < PEEK_LEN as u32 {
        // Too short to judge alone: judged on what it has, and continued
        // in the segments that follow.
        let (peek, n) = short_peek(ctx, &seg)?;
        if could_start_request(&peek, n) {
            return split_start(ctx, &seg);
        }
    }
    if first {
        // The connection's first bytes, and not a request head: a TLS
        // hello, a banner, a binary probe on an HTTP port.
        bump(counter::NOT_HTTP);
        return emit(ctx, &seg, KIND_REQUEST, min(seg.payload_len, NOT_HTTP_SNAPLEN));
    }
    Ok(())
}

/// The first `payload_len` (< PEEK_LEN) payload bytes, the rest zero.
#[inline(always)]
fn short_peek<C: LoadBytes>(ctx: &C, seg: &Segment) -> Result<([u8; PEEK_LEN], usize), ()> {
    let mut buf = [0u8; PEEK_LEN];
    // A length the verifier can bound: 1..=PEEK_LEN-1 by the caller.
    let n = (core::hint::black_box(seg.payload_len.wrapping_sub(1)) & (PEEK_LEN as u32 - 1)) + 1;
    if n >= PEEK_LEN as u32 {
        return Err(());
    }
    ctx.load_into(seg.payload_off, buf.as_mut_ptr(), n).map_err(|_| bump(counter::LOAD_FAILURES))?;
    Ok((buf, n as usize))
}

/// A request head whose first segment is too short to judge alone: shipped
/// as a head, and continued like one.
fn split_start(ctx: &XdpContext, seg: &Segment) -> Result<(), ()> {
    bump(counter::SPLIT_STARTS);
    let snap = min(SNAPLEN.load(), MAX_SNAPLEN);
    let open = OpenHead { next_seq: seg.seq.wrapping_add(seg.payload_len), budget: snap - seg.payload_len };
    let _ = OPEN_HEADS.insert(&seg.key, &open, 0);
    emit(ctx, seg, KIND_REQUEST, seg.payload_len)
}

fn try_tc(ctx: &TcContext) -> Result<(), ()> {
    let seg = parse::segment(ctx.data(), ctx.data_end(), || ctx.len()).ok_or(())?;
    if seg.payload_len == 0 || !watched(seg.key.sport) {
        return Ok(());
    }
    let snap = min(RESPONSE_SNAPLEN.load(), MAX_SNAPLEN);
    if seg.payload_len >= PEEK_LEN as u32 {
        let peek = ctx.peek::<PEEK_LEN>(seg.payload_off)?;
        if looks_like_response(&peek) {
            bump(counter::STATUSES);
            return emit(ctx, &seg, KIND_RESPONSE, min(seg.payload_len, snap));
        }
    }
    if STATUS_SPLIT_SEEN.get(0).is_some_and(|&seen| seen != 0)
        && let Some(open) = OPEN_STATUSES.get_ptr_mut(&seg.key)
    {
        return status_continuation(ctx, &seg, unsafe { &mut *open }, snap);
    }
    if seg.payload_len < STATUS_LINE_MIN {
        let (peek, n) = short_peek(ctx, &seg)?;
        if could_start_response(&peek, n) {
            // Split before the status code: ship it, and the segments that
            // complete it.
            bump(counter::SPLIT_STATUSES);
            let open = OpenStatus { next_seq: seg.seq.wrapping_add(seg.payload_len), have: seg.payload_len };
            let _ = OPEN_STATUSES.insert(&seg.key, &open, 0);
            if let Some(seen) = STATUS_SPLIT_SEEN.get_ptr_mut(0) {
                unsafe { *seen = 1 };
            }
            return emit(ctx, &seg, KIND_RESPONSE, seg.payload_len);
        }
    }
    Ok(())
}

/// The segment after a split status line's start: shipped, and waited for
/// again until the status code is whole.
fn status_continuation(ctx: &TcContext, seg: &Segment, open: &mut OpenStatus, snap: u32) -> Result<(), ()> {
    if seg.seq != open.next_seq {
        // Forward: what continued it was missed. Backward: a retransmission.
        if (seg.seq.wrapping_sub(open.next_seq) as i32) > 0 {
            let _ = OPEN_STATUSES.remove(&seg.key);
        }
        return Ok(());
    }
    let have = open.have.saturating_add(seg.payload_len);
    if have >= STATUS_LINE_MIN {
        let _ = OPEN_STATUSES.remove(&seg.key);
    } else {
        open.next_seq = open.next_seq.wrapping_add(seg.payload_len);
        open.have = have;
    }
    emit(ctx, seg, KIND_RESPONSE_CONTINUATION, min(seg.payload_len, snap))
}

fn request_head(ctx: &XdpContext, seg: &Segment) -> Result<(), ()> {
    bump(counter::HEADS);
    let snap = min(SNAPLEN.load(), MAX_SNAPLEN);
    if seg.payload_len > snap {
        bump(counter::TRUNCATED);
    } else {
        // A head that does not end in this segment continues in the next
        // ones: remember where, and how much capture budget is left.
        let last4 = ctx.peek::<4>(seg.payload_off + seg.payload_len - 4)?;
        if !ends_head(&last4) && seg.payload_len < snap {
            let open = OpenHead { next_seq: seg.seq.wrapping_add(seg.payload_len), budget: snap - seg.payload_len };
            let _ = OPEN_HEADS.insert(&seg.key, &open, 0);
        }
    }
    emit(ctx, seg, KIND_REQUEST, min(seg.payload_len, snap))
}

fn continuation(ctx: &XdpContext, seg: &Segment, open: &mut OpenHead) -> Result<(), ()> {
    if seg.seq != open.next_seq {
        // An earlier byte range again is a retransmission: keep waiting. A
        // jump forward means we lost the segment that continued the head.
        if (seg.seq.wrapping_sub(open.next_seq) as i32) > 0 {
            let _ = OPEN_HEADS.remove(&seg.key);
        }
        return Ok(());
    }
    let want = min(seg.payload_len, open.budget);
    bump(counter::CONTINUATIONS);
    let done = if seg.payload_len >= open.budget {
        bump(counter::TRUNCATED);
        true
    } else if seg.payload_len >= 4 {
        ends_head(&ctx.peek::<4>(seg.payload_off + seg.payload_len - 4)?)
    } else {
        false
    };
    if done {
        let _ = OPEN_HEADS.remove(&seg.key);
    } else {
        open.next_seq = open.next_seq.wrapping_add(seg.payload_len);
        open.budget -= seg.payload_len;
    }
    emit(ctx, seg, KIND_CONTINUATION, want)
}

/// Ships `want` payload bytes (1..=MAX_SNAPLEN) in the smallest reservation
/// class that holds them.
#[inline(always)]
fn emit<C: LoadBytes>(ctx: &C, seg: &Segment, kind: u8, want: u32) -> Result<(), ()> {
    match size_class(want) {
        64 => emit_class::<C, { 64 + RECORD_HEADER_LEN }>(ctx, seg, kind, want),
        128 => emit_class::<C, { 128 + RECORD_HEADER_LEN }>(ctx, seg, kind, want),
        256 => emit_class::<C, { 256 + RECORD_HEADER_LEN }>(ctx, seg, kind, want),
        512 => emit_class::<C, { 512 + RECORD_HEADER_LEN }>(ctx, seg, kind, want),
        1024 => emit_class::<C, { 1024 + RECORD_HEADER_LEN }>(ctx, seg, kind, want),
        2048 => emit_class::<C, { 2048 + RECORD_HEADER_LEN }>(ctx, seg, kind, want),
        _ => emit_class::<C, { 4096 + RECORD_HEADER_LEN }>(ctx, seg, kind, want),
    }
}

#[inline(always)]
fn emit_class<C: LoadBytes, const SIZE: usize>(ctx: &C, seg: &Segment, kind: u8, want: u32) -> Result<(), ()> {
    let cap = (SIZE - RECORD_HEADER_LEN) as u32;
    if want == 0 || want > cap {
        return Err(());
    }
    // The verifier must see a length in [1, cap] in the very register passed
    // to the helper. LLVM, knowing `want` is in range, would drop or merge
    // the checks above, so hide the value from it and rebuild the range
    // with a mask (exact for a power-of-two cap) plus one.
    let len = (core::hint::black_box(want - 1) & (cap - 1)) + 1;
    let Some(mut entry) = EVENTS.reserve_bytes(SIZE, 0) else {
        bump(counter::RINGBUF_DROPS);
        return Err(());
    };
    let header = RecordHeader {
        ts_ns: unsafe { bpf_ktime_get_ns() },
        saddr: seg.key.saddr,
        daddr: seg.key.daddr,
        seq: seg.seq,
        ack: seg.ack,
        payload_len: seg.payload_len,
        ifindex: 0,
        sport: seg.key.sport,
        dport: seg.key.dport,
        cap_len: len as u16,
        kind,
        family: seg.key.family,
        tcp_flags: seg.flags,
        _pad: [0; 7],
    };
    let base = entry.as_mut_ptr();
    unsafe { core::ptr::write_unaligned(base as *mut RecordHeader, header) };
    let dst = unsafe { base.add(RECORD_HEADER_LEN) };
    if ctx.load_into(seg.payload_off, dst, len).is_err() {
        bump(counter::LOAD_FAILURES);
        entry.discard(0);
        return Err(());
    }
    entry.submit(wakeup_flags());
    Ok(())
}

/// Wake the reader only when the backlog has passed the threshold; the
/// reader's drain timer handles everything below it.
#[inline(always)]
fn wakeup_flags() -> u64 {
    let threshold = WAKEUP_BYTES.load();
    if threshold == 0 {
        // The kernel's own policy: wake the reader whenever it has caught
        // up, i.e. on nearly every record of a light load (bench baseline).
        return 0;
    }
    // Asking for the backlog is a helper call; every 32nd record per CPU is
    // often enough to notice a backlog long before the ring fills.
    let Some(n) = COUNTERS.get_ptr_mut(counter::SUBMITS) else {
        return BPF_RB_NO_WAKEUP as u64;
    };
    let n = unsafe {
        *n += 1;
        *n
    };
    if n & 31 != 0 {
        return BPF_RB_NO_WAKEUP as u64;
    }
    let avail = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    if avail >= threshold {
        bump(counter::WAKEUPS);
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
