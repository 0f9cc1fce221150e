//! Header fingerprint: a short, stable hash of the method, the HTTP version
//! and the request's header names in the order sent. One library build
//! sends the same names in the same order; a script that borrows a
//! browser's user agent does not borrow its header order. (Our own scheme;
//! not JA4H, whose licence rules out use in a product.)

use std::{
    borrow::Cow,
    hash::{Hash, Hasher},
};

use hashbrown::{Equivalent, HashMap};
use sha2::{Digest, Sha256};

use crate::exchange::{Fingerprint, HeaderName, Method};

/// Fingerprints already computed, by their inputs: a client library sends
/// the same names in the same order on every request, so a few hundred
/// entries answer nearly every exchange without hashing its names again
/// or allocating the result. Bounded: emptied when full (the values are a
/// pure function of the key, so this changes no output).
pub struct Fingerprints {
    known: HashMap<Key, Fingerprint, crate::hashseed::State>,
}

/// Distinct method/version/name sequences remembered at once.
const KNOWN_MAX: usize = 4096;

/// A cache key, owned.
struct Key {
    method: Method,
    version: Option<u8>,
    names: Vec<HeaderName>,
}

/// The same key, borrowed from the exchange: looked up without a copy.
struct KeyRef<'a> {
    method: &'a str,
    version: Option<u8>,
    names: &'a [HeaderName],
}

/// Keys hold only shared names and methods (see [`Fingerprints::of`]),
/// and each shared spelling is one static string, so a name is known by
/// its address: hashing and comparing addresses replaces hashing and
/// comparing every name's bytes. (The same text at another address would
/// only take an entry of its own: the value depends on the text alone.)
fn addr(s: &str) -> usize {
    s.as_ptr() as usize
}

fn hash_parts<H: Hasher>(method: &str, version: Option<u8>, names: &[HeaderName], h: &mut H) {
    addr(method).hash(h);
    version.hash(h);
    names.len().hash(h);
    for n in names {
        addr(n).hash(h);
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_parts(&self.method, self.version, &self.names, h);
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_parts(self.method, self.version, self.names, h);
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, k: &Key) -> bool {
        let same = |a: &str, b: &str| std::ptr::eq(a, b);
        same(self.method, &k.method)
            && self.version == k.version
            && self.names.len() == k.names.len()
            && self.names.iter().zip(&k.names).all(|(a, b)| same(a, b))
    }
}

impl PartialEq for Key {
    fn eq(&self, k: &Key) -> bool {
        KeyRef { method: &self.method, version: self.version, names: &self.names }.equivalent(k)
    }
}

impl Eq for Key {}

impl Default for Fingerprints {
    fn default() -> Self {
        Self { known: HashMap::with_hasher(crate::hashseed::state()) }
    }
}

impl Fingerprints {
    /// [`fingerprint`], shared with earlier requests that had the same one.
    pub fn of(&mut self, method: &Method, version: Option<u8>, names: &[HeaderName]) -> Option<Fingerprint> {
        if names.is_empty() {
            return None;
        }
        // Only lists of shared (common) names and a registered method are
        // remembered: a key then costs one vector, and a client sending
        // names of its own invention cannot make every request pay for
        // copying them into the cache as well as for the hash.
        if matches!(method, Cow::Owned(_)) || names.iter().any(|n| matches!(n, Cow::Owned(_))) {
            return fingerprint(method, version, names);
        }
        if let Some(fp) = self.known.get(&KeyRef { method, version, names }) {
            return Some(*fp);
        }
        let fp = fingerprint(method, version, names)?;
        if self.known.len() >= KNOWN_MAX {
            self.known.clear();
        }
        self.known.insert(Key { method: method.clone(), version, names: names.to_vec() }, fp);
        Some(fp)
    }
}

/// The fingerprint of a request head, or `None` without header names
/// (access logs).
pub fn fingerprint(method: &str, version: Option<u8>, header_names: &[HeaderName]) -> Option<Fingerprint> {
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
    Some(Fingerprint(d[..6].iter().fold(0, |v, &b| v << 8 | u64::from(b))))
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
        assert_eq!(a.to_string().len(), 12);
        // Case of names does not matter (proxies rewrite it); order does.
        assert_eq!(
            Some(a),
            fingerprint("GET", Some(1), &names(&["host", "user-agent", "accept-encoding", "accept", "connection"]))
        );
        let browser = names(&["Host", "Connection", "User-Agent", "Accept", "Accept-Encoding", "Accept-Language"]);
        assert_ne!(Some(a), fingerprint("GET", Some(1), &browser));
        assert_ne!(Some(a), fingerprint("POST", Some(1), &requests));
        assert_ne!(Some(a), fingerprint("GET", Some(0), &requests));
        assert_eq!(fingerprint("GET", Some(1), &[]), None);
    }

    #[test]
    fn written_as_the_first_six_bytes_of_the_digest_in_hex() {
        let fp = fingerprint("GET", Some(1), &names(&["Host", "User-Agent"])).unwrap();
        let digest = Sha256::digest(b"GET 1\nhost\nuser-agent");
        let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(fp.to_string(), hex);
        assert_eq!(serde_json::to_string(&fp).unwrap(), format!("\"{hex}\""));
        // Leading zero bytes keep their digits.
        assert_eq!(Fingerprint(0xab).to_string(), "0000000000ab");
    }

    #[test]
    fn cache_answers_as_the_function_does() {
        let mut fps = Fingerprints::default();
        let a = names(&["Host", "User-Agent", "Accept"]);
        let b = names(&["Host", "Accept", "User-Agent"]);
        let get: Method = "GET".into();
        for _ in 0..2 {
            for (m, v, n) in
                [(&get, Some(1), &a), (&get, Some(1), &b), (&get, Some(0), &a), (&"POST".into(), Some(1), &a)]
            {
                assert_eq!(fps.of(m, v, n), fingerprint(m, v, n));
            }
        }
        assert_eq!(fps.known.len(), 4);
        assert_eq!(fps.of(&get, Some(1), &[]), None);
        // Invented names and methods are answered, not remembered.
        let odd = names(&["Host", "X-Mine"]);
        assert_eq!(fps.of(&get, Some(1), &odd), fingerprint("GET", Some(1), &odd));
        let propfind: Method = Cow::Owned("PROPFIND".into());
        assert_eq!(fps.of(&propfind, Some(1), &a), fingerprint("PROPFIND", Some(1), &a));
        assert_eq!(fps.known.len(), 4);
        // Bounded: a flood of distinct lists of common names never grows it
        // past the cap.
        let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];
        for i in 0..(KNOWN_MAX + 10) {
            let m: Method = methods[i % 9].into();
            let n = names(&vec!["Accept"; 1 + i / 9]);
            assert_eq!(fps.of(&m, Some(1), &n), fingerprint(&m, Some(1), &n));
        }
        assert!(fps.known.len() <= KNOWN_MAX);
    }
}
