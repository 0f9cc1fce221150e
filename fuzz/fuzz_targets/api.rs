//! The HTTP API's inputs: the query strings of `/api/v1/actors` and
//! `/api/v1/findings`, and the JSON body of `POST /api/v1/marks`. The
//! first byte picks which; the rest is the query string or the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rejectwatch::api;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let now = 1_700_000_000_000_000_000;
    match pick % 3 {
        0 => {
            let _ = api::actors_query(std::str::from_utf8(rest).ok());
        }
        1 => {
            let _ = api::findings_query(std::str::from_utf8(rest).ok(), now);
        }
        _ => {
            if let Ok(m) = api::new_mark(rest, now) {
                assert!(m.note.is_none_or(|n| n.chars().count() <= 1000));
            }
        }
    }
});
