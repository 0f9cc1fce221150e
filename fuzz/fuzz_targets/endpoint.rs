//! Endpoint templating of request targets (origin or absolute form),
//! whatever a client put in its request line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rejectwatch::enrich::endpoint;

fuzz_target!(|data: &[u8]| {
    let target = String::from_utf8_lossy(data);
    let _ = endpoint::template(&target);
});
