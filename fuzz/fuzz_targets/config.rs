//! The config file as the daemon and `analyze` read it: TOML, then every
//! section's validation, with errors pointing at a line and key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rejectwatch::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(text);
    }
});
