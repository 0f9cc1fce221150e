//! Signal 14, sensitive-file probing: `.env`, `.git/`, `wp-config`,
//! backups, key files, admin consoles, on an API that has none. Only
//! requests that failed (4xx/5xx) to an endpoint that is not part of the
//! API count, so an API that really serves `/admin` is not accused.

use std::time::Duration;

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Deserialize;

use super::clip;
use crate::ascii;
use crate::detect::{
    Detector, Obs,
    client::ClientState,
    evidence::{SENSITIVE_PROBE, Signal, emit},
    memo::SearchMemo,
};

pub const NAME: &str = "sensitive-file-probe";

const BUILTIN: &[&str] = &[
    "/.env",
    "/.git/",
    "/.git",
    "/.svn",
    "/.hg/",
    "/.ds_store",
    "/.htpasswd",
    "/.htaccess",
    "/.aws/",
    "/.ssh/",
    "/.npmrc",
    "/.dockerenv",
    "/.vscode/",
    "/.idea/",
    "wp-config",
    "/wp-admin",
    "/wp-login",
    "/xmlrpc.php",
    "/phpmyadmin",
    "/phpinfo",
    "/server-status",
    "/actuator",
    "/admin",
    "/console",
    "/manager/html",
    "/cgi-bin/",
    "/id_rsa",
    "/id_dsa",
    ".pem",
    ".key",
    ".p12",
    ".pfx",
    ".bak",
    ".backup",
    ".old",
    ".orig",
    ".swp",
    ".sql",
    ".sqlite",
    ".tar.gz",
    ".tgz",
    ".zip",
    "/backup",
    "/dump",
    "/web.config",
    "/config.php",
    "/config.yml",
    "/config.json",
    "/docker-compose",
];

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    /// Path substrings (case-insensitive); replaces the built-in list.
    pub patterns: Option<Vec<String>>,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self { patterns: None, cooldown: Duration::from_secs(3600) }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        match &self.patterns {
            Some(p) if p.is_empty() || p.iter().any(String::is_empty) => {
                Err("patterns: must be a non-empty list of non-empty strings".into())
            }
            _ => Ok(()),
        }
    }
    pub fn build(&self) -> Sensitive {
        let patterns: Vec<String> = match &self.patterns {
            Some(p) => p.clone(),
            None => BUILTIN.iter().map(|s| s.to_string()).collect(),
        };
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .expect("patterns are plain strings");
        Sensitive { ac, patterns, memo: SearchMemo::default() }
    }
}

pub struct Sensitive {
    ac: AhoCorasick,
    patterns: Vec<String>,
    /// The same rejected paths come back again and again.
    memo: SearchMemo,
}

impl Detector for Sensitive {
    fn observe(&mut self, o: &Obs<'_>, _c: &mut ClientState, out: &mut Vec<Signal>) {
        if o.status() < 400 || o.ctx.documented(o.ep, o.endpoint) {
            return;
        }
        let raw = o.ex.path();
        let Some(i) = self.memo.find(raw.as_bytes(), || {
            self.ac.find(super::injection::normalise(raw).as_ref()).map(|m| m.pattern().as_usize())
        }) else {
            return;
        };
        // After the match: most rejected paths are no probe, and the
        // cooldown table is a cache miss away.
        if o.cooling(o.key.hash32() as u64) {
            return;
        }
        let pattern = &self.patterns[i];
        emit(out, || {
            let path = super::injection::normalise(raw);
            // The pattern is news only when the path is more than it.
            let matched =
                if ascii::eq_ignore_case(&path, pattern) { String::new() } else { format!(" (matches {pattern:?})") };
            Signal::new(
                NAME,
                SENSITIVE_PROBE,
                o.key.hash32() as u64,
                vec![o.key],
                format!("{} probed for {}{matched}, answered {}", o.key, clip(&path, 120), o.status()),
            )
            .endpoint(o.endpoint)
            .with("path", clip(&path, 200))
            .with("pattern", pattern.clone())
            .with("status", o.status())
        });
    }
}
