//! Signal 3, country (and ASN) convergence: distinct addresses from one
//! country converging on the same auth-gated endpoint within a window.
//! One is a curiosity, two a coincidence, three a campaign (default: 3
//! addresses, 72 hours). Only clients the endpoint turned away (401/403)
//! and the API never served count, so a country's ordinary users with an
//! expired session do not add up to a campaign.

use std::time::Duration;

use serde::Deserialize;

use super::{at_most, nonzero_duration, positive};
use crate::{
    detect::{
        Detector, Obs,
        client::{ClientKey, ClientState, EVER_SUCCEEDED},
        evidence::{CONVERGENCE, Signal, emit},
        human,
        keyed::Keyed,
        window::key64_parts,
    },
    time::{Secs, duration_secs},
};

pub const NAME: &str = "convergence";
const MAX_MEMBERS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Country,
    Asn,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    pub min_clients: u32,
    /// Refusals an address needs before it counts (an expired session
    /// refused once, then renewed, is not converging on anything).
    pub min_requests_per_client: u32,
    pub group_by: Vec<GroupBy>,
    pub max_keys: usize,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(72 * 3600),
            min_clients: 3,
            min_requests_per_client: 2,
            group_by: vec![GroupBy::Country, GroupBy::Asn],
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
        at_most("min_clients", self.min_clients as u64, MAX_MEMBERS as u64)?;
        positive("max_keys", self.max_keys as u64)?;
        if self.group_by.is_empty() {
            return Err("group_by: give at least one of \"country\", \"asn\"".into());
        }
        Ok(())
    }
    pub fn build(&self) -> Convergence {
        let window = duration_secs(self.window);
        Convergence { spec: self.clone(), window, groups: Keyed::new(self.max_keys, window) }
    }
}

pub struct Convergence {
    spec: Spec,
    window: Secs,
    groups: Keyed<u64, Vec<(ClientKey, Secs, u32)>>,
}

impl Detector for Convergence {
    fn observe(&mut self, o: &Obs<'_>, c: &mut ClientState, out: &mut Vec<Signal>) {
        if !matches!(o.status(), 401 | 403) || c.has(EVER_SUCCEEDED) {
            return;
        }
        for g in &self.spec.group_by {
            let (label, value) = match g {
                GroupBy::Country => match &o.ex.country {
                    Some(cc) => ("country", cc.to_string()),
                    None => continue,
                },
                GroupBy::Asn => match o.ex.asn {
                    Some(n) => ("asn", format!("AS{n}")),
                    None => continue,
                },
            };
            let gk = key64_parts(&[label.as_bytes(), value.as_bytes(), o.endpoint.as_bytes()]);
            let window = self.window;
            let members = self.groups.touch(gk, o.now, Vec::new);
            members.retain(|(_, t, _)| o.now.saturating_sub(*t) < window);
            let mine = match members.iter().position(|(k, _, _)| *k == o.key) {
                Some(i) => {
                    members[i].1 = o.now;
                    members[i].2 += 1;
                    members[i].2
                }
                None if members.len() < MAX_MEMBERS => {
                    members.push((o.key, o.now, 1));
                    1
                }
                None => 0,
            };
            let min = self.spec.min_requests_per_client;
            let n = members.iter().filter(|m| m.2 >= min).count();
            if mine >= min && n >= self.spec.min_clients as usize && !o.cooling(gk) {
                let mut clients = vec![o.key];
                clients.extend(members.iter().filter(|m| m.2 >= min).map(|(k, _, _)| *k).filter(|k| *k != o.key));
                let org = if *g == GroupBy::Asn { o.ex.as_org.unwrap_or_default() } else { "" };
                emit(out, || {
                    Signal::new(
                        NAME,
                        CONVERGENCE,
                        gk,
                        clients,
                        format!(
                            "{n} addresses from {label} {value}{} were turned away by {} within {}",
                            if org.is_empty() { String::new() } else { format!(" ({org})") },
                            o.endpoint,
                            human(window)
                        ),
                    )
                    .endpoint(o.endpoint)
                    .with("group_by", label)
                    .with(label, value)
                    .with("clients", n)
                    .with("window_seconds", window)
                });
            }
        }
    }

    fn sweep(&mut self, now: Secs) {
        self.groups.sweep(now);
    }

    fn keys(&self) -> usize {
        self.groups.len()
    }

    fn save(&self) -> Result<Vec<u8>, crate::detect::codec::Error> {
        crate::detect::codec::encode(&self.groups)
    }

    fn restore(&mut self, saved: &[u8]) -> Result<(), crate::detect::codec::Error> {
        self.groups.restore(crate::detect::codec::decode(saved)?);
        Ok(())
    }
}
