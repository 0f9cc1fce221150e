//! The threat actors as a STIX 2.1 bundle, for threat-intelligence
//! platforms (OpenCTI, MISP): `analyze --stix PATH` and `GET
//! /api/v1/stix`. Per threat actor a `threat-actor` with its evidence in
//! the description, an `indicator` per address it may be blocked by, a
//! `sighting` of each by us and an `indicates` relationship from each to
//! the actor; all marked with the configured TLP and created by the
//! `identity` "rejectwatch".
//!
//! Ids are UUIDv5 of the actor's id and the object's kind under a fixed
//! namespace, and times are record times (the actor's first and last
//! request): exporting again updates the platform's objects instead of
//! duplicating them. Addresses the blocklist never holds (ours, our
//! proxies', allowlisted, private unless `block_private`) are not shared:
//! a recipient would block what we deliberately do not. They are neither
//! indicators nor named in a description, and a threat actor with no
//! other address is left out.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    blocklist::{Blocklist, net_of},
    detect::{actors::Actor, client::ClientKey, evidence::Class},
    time::Secs,
};

/// `[stix]` in the config file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StixConfig {
    /// The Traffic Light Protocol marking of every object: who the
    /// recipients may share it with.
    pub tlp: Tlp,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tlp {
    /// TLP 2.0 calls it `clear`.
    #[serde(alias = "clear")]
    White,
    Green,
    /// Addresses of attackers on our own service: the recipient's
    /// organisation only, by default.
    #[default]
    Amber,
    Red,
}

impl Tlp {
    /// The marking definitions STIX 2.1 defines (section 7.2.1.4), by
    /// their fixed ids.
    fn definition(self) -> Value {
        let (id, name) = match self {
            Self::White => ("613f2e26-407d-48c7-9eca-b8e91df99dc9", "white"),
            Self::Green => ("34098fce-860f-48ae-8e50-ebd3cc5e41da", "green"),
            Self::Amber => ("f88d31f6-486f-44da-b317-01333bde0b82", "amber"),
            Self::Red => ("5e57c739-391a-4eb3-b6be-7d15ca92d5ed", "red"),
        };
        json!({
            "type": "marking-definition",
            "spec_version": "2.1",
            "id": format!("marking-definition--{id}"),
            "created": "2017-01-20T00:00:00.000Z",
            "definition_type": "tlp",
            "name": format!("TLP:{}", name.to_ascii_uppercase()),
            "definition": { "tlp": name },
        })
    }
}

/// Namespace of every id (UUIDv5): fixed, so that ids follow from what
/// they name across runs and hosts.
const NS: Uuid = Uuid::from_u128(0x9d3b_61c4_2a7e_5f08_b5c1_7e40_d2a9_3c6f);

/// The producer's `created`: the identity never changes, so neither may
/// its creation time (a STIX object's `created` is fixed for its id).
const IDENTITY_CREATED: &str = "2026-01-01T00:00:00.000Z";

/// STIX's largest `count`.
const MAX_COUNT: u64 = 999_999_999;

fn id(kind: &str, name: &str) -> String {
    format!("{kind}--{}", Uuid::new_v5(&NS, format!("{kind}/{name}").as_bytes()))
}

/// STIX timestamps: UTC with milliseconds.
fn ts(t: Secs) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64)).to_string()
}

/// `[ipv4-addr:value = '203.0.113.7']`, `[ipv6-addr:value = '2001:db8::/64']`.
pub fn pattern(net: &IpNet) -> String {
    let kind = if matches!(net.addr(), IpAddr::V4(_)) { "ipv4-addr" } else { "ipv6-addr" };
    format!("[{kind}:value = '{}']", value(net))
}

fn value(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() { net.addr().to_string() } else { net.to_string() }
}

/// The bundle of the threat actors among `actors`; `blocklist` says which
/// of their addresses are never blocked and when the others' entries end.
pub fn bundle(actors: &[&Actor], blocklist: &Blocklist, cfg: &StixConfig) -> Value {
    let marking = cfg.tlp.definition();
    let marks = json!([marking["id"]]);
    let identity = id("identity", "rejectwatch");
    let mut objects = vec![
        json!({
            "type": "identity",
            "spec_version": "2.1",
            "id": identity,
            "created": IDENTITY_CREATED,
            "modified": IDENTITY_CREATED,
            "name": "rejectwatch",
            "identity_class": "system",
            "description": "rejectwatch, an observer of an API's rejected requests that classifies its clients",
        }),
        marking,
    ];
    let entries = blocklist.entries();
    for a in actors.iter().filter(|a| a.class == Class::Threat) {
        let (nets, exempt): (Vec<&ClientKey>, Vec<&ClientKey>) =
            a.clients.iter().partition(|k| blocklist.not_blocked(k).is_none());
        if nets.is_empty() {
            continue;
        }
        let (created, modified) = (ts(a.first_seen), ts(a.last_seen));
        let common = |kind: &str, name: &str| {
            json!({
                "type": kind,
                "spec_version": "2.1",
                "id": id(kind, name),
                "created": created,
                "modified": modified,
                "created_by_ref": identity,
                "object_marking_refs": marks,
            })
        };
        let actor_id = id("threat-actor", &a.id);
        let mut ta = common("threat-actor", &a.id);
        extend(
            &mut ta,
            json!({
                "name": format!("rejectwatch actor {}", a.id),
                "description": description(a, &exempt),
                "threat_actor_types": ["unknown"],
                "first_seen": created,
                "last_seen": modified,
            }),
        );
        objects.push(ta);
        for net in nets.into_iter().map(net_of) {
            let name = format!("{}/{net}", a.id);
            let mut ind = common("indicator", &name);
            let mut fields = json!({
                "name": value(&net),
                "description": format!("An address of rejectwatch actor {}", a.id),
                "indicator_types": ["malicious-activity"],
                "pattern": pattern(&net),
                "pattern_type": "stix",
                "pattern_version": "2.1",
                "valid_from": created,
            });
            // Valid for as long as our own blocklist holds it.
            if let Some(e) = entries.iter().find(|e| e.net.contains(&net))
                && e.expires > a.first_seen
            {
                fields["valid_until"] = json!(ts(e.expires));
            }
            extend(&mut ind, fields);
            let ind_id = ind["id"].clone();
            objects.push(ind);
            let mut s = common("sighting", &name);
            extend(
                &mut s,
                json!({
                    "description": format!(
                        "Seen by rejectwatch; the count is actor {}'s requests over its {} address(es)",
                        a.id,
                        a.clients.len()
                    ),
                    "sighting_of_ref": ind_id,
                    "where_sighted_refs": [identity],
                    "first_seen": created,
                    "last_seen": modified,
                    "count": a.requests.clamp(1, MAX_COUNT),
                }),
            );
            objects.push(s);
            let mut r = common("relationship", &format!("indicates/{name}"));
            extend(&mut r, json!({ "relationship_type": "indicates", "source_ref": ind_id, "target_ref": actor_id }));
            objects.push(r);
        }
    }
    // The bundle's id follows from its content, as the objects' do.
    let names: Vec<String> = objects.iter().map(|o| format!("{}@{}", o["id"], o["modified"])).collect();
    json!({ "type": "bundle", "id": id("bundle", &names.join(",")), "objects": objects })
}

fn extend(o: &mut Value, more: Value) {
    if let (Some(o), Value::Object(more)) = (o.as_object_mut(), more) {
        o.extend(more);
    }
}

/// The evidence, as the roster explains the verdict, and what the actor
/// looked like. Nothing that names a customer: no identities (the actor
/// keeps none), no credentials, none of the `exempt` addresses (the
/// evidence's summaries name the client).
fn description(a: &Actor, exempt: &[&ClientKey]) -> String {
    let mut s = format!(
        "Classified a threat by rejectwatch: {} requests, {} rejected, {} to undocumented endpoints.\n\nEvidence:\n",
        a.requests, a.rejects, a.undocumented_requests
    );
    for e in a.evidence() {
        s.push_str(&format!("- {} ({}, {:?}, x{}): {}\n", e.kind, e.detector, e.leaning, e.count, e.summary));
    }
    let list = |name: &str, items: Vec<String>| {
        if items.is_empty() { String::new() } else { format!("{name}: {}\n", items.join(", ")) }
    };
    s.push('\n');
    s.push_str(&list("User agents", a.user_agents.iter().map(str::to_string).collect()));
    s.push_str(&list("Countries", a.countries.iter().map(str::to_string).collect()));
    s.push_str(&list("ASNs", a.asns.iter().map(|n| format!("AS{n}")).collect()));
    s.push_str(&list("Endpoints", a.endpoints.iter().map(str::to_string).collect()));
    for k in exempt {
        s = s.replace(&k.to_string(), "(an address never blocked)");
    }
    s.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocklist::{BlocklistConfig, exempt::Exemptions};

    fn key(s: &str, prefix: u8) -> ClientKey {
        ClientKey::new(s.parse().unwrap(), prefix)
    }

    fn fixture() -> (Vec<Actor>, Blocklist) {
        let cfg = BlocklistConfig { allowlist: vec!["198.51.100.9/32".parse().unwrap()], ..Default::default() };
        let mut b = Blocklist::new(&cfg, Exemptions::new(&cfg, &[], &[]));
        let threat = Actor::stub(
            "a-000000000001",
            Class::Threat,
            vec![key("203.0.113.7", 64), key("2001:db8::5", 64), key("198.51.100.9", 64)],
            1_700_000_000,
            1_700_000_600,
        );
        let prospect =
            Actor::stub("a-000000000002", Class::Prospect, vec![key("192.0.2.1", 64)], 1_700_000_000, 1_700_000_100);
        // A threat the blocklist never holds: nothing to share.
        let allowed =
            Actor::stub("a-000000000003", Class::Threat, vec![key("198.51.100.9", 64)], 1_700_000_000, 1_700_000_100);
        b.update([&threat, &prospect, &allowed], 1_700_000_600);
        (vec![threat, prospect, allowed], b)
    }

    #[test]
    fn a_threat_actor_its_indicators_sightings_and_relationships() {
        let (actors, b) = fixture();
        let refs: Vec<&Actor> = actors.iter().collect();
        let v = bundle(&refs, &b, &StixConfig::default());
        let objects = v["objects"].as_array().unwrap();
        let kinds: Vec<&str> = objects.iter().map(|o| o["type"].as_str().unwrap()).collect();
        // The allowlisted address and the prospect are nowhere.
        assert_eq!(
            kinds,
            [
                "identity",
                "marking-definition",
                "threat-actor",
                "indicator",
                "sighting",
                "relationship",
                "indicator",
                "sighting",
                "relationship"
            ]
        );
        let text = v.to_string();
        for absent in ["198.51.100.9", "192.0.2.1", "a-000000000002", "a-000000000003"] {
            assert!(!text.contains(absent), "{absent}: {text}");
        }
        let patterns: Vec<&str> = objects.iter().filter_map(|o| o["pattern"].as_str()).collect();
        assert_eq!(patterns, ["[ipv4-addr:value = '203.0.113.7']", "[ipv6-addr:value = '2001:db8::/64']"]);
        let ta = &objects[2];
        assert_eq!(ta["created"], "2023-11-14T22:13:20.000Z");
        assert_eq!(ta["modified"], "2023-11-14T22:23:20.000Z");
        assert_eq!(objects[3]["valid_until"], "2023-11-15T02:23:20.000Z", "the blocklist's 4 h from the last request");
        assert_eq!(objects[5]["source_ref"], objects[3]["id"]);
        assert_eq!(objects[5]["target_ref"], ta["id"]);
        assert_eq!(objects[4]["sighting_of_ref"], objects[3]["id"]);
        for o in &objects[2..] {
            assert_eq!(o["object_marking_refs"], json!(["marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"]));
            assert_eq!(o["created_by_ref"], objects[0]["id"]);
        }
    }

    #[test]
    fn ids_are_deterministic_and_tlp_is_configurable() {
        let (actors, b) = fixture();
        let refs: Vec<&Actor> = actors.iter().collect();
        let one = bundle(&refs, &b, &StixConfig::default());
        assert_eq!(one, bundle(&refs, &b, &StixConfig::default()));
        let id = one["objects"][2]["id"].as_str().unwrap();
        let uuid = Uuid::parse_str(id.strip_prefix("threat-actor--").unwrap()).unwrap();
        assert_eq!(uuid.get_version_num(), 5);
        let red = bundle(&refs, &b, &StixConfig { tlp: Tlp::Red });
        assert_eq!(red["objects"][1]["name"], "TLP:RED");
        assert_eq!(red["objects"][2]["id"], id, "the marking does not change what an object is");
    }

    #[test]
    fn tlp_in_the_config() {
        let c = crate::config::Config::parse("[stix]\ntlp = \"clear\"\n").unwrap();
        assert_eq!(c.stix.tlp, Tlp::White);
        let e = crate::config::Config::parse("[stix]\ntlp = \"purple\"\n").unwrap_err();
        assert!(e.contains("stix.tlp") && e.contains("purple") && !e.contains('\n'), "{e}");
    }
}
