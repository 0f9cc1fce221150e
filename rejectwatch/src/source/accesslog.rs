//! Access-log lines as exchanges: nginx/Apache common and combined log
//! format (optionally with a leading `vhost[:port]`), and JSON lines with
//! configurable field names (API-gateway logs). A log line is an exchange
//! already joined; it goes through the same enrichment and sinks.

use std::net::IpAddr;

use serde_json::Value;

use super::logtime;
use crate::{
    config::JsonLogFields,
    exchange::{Exchange, RequestText},
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

/// One `"…"` field with backslash escapes; returns (value, rest).
fn quoted(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start().strip_prefix('"')?;
    let b = s.as_bytes();
    // No escape before the closing quote (the usual case): one search, one copy.
    if let Some(q) = memchr::memchr2(b'"', b'\\', b)
        && b[q] == b'"'
    {
        return Some((s[..q].to_string(), &s[q + 1..]));
    }
    let mut out = String::new();
    let mut i = 0;
    let mut start = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => {
                out.push_str(&s[start..i]);
                out.push(b[i + 1] as char);
                i += 2;
                start = i;
            }
            b'"' => {
                out.push_str(&s[start..i]);
                return Some((out, &s[i + 1..]));
            }
            _ => i += 1,
        }
    }
    None
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
    let mut parts = request.splitn(3, ' ');
    let method = crate::exchange::method(parts.next().unwrap_or(""));
    let target = parts.next().unwrap_or("");
    let host = vhost.map(|v| v.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(v, |(h, _)| h));
    let version = parts.next().and_then(|v| v.strip_prefix("HTTP/1.")).and_then(|v| v.parse().ok());
    Ok(Exchange {
        ts,
        peer,
        method,
        request: RequestText::new(target).with_host(host).with_user_agent(user_agent.as_deref()),
        status,
        version,
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
    Ok(Exchange {
        ts,
        peer,
        method: field(obj, &f.method).and_then(string).map_or_else(Default::default, |m| crate::exchange::method(&m)),
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
        assert_eq!((e.status, e.target()), (Some(400), ""));
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
        let e =
            parse_json(r#"{"timestamp":1763805600.25,"source_ip":"::1","path":"/x","status_code":"200"}"#, &f).unwrap();
        assert_eq!((e.ts, e.status), (1_763_805_600_250_000_000, Some(200)));
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
}
