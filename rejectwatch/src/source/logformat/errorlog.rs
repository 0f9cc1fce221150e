//! Lines of a server's own log that end up beside its access log (a
//! container's stdout carries both): nginx and Apache error logs, and the
//! servers' own JSON or logfmt lines. They are counted apart, not as
//! lines that could not be read.

fn digits(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_digit)
}

/// nginx: `2026/12/07 14:00:00 [error] 123#0: *1 …`.
fn nginx(b: &[u8]) -> bool {
    b.len() > 21
        && digits(&b[0..4])
        && b[4] == b'/'
        && digits(&b[5..7])
        && b[7] == b'/'
        && digits(&b[8..10])
        && b[10] == b' '
        && digits(&b[11..13])
        && b[13] == b':'
        && b[19] == b' '
        && b[20] == b'['
}

/// Apache: `[Mon Dec 07 14:00:00.123 2026] [core:error] …` (2.4) or
/// `[Mon Dec 07 14:00:00 2026] [error] …` (2.2).
fn apache(s: &str) -> bool {
    const DAYS: [&str; 7] = ["Mon ", "Tue ", "Wed ", "Thu ", "Fri ", "Sat ", "Sun "];
    let Some(rest) = s.strip_prefix('[') else { return false };
    let Some((stamp, after)) = rest.split_once("] [") else { return false };
    DAYS.iter().any(|d| stamp.starts_with(d)) && stamp.len() >= 24 && !after.is_empty()
}

/// Traefik's own text log: `time="…" level=error msg="…"`.
fn logfmt(s: &str) -> bool {
    s.starts_with("time=\"") && s.contains(" level=")
}

/// Whether `line` is an error-log line (checked before any access format).
pub fn is_error_line(line: &str) -> bool {
    nginx(line.as_bytes()) || apache(line) || logfmt(line)
}

/// Whether a JSON line no access format read is a server's own message
/// (`{"level":"info","msg":"server running"}` from Caddy or Traefik):
/// it has a level and a message and nothing that describes a request.
pub fn is_server_json(line: &str) -> bool {
    let Ok(serde_json::Value::Object(o)) = serde_json::from_str(line) else { return false };
    const REQUEST: [&str; 6] = ["request", "RequestMethod", "method", "status", "DownstreamStatus", "response_code"];
    o.contains_key("level")
        && (o.contains_key("msg") || o.contains_key("message"))
        && !REQUEST.iter().any(|k| o.contains_key(*k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_are_told_from_access_lines() {
        for line in [
            "2026/12/07 14:00:00 [error] 123#0: *1 open() \"/usr/share/nginx/html/x\" failed (2: No such file)",
            "2026/12/07 14:00:00 [notice] 1#1: start worker processes",
            "[Mon Dec 07 14:00:00.123456 2026] [core:error] [pid 123] [client 203.0.113.9:5555] AH00126: Invalid URI",
            "[Mon Dec 07 14:00:00 2026] [error] [client 203.0.113.9] File does not exist: /var/www/x",
            r#"time="2026-12-07T14:00:00Z" level=error msg="service not found""#,
        ] {
            assert!(is_error_line(line), "{line}");
        }
        for line in [
            r#"203.0.113.9 - - [07/Dec/2026:14:00:00 +0000] "GET / HTTP/1.1" 200 1"#,
            r#"[2026-12-07T14:00:00.310Z] "GET / HTTP/1.1" 200 - 0 1 2 1 "-" "curl" "id" "h" "u""#,
            "2026/12/07 14:00",
            "[Mon Dec 07",
            "[Foo Dec 07 14:00:00 2026] [error] x",
            "",
        ] {
            assert!(!is_error_line(line), "{line}");
        }
        assert!(is_server_json(r#"{"level":"info","ts":1.5,"logger":"http","msg":"server running"}"#));
        assert!(!is_server_json(r#"{"level":"info","msg":"handled request","request":{},"status":200}"#));
        assert!(!is_server_json(r#"{"level":"info""#));
        assert!(!is_server_json("[1]"));
    }
}
