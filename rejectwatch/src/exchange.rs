//! The joined exchange: one request and the status that answered it. This
//! is the project's `http.log` line (`--exchanges`).

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
        };
        let v: serde_json::Value = serde_json::to_value(&ex).unwrap();
        assert_eq!(v["ts"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(v["peer"], "2001:db8::1");
        assert!(v["status"].is_null());
        assert!(v["host"].is_null());
    }
}
