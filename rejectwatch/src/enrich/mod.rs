//! Enrichment: turns an exchange into evidence a detector can use. Pure
//! given its tables and key: who the client is (attribution), where it is
//! (geo), what it claims to be (user agent), what it really sends
//! (fingerprint), what it asks for (endpoint template) and who it
//! authenticates as (identity hash).

pub mod attribution;
pub mod endpoint;
pub mod fingerprint;
pub mod geo;
pub mod identity;
pub mod useragent;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::Context as _;
use ipnet::IpNet;
use serde::Deserialize;

use crate::exchange::Exchange;

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoConfig {
    /// MaxMind-DB-format country database.
    pub country: Option<PathBuf>,
    /// MaxMind-DB-format ASN database, or CSV ranges `start,end,asn,org`.
    pub asn: Option<PathBuf>,
}

/// What the enrichers are built from: the config's top-level proxy and
/// client keys, its `[identity]`, `[geoip]` and `[user_agents]` sections,
/// and the scanner names of the detectors' knowledge. The daemon's
/// `Config` gives one (`From<&Config>`, in `config`), so enrichment does
/// not depend on the assembled file.
pub struct Settings<'a> {
    pub trusted_proxies: &'a [IpNet],
    pub client_headers: &'a [attribution::ClientHeader],
    pub ipv6_prefix: u8,
    /// Where the identity key is kept; `None`: the default state directory.
    pub state_dir: Option<&'a Path>,
    pub identity: &'a identity::IdentityConfig,
    pub geoip: &'a GeoConfig,
    pub user_agents: &'a useragent::UserAgentConfig,
    pub scanners: &'a [String],
}

pub struct Enricher {
    attribution: attribution::Attribution,
    /// Shared by the forks: read only.
    geo: Arc<geo::Geo>,
    ua: useragent::UaClassifier,
    fingerprints: fingerprint::Fingerprints,
    identity: identity::IdentityHasher,
    /// Headers whose values are credentials: never kept.
    credential_headers: Vec<String>,
}

impl Enricher {
    /// Builds every enricher from the config; opens the GeoIP files and the
    /// identity key.
    pub fn new<'a>(cfg: impl Into<Settings<'a>>) -> anyhow::Result<Self> {
        let cfg = cfg.into();
        let geo = geo::Geo::open(cfg.geoip.country.as_deref(), cfg.geoip.asn.as_deref())?;
        let dir = cfg.state_dir.map_or_else(crate::state::default_state_dir, PathBuf::from);
        let key = crate::state::key::load_or_create_key(&dir).context("identity key")?;
        Self::with_parts(cfg, geo, key)
    }

    /// For tests: explicit GeoIP data and key.
    pub fn with_parts<'a>(cfg: impl Into<Settings<'a>>, geo: geo::Geo, key: [u8; 32]) -> anyhow::Result<Self> {
        let cfg = cfg.into();
        Ok(Self {
            attribution: attribution::Attribution::new(
                cfg.trusted_proxies.to_vec(),
                cfg.client_headers.to_vec(),
                cfg.ipv6_prefix,
            ),
            geo: Arc::new(geo),
            ua: useragent::UaClassifier::with_scanners(cfg.user_agents.table.as_deref(), cfg.scanners)?,
            fingerprints: Default::default(),
            identity: identity::IdentityHasher::new(key, cfg.identity.api_key_headers.clone()),
            credential_headers: ["authorization", "proxy-authorization", "cookie"]
                .iter()
                .map(|s| s.to_string())
                .chain(cfg.identity.api_key_headers.iter().cloned())
                .collect(),
        })
    }

    /// An enricher for another thread: the same tables and key, its own
    /// caches. Every field it fills is a function of the exchange and the
    /// tables alone, so which fork enriches an exchange changes nothing.
    pub fn fork(&self) -> Self {
        Self {
            attribution: self.attribution.clone(),
            geo: self.geo.clone(),
            ua: self.ua.fork(),
            fingerprints: Default::default(),
            identity: self.identity.fork(),
            credential_headers: self.credential_headers.clone(),
        }
    }

    /// What is missing, said once when the pipeline starts (not per
    /// exchange): fields that stay absent and why.
    pub fn notices(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if !self.geo.has_country() {
            v.push("no country database (--geoip-country): exchanges carry no country");
        }
        if !self.geo.has_asn() {
            v.push("no ASN database (--geoip-asn): exchanges carry no asn/as_org");
        }
        v
    }

    /// The GeoIP tables, for reports that name an actor's networks.
    pub fn geo(&self) -> &geo::Geo {
        &self.geo
    }

    /// The header values the injection detector needs once the rest are
    /// forgotten: those that may hold a payload, never a credential's.
    fn keep_payload_headers(&self, ex: &mut Exchange) {
        /// Enough for every header a scanner fills with a payload.
        const KEPT: usize = 8;
        let credential = |n: &str| self.credential_headers.iter().any(|c| crate::ascii::eq_ignore_case(c, n));
        let kept: Vec<_> = ex
            .headers()
            .filter(|(n, v)| {
                !crate::ascii::eq_ignore_case(n, "user-agent")
                    && crate::detect::payload::may_hold_payload(v.as_bytes())
                    && !credential(n)
            })
            .take(KEPT)
            .map(|(n, v)| (crate::exchange::header_name(n), Box::from(v)))
            .collect();
        ex.payload_headers = kept;
    }

    pub fn enrich(&mut self, ex: &mut Exchange) {
        self.attribute(ex);
        self.describe(ex);
    }

    /// Who the client is: the first step, on its own so that the pipeline
    /// can start fetching the client's state while the rest runs.
    pub fn attribute(&mut self, ex: &mut Exchange) {
        self.attribution.apply(ex);
    }

    /// Asks for the GeoIP table lines [`Enricher::describe`] will read for
    /// this exchange's client: a pass over a batch for each [`geo::Ahead`],
    /// in order, after attribution and before describing.
    pub fn prefetch(&self, ex: &Exchange, ahead: geo::Ahead) {
        if let Some(client) = ex.client {
            self.geo.prefetch(client, ahead);
        }
    }

    /// Everything after attribution.
    pub fn describe(&mut self, ex: &mut Exchange) {
        if let Some(client) = ex.client {
            let g = self.geo.lookup(client);
            (ex.country, ex.asn, ex.as_org) = (g.country, g.asn, g.as_org);
        }
        let ua = self.ua.classify(ex.user_agent());
        (ex.ua_product, ex.ua_version, ex.ua_family, ex.ua_platform, ex.ua_key, ex.ua_impossible) =
            (ua.product, ua.version, Some(ua.family), Some(ua.platform), ua.key, ua.impossible);
        ex.fingerprint = self.fingerprints.of(&ex.method, ex.version, &ex.header_names);
        let ep = endpoint::template(ex.target());
        ex.endpoint = Some(ex.given_endpoint.take().unwrap_or(ep.template));
        if ex.resource_id.is_none() {
            ex.resource_id = ep.resource_id;
        }
        ex.query_params = ep.query_params;
        self.identity.apply(ex);
        self.keep_payload_headers(ex);
        // Credentials have been hashed; nothing raw travels further.
        ex.request.forget_values();
        ex.raw_identity = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn credentials_never_reach_the_output() {
        let cfg = Config::default();
        let mut e = Enricher::with_parts(&cfg, geo::Geo::open(None, None).unwrap(), [1; 32]).unwrap();
        let secret_token = "sk_live_5f3b0c9e2d1a4b7c";
        let mut ex = Exchange {
            peer: "203.0.113.5".parse().unwrap(),
            method: "GET".into(),
            request: crate::exchange::RequestText::new("/api/v1/orders/42?page=2")
                .with_user_agent(Some("python-requests/2.32.5")),
            raw_identity: Some("user-77".into()),
            ..Default::default()
        };
        let bearer = format!("Bearer {secret_token}");
        ex.set_headers(&[
            ("Host", "api"),
            ("Authorization", &bearer),
            ("X-Api-Key", "key-material-123"),
            ("Cookie", "sid=${x}"),
            ("Proxy-Authorization", "Basic ${x}"),
            ("X-Auth-Token", "tok-{material}"),
        ]);
        e.enrich(&mut ex);
        let json = serde_json::to_string(&ex).unwrap();
        for secret in [secret_token, "key-material-123", "user-77"] {
            assert!(!json.contains(secret), "{secret} leaked: {json}");
        }
        assert!(!ex.request.has_values() && ex.raw_identity.is_none());
        assert!(ex.payload_headers.is_empty(), "{:?}", ex.payload_headers);
        assert_eq!(ex.identity_kind, Some("api_key"));
        assert_eq!(ex.endpoint.as_deref(), Some("/api/v1/orders/{id}"));
        assert_eq!(ex.query_params, ["page"]);
        assert_eq!(ex.ua_family, Some("http-library"));
        assert_eq!(ex.client_source, Some("peer"));
    }
}
