//! The joined exchange: one request and the status that answered it, with
//! what the enrichers add. This is the project's `http.log` line
//! (`--exchanges`). Fields an enricher could not fill are left out.

use std::{borrow::Cow, net::IpAddr, sync::Arc};

use serde::{Serialize, Serializer};

use crate::record::Nanos;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exchange {
    /// When the request head was seen.
    #[serde(serialize_with = "rfc3339")]
    pub ts: Nanos,
    /// The socket source address of the request.
    pub peer: IpAddr,
    pub method: Method,
    pub target: String,
    pub host: Option<String>,
    pub user_agent: Option<String>,
    /// The response status, or null when none was captured.
    pub status: Option<u16>,
    pub header_names: Vec<HeaderName>,
    /// The head was cut short (snap length, lost segment, too many headers).
    pub truncated: bool,
    /// HTTP/1.x minor version, when the request line said.
    #[serde(skip)]
    pub version: Option<u8>,

    /// The client: the peer, or the address a trusted proxy forwarded for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<IpAddr>,
    /// Where `client` came from: `peer` or the header that named it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_source: Option<&'static str>,
    /// An IPv6 client's network (default /64): IPv6 clients rotate inside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_prefix: Option<String>,
    /// Forwarding headers sent by a peer we do not trust: ignored for
    /// attribution, kept as evidence of header manipulation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub untrusted_forwarding: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_org: Option<String>,
    /// Shared with the user-agent cache's entry, not copied per exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ua_product: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ua_version: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ua_family: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ua_platform: Option<&'static str>,
    /// Stable hash of method, version and header-name order and set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Arc<str>>,
    /// The target's path with ids, UUIDs, tokens and emails templated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<String>,
    /// Keyed hash of the credential (API key, bearer subject, basic user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_kind: Option<&'static str>,

    /// Request header values for the enrichers, one per entry of
    /// `header_names`; never serialised.
    #[serde(skip)]
    pub header_values: HeaderValues,
    /// An identity a log names in clear (`user_id`); hashed, never output.
    #[serde(skip)]
    pub raw_identity: Option<String>,
    /// An endpoint template a log already gives.
    #[serde(skip)]
    pub given_endpoint: Option<String>,
}

impl Default for Exchange {
    fn default() -> Self {
        Self {
            ts: Default::default(),
            peer: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            method: Default::default(),
            target: Default::default(),
            host: Default::default(),
            user_agent: Default::default(),
            status: Default::default(),
            header_names: Default::default(),
            truncated: Default::default(),
            version: Default::default(),
            client: Default::default(),
            client_source: Default::default(),
            client_prefix: Default::default(),
            untrusted_forwarding: Default::default(),
            country: Default::default(),
            asn: Default::default(),
            as_org: Default::default(),
            ua_product: Default::default(),
            ua_version: Default::default(),
            ua_family: Default::default(),
            ua_platform: Default::default(),
            fingerprint: Default::default(),
            endpoint: Default::default(),
            resource_id: Default::default(),
            query_params: Default::default(),
            identity: Default::default(),
            identity_kind: Default::default(),
            header_values: Default::default(),
            raw_identity: Default::default(),
            given_endpoint: Default::default(),
        }
    }
}

/// A request method: the registered ones are shared rather than allocated
/// on every request.
pub type Method = Cow<'static, str>;

/// Methods of RFC 9110 and PATCH, as sent.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];

/// `m` as sent, shared when it is a registered method.
pub fn method(m: &str) -> Method {
    shared(METHODS, m)
}

/// `s` borrowed from `set` when it is there, else copied.
fn shared(set: &[&'static str], s: &str) -> Cow<'static, str> {
    match set.iter().find(|c| **c == s) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(s.to_owned()),
    }
}

/// A header name: the common ones, as most clients spell them, are shared
/// rather than allocated on every request.
pub type HeaderName = Cow<'static, str>;

/// Header names most requests carry, spelled as clients send them.
const COMMON_NAMES: &[&str] = &[
    "Host",
    "User-Agent",
    "Accept",
    "Accept-Language",
    "Accept-Encoding",
    "Connection",
    "Content-Type",
    "Content-Length",
    "Authorization",
    "Cookie",
    "Referer",
    "Origin",
    "Cache-Control",
    "Pragma",
    "Upgrade-Insecure-Requests",
    "If-None-Match",
    "If-Modified-Since",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Real-IP",
    "X-Request-ID",
    "X-Api-Key",
    "Sec-Fetch-Site",
    "Sec-Fetch-Mode",
    "Sec-Fetch-Dest",
    "Sec-Fetch-User",
    "Priority",
    "DNT",
    "TE",
    "host",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "connection",
    "content-type",
    "content-length",
    "authorization",
    "cookie",
];

/// `name` as sent, shared when it is one of the common spellings.
pub fn header_name(name: &str) -> HeaderName {
    shared(COMMON_NAMES, name)
}

/// Header values in one string, `ends[i]` where the `i`th ends: two
/// allocations per request rather than one per header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderValues {
    text: String,
    ends: Vec<u32>,
}

impl HeaderValues {
    pub fn with_capacity(headers: usize, bytes: usize) -> Self {
        Self { text: String::with_capacity(bytes), ends: Vec::with_capacity(headers) }
    }

    pub fn push(&mut self, value: &str) {
        self.text.push_str(value);
        self.ends.push(self.text.len() as u32);
    }

    /// The `i`th value.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text.get(start..end)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.ends.len()).filter_map(|i| self.get(i))
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

impl Exchange {
    /// The request's headers as (name, value), in the order sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header_names.iter().map(|n| n.as_ref()).zip(self.header_values.iter())
    }

    /// The values of the headers called `name` (any case), in order.
    pub fn header<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        // Names first: a value is sliced out only for a name that matches.
        self.header_names
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.eq_ignore_ascii_case(name))
            .filter_map(|(i, _)| self.header_values.get(i))
    }

    /// The value of the first header called `name` (any case).
    pub fn first_header(&self, name: &str) -> Option<&str> {
        let i = self.header_names.iter().position(|n| n.eq_ignore_ascii_case(name))?;
        self.header_values.get(i)
    }

    /// Sets names and values together (tests and generated traffic).
    pub fn set_headers(&mut self, pairs: &[(&str, &str)]) {
        self.header_names = pairs.iter().map(|(n, _)| header_name(n)).collect();
        self.header_values = HeaderValues::default();
        for (_, v) in pairs {
            self.header_values.push(v);
        }
    }
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2026-11-22T02:18:35.123456789Z`.
pub fn format_ts(ts: Nanos) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ts);
    humantime::format_rfc3339_nanos(t).to_string()
}

fn rfc3339<S: Serializer>(ts: &Nanos, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_ts(*ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let ex = Exchange {
            ts: 1_700_000_000_123_456_789,
            peer: "2001:db8::1".parse().unwrap(),
            method: "GET".into(),
            target: "/x".into(),
            host: None,
            user_agent: Some("curl/8".into()),
            status: None,
            header_names: vec!["User-Agent".into()],
            truncated: false,
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::to_value(&ex).unwrap();
        assert_eq!(v["ts"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(v["peer"], "2001:db8::1");
        assert!(v["status"].is_null());
        assert!(v["host"].is_null());
    }

    #[test]
    fn headers_pair_up() {
        let mut ex = Exchange::default();
        ex.set_headers(&[("Host", "a"), ("X-Odd", ""), ("Authorization", "Bearer x"), ("x-odd", "2")]);
        assert!(matches!(ex.header_names[0], Cow::Borrowed(_)) && matches!(ex.header_names[1], Cow::Owned(_)));
        let all: Vec<_> = ex.headers().collect();
        assert_eq!(all, [("Host", "a"), ("X-Odd", ""), ("Authorization", "Bearer x"), ("x-odd", "2")]);
        assert_eq!(ex.header("x-ODD").collect::<Vec<_>>(), ["", "2"]);
        assert_eq!(ex.first_header("authorization"), Some("Bearer x"));
        assert_eq!(
            serde_json::to_value(&ex).unwrap()["header_names"],
            serde_json::json!(["Host", "X-Odd", "Authorization", "x-odd"])
        );
    }
}
