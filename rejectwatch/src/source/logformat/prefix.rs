//! What carries a log line to the file it is read from, taken off before
//! the line is parsed: a container runtime's framing (CRI, Docker's
//! json-file, journald's export and JSON output) and a syslog header
//! (RFC 3164, RFC 5424, journald's short formats). A runtime splits long
//! lines into pieces; they are joined again, up to a bound.

use std::borrow::Cow;

use crate::time::logtime;
use serde::Deserialize;

/// Longest line joined from pieces; a longer one is dropped and counted
/// rather than grown without end (a client choosing its length).
const MAX_JOINED: usize = 256 * 1024;

/// What one physical line turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed<'a> {
    /// A log line with its wrappers taken off, and their names.
    Line { text: Cow<'a, str>, container: Option<&'static str>, syslog: bool },
    /// A piece of a longer line, kept until its last piece (by wrapper).
    Partial(&'static str),
    /// Not a log line: the other fields of a journal export.
    Meta,
    /// A line that cannot be read, and why.
    Bad(&'static str),
}

#[derive(Debug, Default)]
struct Pieces {
    buf: String,
    overflow: bool,
}

/// Unwraps one file's lines, holding its unfinished pieces (one set per
/// output stream: stdout's and stderr's pieces interleave).
#[derive(Debug, Default)]
pub struct Framing {
    pieces: [Pieces; 2],
}

impl Framing {
    pub fn feed<'a>(&mut self, line: &'a str) -> Framed<'a> {
        let (content, container): (Cow<'a, str>, _) = if let Some((stream, full, content)) = cri(line) {
            match self.join(stream, full, content) {
                Ok(Some(c)) => (c, Some("cri")),
                Ok(None) => return Framed::Partial("cri"),
                Err(why) => return Framed::Bad(why),
            }
        } else if line.starts_with("{\"log\":") {
            let Some((stream, full, content)) = docker(line) else { return Framed::Bad("bad_docker_json") };
            match self.join(stream, full, Cow::Owned(content)) {
                Ok(Some(c)) => (c, Some("docker")),
                Ok(None) => return Framed::Partial("docker"),
                Err(why) => return Framed::Bad(why),
            }
        } else if let Some(m) = line.strip_prefix("MESSAGE=") {
            (Cow::Borrowed(m), Some("journal"))
        } else if journal_field(line) {
            return Framed::Meta;
        } else if line.starts_with("{\"") && line.contains("\"__CURSOR\":") {
            match journal_json(line) {
                Some(m) => (Cow::Owned(m), Some("journal")),
                None => return Framed::Bad("bad_journal_json"),
            }
        } else {
            (Cow::Borrowed(line), None)
        };
        let (text, syslog) = match content {
            Cow::Borrowed(s) => match strip_syslog(s) {
                Some(m) => (Cow::Borrowed(m), true),
                None => (Cow::Borrowed(s), false),
            },
            Cow::Owned(s) => match strip_syslog(&s) {
                Some(m) => (Cow::Owned(m.to_string()), true),
                None => (Cow::Owned(s), false),
            },
        };
        Framed::Line { text, container, syslog }
    }

    /// Adds a piece; returns the whole line at its last piece.
    fn join<'a>(
        &mut self,
        stream: usize,
        full: bool,
        piece: Cow<'a, str>,
    ) -> Result<Option<Cow<'a, str>>, &'static str> {
        let p = &mut self.pieces[stream];
        if !full {
            if p.buf.len() + piece.len() > MAX_JOINED {
                p.buf = String::new();
                p.overflow = true;
            } else if !p.overflow {
                p.buf.push_str(&piece);
            }
            return Ok(None);
        }
        if std::mem::take(&mut p.overflow) {
            p.buf = String::new();
            return Err("joined_line_too_long");
        }
        if p.buf.is_empty() {
            return Ok(Some(piece));
        }
        if p.buf.len() + piece.len() > MAX_JOINED {
            p.buf = String::new();
            return Err("joined_line_too_long");
        }
        let mut whole = std::mem::take(&mut p.buf);
        whole.push_str(&piece);
        Ok(Some(Cow::Owned(whole)))
    }

    /// Lines whose last piece never came (the file ends mid-line).
    pub fn unfinished(&mut self) -> u64 {
        self.pieces
            .iter_mut()
            .map(|p| u64::from(!std::mem::take(&mut p.buf).is_empty() | std::mem::take(&mut p.overflow)))
            .sum()
    }
}

fn stream(s: &str) -> Option<usize> {
    match s {
        "stdout" => Some(0),
        "stderr" => Some(1),
        _ => None,
    }
}

/// CRI (containerd, CRI-O): `2026-12-07T14:00:00.123456789Z stdout F line`;
/// the tag's first element is `P` for a piece, `F` for a last piece.
fn cri(line: &str) -> Option<(usize, bool, Cow<'_, str>)> {
    let (ts, rest) = line.split_once(' ')?;
    let (out, rest) = rest.split_once(' ')?;
    let out = stream(out)?;
    logtime::rfc3339(ts)?;
    let (tag, content) = rest.split_once(' ').unwrap_or((rest, ""));
    let full = match tag.split(':').next() {
        Some("F") => true,
        Some("P") => false,
        _ => return None,
    };
    Some((out, full, Cow::Borrowed(content)))
}

#[derive(Deserialize)]
struct Docker {
    log: String,
    stream: Option<String>,
}

/// Docker's json-file: `{"log":"line\n","stream":"stdout","time":"…"}`;
/// a `log` without its newline is a piece of a longer line (16 KiB each).
fn docker(line: &str) -> Option<(usize, bool, String)> {
    let d: Docker = serde_json::from_str(line).ok()?;
    let out = stream(d.stream.as_deref().unwrap_or("stdout")).unwrap_or(0);
    let mut log = d.log;
    let full = log.ends_with('\n');
    while log.ends_with(['\n', '\r']) {
        log.pop();
    }
    Some((out, full, log))
}

/// A field of `journalctl -o export` other than the message: `_PID=123`.
fn journal_field(line: &str) -> bool {
    let Some((name, _)) = line.split_once('=') else { return false };
    !name.is_empty()
        && name.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// `journalctl -o json` (its keys in any order): the MESSAGE field, a string or (when it is not
/// UTF-8) an array of bytes.
fn journal_json(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    match v.get("MESSAGE")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(a) => {
            let bytes: Option<Vec<u8>> = a.iter().map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok())).collect();
            Some(String::from_utf8_lossy(&bytes?).into_owned())
        }
        _ => None,
    }
}

/// The message of a syslog line, if `s` is one.
pub fn strip_syslog(s: &str) -> Option<&str> {
    let (body, pri) = match s.strip_prefix('<').and_then(|r| r.split_once('>')) {
        Some((p, rest)) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|c| c.is_ascii_digit()) => (rest, true),
        _ => (s, false),
    };
    if pri && let Some(r) = body.strip_prefix("1 ") {
        return rfc5424(r);
    }
    let after_stamp = if logtime::bsd_stamp(body) {
        &body[15..]
    } else {
        // rsyslog's RFC 3339 file format, journald's short-iso.
        let (stamp, rest) = body.split_once(' ')?;
        let b = stamp.as_bytes();
        if !(b.len() >= 19 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':') {
            return None;
        }
        rest
    };
    host_and_tag(after_stamp, pri)
}

fn is_tag(t: &str) -> bool {
    t.len() > 1
        && t.ends_with(':')
        && t.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'/' | b'[' | b']' | b':'))
}

/// `host tag[pid]: message`; the tag is optional after a priority, and
/// some senders leave the host out.
fn host_and_tag(s: &str, pri: bool) -> Option<&str> {
    let s = s.trim_start_matches(' ');
    let (first, rest) = s.split_once(' ').unwrap_or((s, ""));
    if is_tag(first) {
        return Some(rest);
    }
    let (second, after) = rest.split_once(' ').unwrap_or((rest, ""));
    if is_tag(second) {
        return Some(after);
    }
    pri.then_some(rest)
}

/// RFC 5424 after `<PRI>1 `: timestamp, host, app, procid, msgid,
/// structured data (`-` or `[id k="v"]…`), then the message.
fn rfc5424(s: &str) -> Option<&str> {
    let mut rest = s;
    for _ in 0..5 {
        rest = rest.split_once(' ')?.1;
    }
    let b = rest.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i = 1;
    } else {
        while b.get(i) == Some(&b'[') {
            let mut quoted = false;
            i += 1;
            loop {
                match *b.get(i)? {
                    b'\\' => i += 1,
                    b'"' => quoted = !quoted,
                    b']' if !quoted => break,
                    _ => {}
                }
                i += 1;
            }
            i += 1;
        }
        if i == 0 {
            return None;
        }
    }
    let msg = rest[i..].strip_prefix(' ').unwrap_or(&rest[i..]);
    Some(msg.strip_prefix('\u{feff}').unwrap_or(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLF: &str = r#"203.0.113.9 - - [07/Dec/2026:14:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "curl/8""#;

    fn line(f: Framed<'_>) -> (String, Option<&'static str>, bool) {
        match f {
            Framed::Line { text, container, syslog } => (text.into_owned(), container, syslog),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn syslog_headers() {
        for wrapped in [
            format!("<13>Dec  7 14:00:00 web1 nginx: {CLF}"),
            format!("<190>Dec 07 14:00:00 web1 nginx[123]: {CLF}"),
            format!("Dec  7 14:00:00 web1 nginx: {CLF}"),
            format!("Dec 07 14:00:00 web1 nginx[123]: {CLF}"),
            format!("<134>Dec  7 14:00:00 haproxy[14389]: {CLF}"),
            format!("2026-12-07T14:00:00.123456+00:00 web1 nginx: {CLF}"),
            format!("2026-12-07T14:00:00+0000 web1 nginx[123]: {CLF}"),
            format!("<165>1 2026-12-07T14:00:00.003Z web1 nginx 123 - - {CLF}"),
            format!(r#"<165>1 2026-12-07T14:00:00.003Z web1 nginx - ID47 [x@32473 iut="3" a="b\"]c"][y@1] {CLF}"#),
            format!("<165>1 2026-12-07T14:00:00.003Z web1 nginx - - - \u{feff}{CLF}"),
        ] {
            assert_eq!(strip_syslog(&wrapped), Some(CLF), "{wrapped}");
            assert_eq!(line(Framing::default().feed(&wrapped)), (CLF.to_string(), None, true), "{wrapped}");
        }
        // Lines that only look like it are left alone.
        for plain in [
            CLF,
            "Dec  7 14:00:00 web1 no tag here",
            "<13>1 2026-12-07T14:00:00Z h a p m [unterminated",
            "<1234>Dec  7 14:00:00 h t: x",
            "2026-12-07T14:00:00Z stdout",
        ] {
            assert_ne!(strip_syslog(plain), Some(CLF), "{plain}");
        }
        assert_eq!(strip_syslog("2026-12-07T14:00:00Z host x"), None);
        // After a priority the tag is optional.
        assert_eq!(strip_syslog("<13>Dec  7 14:00:00 host message"), Some("message"));
    }

    #[test]
    fn container_runtimes() {
        let mut f = Framing::default();
        let cri = format!("2026-12-07T14:00:00.123456789Z stdout F {CLF}");
        assert_eq!(line(f.feed(&cri)), (CLF.to_string(), Some("cri"), false));
        // Pieces are joined, stdout's apart from stderr's.
        let (a, b) = CLF.split_at(20);
        assert_eq!(f.feed(&format!("2026-12-07T14:00:00Z stdout P {a}")), Framed::Partial("cri"));
        assert_eq!(f.feed("2026-12-07T14:00:00Z stderr P other"), Framed::Partial("cri"));
        assert_eq!(line(f.feed(&format!("2026-12-07T14:00:00Z stdout F {b}"))), (CLF.to_string(), Some("cri"), false));
        assert_eq!(line(f.feed("2026-12-07T14:00:00Z stderr F  stream")).0, "other stream");
        assert_eq!(f.unfinished(), 0);
        // CRI around syslog.
        let both = format!("2026-12-07T14:00:00Z stdout F <13>Dec  7 14:00:00 web1 nginx: {CLF}");
        assert_eq!(line(f.feed(&both)), (CLF.to_string(), Some("cri"), true));
        // Docker json-file, escapes decoded, pieces without their newline.
        let docker = serde_json::json!({"log": format!("{CLF}\n"), "stream": "stdout", "time": "2026-12-07T14:00:00Z"})
            .to_string();
        assert_eq!(line(f.feed(&docker)), (CLF.to_string(), Some("docker"), false));
        let piece = serde_json::json!({"log": a, "stream": "stdout", "time": "t"}).to_string();
        let last = serde_json::json!({"log": format!("{b}\n"), "stream": "stdout", "time": "t"}).to_string();
        assert_eq!(f.feed(&piece), Framed::Partial("docker"));
        assert_eq!(line(f.feed(&last)).0, CLF);
        assert_eq!(f.feed(r#"{"log":"broken"#), Framed::Bad("bad_docker_json"));
        // journald.
        assert_eq!(line(f.feed(&format!("MESSAGE={CLF}"))), (CLF.to_string(), Some("journal"), false));
        assert_eq!(f.feed("__CURSOR=s=abc;i=1"), Framed::Meta);
        assert_eq!(f.feed("_PID=123"), Framed::Meta);
        let j = serde_json::json!({"__CURSOR": "s=1", "MESSAGE": CLF}).to_string();
        assert_eq!(line(f.feed(&j)).0, CLF);
        let bytes = serde_json::json!({"__CURSOR": "s=1", "MESSAGE": [104, 105, 255]}).to_string();
        assert_eq!(line(f.feed(&bytes)).0, "hi\u{fffd}");
        assert_eq!(f.feed(r#"{"__CURSOR":"s=1"}"#), Framed::Bad("bad_journal_json"));
        // A plain line is untouched and borrowed.
        assert!(matches!(f.feed(CLF), Framed::Line { text: Cow::Borrowed(_), container: None, syslog: false }));
    }

    #[test]
    fn pieces_are_bounded() {
        let mut f = Framing::default();
        let big = "x".repeat(MAX_JOINED / 2 + 1);
        for _ in 0..3 {
            assert_eq!(f.feed(&format!("2026-12-07T14:00:00Z stdout P {big}")), Framed::Partial("cri"));
        }
        assert!(f.pieces[0].buf.is_empty(), "not kept past the bound");
        assert_eq!(f.feed("2026-12-07T14:00:00Z stdout F end"), Framed::Bad("joined_line_too_long"));
        // The next line starts afresh.
        assert_eq!(line(f.feed("2026-12-07T14:00:00Z stdout F next")).0, "next");
        assert_eq!(f.feed("2026-12-07T14:00:00Z stdout P cut"), Framed::Partial("cri"));
        assert_eq!(f.unfinished(), 1);
        assert_eq!(f.unfinished(), 0);
    }
}
