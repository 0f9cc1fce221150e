//! Who is calling, without keeping the credential: a keyed hash
//! (HMAC-SHA-256 with a per-install secret) of the API key, the bearer
//! token's subject (its `sub` claim when it is a JWT, read without
//! verification), the bearer token itself, the Basic-auth user, or a log's
//! user id. The same caller gets the same identity on this install and an
//! unguessable one anywhere else; raw credentials go nowhere.

use std::borrow::Cow;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::{
    ascii::length_bit,
    exchange::{Exchange, Identity},
};

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Request headers that carry an API key (case-insensitive).
    pub api_key_headers: Vec<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self { api_key_headers: vec!["x-api-key".into(), "api-key".into(), "x-auth-token".into()] }
    }
}

pub struct IdentityHasher {
    /// The MAC with the key already absorbed: cloned per credential, so
    /// the key's two blocks are not hashed again for each.
    keyed: Hmac<Sha256>,
    api_key_headers: Vec<String>,
    recent: Recent,
    /// The [`length_bit`]s of the names a credential's header has.
    lengths: u64,
    /// Where the first header of each api-key name is, then the first
    /// Authorization: one walk of the names finds them all.
    found: Vec<Option<usize>>,
}

/// What a credential, as presented, came to: most clients present the
/// same key or token on every request, and decoding it (base64, a JWT's
/// JSON) and the HMAC's two SHA-256 blocks were a third of enrichment on
/// traffic where every request carries one (the seven-actor scenario).
///
/// Direct-mapped, keyed by a SipHash-1-3 of the presented text under a
/// per-process random key (std's `RandomState`): what is kept is that
/// 64-bit tag and the identity, never the credential, and a wrong identity
/// needs two credentials whose tags collide under a key no client sees.
struct Recent {
    /// A power of two of them.
    slots: Box<[Remembered]>,
    hasher: std::hash::RandomState,
}

/// A credential's tag (never 0, the empty slot's) and what it came to.
type Remembered = (u64, Option<(&'static str, Identity)>);

/// Credentials remembered: 65 536 slots of 32 bytes, 2 MiB. Enough that
/// a client polling once a minute among 30 000 others that present
/// credentials usually finds its own still there.
const RECENT: usize = 65_536;

/// Where a credential was presented, as part of its tag: the same text
/// as an API key and as an Authorization header are different
/// credentials.
#[derive(Hash, Clone, Copy)]
enum Presented {
    ApiKey(usize),
    Authorization,
    LogUser,
}

impl Recent {
    fn new(slots: usize) -> Self {
        Self { slots: vec![(0, None); slots.next_power_of_two()].into(), hasher: std::hash::RandomState::new() }
    }

    /// The identity `text` (presented at `at`) comes to, from memory or
    /// worked out by `work` and remembered.
    fn get_or(
        &mut self,
        at: Presented,
        text: &str,
        work: impl FnOnce() -> Option<(&'static str, Identity)>,
    ) -> Option<(&'static str, Identity)> {
        use std::hash::BuildHasher as _;
        let tag = self.hasher.hash_one((at, text)) | 1;
        let slot = &mut self.slots[(tag >> 1) as usize & (self.slots.len() - 1)];
        if slot.0 == tag {
            return slot.1;
        }
        *slot = (tag, work());
        slot.1
    }
}

impl IdentityHasher {
    pub fn new(key: [u8; 32], api_key_headers: Vec<String>) -> Self {
        Self::remembering(key, api_key_headers, RECENT)
    }

    fn remembering(key: [u8; 32], api_key_headers: Vec<String>, slots: usize) -> Self {
        let lengths =
            api_key_headers.iter().map(|h| length_bit(h.len())).fold(length_bit(AUTHORIZATION.len()), |a, b| a | b);
        Self {
            keyed: Hmac::<Sha256>::new_from_slice(&key).expect("any key length"),
            found: Vec::with_capacity(api_key_headers.len() + 1),
            api_key_headers,
            recent: Recent::new(slots),
            lengths,
        }
    }

    /// The same key and headers with nothing remembered, for another
    /// thread (what is remembered changes no identity, only its cost).
    pub fn fork(&self) -> Self {
        Self {
            keyed: self.keyed.clone(),
            api_key_headers: self.api_key_headers.clone(),
            recent: Recent::new(self.recent.slots.len()),
            lengths: self.lengths,
            found: Vec::with_capacity(self.found.capacity()),
        }
    }

    /// Sets `identity`/`identity_kind` from the credentials present.
    pub fn apply(&mut self, ex: &mut Exchange) {
        if let Some((kind, id)) = self.identify(ex) {
            ex.identity = Some(id);
            ex.identity_kind = Some(kind);
        }
    }

    fn identify(&mut self, ex: &Exchange) -> Option<(&'static str, Identity)> {
        let Self { keyed, api_key_headers, recent, lengths, found } = self;
        // The first header of each name, as `first_header` would find it,
        // in one walk rather than a walk per name.
        let auth = api_key_headers.len();
        found.clear();
        found.resize(auth + 1, None);
        for (j, n) in ex.header_names.iter().enumerate() {
            if *lengths & length_bit(n.len()) == 0 {
                continue;
            }
            for (i, h) in api_key_headers.iter().map(String::as_str).chain([AUTHORIZATION]).enumerate() {
                if found[i].is_none() && crate::ascii::eq_ignore_case(n, h) {
                    found[i] = Some(j);
                }
            }
        }
        let header = |at: Option<usize>| ex.request.value(at?).map(crate::ascii::trim);
        for (i, at) in found[..auth].iter().enumerate() {
            if let Some(v) = header(*at).filter(|v| !v.is_empty()) {
                return recent
                    .get_or(Presented::ApiKey(i), v, || Some(("api_key", hash(keyed, "api_key", v.as_bytes()))));
            }
        }
        if let Some(auth) = header(found[auth])
            && let Some(found) = recent.get_or(Presented::Authorization, auth, || authorization(keyed, auth))
        {
            return Some(found);
        }
        let user = ex.raw_identity.as_deref().filter(|v| !v.is_empty())?;
        recent.get_or(Presented::LogUser, user, || Some(("user_id", hash(keyed, "user_id", user.as_bytes()))))
    }
}

/// The header a bearer token or basic credentials come in.
const AUTHORIZATION: &str = "authorization";

fn hash(keyed: &Hmac<Sha256>, kind: &str, value: &[u8]) -> Identity {
    let mut mac = keyed.clone();
    mac.update(kind.as_bytes());
    mac.update(b":");
    mac.update(value);
    let digest = mac.finalize().into_bytes();
    Identity(u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")))
}

/// The identity an Authorization header's value names, if any.
fn authorization(keyed: &Hmac<Sha256>, auth: &str) -> Option<(&'static str, Identity)> {
    let id = |kind: &'static str, value: &[u8]| Some((kind, hash(keyed, kind, value)));
    let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
    let rest = rest.trim();
    // A JWT subject and the bearer token hash apart on purpose: they are
    // different namespaces of identity.
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return match jwt_subject(rest) {
            Some(sub) => id("jwt_sub", sub.as_bytes()),
            None => id("bearer", rest.as_bytes()),
        };
    }
    if scheme.eq_ignore_ascii_case("basic") {
        // Decoded here rather than onto the heap.
        let mut scratch = [0u8; 192];
        if let Some(user) = decode_base64(rest, &mut scratch).as_deref().and_then(basic_user) {
            return id("basic", user);
        }
    }
    None
}

/// Standard base64, decoded into `scratch` when it fits.
fn decode_base64<'a>(b64: &str, scratch: &'a mut [u8]) -> Option<Cow<'a, [u8]>> {
    let engine = &base64::engine::general_purpose::STANDARD;
    match engine.decode_slice(b64, scratch) {
        Ok(n) => Some(Cow::Borrowed(&scratch[..n])),
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => engine.decode(b64).ok().map(Cow::Owned),
        Err(_) => None,
    }
}

/// The user of a decoded Basic pair: the text before the first `:`, not
/// empty, of a pair that is valid UTF-8.
fn basic_user(pair: &[u8]) -> Option<&[u8]> {
    std::str::from_utf8(pair).ok()?;
    let end = pair.iter().position(|&b| b == b':').filter(|&n| n > 0)?;
    Some(&pair[..end])
}

/// The `sub` claim of a JWT, read without verifying it.
fn jwt_subject(token: &str) -> Option<String> {
    /// Only the claim wanted, borrowed where the JSON allows.
    #[derive(serde::Deserialize)]
    struct Claims<'a> {
        #[serde(borrow, default)]
        sub: Option<Sub<'a>>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Sub<'a> {
        Text(#[serde(borrow)] Cow<'a, str>),
        Number(serde_json::Number),
        Other(serde::de::IgnoredAny),
    }
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice::<Claims<'_>>(&bytes).ok()?.sub? {
        Sub::Text(s) if !s.is_empty() => Some(s.into_owned()),
        Sub::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(headers: &[(&str, &str)]) -> Exchange {
        let mut e = Exchange::default();
        e.set_headers(headers);
        e
    }

    /// A token whose `sub` claim is the JSON `sub`.
    fn jwt_raw(sub: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b("{\"alg\":\"HS256\"}"), b(&format!("{{\"sub\":{sub}}}")))
    }

    fn jwt(sub: &str, extra: &str) -> String {
        jwt_raw(&format!("\"{sub}\"{extra}"))
    }

    /// The identity (as written out) and its kind for these headers.
    fn identify(h: &mut IdentityHasher, headers: &[(&str, &str)]) -> (Option<String>, Option<&'static str>) {
        let mut e = ex(headers);
        h.apply(&mut e);
        (e.identity.map(|i| i.to_string()), e.identity_kind)
    }

    #[test]
    fn table() {
        let mut h = IdentityHasher::new([7; 32], vec!["x-api-key".into()]);
        let mut id = |headers: &[(&str, &str)]| identify(&mut h, headers);
        let (a, kind) = id(&[("X-Api-Key", "k-123")]);
        assert_eq!(kind, Some("api_key"));
        assert_eq!(a.as_ref().map(String::len), Some(16));
        assert_eq!(id(&[("x-api-key", "k-123")]).0, a, "stable");
        assert_ne!(id(&[("x-api-key", "k-124")]).0, a);
        // Two tokens for one subject are one identity.
        let t1 = jwt("user-42", ",\"iat\":1");
        let t2 = jwt("user-42", ",\"iat\":2");
        let (s1, k) = id(&[("Authorization", &format!("Bearer {t1}"))]);
        assert_eq!(k, Some("jwt_sub"));
        assert_eq!(id(&[("authorization", &format!("bearer {t2}"))]).0, s1);
        assert_eq!(id(&[("Authorization", "Bearer opaque-token")]).1, Some("bearer"));
        // Basic: the user, not the password.
        let basic = |up: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(up));
        let (b1, k) = id(&[("Authorization", &basic("alice:pw1"))]);
        assert_eq!(k, Some("basic"));
        assert_eq!(id(&[("Authorization", &basic("alice:other"))]).0, b1);
        assert_eq!(id(&[("Authorization", "Basic !!!not-base64")]), (None, None));
        assert_eq!(id(&[("Authorization", "Bearer ")]), (None, None));
        assert_eq!(id(&[]), (None, None));
        // Another install, another hash.
        let mut other = IdentityHasher::new([8; 32], vec!["x-api-key".into()]);
        assert_ne!(identify(&mut other, &[("x-api-key", "k-123")]).0, a);
        // A log's user id.
        let mut e = Exchange { raw_identity: Some("u-9".into()), ..Default::default() };
        h.apply(&mut e);
        assert_eq!(e.identity_kind, Some("user_id"));
    }

    #[test]
    fn the_header_that_counts_is_the_one_a_lookup_per_name_finds() {
        // Api-key names in their configured order, then Authorization; of
        // each name the first header only, whatever its case; an empty
        // first one passes to the next name, not to a later duplicate.
        let names = vec!["x-api-key".into(), "api-key".into(), "authorization".into()];
        let mut h = IdentityHasher::new([7; 32], names);
        let mut id = |headers: &[(&str, &str)]| identify(&mut h, headers);
        let of = |v: &str| Some(hash(&Hmac::new_from_slice(&[7; 32]).unwrap(), "api_key", v.as_bytes()).to_string());
        assert_eq!(id(&[("Api-Key", "b"), ("X-API-KEY", "a")]).0, of("a"));
        assert_eq!(id(&[("x-api-key", "a"), ("x-api-key", "z")]).0, of("a"));
        assert_eq!(id(&[("x-api-key", " "), ("x-api-key", "z"), ("api-key", "b")]).0, of("b"));
        // Configured as an api-key name, Authorization is a key like any.
        assert_eq!(id(&[("AUTHORIZATION", "Bearer t")]), (of("Bearer t"), Some("api_key")));
        let mut plain = IdentityHasher::new([7; 32], vec!["x-api-key".into()]);
        assert_eq!(identify(&mut plain, &[("Accept", "x"), ("AUTHORIZATION", "Bearer t")]).1, Some("bearer"));
        assert_eq!(identify(&mut plain, &[("authorizatio", "Bearer t"), ("x-api-keys", "k")]), (None, None));
    }

    #[test]
    fn identities_are_hmac_sha256_and_decode_every_form() {
        let mut h = IdentityHasher::new([7; 32], vec!["x-api-key".into()]);
        let mut id = |headers: &[(&str, &str)]| identify(&mut h, headers);
        // The first 8 bytes of HMAC-SHA-256(key, "kind:value"), in hex
        // (Python's hmac module gives the same), so identities written
        // by earlier builds still match.
        assert_eq!(id(&[("x-api-key", "k-123")]).0.as_deref(), Some("3793e996bc9756d5"));
        // Basic credentials longer than the stack buffer.
        let long = format!("{}:pw", "u".repeat(200));
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(&long));
        assert_eq!(id(&[("Authorization", &basic)]), (Some("19d9ff5b79c05865".into()), Some("basic")));
        let mut no_user = |pair: &str| {
            let v = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
            id(&[("Authorization", &v)])
        };
        assert_eq!(no_user("no-colon"), (None, None));
        assert_eq!(no_user(":pw"), (None, None));
        assert_eq!(no_user("\u{fffd}x:pw").1, Some("basic"));
        // A numeric subject is its decimal text; a subject of another type
        // is no subject, and the token itself identifies.
        let (sub, kind) = id(&[("Authorization", &format!("Bearer {}", jwt_raw("42")))]);
        assert_eq!((sub.as_deref(), kind), (Some("4bcfe5b2a6f6a63b"), Some("jwt_sub")));
        assert_eq!(id(&[("Authorization", &format!("Bearer {}", jwt_raw("[1]")))]).1, Some("bearer"));
        assert_eq!(id(&[("Authorization", &format!("Bearer {}", jwt_raw("\"\"")))]).1, Some("bearer"));
        // Escaped text is read unescaped: both spellings are one subject.
        assert_eq!(
            id(&[("Authorization", &format!("Bearer {}", jwt_raw("\"a\\u0062\"")))]).0,
            id(&[("Authorization", &format!("Bearer {}", jwt_raw("\"ab\"")))]).0
        );
    }

    #[test]
    fn remembered_credentials_come_to_what_working_them_out_gives() {
        // Four times as many credentials as the memory has slots, in every
        // form, each presented twice in a row and again later: every answer
        // is what a hasher that has seen nothing gives, whichever slot it
        // shared.
        let slots = 256;
        let mut h = IdentityHasher::remembering([7; 32], vec!["x-api-key".into()], slots);
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let presented = |i: usize| -> Vec<(String, String)> {
            match i % 5 {
                0 => vec![("x-api-key".into(), format!("k-{i}"))],
                1 => vec![("Authorization".into(), format!("Basic {}", b64(&format!("user{i}:pw"))))],
                2 => vec![("Authorization".into(), format!("Bearer {}", jwt(&format!("s{}", i / 2), "")))],
                3 => vec![("Authorization".into(), format!("Bearer opaque-{i}"))],
                // An Authorization header that names no one, and the same
                // text as an API key elsewhere: not one credential.
                _ => vec![("Authorization".into(), format!("k-{}", i - 4)), ("x-api-key".into(), String::new())],
            }
        };
        let fresh = |pairs: &[(&str, &str)]| {
            identify(&mut IdentityHasher::remembering([7; 32], vec!["x-api-key".into()], 1), pairs)
        };
        assert_eq!(size_of::<Remembered>(), 32);
        let n = 4 * slots;
        for round in 0..2 {
            for i in 0..n {
                let headers = presented(i);
                let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                let want = fresh(&pairs);
                for _ in 0..2 {
                    assert_eq!(identify(&mut h, &pairs), want, "credential {i}, round {round}");
                }
            }
        }
    }
}
