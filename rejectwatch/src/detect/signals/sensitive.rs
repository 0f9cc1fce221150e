//! Signal 14, sensitive-file and product probing, from the data in
//! `data/probes.toml` (and the operator's `detect.lists`). Two tiers:
//! - exploits of known-vulnerable products, web shells and leaked
//!   secrets (`/_ignition/execute-solution`, `/shell.php`, `/.env`): a
//!   probe whatever the status, on any endpoint. Answered 2xx, the exploit
//!   may have worked, which is evidence of its own (`probe_answered_2xx`).
//!   A 3xx is not counted so: sites answer what they do not serve with a
//!   redirect to their login or home page.
//! - probes (`.git`, `wp-login`, `/admin`, backup suffixes): counted only
//!   when refused (4xx/5xx) on an endpoint that is not part of the API, so
//!   an API that really serves `/admin`, or a WordPress site's own users
//!   at `/wp-login.php`, are not accused.
//!
//! Paths are matched decoded (see `decode::normalise`), ignoring ASCII
//! case; an exploit entry holding a `?` is looked for in the query too.

use std::{sync::Arc, time::Duration};

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Deserialize;

use super::clip;
use crate::{
    ascii,
    detect::{
        Detector, Obs,
        client::ClientState,
        evidence::{PROBE_ANSWERED, SENSITIVE_PROBE, Signal, emit},
        knowledge::{Exploit, Knowledge},
        memo::SearchMemo,
        window::h64,
    },
    exchange::Exchange,
};

pub const NAME: &str = "sensitive-file-probe";

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    /// Probe path substrings (case-insensitive); replace the built-in
    /// probes (not the exploits, nor the suffixes).
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
    pub fn build(&self, k: &Knowledge) -> Sensitive {
        let probes: Vec<String> = match &self.patterns {
            Some(p) => p.iter().map(|s| s.to_lowercase()).collect(),
            None => k.probe_paths.clone(),
        };
        let ac = |patterns: &[String]| {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .build(patterns)
                .expect("patterns are plain strings")
        };
        let exploit_paths: Vec<String> = k.exploits.iter().map(|e| e.path.clone()).collect();
        Sensitive {
            tables: Arc::new(Tables {
                exploit_ac: ac(&exploit_paths),
                exploits: k.exploits.clone(),
                probe_ac: ac(&probes),
                probes,
                suffixes: k.probe_suffixes.clone(),
            }),
            memo: SearchMemo::default(),
        }
    }
}

pub struct Tables {
    exploit_ac: AhoCorasick,
    exploits: Vec<Exploit>,
    probe_ac: AhoCorasick,
    probes: Vec<String>,
    suffixes: Vec<String>,
}

pub struct Sensitive {
    /// Shared with the inspectors of a parallel replay's workers.
    tables: Arc<Tables>,
    /// The same paths come back again and again.
    memo: SearchMemo,
}

/// What a target matched.
enum Hit<'a> {
    Exploit(&'a Exploit),
    Probe(&'a str),
}

impl Tables {
    /// In the decoded target: the first exploit (one without `?` only in
    /// the path), else the first probe path or suffix of the path, as one
    /// index over exploits, probes and suffixes in that order (what the
    /// memo keeps).
    fn search(&self, target: &str) -> Option<usize> {
        let path_end = target.find('?').unwrap_or(target.len());
        let exploit = self.exploit_ac.find_iter(target).find(|m| {
            let e = &self.exploits[m.pattern().as_usize()];
            m.end() <= path_end || e.path.contains('?')
        });
        if let Some(m) = exploit {
            return Some(m.pattern().as_usize());
        }
        let path = &target[..path_end];
        let n = self.exploits.len();
        if let Some(m) = self.probe_ac.find(path) {
            return Some(n + m.pattern().as_usize());
        }
        let path = path.trim_end_matches('/').as_bytes();
        self.suffixes
            .iter()
            .position(|s| path.len() > s.len() && path[path.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes()))
            .map(|i| n + self.probes.len() + i)
    }

    /// What [`Tables::search`] finds in an exchange's target, remembered
    /// in `memo`.
    pub fn exchange(&self, ex: &Exchange, memo: &mut SearchMemo) -> Option<usize> {
        let raw = ex.target();
        memo.find(raw.as_bytes(), || self.search(crate::detect::decode::normalise(raw).as_ref()))
    }

    fn hit(&self, i: usize) -> Hit<'_> {
        let n = self.exploits.len();
        match i {
            i if i < n => Hit::Exploit(&self.exploits[i]),
            i if i < n + self.probes.len() => Hit::Probe(&self.probes[i - n]),
            i => Hit::Probe(&self.suffixes[i - n - self.probes.len()]),
        }
    }
}

impl Sensitive {
    /// The tables, for an inspector on another thread.
    pub fn tables(&self) -> Arc<Tables> {
        self.tables.clone()
    }
}

impl Detector for Sensitive {
    fn observe(&mut self, o: &Obs<'_>, _c: &mut ClientState, out: &mut Vec<Signal>) {
        let raw = o.ex.target();
        let found = match o.ex.searched {
            Some(s) => s.sensitive.map(|i| i as usize),
            None => self.tables.exchange(o.ex, &mut self.memo),
        };
        let Some(i) = found else {
            return;
        };
        let tables = &self.tables;
        let status = o.status();
        let base = o.key.hash32() as u64;
        match tables.hit(i) {
            Hit::Exploit(e) => {
                let key = base ^ h64(e.advisory.as_bytes()) ^ h64(e.product.as_bytes()).rotate_left(17);
                if !o.cooling(key) {
                    emit(out, || {
                        let target = crate::detect::decode::normalise(raw);
                        Signal::new(
                            NAME,
                            SENSITIVE_PROBE,
                            key,
                            vec![o.key],
                            format!(
                                "{} tried {} ({}: {}), answered {status}",
                                o.key,
                                clip(&target, 120),
                                e.product,
                                e.advisory
                            ),
                        )
                        .endpoint(o.endpoint)
                        .with("tier", "exploit")
                        .with("path", clip(&target, 200))
                        .with("pattern", e.path.clone())
                        .with("product", e.product.clone())
                        .with("advisory", e.advisory.clone())
                        .with("status", status)
                    });
                }
                if (200..300).contains(&status) && !o.cooling(key ^ 2) {
                    emit(out, || {
                        Signal::new(
                            NAME,
                            PROBE_ANSWERED,
                            key ^ 2,
                            vec![o.key],
                            format!(
                                "{} was answered {status} on the {} exploit path {}: the exploit may have worked",
                                o.key,
                                e.product,
                                clip(o.ex.path(), 120)
                            ),
                        )
                        .endpoint(o.endpoint)
                        .with("tier", "exploit")
                        .with("pattern", e.path.clone())
                        .with("product", e.product.clone())
                        .with("advisory", e.advisory.clone())
                        .with("status", status)
                    });
                }
            }
            Hit::Probe(pattern) => {
                // After the match: most rejected paths are no probe, and
                // the cooldown table is a cache miss away.
                if status < 400 || o.ctx.documented(o.ep, o.endpoint) || o.cooling(base) {
                    return;
                }
                emit(out, || {
                    let path = crate::detect::decode::normalise(o.ex.path());
                    // The pattern is news only when the path is more than it.
                    let matched = if ascii::eq_ignore_case(&path, pattern) {
                        String::new()
                    } else {
                        format!(" (matches {pattern:?})")
                    };
                    Signal::new(
                        NAME,
                        SENSITIVE_PROBE,
                        base,
                        vec![o.key],
                        format!("{} probed for {}{matched}, answered {status}", o.key, clip(&path, 120)),
                    )
                    .endpoint(o.endpoint)
                    .with("path", clip(&path, 200))
                    .with("pattern", pattern.to_string())
                    .with("status", status)
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> Arc<Tables> {
        Spec::default().build(&Knowledge::builtin()).tables
    }

    fn what(t: &Tables, target: &str) -> Option<String> {
        let i = t.search(crate::detect::decode::normalise(target).as_ref())?;
        Some(match t.hit(i) {
            Hit::Exploit(e) => format!("exploit {}", e.advisory),
            Hit::Probe(p) => format!("probe {p}"),
        })
    }

    #[test]
    fn exploits_probes_and_suffixes() {
        let t = tables();
        let w = |s: &str| what(&t, s);
        assert_eq!(w("/Telerik.Web.UI.WebResource.axd?type=rau").as_deref(), Some("exploit CVE-2019-18935"));
        assert_eq!(
            w("/tmui/login.jsp/..;/tmui/locallb/workspace/fileRead.jsp?fileName=/etc/passwd").as_deref(),
            Some("exploit CVE-2020-5902")
        );
        assert_eq!(w("/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php").as_deref(), Some("exploit CVE-2017-9841"));
        assert_eq!(w("/_ignition/execute-solution").as_deref(), Some("exploit CVE-2021-3129"));
        assert_eq!(
            w("/s/x/_/;/META-INF/maven/com.atlassian.jira/jira-webapp-dist/pom.properties").as_deref(),
            Some("exploit CVE-2021-26086")
        );
        assert_eq!(
            w("/wp-admin/admin-ajax.php?action=revslider_show_image&img=../wp-config.php").as_deref(),
            Some("exploit CVE-2014-9734")
        );
        assert_eq!(w("/%2e%65nv").as_deref(), w("/.env").as_deref());
        assert!(w("/c99.php").is_some_and(|s| s.starts_with("exploit")));
        // A probe path in a query is no probe of the path.
        assert_eq!(w("/search?q=/wp-login.php").as_deref(), None);
        assert_eq!(w("/wp-login.php").as_deref(), Some("probe /wp-login"));
        assert_eq!(w("/index.php~").as_deref(), Some("probe ~"));
        assert_eq!(w("/db/site.SQL").as_deref(), Some("probe .sql"));
        assert_eq!(w("/app/Main.java").as_deref(), Some("probe .java"));
        for quiet in [
            "/api/v1/orders/42",
            "/static/js/app.js.map",
            "/file..txt",
            "/api/v1/backlog?x=.bak",
            "/.well-known/caldav",
            "/",
        ] {
            assert_eq!(w(quiet), None, "{quiet}");
        }
    }
}
