//! Request and response heads as the join reads them from captured
//! segments: whatever a client or server sent, cut anywhere.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rejectwatch::http::{self, Parsed};

fuzz_target!(|data: &[u8]| {
    if let Parsed::Complete(_, n) = http::parse_request(data) {
        assert!(n <= data.len(), "a head cannot end past its buffer");
    }
    let _ = http::parse_truncated_request(data);
    let _ = http::malformed_request(data);
    if let Parsed::Complete(_, n) = http::parse_response(data) {
        assert!(n <= data.len(), "a head cannot end past its buffer");
    }
    let _ = http::starts_request(data);
    let _ = http::could_start_request(data);
    let _ = http::has_request_method(data);
    let _ = http::starts_response(data);
    if let Some(n) = http::find_head_end(data) {
        assert!(n <= data.len());
    }
});
