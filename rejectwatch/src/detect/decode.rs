//! Text as a server decodes it, before payloads are looked for in it:
//! evasions encode a payload so that a filter reading the raw bytes misses
//! what the backend, which decodes, then runs. Undone here: percent
//! escapes until nothing changes (double and nested encoding: `%252e`),
//! IIS's `%uXXXX`, overlong UTF-8 (`%c0%ae` for `.`), HTML entities
//! (`&lt;`, `&#x3c;`, `&#60`), backslashes (read as slashes, as IIS and
//! Windows backends do), and SQL comments standing for spaces (`/**/`).
//! Never panics, whatever the bytes; bounded work per byte.

use std::borrow::Cow;

/// Rounds of percent-decoding: enough for the nesting scanners use, and a
/// bound on the work an attacker can ask for.
const ROUNDS: usize = 4;

/// `raw` decoded for matching (see the module docs). `plus` reads `+` as
/// a space (query strings and paths as servers of forms read them; not
/// header values). Borrowed when nothing needed decoding.
pub fn decode(raw: &str, plus: bool) -> Cow<'_, str> {
    let b = raw.as_bytes();
    let needs = b.iter().any(|&c| matches!(c, b'%' | b'&' | b'\\') || (plus && c == b'+'));
    if !needs {
        return comments(Cow::Borrowed(raw));
    }
    let mut bytes = b.to_vec();
    for _ in 0..ROUNDS {
        match percent(&bytes) {
            Some(next) => bytes = next,
            None => break,
        }
    }
    overlong(&mut bytes);
    if plus {
        for c in bytes.iter_mut().filter(|c| **c == b'+') {
            *c = b' ';
        }
    }
    let mut s = String::from_utf8_lossy(&bytes).into_owned();
    if s.contains('&')
        && let Some(e) = entities(&s)
    {
        // `&#37;3c`: an entity that made a percent escape.
        s = match percent(e.as_bytes()) {
            Some(p) => String::from_utf8_lossy(&p).into_owned(),
            None => e,
        };
    }
    if s.contains('\\') {
        s = s.replace('\\', "/");
    }
    comments(Cow::Owned(s))
}

/// What the injection and sensitive-file detectors match: a target decoded
/// with `+` as a space.
pub fn normalise(target: &str) -> Cow<'_, str> {
    decode(target, true)
}

fn comments(s: Cow<'_, str>) -> Cow<'_, str> {
    if memchr::memmem::find(s.as_bytes(), b"/**/").is_some() { Cow::Owned(s.replace("/**/", " ")) } else { s }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// One round of `%xx` and `%uXXXX`; `None` when nothing was escaped.
fn percent(b: &[u8]) -> Option<Vec<u8>> {
    memchr::memchr(b'%', b)?;
    let mut out = Vec::with_capacity(b.len());
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c))) {
                out.push(h << 4 | l);
                i += 3;
                changed = true;
                continue;
            }
            if matches!(b.get(i + 1), Some(b'u' | b'U'))
                && let Some(v) = b
                    .get(i + 2..i + 6)
                    .and_then(|d| d.iter().try_fold(0u32, |acc, &c| hex(c).map(|h| acc << 4 | u32::from(h))))
            {
                let ch = char::from_u32(v).unwrap_or(char::REPLACEMENT_CHARACTER);
                out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                i += 6;
                changed = true;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    changed.then_some(out)
}

/// Overlong UTF-8 sequences for ASCII (`C0 AE`, `E0 80 AE`) as the ASCII
/// byte: lenient decoders read them so, and traversal filters did not.
fn overlong(b: &mut Vec<u8>) {
    if !b.iter().any(|&c| c == 0xc0 || c == 0xc1 || c == 0xe0) {
        return;
    }
    let cont = |c: Option<&u8>| c.is_some_and(|&c| c & 0xc0 == 0x80);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if (c == 0xc0 || c == 0xc1) && cont(b.get(i + 1)) {
            out.push(((c & 0x1f) << 6) | (b[i + 1] & 0x3f));
            i += 2;
        } else if c == 0xe0 && b.get(i + 1).is_some_and(|&d| d & 0xe0 == 0x80) && cont(b.get(i + 2)) {
            let v = (u32::from(b[i + 1] & 0x3f) << 6) | u32::from(b[i + 2] & 0x3f);
            match u8::try_from(v) {
                Ok(a) if a < 0x80 => out.push(a),
                _ => out.extend_from_slice(&b[i..i + 3]),
            }
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    *b = out;
}

/// Named entities a payload needs, and numeric ones (`&#60;`, `&#x3c;`,
/// with or without the `;`); `None` when none was found.
fn entities(s: &str) -> Option<String> {
    const NAMED: &[(&str, char)] = &[
        ("lt", '<'),
        ("gt", '>'),
        ("quot", '"'),
        ("apos", '\''),
        ("amp", '&'),
        ("sol", '/'),
        ("bsol", '\\'),
        ("lpar", '('),
        ("rpar", ')'),
        ("colon", ':'),
        ("semi", ';'),
        ("num", '#'),
        ("dollar", '$'),
        ("lcub", '{'),
        ("rcub", '}'),
        ("newline", '\n'),
        ("tab", '\t'),
    ];
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let numeric = after.strip_prefix('#').and_then(|n| {
            let (digits, radix) = match n.strip_prefix(['x', 'X']) {
                Some(h) => (h, 16),
                None => (n, 10),
            };
            let len = digits.bytes().take(8).take_while(|c| (*c as char).is_digit(radix)).count();
            let v = u32::from_str_radix(&digits[..len], radix).ok().filter(|_| len > 0)?;
            let used = n.len() - digits.len() + len + 1;
            Some((char::from_u32(v).unwrap_or(char::REPLACEMENT_CHARACTER), used))
        });
        let named = || {
            NAMED.iter().find_map(|(name, c)| {
                let head = after.get(..name.len())?;
                head.eq_ignore_ascii_case(name).then_some((*c, name.len()))
            })
        };
        match numeric.or_else(named) {
            Some((c, used)) => {
                out.push(c);
                let tail = &after[used..];
                rest = tail.strip_prefix(';').unwrap_or(tail);
                changed = true;
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// Log4j lookups resolved the way Log4j would before it saw `${jndi:`:
/// `${lower:j}`, `${upper:N}`, `${::-d}`, `${env:X:-i}` give their letter
/// or default, and unknown lookups nothing. Whether a JNDI lookup is left
/// (`${${lower:j}ndi:ldap://…}`), for text holding `${` (lowercase).
pub fn hides_jndi(lower: &str) -> bool {
    let mut s = lower.to_string();
    // Each round removes one lookup: the text's length bounds the work.
    for _ in 0..64 {
        let Some(close) = s.find('}') else { break };
        let Some(open) = s[..close].rfind("${") else {
            // A `}` before any lookup: look past it.
            s.replace_range(..=close, "");
            continue;
        };
        let inner = &s[open + 2..close];
        if inner.starts_with("jndi:") {
            return true;
        }
        let value = match inner.find(":-") {
            Some(d) => inner[d + 2..].to_string(),
            None => match inner.split_once(':') {
                Some(("lower" | "upper", v)) => v.to_string(),
                _ => String::new(),
            },
        };
        s.replace_range(open..=close, &value);
    }
    s.contains("${jndi:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_servers_do() {
        assert_eq!(normalise("/a?q=1%2527%2520OR%25201%253D1"), "/a?q=1' OR 1=1");
        assert_eq!(normalise("/a?q=1+UNION/**/SELECT+x"), "/a?q=1 UNION SELECT x");
        assert_eq!(normalise("/%25252e%25252e/x"), "/../x");
        assert_eq!(normalise("/%c0%ae%c0%ae%c0%af"), "/../");
        assert_eq!(normalise("/%e0%80%ae%e0%80%ae/"), "/../");
        assert_eq!(normalise("/%u002e%u002e%u2215"), "/..\u{2215}");
        assert_eq!(normalise("/..%5c..%5cwin.ini"), "/../../win.ini");
        assert_eq!(normalise("/q?x=&lt;script&gt;&#x3c;svg&#60img"), "/q?x=<script><svg<img");
        assert_eq!(normalise("/q?x=%26lt%3Bscript"), "/q?x=<script");
        assert_eq!(normalise("/q?a=1&b=2&c"), "/q?a=1&b=2&c");
        assert_eq!(decode("a+b", false), "a+b");
        assert!(matches!(normalise("/a/*/b"), Cow::Borrowed("/a/*/b")));
        assert!(matches!(normalise("/api/v1/orders/42"), Cow::Borrowed(_)));
        // Broken escapes stay as they are; nothing panics.
        for odd in ["%", "%%", "%u", "%u12", "%zz", "&#", "&#x", "&#xffffffff;", "\u{e9}&amp", "%c0", "%e0%80"] {
            let _ = normalise(odd);
            let _ = decode(odd, false);
        }
    }

    #[test]
    fn nested_jndi_lookups() {
        for hidden in [
            "${${lower:j}ndi:ldap://x/a}",
            "${${::-j}${::-n}${::-d}${::-i}:rmi://x/a}",
            "${${env:nope:-j}ndi${env:nope:-:}ldap://x}",
            "${j${k8s:k5:-nd}i:dns://x}",
            "} ${jndi:ldap://x}",
        ] {
            assert!(hides_jndi(hidden), "{hidden}");
        }
        for plain in ["${amount}", "${price} and ${tax}", "${", "}}}{{{", "${lower:x}ndi"] {
            assert!(!hides_jndi(plain), "{plain}");
        }
    }
}
