//! Signal 8, credential scanning, in four forms:
//! - a 401 surge from one client (default: more than 100 in an hour);
//! - stuffing: many identities (usernames, keys) failing from one client;
//! - distributed takeover: one identity failing from many clients (they
//!   are grouped into one actor: the same identity is strong evidence);
//! - a login endpoint's failure ratio far above its own baseline (account
//!   takeover starts as a change in the ratio; the baseline is learned
//!   hour by hour first).

use std::{collections::HashMap, time::Duration};

use serde::Deserialize;

use super::{at_most, nonzero_duration, positive};
use crate::{
    detect::{
        Detector, Obs,
        client::{ClientKey, ClientState},
        evidence::{CREDENTIALS, Signal, emit},
        glob::Globs,
        human,
        keyed::Keyed,
        window::Distinct,
    },
    exchange::Identity,
    time::{Secs, duration_secs},
};

pub const NAME: &str = "credential-scanning";
const MAX_DISTINCT: usize = 32;
/// Endpoints whose login test is remembered at once.
const MAX_MEMO: usize = 4096;

/// Which endpoints are logins (`login_endpoints` globs), remembered by the
/// endpoint's hash: six substring searches per exchange cost more than the
/// rest of a detector. Endpoints are templates, so few; the memo is
/// cleared if a scan makes it large. Shared with the burst detector.
pub struct Logins {
    globs: Globs,
    memo: HashMap<u64, bool, foldhash::fast::FixedState>,
}

impl Logins {
    pub fn new(login_endpoints: &[String]) -> Self {
        Self { globs: Globs::new(login_endpoints), memo: HashMap::default() }
    }

    /// Whether endpoint `endpoint` (hash `ep`) is a login.
    pub fn is_login(&mut self, ep: u64, endpoint: &str) -> bool {
        if let Some(&known) = self.memo.get(&ep) {
            return known;
        }
        if self.memo.len() >= MAX_MEMO {
            self.memo.clear();
        }
        let login = self.globs.any(endpoint);
        self.memo.insert(ep, login);
        login
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// More than this many 401s from one client within the window.
    pub surge_401: u32,
    /// Distinct failing identities from one client.
    pub max_identities_per_client: u32,
    /// Distinct clients failing with one identity.
    pub max_clients_per_identity: u32,
    /// Endpoint templates that are logins (`*` globs).
    pub login_endpoints: Vec<String>,
    /// Baseline bucket length.
    #[serde(with = "humantime_serde")]
    pub bucket: Duration,
    /// Buckets learned before the ratio is judged.
    pub baseline_buckets: u32,
    /// Attempts in a bucket before its ratio is judged.
    pub min_attempts: u32,
    /// The failure ratio must exceed the baseline by this factor...
    pub ratio_factor: f64,
    /// ...and by at least this much.
    pub min_ratio_increase: f64,
    pub max_keys: usize,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(3600),
            surge_401: 100,
            max_identities_per_client: 10,
            max_clients_per_identity: 10,
            login_endpoints: ["*login*", "*signin*", "*sign-in*", "*/auth*", "*/token*", "*/session*"]
                .map(String::from)
                .to_vec(),
            bucket: Duration::from_secs(3600),
            baseline_buckets: 24,
            min_attempts: 50,
            ratio_factor: 3.0,
            min_ratio_increase: 0.2,
            max_keys: 100_000,
            cooldown: Duration::from_secs(3600),
        }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        nonzero_duration("window", self.window)?;
        nonzero_duration("bucket", self.bucket)?;
        positive("surge_401", self.surge_401 as u64)?;
        positive("max_identities_per_client", self.max_identities_per_client as u64)?;
        at_most("max_identities_per_client", self.max_identities_per_client as u64, MAX_DISTINCT as u64)?;
        positive("max_clients_per_identity", self.max_clients_per_identity as u64)?;
        at_most("max_clients_per_identity", self.max_clients_per_identity as u64, MAX_DISTINCT as u64)?;
        positive("min_attempts", self.min_attempts as u64)?;
        positive("max_keys", self.max_keys as u64)?;
        if self.ratio_factor < 1.0 {
            return Err(format!("ratio_factor: {} is less than 1", self.ratio_factor));
        }
        Ok(())
    }
    pub fn build(&self) -> Credential {
        let window = duration_secs(self.window);
        Credential {
            spec: self.clone(),
            login_paths: Logins::new(&self.login_endpoints),
            window,
            bucket: duration_secs(self.bucket),
            per_client: Keyed::new(self.max_keys, window),
            per_identity: Keyed::new(self.max_keys, window),
            logins: Keyed::new(1024, duration_secs(self.bucket) * (self.baseline_buckets + 2)),
        }
    }
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Baseline {
    start: Secs,
    attempts: u32,
    failures: u32,
    /// Exponentially weighted failure ratio of past buckets.
    ratio: f64,
    learned: u32,
    fired: bool,
    failing: Vec<(ClientKey, u32)>,
}

pub struct Credential {
    spec: Spec,
    login_paths: Logins,
    window: Secs,
    bucket: Secs,
    per_client: Keyed<ClientKey, Distinct<u32, MAX_DISTINCT>>,
    per_identity: Keyed<u64, (Secs, Vec<ClientKey>)>,
    logins: Keyed<u64, Baseline>,
}

impl Credential {
    fn baseline(&mut self, o: &Obs<'_>, out: &mut Vec<Signal>) {
        if !self.login_paths.is_login(o.ep, o.endpoint) {
            return;
        }
        let failed = matches!(o.status(), 401 | 403);
        let b = self.logins.touch(o.ep, o.now, Baseline::default);
        if b.start == 0 {
            b.start = o.now;
        }
        while o.now.saturating_sub(b.start) >= self.bucket {
            // Close the bucket; an anomalous one is not learned from.
            if b.attempts >= self.spec.min_attempts && !b.fired {
                let r = b.failures as f64 / b.attempts as f64;
                b.ratio = if b.learned == 0 { r } else { 0.8 * b.ratio + 0.2 * r };
                b.learned += 1;
            }
            (b.attempts, b.failures, b.fired) = (0, 0, false);
            b.failing.clear();
            b.start += self.bucket;
            if o.now.saturating_sub(b.start) >= 2 * self.bucket {
                b.start = o.now;
            }
        }
        b.attempts += 1;
        if failed {
            b.failures += 1;
            match b.failing.iter().position(|(k, _)| *k == o.key) {
                Some(i) => b.failing[i].1 += 1,
                None if b.failing.len() < 64 => b.failing.push((o.key, 1)),
                None => {}
            }
        }
        let ratio = b.failures as f64 / b.attempts as f64;
        let limit = (b.ratio * self.spec.ratio_factor).max(b.ratio + self.spec.min_ratio_increase);
        if failed
            && !b.fired
            && b.learned >= self.spec.baseline_buckets
            && b.attempts >= self.spec.min_attempts
            && ratio > limit
        {
            b.fired = true;
            let mut top = b.failing.clone();
            top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            top.truncate(10);
            let clients: Vec<ClientKey> = top.iter().map(|(k, _)| *k).collect();
            emit(out, || {
                Signal::new(
                    NAME,
                    CREDENTIALS,
                    o.ep ^ 4,
                    clients,
                    format!(
                        "login failures on {} are {:.0}% this {} against a baseline of {:.0}%",
                        o.endpoint,
                        ratio * 100.0,
                        human(self.bucket),
                        b.ratio * 100.0
                    ),
                )
                .endpoint(o.endpoint)
                .with("form", "failure_ratio")
                .with("attempts", b.attempts)
                .with("failures", b.failures)
                .with("ratio", (ratio * 1000.0).round() / 1000.0)
                .with("baseline_ratio", (b.ratio * 1000.0).round() / 1000.0)
                .with("baseline_buckets", b.learned)
            });
        }
    }
}

impl Detector for Credential {
    fn observe(&mut self, o: &Obs<'_>, c: &mut ClientState, out: &mut Vec<Signal>) {
        self.baseline(o, out);
        if o.status() != 401 {
            return;
        }
        let n = c.reject_state().credential.r401.add(o.now, self.window);
        if n > self.spec.surge_401 && !o.cooling(o.key.hash32() as u64 ^ 1) {
            emit(out, || {
                Signal::new(
                    NAME,
                    CREDENTIALS,
                    o.key.hash32() as u64 ^ 1,
                    vec![o.key],
                    format!("{} received {n} 401s within {}", o.key, human(self.window)),
                )
                .endpoint(o.endpoint)
                .with("form", "surge")
                .with("responses_401", n)
            });
        }
        let Some(Identity(idh)) = o.ex.identity else { return };
        let window = self.window;
        let d = self.per_client.touch(o.key, o.now, Distinct::default);
        let n = d.add(idh as u32, o.now, window);
        if n >= self.spec.max_identities_per_client as usize && !o.cooling(o.key.hash32() as u64 ^ 2) {
            emit(out, || {
                Signal::new(
                    NAME,
                    CREDENTIALS,
                    o.key.hash32() as u64 ^ 2,
                    vec![o.key],
                    format!("{} failed with {n} different identities within {}", o.key, human(window)),
                )
                .endpoint(o.endpoint)
                .with("form", "stuffing")
                .with("identities", n)
            });
        }
        let (start, clients) = self.per_identity.touch(idh, o.now, || (o.now, Vec::new()));
        if o.now.saturating_sub(*start) >= window {
            (*start, *clients) = (o.now, Vec::new());
        }
        if !clients.contains(&o.key) && clients.len() < MAX_DISTINCT {
            clients.push(o.key);
        }
        if clients.len() >= self.spec.max_clients_per_identity as usize {
            let mut all = vec![o.key];
            all.extend(clients.iter().filter(|k| **k != o.key));
            emit(out, || {
                Signal::new(
                    NAME,
                    CREDENTIALS,
                    idh ^ 3,
                    all,
                    format!("one identity failed from {} clients within {}", clients.len(), human(window)),
                )
                .endpoint(o.endpoint)
                .with("form", "distributed_takeover")
                .with("clients", clients.len())
                .with("identity_kind", o.ex.identity_kind.unwrap_or("unknown"))
                .merged()
            });
        }
    }

    fn sweep(&mut self, now: Secs) {
        self.per_client.sweep(now);
        self.per_identity.sweep(now);
        self.logins.sweep(now);
    }

    fn keys(&self) -> usize {
        self.per_client.len() + self.per_identity.len() + self.logins.len()
    }

    fn save(&self) -> Result<Vec<u8>, crate::detect::codec::Error> {
        crate::detect::codec::encode(&(&self.per_client, &self.per_identity, &self.logins))
    }

    fn restore(&mut self, saved: &[u8]) -> Result<(), crate::detect::codec::Error> {
        let (per_client, per_identity, logins) = crate::detect::codec::decode(saved)?;
        self.per_client.restore(per_client);
        self.per_identity.restore(per_identity);
        self.logins.restore(logins);
        Ok(())
    }
}
