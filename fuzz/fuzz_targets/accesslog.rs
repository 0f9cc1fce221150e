//! One access-log line in every format (`--format`'s list: combined and
//! common, JSON with the default and renamed fields, ingress-nginx,
//! Traefik, Caddy, Envoy, HAProxy, AWS ALB), the wrappers taken off first
//! as the reader does. Lines are whatever clients put in their requests,
//! as logged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rejectwatch::{
    source::logformat::{JsonFields, LogFormat, json::JsonLogFields},
};

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let fields = [
        JsonFields::new(&JsonLogFields::default()).expect("default fields"),
        JsonFields::new(&JsonLogFields { timestamp: "t".into(), source_ip: "request.ip".into(), ..Default::default() })
            .expect("renamed fields"),
    ];
    use LogFormat::*;
    for f in [Combined, Common, Json, IngressNginx, Traefik, Caddy, Envoy, Haproxy, Alb] {
        for json in &fields {
            let _ = f.parse(&line, json);
        }
    }
});
