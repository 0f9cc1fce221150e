//! Signal 2, tool fingerprint spread: the exact version string of an HTTP
//! library (and, from packets, the order and set of header names) is a
//! fingerprint. Several addresses sending the same one to the same
//! endpoint, and being rejected there, are one tool deployed in several
//! places. Members that also share a polling cadence are grouped into one
//! actor (same fingerprint + target + cadence).

use std::time::Duration;

use serde::Deserialize;

use super::{nonzero_duration, positive};
use crate::{
    detect::{
        Detector, Obs,
        cadence::same_period,
        client::{ClientKey, ClientState, EVER_SUCCEEDED},
        evidence::{Signal, TOOL_SPREAD, emit},
        human,
        keyed::Keyed,
        window::key64_parts,
    },
    time::{Secs, duration_secs},
};

pub const NAME: &str = "tool-spread";
const MAX_MEMBERS: usize = 64;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Distinct addresses sharing the fingerprint and endpoint.
    pub min_clients: u32,
    /// Refusals (401, 403, 429) an address needs before it counts: one
    /// expired session is not a deployment.
    pub min_requests_per_client: u32,
    /// Cadences within this fraction of each other are the same.
    pub cadence_tolerance: f64,
    pub max_keys: usize,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(72 * 3600),
            min_clients: 4,
            min_requests_per_client: 3,
            cadence_tolerance: 0.1,
            max_keys: 10_000,
            cooldown: Duration::from_secs(72 * 3600),
        }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        nonzero_duration("window", self.window)?;
        positive("min_clients", self.min_clients as u64)?;
        positive("min_requests_per_client", self.min_requests_per_client as u64)?;
        super::at_most("min_clients", self.min_clients as u64, MAX_MEMBERS as u64)?;
        positive("max_keys", self.max_keys as u64)
    }
    pub fn build(&self) -> ToolSpread {
        let window = duration_secs(self.window);
        ToolSpread { spec: self.clone(), window, clusters: Keyed::new(self.max_keys, window) }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Member {
    key: ClientKey,
    last: Secs,
    requests: u32,
    #[serde(deserialize_with = "crate::detect::codec::interned")]
    country: crate::detect::codec::GeoName,
    period: Option<Secs>,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Cluster {
    members: Vec<Member>,
}

pub struct ToolSpread {
    spec: Spec,
    window: Secs,
    clusters: Keyed<u64, Cluster>,
}

impl Detector for ToolSpread {
    fn observe(&mut self, o: &Obs<'_>, c: &mut ClientState, out: &mut Vec<Signal>) {
        let ex = o.ex;
        if !matches!(o.status(), 401 | 403 | 429) || c.has(EVER_SUCCEEDED) {
            return;
        }
        let (Some(product), Some(version)) = (&ex.ua_product, &ex.ua_version) else { return };
        if !matches!(ex.ua_family, Some("http-library" | "cli")) {
            return;
        }
        let fp = ex.fingerprint;
        let fp_bytes = fp.map(|f| f.0.to_le_bytes());
        let ck = key64_parts(&[
            product.as_bytes(),
            version.as_bytes(),
            fp_bytes.as_ref().map_or(&[], |b| b),
            o.endpoint.as_bytes(),
        ]);
        let period = c.cadence.regular_period(&o.ctx.cadence);
        let window = self.window;
        let cl = self.clusters.touch(ck, o.now, Cluster::default);
        cl.members.retain(|m| o.now.saturating_sub(m.last) < window);
        let newly_periodic = match cl.members.iter().position(|m| m.key == o.key) {
            Some(i) => {
                let m = &mut cl.members[i];
                m.last = o.now;
                m.requests += 1;
                let was = m.period;
                m.period = period.or(m.period);
                was.is_none() && m.period.is_some()
            }
            None if cl.members.len() < MAX_MEMBERS => {
                cl.members.push(Member { key: o.key, last: o.now, requests: 1, country: ex.country, period });
                period.is_some()
            }
            None => false,
        };
        if newly_periodic && let Some(p) = period {
            let same: Vec<ClientKey> = std::iter::once(o.key)
                .chain(
                    cl.members
                        .iter()
                        .filter(|m| {
                            m.key != o.key && m.period.is_some_and(|q| same_period(p, q, self.spec.cadence_tolerance))
                        })
                        .map(|m| m.key),
                )
                .collect();
            if same.len() > 1 {
                emit(out, || {
                    Signal::new(NAME, TOOL_SPREAD, ck, same, format!("same tool, target and {} cadence", human(p)))
                        .merged()
                        .silent()
                });
            }
        }
        let min = self.spec.min_requests_per_client;
        let n = cl.members.iter().filter(|m| m.requests >= min).count();
        let mine = cl.members.iter().find(|m| m.key == o.key).is_some_and(|m| m.requests >= min);
        if mine && n >= self.spec.min_clients as usize && !o.cooling(ck) {
            let counted = || cl.members.iter().filter(|m| m.requests >= min);
            let mut countries: Vec<&str> = counted().filter_map(|m| m.country).collect();
            countries.sort_unstable();
            countries.dedup();
            let mut clients = vec![o.key];
            clients.extend(counted().map(|m| m.key).filter(|k| *k != o.key));
            let fp_text = fp.map(|f| format!(" with header fingerprint {f}")).unwrap_or_default();
            emit(out, || {
                Signal::new(
                    NAME,
                    TOOL_SPREAD,
                    ck,
                    clients,
                    format!(
                        "{n} addresses{} send {product}/{version}{fp_text} to {}: one tool in several places",
                        match countries.len() {
                            0 => String::new(),
                            1 => format!(" in {}", countries[0]),
                            k => format!(" in {k} countries"),
                        },
                        o.endpoint
                    ),
                )
                .endpoint(o.endpoint)
                .with("clients", n)
                .with("countries", countries.join(","))
                .with("product", format!("{product}/{version}"))
                .with("fingerprint", fp.map(|f| f.to_string()).unwrap_or_default())
            });
        }
    }

    fn sweep(&mut self, now: Secs) {
        self.clusters.sweep(now);
    }

    fn keys(&self) -> usize {
        self.clusters.len()
    }

    fn save(&self) -> Result<Vec<u8>, crate::detect::codec::Error> {
        crate::detect::codec::encode(&self.clusters)
    }

    fn restore(&mut self, saved: &[u8]) -> Result<(), crate::detect::codec::Error> {
        self.clusters.restore(crate::detect::codec::decode(saved)?);
        Ok(())
    }
}
