//! Signal 11, injection probing: SQL and NoSQL injection, path traversal,
//! script and template injection in the path and query (and JNDI lookups
//! in the User-Agent). The target is percent-decoded twice (double
//! encoding is the oldest evasion), `+` read as a space and SQL comments
//! as spaces before matching, case-insensitively. Any status counts: an
//! injection that succeeded is the one that matters.

use std::{borrow::Cow, time::Duration};

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Deserialize;

use super::clip;
use crate::detect::{
    Detector, Obs,
    client::ClientState,
    evidence::{INJECTION, Signal, emit},
    memo::SearchMemo,
};

pub const NAME: &str = "injection-probe";

const BUILTIN: &[(&str, &str)] = &[
    ("sql", "' or "),
    ("sql", "\" or "),
    ("sql", " or 1=1"),
    ("sql", "'or'1'='1"),
    ("sql", "' or '1'='1"),
    ("sql", "union select"),
    ("sql", "union all select"),
    ("sql", "information_schema"),
    ("sql", "sleep("),
    ("sql", "benchmark("),
    ("sql", "waitfor delay"),
    ("sql", "pg_sleep"),
    ("sql", "xp_cmdshell"),
    ("sql", "';--"),
    ("sql", "' --"),
    ("sql", "'--"),
    ("nosql", "[$ne]"),
    ("nosql", "[$gt]"),
    ("nosql", "[$regex]"),
    ("nosql", "[$where]"),
    ("nosql", "{\"$ne\""),
    ("nosql", "{\"$gt\""),
    ("nosql", "$where:"),
    ("traversal", "../"),
    ("traversal", "..\\"),
    ("traversal", "/etc/passwd"),
    ("traversal", "c:\\windows"),
    ("traversal", "win.ini"),
    ("traversal", "\0"),
    ("script", "<script"),
    ("script", "javascript:"),
    ("script", "onerror="),
    ("script", "onload="),
    ("script", "<svg"),
    ("script", "<img"),
    ("template", "{{"),
    ("template", "${"),
    ("template", "#{"),
    ("command", ";cat "),
    ("command", "|cat "),
    ("command", "$(curl"),
    ("command", "`id`"),
];

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
    pub fn build(&self) -> Injection {
        let mut categories: Vec<&'static str> = BUILTIN.iter().map(|(c, _)| *c).collect();
        let mut patterns: Vec<String> = BUILTIN.iter().map(|(_, p)| p.to_string()).collect();
        for p in &self.extra_patterns {
            categories.push("custom");
            patterns.push(p.to_lowercase());
        }
        let anchors = anchor_table(&patterns);
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .build(&patterns)
            .expect("patterns are plain strings");
        Injection { ac, anchors, categories, patterns, memo: SearchMemo::default() }
    }
}

/// Bytes seen in ordinary API targets, most common first; a byte not
/// listed is rarer than every listed one.
const COMMON: &[u8] = b"/aeiostnrlcpdumv1g0hb2f3k5w4y6x9j78qz-.&_=?%";

/// What a byte of a target may call for: a pattern's anchor (below),
/// decoding, or a look for a `/**/` comment.
const ANCHOR: u8 = 1;
const DECODE: u8 = 2;
const STAR: u8 = 4;

/// The classes of `%`, `+` and `*`, which [`normalise`] acts on.
const SPECIAL: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'%' as usize] = DECODE;
    t[b'+' as usize] = DECODE;
    t[b'*' as usize] = STAR;
    t
};

/// The classes of a text's bytes, together: one table lookup a byte, where
/// a SIMD search for each class costs more in setting up than a short
/// target takes to walk.
fn classes(table: &[u8; 256], b: &[u8]) -> u8 {
    b.iter().fold(0, |acc, &c| acc | table[c as usize])
}

/// [`SPECIAL`] with each pattern's rarest byte marked [`ANCHOR`] (in both
/// cases, as matching ignores ASCII case). Every pattern holds its anchor,
/// so a target holding none cannot match any pattern and skips the
/// automaton, which walks the target byte by byte (about 460 instructions
/// for an ordinary one).
fn anchor_table(patterns: &[String]) -> [u8; 256] {
    let rank = |b: u8| COMMON.iter().position(|&c| c == b.to_ascii_lowercase()).unwrap_or(COMMON.len());
    let mut table = SPECIAL;
    for p in patterns {
        if let Some(b) = p.bytes().max_by_key(|&b| rank(b)) {
            table[b.to_ascii_lowercase() as usize] |= ANCHOR;
            table[b.to_ascii_uppercase() as usize] |= ANCHOR;
        }
    }
    table
}

/// Decodes `%xx` (twice), `+` and SQL comments into what a backend sees.
pub fn normalise(target: &str) -> Cow<'_, str> {
    normalise_classed(target, classes(&SPECIAL, target.as_bytes()))
}

/// [`normalise`], given the [`SPECIAL`] classes of the target's bytes.
fn normalise_classed(target: &str, class: u8) -> Cow<'_, str> {
    let comment = |s: &str| memchr::memmem::find(s.as_bytes(), b"/**/").is_some();
    if class & DECODE == 0 {
        // Most targets: nothing encoded, and no comment standing for a space.
        return if class & STAR != 0 && comment(target) {
            Cow::Owned(target.replace("/**/", " "))
        } else {
            Cow::Borrowed(target)
        };
    }
    let once = percent_encoding::percent_decode_str(target).decode_utf8_lossy();
    let mut twice = percent_encoding::percent_decode_str(&once).decode_utf8_lossy().replace('+', " ");
    if comment(&twice) {
        twice = twice.replace("/**/", " ");
    }
    Cow::Owned(twice)
}

pub struct Injection {
    ac: AhoCorasick,
    /// [`anchor_table`].
    anchors: [u8; 256],
    categories: Vec<&'static str>,
    patterns: Vec<String>,
    /// Targets searched lately, and what was found in them.
    memo: SearchMemo,
}

impl Detector for Injection {
    fn observe(&mut self, o: &Obs<'_>, _c: &mut ClientState, out: &mut Vec<Signal>) {
        // One walk of the target says both whether it needs decoding and
        // whether it holds an anchor; a decoded one is looked at again.
        let raw = o.ex.target();
        let class = classes(&self.anchors, raw.as_bytes());
        // A target with no anchor that decodes to nothing else cannot
        // match; the rest are searched, or remembered from the last time
        // the same target came.
        let in_target = (class & (ANCHOR | DECODE | STAR) != 0)
            .then(|| {
                let (anchors, ac) = (&self.anchors, &self.ac);
                self.memo.find(raw.as_bytes(), || {
                    let target = normalise_classed(raw, class);
                    let anchored = match target {
                        Cow::Borrowed(_) => class & ANCHOR != 0,
                        Cow::Owned(ref t) => classes(anchors, t.as_bytes()) & ANCHOR != 0,
                    };
                    anchored.then(|| ac.find(target.as_ref())).flatten().map(|m| m.pattern().as_usize())
                })
            })
            .flatten();
        let ua = o.ex.user_agent().unwrap_or("");
        // In the user agent only template injection counts (Log4Shell's
        // `${jndi:`), and every template pattern holds a `{`: one SIMD scan
        // spares the automaton almost every user agent.
        let hit = in_target.map(|i| (i, "target")).or_else(|| {
            memchr::memchr(b'{', ua.as_bytes())?;
            self.ac
                .find(ua)
                .map(|m| m.pattern().as_usize())
                .filter(|&i| self.categories[i] == "template")
                .map(|i| (i, "user_agent"))
        });
        let Some((i, place)) = hit else { return };
        let category = self.categories[i];
        emit(out, || {
            Signal::new(
                NAME,
                INJECTION,
                o.key.hash32() as u64 ^ crate::detect::window::h64(category.as_bytes()),
                vec![o.key],
                format!("{} sent a {category} injection probe ({:?}) in its {place}", o.key, self.patterns[i]),
            )
            .endpoint(o.endpoint)
            .with("category", category)
            .with("pattern", self.patterns[i].clone())
            .with("in", place)
            .with("target", clip(o.ex.target(), 200))
            .with("status", o.status())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_patterns_hold_a_brace() {
        // `observe` skips user agents without one.
        assert!(BUILTIN.iter().filter(|(c, _)| *c == "template").all(|(_, p)| p.contains('{')));
    }

    #[test]
    fn decodes_before_matching() {
        assert_eq!(normalise("/a?q=1%2527%2520OR%25201%253D1"), "/a?q=1' OR 1=1");
        assert_eq!(normalise("/a?q=1+UNION/**/SELECT+x"), "/a?q=1 UNION SELECT x");
        assert_eq!(normalise("/a?q=1/**/UNION/**/SELECT"), "/a?q=1 UNION SELECT");
        assert!(matches!(normalise("/a/*/b"), Cow::Borrowed("/a/*/b")));
        let d = Spec::default().build();
        let m = |t: &str| {
            let t = normalise(t);
            let found = d.ac.find(t.as_ref()).map(|m| d.categories[m.pattern().as_usize()]);
            // The anchor scan must never hide a match.
            assert!(found.is_none() || classes(&d.anchors, t.as_bytes()) & ANCHOR != 0, "{t}");
            found
        };
        assert_eq!(m("/items?id=1%27%20OR%201=1--"), Some("sql"));
        assert_eq!(m("/users?name[$ne]=x"), Some("nosql"));
        assert_eq!(m("/static/..%2f..%2fetc/passwd"), Some("traversal"));
        assert_eq!(m("/search?q=%3Cscript%3Ealert(1)"), Some("script"));
        for clean in ["/api/v1/orders/42?sort=desc&limit=10", "/search?q=rock+and+roll", "/a/b/c.json"] {
            assert_eq!(m(clean), None, "{clean}");
        }
        assert_eq!(m("/WIN.INI"), Some("traversal"));
        assert_eq!(m("/ETC/PASSWD"), Some("traversal"));
    }

    #[test]
    fn every_pattern_holds_an_anchor_and_plain_paths_hold_none() {
        let spec = Spec { extra_patterns: vec!["zzz".into(), "Ünïcode".into()], ..Spec::default() };
        let d = spec.build();
        for p in &d.patterns {
            assert!(classes(&d.anchors, p.as_bytes()) & ANCHOR != 0, "{p:?} has no anchor");
            let upper = p.to_ascii_uppercase();
            assert!(classes(&d.anchors, upper.as_bytes()) & ANCHOR != 0, "{upper:?} has no anchor");
        }
        for plain in ["/api/v1/products/123", "/api/v1/orders/42/items", "/v2/accounts/abc-def"] {
            assert_eq!(classes(&d.anchors, plain.as_bytes()), 0, "{plain} would run the automaton or be decoded");
        }
    }
}
