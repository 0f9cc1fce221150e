//! User-agent classification from a data table (`data/user-agents.toml`,
//! plus an operator's own table tried first): product, version, family and
//! claimed platform. Results are cached per distinct string (bounded LRU):
//! a busy API sees few distinct user agents, so classification is a hash
//! lookup on the hot path.

use std::{
    num::NonZeroUsize,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context as _, bail};
use lru::LruCache;
use serde::Deserialize;

const BUILTIN: &str = include_str!("../../data/user-agents.toml");
const FAMILIES: [&str; 7] = ["browser", "http-library", "cli", "crawler", "scanner", "empty", "other"];
const PLATFORMS: [&str; 6] = ["ios", "android", "windows", "macos", "linux", "unknown"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    contains: String,
    product: String,
    family: String,
    version_after: Option<String>,
    platform: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    contains: String,
    platform: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTable {
    rule: Vec<RawRule>,
    platform: Vec<RawPlatform>,
    impossible: Option<NoEngine>,
    version: Vec<VersionBound>,
    ios_safari: Option<IosSafari>,
}

/// A browser's prefix without any engine named after it.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct NoEngine {
    browser_prefix: String,
    engines: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
}

/// The newest major version a browser product has shipped (with room).
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct VersionBound {
    product: String,
    max_major: u32,
}

/// Which Safari versions ship with which iOS.
#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct IosSafari {
    min_ios: u32,
    frozen_from_version: u32,
    frozen_ios: u32,
}

/// Why no browser sends a user agent: a fixed set (never the text).
pub mod impossible {
    pub const NO_ENGINE: &str = "browser_prefix_without_engine";
    pub const VERSION: &str = "browser_version_never_shipped";
    pub const IOS_SAFARI: &str = "ios_and_safari_versions_never_shipped_together";
}

struct Rule {
    contains: String,
    product: Arc<str>,
    family: &'static str,
    version_after: String,
    platform: Option<&'static str>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserAgentConfig {
    /// A rules file tried before the built-in table (same format as
    /// `rejectwatch/data/user-agents.toml`).
    pub table: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UaInfo {
    /// Shared: a cache hit hands out the same strings to every exchange.
    pub product: Option<Arc<str>>,
    pub version: Option<Arc<str>>,
    pub family: &'static str,
    pub platform: &'static str,
    /// A hash of the (trimmed) text, worked out once per distinct user
    /// agent: downstream, it stands for the text where only its identity
    /// matters (an actor's memory of the exchanges it has noted).
    pub key: u64,
    /// Why no real browser sends it, when none does ([`impossible`]).
    pub impossible: Option<&'static str>,
}

/// Deterministic, so that replays group as live runs do; never output.
pub fn key_of(ua: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x0a6e_47c1).hash_one(ua.as_bytes()) | 1
}

pub struct UaClassifier {
    rules: Vec<Rule>,
    platforms: Vec<(String, &'static str)>,
    no_engine: Option<NoEngine>,
    versions: Vec<VersionBound>,
    ios_safari: Option<IosSafari>,
    cache: LruCache<String, UaInfo>,
}

fn interned(set: &[&'static str], v: &str, what: &str, source: &str) -> anyhow::Result<&'static str> {
    match set.iter().find(|s| **s == v) {
        Some(s) => Ok(s),
        None => bail!("{source}: {what} {v:?} is not one of {set:?}"),
    }
}

impl UaClassifier {
    /// The same rules with an empty cache, for another thread. The rules'
    /// strings are copied rather than shared: every exchange takes a
    /// reference to its product's, and threads bumping one count would
    /// pass its cache line back and forth.
    pub fn fork(&self) -> Self {
        Self {
            rules: self
                .rules
                .iter()
                .map(|r| Rule {
                    contains: r.contains.clone(),
                    product: Arc::from(&*r.product),
                    family: r.family,
                    version_after: r.version_after.clone(),
                    platform: r.platform,
                })
                .collect(),
            platforms: self.platforms.clone(),
            no_engine: self.no_engine.clone(),
            versions: self.versions.clone(),
            ios_safari: self.ios_safari,
            cache: LruCache::new(self.cache.cap()),
        }
    }

    /// The built-in table, after the operator's (if any).
    pub fn new(extra: Option<&Path>) -> anyhow::Result<Self> {
        Self::with_scanners(extra, &[])
    }

    /// [`UaClassifier::new`], with the scanner names of the config's
    /// `detect.lists` tried after the operator's table and before the
    /// built-in one (lowercase substrings; the product is the name).
    pub fn with_scanners(extra: Option<&Path>, scanners: &[String]) -> anyhow::Result<Self> {
        let mut c = Self {
            rules: Vec::new(),
            platforms: Vec::new(),
            no_engine: None,
            versions: Vec::new(),
            ios_safari: None,
            cache: LruCache::new(NonZeroUsize::new(8192).expect("non-zero")),
        };
        if let Some(p) = extra {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("user_agents.table: cannot read {}", p.display()))?;
            c.add(&text, &p.display().to_string())?;
        }
        for name in scanners {
            let contains = name.to_ascii_lowercase();
            c.rules.push(Rule {
                version_after: format!("{contains}/"),
                product: name.as_str().into(),
                contains,
                family: "scanner",
                platform: None,
            });
        }
        c.add(BUILTIN, "data/user-agents.toml")?;
        Ok(c)
    }

    fn add(&mut self, text: &str, source: &str) -> anyhow::Result<()> {
        let t: RawTable = toml::from_str(text).map_err(|e| anyhow::anyhow!("{source}: {}", e.message()))?;
        for r in t.rule {
            let contains = r.contains.to_ascii_lowercase();
            let version_after = r.version_after.unwrap_or_else(|| format!("{}/", r.product)).to_ascii_lowercase();
            self.rules.push(Rule {
                family: interned(&FAMILIES, &r.family, "family", source)?,
                platform: r.platform.as_deref().map(|p| interned(&PLATFORMS, p, "platform", source)).transpose()?,
                contains,
                product: r.product.into(),
                version_after,
            });
        }
        for p in t.platform {
            self.platforms
                .push((p.contains.to_ascii_lowercase(), interned(&PLATFORMS, &p.platform, "platform", source)?));
        }
        // The operator's table is read first: what it says wins.
        if self.no_engine.is_none() {
            self.no_engine = t.impossible.map(|mut n| {
                n.browser_prefix.make_ascii_lowercase();
                n.engines.iter_mut().chain(n.except.iter_mut()).for_each(|e| e.make_ascii_lowercase());
                n
            });
        }
        for v in t.version {
            if !self.versions.iter().any(|b| b.product == v.product) {
                self.versions.push(v);
            }
        }
        self.ios_safari = self.ios_safari.or(t.ios_safari);
        Ok(())
    }

    /// Why no browser sends `ua` (lowercased as `lower`), if none does.
    fn impossible(
        &self,
        lower: &str,
        family: &str,
        product: Option<&str>,
        version: Option<&str>,
    ) -> Option<&'static str> {
        if let Some(n) = &self.no_engine
            && matches!(family, "browser" | "other")
            && lower.starts_with(&n.browser_prefix)
            && !n.engines.iter().any(|e| lower.contains(e.as_str()))
            && !n.except.iter().any(|e| lower.contains(e.as_str()))
        {
            return Some(impossible::NO_ENGINE);
        }
        if family != "browser" {
            return None;
        }
        let major = version.and_then(major_of);
        if let (Some(p), Some(m)) = (product, major)
            && let Some(b) = self.versions.iter().find(|b| b.product == p)
            && (m == 0 || m > b.max_major)
        {
            return Some(impossible::VERSION);
        }
        if let (Some("Safari"), Some(v), Some(rule)) = (product, major, self.ios_safari)
            && let Some(ios) =
                ["iphone os ", "cpu os "].iter().find_map(|t| lower.split_once(t)).and_then(|(_, r)| major_of(r))
            && ios >= rule.min_ios
            && v != ios
            && !(v >= rule.frozen_from_version && ios == rule.frozen_ios)
        {
            return Some(impossible::IOS_SAFARI);
        }
        None
    }

    pub fn classify(&mut self, ua: Option<&str>) -> UaInfo {
        let ua = ua.map(crate::ascii::trim).unwrap_or("");
        if ua.is_empty() {
            return UaInfo {
                product: None,
                version: None,
                family: "empty",
                platform: "unknown",
                key: 0,
                impossible: None,
            };
        }
        if let Some(hit) = self.cache.get(ua) {
            return hit.clone();
        }
        let info = self.compute(ua);
        self.cache.put(ua.to_string(), info.clone());
        info
    }

    fn compute(&self, ua: &str) -> UaInfo {
        let lower = ua.to_ascii_lowercase();
        let platform_of =
            || self.platforms.iter().find(|(c, _)| lower.contains(c.as_str())).map_or("unknown", |(_, p)| p);
        for r in &self.rules {
            if lower.contains(&r.contains) {
                let version = version_after(ua, &lower, &r.version_after);
                return UaInfo {
                    impossible: self.impossible(&lower, r.family, Some(&r.product), version.as_deref()),
                    product: Some(r.product.clone()),
                    version: version.map(Arc::from),
                    family: r.family,
                    platform: r.platform.unwrap_or_else(platform_of),
                    key: key_of(ua),
                };
            }
        }
        // Unknown: the leading `product/version` token, as RFC 9110 shapes it.
        let first = ua.split_whitespace().next().unwrap_or(ua);
        let (product, version) = match first.split_once('/') {
            Some((p, v)) => (p, Some(v).filter(|v| !v.is_empty())),
            None => (first, None),
        };
        UaInfo {
            impossible: self.impossible(&lower, "other", None, None),
            product: Some(product.into()),
            version: version.map(Arc::from),
            family: "other",
            platform: platform_of(),
            key: key_of(ua),
        }
    }
}

/// The leading number of a version (`124.0.0.0`, `14_4`): its major.
fn major_of(v: &str) -> Option<u32> {
    let digits = v.split(|c: char| !c.is_ascii_digit()).next()?;
    if digits.is_empty() || digits.len() > 6 { None } else { digits.parse().ok() }
}

/// The version following `token` in `ua` (found case-insensitively).
fn version_after(ua: &str, lower: &str, token: &str) -> Option<String> {
    let start = lower.find(token)? + token.len();
    let rest = &ua[start..];
    let end = rest.find([' ', ';', ')', ',', '(']).unwrap_or(rest.len());
    Some(rest[..end].to_string()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::type_complexity)] // a table of cases reads best inline
    fn table() {
        let mut c = UaClassifier::new(None).unwrap();
        let cases: &[(Option<&str>, Option<&str>, Option<&str>, &str, &str)] = &[
            (Some("python-requests/2.32.5"), Some("python-requests"), Some("2.32.5"), "http-library", "unknown"),
            (
                Some(
                    "Mozilla/5.0 (iPhone; CPU iPhone OS 14_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0.3 Mobile/15E148 Safari/604.1",
                ),
                Some("Safari"),
                Some("14.0.3"),
                "browser",
                "ios",
            ),
            (Some("okhttp/3.14.9"), Some("okhttp"), Some("3.14.9"), "http-library", "android"),
            (Some("curl/8.5.0"), Some("curl"), Some("8.5.0"), "cli", "unknown"),
            (
                Some(
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
                ),
                Some("Edge"),
                Some("124.0.2478.51"),
                "browser",
                "windows",
            ),
            (
                Some(
                    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
                ),
                Some("Chrome"),
                Some("124.0.0.0"),
                "browser",
                "android",
            ),
            (
                Some("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"),
                Some("Firefox"),
                Some("125.0"),
                "browser",
                "linux",
            ),
            (
                Some("Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)"),
                Some("Nmap"),
                None,
                "scanner",
                "unknown",
            ),
            (
                Some("sqlmap/1.7.2#stable (https://sqlmap.org)"),
                Some("sqlmap"),
                Some("1.7.2#stable"),
                "scanner",
                "unknown",
            ),
            (
                Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
                Some("Googlebot"),
                Some("2.1"),
                "crawler",
                "unknown",
            ),
            (Some("axios/1.7.2"), Some("axios"), Some("1.7.2"), "http-library", "unknown"),
            (Some("Go-http-client/1.1"), Some("Go-http-client"), Some("1.1"), "http-library", "unknown"),
            (Some("OpenCTI/6.1 taxii2-client"), Some("OpenCTI"), Some("6.1"), "other", "unknown"),
            (Some("   "), None, None, "empty", "unknown"),
            (None, None, None, "empty", "unknown"),
        ];
        for (ua, product, version, family, platform) in cases {
            let i = c.classify(*ua);
            assert_eq!(
                (i.product.as_deref(), i.version.as_deref(), i.family, i.platform),
                (*product, *version, *family, *platform),
                "{ua:?}"
            );
            assert_eq!(c.classify(*ua), i, "cached result differs for {ua:?}");
        }
    }

    #[test]
    fn user_agents_no_browser_sends() {
        let mut c = UaClassifier::new(None).unwrap();
        for (ua, why) in [
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64)", Some(impossible::NO_ENGINE)),
            ("Mozilla/5.0", Some(impossible::NO_ENGINE)),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/199.0.0.0 Safari/537.36",
                Some(impossible::VERSION),
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/0.1 Safari/537.36",
                Some(impossible::VERSION),
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 14_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
                Some(impossible::IOS_SAFARI),
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 12_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.0 Mobile/15E148 Safari/604.1",
                Some(impossible::IOS_SAFARI),
            ),
            // What real browsers send.
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 14_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0.3 Mobile/15E148 Safari/604.1",
                None,
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.0 Mobile/15E148 Safari/604.1",
                None,
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/143.0.0.0 Safari/537.36",
                None,
            ),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:146.0) Gecko/20100101 Firefox/146.0", None),
            ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", None),
            ("Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)", None),
            ("Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko", None),
            ("python-requests/2.32.5", None),
            ("okhttp/4.12.0", None),
        ] {
            assert_eq!(c.classify(Some(ua)).impossible, why, "{ua}");
        }
    }

    #[test]
    fn scanners_declare_themselves() {
        let mut c = UaClassifier::with_scanners(None, &["evilscan".into()]).unwrap();
        for (ua, product) in [
            ("Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:007)", "Nikto"),
            ("feroxbuster/2.10.4", "feroxbuster"),
            ("Mozilla/5.0 [en] (X11, U; OpenVAS-VT 9.0.3)", "OpenVAS"),
            ("l9explore/1.2.2", "l9explore"),
            ("l9tcpid/v1.1.0", "l9tcpid"),
            ("WhatWeb/0.5.5", "WhatWeb"),
            ("Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)", "CensysInspect"),
            ("EvilScan/3.0", "evilscan"),
        ] {
            let i = c.classify(Some(ua));
            assert_eq!((i.family, i.product.as_deref()), ("scanner", Some(product)), "{ua}");
        }
        assert_eq!(c.classify(Some("EvilScan/3.0")).version.as_deref(), Some("3.0"));
        // A library named like ProjectDiscovery's httpx is not a scanner.
        assert_ne!(c.classify(Some("python-httpx/0.27.0")).family, "scanner");
    }

    #[test]
    fn operator_rules_come_first_and_bad_tables_are_refused() {
        let dir = std::env::temp_dir().join(format!("rw-ua-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("mine.toml");
        std::fs::write(&p, "[[rule]]\ncontains = \"python-requests/2.32.5\"\nproduct = \"CTI poller\"\nfamily = \"http-library\"\nversion_after = \"requests/\"\n").unwrap();
        let mut c = UaClassifier::new(Some(&p)).unwrap();
        assert_eq!(c.classify(Some("python-requests/2.32.5")).product.as_deref(), Some("CTI poller"));
        std::fs::write(&p, "[[rule]]\ncontains = \"x\"\nproduct = \"x\"\nfamily = \"robot\"\n").unwrap();
        let e = UaClassifier::new(Some(&p)).err().unwrap().to_string();
        assert!(e.contains("family \"robot\""), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
