//! Pieces every text format shares: quoted fields with their escapes
//! decoded, request lines split the way a server received them, client
//! addresses with or without a port, and status fields.

use std::{borrow::Cow, net::IpAddr};

use crate::exchange::{Exchange, Malformed, RequestText};

/// One `"…"` field, its escapes decoded; returns (value, rest).
///
/// nginx (`escape=default`) writes `"`, `\\` and bytes outside printable
/// ASCII as `\xHH`; Apache writes `\"`, `\\`, `\xHH` and C escapes
/// (`\n`, `\t`…). Both are decoded to the bytes the client sent, so that
/// a target reads as it did on the wire (a TLS hello is bytes 0x16 0x03,
/// not the letters `x16x03`). Bytes that are not UTF-8 come out as U+FFFD.
pub fn quoted(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start().strip_prefix('"')?;
    let b = s.as_bytes();
    // No escape before the closing quote (the usual case): one search, one copy.
    if let Some(q) = memchr::memchr2(b'"', b'\\', b)
        && b[q] == b'"'
    {
        return Some((s[..q].to_string(), &s[q + 1..]));
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => {
                let (byte, used) = match b[i + 1] {
                    b'x' | b'X' => match (b.get(i + 2).and_then(hex), b.get(i + 3).and_then(hex)) {
                        (Some(h), Some(l)) => (Some(h << 4 | l), 4),
                        // Not an escape nginx or Apache writes: kept as it is.
                        _ => (None, 1),
                    },
                    b'"' => (Some(b'"'), 2),
                    b'\\' => (Some(b'\\'), 2),
                    b'n' => (Some(b'\n'), 2),
                    b't' => (Some(b'\t'), 2),
                    b'r' => (Some(b'\r'), 2),
                    b'b' => (Some(0x08), 2),
                    b'v' => (Some(0x0b), 2),
                    b'f' => (Some(0x0c), 2),
                    _ => (None, 1),
                };
                match byte {
                    Some(c) => out.push(c),
                    None => out.push(b'\\'),
                }
                i += used;
            }
            b'"' => return Some((utf8(out), &s[i + 1..])),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    None
}

fn utf8(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(v) => v,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn hex(c: &u8) -> Option<u8> {
    (*c as char).to_digit(16).map(|d| d as u8)
}

/// HAProxy's `#HH` escapes (it writes `"`, `#`, spaces in headers and
/// bytes outside printable ASCII so) decoded to the bytes sent.
pub fn unhash(s: &str) -> Cow<'_, str> {
    if !s.contains('#') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'#'
            && let (Some(h), Some(l)) = (b.get(i + 1).and_then(hex), b.get(i + 2).and_then(hex))
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Cow::Owned(utf8(out))
}

/// The next field of a space-separated line whose fields may be quoted
/// (`"…"`, escapes decoded): returns (value, was it quoted, rest).
pub fn field(s: &str) -> Option<(Cow<'_, str>, bool, &str)> {
    let s = s.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    if s.starts_with('"') {
        let (v, rest) = quoted(s)?;
        return Some((Cow::Owned(v), true, rest));
    }
    let end = memchr::memchr(b' ', s.as_bytes()).unwrap_or(s.len());
    Some((Cow::Borrowed(&s[..end]), false, &s[end..]))
}

/// A method as servers accept it: upper-case letters, with inner hyphens
/// for the WebDAV ones (`VERSION-CONTROL`, RFC 3253). Anything else in a
/// method's place (TLS bytes, `-`, binary) is not an HTTP request.
pub fn http_method(m: &str) -> bool {
    let b = m.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_uppercase()
        && b[b.len() - 1].is_ascii_uppercase()
        && b.iter().all(|c| c.is_ascii_uppercase() || *c == b'-')
}

/// What a logged request line says.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    pub target: &'a str,
    /// The HTTP/1.x minor version.
    pub version: Option<u8>,
    pub malformed: Option<Malformed>,
}

/// Splits a logged request line (`%r`, `$request`): the method is the first
/// token and the version the last when it is one, and the target is all
/// in between, spaces and all: `GET /a?id=1' or '1'='1 HTTP/1.1` was sent
/// with that whole target, and cutting it at the first space hides the
/// injection that the server answered.
pub fn request_line(line: &str) -> RequestLine<'_> {
    let not_http = RequestLine { method: "", target: "", version: None, malformed: Some(Malformed::NotHttp) };
    let (method, rest) = line.split_once(' ').unwrap_or((line, ""));
    if !http_method(method) {
        return not_http;
    }
    if rest.is_empty() {
        return RequestLine { method, target: "", version: None, malformed: Some(Malformed::BadRequestLine) };
    }
    let (target, last) = rest.rsplit_once(' ').unwrap_or(("", rest));
    let looks_like_version = last.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("HTTP/"));
    if !looks_like_version {
        // `GET /x` is an HTTP/0.9 simple request; with more tokens the
        // version is simply missing.
        let why = if rest.contains(' ') { Malformed::NoVersion } else { Malformed::Http09 };
        return RequestLine { method, target: rest, version: None, malformed: Some(why) };
    }
    // nginx logs `HTTP/2.0` and `HTTP/3.0` for h2 and h3 clients.
    let (version, known) = match last {
        "HTTP/1.0" => (Some(0), true),
        "HTTP/1.1" => (Some(1), true),
        "HTTP/2.0" | "HTTP/2" | "HTTP/3.0" | "HTTP/3" => (None, true),
        _ => (None, false),
    };
    let malformed = if !known {
        Some(Malformed::BadVersion)
    } else if target.is_empty() {
        Some(Malformed::BadRequestLine)
    } else if target.contains(' ') {
        Some(Malformed::SpaceInTarget)
    } else {
        None
    };
    RequestLine { method, target, version, malformed }
}

/// A client field: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]:443` (proxies log the peer's port beside it).
pub fn client(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, port) = rest.split_once(']')?;
        return (port.is_empty() || port.strip_prefix(':').is_some_and(is_port)).then(|| ip.parse().ok()).flatten();
    }
    // One colon only: a bare IPv6 address with a port is ambiguous, and
    // is taken whole above when it parses.
    let (ip, port) = s.rsplit_once(':').filter(|(ip, _)| !ip.contains(':'))?;
    is_port(port).then(|| ip.parse().ok()).flatten()
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit())
}

/// A status field: `-`, `0` and HAProxy's `-1` mean no response was sent.
pub fn status(s: &str) -> Result<Option<u16>, &'static str> {
    match s {
        "-" | "0" | "-1" => Ok(None),
        s => s.parse::<u16>().ok().filter(|s| (100..=999).contains(s)).map(Some).ok_or("bad_status"),
    }
}

/// An absolute-form target (`http://example.com:80/a?b`) as its host
/// (without the port) and origin form (`/a?b`); others are left alone.
pub fn absolute(target: &str) -> (Option<&str>, &str) {
    let Some(rest) = target.strip_prefix("http://").or_else(|| target.strip_prefix("https://")) else {
        return (None, target);
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(authority, |(h, _)| h),
        None => authority.rsplit_once(':').filter(|(_, p)| is_port(p)).map_or(authority, |(h, _)| h),
    };
    (Some(host), if path.is_empty() { "/" } else { path })
}

/// What a log line names, before it becomes an exchange.
#[derive(Default)]
pub struct Logged<'a> {
    pub ts: crate::time::Nanos,
    pub peer: Option<IpAddr>,
    /// The request line as logged, escapes decoded.
    pub request: &'a str,
    pub status: Option<u16>,
    pub host: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub user: Option<&'a str>,
}

/// The exchange of a logged request line; `-` and empty values are none.
pub fn exchange(l: Logged<'_>) -> Exchange {
    fn some(v: Option<&str>) -> Option<&str> {
        v.filter(|v| !v.is_empty() && *v != "-")
    }
    let r = request_line(l.request);
    Exchange {
        ts: l.ts,
        peer: l.peer.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        method: crate::exchange::method(r.method),
        request: RequestText::new(r.target).with_host(some(l.host)).with_user_agent(some(l.user_agent)),
        status: l.status,
        version: r.version,
        malformed: r.malformed,
        raw_identity: some(l.user).map(str::to_string),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_with_and_without_ports() {
        for (s, want) in [
            ("203.0.113.9", Some("203.0.113.9")),
            ("203.0.113.9:5555", Some("203.0.113.9")),
            ("2001:db8::5", Some("2001:db8::5")),
            ("[2001:db8::5]:443", Some("2001:db8::5")),
            ("[2001:db8::5]", Some("2001:db8::5")),
            ("[2001:db8::5]:", None),
            ("[2001:db8::5]x", None),
            ("203.0.113.9:", None),
            ("203.0.113.9:http", None),
            ("203.0.113.9:123456", None),
            ("host.example:80", None),
            ("-", None),
            ("", None),
        ] {
            assert_eq!(client(s).map(|ip| ip.to_string()).as_deref(), want, "{s}");
        }
    }

    #[test]
    fn fields_statuses_and_hash_escapes() {
        let (v, q, rest) = field(r#"  "a \"b\"" c"#).unwrap();
        assert_eq!((&*v, q, rest), ("a \"b\"", true, " c"));
        let (v, q, rest) = field(rest).unwrap();
        assert_eq!((&*v, q, rest), ("c", false, ""));
        assert!(field("   ").is_none());
        assert!(field(r#""unterminated"#).is_none());
        assert_eq!(status("-"), Ok(None));
        assert_eq!(status("-1"), Ok(None));
        assert_eq!(status("404"), Ok(Some(404)));
        assert_eq!(status("99"), Err("bad_status"));
        assert_eq!(status("x"), Err("bad_status"));
        assert_eq!(unhash("/a#20b#22#zz#4"), "/a b\"#zz#4");
        assert_eq!(unhash("/plain"), "/plain");
        assert_eq!(unhash("#ff"), "\u{fffd}");
        assert_eq!(absolute("http://example.com:80/a?b"), (Some("example.com"), "/a?b"));
        assert_eq!(absolute("https://[2001:db8::1]:443"), (Some("2001:db8::1"), "/"));
        assert_eq!(absolute("https://example.com?x"), (Some("example.com"), "?x"));
        assert_eq!(absolute("/plain"), (None, "/plain"));
    }
}
