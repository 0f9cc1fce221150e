//! The joined exchange: one request and the status that answered it, with
//! what the enrichers add. This is the project's `http.log` line
//! (`--exchanges`). Fields an enricher could not fill are left out.

use std::net::IpAddr;

use serde::{Serialize, Serializer};

use crate::record::Nanos;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exchange {
    /// When the request head was seen.
    #[serde(serialize_with = "rfc3339")]
    pub ts: Nanos,
    /// The socket source address of the request.
    pub peer: IpAddr,
    pub method: String,
    pub target: String,
    pub host: Option<String>,
    pub user_agent: Option<String>,
    /// The response status, or null when none was captured.
    pub status: Option<u16>,
    pub header_names: Vec<String>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ua_product: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ua_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ua_family: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ua_platform: Option<&'static str>,
    /// Stable hash of method, version and header-name order and set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
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
    /// `header_names` (one string per header, not two: this is on every
    /// request's path); never serialised.
    #[serde(skip)]
    pub header_values: Vec<String>,
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

impl Exchange {
    /// The request's headers as (name, value), in the order sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header_names.iter().map(String::as_str).zip(self.header_values.iter().map(String::as_str))
    }

    /// The values of the headers called `name` (any case), in order.
    pub fn header<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// The value of the first header called `name` (any case).
    pub fn first_header(&self, name: &str) -> Option<&str> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// Sets names and values together (tests and generated traffic).
    pub fn set_headers(&mut self, pairs: &[(&str, &str)]) {
        self.header_names = pairs.iter().map(|(n, _)| n.to_string()).collect();
        self.header_values = pairs.iter().map(|(_, v)| v.to_string()).collect();
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
}
