//! The `--config` TOML file: typed, validated, unknown fields refused.
//! Command-line flags override it field by field (see `cli`).

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

/// Forwarding headers that can name the client behind a trusted proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientHeader {
    XForwardedFor,
    Forwarded,
    XRealIp,
}

impl ClientHeader {
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
            Self::XRealIp => "x-real-ip",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Peers whose forwarding headers are believed (CIDRs).
    pub trusted_proxies: Vec<IpNet>,
    /// Which forwarding headers name the client, in order of preference.
    pub client_headers: Vec<ClientHeader>,
    /// IPv6 clients are also keyed by their network of this length.
    pub ipv6_prefix: u8,
    /// Where rejectwatch keeps its state (the identity key).
    pub state_dir: Option<PathBuf>,
    pub identity: IdentityConfig,
    pub geoip: GeoConfig,
    pub user_agents: UserAgentConfig,
    pub json_log: JsonLogFields,
    pub detect: crate::detect::spec::DetectConfig,
    pub blocklist: crate::blocklist::BlocklistConfig,
    pub api: crate::api::ApiConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            client_headers: vec![ClientHeader::XForwardedFor, ClientHeader::Forwarded, ClientHeader::XRealIp],
            ipv6_prefix: 64,
            state_dir: None,
            identity: IdentityConfig::default(),
            geoip: GeoConfig::default(),
            user_agents: UserAgentConfig::default(),
            json_log: JsonLogFields::default(),
            detect: Default::default(),
            blocklist: Default::default(),
            api: Default::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Request headers that carry an API key (case-insensitive).
    pub api_key_headers: Vec<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self { api_key_headers: vec!["x-api-key".into(), "api-key".into(), "x-auth-token".into()] }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoConfig {
    /// MaxMind-DB-format country database.
    pub country: Option<PathBuf>,
    /// MaxMind-DB-format ASN database, or CSV ranges `start,end,asn,org`.
    pub asn: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserAgentConfig {
    /// A rules file tried before the built-in table (same format as
    /// `rejectwatch/data/user-agents.toml`).
    pub table: Option<PathBuf>,
}

/// Field names of JSON-lines access logs (API gateways).
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
        }
    }
}

/// A config problem, said in one line that names the field.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let err = |message: String| ConfigError { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        Self::parse(&text).map_err(err)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].lines().count().max(1));
            let msg = e.message().replace('\n', " ");
            match line {
                Some(l) => format!("line {l}: {msg}"),
                None => msg,
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=128).contains(&self.ipv6_prefix) {
            return Err(format!("ipv6_prefix: {} is not between 1 and 128", self.ipv6_prefix));
        }
        if self.client_headers.is_empty() && !self.trusted_proxies.is_empty() {
            return Err("client_headers: empty, so trusted_proxies could never name a client".into());
        }
        self.blocklist.validate()?;
        self.api.validate()?;
        self.detect.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_full_file() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        let c = Config::parse(
            r#"
            trusted_proxies = ["10.0.0.0/8", "2001:db8::/32"]
            client_headers = ["forwarded", "x-real-ip"]
            ipv6_prefix = 56
            state_dir = "/tmp/rw"
            [identity]
            api_key_headers = ["x-customer-key"]
            [geoip]
            country = "/data/country.mmdb"
            asn = "/data/asn.csv"
            [json_log]
            source_ip = "ip"
            "#,
        )
        .unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.client_headers, [ClientHeader::Forwarded, ClientHeader::XRealIp]);
        assert_eq!(c.ipv6_prefix, 56);
        assert_eq!(c.json_log.source_ip, "ip");
        assert_eq!(c.json_log.status_code, "status_code");
    }

    #[test]
    fn the_example_config_is_valid() {
        let c = Config::parse(include_str!("../../rejectwatch.example.toml")).unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.json_log, JsonLogFields::default());
    }

    #[test]
    fn errors_name_the_field_on_one_line() {
        for (text, needle) in [
            ("trusted_proxie = []", "unknown field `trusted_proxie`"),
            ("trusted_proxies = [\"10.0.0.300/8\"]", "line 1"),
            ("ipv6_prefix = 200", "ipv6_prefix"),
            ("client_headers = [\"x-forwarded-host\"]", "x-forwarded-host"),
            ("[geoip]\ncountri = \"x\"", "unknown field `countri`"),
            ("client_headers = []\ntrusted_proxies = [\"10.0.0.0/8\"]", "client_headers"),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
