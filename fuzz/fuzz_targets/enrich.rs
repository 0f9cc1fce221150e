//! Enrichment of what clients send: a request head joined to a response
//! (or an access-log line) and then attributed through forwarding headers
//! from a trusted proxy, identified by its credentials (Basic, bearer
//! JWT, API-key headers), its agent classified, fingerprinted and its
//! target templated, its header values dropped. The first byte picks the source: a head, a
//! combined log line or a JSON log line; the rest is that text.
#![no_main]

use std::sync::{LazyLock, Mutex};

use libfuzzer_sys::fuzz_target;
use rejectwatch::{
    config::Config,
    enrich::{Enricher, geo::Geo},
    join::{JoinConfig, Joiner},
    observe::{Collect, Source},
    record::{Kind, Record},
    source::logformat::{
        JsonFields, clf,
        json::{self, JsonLogFields},
    },
};

/// Every peer is a trusted proxy, so the forwarding headers are read.
static ENRICHER: LazyLock<Mutex<Enricher>> = LazyLock::new(|| {
    let mut cfg = Config::default();
    cfg.trusted_proxies = vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
    Mutex::new(
        Enricher::with_parts(&cfg, Geo::open(None, None).expect("no GeoIP files"), [7; 32])
            .expect("the enricher builds"),
    )
});

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let mut obs = Collect::default();
    match pick % 3 {
        0 => {
            let cfg = JoinConfig { snaplen: 4096, ..Default::default() };
            let mut join = Joiner::new(cfg, Source::Kernel);
            let (client, server) = ("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
            let len = rest.len() as u32;
            let head = Record {
                kind: Kind::Request,
                ts: 1,
                src: client,
                dst: server,
                seq: 1,
                ack: Some(1),
                payload_len: len,
                data: rest,
            };
            join.push(head, &mut obs);
            let status = b"HTTP/1.1 403 Forbidden\r\n\r\n";
            let resp = Record {
                kind: Kind::Response,
                ts: 2,
                src: server,
                dst: client,
                seq: 1,
                ack: Some(1 + len),
                payload_len: status.len() as u32,
                data: status,
            };
            join.push(resp, &mut obs);
            join.finish(&mut obs);
        }
        1 => obs.exchanges.extend(clf::parse_combined(&String::from_utf8_lossy(rest))),
        _ => obs.exchanges.extend(json::parse_json(
            &String::from_utf8_lossy(rest),
            &JsonFields::new(&JsonLogFields::default()).expect("default fields"),
        )),
    }
    let mut e = ENRICHER.lock().unwrap();
    for mut ex in obs.exchanges {
        e.enrich(&mut ex);
        // Enrichment drops the header values in place, unchecked: what is
        // left must still be UTF-8.
        let r = &ex.request;
        for s in [Some(r.target()), r.host(), r.user_agent()].into_iter().flatten().chain(r.values()) {
            assert!(std::str::from_utf8(s.as_bytes()).is_ok(), "request text is not UTF-8 after forget_values");
        }
    }
});
