//! The core: joins each response to its request per TCP flow.
//!
//! Synchronous and pure: it sees records, in order, and reports exchanges
//! through an [`Observer`]. Time is the records' time; expiry happens when
//! record time moves past a deadline, so a replay gives the output a live
//! run gave, with no sleeps in tests.
//!
//! Per flow: request heads are queued in arrival order (keep-alive and
//! pipelining). Each status line answers a request placed by where the
//! response lies in the server's byte stream ([`place`]), not merely the
//! oldest waiting, so a response that could not be read (a lost segment,
//! a status line split short or malformed) leaves its own request with no
//! status instead of moving every later status one request up. 1xx
//! interim responses answer nothing, retransmitted segments are
//! recognised by sequence number and ignored, and a head split over several
//! segments is reassembled from continuation records within the same
//! capture budget the kernel applies. A flow with every request answered
//! is closed at once; where it left off is remembered ([`closed`]) so that a
//! late retransmission is still ignored, and the next request on a
//! keep-alive connection opens it again.

use std::{
    collections::VecDeque,
    hash::{Hash, Hasher},
    net::SocketAddr,
    time::Duration,
};

use closed::{Closed, Ends};
use flows::{FlowTable, Recycle};

use rejectwatch_common::{PEEK_LEN, STATUS_LINE_MIN};

use crate::{
    exchange::Exchange,
    http::{self, BodyLen, Parsed, RequestHead},
    observe::{Observer, Side, Source},
    record::{Kind, Record},
    time::Nanos,
};

#[derive(Clone, Debug)]
pub struct JoinConfig {
    /// The kernel's request-head capture budget (bytes).
    pub snaplen: u32,
    /// A request with no response after this long is reported without one.
    pub response_timeout: Duration,
    /// Flows tracked at once; the least recently active is evicted first.
    pub max_flows: usize,
    /// Requests waiting for a response on one flow.
    pub max_pending: usize,
}

impl Default for JoinConfig {
    fn default() -> Self {
        Self {
            snaplen: rejectwatch_common::DEFAULT_SNAPLEN,
            response_timeout: Duration::from_secs(30),
            max_flows: 262_144,
            max_pending: 64,
        }
    }
}

/// Client and server ends of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FlowKey(SocketAddr, SocketAddr);

impl Hash for FlowKey {
    /// One word per end. The derived hash fed the hasher every field apart
    /// (family, address, port, and for IPv6 flow label and scope), twice
    /// per exchange. Equal keys still hash equal: the fields left out only
    /// ever make keys differ.
    fn hash<H: Hasher>(&self, h: &mut H) {
        fn word(a: &SocketAddr) -> u64 {
            match a {
                SocketAddr::V4(a) => u64::from(a.ip().to_bits()) << 16 | u64::from(a.port()),
                SocketAddr::V6(a) => {
                    let ip = a.ip().to_bits();
                    (ip as u64) ^ ((ip >> 64) as u64).rotate_left(29) ^ u64::from(a.port()) << 48 ^ 1
                }
            }
        }
        h.write_u64(word(&self.0));
        h.write_u64(word(&self.1));
    }
}

struct Pending {
    ts: Nanos,
    /// The client's acknowledgement when it sent the head: how much of the
    /// server's stream it had received, so the answer starts there or
    /// later, and exactly there when the client waited for the previous
    /// answer before sending (keep-alive without pipelining).
    ack: Option<u32>,
    head: RequestHead,
}

/// A head whose end has not been captured yet.
struct OpenHead {
    ts: Nanos,
    ack: Option<u32>,
    buf: Vec<u8>,
    next_seq: u32,
    budget: u32,
    /// Its first segment was too short to judge alone (the kernel ships
    /// such a segment when it could start a request): it is a request
    /// only if what follows confirms it.
    short: bool,
}

/// A status line whose first segment ended before its code.
struct OpenStatus {
    /// Server sequence of its first byte.
    seq: u32,
    next_seq: u32,
    buf: Vec<u8>,
}

#[derive(Default)]
struct Flow {
    last_seen: Nanos,
    /// Where each direction's stream has got to: kept, when the flow
    /// closes, to recognise retransmissions.
    ends: Ends,
    open: Option<OpenHead>,
    open_status: Option<OpenStatus>,
    pending: VecDeque<Pending>,
    /// What the server's stream says of where the next response starts.
    next_response: Next,
}

/// Where the next response starts in the server's stream.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
enum Next {
    /// Nothing read yet on this flow.
    #[default]
    Unknown,
    /// Exactly here: the last response read said how long it was, so any
    /// bytes between here and a later response held responses not read.
    At(u32),
    /// Somewhere after here: a response started here and its end could
    /// not be read (a capture cut short, a body of unknown length, a
    /// status that could not be read), so the bytes after it hold no
    /// response or some.
    After(u32),
}

impl Recycle for Flow {
    fn recycle(&mut self, keep_buffers: bool) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.clear();
        *self = Flow { pending: if keep_buffers { pending } else { VecDeque::new() }, ..Default::default() };
    }
}

/// `a` comes before `b` in TCP sequence space.
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

pub struct Joiner {
    cfg: JoinConfig,
    source: Source,
    flows: FlowTable<FlowKey, Flow>,
    closed: Closed,
    now: Nanos,
    last_sweep: Nanos,
}

const SWEEP_EVERY: Nanos = 1_000_000_000;

impl Joiner {
    pub fn new(cfg: JoinConfig, source: Source) -> Self {
        let flows = FlowTable::new(cfg.max_flows);
        Self { cfg, source, flows, closed: Closed::new(), now: 0, last_sweep: 0 }
    }

    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Feeds one record.
    pub fn push(&mut self, rec: Record<'_>, obs: &mut dyn Observer) {
        self.advance(rec.ts, obs);
        match rec.kind {
            Kind::Request => self.on_request(rec, obs),
            Kind::Continuation => self.on_continuation(rec, obs),
            Kind::Response => self.on_response(rec, obs),
            Kind::ResponseContinuation => self.on_response_continuation(rec, obs),
        }
    }

    /// Moves time forward (sources call this when idle, with their own
    /// clock), expiring what is due.
    pub fn advance(&mut self, now: Nanos, obs: &mut dyn Observer) {
        if now > self.now {
            self.now = now;
        }
        if self.now.saturating_sub(self.last_sweep) >= SWEEP_EVERY {
            self.last_sweep = self.now;
            self.sweep(obs);
        }
    }

    /// Ends the input: every open request is reported, answered or not.
    pub fn finish(&mut self, obs: &mut dyn Observer) {
        let source = self.source;
        while self.flows.pop_oldest(|key, flow| flush(key, flow, source, obs)) {}
    }

    fn sweep(&mut self, obs: &mut dyn Observer) {
        let timeout = self.cfg.response_timeout.as_nanos() as Nanos;
        let deadline = self.now.saturating_sub(timeout);
        let source = self.source;
        while self.flows.oldest().is_some_and(|(_, f)| f.last_seen < deadline) {
            self.flows.pop_oldest(|key, flow| flush(key, flow, source, obs));
        }
    }

    /// The flow for `key`, opened if new (where it left off if it closed
    /// lately); evicting the least recently active flow reports its open
    /// requests as unanswered.
    fn flow(&mut self, key: FlowKey, ts: Nanos, obs: &mut dyn Observer) -> &mut Flow {
        // The flow evicted to make room must have its requests reported.
        let source = self.source;
        let (flow, new) = self.flows.touch_making_room(key, |k, f| flush(k, f, source, obs));
        if new && let Some(ends) = self.closed.recall(&key, ts, self.cfg.response_timeout.as_nanos() as Nanos) {
            flow.ends = ends;
        }
        flow.last_seen = flow.last_seen.max(ts);
        flow
    }

    fn on_request(&mut self, rec: Record<'_>, obs: &mut dyn Observer) {
        let key = FlowKey(rec.src, rec.dst);
        let (snaplen, max_pending) = (self.cfg.snaplen, self.cfg.max_pending);
        let flow = self.flow(key, rec.ts, obs);
        if let Some(end) = flow.ends.req
            && seq_lt(rec.seq, end)
        {
            // Bytes already seen; the flow may have been closed and opened
            // again by this.
            if let Some(ends) = answered(flow) {
                self.close_newest(key, rec.ts, ends);
            }
            return;
        }
        if flow.open.as_ref().is_some_and(|o| o.next_seq == rec.seq) {
            // It continues the open head, though it could start one too
            // (`P` then `OST /admin …`: the kernel judges each segment).
            return self.on_continuation(rec, obs);
        }
        let end = rec.seq.wrapping_add(rec.payload_len);
        flow.ends.req = Some(end);
        let q = Queue { key, max_pending };
        if let Some(p) = close_open_head(flow) {
            q.push(flow, p, obs);
        }
        let budget = if rec.whole() { snaplen.saturating_sub(rec.payload_len) } else { 0 };
        let at = Arrival { ts: rec.ts, ack: rec.ack };
        if rec.whole() && rec.data.len() < PEEK_LEN && budget > 0 && http::could_start_request(rec.data) {
            // Too short to judge alone: wait for what follows.
            flow.open =
                Some(OpenHead { ts: rec.ts, ack: rec.ack, buf: rec.data.to_vec(), next_seq: end, budget, short: true });
            return;
        }
        consume(flow, at, rec.data, end, budget, &q, obs);
    }

    fn on_continuation(&mut self, rec: Record<'_>, obs: &mut dyn Observer) {
        let key = FlowKey(rec.src, rec.dst);
        let max_pending = self.cfg.max_pending;
        let flow = self.flow(key, rec.ts, obs);
        let Some(mut open) = flow.open.take() else {
            return; // the head already ended: this is body
        };
        if rec.seq != open.next_seq {
            if seq_lt(rec.seq, open.next_seq) {
                flow.open = Some(open); // retransmission
                return;
            }
            // A gap: the segment that continued the head was not captured.
            flow.open = Some(open);
            if let Some(p) = close_open_head(flow) {
                Queue { key, max_pending }.push(flow, p, obs);
            }
            return;
        }
        let end = rec.seq.wrapping_add(rec.payload_len);
        flow.ends.req = Some(end);
        open.buf.extend_from_slice(rec.data);
        let budget = if rec.whole() { open.budget.saturating_sub(rec.payload_len) } else { 0 };
        if open.short {
            if !http::could_start_request(&open.buf) {
                obs.parse_error(self.source, "split_start_not_a_request");
                return;
            }
            if open.buf.len() < PEEK_LEN && budget > 0 && rec.whole() {
                open.next_seq = end;
                open.budget = budget;
                flow.open = Some(open);
                return;
            }
        }
        let at = Arrival { ts: open.ts, ack: open.ack };
        consume(flow, at, &open.buf, end, budget, &Queue { key, max_pending }, obs);
    }

    fn on_response(&mut self, rec: Record<'_>, obs: &mut dyn Observer) {
        let key = FlowKey(rec.dst, rec.src);
        let source = self.source;
        let flow = self.flow(key, rec.ts, obs);
        // A retransmission changes nothing, but may find the flow closed
        // and open it again (with nothing to answer), so it closes too.
        let retransmitted = flow.ends.resp.is_some_and(|end| seq_lt(rec.seq, end));
        if !retransmitted {
            flow.ends.resp = Some(rec.seq.wrapping_add(rec.payload_len));
            // The server answered, so whatever head was still open is all
            // we will ever see of it.
            settle_open_head(flow);
            settle_open_status(flow, key, source, obs);
            if rec.whole() && (rec.data.len() as u32) < STATUS_LINE_MIN {
                // Split before the status code: the rest follows.
                let next_seq = rec.seq.wrapping_add(rec.payload_len);
                flow.open_status = Some(OpenStatus { seq: rec.seq, next_seq, buf: rec.data.to_vec() });
                return;
            }
            answer(flow, key, rec.seq, rec.data, source, obs);
        }
        if let Some(ends) = answered(flow) {
            self.close_newest(key, rec.ts, ends);
        }
    }

    fn on_response_continuation(&mut self, rec: Record<'_>, obs: &mut dyn Observer) {
        let key = FlowKey(rec.dst, rec.src);
        let source = self.source;
        let flow = self.flow(key, rec.ts, obs);
        let Some(mut open) = flow.open_status.take() else {
            return;
        };
        if rec.seq != open.next_seq {
            flow.open_status = Some(open);
            if !seq_lt(rec.seq, open_next(flow)) {
                // What continued it was not captured.
                settle_open_status(flow, key, source, obs);
            }
        } else {
            flow.ends.resp = Some(rec.seq.wrapping_add(rec.payload_len));
            open.buf.extend_from_slice(rec.data);
            open.next_seq = rec.seq.wrapping_add(rec.payload_len);
            if rec.whole() && (open.buf.len() as u32) < STATUS_LINE_MIN {
                flow.open_status = Some(open);
                return;
            }
            answer(flow, key, open.seq, &open.buf, source, obs);
        }
        if let Some(ends) = answered(flow) {
            self.close_newest(key, rec.ts, ends);
        }
    }

    /// Closes the flow just touched, remembering where it left off.
    fn close_newest(&mut self, key: FlowKey, ts: Nanos, ends: Ends) {
        self.closed.remember(&key, ts, ends);
        self.flows.remove_newest();
    }
}

/// Where a flow with every request answered (and no head still open) left
/// off: it can close.
fn answered(flow: &Flow) -> Option<Ends> {
    (flow.pending.is_empty() && flow.open.is_none() && flow.open_status.is_none()).then_some(flow.ends)
}

fn open_next(flow: &Flow) -> u32 {
    flow.open_status.as_ref().map_or(0, |o| o.next_seq)
}

/// Answers with a split status line as it stands: whatever it has not
/// yet shown is all we will ever see of it.
fn settle_open_status(flow: &mut Flow, key: FlowKey, source: Source, obs: &mut dyn Observer) {
    if let Some(open) = flow.open_status.take() {
        answer(flow, key, open.seq, &open.buf, source, obs);
    }
}

/// Answers a request for each final response in `buf`, which starts at
/// server sequence `seq` (pipelined responses share a segment; interim
/// 1xx answers answer nothing).
fn answer(flow: &mut Flow, key: FlowKey, seq: u32, buf: &[u8], source: Source, obs: &mut dyn Observer) {
    let mut off = 0usize;
    while off < buf.len() {
        let at = seq.wrapping_add(off as u32);
        match http::parse_response(&buf[off..]) {
            Parsed::Complete(resp, n) => {
                let interim = (100..200).contains(&resp.status) && resp.status != 101;
                let mut no_body = interim || resp.status == 204 || resp.status == 304;
                if !interim {
                    let req = place(flow, key, at, obs);
                    no_body |= req.as_ref().is_some_and(|p| p.head.method == "HEAD");
                    match req {
                        Some(p) => obs.exchange(exchange(key, p, Some(resp.status))),
                        None => obs.unmatched(Side::Response),
                    }
                }
                off += n;
                match (no_body, resp.body_len) {
                    (true, _) | (false, BodyLen::None) => {}
                    (false, BodyLen::Length(l)) => off = off.saturating_add(l as usize),
                    (false, BodyLen::Unknown) => {
                        flow.next_response = Next::After(at);
                        break;
                    }
                }
                flow.next_response = Next::At(seq.wrapping_add(off as u32));
                if off >= buf.len() || !http::starts_response(&buf[off..]) {
                    break;
                }
            }
            Parsed::Partial | Parsed::Invalid(_) => {
                // A response starts here and its status cannot be read: the
                // request it answers is reported without one.
                if let Parsed::Invalid(reason) = http::parse_response(&buf[off..]) {
                    obs.parse_error(source, reason);
                }
                if let Some(p) = place(flow, key, at, obs) {
                    obs.unmatched(Side::Unread);
                    obs.exchange(exchange(key, p, None));
                }
                flow.next_response = Next::After(at);
                break;
            }
        }
    }
}

/// The request that a final response starting at server sequence `at`
/// answers. Requests it shows were answered in bytes that could not be
/// read (their responses lie before `at`) are reported without a status.
///
/// HTTP/1.1 answers in order, so the oldest request waiting is the answer
/// unless the stream says otherwise:
/// - a request sent when the client had received exactly up to `at` waited
///   for the response before it and is answered here, whatever waited
///   before it;
/// - a request sent when the client had received more than `at` cannot be
///   answered here: this response answers one not captured;
/// - bytes between where the last response read ended and `at` held at
///   least one response not read, which answered the oldest request. When
///   more than one request could be answered here after it (pipelining),
///   which one is unknowable: all of them are reported without a status,
///   and this response answers none, rather than a wrong one;
/// - bytes after a response whose end could not be read (a capture cut
///   short, a body of unknown length) held no response or some: this
///   answers the oldest only when it is the one request that could be
///   answered here; with more (pipelining), the same as above.
fn place(flow: &mut Flow, key: FlowKey, at: u32, obs: &mut dyn Observer) -> Option<Pending> {
    let sent_by = |p: &Pending| p.ack.is_none_or(|ack| !seq_lt(at, ack));
    let candidates = |flow: &Flow| flow.pending.iter().take_while(|p| sent_by(p)).count();
    let (skip, answered) = match flow.pending.iter().position(|p| p.ack == Some(at)) {
        Some(k) => (k, true),
        None if !flow.pending.front().is_some_and(sent_by) => return None,
        None => match flow.next_response {
            Next::At(next) if seq_lt(next, at) => {
                // The oldest was answered in the gap; this answers the next
                // only if it is the one request left that could be.
                let n = candidates(flow);
                if n == 2 { (1, true) } else { (n, false) }
            }
            Next::After(after) if seq_lt(after, at) => {
                let n = candidates(flow);
                if n == 1 { (0, true) } else { (n, false) }
            }
            _ => (0, true),
        },
    };
    for p in flow.pending.drain(..skip) {
        obs.unmatched(Side::Unread);
        obs.exchange(exchange(key, p, None));
    }
    if answered { flow.pending.pop_front() } else { None }
}

/// Reports a flow's open requests as unanswered: it has expired or was
/// evicted, or the input has ended.
fn flush(key: FlowKey, flow: &mut Flow, source: Source, obs: &mut dyn Observer) {
    settle_open_head(flow);
    settle_open_status(flow, key, source, obs);
    for p in flow.pending.drain(..) {
        obs.unmatched(Side::Request);
        obs.exchange(exchange(key, p, None));
    }
}

/// Where newly parsed requests go: the flow's queue, the oldest reported
/// as unanswered when the flow already has too many waiting. Each head goes
/// straight from the parser into the queue: gathered in a list first, each
/// was moved (~200 bytes) twice more.
struct Queue {
    key: FlowKey,
    max_pending: usize,
}

impl Queue {
    fn push(&self, flow: &mut Flow, p: Pending, obs: &mut dyn Observer) {
        if flow.pending.len() >= self.max_pending
            && let Some(old) = flow.pending.pop_front()
        {
            obs.unmatched(Side::Request);
            obs.exchange(exchange(self.key, old, None));
        }
        // Most flows never have more than one request waiting; an empty
        // queue would grow to four slots of ~200 bytes on its first push.
        if flow.pending.capacity() == 0 {
            flow.pending.reserve_exact(1);
        }
        flow.pending.push_back(p);
    }
}

fn exchange(key: FlowKey, p: Pending, status: Option<u16>) -> Exchange {
    Exchange {
        ts: p.ts,
        peer: key.0.ip(),
        method: p.head.method,
        request: p.head.text,
        status,
        header_names: p.head.header_names,
        truncated: p.head.truncated,
        version: p.head.version,
        malformed: p.head.malformed,
        ..Default::default()
    }
}

/// Ends a head still waiting for continuation: parsed as far as it goes.
/// A short start that never showed a whole method was not a request.
fn close_open_head(flow: &mut Flow) -> Option<Pending> {
    let open = flow.open.take()?;
    if open.short && !http::has_request_method(&open.buf) {
        return None;
    }
    let head = match http::parse_request(&open.buf) {
        Parsed::Invalid(_) => Some(http::malformed_request(&open.buf)),
        _ => http::parse_truncated_request(&open.buf),
    };
    head.map(|head| Pending { ts: open.ts, ack: open.ack, head })
}

/// Queues the open head (the newest request of the flow) as it stands.
fn settle_open_head(flow: &mut Flow) {
    if let Some(p) = close_open_head(flow) {
        flow.pending.push_back(p);
    }
}

/// When and with what acknowledgement a head's first segment arrived.
#[derive(Clone, Copy)]
struct Arrival {
    ts: Nanos,
    ack: Option<u32>,
}

/// Parses every request head in `buf` (pipelining puts several in one
/// segment). A head the buffer ends inside waits for continuation while
/// capture budget remains, and is otherwise taken as truncated. A request
/// line that is not HTTP/1.x as written is still a request the server
/// answers (usually 400): it is queued flagged malformed, and nothing after
/// it in the buffer can be placed.
fn consume(flow: &mut Flow, at: Arrival, buf: &[u8], next_seq: u32, budget: u32, q: &Queue, obs: &mut dyn Observer) {
    let mut off = 0usize;
    let pending = |head| Pending { ts: at.ts, ack: at.ack, head };
    while off < buf.len() {
        let rest = &buf[off..];
        match http::parse_request(rest) {
            Parsed::Complete(head, n) => {
                let body = head.body_len;
                q.push(flow, pending(head), obs);
                off += n;
                match body {
                    BodyLen::None => {}
                    BodyLen::Length(l) => off = off.saturating_add(l as usize),
                    BodyLen::Unknown => return,
                }
                if off >= buf.len() || !http::starts_request(&buf[off..]) {
                    return;
                }
            }
            Parsed::Partial => {
                if budget > 0 {
                    let buf = rest.to_vec();
                    flow.open = Some(OpenHead { ts: at.ts, ack: at.ack, buf, next_seq, budget, short: false });
                } else if let Some(head) = http::parse_truncated_request(rest) {
                    q.push(flow, pending(head), obs);
                }
                return;
            }
            Parsed::Invalid(_) => {
                q.push(flow, pending(http::malformed_request(rest)), obs);
                return;
            }
        }
    }
}

mod closed;
mod flows;
#[cfg(test)]
mod tests;
