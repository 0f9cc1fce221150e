//! The user-agent classifier with the built-in table, on any header
//! value; each agent twice, the second from the classifier's cache.
#![no_main]

use std::sync::{LazyLock, Mutex};

use libfuzzer_sys::fuzz_target;
use rejectwatch::enrich::useragent::UaClassifier;

/// Built once: the table is parsed on construction.
static UA: LazyLock<Mutex<UaClassifier>> =
    LazyLock::new(|| Mutex::new(UaClassifier::new(None).expect("the built-in table loads")));

fuzz_target!(|data: &[u8]| {
    let ua = String::from_utf8_lossy(data);
    let mut c = UA.lock().unwrap();
    let first = c.classify(Some(&ua));
    let again = c.classify(Some(&ua));
    assert_eq!(first.key, again.key);
});
