//! End-of-run reports of `analyze`: the actor roster (`--actors`, JSON)
//! and the prospects to contact (`--prospects`, CSV). Both are written to
//! a temporary file and renamed into place.

use std::{io, path::Path};

use anyhow::Context as _;

use crate::{
    detect::{actors::Actor, evidence::Class},
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

/// One row per prospect: what a sales or partnerships team needs to find
/// and contact the operator of the tool.
pub fn write_prospects(path: &Path, actors: &[&Actor]) -> anyhow::Result<()> {
    let join = |v: Vec<String>| v.join(" ");
    write_atomically(path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record([
            "actor",
            "product_version",
            "countries",
            "asns",
            "endpoints",
            "cadence",
            "clients",
            "requests",
            "first_seen",
            "last_seen",
        ])?;
        for a in actors.iter().filter(|a| a.class == Class::Prospect) {
            csv.write_record([
                a.id.clone(),
                join(a.products.clone()),
                join(a.countries.clone()),
                join(a.asns.iter().map(|n| format!("AS{n}")).collect()),
                join(a.endpoints.clone()),
                a.cadence.clone().unwrap_or_default(),
                join(a.clients.iter().map(ToString::to_string).collect()),
                a.requests.to_string(),
                format_ts(a.first_seen as u64 * 1_000_000_000),
                format_ts(a.last_seen as u64 * 1_000_000_000),
            ])?;
        }
        csv.flush()
    })
    .with_context(|| format!("--prospects: cannot write {}", path.display()))
}
