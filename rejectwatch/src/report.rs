//! End-of-run reports of `analyze`: the actor roster (`--actors`, JSON)
//! and the prospects to contact (`--prospects`, CSV). Both are written to
//! a temporary file and renamed into place. The roster's and the
//! prospects' rows are the API's too.

use std::{collections::BTreeMap, io, path::Path};

use anyhow::Context as _;
use serde::Serialize;

use crate::{
    blocklist::{Blocklist, exempt::NotBlocked},
    detect::{actors::Actor, evidence::Class},
    enrich::geo::Geo,
    state::write_atomically,
    time::format_ts,
};

/// An actor as the roster shows it: a threat with clients the blocklist
/// never holds says which and why (`not_blocked`, client to reason), so
/// that a threat missing from the blocklist is not taken for a fault.
#[derive(Serialize)]
pub struct RosterEntry<'a> {
    #[serde(flatten)]
    actor: &'a Actor,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    not_blocked: BTreeMap<String, NotBlocked>,
}

impl<'a> RosterEntry<'a> {
    pub fn of(actor: &'a Actor, blocklist: &Blocklist) -> Self {
        let not_blocked = match actor.class {
            Class::Threat => {
                actor.clients.iter().filter_map(|k| blocklist.not_blocked(k).map(|why| (k.to_string(), why))).collect()
            }
            // Never listed for what they are: no exemption to explain.
            _ => BTreeMap::new(),
        };
        Self { actor, not_blocked }
    }
}

pub fn write_actors(path: &Path, actors: &[&Actor], blocklist: &Blocklist) -> anyhow::Result<()> {
    let rows: Vec<RosterEntry> = actors.iter().map(|a| RosterEntry::of(a, blocklist)).collect();
    write_atomically(path, |w| {
        serde_json::to_writer_pretty(&mut *w, &rows).map_err(io::Error::other)?;
        writeln!(w)
    })
    .with_context(|| format!("--actors: cannot write {}", path.display()))
}

/// A prospect: what a sales or partnerships team needs to find and
/// contact the operator of the tool. One CSV row (`--prospects`) or one
/// JSON object (`/api/v1/prospects`); list fields are space-separated,
/// but for `as_orgs`, whose names hold spaces: `; `.
#[derive(Debug, Serialize)]
pub struct Prospect {
    pub actor: String,
    pub product_version: String,
    pub countries: String,
    pub asns: String,
    /// The networks' owners, one per entry of `asns` (the number again
    /// where no owner is known): who to look up first.
    pub as_orgs: String,
    pub endpoints: String,
    pub cadence: String,
    pub clients: String,
    pub requests: u64,
    pub first_seen: String,
    pub last_seen: String,
}

impl Prospect {
    /// `a` as a row; `geo` names the owners of its ASNs (the actor keeps
    /// the numbers only, so its clients' addresses are looked up again).
    pub fn of(a: &Actor, geo: &Geo) -> Self {
        let join = |v: Vec<String>| v.join(" ");
        let mut orgs: Vec<(u32, String)> = Vec::new();
        for k in &a.clients {
            let g = geo.lookup(k.ip());
            if let (Some(n), Some(org)) = (g.asn, g.as_org)
                && !orgs.iter().any(|(m, _)| *m == n)
            {
                orgs.push((n, org.to_string()));
            }
        }
        // One name per ASN, so that the two columns stay aligned: the
        // number again where no client of the actor still names its owner.
        let as_orgs = a.asns.iter().map(|n| match orgs.iter().find(|(m, _)| m == n) {
            Some((_, org)) => org.clone(),
            None => format!("AS{n}"),
        });
        Self {
            actor: a.id.clone(),
            product_version: a.products.join(" "),
            countries: a.countries.join(" "),
            asns: join(a.asns.iter().map(|n| format!("AS{n}")).collect()),
            as_orgs: as_orgs.collect::<Vec<_>>().join("; "),
            endpoints: a.endpoints.join(" "),
            cadence: a.cadence.clone().unwrap_or_default(),
            clients: join(a.clients.iter().map(ToString::to_string).collect()),
            requests: a.requests,
            first_seen: format_ts(a.first_seen as u64 * 1_000_000_000),
            last_seen: format_ts(a.last_seen as u64 * 1_000_000_000),
        }
    }
}

pub fn write_prospects(path: &Path, actors: &[&Actor], geo: &Geo) -> anyhow::Result<()> {
    write_atomically(path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        let rows: Vec<Prospect> =
            actors.iter().filter(|a| a.class == Class::Prospect).map(|a| Prospect::of(a, geo)).collect();
        if rows.is_empty() {
            // serde writes the header with the first row; an empty list
            // still gets one.
            csv.write_record([
                "actor",
                "product_version",
                "countries",
                "asns",
                "as_orgs",
                "endpoints",
                "cadence",
                "clients",
                "requests",
                "first_seen",
                "last_seen",
            ])?;
        }
        for r in rows {
            csv.serialize(r)?;
        }
        csv.flush()
    })
    .with_context(|| format!("--prospects: cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        blocklist::{BlocklistConfig, exempt::Exemptions},
        detect::client::ClientKey,
    };

    #[test]
    fn threats_say_which_clients_are_never_listed_and_why() {
        let cfg = BlocklistConfig::default();
        let b = Blocklist::new(&cfg, Exemptions::new(&cfg, &["192.0.2.80/32".parse().unwrap()], &[]));
        let keys = |ips: &[&str]| ips.iter().map(|ip| ClientKey::new(ip.parse().unwrap(), 64)).collect();
        let threat = Actor::stub("a-1", Class::Threat, keys(&["127.0.0.1", "192.0.2.80", "203.0.113.7"]), 0, 60);
        let v = serde_json::to_value(RosterEntry::of(&threat, &b)).unwrap();
        assert_eq!(v["id"], "a-1", "{v}");
        assert_eq!(v["classification"], "threat", "{v}");
        assert_eq!(v["not_blocked"], serde_json::json!({"127.0.0.1": "loopback", "192.0.2.80": "trusted_proxy"}));
        // A listable threat, and a prospect, carry no note.
        let public = Actor::stub("a-2", Class::Threat, keys(&["203.0.113.8"]), 0, 60);
        assert!(serde_json::to_value(RosterEntry::of(&public, &b)).unwrap().get("not_blocked").is_none());
        let prospect = Actor::stub("a-3", Class::Prospect, keys(&["10.0.0.1"]), 0, 60);
        assert!(serde_json::to_value(RosterEntry::of(&prospect, &b)).unwrap().get("not_blocked").is_none());
    }
}
