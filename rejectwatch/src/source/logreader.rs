//! Reads access logs for `analyze`: files or stdin (`-`), gzip recognised by
//! its magic number, container and syslog wrappers taken off each line,
//! each file's format detected from its first readable lines (or forced),
//! several files merged into one time-ordered stream. A bad line is
//! counted (`rejectwatch_parse_errors_total{source="log"}`) and the first
//! few are reported with file and line number; none is fatal. Error-log
//! lines among the access lines are counted apart.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap},
    fs::File,
    io::{self, BufRead, BufReader, IsTerminal as _, Read},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
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
    reader: Box<dyn BufRead>,
    detector: Detector,
    framing: Framing,
    line: u64,
    buf: Vec<u8>,
}

fn open(path: &Path, count: Arc<AtomicU64>) -> anyhow::Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if path.as_os_str() == "-" {
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

struct Reader<'a> {
    fields: &'a JsonFields,
    stats: LogStats,
}

impl Reader<'_> {
    /// The next good exchange of `input`, counting bad lines on the way.
    fn next(&mut self, input: &mut Input, obs: &mut dyn Observer) -> anyhow::Result<Option<Box<Exchange>>> {
        loop {
            input.buf.clear();
            let n =
                input.reader.read_until(b'\n', &mut input.buf).with_context(|| format!("reading {}", input.name))?;
            if n == 0 {
                self.finish(input, obs);
                return Ok(None);
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
            self.stats.lines += 1;
            let (text, container, syslog) = match input.framing.feed(line) {
                Framed::Line { text, container, syslog } => (text, container, syslog),
                Framed::Partial(wrapper) => {
                    *self.stats.wrappers.entry(wrapper).or_default() += 1;
                    continue;
                }
                Framed::Meta => {
                    self.stats.journal_fields += 1;
                    continue;
                }
                Framed::Bad(reason) => {
                    self.bad(&input.name, input.line, reason, obs);
                    continue;
                }
            };
            if let Some(w) = container {
                *self.stats.wrappers.entry(w).or_default() += 1;
            }
            if syslog {
                *self.stats.wrappers.entry("syslog").or_default() += 1;
            }
            if text.trim().is_empty() {
                continue;
            }
            if errorlog::is_error_line(&text) {
                self.stats.error_log_lines += 1;
                continue;
            }
            match input.detector.parse(&text, self.fields) {
                // Boxed: an exchange is large and waits in the merge.
                Ok((format, ex)) => {
                    *self.stats.formats.entry(format.name()).or_default() += 1;
                    return Ok(Some(Box::new(ex)));
                }
                Err(_) if text.trim_start().starts_with('{') && errorlog::is_server_json(&text) => {
                    self.stats.error_log_lines += 1;
                }
                Err(reason) => self.bad(&input.name, input.line, reason, obs),
            }
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

    /// Counts the lines a file left unfinished at its end.
    fn finish(&mut self, input: &mut Input, obs: &mut dyn Observer) {
        for _ in 0..input.framing.unfinished() {
            self.bad(&input.name, input.line, "unfinished_line", obs);
        }
    }
}

/// Feeds every line of `paths` to `obs` as exchanges, merged in time order.
pub fn replay(
    paths: &[&Path],
    format: Option<LogFormat>,
    fields: &JsonLogFields,
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
    let bar = io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(total.max(1));
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b
    });
    let started = Instant::now();
    let mut reader = Reader { fields: &fields, stats: LogStats::default() };
    // The next exchange of each input, earliest first (ties: input order).
    let mut heap = BinaryHeap::new();
    let mut pending: Vec<Option<Box<Exchange>>> = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter_mut().enumerate() {
        let ex = reader.next(input, obs)?;
        if let Some(e) = &ex {
            heap.push(Reverse((e.ts, i)));
        }
        pending.push(ex);
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let ex = pending[i].take().expect("queued exchange");
        reader.stats.exchanges += 1;
        obs.exchange(*ex);
        if let Some(next) = reader.next(&mut inputs[i], obs)? {
            heap.push(Reverse((next.ts, i)));
            pending[i] = Some(next);
        }
        if let Some(b) = &bar
            && reader.stats.exchanges.is_multiple_of(65536)
        {
            b.set_position(count.load(Ordering::Relaxed));
            let rate = reader.stats.exchanges as f64 / started.elapsed().as_secs_f64().max(1e-9);
            b.set_message(format!("{} exchanges, {rate:.0}/s", reader.stats.exchanges));
        }
    }
    if let Some(b) = bar {
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
