//! What detectors hand the engine: signals, each carrying one kind of
//! evidence with what it argues for and how much it weighs. The weights
//! are the whole classification policy, so they live together here where a
//! reviewer can read them in one place.

use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::Value;

use super::client::ClientKey;

/// An actor's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Threat,
    Prospect,
    Misconfiguration,
    Unknown,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Threat => "threat",
            Self::Prospect => "prospect",
            Self::Misconfiguration => "misconfiguration",
            Self::Unknown => "unknown",
        }
    }

    pub const ALL: [Class; 4] = [Self::Threat, Self::Prospect, Self::Misconfiguration, Self::Unknown];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// What a piece of evidence argues for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Leaning {
    Threat,
    Prospect,
    Misconfiguration,
    /// Recorded and shown, weighs nothing either way (a tool seen in
    /// several places is a prospect as often as a threat).
    Neutral,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub name: &'static str,
    pub leaning: Leaning,
    pub weight: u8,
}

const fn k(name: &'static str, leaning: Leaning, weight: u8) -> Kind {
    Kind { name, leaning, weight }
}

use Leaning::*;
// Threat evidence. An actor is a threat from a total of THREAT_AT: one
// strong sign (probing, injection, spoofing) is enough; weak ones need
// company (a stripped user agent plus an obsession with one path).
pub const SENSITIVE_PROBE: Kind = k("sensitive_file_probe", Threat, 5);
pub const INJECTION: Kind = k("injection_probe", Threat, 5);
pub const SCANNER_UA: Kind = k("scanner_user_agent", Threat, 5);
// Hostile by construction: no client library writes these.
pub const MALFORMED: Kind = k("malformed_request", Threat, 5);
pub const PROXY_ATTEMPT: Kind = k("proxy_attempt", Threat, 5);
// An exploit path answered 2xx: the exploit may have worked.
pub const PROBE_ANSWERED: Kind = k("probe_answered_2xx", Threat, 5);
pub const SPOOFING: Kind = k("user_agent_spoofing", Threat, 4);
pub const CREDENTIALS: Kind = k("credential_scanning", Threat, 4);
pub const ENUMERATION: Kind = k("object_enumeration", Threat, 4);
pub const HEADER_BYPASS: Kind = k("forwarding_header_manipulation", Threat, 4);
pub const STRIPPED: Kind = k("stripped_identity", Threat, 3);
pub const ROTATION: Kind = k("address_rotation", Threat, 3);
pub const UNUSUAL_METHOD: Kind = k("unusual_method", Threat, 3);
pub const SCRAPING: Kind = k("scraping", Threat, 3);
pub const SINGLE_PATH: Kind = k("single_path_obsession", Threat, 1);
pub const CONVERGENCE: Kind = k("country_convergence", Threat, 1);
// Bursts (signal 17): seconds at tool speed. A scan of many refused paths
// and a login hammered whatever it answers are tools at work, as strong as
// the hourly credential and enumeration signals. An id walk and a cache-
// busting flood are automation too, but a buggy client can do either:
// enough alone, not more. A few credentials refused in a minute could be a
// family behind one address: weak, a threat only with company (another
// form, a single-path obsession, convergence).
pub const SCAN_BURST: Kind = k("rejected_path_burst", Threat, 4);
pub const LOGIN_BURST: Kind = k("login_burst", Threat, 4);
pub const QUERY_ID_WALK: Kind = k("query_id_walk", Threat, 3);
pub const CACHE_BUSTING: Kind = k("cache_busting_flood", Threat, 3);
pub const AUTH_FAILURE_BURST: Kind = k("auth_failure_burst", Threat, 2);
// Someone reads the responses in real time and reacted to being named:
// outweighs everything an honest, regular poller argues for a prospect.
pub const WENT_DARK: Kind = k("went_dark_after_disclosure", Threat, 6);
// Neither way on its own.
pub const TOOL_SPREAD: Kind = k("tool_fingerprint_spread", Neutral, 0);
// Prospect evidence.
pub const REGULAR_CADENCE: Kind = k("regular_polling", Prospect, 2);
pub const HONEST_UA: Kind = k("honest_library_user_agent", Prospect, 2);
pub const DOCUMENTED_ONLY: Kind = k("documented_endpoints_only", Prospect, 1);
// Our own mistakes.
pub const POLICY_REGRESSION: Kind = k("access_policy_regression", Misconfiguration, 3);
pub const TOKEN_LOOP: Kind = k("expired_token_loop", Misconfiguration, 3);

/// Threat evidence our own misconfiguration cannot explain: with any of
/// it an actor is judged on its threat evidence; without, misconfiguration
/// evidence wins (a locked-out integration retrying looks like a 401 surge
/// hammering one path, and must never be blocked for it).
pub fn beyond_misconfiguration(kind: &str) -> bool {
    [
        SENSITIVE_PROBE,
        INJECTION,
        SCANNER_UA,
        MALFORMED,
        PROXY_ATTEMPT,
        PROBE_ANSWERED,
        SPOOFING,
        HEADER_BYPASS,
        ENUMERATION,
        SCAN_BURST,
        QUERY_ID_WALK,
        CACHE_BUSTING,
        ROTATION,
        STRIPPED,
        UNUSUAL_METHOD,
        WENT_DARK,
    ]
    .iter()
    .any(|k| k.name == kind)
}

/// Threat evidence totalling this makes a threat.
pub const THREAT_AT: u32 = 3;
/// A prospect may carry at most this much (weak) threat evidence.
pub const PROSPECT_TOLERATES: u32 = 1;

/// One detector's conclusion about one or more clients.
#[derive(Clone, Debug)]
pub struct Signal {
    pub detector: &'static str,
    pub kind: Kind,
    /// Deduplication key within the detector (cooldown).
    pub key: u64,
    /// The clients concerned; the first is the one whose request fired it.
    pub clients: Vec<ClientKey>,
    /// The clients are one operator: group them into one actor.
    pub merge: bool,
    /// Write a finding (false: evidence and grouping only).
    pub report: bool,
    pub endpoint: Option<String>,
    pub summary: String,
    pub evidence: Evidence,
}

impl Signal {
    pub fn new(detector: &'static str, kind: Kind, key: u64, clients: Vec<ClientKey>, summary: String) -> Self {
        Self {
            detector,
            kind,
            key,
            clients,
            merge: false,
            report: true,
            endpoint: None,
            summary,
            evidence: Evidence::default(),
        }
    }

    pub fn endpoint(mut self, e: &str) -> Self {
        self.endpoint = (!e.is_empty()).then(|| e.to_string());
        self
    }

    pub fn with(mut self, name: &'static str, v: impl Into<Value>) -> Self {
        self.evidence.insert(name, v.into());
        self
    }

    pub fn merged(mut self) -> Self {
        self.merge = true;
        self
    }

    pub fn silent(mut self) -> Self {
        self.report = false;
        self
    }
}

/// Builds a signal and adds it to `out`, out of line. Signals are rare
/// next to the exchanges a detector sees; their building (summary,
/// evidence) inlined into `observe` spread each detector's every-exchange
/// path over many more instruction-cache lines, and the detector stage
/// runs more code per exchange than that cache holds.
#[cold]
#[inline(never)]
pub fn emit(out: &mut Vec<Signal>, build: impl FnOnce() -> Signal) {
    out.push(build());
}

/// The numbers behind a finding, by name. The names are the detectors'
/// constants, kept as they are: a map of owned keys allocated each one on
/// every finding. Written as a JSON object with its keys sorted, as the
/// map wrote them, so the output is the same.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evidence(Vec<(&'static str, Value)>);

impl Evidence {
    /// Sets `name`, replacing an earlier value of the same name.
    pub fn insert(&mut self, name: &'static str, v: Value) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e.1 = v,
            None => self.0.push((name, v)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl Serialize for Evidence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut order: Vec<&(&'static str, Value)> = self.0.iter().collect();
        order.sort_unstable_by_key(|(n, _)| *n);
        let mut m = s.serialize_map(Some(order.len()))?;
        for (n, v) in order {
            m.serialize_entry(n, v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod evidence_tests {
    use super::*;

    #[test]
    fn evidence_is_written_as_a_map_was() {
        let mut e = Evidence::default();
        e.insert("window_seconds", 60.into());
        e.insert("clients", 4.into());
        e.insert("group_by", "asn".into());
        e.insert("clients", 5.into());
        let mut m = serde_json::Map::new();
        for (k, v) in [("window_seconds", 60), ("clients", 4), ("clients", 5)] {
            m.insert(k.to_string(), v.into());
        }
        m.insert("group_by".into(), "asn".into());
        assert_eq!(serde_json::to_string(&e).unwrap(), serde_json::to_string(&m).unwrap());
        assert_eq!(e.get("clients"), Some(&Value::from(5)));
    }
}
