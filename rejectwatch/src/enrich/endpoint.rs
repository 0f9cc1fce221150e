//! Endpoint templates: `/api/v1/orders/1234` is `/api/v1/orders/{id}`, with
//! `1234` kept as the resource id. Numbers, UUIDs, long hex or base64
//! tokens and emails in path segments become placeholders; the query string
//! is split into parameter names (values stay in `target` only).

/// What one path segment is, if it is a value rather than a name.
fn placeholder(seg: &str) -> Option<&'static str> {
    let b = seg.as_bytes();
    if b.is_empty() {
        return None;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return Some("{id}");
    }
    if is_uuid(b) {
        return Some("{uuid}");
    }
    if seg.contains('@') && seg.contains('.') {
        return Some("{email}");
    }
    if b.len() >= 16 && b.iter().all(u8::is_ascii_hexdigit) {
        return Some("{hex}");
    }
    // Tokens: long, and mixing digits with letters (a word is not a token).
    if b.len() >= 20
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'=' | b'.' | b'~'))
        && b.iter().any(u8::is_ascii_digit)
        && b.iter().any(u8::is_ascii_alphabetic)
    {
        return Some("{token}");
    }
    None
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

#[derive(Debug, PartialEq, Eq, Default)]
pub struct Endpoint {
    pub template: String,
    /// The last templated value (the object being asked for).
    pub resource_id: Option<String>,
    pub query_params: Vec<String>,
}

/// Splits a request target (origin or absolute form) into its template.
pub fn template(target: &str) -> Endpoint {
    // Absolute form: drop scheme and authority. (Origin form, nearly every
    // request, starts with '/' and skips the search.)
    let target = match if target.starts_with('/') { None } else { target.find("://") } {
        Some(i) => target[i + 3..].find('/').map_or("/", |p| &target[i + 3 + p..]),
        None => target,
    };
    // Byte searches: '?', '#' and '/' are ASCII, so every cut is on a char
    // boundary, and a byte loop beats the char searcher on short segments.
    let cut = target.bytes().position(|b| b == b'?' || b == b'#');
    let (path, query) = match cut {
        Some(i) if target.as_bytes()[i] == b'?' => {
            (&target[..i], Some(target[i + 1..].split('#').next().unwrap_or("")))
        }
        Some(i) => (&target[..i], None),
        None => (target, None),
    };
    let mut out = Endpoint { template: String::with_capacity(path.len()), ..Default::default() };
    let mut start = 0;
    let segments = path.bytes().enumerate().filter(|(_, b)| *b == b'/').map(|(i, _)| i).chain([path.len()]);
    for (n, end) in segments.enumerate() {
        let seg = &path[start..end];
        start = end + 1;
        if n > 0 {
            out.template.push('/');
        }
        match placeholder(seg) {
            Some(p) => {
                out.template.push_str(p);
                out.resource_id = Some(seg.to_string());
            }
            None => out.template.push_str(seg),
        }
    }
    if out.template.is_empty() {
        out.template.push('/');
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            if !out.query_params.iter().any(|n| n == name) {
                out.query_params.push(name.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &str, Option<&str>, &[&str])] = &[
            ("/api/v1/orders/1234", "/api/v1/orders/{id}", Some("1234"), &[]),
            (
                "/api/v1/users/7/orders/99?expand=items&x=1&x=2",
                "/api/v1/users/{id}/orders/{id}",
                Some("99"),
                &["expand", "x"],
            ),
            (
                "/files/3f2504e0-4f89-11d3-9a0c-0305e82c3301",
                "/files/{uuid}",
                Some("3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
                &[],
            ),
            ("/blobs/deadbeefdeadbeef00", "/blobs/{hex}", Some("deadbeefdeadbeef00"), &[]),
            ("/reset/eyJhbGciOiJIUzI1NiJ9abc123", "/reset/{token}", Some("eyJhbGciOiJIUzI1NiJ9abc123"), &[]),
            ("/users/jane.doe@example.com/profile", "/users/{email}/profile", Some("jane.doe@example.com"), &[]),
            ("/api/v1/export.csv", "/api/v1/export.csv", None, &[]),
            ("/internationalization-settings", "/internationalization-settings", None, &[]),
            ("/", "/", None, &[]),
            ("", "/", None, &[]),
            ("*", "*", None, &[]),
            ("http://api.example.com/v2/items/5?q=1", "/v2/items/{id}", Some("5"), &["q"]),
            ("/.env", "/.env", None, &[]),
            ("/search?q=' OR 1=1--", "/search", None, &["q"]),
            ("/a/7?x=1#top", "/a/{id}", Some("7"), &["x"]),
            ("/a/b#frag?x=1", "/a/b", None, &[]),
            ("/a//b/", "/a//b/", None, &[]),
            ("/a?x=1?y=2&z", "/a", None, &["x", "z"]),
        ];
        for (target, tpl, rid, params) in cases {
            let e = template(target);
            assert_eq!(e.template, *tpl, "{target}");
            assert_eq!(e.resource_id.as_deref(), *rid, "{target}");
            assert_eq!(e.query_params, *params, "{target}");
        }
    }
}
