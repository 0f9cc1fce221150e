//! End-of-run reports of `analyze`: the actor roster (`--actors`, JSON)
//! and the prospects to contact (`--prospects`, CSV). Both are written to
//! a temporary file and renamed into place.

use std::{io, path::Path};

use anyhow::Context as _;
use serde::Serialize;

use crate::{
    detect::{actors::Actor, evidence::Class},
    enrich::geo::Geo,
    exchange::format_ts,
    sink::write_atomically,
};

pub fn write_actors(path: &Path, actors: &[&Actor]) -> anyhow::Result<()> {
    write_atomically(path, |w| {
        serde_json::to_writer_pretty(&mut *w, actors).map_err(io::Error::other)?;
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
                orgs.push((n, org));
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
