//! JSON-lines access logs: field names (or dotted paths, `request.remote_ip`,
//! `request.headers.User-Agent[0]`) from the config, and the presets of the
//! proxies that log JSON: Traefik, Caddy and Envoy (Istio's keys).

use std::{net::IpAddr, sync::OnceLock};

use serde::Deserialize;
use serde_json::Value;

use super::text;
use crate::{
    exchange::{Exchange, Malformed, RequestText},
    time::logtime,
};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Where a field is: the name as written, tried first as one key (names
/// with dots exist), then as a path.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Path {
    raw: String,
    segs: Vec<Seg>,
}

impl Path {
    fn parse(s: &str) -> Result<Self, String> {
        let mut segs = Vec::new();
        for part in s.split('.') {
            let (name, mut idx) = part.find('[').map_or((part, ""), |i| part.split_at(i));
            if name.is_empty() {
                return Err(format!("{s:?}: empty name in the path (write a.b or a.b[0])"));
            }
            segs.push(Seg::Key(name.to_string()));
            while !idx.is_empty() {
                let (n, rest) = idx
                    .strip_prefix('[')
                    .and_then(|r| r.split_once(']'))
                    .ok_or_else(|| format!("{s:?}: an index is written [0]"))?;
                segs.push(Seg::Index(n.parse().map_err(|_| format!("{s:?}: {n:?} is not an index"))?));
                idx = rest;
            }
        }
        Ok(Self { raw: s.to_string(), segs })
    }

    fn get<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        let v = root.get(&self.raw).or_else(|| {
            self.segs.iter().try_fold(root, |v, seg| match seg {
                Seg::Key(k) => v.get(k),
                Seg::Index(i) => v.get(i),
            })
        })?;
        // Header maps hold lists (Caddy: `"User-Agent": ["curl/8"]`).
        let v = match v {
            Value::Array(a) => a.first()?,
            v => v,
        };
        (!v.is_null()).then_some(v)
    }
}

/// Field names of JSON-lines access logs (API gateways): a name, or a
/// dotted path into nested objects (`request.remote_ip`,
/// `request.headers.User-Agent[0]`); empty: not read.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonLogFields {
    pub source_ip: String,
    pub user_id: String,
    pub method: String,
    pub endpoint: String,
    pub path: String,
    pub resource_id: String,
    pub status_code: String,
    pub user_agent: String,
    pub timestamp: String,
    /// The requested host; none by default (a log's `host` is often the
    /// server's own name).
    pub host: String,
}

impl Default for JsonLogFields {
    fn default() -> Self {
        let s = |v: &str| v.to_string();
        Self {
            source_ip: s("source_ip"),
            user_id: s("user_id"),
            method: s("method"),
            endpoint: s("endpoint"),
            path: s("path"),
            resource_id: s("resource_id"),
            status_code: s("status_code"),
            user_agent: s("user_agent"),
            timestamp: s("timestamp"),
            host: String::new(),
        }
    }
}

/// The fields of one JSON layout, each a list of places to look, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsonFields {
    source_ip: Vec<Path>,
    user_id: Vec<Path>,
    method: Vec<Path>,
    endpoint: Vec<Path>,
    path: Vec<Path>,
    resource_id: Vec<Path>,
    status_code: Vec<Path>,
    user_agent: Vec<Path>,
    timestamp: Vec<Path>,
    host: Vec<Path>,
}

impl JsonFields {
    /// The configured fields; the error names the `json_log` key.
    pub fn new(f: &JsonLogFields) -> Result<Self, String> {
        let one = |key: &str, v: &str| -> Result<Vec<Path>, String> {
            if v.is_empty() {
                Ok(Vec::new())
            } else {
                Path::parse(v).map(|p| vec![p]).map_err(|e| format!("json_log.{key}: {e}"))
            }
        };
        Ok(Self {
            source_ip: one("source_ip", &f.source_ip)?,
            user_id: one("user_id", &f.user_id)?,
            method: one("method", &f.method)?,
            endpoint: one("endpoint", &f.endpoint)?,
            path: one("path", &f.path)?,
            resource_id: one("resource_id", &f.resource_id)?,
            status_code: one("status_code", &f.status_code)?,
            user_agent: one("user_agent", &f.user_agent)?,
            timestamp: one("timestamp", &f.timestamp)?,
            host: one("host", &f.host)?,
        })
    }

    fn preset(f: [&[&str]; 10]) -> Self {
        let p = |names: &[&str]| names.iter().map(|n| Path::parse(n).expect("preset path")).collect();
        Self {
            source_ip: p(f[0]),
            user_id: p(f[1]),
            method: p(f[2]),
            endpoint: p(f[3]),
            path: p(f[4]),
            resource_id: p(f[5]),
            status_code: p(f[6]),
            user_agent: p(f[7]),
            timestamp: p(f[8]),
            host: p(f[9]),
        }
    }
}

/// Traefik's JSON access log (`accessLog.format=json`); the user agent is
/// there when its headers are kept (`fields.headers.names.User-Agent=keep`).
pub fn traefik() -> &'static JsonFields {
    static F: OnceLock<JsonFields> = OnceLock::new();
    F.get_or_init(|| {
        JsonFields::preset([
            &["ClientHost", "ClientAddr"],
            &["ClientUsername"],
            &["RequestMethod"],
            &[],
            &["RequestPath"],
            &[],
            &["DownstreamStatus"],
            &["request_User-Agent"],
            &["StartUTC", "StartLocal", "time"],
            &["RequestHost"],
        ])
    })
}

/// Caddy's access log; `client_ip` (Caddy 2.7) is the client its
/// trusted proxies named, `remote_ip` the peer.
pub fn caddy() -> &'static JsonFields {
    static F: OnceLock<JsonFields> = OnceLock::new();
    F.get_or_init(|| {
        JsonFields::preset([
            &["request.client_ip", "request.remote_ip"],
            &["user_id"],
            &["request.method"],
            &[],
            &["request.uri"],
            &[],
            &["status"],
            &["request.headers.User-Agent[0]"],
            &["ts"],
            &["request.host"],
        ])
    })
}

/// Envoy has no default JSON layout; these are the keys Istio's JSON
/// encoding writes, which most Envoy JSON logs copy.
pub fn envoy() -> &'static JsonFields {
    static F: OnceLock<JsonFields> = OnceLock::new();
    F.get_or_init(|| {
        JsonFields::preset([
            &["downstream_remote_address"],
            &[],
            &["method"],
            &[],
            &["path"],
            &[],
            &["response_code"],
            &["user_agent"],
            &["start_time"],
            &["authority"],
        ])
    })
}

fn first<'a>(root: &'a Value, paths: &[Path]) -> Option<&'a Value> {
    paths.iter().find_map(|p| p.get(root))
}

fn string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses a JSON line with the given fields.
pub fn parse_json(line: &str, f: &JsonFields) -> Result<Exchange, &'static str> {
    let v: Value = serde_json::from_str(line).map_err(|_| "bad_json")?;
    if !v.is_object() {
        return Err("bad_json");
    }
    let ts = match first(&v, &f.timestamp).ok_or("no_timestamp")? {
        Value::String(s) => {
            logtime::rfc3339(s).or_else(|| logtime::clf(s)).or_else(|| s.parse().ok().and_then(logtime::epoch))
        }
        Value::Number(n) => n.as_f64().and_then(logtime::epoch),
        _ => None,
    }
    .ok_or("bad_timestamp")?;
    let peer: IpAddr =
        text::client(first(&v, &f.source_ip).and_then(Value::as_str).ok_or("no_source_ip")?).ok_or("bad_address")?;
    let status = match first(&v, &f.status_code) {
        None => None,
        Some(Value::Number(n)) if n.as_u64() == Some(0) => None,
        Some(s) => Some(
            s.as_u64()
                .or_else(|| s.as_str().and_then(|s| s.parse().ok()))
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| (100..=999).contains(s))
                .ok_or("bad_status")?,
        ),
    };
    let given_endpoint = first(&v, &f.endpoint).and_then(string);
    let target = first(&v, &f.path).and_then(string).or_else(|| given_endpoint.clone()).ok_or("no_path")?;
    // A gateway logs the method apart from the path, so only the method
    // can show that the request was not HTTP; the path is the log's own
    // field (often decoded, spaces and all) and is kept.
    let method = first(&v, &f.method).and_then(string);
    let not_http = method.as_deref().is_some_and(|m| !text::http_method(m));
    let host = first(&v, &f.host).and_then(string);
    Ok(Exchange {
        ts,
        peer,
        method: match &method {
            Some(m) if !not_http => crate::exchange::method(m),
            _ => Default::default(),
        },
        malformed: not_http.then_some(Malformed::NotHttp),
        request: RequestText::new(&target)
            .with_host(host.as_deref())
            .with_user_agent(first(&v, &f.user_agent).and_then(string).as_deref()),
        status,
        given_endpoint,
        resource_id: first(&v, &f.resource_id).and_then(string),
        raw_identity: first(&v, &f.user_id).and_then(string).filter(|u| u != "-"),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines() {
        let f = JsonFields::new(&JsonLogFields::default()).unwrap();
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
        let renamed = JsonFields::new(&JsonLogFields { source_ip: "ip".into(), ..Default::default() }).unwrap();
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
    fn nested_paths_and_ports() {
        let f = JsonFields::new(&JsonLogFields {
            source_ip: "request.remote_ip".into(),
            user_agent: "request.headers.User-Agent[0]".into(),
            path: "req.path".into(),
            host: "request.host".into(),
            ..Default::default()
        })
        .unwrap();
        let e = parse_json(
            r#"{"timestamp":1,"request":{"remote_ip":"[2001:db8::1]:443","host":"api.example.com","headers":{"User-Agent":["curl/8.5.0","x"]}},"req.path":"/dotted/key"}"#,
            &f,
        )
        .unwrap();
        assert_eq!(
            (e.peer.to_string(), e.target(), e.user_agent(), e.host()),
            ("2001:db8::1".into(), "/dotted/key", Some("curl/8.5.0"), Some("api.example.com"))
        );
        // A list where one value is wanted: its first.
        let f = JsonFields::new(&JsonLogFields { user_agent: "ua".into(), ..Default::default() }).unwrap();
        let e = parse_json(r#"{"timestamp":1,"source_ip":"1.2.3.4:5","path":"/","ua":["a","b"]}"#, &f).unwrap();
        assert_eq!((e.peer.to_string(), e.user_agent()), ("1.2.3.4".into(), Some("a")));
        for (path, why) in [
            ("a..b", "empty name"),
            ("a[x]", "\"x\" is not an index"),
            ("a[0", "an index is written [0]"),
            ("[0]", "empty name"),
        ] {
            let e = JsonFields::new(&JsonLogFields { user_agent: path.into(), ..Default::default() }).unwrap_err();
            assert!(e.starts_with("json_log.user_agent: ") && e.contains(why), "{path}: {e}");
        }
    }

    #[test]
    fn presets() {
        let traefik = r#"{"ClientAddr":"203.0.113.9:50000","ClientHost":"203.0.113.9","ClientPort":"50000","ClientUsername":"-","DownstreamContentSize":19,"DownstreamStatus":404,"Duration":105237,"OriginStatus":404,"RequestAddr":"app.example.com","RequestHost":"app.example.com","RequestMethod":"GET","RequestPath":"/.env","RequestPort":"-","RequestProtocol":"HTTP/1.1","RequestScheme":"http","RouterName":"app@docker","StartLocal":"2026-12-07T14:00:00.123456789Z","StartUTC":"2026-12-07T14:00:00.123456789Z","entryPointName":"web","level":"info","msg":"","request_User-Agent":"curl/8.5.0","time":"2026-12-07T14:00:00Z"}"#;
        let e = parse_json(traefik, super::traefik()).unwrap();
        assert_eq!(
            (e.peer.to_string(), &*e.method, e.target(), e.status, e.user_agent(), e.host(), e.raw_identity.as_deref()),
            ("203.0.113.9".into(), "GET", "/.env", Some(404), Some("curl/8.5.0"), Some("app.example.com"), None)
        );
        assert_eq!(e.ts % 1_000_000_000, 123_456_789);
        let caddy = r#"{"level":"info","ts":1796652000.5241024,"logger":"http.log.access.log0","msg":"handled request","request":{"remote_ip":"10.0.0.2","remote_port":"41342","client_ip":"198.51.100.7","proto":"HTTP/2.0","method":"POST","host":"shop.example.com","uri":"/wp-login.php?x=1","headers":{"User-Agent":["Mozilla/5.0 zgrab/0.x"],"Accept":["*/*"]}},"bytes_read":0,"user_id":"","duration":0.0009,"size":0,"status":403,"resp_headers":{}}"#;
        let e = parse_json(caddy, super::caddy()).unwrap();
        assert_eq!(
            (e.peer.to_string(), &*e.method, e.target(), e.status, e.user_agent(), e.host(), e.raw_identity.as_deref()),
            (
                "198.51.100.7".into(),
                "POST",
                "/wp-login.php?x=1",
                Some(403),
                Some("Mozilla/5.0 zgrab/0.x"),
                Some("shop.example.com"),
                None
            )
        );
        // Before Caddy 2.7 there is no client_ip.
        let old = caddy.replace(r#""client_ip":"198.51.100.7","#, "");
        assert_eq!(parse_json(&old, super::caddy()).unwrap().peer.to_string(), "10.0.0.2");
        let envoy = r#"{"start_time":"2026-12-07T14:00:00.310Z","method":"GET","path":"/admin","protocol":"HTTP/1.1","response_code":0,"response_flags":"UC","bytes_received":0,"bytes_sent":0,"duration":3,"x_forwarded_for":"-","user_agent":"masscan/1.3","request_id":"x","authority":"10.0.0.5","upstream_host":"-","downstream_remote_address":"192.0.2.44:61000"}"#;
        let e = parse_json(envoy, super::envoy()).unwrap();
        assert_eq!(
            (e.peer.to_string(), e.target(), e.status, e.user_agent(), e.host()),
            ("192.0.2.44".into(), "/admin", None, Some("masscan/1.3"), Some("10.0.0.5"))
        );
        // A preset does not read another's lines.
        assert_eq!(parse_json(caddy, super::traefik()).err(), Some("no_timestamp"));
        assert_eq!(parse_json(traefik, super::caddy()).err(), Some("no_timestamp"));
        assert_eq!(parse_json(traefik, super::envoy()).err(), Some("no_timestamp"));
        // Broken preset lines.
        assert_eq!(parse_json(&traefik.replace("203.0.113.9", "nope"), super::traefik()).err(), Some("bad_address"));
        assert_eq!(
            parse_json(&caddy.replace(r#""uri":"/wp-login.php?x=1","#, ""), super::caddy()).err(),
            Some("no_path")
        );
        assert_eq!(
            parse_json(&envoy.replace(r#""response_code":0"#, r#""response_code":"x""#), super::envoy()).err(),
            Some("bad_status")
        );
        assert_eq!(parse_json(&caddy[..40], super::caddy()).err(), Some("bad_json"));
    }
}
