//! Access-log lines as exchanges: nginx/Apache common and combined log
//! format (optionally with a leading `vhost[:port]`), and JSON lines with
//! configurable field names (API-gateway logs). A log line is an exchange
//! already joined; it goes through the same enrichment and sinks.

use std::net::IpAddr;

use serde_json::Value;

use super::logtime;
use crate::{
    config::JsonLogFields,
    exchange::{Exchange, Malformed, RequestText},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Common or combined log format, with or without a vhost prefix.
    Combined,
    /// Synonym of `combined`: the parser takes both.
    Common,
    /// One JSON object per line.
    Json,
}

/// Guesses the format from a line.
pub fn detect(line: &str) -> LogFormat {
    if line.trim_start().starts_with('{') { LogFormat::Json } else { LogFormat::Combined }
}

/// One `"…"` field, its escapes decoded; returns (value, rest).
///
/// nginx (`escape=default`) writes `"`, `\\` and bytes outside printable
/// ASCII as `\xHH`; Apache writes `\"`, `\\`, `\xHH` and C escapes
/// (`\n`, `\t`…). Both are decoded to the bytes the client sent, so that
/// a target reads as it did on the wire (a TLS hello is bytes 0x16 0x03,
/// not the letters `x16x03`). Bytes that are not UTF-8 come out as U+FFFD.
fn quoted(s: &str) -> Option<(String, &str)> {
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
            b'"' => {
                let value = match String::from_utf8(out) {
                    Ok(v) => v,
                    Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                };
                return Some((value, &s[i + 1..]));
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    None
}

fn hex(c: &u8) -> Option<u8> {
    (*c as char).to_digit(16).map(|d| d as u8)
}

/// A method as servers accept it: upper-case letters, with inner hyphens
/// for the WebDAV ones (`VERSION-CONTROL`, RFC 3253). Anything else in a
/// method's place (TLS bytes, `-`, binary) is not an HTTP request.
fn http_method(m: &str) -> bool {
    let b = m.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_uppercase()
        && b[b.len() - 1].is_ascii_uppercase()
        && b.iter().all(|c| c.is_ascii_uppercase() || *c == b'-')
}

/// What a logged request line says.
#[derive(Debug, PartialEq, Eq)]
struct RequestLine<'a> {
    method: &'a str,
    target: &'a str,
    /// The HTTP/1.x minor version.
    version: Option<u8>,
    malformed: Option<Malformed>,
}

/// Splits a logged request line (`%r`, `$request`): the method is the first
/// token and the version the last when it is one, and the target is all
/// in between, spaces and all: `GET /a?id=1' or '1'='1 HTTP/1.1` was sent
/// with that whole target, and cutting it at the first space hides the
/// injection that the server answered.
fn request_line(line: &str) -> RequestLine<'_> {
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

/// Parses a common/combined line.
pub fn parse_combined(line: &str) -> Result<Exchange, &'static str> {
    let open = memchr::memchr(b'[', line.as_bytes()).ok_or("no_timestamp")?;
    let close = open + memchr::memchr(b']', &line.as_bytes()[open..]).ok_or("no_timestamp")?;
    let ts = logtime::clf(&line[open + 1..close]).ok_or("bad_timestamp")?;
    let mut pre = line[..open].split_ascii_whitespace();
    let fields: [Option<&str>; 4] = [pre.next(), pre.next(), pre.next(), pre.next()];
    // The third field is the authenticated user (HTTP Basic): an identity.
    let (vhost, addr, user) = match fields {
        [Some(v), Some(a), Some(_), Some(u)] => (Some(v), a, u),
        [Some(a), Some(_), Some(u), None] => (None, a, u),
        _ => return Err("bad_prefix"),
    };
    let peer: IpAddr = addr.parse().map_err(|_| "bad_address")?;
    let (request, rest) = quoted(&line[close + 1..]).ok_or("bad_request_field")?;
    let mut tail = rest.split_ascii_whitespace();
    let status = match tail.next().ok_or("no_status")? {
        "-" => None,
        s => Some(s.parse::<u16>().ok().filter(|s| (100..=999).contains(s)).ok_or("bad_status")?),
    };
    let _bytes = tail.next();
    // Combined adds referer and user agent.
    let after_bytes = rest.trim_start().splitn(3, char::is_whitespace).nth(2).unwrap_or("");
    let user_agent = quoted(after_bytes).and_then(|(_, r)| quoted(r)).map(|(ua, _)| ua).filter(|ua| ua != "-");
    let r = request_line(&request);
    let host = vhost.map(|v| v.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(v, |(h, _)| h));
    Ok(Exchange {
        ts,
        peer,
        method: crate::exchange::method(r.method),
        request: RequestText::new(r.target).with_host(host).with_user_agent(user_agent.as_deref()),
        status,
        version: r.version,
        malformed: r.malformed,
        raw_identity: (user != "-" && !user.is_empty()).then(|| user.to_string()),
        ..Default::default()
    })
}

fn field<'a>(obj: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses a JSON line with the configured field names.
pub fn parse_json(line: &str, f: &JsonLogFields) -> Result<Exchange, &'static str> {
    let v: Value = serde_json::from_str(line).map_err(|_| "bad_json")?;
    let obj = v.as_object().ok_or("bad_json")?;
    let ts = match field(obj, &f.timestamp).ok_or("no_timestamp")? {
        Value::String(s) => {
            logtime::rfc3339(s).or_else(|| logtime::clf(s)).or_else(|| s.parse().ok().and_then(logtime::epoch))
        }
        Value::Number(n) => n.as_f64().and_then(logtime::epoch),
        _ => None,
    }
    .ok_or("bad_timestamp")?;
    let peer: IpAddr =
        field(obj, &f.source_ip).and_then(Value::as_str).ok_or("no_source_ip")?.parse().map_err(|_| "bad_address")?;
    let status = match field(obj, &f.status_code) {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| (100..=999).contains(s))
                .ok_or("bad_status")?,
        ),
    };
    let given_endpoint = field(obj, &f.endpoint).and_then(string);
    let target = field(obj, &f.path).and_then(string).or_else(|| given_endpoint.clone()).ok_or("no_path")?;
    // A gateway logs the method apart from the path, so only the method
    // can show that the request was not HTTP; the path is the log's own
    // field (often decoded, spaces and all) and is kept.
    let method = field(obj, &f.method).and_then(string);
    let not_http = method.as_deref().is_some_and(|m| !http_method(m));
    Ok(Exchange {
        ts,
        peer,
        method: match &method {
            Some(m) if !not_http => crate::exchange::method(m),
            _ => Default::default(),
        },
        malformed: not_http.then_some(Malformed::NotHttp),
        request: RequestText::new(&target).with_user_agent(field(obj, &f.user_agent).and_then(string).as_deref()),
        status,
        given_endpoint,
        resource_id: field(obj, &f.resource_id).and_then(string),
        raw_identity: field(obj, &f.user_id).and_then(string),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_common_and_vhost() {
        let e = parse_combined(
            r#"203.0.113.9 - alice [22/Nov/2025:10:00:00 +0000] "GET /api/v1/orders/7?x=1 HTTP/1.1" 403 153 "-" "python-requests/2.32.5""#,
        )
        .unwrap();
        assert_eq!(
            (e.peer.to_string(), &*e.method, e.target(), e.status),
            ("203.0.113.9".into(), "GET", "/api/v1/orders/7?x=1", Some(403))
        );
        assert_eq!(e.user_agent(), Some("python-requests/2.32.5"));
        assert_eq!(e.ts, 1_763_805_600_000_000_000);
        assert_eq!(e.raw_identity.as_deref(), Some("alice"));
        assert_eq!(e.version, Some(1));

        let e = parse_combined(r#"2001:db8::5 - - [22/Nov/2025:10:00:00 +0000] "POST /login HTTP/1.0" 401 0"#).unwrap();
        assert_eq!((e.status, e.user_agent(), &*e.method), (Some(401), None, "POST"));

        let e = parse_combined(
            r#"api.example.com:443 198.51.100.2 - - [22/Nov/2025:10:00:00 +0000] "GET /.env HTTP/1.1" 404 0 "-" "-""#,
        )
        .unwrap();
        assert_eq!(
            (e.host(), e.peer.to_string(), e.user_agent()),
            (Some("api.example.com"), "198.51.100.2".into(), None)
        );

        // Escaped quotes, and what scanners put in a request line.
        let e = parse_combined(
            r#"198.51.100.3 - - [22/Nov/2025:10:00:00 +0000] "GET /q?a=\"x\" HTTP/1.1" 400 0 "-" "Mozilla \"quoted\"""#,
        )
        .unwrap();
        assert_eq!(e.target(), "/q?a=\"x\"");
        assert_eq!(e.user_agent(), Some("Mozilla \"quoted\""));
        let e =
            parse_combined(r#"198.51.100.3 - - [22/Nov/2025:10:00:00 +0000] "\x16\x03\x01" 400 157 "-" "-""#).unwrap();
        assert_eq!((e.status, &*e.method, e.target()), (Some(400), "", ""));
        assert_eq!(e.malformed, Some(Malformed::NotHttp));
    }

    /// The request field of a line that is otherwise fine.
    fn logged(request: &str) -> Exchange {
        let line = format!(r#"198.51.100.3 - - [22/Nov/2025:10:00:00 +0000] "{request}" 400 0 "-" "-""#);
        parse_combined(&line).unwrap_or_else(|e| panic!("{request}: {e}"))
    }

    #[test]
    fn the_whole_target_is_kept() {
        let e = logged("GET /a?id=1' or '1'='1 HTTP/1.1");
        assert_eq!((&*e.method, e.target(), e.version), ("GET", "/a?id=1' or '1'='1", Some(1)));
        assert_eq!(e.malformed, Some(Malformed::SpaceInTarget));
        let e = logged("POST /search?q=a  b HTTP/1.0");
        assert_eq!((e.target(), e.version, e.malformed), ("/search?q=a  b", Some(0), Some(Malformed::SpaceInTarget)));
        // A well-formed line is not flagged.
        let e = logged("GET /a?id=1 HTTP/1.1");
        assert_eq!((&*e.method, e.target(), e.version, e.malformed), ("GET", "/a?id=1", Some(1), None));
    }

    #[test]
    fn escapes_are_decoded_to_bytes() {
        // nginx: `"` and `\` as \xHH.
        let e = logged(r"GET /q?a=\x22x\x22&p=C:\x5Cwin HTTP/1.1");
        assert_eq!((e.target(), e.malformed), ("/q?a=\"x\"&p=C:\\win", None));
        // Apache: C escapes and \" \\.
        let e = logged(r#"GET /a\tb\\c\"d HTTP/1.1"#);
        assert_eq!(e.target(), "/a\tb\\c\"d");
        let e = logged(r"GET /x\ny HTTP/1.1");
        assert_eq!(e.target(), "/x\ny");
        // UTF-8 bytes escaped one by one come back as the character.
        let e = logged(r"GET /caf\xC3\xA9 HTTP/1.1");
        assert_eq!(e.target(), "/café");
        // Bytes that are not UTF-8: replaced, not dropped or panicked on.
        let e = logged(r"GET /\xff\xfe HTTP/1.1");
        assert_eq!(e.target(), "/\u{fffd}\u{fffd}");
        // Escapes no server writes are kept as they are.
        for (raw, want) in [(r"/a\qb", r"/a\qb"), (r"/a\xzz", r"/a\xzz"), (r"/a\x4", r"/a\x4")] {
            assert_eq!(logged(&format!("GET {raw} HTTP/1.1")).target(), want, "{raw}");
        }
        // The user agent is decoded the same way.
        let line = r#"198.51.100.3 - - [22/Nov/2025:10:00:00 +0000] "GET / HTTP/1.1" 200 0 "-" "a\x22b\x5C""#;
        assert_eq!(parse_combined(line).unwrap().user_agent(), Some("a\"b\\"));
    }

    #[test]
    fn request_lines_that_are_not_http_are_flagged() {
        for (request, method, target, version, why) in [
            // TLS and binary junk: no method named `x16x03`.
            (r"\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03", "", "", None, Some(Malformed::NotHttp)),
            (r"\x00\x00\x00\x00", "", "", None, Some(Malformed::NotHttp)),
            ("-", "", "", None, Some(Malformed::NotHttp)),
            ("", "", "", None, Some(Malformed::NotHttp)),
            ("get / HTTP/1.1", "", "", None, Some(Malformed::NotHttp)),
            ("SSH-2.0-OpenSSH_9.6", "", "", None, Some(Malformed::NotHttp)),
            (r"GET\x00 / HTTP/1.1", "", "", None, Some(Malformed::NotHttp)),
            // A method alone, or no target.
            ("GET", "GET", "", None, Some(Malformed::BadRequestLine)),
            ("GET ", "GET", "", None, Some(Malformed::BadRequestLine)),
            ("GET HTTP/1.1", "GET", "", Some(1), Some(Malformed::BadRequestLine)),
            // No version.
            ("GET /x", "GET", "/x", None, Some(Malformed::Http09)),
            ("GET /x y", "GET", "/x y", None, Some(Malformed::NoVersion)),
            // Versions.
            ("GET /x HTTP/9.9", "GET", "/x", None, Some(Malformed::BadVersion)),
            ("GET /x HTTP/1.2", "GET", "/x", None, Some(Malformed::BadVersion)),
            ("GET /x http/1.1", "GET", "/x", None, Some(Malformed::BadVersion)),
            ("GET /x HTTP/", "GET", "/x", None, Some(Malformed::BadVersion)),
            ("GET /x HTTP/2.0", "GET", "/x", None, None),
            ("GET /x HTTP/3.0", "GET", "/x", None, None),
            ("GET /x HTTP/1.0", "GET", "/x", Some(0), None),
            // WebDAV methods are HTTP.
            ("VERSION-CONTROL /x HTTP/1.1", "VERSION-CONTROL", "/x", Some(1), None),
            ("PROPFIND /x HTTP/1.1", "PROPFIND", "/x", Some(1), None),
        ] {
            let e = logged(request);
            assert_eq!((&*e.method, e.target(), e.version, e.malformed), (method, target, version, why), "{request:?}");
        }
        assert!(!http_method("-GET") && !http_method("GET-") && !http_method("G3T"));
    }

    #[test]
    fn bad_combined_lines_say_why() {
        for (line, why) in [
            ("", "no_timestamp"),
            ("garbage without brackets", "no_timestamp"),
            (r#"1.2.3.4 - - [99/Nov/2025:10:00:00 +0000] "GET / HTTP/1.1" 200 1"#, "bad_timestamp"),
            (r#"not-an-ip - - [22/Nov/2025:10:00:00 +0000] "GET / HTTP/1.1" 200 1"#, "bad_address"),
            (r#"1.2.3.4 - - [22/Nov/2025:10:00:00 +0000] GET / 200 1"#, "bad_request_field"),
            (r#"1.2.3.4 - - [22/Nov/2025:10:00:00 +0000] "GET / HTTP/1.1" abc 1"#, "bad_status"),
            (r#"1.2.3.4 - - [22/Nov/2025:10:00:00 +0000] "GET / HTTP/1.1""#, "no_status"),
        ] {
            assert_eq!(parse_combined(line).err(), Some(why), "{line}");
        }
    }

    #[test]
    fn json_lines() {
        let f = JsonLogFields::default();
        let e = parse_json(
            r#"{"timestamp":"2025-11-22T10:00:00Z","source_ip":"203.0.113.4","user_id":"u-1","method":"GET","endpoint":"/api/v1/export/{id}","path":"/api/v1/export/9","resource_id":"9","status_code":429,"user_agent":""}"#,
            &f,
        )
        .unwrap();
        assert_eq!(
            (e.status, e.given_endpoint.as_deref(), e.resource_id.as_deref(), e.raw_identity.as_deref()),
            (Some(429), Some("/api/v1/export/{id}"), Some("9"), Some("u-1"))
        );
        assert_eq!((&*e.method, e.malformed), ("GET", None));
        let e =
            parse_json(r#"{"timestamp":1763805600.25,"source_ip":"::1","path":"/x","status_code":"200"}"#, &f).unwrap();
        assert_eq!((e.ts, e.status), (1_763_805_600_250_000_000, Some(200)));
        // No method field: nothing to judge.
        assert_eq!((&*e.method, e.malformed), ("", None));
        let e = parse_json(r#"{"timestamp":1,"source_ip":"::1","method":"\u0016\u0003","path":"/a b"}"#, &f).unwrap();
        assert_eq!((&*e.method, e.target(), e.malformed), ("", "/a b", Some(Malformed::NotHttp)));
        let e = parse_json(r#"{"timestamp":1,"source_ip":"::1","method":"PATCH","path":"/a b"}"#, &f).unwrap();
        assert_eq!((&*e.method, e.target(), e.malformed), ("PATCH", "/a b", None));
        let renamed = JsonLogFields { source_ip: "ip".into(), ..Default::default() };
        assert!(parse_json(r#"{"timestamp":1,"ip":"1.1.1.1","path":"/"}"#, &renamed).is_ok());
        for (line, why) in [
            ("{", "bad_json"),
            ("[1]", "bad_json"),
            (r#"{"source_ip":"1.1.1.1","path":"/"}"#, "no_timestamp"),
            (r#"{"timestamp":"yesterday","source_ip":"1.1.1.1","path":"/"}"#, "bad_timestamp"),
            (r#"{"timestamp":1,"source_ip":"nope","path":"/"}"#, "bad_address"),
            (r#"{"timestamp":1,"source_ip":"1.1.1.1"}"#, "no_path"),
            (r#"{"timestamp":1,"source_ip":"1.1.1.1","path":"/","status_code":70000}"#, "bad_status"),
        ] {
            assert_eq!(parse_json(line, &f).err(), Some(why), "{line}");
        }
    }

    #[test]
    fn epochs_past_u64_nanoseconds_are_bad_timestamps() {
        // Found by the accesslog fuzz target: the conversion overflowed.
        let f = JsonLogFields::default();
        for ts in [r#""4444444444444444444444444""#, "1e15", "4.4e98", "99999999999"] {
            let line = format!(r#"{{"timestamp":{ts},"source_ip":"203.0.113.4"}}"#);
            assert_eq!(parse_json(&line, &f).err(), Some("bad_timestamp"), "{line}");
        }
    }
}
