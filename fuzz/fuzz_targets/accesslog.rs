//! One access-log line in each format: common/combined (with or without a
//! vhost) and JSON with the default and renamed fields, plus the format
//! guess. Lines are whatever clients put in their requests, as logged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rejectwatch::{config::JsonLogFields, source::accesslog};

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let _ = accesslog::detect(&line);
    let _ = accesslog::parse_combined(&line);
    let _ = accesslog::parse_json(&line, &JsonLogFields::default());
    let renamed = JsonLogFields { timestamp: "t".into(), source_ip: "ip".into(), ..Default::default() };
    let _ = accesslog::parse_json(&line, &renamed);
});
