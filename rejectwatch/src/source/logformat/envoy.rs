//! Envoy's default text access log:
//! `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
//! %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
//! %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%"
//! "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"`,
//! and Istio's, which adds fields between the status and the bytes and
//! after the upstream host (among them `%DOWNSTREAM_REMOTE_ADDRESS%`).

use super::text;
use crate::{exchange::Exchange, time::logtime};

pub fn parse(line: &str) -> Result<Exchange, &'static str> {
    let (stamp, rest) = line.strip_prefix('[').and_then(|r| r.split_once(']')).ok_or("no_timestamp")?;
    let ts = logtime::rfc3339(stamp).ok_or("bad_timestamp")?;
    let (request, mut rest) = text::quoted(rest).ok_or("bad_request_field")?;
    let mut fields = Vec::new();
    while let Some((v, q, next)) = text::field(rest) {
        fields.push((v, q));
        rest = next;
    }
    if !rest.trim().is_empty() {
        return Err("bad_quoted_field");
    }
    let status = match fields.first() {
        Some((s, false)) => text::status(s)?,
        _ => return Err("no_status"),
    };
    // Both layouts end their quoted fields with forwarded-for, user
    // agent, request id, authority and upstream host.
    let quoted: Vec<usize> = (0..fields.len()).filter(|&i| fields[i].1).collect();
    let [xff, ua, _id, authority, upstream] =
        quoted.get(quoted.len().wrapping_sub(5)..).and_then(|q| q.try_into().ok()).ok_or("no_envoy_fields")?;
    // Istio: upstream cluster, upstream local, downstream local and
    // downstream remote address follow. That is Envoy's own view of the
    // client; without it, the right-most forwarded-for hop is the one the
    // nearest proxy (Envoy itself, with `use_remote_address`) added.
    let downstream = fields.get(upstream + 4).filter(|(_, q)| !q).and_then(|(v, _)| text::client(v));
    let forwarded = fields[xff].0.rsplit(',').next().and_then(|h| text::client(h.trim()));
    let peer = downstream.or(forwarded).ok_or("no_client")?;
    Ok(text::exchange(text::Logged {
        ts,
        peer: Some(peer),
        request: &request,
        status,
        host: Some(&fields[authority].0),
        user_agent: Some(&fields[ua].0),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::Malformed;

    #[test]
    fn default_and_istio_lines() {
        let e = parse(r#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#).unwrap();
        assert_eq!(
            (e.peer.to_string(), &*e.method, e.target(), e.status, e.user_agent(), e.host()),
            ("10.0.35.28".into(), "POST", "/api/v1/locations", Some(204), Some("nsq2http"), Some("locations"))
        );
        assert_eq!(e.ts, 1_460_751_420_310_000_000);
        // The nearest hop of a forwarded chain; no response yet is no status.
        let e = parse(r#"[2016-04-15T20:17:00.310Z] "GET /.env HTTP/1.1" 0 DC 0 0 5 - "198.51.100.1, 203.0.113.7" "-" "id" "-" "-""#).unwrap();
        assert_eq!((e.peer.to_string(), e.status, e.user_agent(), e.host()), ("203.0.113.7".into(), None, None, None));
        let istio = r#"[2026-12-07T14:00:00.123Z] "GET /productpage?u=1' or '1 HTTP/1.1" 403 - rbac_access_denied_matched_policy[none] - "-" 0 19 0 - "-" "curl/8.5.0" "5fd2b9a4-a8b1-9f3c-b1de-1b5f0c7e6a11" "productpage:9080" "-" inbound|9080|| - 10.244.0.12:9080 203.0.113.50:51234 outbound_.9080_._.productpage.default.svc.cluster.local default"#;
        let e = parse(istio).unwrap();
        assert_eq!(
            (e.peer.to_string(), e.target(), e.status, e.user_agent(), e.host(), e.malformed),
            (
                "203.0.113.50".into(),
                "/productpage?u=1' or '1",
                Some(403),
                Some("curl/8.5.0"),
                Some("productpage:9080"),
                Some(Malformed::SpaceInTarget)
            )
        );
        // A connection that sent no HTTP.
        let e = parse(r#"[2026-12-07T14:00:00Z] "- - -" 0 NR 0 0 0 - "203.0.113.9" "-" "-" "-" "-""#).unwrap();
        assert_eq!((&*e.method, e.malformed), ("", Some(Malformed::NotHttp)));
    }

    #[test]
    fn broken_lines_say_why() {
        for (line, why) in [
            ("", "no_timestamp"),
            (r#"[yesterday] "GET / HTTP/1.1" 200"#, "bad_timestamp"),
            (r#"[2026-12-07T14:00:00Z] GET / HTTP/1.1 200"#, "bad_request_field"),
            (r#"[2026-12-07T14:00:00Z] "GET / HTTP/1.1" "x""#, "no_status"),
            (r#"[2026-12-07T14:00:00Z] "GET / HTTP/1.1" abc - 0 0 0 - "1.2.3.4" "-" "-" "-" "-""#, "bad_status"),
            (r#"[2026-12-07T14:00:00Z] "GET / HTTP/1.1" 200 - 0 0 0 - "1.2.3.4" "-""#, "no_envoy_fields"),
            (r#"[2026-12-07T14:00:00Z] "GET / HTTP/1.1" 200 - 0 0 0 - "-" "-" "-" "-" "-""#, "no_client"),
            (r#"[2026-12-07T14:00:00Z] "GET / HTTP/1.1" 200 - 0 0 0 - "1.2.3.4" "-" "-" "-" "-"#, "bad_quoted_field"),
        ] {
            assert_eq!(parse(line).err(), Some(why), "{line}");
        }
    }
}
