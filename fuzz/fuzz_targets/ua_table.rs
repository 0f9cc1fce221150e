//! The operator's user-agent table (`user_agents.table`), read before the
//! built-in one, then a few agents classified with it: rules, platforms
//! and the impossible-agent checks all come from these bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rejectwatch::enrich::useragent::UaClassifier;

const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/999.0.0.0 Safari/537.36",
    "python-requests/2.32.5",
    "Mozilla/5.0",
];

fuzz_target!(|data: &[u8]| {
    let path = rejectwatch_fuzz::temp_file("user-agents.toml", data);
    if let Ok(mut c) = UaClassifier::new(Some(&path)) {
        for ua in AGENTS {
            let _ = c.classify(Some(ua));
        }
    }
});
