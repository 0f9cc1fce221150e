//! Reads access logs for `analyze`: files or stdin (`-`), gzip recognised by
//! its magic number, container and syslog wrappers taken off each line,
//! each file's format detected from its first readable lines (or forced),
//! several files merged into one time-ordered stream. A bad line is
//! counted (`rejectwatch_parse_errors_total{source="log"}`) and the first
//! few are reported with file and line number; none is fatal. Error-log
//! lines among the access lines are counted apart.
//!
//! Reading goes in two stages over chunks of lines. The first is
//! sequential per file, because it keeps state from line to line: reading
//! and decompressing, unwrapping (a container's split lines are joined),
//! telling error-log lines apart, and finding the format. The second is a
//! function of each line alone: parsing it in the format found and, given
//! a worker's preparation, preparing the exchange (the pipeline's
//! enrichment and the detectors' searches of it). With worker threads
//! ([`replay_parallel`]) the second stage runs on them, chunk by chunk, and
//! the chunks are taken back in file order, so the exchanges, the bad lines
//! and every count come out exactly as read on one thread.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, VecDeque},
    fs::File,
    io::{self, BufRead, BufReader, IsTerminal as _, Read},
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, sync_channel},
    },
    time::Instant,
};

use anyhow::Context as _;
use flate2::read::MultiGzDecoder;

use super::logformat::{
    Detector, JsonFields, LogFormat, errorlog,
    json::JsonLogFields,
    prefix::{Framed, Framing},
};
use crate::{
    exchange::Exchange,
    observe::{Observer, Source},
    time::Nanos,
};

/// Bad lines reported individually before only counting them.
const REPORTED_BAD_LINES: u64 = 5;

/// Counts bytes read from the underlying file (compressed, for gzip), for
/// the progress bar.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

struct Input {
    name: String,
    reader: Box<dyn BufRead + Send>,
    detector: Detector,
    framing: Framing,
    line: u64,
    buf: Vec<u8>,
}

fn open(path: &Path, count: Arc<AtomicU64>) -> anyhow::Result<Box<dyn BufRead + Send>> {
    let raw: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path).with_context(|| format!("cannot read {}", path.display()))?)
    };
    let mut r = BufReader::with_capacity(1 << 16, Counting { inner: raw, count });
    let gz = r.fill_buf().with_context(|| format!("cannot read {}", path.display()))?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz { Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(r))) } else { Box::new(r) })
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogStats {
    /// Lines read, blank ones left out.
    pub lines: u64,
    pub exchanges: u64,
    pub bad: u64,
    /// Lines read as exchanges, by format.
    pub formats: BTreeMap<&'static str, u64>,
    /// Wrappers taken off (`cri`, `docker`, `journal`, `syslog`), by
    /// physical line.
    pub wrappers: BTreeMap<&'static str, u64>,
    /// Error-log and server-log lines among the access lines.
    pub error_log_lines: u64,
    /// Journal export fields other than the message.
    pub journal_fields: u64,
    /// Lines that could not be read, by reason.
    pub unreadable: BTreeMap<&'static str, u64>,
}

impl LogStats {
    /// Adds the counts the first stage kept on its own thread.
    fn add(&mut self, o: LogStats) {
        self.lines += o.lines;
        self.error_log_lines += o.error_log_lines;
        self.journal_fields += o.journal_fields;
        for (k, n) in o.wrappers {
            *self.wrappers.entry(k).or_default() += n;
        }
    }
}

/// Lines of one file after the first stage, in order.
struct Chunk {
    /// The texts of the items, back to back.
    text: String,
    items: Vec<Item>,
}

enum Item {
    /// A line to parse in the file's format; its text ends at `end`.
    Text {
        line: u64,
        end: usize,
        format: LogFormat,
    },
    /// A line read while the format was being found, so parsed already
    /// (its text kept, to tell a server's JSON message from a bad line).
    Parsed {
        line: u64,
        end: usize,
        parsed: Box<Result<(LogFormat, Exchange), &'static str>>,
    },
    Bad {
        line: u64,
        reason: &'static str,
    },
}

impl Chunk {
    /// Room for `lines` lines of a typical access log, so that filling it
    /// does not grow (copy) its text again and again.
    fn new(lines: usize) -> Self {
        Self { text: String::with_capacity(lines * 256), items: Vec::with_capacity(lines) }
    }
}

/// A chunk after the second stage.
// Nearly every outcome is an exchange: boxing it would allocate one more
// time a line for nothing.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Exchange(&'static str, Exchange),
    ErrorLine,
    Bad { line: u64, reason: &'static str },
}

/// Lines per chunk: on one thread, few, so that the exchanges are still in
/// the cache when the pipeline takes them; across threads, enough that
/// handing a chunk over costs little beside its work.
const INLINE_LINES: usize = 32;
const PARALLEL_LINES: usize = 512;

/// The first stage: up to `lines` lines of `input` into `chunk`, counting
/// what needs no parsing into `stats`. False at the end of the input.
fn fill(
    input: &mut Input,
    fields: &JsonFields,
    stats: &mut LogStats,
    chunk: &mut Chunk,
    lines: usize,
) -> anyhow::Result<bool> {
    while chunk.items.len() < lines {
        input.buf.clear();
        let n = input.reader.read_until(b'\n', &mut input.buf).with_context(|| format!("reading {}", input.name))?;
        if n == 0 {
            for _ in 0..input.framing.unfinished() {
                chunk.items.push(Item::Bad { line: input.line, reason: "unfinished_line" });
            }
            return Ok(false);
        }
        input.line += 1;
        let mut end = input.buf.len();
        while end > 0 && matches!(input.buf[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        // Valid UTF-8 is the rule; only a line that is not pays for the
        // lossy copy.
        let line = match std::str::from_utf8(&input.buf[..end]) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(&input.buf[..end]),
        };
        let line: &str = &line;
        if line.trim().is_empty() {
            continue;
        }
        stats.lines += 1;
        let (text, container, syslog) = match input.framing.feed(line) {
            Framed::Line { text, container, syslog } => (text, container, syslog),
            Framed::Partial(wrapper) => {
                *stats.wrappers.entry(wrapper).or_default() += 1;
                continue;
            }
            Framed::Meta => {
                stats.journal_fields += 1;
                continue;
            }
            Framed::Bad(reason) => {
                chunk.items.push(Item::Bad { line: input.line, reason });
                continue;
            }
        };
        if let Some(w) = container {
            *stats.wrappers.entry(w).or_default() += 1;
        }
        if syslog {
            *stats.wrappers.entry("syslog").or_default() += 1;
        }
        if text.trim().is_empty() {
            continue;
        }
        if errorlog::is_error_line(&text) {
            stats.error_log_lines += 1;
            continue;
        }
        chunk.text.push_str(&text);
        let (line, end) = (input.line, chunk.text.len());
        // Until the format is found, each line decides it in turn: that
        // stays here, in order; after, a line's parse is its own.
        chunk.items.push(match input.detector.format() {
            Some(format) => Item::Text { line, end, format },
            None => Item::Parsed { line, end, parsed: Box::new(input.detector.parse(&text, fields)) },
        });
    }
    Ok(true)
}

/// Lines parsed before their exchanges are prepared together: enough for
/// the preparation's prefetches to overlap, few enough that the exchanges
/// are still in the cache (as the pipeline's own batches).
const PREPARE_LINES: usize = 32;

/// A worker's preparation of a batch of exchanges (the pipeline's
/// `Upstream::prepare`).
type Prepare<'a> = &'a mut dyn FnMut(&mut [&mut Exchange]);

/// The second stage: each line parsed and, given a worker's preparation,
/// the exchanges prepared [`PREPARE_LINES`] lines at a time.
fn work(chunk: Chunk, fields: &JsonFields, mut prepare: Option<Prepare<'_>>, out: &mut VecDeque<Outcome>) {
    let mut start = 0;
    let mut from = out.len();
    for item in chunk.items {
        if out.len() - from == PREPARE_LINES {
            prepare_from(&mut prepare, out, from);
            from = out.len();
        }
        let (line, end, parsed) = match item {
            Item::Bad { line, reason } => {
                out.push_back(Outcome::Bad { line, reason });
                continue;
            }
            Item::Text { line, end, format } => {
                (line, end, format.parse(&chunk.text[start..end], fields).map(|e| (format, e)))
            }
            Item::Parsed { line, end, parsed } => (line, end, *parsed),
        };
        let text = &chunk.text[start..end];
        start = end;
        out.push_back(match parsed {
            Ok((format, ex)) => Outcome::Exchange(format.name(), ex),
            Err(_) if text.trim_start().starts_with('{') && errorlog::is_server_json(text) => Outcome::ErrorLine,
            Err(reason) => Outcome::Bad { line, reason },
        });
    }
    prepare_from(&mut prepare, out, from);
}

/// Prepares the exchanges among `out`'s outcomes from `from` on.
fn prepare_from(prepare: &mut Option<Prepare<'_>>, out: &mut VecDeque<Outcome>, from: usize) {
    let Some(prepare) = prepare else { return };
    let mut batch: Vec<&mut Exchange> = out
        .range_mut(from..)
        .filter_map(|o| match o {
            Outcome::Exchange(_, ex) => Some(ex),
            _ => None,
        })
        .collect();
    if !batch.is_empty() {
        prepare(&mut batch);
    }
}

/// Where a file's outcomes come from.
enum Feed {
    /// Both stages on this thread, a chunk at a time.
    Inline(Input),
    /// Tickets for the file's chunks in order, each answered by a worker;
    /// the channel closes at the end of the file.
    Workers(Receiver<anyhow::Result<Receiver<VecDeque<Outcome>>>>),
}

struct Stream {
    name: String,
    feed: Feed,
    pending: VecDeque<Outcome>,
    more: bool,
}

struct Reader<'a> {
    fields: &'a JsonFields,
    stats: LogStats,
}

impl Reader<'_> {
    /// The time of `s`'s next good exchange, which waits at the front of
    /// its outcomes (there until [`Reader::take`], not moved about: an
    /// exchange is large), counting the bad lines on the way. None at the
    /// end of the file.
    fn peek(&mut self, s: &mut Stream, obs: &mut dyn Observer) -> anyhow::Result<Option<Nanos>> {
        loop {
            match s.pending.front() {
                Some(Outcome::Exchange(_, ex)) => return Ok(Some(ex.ts)),
                Some(_) => match s.pending.pop_front() {
                    Some(Outcome::Bad { line, reason }) => self.bad(&s.name, line, reason, obs),
                    _ => self.stats.error_log_lines += 1,
                },
                None if !s.more => return Ok(None),
                None => match &mut s.feed {
                    Feed::Inline(input) => {
                        let mut chunk = Chunk::new(INLINE_LINES);
                        s.more = fill(input, self.fields, &mut self.stats, &mut chunk, INLINE_LINES)?;
                        work(chunk, self.fields, None, &mut s.pending);
                    }
                    Feed::Workers(tickets) => match tickets.recv() {
                        Ok(ticket) => {
                            // A worker that panicked drops its answer: the
                            // panic itself is raised when the scope ends.
                            s.pending = ticket?.recv().unwrap_or_default();
                        }
                        Err(_) => s.more = false,
                    },
                },
            }
        }
    }

    /// The exchange [`Reader::peek`] found.
    fn take(&mut self, s: &mut Stream) -> Option<Exchange> {
        match s.pending.pop_front()? {
            Outcome::Exchange(format, ex) => {
                *self.stats.formats.entry(format).or_default() += 1;
                self.stats.exchanges += 1;
                Some(ex)
            }
            _ => None,
        }
    }

    fn bad(&mut self, name: &str, line: u64, reason: &'static str, obs: &mut dyn Observer) {
        self.stats.bad += 1;
        *self.stats.unreadable.entry(reason).or_default() += 1;
        obs.parse_error(Source::Log, reason);
        if self.stats.bad <= REPORTED_BAD_LINES {
            eprintln!("rejectwatch: {name}:{line}: skipped ({reason})");
        }
    }
}

/// Feeds every line of `paths` to `obs` as exchanges, merged in time order,
/// on this thread.
pub fn replay(
    paths: &[&Path],
    format: Option<LogFormat>,
    fields: &JsonLogFields,
    obs: &mut dyn Observer,
) -> anyhow::Result<LogStats> {
    replay_parallel(paths, format, fields, Vec::<fn(&mut [&mut Exchange])>::new(), obs)
}

/// [`replay`] with a worker thread per preparation, which parse the lines
/// and prepare each exchange (the pipeline's `Upstream::prepare`: the
/// pipeline is told its exchanges come prepared). None: everything on this
/// thread, the pipeline preparing. Either way the same exchanges, in the
/// same order.
pub fn replay_parallel<P: FnMut(&mut [&mut Exchange]) + Send>(
    paths: &[&Path],
    format: Option<LogFormat>,
    fields: &JsonLogFields,
    workers: Vec<P>,
    obs: &mut dyn Observer,
) -> anyhow::Result<LogStats> {
    let fields = JsonFields::new(fields).map_err(anyhow::Error::msg)?;
    let count = Arc::new(AtomicU64::new(0));
    let total: u64 = paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let mut inputs = Vec::with_capacity(paths.len());
    for p in paths {
        inputs.push(Input {
            name: if p.as_os_str() == "-" { "stdin".into() } else { p.display().to_string() },
            reader: open(p, count.clone())?,
            detector: Detector::new(format),
            framing: Framing::default(),
            line: 0,
            buf: Vec::with_capacity(512),
        });
    }
    let progress = Progress::new(total, count);
    if workers.is_empty() {
        let streams = inputs
            .into_iter()
            .map(|i| Stream { name: i.name.clone(), feed: Feed::Inline(i), pending: VecDeque::new(), more: true })
            .collect();
        return merge(streams, &fields, LogStats::default(), progress, obs);
    }
    let threads = workers.len();
    std::thread::scope(|scope| {
        let (jobs, queue) = std::sync::mpsc::channel::<(Chunk, SyncSender<VecDeque<Outcome>>)>();
        let queue = Arc::new(Mutex::new(queue));
        for mut prepare in workers {
            let (queue, fields) = (queue.clone(), &fields);
            scope.spawn(move || {
                loop {
                    // The lock is held only to take a chunk, not to work it.
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((chunk, answer)) = job else { return };
                    let mut out = VecDeque::with_capacity(chunk.items.len());
                    work(chunk, fields, Some(&mut prepare), &mut out);
                    let _ = answer.send(out);
                }
            });
        }
        let mut streams = Vec::with_capacity(inputs.len());
        let mut firsts = Vec::with_capacity(inputs.len());
        // Chunks in flight per file: together enough to keep every worker
        // busy, yet a few per file, since each holds its lines parsed
        // (about 0.5 MB) and rotated logs come in dozens.
        let in_flight = (2 * threads).div_ceil(inputs.len()).max(2);
        for mut input in inputs {
            let (tickets, feed) = sync_channel(in_flight);
            let (jobs, fields) = (jobs.clone(), &fields);
            streams.push(Stream {
                name: input.name.clone(),
                feed: Feed::Workers(feed),
                pending: VecDeque::new(),
                more: true,
            });
            firsts.push(scope.spawn(move || {
                let mut stats = LogStats::default();
                loop {
                    let mut chunk = Chunk::new(PARALLEL_LINES);
                    let more = match fill(&mut input, fields, &mut stats, &mut chunk, PARALLEL_LINES) {
                        Ok(more) => more,
                        Err(e) => {
                            let _ = tickets.send(Err(e));
                            break;
                        }
                    };
                    let (answer, ticket) = sync_channel(1);
                    // Either fails only when the reading side has stopped.
                    if jobs.send((chunk, answer)).is_err() || tickets.send(Ok(ticket)).is_err() || !more {
                        break;
                    }
                }
                stats
            }));
        }
        drop(jobs);
        let mut stats = merge(streams, &fields, LogStats::default(), progress, obs);
        for first in firsts {
            let counted = first.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            if let Ok(s) = &mut stats {
                s.add(counted);
            }
        }
        stats
    })
}

/// The progress bar, on a terminal.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    count: Arc<AtomicU64>,
    started: Instant,
}

impl Progress {
    fn new(total: u64, count: Arc<AtomicU64>) -> Self {
        let bar = io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total.max(1));
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b
        });
        Self { bar, count, started: Instant::now() }
    }

    fn at(&self, exchanges: u64) {
        if let Some(b) = &self.bar
            && exchanges.is_multiple_of(65536)
        {
            b.set_position(self.count.load(Ordering::Relaxed));
            let rate = exchanges as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            b.set_message(format!("{exchanges} exchanges, {rate:.0}/s"));
        }
    }
}

/// The files' exchanges to `obs`, earliest first (ties: file order).
fn merge(
    mut streams: Vec<Stream>,
    fields: &JsonFields,
    stats: LogStats,
    progress: Progress,
    obs: &mut dyn Observer,
) -> anyhow::Result<LogStats> {
    let mut reader = Reader { fields, stats };
    // The next exchange of each file, by time.
    let mut heap = BinaryHeap::new();
    for (i, s) in streams.iter_mut().enumerate() {
        if let Some(ts) = reader.peek(s, obs)? {
            heap.push(Reverse((ts, i)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        if let Some(ex) = reader.take(&mut streams[i]) {
            obs.exchange(ex);
        }
        if let Some(ts) = reader.peek(&mut streams[i], obs)? {
            heap.push(Reverse((ts, i)));
        }
        progress.at(reader.stats.exchanges);
    }
    if let Some(b) = progress.bar {
        b.finish_and_clear();
    }
    if reader.stats.bad > REPORTED_BAD_LINES {
        eprintln!("rejectwatch: {} more bad lines skipped", reader.stats.bad - REPORTED_BAD_LINES);
    }
    Ok(reader.stats)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::observe::Collect;

    fn write(name: &str, data: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rw-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    fn clf(ip: &str, sec: u32, path: &str, status: u16) -> String {
        format!("{ip} - - [22/Nov/2025:10:00:{sec:02} +0000] \"GET {path} HTTP/1.1\" {status} 0 \"-\" \"curl/8.5.0\"\n")
    }

    #[test]
    fn merges_files_in_time_order_across_formats_and_gzip() {
        let a = write("a.log", [clf("10.0.0.1", 1, "/a1", 200), clf("10.0.0.1", 5, "/a5", 401)].concat().as_bytes());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(
            [clf("10.0.0.2", 3, "/b3", 404), "garbage line\n".into(), clf("10.0.0.2", 7, "/b7", 429)]
                .concat()
                .as_bytes(),
        )
        .unwrap();
        let b = write("b.log.gz", &gz.finish().unwrap());
        let c = write(
            "c.jsonl",
            b"{\"timestamp\":\"2025-11-22T10:00:04Z\",\"source_ip\":\"10.0.0.3\",\"path\":\"/c4\",\"status_code\":403}\n\n",
        );
        let mut out = Collect::default();
        let stats = replay(&[&a, &b, &c], None, &JsonLogFields::default(), &mut out).unwrap();
        let order: Vec<&str> = out.exchanges.iter().map(|e| e.target()).collect();
        assert_eq!(order, ["/a1", "/b3", "/c4", "/a5", "/b7"]);
        assert_eq!((stats.lines, stats.exchanges, stats.bad), (6, 5, 1));
        assert_eq!(stats.formats, BTreeMap::from([("combined", 4), ("json", 1)]));
        assert_eq!(stats.unreadable, BTreeMap::from([("no_timestamp", 1)]));
        assert_eq!(out.parse_errors, [(Source::Log, "no_timestamp")]);
    }

    #[test]
    fn unreadable_file_is_an_error_not_a_panic() {
        let e = replay(&[Path::new("/nonexistent/x.log")], None, &JsonLogFields::default(), &mut Collect::default());
        assert!(e.unwrap_err().to_string().contains("cannot read /nonexistent/x.log"));
    }
}
