//! The blocklist as CrowdSec decisions, so that the bouncers operators
//! already run (the firewall bouncer, nginx's, Traefik's, …) enforce it
//! unmodified: the bouncer side of CrowdSec's Local API, `GET
//! /v1/decisions/stream` and `GET /v1/decisions`, served beside the rest
//! of the API with the keys of `api.bouncer_keys`.
//!
//! Each blocklist entry is one `ban` decision with an id of its own. A
//! bouncer in stream mode is sent what changed since its last pull: each
//! key keeps the set of decisions it was last sent, so a pull is the
//! difference between that and the current list, and a bouncer that
//! missed pulls still converges. When an entry outlives its decision by
//! much (the actor kept on), the decision is reissued under a new id, the
//! old one deleted: firewall bouncers skip an address their set holds
//! already, so only a delete and an add move the set's timeout on.
//!
//! Ids and cursors are the daemon's memory, not the state file's: after a
//! restart a bouncer's next pull sends it every decision again as new.

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;
use serde::Serialize;
use uuid::Uuid;

use crate::{
    blocklist::Entry,
    detect::{
        actors::Actor,
        evidence::{Class, Leaning},
    },
    time::Secs,
};

/// The `origin` of every decision, which bouncers can filter on.
pub const ORIGIN: &str = "rejectwatch";

/// Namespace of the decisions' `uuid`s (UUIDv5): fixed, so a decision's
/// uuid follows from what it is.
const UUID_NS: Uuid = Uuid::from_u128(0x3f0c_9a52_6f1e_4d8b_a0d4_1c7e_5b92_e6a1);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub id: i64,
    pub net: IpNet,
    /// Record time it was issued at, and when it ends.
    pub issued: Secs,
    pub expires: Secs,
    /// `rejectwatch/<detector>`.
    pub scenario: String,
}

/// A decision as CrowdSec's API writes it (its `models.Decision`).
#[derive(Debug, Serialize)]
pub struct DecisionJson {
    pub duration: String,
    pub id: i64,
    pub origin: &'static str,
    pub scenario: String,
    pub scope: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: String,
    pub until: String,
    pub uuid: String,
}

impl Decision {
    /// CrowdSec's scopes: `Ip` for one address, `Range` for a network.
    pub fn scope(&self) -> &'static str {
        if self.net.prefix_len() == self.net.max_prefix_len() { "Ip" } else { "Range" }
    }

    /// The address alone for an `Ip`, as bouncers parse it.
    pub fn value(&self) -> String {
        if self.scope() == "Ip" { self.net.addr().to_string() } else { self.net.to_string() }
    }

    pub fn uuid(&self) -> Uuid {
        Uuid::new_v5(&UUID_NS, format!("{}/{}/{}", self.net, self.issued, self.id).as_bytes())
    }

    /// As sent at record time `now`: the duration is what is left (less
    /// than nothing for a deletion of an expired one, as CrowdSec says it).
    pub fn json(&self, now: Secs) -> DecisionJson {
        let until = std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.expires as u64);
        DecisionJson {
            duration: go_duration(self.expires as i64 - now as i64),
            id: self.id,
            origin: ORIGIN,
            scenario: self.scenario.clone(),
            scope: self.scope(),
            kind: "ban",
            value: self.value(),
            until: humantime::format_rfc3339_seconds(until).to_string(),
            uuid: self.uuid().to_string(),
        }
    }
}

/// Seconds as Go's `time.Duration.String()` writes them (`3h59m58s`,
/// `1m0s`, `0s`, `-5s`): bouncers hand the text to `time.ParseDuration`.
pub fn go_duration(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

/// `rejectwatch/<detector>`: the detector behind the actor's strongest
/// threat evidence, the one most responsible for the verdict.
pub fn scenario_of(a: &Actor) -> String {
    let detector = a.evidence().into_iter().find(|e| e.leaning == Leaning::Threat).map(|e| e.detector);
    format!("{ORIGIN}/{}", detector.unwrap_or("threat"))
}

/// What a bouncer asks for (`scopes`, `origins`, `scenarios_containing`,
/// `scenarios_not_containing`, comma-separated); empty admits everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub scopes: Vec<String>,
    pub origins: Vec<String>,
    pub containing: Vec<String>,
    pub not_containing: Vec<String>,
}

impl Filter {
    pub fn list(s: Option<&str>) -> Vec<String> {
        s.unwrap_or("").split(',').map(|w| w.trim().to_ascii_lowercase()).filter(|w| !w.is_empty()).collect()
    }

    pub fn admits(&self, d: &Decision) -> bool {
        let scenario = d.scenario.to_ascii_lowercase();
        (self.scopes.is_empty() || self.scopes.iter().any(|s| s.eq_ignore_ascii_case(d.scope())))
            && (self.origins.is_empty() || self.origins.iter().any(|o| o == ORIGIN))
            && (self.containing.is_empty() || self.containing.iter().any(|w| scenario.contains(w.as_str())))
            && !self.not_containing.iter().any(|w| scenario.contains(w.as_str()))
    }
}

/// What a live-mode query (`GET /v1/decisions`) is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    All,
    /// Decisions covering this network (`ip=`, or `range=` by default).
    Covering(IpNet),
    /// Decisions inside this network (`range=…&contains=false`).
    Within(IpNet),
}

impl Target {
    fn admits(self, d: &Decision) -> bool {
        match self {
            Self::All => true,
            Self::Covering(n) => d.net.contains(&n),
            Self::Within(n) => n.contains(&d.net),
        }
    }
}

#[derive(Default)]
pub struct Decisions {
    /// The decision each listed network carries now.
    current: BTreeMap<IpNet, Decision>,
    next_id: i64,
    /// By bouncer key (its index in `api.bouncer_keys`): the decisions it
    /// was last sent, so that a pull is what changed since.
    sent: HashMap<usize, BTreeMap<IpNet, Decision>>,
}

impl Decisions {
    /// Brings the decisions in line with the blocklist's `entries` at
    /// record time `now`; `scenario` names a new decision's scenario from
    /// the id of the actor that put the entry there.
    pub fn sync(&mut self, entries: &[Entry], now: Secs, mut scenario: impl FnMut(&str) -> String) {
        let mut keep = BTreeMap::new();
        for e in entries.iter().filter(|e| e.expires > now) {
            let d = match self.current.remove(&e.net) {
                Some(mut d) if !outlived(&d, e.expires) => {
                    // Shortened (a restored entry): said at its end by the
                    // deletion, so the decision need not be reissued.
                    d.expires = d.expires.min(e.expires).max(now);
                    d
                }
                // Still at it: reissued under a new id (see the module doc).
                Some(d) => Decision { id: self.issue(), issued: now, expires: e.expires, ..d },
                None => Decision {
                    id: self.issue(),
                    net: e.net,
                    issued: now,
                    expires: e.expires,
                    scenario: scenario(&e.actor),
                },
            };
            keep.insert(e.net, d);
        }
        self.current = keep;
    }

    fn issue(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// Every current decision, in address order.
    pub fn current(&self) -> impl Iterator<Item = &Decision> {
        self.current.values()
    }

    /// The new and deleted decisions for `bouncer` since its last pull, or
    /// (`startup`) every current decision as new, with whatever it was
    /// sent before and is no longer current as deleted. Either way, what
    /// it was sent is now what it holds.
    pub fn pull(&mut self, bouncer: usize, startup: bool, filter: &Filter) -> (Vec<Decision>, Vec<Decision>) {
        let now: BTreeMap<IpNet, Decision> =
            self.current.iter().filter(|(_, d)| filter.admits(d)).map(|(n, d)| (*n, d.clone())).collect();
        let before = self.sent.remove(&bouncer).unwrap_or_default();
        let same = |d: &Decision, other: &BTreeMap<IpNet, Decision>| other.get(&d.net).is_some_and(|o| o.id == d.id);
        let new = now.values().filter(|d| startup || !same(d, &before)).cloned().collect();
        let deleted = before.values().filter(|d| !same(d, &now)).cloned().collect();
        self.sent.insert(bouncer, now);
        (new, deleted)
    }

    /// Live mode: the current decisions about `target` that `filter`
    /// admits. No bouncer's cursor moves.
    pub fn matching(&self, target: Target, filter: &Filter) -> Vec<&Decision> {
        self.current.values().filter(|d| target.admits(d) && filter.admits(d)).collect()
    }
}

/// Whether an entry now ending at `expires` has outlived decision `d` by
/// enough to reissue it: an eighth of the decision's length (at least a
/// second), so a bouncer's set is refreshed a few times over an entry's
/// life rather than at every request of a persistent attacker.
fn outlived(d: &Decision, expires: Secs) -> bool {
    expires > d.expires && expires - d.expires >= ((d.expires - d.issued) / 8).max(1)
}

/// Threat actors' scenarios by id, for [`Decisions::sync`].
pub fn scenarios<'a>(actors: impl IntoIterator<Item = &'a Actor>) -> HashMap<&'a str, String> {
    actors.into_iter().filter(|a| a.class == Class::Threat).map(|a| (a.id.as_str(), scenario_of(a))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(net: &str, expires: Secs) -> Entry {
        Entry { net: net.parse().unwrap(), expires, listed: 0, seen: 0, offences: 1, actor: "a-1".into() }
    }

    fn values(ds: &[Decision]) -> Vec<String> {
        ds.iter().map(Decision::value).collect()
    }

    fn sync(d: &mut Decisions, entries: &[Entry], now: Secs) {
        d.sync(entries, now, |_| "rejectwatch/injection-probe".into());
    }

    #[test]
    fn go_durations() {
        for (s, want) in [(0, "0s"), (5, "5s"), (60, "1m0s"), (3600, "1h0m0s"), (14_398, "3h59m58s"), (-65, "-1m5s")] {
            assert_eq!(go_duration(s), want);
        }
        // Beyond a day Go still counts hours.
        assert_eq!(go_duration(90_061), "25h1m1s");
    }

    #[test]
    fn the_json_bouncers_read() {
        let mut d = Decisions::default();
        sync(&mut d, &[entry("203.0.113.7/32", 1_000_000 + 14_398), entry("2001:db8::/64", 1_000_100)], 1_000_000);
        let all: Vec<_> = d.current().map(|x| serde_json::to_value(x.json(1_000_000)).unwrap()).collect();
        let uuid = all[0]["uuid"].as_str().unwrap().to_string();
        assert_eq!(
            all[0],
            serde_json::json!({
                "duration": "3h59m58s", "id": 1, "origin": "rejectwatch", "scenario": "rejectwatch/injection-probe",
                "scope": "Ip", "type": "ban", "value": "203.0.113.7", "until": "1970-01-12T17:46:38Z", "uuid": uuid,
            })
        );
        assert_eq!(Uuid::parse_str(&uuid).unwrap().get_version_num(), 5);
        assert_eq!((all[1]["scope"].as_str(), all[1]["value"].as_str()), (Some("Range"), Some("2001:db8::/64")));
    }

    #[test]
    fn each_bouncer_gets_what_changed_since_its_last_pull() {
        let mut d = Decisions::default();
        let all = Filter::default();
        sync(&mut d, &[entry("203.0.113.7/32", 100)], 10);
        let (new, deleted) = d.pull(0, true, &all);
        assert_eq!((values(&new), values(&deleted)), (vec!["203.0.113.7".to_string()], vec![]));
        // Nothing changed: nothing to say.
        let (new, deleted) = d.pull(0, false, &all);
        assert!(new.is_empty() && deleted.is_empty());
        sync(&mut d, &[entry("203.0.113.7/32", 100), entry("203.0.113.8/32", 100)], 20);
        // A second bouncer's first pull, without startup, is everything.
        assert_eq!(values(&d.pull(1, false, &all).0), ["203.0.113.7", "203.0.113.8"]);
        let (new, deleted) = d.pull(0, false, &all);
        assert_eq!((values(&new), values(&deleted)), (vec!["203.0.113.8".to_string()], vec![]));
        // Expired: deleted, once, with what is left of it (nothing).
        sync(&mut d, &[entry("203.0.113.7/32", 100), entry("203.0.113.8/32", 100)], 100);
        let (new, deleted) = d.pull(0, false, &all);
        assert!(new.is_empty());
        assert_eq!(values(&deleted), ["203.0.113.7", "203.0.113.8"]);
        assert_eq!(deleted[0].json(100).duration, "0s");
        assert!(d.pull(0, false, &all).1.is_empty());
        // The other bouncer, pulling later, still learns of both.
        assert_eq!(d.pull(1, false, &all).1.len(), 2);
        // A restarted bouncer is told of what it held and is gone.
        sync(&mut d, &[entry("203.0.113.9/32", 300)], 150);
        d.pull(0, false, &all);
        sync(&mut d, &[entry("203.0.113.10/32", 300)], 160);
        let (new, deleted) = d.pull(0, true, &all);
        assert_eq!((values(&new), values(&deleted)), (vec!["203.0.113.10".to_string()], vec!["203.0.113.9".into()]));
    }

    #[test]
    fn ids_are_stable_until_an_entry_outlives_its_decision() {
        let mut d = Decisions::default();
        let all = Filter::default();
        sync(&mut d, &[entry("203.0.113.7/32", 800)], 0);
        let first = d.pull(0, false, &all).0[0].clone();
        // A small extension keeps the decision (and its id).
        sync(&mut d, &[entry("203.0.113.7/32", 850)], 50);
        assert_eq!(d.current().next().unwrap().id, first.id);
        assert!(d.pull(0, false, &all).0.is_empty());
        // A large one reissues it: the old deleted, the new sent.
        sync(&mut d, &[entry("203.0.113.7/32", 1000)], 200);
        let (new, deleted) = d.pull(0, false, &all);
        assert_eq!((deleted[0].id, new[0].id), (first.id, first.id + 1));
        assert_eq!(new[0].json(200).duration, "13m20s");
        assert_ne!(new[0].uuid(), first.uuid());
    }

    #[test]
    fn filters_and_live_queries() {
        let mut d = Decisions::default();
        sync(&mut d, &[entry("203.0.113.7/32", 100), entry("2001:db8::/64", 100)], 0);
        let ips = Filter { scopes: Filter::list(Some("Ip")), ..Default::default() };
        assert_eq!(values(&d.pull(0, true, &ips).0), ["203.0.113.7"]);
        let other = Filter { origins: Filter::list(Some("crowdsec,cscli")), ..Default::default() };
        assert!(d.pull(1, true, &other).0.is_empty());
        let probes = Filter { containing: Filter::list(Some("probe")), ..Default::default() };
        assert_eq!(d.pull(2, true, &probes).0.len(), 2);
        let not = Filter { not_containing: Filter::list(Some("INJECTION")), ..Default::default() };
        assert!(d.pull(3, true, &not).0.is_empty());

        let all = Filter::default();
        let live = |t: Target| d.matching(t, &all).iter().map(|x| x.value()).collect::<Vec<_>>();
        assert_eq!(live(Target::Covering("2001:db8::5/128".parse().unwrap())), ["2001:db8::/64"]);
        assert_eq!(live(Target::Covering("203.0.113.7/32".parse().unwrap())), ["203.0.113.7"]);
        assert!(live(Target::Covering("203.0.113.8/32".parse().unwrap())).is_empty());
        assert_eq!(live(Target::Within("203.0.113.0/24".parse().unwrap())), ["203.0.113.7"]);
        assert!(live(Target::Covering("203.0.113.0/24".parse().unwrap())).is_empty());
        assert_eq!(live(Target::All).len(), 2);
    }
}
