//! Whole log files through the reader `analyze` uses: gzip recognised by
//! its magic, the format guessed from the first line, bad lines counted.
//! An odd first byte forces the combined format, as `--format` does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rejectwatch::{
    observe::Collect,
    source::{
        logformat::{LogFormat, json::JsonLogFields},
        logreader,
    },
};

fuzz_target!(|data: &[u8]| {
    let Some((&h, rest)) = data.split_first() else { return };
    let path = rejectwatch_fuzz::temp_file("access.log", rest);
    let format = (h & 1 != 0).then_some(LogFormat::Combined);
    let mut obs = Collect::default();
    if let Ok(stats) = logreader::replay(&[&path], format, &JsonLogFields::default(), &mut obs) {
        assert!(stats.exchanges <= stats.lines, "more exchanges than lines");
    }
});
