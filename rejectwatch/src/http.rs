//! HTTP/1.x head parsing over captured bytes with httparse.
//!
//! Captures are partial by nature (snap lengths, lost segments), so every
//! function here takes whatever bytes there are, never panics, and reports
//! how far it got: a complete head, a head cut short (parsed as far as it
//! goes), or bytes that are not HTTP at all.

use std::mem::MaybeUninit;

use rejectwatch_common::{PEEK_LEN, looks_like_request, looks_like_response};

use crate::{
    ascii,
    exchange::{HeaderName, Malformed, Method, RequestText, header_name, method},
};

/// Most header lines we read from one head; the rest are ignored (and the
/// head flagged truncated), so a hostile head cannot make us allocate more.
pub const MAX_HEADERS: usize = 96;

/// A parsed request head. Values are decoded lossily: they are attacker
/// bytes and only ever become JSON strings, never labels.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RequestHead {
    pub method: Method,
    pub version: Option<u8>,
    /// Target, host, user agent, and the header values (one per name) for
    /// the enrichers (client attribution, identity). The values are never
    /// written out: they carry credentials.
    pub text: RequestText,
    pub header_names: Vec<HeaderName>,
    /// Bytes of body that follow the head (Content-Length), when known.
    pub body_len: BodyLen,
    pub truncated: bool,
    /// The request line is not HTTP/1.x as written ([`malformed_request`]).
    pub malformed: Option<Malformed>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BodyLen {
    #[default]
    None,
    Length(u64),
    /// Chunked or otherwise delimited: where the next message starts is
    /// unknown from the head alone.
    Unknown,
}

/// What a response head tells the joiner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub body_len: BodyLen,
}

/// Outcome of parsing the start of a buffer as a request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// A whole head of `len` bytes.
    Complete(T, usize),
    /// The buffer ends inside the head.
    Partial,
    /// Not an HTTP/1.x head.
    Invalid(&'static str),
}

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    // Nearly every head is ASCII, which a word-at-a-time check confirms in
    // a fraction of what UTF-8 validation costs (a sixth of our share of
    // parsing a head went to validation).
    if b.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return std::borrow::Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(b) });
    }
    // Checking first is much faster than the lossy decoder on valid text.
    match std::str::from_utf8(b) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// `Content-Length: 1*DIGIT` (RFC 9110 8.6), optional whitespace around;
/// anything else leaves the body's end unknown. Digits by hand: the
/// generic integer parse was most of reading a one-header response.
fn content_length(v: &[u8]) -> BodyLen {
    let d = v.trim_ascii();
    // Twenty digits can overflow a u64; nineteen cannot.
    if d.is_empty() || d.len() > 19 || !d.iter().all(u8::is_ascii_digit) {
        return BodyLen::Unknown;
    }
    BodyLen::Length(d.iter().fold(0, |n, b| n * 10 + u64::from(b - b'0')))
}

fn body_len_of(headers: &[httparse::Header<'_>]) -> BodyLen {
    let mut scan = BodyScan::default();
    headers.iter().for_each(|h| scan.header(h));
    scan.len()
}

/// The body length, one header at a time: a Transfer-Encoding makes it
/// unknown whatever else is said; otherwise the last Content-Length counts.
#[derive(Default)]
struct BodyScan {
    length: BodyLen,
    transfer_encoding: bool,
}

impl BodyScan {
    fn header(&mut self, h: &httparse::Header<'_>) {
        // By length first: most names are neither.
        match h.name.len() {
            17 if ascii::eq_ignore_case(h.name, "transfer-encoding") => self.transfer_encoding = true,
            14 if ascii::eq_ignore_case(h.name, "content-length") => self.length = content_length(h.value),
            _ => {}
        }
    }

    fn len(&self) -> BodyLen {
        if self.transfer_encoding { BodyLen::Unknown } else { self.length }
    }
}

fn request_from(req: &httparse::Request<'_, '_>, truncated: bool) -> RequestHead {
    let headers = req.headers.iter().take_while(|h| !h.name.is_empty());
    let (n, bytes) = headers.clone().fold((0, 0), |(n, b), h| (n + 1, b + h.value.len() + 1));
    // Sized at creation: reserving on an empty Vec took the growth path.
    let mut head = RequestHead {
        method: req.method.map(method).unwrap_or_default(),
        version: req.version,
        truncated,
        text: RequestText::with_capacity(req.path.unwrap_or_default(), bytes),
        header_names: Vec::with_capacity(n),
        ..Default::default()
    };
    let (mut host, mut ua) = (false, false);
    let mut body = BodyScan::default();
    for h in headers {
        let span = head.text.push_value(&lossy(h.value));
        if !host && ascii::eq_ignore_case(h.name, "host") {
            head.text.set_host_span(span);
            host = true;
        } else if !ua && ascii::eq_ignore_case(h.name, "user-agent") {
            head.text.set_user_agent_span(span);
            ua = true;
        } else {
            // Here rather than in a second walk of the headers.
            body.header(h);
        }
        head.header_names.push(header_name(h.name));
    }
    head.body_len = body.len();
    head
}

fn parser_config() -> httparse::ParserConfig {
    let mut cfg = httparse::ParserConfig::default();
    // Real clients and scanners send these; we observe, we do not police.
    cfg.allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .ignore_invalid_headers_in_requests(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_responses(true);
    cfg
}

/// Parses one request head at the start of `buf`.
pub fn parse_request(buf: &[u8]) -> Parsed<RequestHead> {
    match parse_request_once(buf) {
        Ok(Some((h, n))) => Parsed::Complete(h, n),
        Ok(None) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => match cut_at_headers(buf, MAX_HEADERS) {
            // Parsed once more, not recursively: a cut that still had too
            // many headers was cut again to itself, forever (a head with
            // bare-LF lines overflowed the stack; fuzzing).
            Some(cut) => match parse_request_once(&cut) {
                Ok(Some((mut h, _))) => {
                    h.truncated = true;
                    // The real head is longer than what we parsed; its end is
                    // wherever the blank line is.
                    let end = find_head_end(buf).unwrap_or(buf.len());
                    Parsed::Complete(h, end)
                }
                Ok(None) => Parsed::Partial,
                Err(httparse::Error::TooManyHeaders) => Parsed::Invalid("too_many_headers"),
                Err(_) => Parsed::Invalid("bad_request_head"),
            },
            None => Parsed::Invalid("too_many_headers"),
        },
        Err(_) => Parsed::Invalid("bad_request_head"),
    }
}

/// One httparse pass: the head and its length, `None` when partial.
fn parse_request_once(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, httparse::Error> {
    // Uninitialised: filling 96 empty headers (3 KiB) cost more than
    // parsing a typical head of six.
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match parser_config().parse_request_with_uninit_headers(&mut req, buf, &mut headers)? {
        httparse::Status::Complete(n) => Ok(Some((request_from(&req, false), n))),
        httparse::Status::Partial => Ok(None),
    }
}

/// Parses a head that is known to be cut short (snap length, lost
/// continuation): everything up to the last complete header line is kept.
pub fn parse_truncated_request(buf: &[u8]) -> Option<RequestHead> {
    if let Some(pos) = buf.windows(2).rposition(|w| w == b"\r\n") {
        let mut patched = Vec::with_capacity(pos + 4);
        patched.extend_from_slice(&buf[..pos + 2]);
        patched.extend_from_slice(b"\r\n");
        if let Parsed::Complete(mut head, _) = parse_request(&patched) {
            head.truncated = true;
            return Some(head);
        }
    }
    // Not even the request line is whole: take its method and target.
    let line = buf.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or(buf);
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let verb = parts.next()?;
    if verb.is_empty() || !verb.iter().all(u8::is_ascii_uppercase) {
        return None;
    }
    let target = parts.next().unwrap_or(b"");
    Some(RequestHead {
        method: method(&lossy(verb)),
        text: RequestText::new(&lossy(target)),
        truncated: true,
        ..Default::default()
    })
}

/// What a server was sent that does not parse as an HTTP/1.x request head:
/// the method and target as far as the first line tells them, the header
/// lines after it when there are any, and what is wrong. Never fails: any
/// bytes are something the server was sent, and it usually answers them.
pub fn malformed_request(buf: &[u8]) -> RequestHead {
    let line_end = memchr::memchr(b'\n', buf);
    let line = &buf[..line_end.unwrap_or(buf.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let verb = words.next().unwrap_or_default();
    if verb.is_empty() || verb.len() > 20 || !verb.iter().all(u8::is_ascii_uppercase) {
        return RequestHead { malformed: Some(Malformed::NotHttp), truncated: true, ..Default::default() };
    }
    let rest: Vec<&[u8]> = words.collect();
    let (target, version, why) = match rest.as_slice() {
        [] => (&[][..], None, Malformed::BadRequestLine),
        [.., last] if last.starts_with(b"HTTP/") => {
            let middle = &rest[..rest.len() - 1];
            let version = match &last[5..] {
                b"1.0" => Some(0),
                b"1.1" => Some(1),
                _ => None,
            };
            let why = match (middle.len(), version) {
                (0, _) => Malformed::BadRequestLine,
                (1, None) => Malformed::BadVersion,
                (1, Some(_)) => Malformed::BadRequestLine,
                _ => Malformed::SpaceInTarget,
            };
            // The target as sent, raw spaces and all: from its first byte
            // to the end of its last word.
            let target = match (middle.first(), middle.last()) {
                (Some(a), Some(b)) => span(line, a, b),
                _ => &[][..],
            };
            (target, version, why)
        }
        words => {
            // No version at all: HTTP/0.9 if nothing follows the line.
            let after = line_end.map_or(&[][..], |e| &buf[e + 1..]);
            let why = if after.trim_ascii().is_empty() { Malformed::Http09 } else { Malformed::NoVersion };
            let target = span(line, words[0], words[words.len() - 1]);
            (target, None, why)
        }
    };
    // Header lines under a broken request line still name the client.
    let mut head = line_end
        .map(|e| {
            let mut patched = b"GET / HTTP/1.1\r\n".to_vec();
            patched.extend_from_slice(&buf[e + 1..]);
            match parse_request(&patched) {
                Parsed::Complete(h, _) => h,
                _ => parse_truncated_request(&patched).unwrap_or_default(),
            }
        })
        .unwrap_or_default();
    let names = std::mem::take(&mut head.header_names);
    let (host, ua) = (head.text.host().map(str::to_owned), head.text.user_agent().map(str::to_owned));
    RequestHead {
        method: method(&lossy(verb)),
        version,
        text: RequestText::new(&lossy(target)).with_host(host.as_deref()).with_user_agent(ua.as_deref()),
        header_names: names,
        body_len: BodyLen::Unknown,
        truncated: true,
        malformed: Some(why),
    }
}

/// The bytes of `line` from the start of word `a` to the end of word `b`
/// (both slices of it).
fn span<'a>(line: &'a [u8], a: &[u8], b: &[u8]) -> &'a [u8] {
    let base = line.as_ptr() as usize;
    let start = a.as_ptr() as usize - base;
    let end = b.as_ptr() as usize - base + b.len();
    &line[start..end]
}

/// Parses one response head at the start of `buf`. A head cut short still
/// yields its status when the status line is whole.
pub fn parse_response(buf: &[u8]) -> Parsed<ResponseHead> {
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    match parser_config().parse_response_with_uninit_headers(&mut resp, buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => match resp.code {
            Some(status) => Parsed::Complete(ResponseHead { status, body_len: body_len_of(resp.headers) }, n),
            None => Parsed::Invalid("bad_status_line"),
        },
        Ok(httparse::Status::Partial) => match status_of_line(buf) {
            Some(status) => Parsed::Complete(ResponseHead { status, body_len: BodyLen::Unknown }, buf.len()),
            None => Parsed::Partial,
        },
        Err(_) => match status_of_line(buf) {
            // A malformed header line after a good status line: the status
            // is what we need, and where the body ends is unknowable.
            Some(status) => Parsed::Complete(
                ResponseHead { status, body_len: BodyLen::Unknown },
                find_head_end(buf).unwrap_or(buf.len()),
            ),
            None => Parsed::Invalid("bad_status_line"),
        },
    }
}

/// The status of a status line at the start of `buf` (`HTTP/1.x NNN`).
fn status_of_line(buf: &[u8]) -> Option<u16> {
    if buf.len() < 12 || !looks_like_response(&peek_of(buf)) {
        return None;
    }
    std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()
}

/// Offset just past the first blank line (`\r\n\r\n`), if any.
pub fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// The head limited to its first `max` header lines, re-terminated. Lines
/// end at LF, with or without CR before it, as httparse reads them.
fn cut_at_headers(buf: &[u8], max: usize) -> Option<Vec<u8>> {
    let mut pos = 0;
    // The request line, then `max` header lines.
    for _ in 0..=max {
        pos += memchr::memchr(b'\n', &buf[pos..])? + 1;
    }
    let mut out = buf[..pos].to_vec();
    out.extend_from_slice(b"\r\n");
    Some(out)
}

fn peek_of(buf: &[u8]) -> [u8; PEEK_LEN] {
    let mut peek = [0u8; PEEK_LEN];
    let n = buf.len().min(PEEK_LEN);
    peek[..n].copy_from_slice(&buf[..n]);
    peek
}

/// Does `buf` start with something that could be a request line? Used to
/// find pipelined requests after a complete one.
pub fn starts_request(buf: &[u8]) -> bool {
    buf.len() >= 4 && looks_like_request(&peek_of(buf))
        || (buf.len() < PEEK_LEN && buf.len() >= 4 && buf[..3].iter().all(u8::is_ascii_uppercase))
}

/// Could `buf` be the start of a request line, as far as it goes? (What
/// the kernel asks of a segment too short to judge alone.)
pub fn could_start_request(buf: &[u8]) -> bool {
    let n = buf.len().min(PEEK_LEN);
    rejectwatch_common::could_start_request(&peek_of(buf), n)
}

/// Does `buf` hold a whole method and the start of a target? A short
/// start that never got that far was not shown to be a request.
pub fn has_request_method(buf: &[u8]) -> bool {
    could_start_request(buf) && buf.iter().take(14).skip(3).any(|&b| b == b' ') && buf.len() > 4
}

/// Does `buf` start with a status line?
pub fn starts_response(buf: &[u8]) -> bool {
    status_of_line(buf).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_a_body_ends_from_either_head() {
        let cases: &[(&str, BodyLen)] = &[
            ("", BodyLen::None),
            ("Content-Length: 5\r\n", BodyLen::Length(5)),
            ("content-length: 7\r\n", BodyLen::Length(7)),
            ("CONTENT-LENGTH: 9\r\n", BodyLen::Length(9)),
            ("Content-Length: 5\r\nContent-Length: 6\r\n", BodyLen::Length(6)),
            ("Content-Length: x\r\n", BodyLen::Unknown),
            ("Content-Length: x\r\nContent-Length: 6\r\n", BodyLen::Length(6)),
            ("Transfer-Encoding: chunked\r\n", BodyLen::Unknown),
            ("transfer-encoding: chunked\r\nContent-Length: 5\r\n", BodyLen::Unknown),
            ("Content-Length: 5\r\nTRANSFER-ENCODING: gzip\r\n", BodyLen::Unknown),
            ("Content-Lengths: 5\r\n", BodyLen::None),
        ];
        for (headers, want) in cases {
            let req = format!("POST /a HTTP/1.1\r\nHost: h\r\n{headers}User-Agent: u\r\n\r\n");
            let Parsed::Complete(head, _) = parse_request(req.as_bytes()) else { panic!("{req:?} did not parse") };
            assert_eq!(head.body_len, *want, "request with {headers:?}");
            let resp = format!("HTTP/1.1 200 OK\r\n{headers}\r\n");
            let Parsed::Complete(head, _) = parse_response(resp.as_bytes()) else { panic!("{resp:?} did not parse") };
            assert_eq!(head.body_len, *want, "response with {headers:?}");
        }
    }

    #[test]
    fn content_length_is_digits_or_unknown() {
        let cases: &[(&[u8], BodyLen)] = &[
            (b"0", BodyLen::Length(0)),
            (b" 1234\t", BodyLen::Length(1234)),
            (b"9999999999999999999", BodyLen::Length(9_999_999_999_999_999_999)),
            (b"99999999999999999999", BodyLen::Unknown),
            (b"", BodyLen::Unknown),
            (b"  ", BodyLen::Unknown),
            (b"+5", BodyLen::Unknown),
            (b"-1", BodyLen::Unknown),
            (b"5, 5", BodyLen::Unknown),
            (b"1e3", BodyLen::Unknown),
            (b"\xff", BodyLen::Unknown),
        ];
        for (v, want) in cases {
            assert_eq!(content_length(v), *want, "{:?}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn complete_request() {
        let raw = b"GET /api/v1/orders/7?x=1 HTTP/1.1\r\nHost: api.example\r\nUser-Agent: python-requests/2.32.5\r\nAccept: */*\r\n\r\nrest";
        let Parsed::Complete(h, n) = parse_request(raw) else { panic!("not complete") };
        assert_eq!(n, raw.len() - 4);
        assert_eq!(h.method, "GET");
        assert_eq!(h.text.target(), "/api/v1/orders/7?x=1");
        assert_eq!(h.text.host(), Some("api.example"));
        assert_eq!(h.text.user_agent(), Some("python-requests/2.32.5"));
        assert_eq!(h.header_names, ["Host", "User-Agent", "Accept"]);
        assert_eq!(h.version, Some(1));
        assert!(!h.truncated);
    }

    #[test]
    fn header_values_beyond_ascii_are_kept_or_replaced() {
        // Valid UTF-8 past the ASCII fast path is kept; invalid bytes
        // become U+FFFD rather than failing the head.
        let raw =
            [&b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: "[..], "caf\u{e9}/1".as_bytes(), b"\r\nX-B: \xff\xfe\r\n\r\n"]
                .concat();
        let Parsed::Complete(h, _) = parse_request(&raw) else { panic!("not complete: {raw:?}") };
        assert_eq!(h.text.user_agent(), Some("caf\u{e9}/1"));
        assert_eq!(h.text.value(2), Some("\u{fffd}\u{fffd}"), "{:?}", h.text);
    }

    #[test]
    fn values_pair_with_their_names() {
        // A line httparse skips (a space in its name) is no header and
        // takes no value's place; more values than are indexed, an empty
        // one, the user agent before the host, and a value past ASCII.
        let mut lines: Vec<(String, String)> = (0..20).map(|i| (format!("X-H{i}"), format!("v{i}"))).collect();
        lines[3].1.clear();
        lines.insert(1, ("User-Agent".into(), "curl/8.5.0".into()));
        lines.insert(7, ("Host".into(), "api".into()));
        for extra in ["", "X-Z: \u{e9}\r\n"] {
            let mut raw = String::from("GET /t HTTP/1.1\r\n");
            for (i, (n, v)) in lines.iter().enumerate() {
                raw.push_str(&format!("{n}: {v}\r\n"));
                if i == 4 {
                    raw.push_str("Bad Name: skipped\r\n");
                }
            }
            raw.push_str(extra);
            raw.push_str("\r\n");
            let Parsed::Complete(mut h, _) = parse_request(raw.as_bytes()) else { panic!("not complete: {raw}") };
            let mut want = lines.clone();
            if !extra.is_empty() {
                want.push(("X-Z".into(), "\u{e9}".into()));
            }
            let got: Vec<(String, String)> =
                h.header_names.iter().map(|n| n.to_string()).zip(h.text.values().map(str::to_string)).collect();
            assert_eq!(got, want, "{raw}");
            for (i, (_, v)) in want.iter().enumerate() {
                assert_eq!(h.text.value(i), Some(v.as_str()), "value {i} of {raw}");
            }
            assert_eq!((h.text.host(), h.text.user_agent()), (Some("api"), Some("curl/8.5.0")));
            h.text.forget_values();
            assert_eq!((h.text.target(), h.text.host(), h.text.user_agent()), ("/t", Some("api"), Some("curl/8.5.0")));
            assert_eq!(h.text.values().count(), 0);
        }
    }

    #[test]
    fn partial_and_truncated_request() {
        let raw = b"GET /x HTTP/1.1\r\nHost: a\r\nUser-Agent: curl/8";
        assert_eq!(parse_request(raw), Parsed::Partial);
        let h = parse_truncated_request(raw).expect("truncated head");
        assert_eq!(h.method, "GET");
        assert_eq!(h.text.host(), Some("a"));
        assert_eq!(h.text.user_agent(), None);
        assert_eq!(h.header_names, ["Host"]);
        assert!(h.truncated);

        let h = parse_truncated_request(b"POST /very/long/path/that/got/cu").expect("line only");
        assert_eq!((&*h.method, h.text.target()), ("POST", "/very/long/path/that/got/cu"));
    }

    #[test]
    fn broken_input_never_panics() {
        let cases: [&[u8]; 9] = [
            b"",
            b"\r\n\r\n",
            b"GET",
            b"\x00\xff\xfe garbage \r\n\r\n",
            b"GET / HTTP/9.9\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost\r\n\r\n",
            b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"\xc3\x28 /\xff HTTP/1.1\r\n\r\n",
        ];
        for c in cases {
            let _ = parse_request(c);
            let _ = parse_truncated_request(c);
            let _ = parse_response(c);
            let _ = starts_request(c);
            let _ = malformed_request(c);
        }
        assert!(matches!(parse_request(b"\x00\xff\xfe garbage \r\n\r\n"), Parsed::Invalid(_)));
    }

    #[test]
    fn too_many_headers_are_cut_not_rejected() {
        let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..200 {
            raw.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        let Parsed::Complete(h, n) = parse_request(&raw) else { panic!("cut head") };
        assert_eq!(n, raw.len());
        assert_eq!(h.header_names.len(), MAX_HEADERS);
        assert!(h.truncated);
    }

    #[test]
    fn too_many_headers_on_bare_lf_lines_are_cut_once() {
        // Found by the join and http_head fuzz targets: lines ending in a
        // bare LF were not counted, so the cut still had too many headers
        // and was cut again, to itself, until the stack overflowed.
        for sep in ["\n", "\r\n"] {
            for crlf_every in [1, 3, 1000] {
                let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
                for i in 0..300 {
                    let end = if i % crlf_every == 0 { "\r\n" } else { sep };
                    raw.extend_from_slice(format!("X-H{i}: v{end}").as_bytes());
                }
                raw.extend_from_slice(b"\r\n");
                let Parsed::Complete(h, _) = parse_request(&raw) else { panic!("cut head ({sep:?}, {crlf_every})") };
                assert_eq!(h.header_names.len(), MAX_HEADERS);
                assert!(h.truncated);
                assert!(parse_truncated_request(&raw[..raw.len() - 40]).is_some());
            }
        }
    }

    #[test]
    fn responses() {
        let raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(
            parse_response(raw),
            Parsed::Complete(ResponseHead { status: 404, body_len: BodyLen::Length(5) }, raw.len() - 5)
        );
        let cut = b"HTTP/1.1 401 Unauthorized\r\nWWW-Auth";
        assert!(matches!(parse_response(cut), Parsed::Complete(ResponseHead { status: 401, .. }, _)));
        assert!(matches!(parse_response(b"HTTP/1.1 2 OK\r\n\r\n"), Parsed::Invalid(_)));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            parse_response(chunked),
            Parsed::Complete(ResponseHead { body_len: BodyLen::Unknown, .. }, _)
        ));
    }
}
