//! The joined exchange: one request and the status that answered it, with
//! what the enrichers add. This is the project's `http.log` line
//! (`--exchanges`). Fields an enricher could not fill are left out.

use std::{borrow::Cow, fmt, net::IpAddr, sync::Arc};

use serde::{Serialize, Serializer};

use crate::time::Nanos;

/// A header fingerprint (`enrich::fingerprint`): the first 48 bits of a
/// SHA-256, written as 12 hex digits. A number rather than its text, as
/// [`Identity`] is, so that an exchange carries it without a reference
/// count to bump and drop (two atomic operations an exchange) and
/// detectors key their maps by it as it is. Defined here, beside the
/// exchange that carries it, so that the exchange depends on no enricher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012x}", self.0)
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A caller's identity (`enrich::identity`): 64 bits of the keyed hash,
/// written as 16 hex digits. A number rather than its text, so that an
/// exchange carries it without an allocation and detectors key their maps
/// by it as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Identity(pub u64);

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl serde::Serialize for Identity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// When the request head was seen.
    pub ts: Nanos,
    /// The socket source address of the request.
    pub peer: IpAddr,
    pub method: Method,
    /// Target, host, user agent and header values (see [`Exchange::target`]).
    pub request: RequestText,
    /// The response status, or null when none was captured.
    pub status: Option<u16>,
    pub header_names: Vec<HeaderName>,
    /// The head was cut short (snap length, lost segment, too many headers).
    pub truncated: bool,
    /// HTTP/1.x minor version, when the request line said.
    pub version: Option<u8>,
    /// The request line is not HTTP/1.x as written, yet reached the server
    /// (which usually answers 400): what was wrong with it.
    pub malformed: Option<Malformed>,

    /// The client: the peer, or the address a trusted proxy forwarded for.
    pub client: Option<IpAddr>,
    /// Where `client` came from: `peer` or the header that named it.
    pub client_source: Option<&'static str>,
    /// An IPv6 client's network (default /64): IPv6 clients rotate inside it.
    pub client_prefix: Option<String>,
    /// Forwarding headers sent by a peer we do not trust: ignored for
    /// attribution, kept as evidence of header manipulation.
    pub untrusted_forwarding: Vec<String>,
    /// Header values kept when the rest are forgotten, because they hold a
    /// byte a payload needs (`$`, `{`, `'`, …): what the injection
    /// detector reads of the headers besides the user agent. Never a
    /// credential's header; not written out.
    pub payload_headers: Vec<(HeaderName, Box<str>)>,
    /// Names from the GeoIP files, kept for the life of the process (see
    /// `enrich::geo`): a reference each, not a copy.
    pub country: Option<&'static str>,
    pub asn: Option<u32>,
    pub as_org: Option<&'static str>,
    /// Shared with the user-agent cache's entry, not copied per exchange.
    pub ua_product: Option<Arc<str>>,
    pub ua_version: Option<Arc<str>>,
    pub ua_family: Option<&'static str>,
    pub ua_platform: Option<&'static str>,
    /// Why no real browser sends this user agent, when none does.
    pub ua_impossible: Option<&'static str>,
    /// The user-agent classifier's hash of the trimmed text (0: none, or
    /// not enriched), so that later stages need not hash it again.
    pub ua_key: u64,
    /// Stable hash of method, version and header-name order and set.
    pub fingerprint: Option<Fingerprint>,
    /// The target's path with ids, UUIDs, tokens and emails templated.
    pub endpoint: Option<String>,
    pub resource_id: Option<String>,
    pub query_params: Vec<String>,
    /// Keyed hash of the credential (API key, bearer subject, basic user).
    pub identity: Option<Identity>,
    pub identity_kind: Option<&'static str>,

    /// An identity a log names in clear (`user_id`); hashed, never output.
    pub raw_identity: Option<String>,
    /// An endpoint template a log already gives.
    pub given_endpoint: Option<String>,
    /// What the detectors' searches found, when they ran before the
    /// exchange reached the engine (`detect::inspect`); the detectors
    /// search themselves when this is `None`. Not written out.
    pub searched: Option<Searched>,
}

/// The result of the detectors' payload searches of one exchange, each a
/// function of the exchange alone (see `detect::inspect`): an index into
/// the detector's own patterns, and for injection where it was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Searched {
    pub sensitive: Option<u32>,
    /// (pattern, place): 0 the target, 1 the user agent, 2 + n the n-th of
    /// [`Exchange::payload_headers`].
    pub injection: Option<(u32, u16)>,
}

impl Default for Exchange {
    fn default() -> Self {
        Self {
            ts: Default::default(),
            peer: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            method: Default::default(),
            request: Default::default(),
            status: Default::default(),
            header_names: Default::default(),
            truncated: Default::default(),
            malformed: None,
            version: Default::default(),
            client: Default::default(),
            client_source: Default::default(),
            client_prefix: Default::default(),
            untrusted_forwarding: Default::default(),
            payload_headers: Default::default(),
            country: Default::default(),
            asn: Default::default(),
            as_org: Default::default(),
            ua_product: Default::default(),
            ua_version: Default::default(),
            ua_family: Default::default(),
            ua_platform: Default::default(),
            ua_impossible: None,
            ua_key: 0,
            fingerprint: Default::default(),
            endpoint: Default::default(),
            resource_id: Default::default(),
            query_params: Default::default(),
            identity: Default::default(),
            identity_kind: Default::default(),
            raw_identity: Default::default(),
            given_endpoint: Default::default(),
            searched: None,
        }
    }
}

/// A request method: the registered ones are shared rather than allocated
/// on every request.
pub type Method = Cow<'static, str>;

/// Methods of RFC 9110 and PATCH, as sent.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];

/// `m` as sent, shared when it is a registered method.
pub fn method(m: &str) -> Method {
    shared(METHODS, m)
}

/// `s` borrowed from `set` when it is there, else copied.
fn shared(set: &[&'static str], s: &str) -> Cow<'static, str> {
    match set.iter().find(|c| crate::ascii::eq(c, s)) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(s.to_owned()),
    }
}

/// A header name: the common ones, as most clients spell them, are shared
/// rather than allocated on every request.
pub type HeaderName = Cow<'static, str>;

/// Header names most requests carry, spelled as clients send them.
const COMMON_NAMES: &[&str] = &[
    "Host",
    "User-Agent",
    "Accept",
    "Accept-Language",
    "Accept-Encoding",
    "Connection",
    "Content-Type",
    "Content-Length",
    "Authorization",
    "Cookie",
    "Referer",
    "Origin",
    "Cache-Control",
    "Pragma",
    "Upgrade-Insecure-Requests",
    "If-None-Match",
    "If-Modified-Since",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Real-IP",
    "X-Request-ID",
    "X-Api-Key",
    "Sec-Fetch-Site",
    "Sec-Fetch-Mode",
    "Sec-Fetch-Dest",
    "Sec-Fetch-User",
    "Priority",
    "DNT",
    "TE",
    "host",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "connection",
    "content-type",
    "content-length",
    "authorization",
    "cookie",
];

/// Slots of [`NAME_TABLE`]: a power of two, about three times the names,
/// so that most lookups find their name, or an empty slot, at once.
const NAME_SLOTS: usize = 128;

/// Where a name's probe starts: its length and three of its bytes, which
/// set the common names apart, so that a lookup is one comparison of
/// words where the list by length compared the one to five names of that
/// length (a few instructions fewer an exchange, not more: −5 on the
/// bench's mix, −40 on the scenario's browser-like heads).
const fn name_slot(b: &[u8]) -> usize {
    let n = b.len();
    if n == 0 {
        return 0;
    }
    let h = (n as u32).wrapping_mul(0x9e37_79b9)
        ^ (b[0] as u32).wrapping_mul(0x85eb_ca6b)
        ^ (b[n - 1] as u32).wrapping_mul(0xc2b2_ae35)
        ^ (b[n / 2] as u32).wrapping_mul(0x27d4_eb2f);
    (h ^ h >> 15) as usize % NAME_SLOTS
}

/// The common names, open-addressed by [`name_slot`] (`""`: empty).
static NAME_TABLE: [&str; NAME_SLOTS] = {
    // An empty slot ends every probe.
    assert!(COMMON_NAMES.len() < NAME_SLOTS);
    let mut t = [""; NAME_SLOTS];
    let mut i = 0;
    while i < COMMON_NAMES.len() {
        let mut s = name_slot(COMMON_NAMES[i].as_bytes());
        while !t[s].is_empty() {
            s = (s + 1) % NAME_SLOTS;
        }
        t[s] = COMMON_NAMES[i];
        i += 1;
    }
    t
};

/// `name` as sent, shared when it is one of the common spellings.
pub fn header_name(name: &str) -> HeaderName {
    let mut s = name_slot(name.as_bytes());
    loop {
        let c = NAME_TABLE[s];
        if c.is_empty() {
            return Cow::Owned(name.to_owned());
        }
        if crate::ascii::eq(c, name) {
            return Cow::Borrowed(c);
        }
        s = (s + 1) % NAME_SLOTS;
    }
}

/// A request's text in one allocation: the target; the host and user agent
/// when a log names them apart from any header; then the header values,
/// each ended by a `\n`, which no parsed value contains (httparse ends a
/// header line at one). A captured head took six allocations before (target,
/// host, user agent, names, values, value ends); the names and this are the
/// two left. The host and user agent of a captured head are spans of its
/// values, not copies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestText {
    text: String,
    target_end: u32,
    /// Where the header values start (after the target and any host or
    /// user agent stored apart).
    values_start: u32,
    host: Option<Span>,
    user_agent: Option<Span>,
    /// Where each of the first values ends, so that one is sliced out
    /// without walking those before it: finding the Authorization header
    /// of a browser-like head by counting line ends was ~570 instructions
    /// an exchange. Inline, not another allocation.
    ends: [u16; INDEXED],
    /// How many values `ends` holds (it stops at the first that ends past
    /// 64 KiB).
    indexed: u8,
}

/// Values whose ends a [`RequestText`] keeps: more than most heads carry.
const INDEXED: usize = 16;

/// Where a string lies in [`RequestText`]'s buffer: start and end bytes.
pub type Span = (u32, u32);

impl RequestText {
    /// A target with room for `value_bytes` of header values (and their
    /// ends) after it.
    pub fn with_capacity(target: &str, value_bytes: usize) -> Self {
        let mut text = String::with_capacity(target.len() + value_bytes);
        text.push_str(target);
        let end = text.len() as u32;
        Self { text, target_end: end, values_start: end, ..Default::default() }
    }

    /// A target alone (logs, tests).
    pub fn new(target: &str) -> Self {
        Self::with_capacity(target, 0)
    }

    /// Sets the host a log names (before any value is pushed).
    pub fn with_host(mut self, host: Option<&str>) -> Self {
        self.host = host.map(|h| self.stash(h));
        self
    }

    /// Sets the user agent a log names (before any value is pushed).
    pub fn with_user_agent(mut self, ua: Option<&str>) -> Self {
        self.user_agent = ua.map(|u| self.stash(u));
        self
    }

    fn stash(&mut self, s: &str) -> Span {
        debug_assert_eq!(self.values_start as usize, self.text.len(), "stored apart after a header value");
        debug_assert_eq!(self.indexed, 0);
        let start = self.text.len() as u32;
        self.text.push_str(s);
        self.values_start = self.text.len() as u32;
        (start, self.values_start)
    }

    /// Appends the next header value, which holds no `\n` (a parsed one
    /// never does: httparse ends a header line at one).
    pub fn push_value(&mut self, value: &str) -> Span {
        debug_assert!(!value.contains('\n'), "{value:?}");
        let start = self.text.len() as u32;
        self.text.push_str(value);
        let end = self.text.len() as u32;
        self.text.push('\n');
        // Ends only grow, so once one is past 64 KiB none after it is
        // indexed either: `ends` always holds the first `indexed` values.
        if (self.indexed as usize) < INDEXED
            && let Ok(e) = u16::try_from(end)
        {
            self.ends[self.indexed as usize] = e;
            self.indexed += 1;
        }
        (start, end)
    }

    /// The value just pushed (`span`) is the host.
    pub fn set_host_span(&mut self, span: Span) {
        self.host = Some(span);
    }

    /// The value just pushed (`span`) is the user agent.
    pub fn set_user_agent_span(&mut self, span: Span) {
        self.user_agent = Some(span);
    }

    pub fn target(&self) -> &str {
        &self.text[..self.target_end as usize]
    }

    pub fn host(&self) -> Option<&str> {
        self.host.map(|(a, b)| &self.text[a as usize..b as usize])
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.map(|(a, b)| &self.text[a as usize..b as usize])
    }

    /// The header values in order (none once [`RequestText::forget_values`]
    /// ran).
    pub fn values(&self) -> impl Iterator<Item = &str> + Clone {
        let rest = &self.text[self.values_start as usize..];
        let mut start = 0;
        memchr::memchr_iter(b'\n', rest.as_bytes()).map(move |end| {
            let v = &rest[start..end];
            start = end + 1;
            v
        })
    }

    /// The `i`th value.
    pub fn value(&self, i: usize) -> Option<&str> {
        if i < self.indexed as usize {
            let start = if i == 0 { self.values_start as usize } else { self.ends[i - 1] as usize + 1 };
            return Some(&self.text[start..self.ends[i] as usize]);
        }
        self.values().nth(i)
    }

    pub fn has_values(&self) -> bool {
        self.text.len() > self.values_start as usize
    }

    /// Drops the header values (they carry credentials), keeping the
    /// target, host and user agent, without reallocating: a host or user
    /// agent that was a value moves down next to the target.
    pub fn forget_values(&mut self) {
        let mut keep = [&mut self.host, &mut self.user_agent];
        keep.sort_by_key(|s| s.map_or(u32::MAX, |(a, _)| a));
        let mut at = self.target_end;
        // SAFETY: what is left is the target, then the host and user agent
        // copied whole (each span starts and ends on a char boundary), so it
        // is UTF-8 again when the borrow of the bytes ends. Spans are disjoint
        // and taken in order, so each lands at or before where it starts,
        // never over one still to move.
        let bytes = unsafe { self.text.as_mut_vec() };
        for span in keep.into_iter().flatten() {
            let (a, b) = *span;
            bytes.copy_within(a as usize..b as usize, at as usize);
            *span = (at, at + (b - a));
            at += b - a;
        }
        bytes.truncate(at as usize);
        self.values_start = at;
        self.indexed = 0;
    }
}

impl Exchange {
    /// The request target as sent (path and query).
    pub fn target(&self) -> &str {
        self.request.target()
    }

    /// The target up to its query string.
    pub fn path(&self) -> &str {
        let t = self.target();
        memchr::memchr(b'?', t.as_bytes()).map_or(t, |q| &t[..q])
    }

    pub fn host(&self) -> Option<&str> {
        self.request.host()
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.request.user_agent()
    }

    /// A hash standing for the trimmed user agent, 0 for none or a blank
    /// one: the classifier's, worked out once per distinct user agent, on
    /// an enriched exchange; else worked out here.
    pub fn ua_hash(&self) -> u64 {
        match (self.ua_key, self.user_agent().map(crate::ascii::trim)) {
            (0, Some(ua)) if !ua.is_empty() => crate::enrich::useragent::key_of(ua),
            (0, _) => 0,
            (k, _) => k,
        }
    }

    /// The request's headers as (name, value), in the order sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header_names.iter().map(|n| n.as_ref()).zip(self.request.values())
    }

    /// The values of the headers called `name` (any case), in order: the
    /// names are compared first, and only a match's value sliced out.
    pub fn header<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.header_names
            .iter()
            .enumerate()
            .filter(move |(_, n)| crate::ascii::eq_ignore_case(n, name))
            .filter_map(|(i, _)| self.request.value(i))
    }

    /// The value of the first header called `name` (any case).
    pub fn first_header(&self, name: &str) -> Option<&str> {
        let i = self.header_names.iter().position(|n| crate::ascii::eq_ignore_case(n, name))?;
        self.request.value(i)
    }

    /// Sets names and values together (tests and generated traffic),
    /// keeping the target, host and user agent.
    pub fn set_headers(&mut self, pairs: &[(&str, &str)]) {
        self.header_names = pairs.iter().map(|(n, _)| header_name(n)).collect();
        let mut r = RequestText::new(self.target()).with_host(self.host()).with_user_agent(self.user_agent());
        for (_, v) in pairs {
            // Parsed values never hold a line break; generated ones must not.
            r.push_value(&v.replace('\n', " "));
        }
        self.request = r;
    }
}

/// What is wrong with a request line that a server was sent anyway: each
/// is hostile by construction (no client library writes them), and the
/// server's answer (usually 400) still belongs to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Malformed {
    /// A raw space inside the target: `GET /a b HTTP/1.1`.
    SpaceInTarget,
    /// A request line with no HTTP version, followed by header lines.
    NoVersion,
    /// `GET /path` alone: an HTTP/0.9 simple request.
    Http09,
    /// A version that is not HTTP/1.x: `HTTP/9.9`, `HTTP/2.0` in clear text.
    BadVersion,
    /// Bytes that are not HTTP at all (a TLS hello, a binary protocol).
    NotHttp,
    /// A request line that starts like one and then breaks the grammar.
    BadRequestLine,
}

impl Malformed {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SpaceInTarget => "space_in_target",
            Self::NoVersion => "no_version",
            Self::Http09 => "http09",
            Self::BadVersion => "bad_version",
            Self::NotHttp => "not_http",
            Self::BadRequestLine => "bad_request_line",
        }
    }
}

/// How an exchange is written (`--exchanges`): the request's text comes
/// out of [`RequestText`] as fields of their own, header values never.
#[derive(Serialize)]
struct Json<'a> {
    #[serde(serialize_with = "crate::time::serialize_ts")]
    ts: Nanos,
    peer: IpAddr,
    method: &'a str,
    target: &'a str,
    host: Option<&'a str>,
    user_agent: Option<&'a str>,
    status: Option<u16>,
    header_names: &'a [HeaderName],
    truncated: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    malformed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    malformed_reason: Option<Malformed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_prefix: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    untrusted_forwarding: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    asn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    as_org: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ua_product: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ua_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ua_family: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ua_platform: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<Fingerprint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_id: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    query_params: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<Identity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity_kind: Option<&'static str>,
}

impl Serialize for Exchange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Json {
            ts: self.ts,
            peer: self.peer,
            method: &self.method,
            target: self.target(),
            host: self.host(),
            user_agent: self.user_agent(),
            status: self.status,
            header_names: &self.header_names,
            truncated: self.truncated,
            malformed: self.malformed.is_some(),
            malformed_reason: self.malformed,
            client: self.client,
            client_source: self.client_source,
            client_prefix: self.client_prefix.as_deref(),
            untrusted_forwarding: &self.untrusted_forwarding,
            country: self.country,
            asn: self.asn,
            as_org: self.as_org,
            ua_product: self.ua_product.as_deref(),
            ua_version: self.ua_version.as_deref(),
            ua_family: self.ua_family,
            ua_platform: self.ua_platform,
            fingerprint: self.fingerprint,
            endpoint: self.endpoint.as_deref(),
            resource_id: self.resource_id.as_deref(),
            query_params: &self.query_params,
            identity: self.identity,
            identity_kind: self.identity_kind,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let ex = Exchange {
            ts: 1_700_000_000_123_456_789,
            peer: "2001:db8::1".parse().unwrap(),
            method: "GET".into(),
            request: RequestText::new("/x").with_user_agent(Some("curl/8")),
            status: None,
            header_names: vec!["User-Agent".into()],
            truncated: false,
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::to_value(&ex).unwrap();
        assert_eq!(v["ts"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(v["peer"], "2001:db8::1");
        assert!(v["status"].is_null());
        assert!(v["host"].is_null());
    }

    #[test]
    fn every_common_name_is_shared() {
        for n in COMMON_NAMES {
            let got = header_name(n);
            assert!(matches!(got, Cow::Borrowed(b) if b == *n), "{n} was not shared");
        }
        // Same length as a common name, different text; and no such length.
        assert!(matches!(header_name("Hosts"), Cow::Owned(_)));
        assert!(matches!(header_name("X-A-Header-Name-Longer-Than-Any-Common-One"), Cow::Owned(_)));
        assert_eq!(header_name(""), "");
    }

    #[test]
    fn a_user_agent_hashes_alike_enriched_or_not() {
        let ex =
            |ua: Option<&str>| Exchange { request: RequestText::new("/").with_user_agent(ua), ..Default::default() };
        let plain = ex(Some(" curl/8.5.0 ")).ua_hash();
        let mut enriched = ex(Some("curl/8.5.0"));
        enriched.ua_key = crate::enrich::useragent::UaClassifier::new(None).unwrap().classify(Some("curl/8.5.0")).key;
        assert_eq!(enriched.ua_hash(), plain);
        assert_ne!(ex(Some("curl/8.6.0")).ua_hash(), plain);
        assert_eq!((ex(None).ua_hash(), ex(Some("  ")).ua_hash()), (0, 0));
    }

    #[test]
    fn headers_pair_up() {
        let mut ex = Exchange::default();
        ex.set_headers(&[("Host", "a"), ("X-Odd", ""), ("Authorization", "Bearer x"), ("x-odd", "2")]);
        assert!(matches!(ex.header_names[0], Cow::Borrowed(_)) && matches!(ex.header_names[1], Cow::Owned(_)));
        let all: Vec<_> = ex.headers().collect();
        assert_eq!(all, [("Host", "a"), ("X-Odd", ""), ("Authorization", "Bearer x"), ("x-odd", "2")]);
        assert_eq!(ex.header("x-ODD").collect::<Vec<_>>(), ["", "2"]);
        assert_eq!(ex.first_header("authorization"), Some("Bearer x"));
        assert_eq!(
            serde_json::to_value(&ex).unwrap()["header_names"],
            serde_json::json!(["Host", "X-Odd", "Authorization", "x-odd"])
        );
    }

    #[test]
    fn forgetting_values_keeps_target_host_and_user_agent() {
        // The user agent before the host, as some clients send them.
        let raw = b"GET /a?b=1 HTTP/1.1\r\nUser-Agent: curl/8.5.0\r\nAuthorization: Bearer s3cret\r\nHost: api\r\n\r\n";
        let crate::http::Parsed::Complete(head, _) = crate::http::parse_request(raw) else { panic!("not a head") };
        let mut r = head.text;
        assert_eq!(r.values().collect::<Vec<_>>(), ["curl/8.5.0", "Bearer s3cret", "api"]);
        r.forget_values();
        assert_eq!((r.target(), r.host(), r.user_agent()), ("/a?b=1", Some("api"), Some("curl/8.5.0")));
        assert!(!r.has_values() && r.value(0).is_none(), "{r:?}");
        assert!(!r.text.contains("s3cret"), "{r:?}");

        // A log's host and user agent, stored apart from any header.
        let mut r = RequestText::new("/x").with_host(Some("h")).with_user_agent(Some("ua"));
        r.push_value("v");
        r.forget_values();
        assert_eq!((r.target(), r.host(), r.user_agent(), r.has_values()), ("/x", Some("h"), Some("ua"), false));
    }

    #[test]
    fn empty_values_and_line_breaks_keep_their_places() {
        let mut ex = Exchange::default();
        ex.set_headers(&[("A", ""), ("B", "two\nlines"), ("C", "")]);
        assert_eq!(ex.headers().collect::<Vec<_>>(), [("A", ""), ("B", "two lines"), ("C", "")]);
        assert_eq!(ex.first_header("c"), Some(""));
    }

    #[test]
    fn values_found_by_index_are_the_values_walked() {
        // More values than are indexed, empty ones, and one long enough
        // that those after it end past 64 KiB: every lookup must give what
        // walking the line ends gives.
        let long = "x".repeat(70_000);
        let values: Vec<String> = (0..24)
            .map(|i| match i {
                3 | 4 => String::new(),
                9 => long.clone(),
                _ => format!("v{i}"),
            })
            .collect();
        for with_host in [false, true] {
            let mut r = RequestText::new("/t");
            if with_host {
                r = r.with_host(Some("h")).with_user_agent(Some("ua"));
            }
            for v in &values {
                r.push_value(v);
            }
            for (i, v) in values.iter().enumerate() {
                assert_eq!(r.value(i), Some(v.as_str()), "value {i}");
                assert_eq!(r.value(i), r.values().nth(i), "value {i}");
            }
            assert_eq!(r.value(values.len()), None);
            r.forget_values();
            assert_eq!(r.value(0), None);
        }
        let mut ex = Exchange::default();
        let pairs: Vec<(String, String)> = (0..20).map(|i| (format!("H{}", i % 7), format!("{i}"))).collect();
        ex.set_headers(&pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect::<Vec<_>>());
        assert_eq!(ex.header("h3").collect::<Vec<_>>(), ["3", "10", "17"]);
        assert_eq!(ex.first_header("H6"), Some("6"));
    }
}
