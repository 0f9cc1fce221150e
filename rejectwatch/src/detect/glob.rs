//! Endpoint globs (`*` matches any run of characters, everything else is
//! literal), compiled once when a detector is built: they are matched
//! against the endpoint of every exchange, so splitting the pattern and
//! building substring searchers per match would cost more than the match.

use memchr::memmem::Finder;

/// One compiled pattern.
#[derive(Clone, Debug)]
struct Glob {
    /// The whole pattern when it has no `*`.
    literal: Option<Box<str>>,
    first: Box<str>,
    last: Box<str>,
    /// The parts between stars, in order.
    inner: Vec<Finder<'static>>,
}

impl Glob {
    fn new(pattern: &str) -> Self {
        let parts: Vec<&str> = pattern.split('*').collect();
        if parts.len() == 1 {
            return Self { literal: Some(pattern.into()), first: "".into(), last: "".into(), inner: Vec::new() };
        }
        Self {
            literal: None,
            first: parts[0].into(),
            last: parts[parts.len() - 1].into(),
            inner: parts[1..parts.len() - 1]
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| Finder::new(p.as_bytes()).into_owned())
                .collect(),
        }
    }

    fn matches(&self, s: &str) -> bool {
        if let Some(l) = &self.literal {
            return **l == *s;
        }
        let (first, last) = (self.first.as_bytes(), self.last.as_bytes());
        let s = s.as_bytes();
        if s.len() < first.len() + last.len() || !s.starts_with(first) || !s.ends_with(last) {
            return false;
        }
        let mut rest = &s[first.len()..s.len() - last.len()];
        for f in &self.inner {
            match f.find(rest) {
                Some(i) => rest = &rest[i + f.needle().len()..],
                None => return false,
            }
        }
        true
    }
}

/// A set of patterns; matches when any does.
#[derive(Clone, Debug, Default)]
pub struct Globs(Vec<Glob>);

impl Globs {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        Self(patterns.iter().map(|p| Glob::new(p.as_ref())).collect())
    }

    pub fn any(&self, s: &str) -> bool {
        self.0.iter().any(|g| g.matches(s))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str, s: &str) -> bool {
        Globs::new(&[p]).any(s)
    }

    #[test]
    fn globs() {
        assert!(glob("/api/v1/*", "/api/v1/orders/{id}"));
        assert!(glob("/api/*/export", "/api/v2/export"));
        assert!(!glob("/api/*/export", "/api/v2/exports"));
        assert!(glob("/health", "/health") && !glob("/health", "/healthz"));
        assert!(glob("*login*", "/api/v1/login") && glob("*login*", "login") && !glob("*login*", "/logout"));
        assert!(glob("*/auth*", "/oauth/auth/token") && !glob("*/auth*", "/oauth"));
        // Parts may not overlap: "/a*a/" needs two a's around the star.
        assert!(!glob("/a*a/", "/a/") && glob("/a*a/", "/aa/"));
        assert!(glob("/x/**", "/x/y") && glob("*", ""));
        assert!(glob("/a*b*c", "/abxbc") && !glob("/a*b*c", "/acb"));
        assert!(!Globs::new::<&str>(&[]).any("/"));
    }
}
