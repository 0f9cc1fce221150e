//! The `--config` TOML file: typed, validated, unknown fields refused.
//! Command-line flags override it field by field (see `cli`). Each section's
//! type belongs to the module it configures; this file only assembles them,
//! reads the file and places a parser's error under its key.

pub mod value;

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::{
    enrich::{GeoConfig, attribution::ClientHeader, identity::IdentityConfig, useragent::UserAgentConfig},
    source::logformat::json::JsonLogFields,
};

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Peers whose forwarding headers are believed (addresses or CIDRs).
    #[serde(deserialize_with = "value::nets")]
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
    pub enforce: crate::enforce::EnforceConfig,
    pub api: crate::api::ApiConfig,
    pub stix: crate::stix::StixConfig,
    pub snapshot: crate::state::snapshot::SnapshotConfig,
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
            enforce: Default::default(),
            api: Default::default(),
            stix: Default::default(),
            snapshot: Default::default(),
        }
    }
}

impl<'a> From<&'a Config> for crate::enrich::Settings<'a> {
    fn from(c: &'a Config) -> Self {
        Self {
            trusted_proxies: &c.trusted_proxies,
            client_headers: &c.client_headers,
            ipv6_prefix: c.ipv6_prefix,
            state_dir: c.state_dir.as_deref(),
            identity: &c.identity,
            geoip: &c.geoip,
            user_agents: &c.user_agents,
            scanners: &c.detect.knowledge.scanners,
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
        let mut cfg = Self::parse(&text).map_err(err)?;
        // Files the config names are read once it is known to be valid.
        cfg.detect.load_lists().map_err(err)?;
        Ok(cfg)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let msg = e.message().replace('\n', " ");
            let Some(span) = e.span() else { return msg };
            let line = text[..span.start].matches('\n').count() + 1;
            match key_at(text, span.start) {
                Some(key) => format!("line {line}: {}", value::keyed(&key, &msg)),
                None => format!("line {line}: {msg}"),
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
        crate::source::logformat::JsonFields::new(&self.json_log)?;
        self.blocklist.validate()?;
        self.enforce.validate()?;
        self.api.validate()?;
        self.snapshot.validate()?;
        self.detect.validate()
    }
}

/// The dotted key whose value holds byte `at` of `text`: the statement's
/// key (looked for back from `at`, so a value on a later line of an array
/// counts), under the table header before it; `None` when a header comes
/// first. Enough for the files people write: the parser has already
/// said what is wrong, this only says where.
fn key_at(text: &str, at: usize) -> Option<String> {
    let before = &text[..at];
    let key = before.lines().rev().find_map(|l| {
        if header(l).is_some() {
            return Some(None);
        }
        let (k, _) = l.split_once('=')?;
        let k = k.trim().trim_matches('"');
        let bare = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        bare.then_some(Some(k))
    })??;
    Some(match before.lines().rev().find_map(header) {
        Some(table) => format!("{table}.{key}"),
        None => key.to_string(),
    })
}

/// The table a `[table]` or `[[table]]` header line names.
fn header(line: &str) -> Option<&str> {
    let inner = line.trim().strip_prefix('[')?.strip_suffix(']')?;
    let name = inner.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(inner).trim();
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))).then_some(name)
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
    fn json_log_paths_are_checked() {
        let c = Config::parse("[json_log]\nsource_ip = \"request.remote_ip\"\nhost = \"request.host\"\n").unwrap();
        assert!(c.validate().is_ok());
        let e = Config::parse("[json_log]\nuser_agent = \"headers.User-Agent[first]\"\n").unwrap_err();
        assert!(e.starts_with("json_log.user_agent: ") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let c = Config::parse(include_str!("../../../rejectwatch.example.toml")).unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.json_log, JsonLogFields::default());
    }

    #[test]
    fn errors_name_the_field_on_one_line() {
        for (text, needle) in [
            ("trusted_proxie = []", "unknown field `trusted_proxie`"),
            ("trusted_proxies = [\"10.0.0.300/8\"]", "line 1: trusted_proxies: \"10.0.0.300/8\" is not an address"),
            ("trusted_proxies = [\n  \"10.0.0.0/8\",\n  \"10.0.0.999\",\n]", "trusted_proxies: \"10.0.0.999\""),
            ("[blocklist]\nttl = \"5 parsecs\"", "line 2: blocklist.ttl: invalid value"),
            ("[blocklist]\nallowlist = [\"bogus\"]", "line 2: blocklist.allowlist: \"bogus\""),
            ("\n[detect]\nmax_clients = \"x\"", "line 3: detect.max_clients: invalid type"),
            ("[api]\ntoken = 5", "line 2: api.token: invalid type"),
            (
                "[[detect.detector]]\nkind = \"scraping\"\nwindow = \"soon\"",
                "detect.detector scraping: window: invalid",
            ),
            ("[[detect.detector]]\nkind = \"scrapping\"", "detect.detector kind: unknown `scrapping`"),
            ("[[detect.detector]]\nwindow = \"1h\"", "detect.detector: missing field `kind`"),
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

    #[test]
    fn loading_reads_the_lists_it_names() {
        let dir = std::env::temp_dir().join(format!("rw-cfg-lists-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let list = dir.join("scanners.txt");
        std::fs::write(&list, "# ours\nEvilScan\n").unwrap();
        let cfg = dir.join("c.toml");
        let text = format!("[detect]\nlists = [{{ kind = \"scanners\", path = {:?} }}]\n", list.display().to_string());
        std::fs::write(&cfg, &text).unwrap();
        let c = Config::load(&cfg).unwrap();
        assert_eq!(c.detect.knowledge.scanners, ["evilscan"]);
        // Parsing alone reads no file.
        assert!(Config::parse(&text).unwrap().detect.knowledge.scanners.is_empty());
        std::fs::remove_file(&list).unwrap();
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert!(e.contains("detect.lists: cannot read") && !e.contains('\n'), "{e}");
        std::fs::write(&cfg, "[detect]\nlists = [{ kind = \"scanner\", path = \"x\" }]\n").unwrap();
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert!(e.contains("scanner"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn proxies_and_allowlists_take_addresses_or_networks() {
        let c = Config::parse(
            "trusted_proxies = [\"10.0.0.7\", \"10.1.0.0/16\", \"2001:db8::1\"]\n[blocklist]\nallowlist = [\" 192.0.2.1 \"]",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let shown: Vec<String> = c.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.7/32", "10.1.0.0/16", "2001:db8::1/128"]);
        assert_eq!(c.blocklist.allowlist[0].to_string(), "192.0.2.1/32");
        for bad in ["", "10.0.0", "10.0.0.0/33", "example.com", "10.0.0.1/8/8"] {
            let e = value::parse_net(bad).expect_err(bad);
            assert!(e.contains("not an address or a CIDR network"), "{bad:?}: {e}");
        }
    }
}
