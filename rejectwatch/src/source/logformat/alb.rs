//! AWS Application Load Balancer access logs: space-separated, some
//! fields quoted: `type time elb client:port target:port
//! request_processing_time target_processing_time response_processing_time
//! elb_status_code target_status_code received_bytes sent_bytes "request"
//! "user_agent" ssl_cipher ssl_protocol target_group_arn "trace_id" …
//! request_creation_time …`. The request is logged in absolute form
//! (`GET http://www.example.com:80/ HTTP/1.1`).

use std::borrow::Cow;

use super::text;
use crate::{exchange::Exchange, time::logtime};

const TYPES: [&str; 6] = ["http", "https", "h2", "grpcs", "ws", "wss"];

pub fn parse(line: &str) -> Result<Exchange, &'static str> {
    let mut f: Vec<(Cow<'_, str>, bool)> = Vec::with_capacity(30);
    let mut rest = line;
    while let Some((v, q, next)) = text::field(rest) {
        f.push((v, q));
        rest = next;
    }
    if !TYPES.contains(&&*f.first().ok_or("not_alb")?.0) {
        return Err("not_alb");
    }
    if !rest.trim().is_empty() {
        return Err("bad_quoted_field");
    }
    if f.len() < 14 || !f[12].1 || !f[13].1 {
        return Err("no_alb_fields");
    }
    // The request's arrival when logged (field 22), else the response's.
    let ts = f
        .get(21)
        .and_then(|(t, _)| logtime::rfc3339(t))
        .or_else(|| logtime::rfc3339(&f[1].0))
        .ok_or("bad_timestamp")?;
    let peer = text::client(&f[3].0).ok_or("bad_address")?;
    let status = text::status(&f[8].0)?;
    let mut ex = text::exchange(text::Logged {
        ts,
        peer: Some(peer),
        request: &f[12].0,
        status,
        user_agent: Some(&f[13].0),
        ..Default::default()
    });
    // The balancer writes every target absolute: the origin form is what
    // the client asked for, the authority its host.
    let (host, target) = text::absolute(ex.target());
    if let Some(host) = host {
        let ua = ex.user_agent().map(str::to_string);
        ex.request = crate::exchange::RequestText::new(target)
            .with_host(Some(host).filter(|h| !h.is_empty()))
            .with_user_agent(ua.as_deref());
    }
    Ok(ex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::Malformed;

    const LINE: &str = r#"http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2018-07-02T22:22:48.364000Z "forward" "-" "-" "10.0.0.1:80" "200" "-" "-""#;

    #[test]
    fn documented_lines() {
        let e = parse(LINE).unwrap();
        assert_eq!(
            (e.peer.to_string(), &*e.method, e.target(), e.host(), e.status, e.user_agent()),
            ("192.168.131.39".into(), "GET", "/", Some("www.example.com"), Some(200), Some("curl/7.46.0"))
        );
        assert_eq!(e.ts, 1_530_570_168_364_000_000, "the request's creation time");
        let h2 = r#"h2 2018-07-02T22:23:00.186641Z app/lb/50dc 10.0.1.252:48160 10.0.0.66:9000 0.000 0.002 0.000 404 404 5 257 "GET https://10.0.2.105:773/.git/config?x=1 HTTP/2.0" "python-requests/2.32.5" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:x "Root=1-58" "-" "-" 1 2018-07-02T22:22:48.364000Z "forward" "-" "-" "10.0.0.66:9000" "404" "-" "-""#;
        let e = parse(h2).unwrap();
        assert_eq!((e.target(), e.host(), e.status), ("/.git/config?x=1", Some("10.0.2.105"), Some(404)));
        // What the balancer could not parse: no method, no target.
        let bad = LINE
            .replace("GET http://www.example.com:80/ HTTP/1.1", "- http://www.example.com:80- ")
            .replace(" 200 200 ", " 400 - ");
        let e = parse(&bad).unwrap();
        assert_eq!((e.status, e.malformed), (Some(400), Some(Malformed::NotHttp)));
        // Only the fields up to the user agent: the response's time.
        let short = r#"https 2018-07-02T22:23:00.186641Z app/lb/1 [2001:db8::9]:2817 - -1 -1 -1 460 - 34 0 "GET https://example.com:443/a HTTP/1.1" "-""#;
        let e = parse(short).unwrap();
        assert_eq!(
            (e.peer.to_string(), e.status, e.user_agent(), e.ts),
            ("2001:db8::9".into(), Some(460), None, 1_530_570_180_186_641_000)
        );
    }

    #[test]
    fn broken_lines_say_why() {
        for (line, why) in [
            ("", "not_alb"),
            (r#"tcp 2018-07-02T22:23:00Z net/x"#, "not_alb"),
            (r#"http 2018-07-02T22:23:00Z app/x 1.2.3.4:1 - 0 0 0 200"#, "no_alb_fields"),
            (
                &LINE.replace("2018-07-02T22:22:48.364000Z", "x").replace("2018-07-02T22:23:00.186641Z", "y"),
                "bad_timestamp",
            ),
            (&LINE.replace("192.168.131.39:2817", "-"), "bad_address"),
            (&LINE.replace(" 200 200 ", " OK 200 "), "bad_status"),
            (&LINE[..LINE.find("\"curl").unwrap() + 5], "bad_quoted_field"),
        ] {
            assert_eq!(parse(line).err(), Some(why), "{line}");
        }
    }
}
