//! HAProxy's `option httplog`: `10.0.1.2:33317 [06/Feb/2009:12:14:14.655]
//! http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0
//! {1wt.eu} {} "GET /index.html HTTP/1.1"` (its syslog header, when it
//! logs to syslog, is taken off before).

use super::text;
use crate::{exchange::Exchange, time::logtime};

pub fn parse(line: &str) -> Result<Exchange, &'static str> {
    let (client, rest) = line.split_once(' ').ok_or("bad_prefix")?;
    let peer = text::client(client).ok_or("bad_address")?;
    let (stamp, rest) = rest.strip_prefix('[').and_then(|r| r.split_once(']')).ok_or("no_timestamp")?;
    let ts = logtime::haproxy(stamp).ok_or("bad_timestamp")?;
    let mut t = rest.split_ascii_whitespace();
    let (_frontend, backend, timers, status) = (t.next(), t.next(), t.next(), t.next());
    if !backend.is_some_and(|b| b.contains('/')) || !timers.is_some_and(|t| t.contains('/')) {
        return Err("no_haproxy_fields");
    }
    let status = text::status(status.ok_or("no_status")?)?;
    // HAProxy writes `"` inside the request line as `#22`, so the first
    // quote opens it and the next one closes it. Without a closing quote
    // the line was cut at HAProxy's log length: the start is kept.
    let open = rest.find('"').ok_or("bad_request_field")?;
    let request = &rest[open + 1..];
    let (request, truncated) = match request.find('"') {
        Some(close) => (&request[..close], false),
        None => (request, true),
    };
    let request = text::unhash(request);
    let mut ex = text::exchange(text::Logged { ts, peer: Some(peer), request: &request, status, ..Default::default() });
    ex.truncated = truncated;
    Ok(ex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::Malformed;

    #[test]
    fn httplog_lines() {
        let e = parse(r#"10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 {1wt.eu} {} "GET /index.html HTTP/1.1""#).unwrap();
        assert_eq!(
            (e.peer.to_string(), &*e.method, e.target(), e.status, e.version, e.truncated),
            ("10.0.1.2".into(), "GET", "/index.html", Some(200), Some(1), false)
        );
        assert_eq!(e.ts, 1_233_922_454_655_000_000);
        // No captures, an aborted request, `#HH` escapes, IPv6.
        let e = parse(r#"[2001:db8::7]:4711 [06/Feb/2009:12:14:14.655] fe~ be/<NOSRV> 0/-1/-1/-1/0 -1 0 - - CR-- 1/1/0/0/0 0/0 "GET /a#20b?q=#22x#22 HTTP/1.1""#).unwrap();
        assert_eq!((e.peer.to_string(), e.target(), e.status), ("2001:db8::7".into(), "/a b?q=\"x\"", None));
        assert_eq!(e.malformed, Some(Malformed::SpaceInTarget));
        let e = parse(r#"10.0.1.2:33317 [06/Feb/2009:12:14:14.655] fe be/<NOSRV> -1/-1/-1/-1/0 400 187 - - PR-- 1/1/0/0/0 0/0 "<BADREQ>""#).unwrap();
        assert_eq!((e.status, e.malformed), (Some(400), Some(Malformed::NotHttp)));
        let e = parse(r#"10.0.1.2:33317 [06/Feb/2009:12:14:14.655] fe be/s1 1/0/0/1/2 200 5 - - ---- 1/1/0/0/0 0/0 "GET /very/long"#).unwrap();
        assert_eq!((e.target(), e.truncated), ("/very/long", true));
    }

    #[test]
    fn broken_lines_say_why() {
        for (line, why) in [
            ("", "bad_prefix"),
            ("nope [06/Feb/2009:12:14:14.655] x", "bad_address"),
            ("10.0.1.2:1 06/Feb/2009:12:14:14.655 x", "no_timestamp"),
            ("10.0.1.2:1 [06/Feb/2009:12:14:14 +0000] fe be/s 1/2/3/4/5 200", "bad_timestamp"),
            ("10.0.1.2:1 [06/Feb/2009:12:14:14.655] fe: SSL handshake failure", "no_haproxy_fields"),
            ("10.0.1.2:1 [06/Feb/2009:12:14:14.655] fe be/s 1/2/3/4/5", "no_status"),
            ("10.0.1.2:1 [06/Feb/2009:12:14:14.655] fe be/s 1/2/3/4/5 2OO 0", "bad_status"),
            (
                "10.0.1.2:1 [06/Feb/2009:12:14:14.655] fe be/s 1/2/3/4/5 200 0 - - ---- 1/1/1/1/0 0/0",
                "bad_request_field",
            ),
        ] {
            assert_eq!(parse(line).err(), Some(why), "{line}");
        }
    }
}
