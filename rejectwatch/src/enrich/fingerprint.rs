//! Header fingerprint: a short, stable hash of the method, the HTTP version
//! and the request's header names in the order sent. One library build
//! sends the same names in the same order; a script that borrows a
//! browser's user agent does not borrow its header order. (Our own scheme;
//! not JA4H, whose licence rules out use in a product.)

use sha2::{Digest, Sha256};

use crate::exchange::HeaderName;

/// Twelve hex digits, or `None` without header names (access logs).
pub fn fingerprint(method: &str, version: Option<u8>, header_names: &[HeaderName]) -> Option<String> {
    if header_names.is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([b' ', b'0' + version.unwrap_or(1).min(9)]);
    // Lower-cased through a stack buffer: this runs for every request.
    let mut buf = [0u8; 64];
    for name in header_names {
        h.update(b"\n");
        for chunk in name.as_bytes().chunks(buf.len()) {
            let lower = &mut buf[..chunk.len()];
            lower.copy_from_slice(chunk);
            lower.make_ascii_lowercase();
            h.update(lower);
        }
    }
    let d = h.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(12);
    for b in &d[..6] {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<HeaderName> {
        v.iter().map(|s| crate::exchange::header_name(s)).collect()
    }

    #[test]
    fn same_build_same_value_and_order_matters() {
        let requests = names(&["Host", "User-Agent", "Accept-Encoding", "Accept", "Connection"]);
        let a = fingerprint("GET", Some(1), &requests).unwrap();
        assert_eq!(a.len(), 12);
        // Case of names does not matter (proxies rewrite it); order does.
        assert_eq!(
            Some(a.clone()),
            fingerprint("GET", Some(1), &names(&["host", "user-agent", "accept-encoding", "accept", "connection"]))
        );
        let browser = names(&["Host", "Connection", "User-Agent", "Accept", "Accept-Encoding", "Accept-Language"]);
        assert_ne!(Some(a.clone()), fingerprint("GET", Some(1), &browser));
        assert_ne!(Some(a.clone()), fingerprint("POST", Some(1), &requests));
        assert_ne!(Some(a), fingerprint("GET", Some(0), &requests));
        assert_eq!(fingerprint("GET", Some(1), &[]), None);
    }
}
