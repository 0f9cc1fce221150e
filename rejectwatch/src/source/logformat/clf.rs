//! nginx/Apache common and combined log format (optionally with a leading
//! `vhost[:port]`), and the two presets that are combined with fields
//! after the user agent: Kubernetes ingress-nginx and Traefik's CLF.

use std::net::IpAddr;

use super::text;
use crate::{exchange::Exchange, time::logtime};

/// Parses a common/combined line; returns what follows the user agent.
fn parts(line: &str) -> Result<(Exchange, &str), &'static str> {
    // The first `[dd/`: a client may be a bracketed IPv6 address.
    let b = line.as_bytes();
    let open = memchr::memchr_iter(b'[', b)
        .find(|&i| b.get(i + 3) == Some(&b'/'))
        .or_else(|| memchr::memchr(b'[', b))
        .ok_or("no_timestamp")?;
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
    let peer: IpAddr = text::client(addr).ok_or("bad_address")?;
    let (request, rest) = text::quoted(&line[close + 1..]).ok_or("bad_request_field")?;
    let mut tail = rest.split_ascii_whitespace();
    let status = text::status(tail.next().ok_or("no_status")?)?;
    let _bytes = tail.next();
    // Combined adds referer and user agent.
    let after_bytes = rest.trim_start().splitn(3, char::is_whitespace).nth(2).unwrap_or("");
    let (user_agent, after) = match text::quoted(after_bytes).and_then(|(_, r)| text::quoted(r)) {
        Some((ua, after)) => (Some(ua), after),
        None => (None, ""),
    };
    let host = vhost.map(|v| v.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(v, |(h, _)| h));
    let ex = text::exchange(text::Logged {
        ts,
        peer: Some(peer),
        request: &request,
        status,
        host,
        user_agent: user_agent.as_deref(),
        user: Some(user),
    });
    Ok((ex, after))
}

/// Parses a common/combined line.
pub fn parse_combined(line: &str) -> Result<Exchange, &'static str> {
    parts(line).map(|(e, _)| e)
}

fn number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit() || c == b'.')
}

/// ingress-nginx: combined, then `request_length request_time
/// [proxy_upstream_name] [proxy_alternative_upstream_name] upstream_addr
/// upstream_response_length upstream_response_time upstream_status req_id`.
pub fn parse_ingress_nginx(line: &str) -> Result<Exchange, &'static str> {
    let (ex, after) = parts(line)?;
    let t: Vec<&str> = after.split_ascii_whitespace().collect();
    // Upstream fields hold `, `-separated lists after a retry, so only the
    // fixed head is checked.
    let fits = t.len() >= 7
        && number(t[0])
        && number(t[1])
        && t[2].starts_with('[')
        && t[2].ends_with(']')
        && t[3].starts_with('[')
        && t[3].ends_with(']');
    if !fits {
        return Err("no_ingress_nginx_fields");
    }
    Ok(ex)
}

/// Traefik's CLF: combined, then `requests "router" "server URL" 12ms`.
pub fn parse_traefik_clf(line: &str) -> Result<Exchange, &'static str> {
    let (ex, after) = parts(line)?;
    let fits = (|| {
        let (count, rest) = after.trim_start().split_once(' ')?;
        let (_router, rest) = text::quoted(rest)?;
        let (_server, rest) = text::quoted(rest)?;
        let ms = rest.trim().strip_suffix("ms")?;
        (number(count) && number(ms)).then_some(())
    })();
    fits.map(|()| ex).ok_or("no_traefik_fields")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::Malformed;

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
        assert!(!text::http_method("-GET") && !text::http_method("GET-") && !text::http_method("G3T"));
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
    fn clients_with_ports() {
        let e = parse_combined(r#"203.0.113.9:51234 - - [22/Nov/2025:10:00:00 +0000] "GET / HTTP/1.1" 200 1"#).unwrap();
        assert_eq!(e.peer.to_string(), "203.0.113.9");
        let e = parse_combined(r#"[2001:db8::5]:443 - - [22/Nov/2025:10:00:00 +0000] "GET / HTTP/1.1" 200 1"#).unwrap();
        assert_eq!(e.peer.to_string(), "2001:db8::5");
        let e = parse_combined(r#"web:443 [2001:db8::5]:443 - - [22/Nov/2025:10:00:00 +0000] "GET / HTTP/1.1" 200 1"#)
            .unwrap();
        assert_eq!((e.peer.to_string(), e.host()), ("2001:db8::5".into(), Some("web")));
    }

    const INGRESS: &str = r#"192.168.65.3 - - [07/Dec/2026:14:00:00 +0000] "GET /api/../../etc/passwd HTTP/1.1" 400 150 "-" "Nuclei - Open-source project" 221 0.001 [default-web-80] [] 10.244.0.5:8080 150 0.001 400 6b0c3a8f2d1e4b5a9c7d8e0f1a2b3c4d"#;

    #[test]
    fn ingress_nginx_lines() {
        let e = parse_ingress_nginx(INGRESS).unwrap();
        assert_eq!(
            (e.peer.to_string(), &*e.method, e.target(), e.status, e.user_agent()),
            ("192.168.65.3".into(), "GET", "/api/../../etc/passwd", Some(400), Some("Nuclei - Open-source project"))
        );
        // No upstream answered; retries list several.
        let retried = INGRESS
            .replace("10.244.0.5:8080 150 0.001 400", "10.244.0.5:8080, 10.244.0.6:8080 0, 150 0.002, 0.001 502, 400");
        assert!(parse_ingress_nginx(&retried).is_ok());
        let none = INGRESS.replace("10.244.0.5:8080 150 0.001 400", "- - - -");
        assert!(parse_ingress_nginx(&none).is_ok());
        for (line, why) in [
            (INGRESS.split(" 221 ").next().unwrap().to_string(), "no_ingress_nginx_fields"),
            (INGRESS.replace("[default-web-80]", "default-web-80"), "no_ingress_nginx_fields"),
            (INGRESS.replace("07/Dec", "7/Dec"), "bad_timestamp"),
        ] {
            assert_eq!(parse_ingress_nginx(&line).err(), Some(why), "{line}");
        }
    }

    const TRAEFIK: &str = r#"203.0.113.9 - - [07/Dec/2026:14:00:00 +0000] "GET /.git/config HTTP/1.1" 404 19 "-" "Go-http-client/1.1" 42 "app@docker" "http://172.18.0.3:80" 3ms"#;

    #[test]
    fn traefik_clf_lines() {
        let e = parse_traefik_clf(TRAEFIK).unwrap();
        assert_eq!(
            (e.peer.to_string(), e.target(), e.status, e.user_agent()),
            ("203.0.113.9".into(), "/.git/config", Some(404), Some("Go-http-client/1.1"))
        );
        // No router matched: Traefik writes `-` for it and the server.
        assert!(parse_traefik_clf(&TRAEFIK.replace(r#""app@docker" "http://172.18.0.3:80""#, r#""-" "-""#)).is_ok());
        for (line, why) in [
            (TRAEFIK.replace(" 3ms", " 3"), "no_traefik_fields"),
            (TRAEFIK.replace(r#" 42 "app@docker""#, r#" 42 app@docker"#), "no_traefik_fields"),
            (TRAEFIK.replace("404 19", "four 19"), "bad_status"),
        ] {
            assert_eq!(parse_traefik_clf(&line).err(), Some(why), "{line}");
        }
        assert_eq!(parse_traefik_clf(INGRESS).err(), Some("no_traefik_fields"));
    }
}
