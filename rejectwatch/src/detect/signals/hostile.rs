//! Signal 16, hostile by construction: requests no client library writes,
//! each a threat on its own whatever the server answered (a scanner served
//! 200 throughout is still a scanner):
//! - a self-declared scanner user agent (the `scanner` family of the
//!   user-agent table, and the `scanners` lists an operator adds);
//! - a request line that is not HTTP/1.x (bytes that are not HTTP, an
//!   invalid version, no version, a raw space in the target): the
//!   malformed line is the signal, not the 400 that answered it;
//! - proxy attempts: CONNECT, and an absolute-form target naming a host
//!   that is not ours (`GET http://other.host/ HTTP/1.1`).

use std::time::Duration;

use serde::Deserialize;

use super::clip;
use crate::{
    detect::{
        Detector, Obs,
        client::ClientState,
        evidence::{MALFORMED, PROXY_ATTEMPT, SCANNER_UA, Signal, emit},
        window::h64,
    },
    exchange::Malformed,
};

pub const NAME: &str = "hostile-by-construction";

/// Hosts learned as ours, at most: a server answers for a few names, and
/// the table must stay bounded whatever Host headers clients send.
const MAX_HOSTS: usize = 64;
/// Served requests naming a host before it counts as ours.
const LEARNED_AFTER: u32 = 3;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    /// Host names this server answers for (case-insensitive, no port).
    /// Empty: learned from the Host header of requests it serves.
    pub own_hosts: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self { own_hosts: Vec::new(), cooldown: Duration::from_secs(3600) }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        match self.own_hosts.iter().find(|h| h.trim().is_empty() || h.contains('/')) {
            Some(h) => Err(format!("own_hosts: {h:?} is not a host name")),
            None => Ok(()),
        }
    }
    pub fn build(&self) -> Hostile {
        Hostile {
            configured: !self.own_hosts.is_empty(),
            hosts: self.own_hosts.iter().map(|h| (h64(h.trim().to_ascii_lowercase().as_bytes()), u32::MAX)).collect(),
        }
    }
}

pub struct Hostile {
    /// The operator named the hosts: nothing is learned.
    configured: bool,
    /// (hash of the lowercase host, served requests naming it).
    hosts: Vec<(u64, u32)>,
}

/// The host of a target in absolute form (`http://user@Host:8080/x`),
/// lowercase, without port or brackets' contents changed.
fn absolute_host(target: &str) -> Option<String> {
    let b = target.as_bytes();
    let rest = if b.len() >= 7 && b[..7].eq_ignore_ascii_case(b"http://") {
        &target[7..]
    } else if b.len() >= 8 && b[..8].eq_ignore_ascii_case(b"https://") {
        &target[8..]
    } else {
        return None;
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Some(host_only(host_port).to_ascii_lowercase())
}

/// `host:port` or `[v6]:port` without the port.
fn host_only(h: &str) -> &str {
    if h.starts_with('[') {
        return h.find(']').map_or(h, |e| &h[..=e]);
    }
    h.rsplit_once(':').map_or(h, |(host, port)| if port.bytes().all(|b| b.is_ascii_digit()) { host } else { h })
}

impl Hostile {
    fn ours(&self, host: &str) -> bool {
        let h = h64(host.as_bytes());
        self.hosts.iter().any(|&(x, n)| x == h && n >= LEARNED_AFTER)
    }

    /// Counts a served origin-form request's Host header.
    fn learn(&mut self, host: &str) {
        let h = h64(host_only(host).to_ascii_lowercase().as_bytes());
        if let Some((_, n)) = self.hosts.iter_mut().find(|(x, _)| *x == h) {
            *n = n.saturating_add(1);
        } else if self.hosts.len() < MAX_HOSTS {
            self.hosts.push((h, 1));
        }
    }
}

/// Whether a malformed line says nothing about the client: an empty
/// request line answered 408 is a connection opened and never used (a
/// browser's preconnect), which servers log as `"-" 408`.
fn unused_connection(o: &Obs<'_>, m: Malformed) -> bool {
    m == Malformed::NotHttp && o.ex.target().is_empty() && o.ex.method.is_empty() && o.status() == 408
}

impl Detector for Hostile {
    fn observe(&mut self, o: &Obs<'_>, _c: &mut ClientState, out: &mut Vec<Signal>) {
        let ex = o.ex;
        let target = ex.target();
        if o.success
            && !self.configured
            && target.starts_with('/')
            && let Some(h) = ex.host()
        {
            self.learn(h);
        }
        let base = o.key.hash32() as u64;
        if ex.ua_family == Some("scanner") && !o.cooling(base ^ 0x5c) {
            let product = ex.ua_product.as_deref().unwrap_or("a scanner");
            emit(out, || {
                Signal::new(
                    NAME,
                    SCANNER_UA,
                    base ^ 0x5c,
                    vec![o.key],
                    format!("{} identifies itself as {product}, a scanning tool (answered {})", o.key, o.status()),
                )
                .endpoint(o.endpoint)
                .with("form", "scanner_user_agent")
                .with("product", product.to_string())
                .with("user_agent", clip(ex.user_agent().unwrap_or(""), 200))
                .with("status", o.status())
            });
        }
        if let Some(m) = ex.malformed
            && !unused_connection(o, m)
            && !o.cooling(base ^ 0x4d)
        {
            emit(out, || {
                Signal::new(
                    NAME,
                    MALFORMED,
                    base ^ 0x4d,
                    vec![o.key],
                    format!(
                        "{} sent a request line that is not HTTP/1.x ({}), answered {}",
                        o.key,
                        m.as_str(),
                        o.status()
                    ),
                )
                .endpoint(o.endpoint)
                .with("form", "malformed")
                .with("reason", m.as_str())
                .with("method", clip(&ex.method, 16))
                .with("target", clip(target, 200))
                .with("status", o.status())
            });
        }
        let proxy = if ex.method == "CONNECT" {
            Some("connect")
        } else {
            absolute_host(target).filter(|h| !self.ours(h)).map(|_| "absolute_uri")
        };
        if let Some(form) = proxy
            && !o.cooling(base ^ 0x50)
        {
            emit(out, || {
                Signal::new(
                    NAME,
                    PROXY_ATTEMPT,
                    base ^ 0x50,
                    vec![o.key],
                    format!(
                        "{} tried to use the server as a proxy ({} {}), answered {}",
                        o.key,
                        clip(&ex.method, 16),
                        clip(target, 120),
                        o.status()
                    ),
                )
                .endpoint(o.endpoint)
                .with("form", form)
                .with("target", clip(target, 200))
                .with("status", o.status())
            });
        }
    }

    fn keys(&self) -> usize {
        self.hosts.len()
    }

    fn save(&self) -> Result<Vec<u8>, crate::detect::codec::Error> {
        crate::detect::codec::encode(&self.hosts)
    }

    fn restore(&mut self, saved: &[u8]) -> Result<(), crate::detect::codec::Error> {
        let mut hosts: Vec<(u64, u32)> = crate::detect::codec::decode(saved)?;
        // Configured hosts are the operator's, not learned.
        if !self.configured {
            hosts.truncate(MAX_HOSTS);
            self.hosts = hosts;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_absolute_targets() {
        assert_eq!(absolute_host("http://Other.Example:8080/x?y").as_deref(), Some("other.example"));
        assert_eq!(absolute_host("HTTPS://u:p@h.example/").as_deref(), Some("h.example"));
        assert_eq!(absolute_host("http://[2001:db8::1]:80/").as_deref(), Some("[2001:db8::1]"));
        assert_eq!(absolute_host("http://h").as_deref(), Some("h"));
        assert_eq!(absolute_host("/http://h/"), None);
        assert_eq!(absolute_host("http:/"), None);
        assert_eq!(host_only("api.example.com:443"), "api.example.com");
        assert_eq!(host_only("a:b"), "a:b");
    }

    #[test]
    fn learned_hosts_are_bounded_and_need_several_requests() {
        let mut h = Spec::default().build();
        for _ in 0..2 {
            h.learn("API.example.com:443");
        }
        assert!(!h.ours("api.example.com"));
        h.learn("api.example.com");
        assert!(h.ours("api.example.com"));
        for i in 0..1000 {
            h.learn(&format!("h{i}.example"));
        }
        assert_eq!(h.keys(), MAX_HOSTS);
        let c = Spec { own_hosts: vec!["Api.Example.com".into()], ..Default::default() }.build();
        assert!(c.ours("api.example.com") && !c.ours("other.example"));
        assert!(Spec { own_hosts: vec!["http://x/".into()], ..Default::default() }.validate().is_err());
    }
}
