//! The join fed arbitrary kernel records: split request starts,
//! continuations, split status lines, gaps, retransmissions, acks that
//! place responses, clock jumps past the timeout, tables too small for
//! the traffic (see `rejectwatch_fuzz::records` for the byte layout).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rejectwatch::{
    join::Joiner,
    observe::{Collect, Source},
};
use rejectwatch_fuzz::{Bytes, join_config, records};

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes::new(data);
    let mut join = Joiner::new(join_config(input.u8()), Source::Kernel);
    let mut obs = Collect::default();
    let mut last = 0;
    records(&mut input, |r| {
        last = r.ts;
        join.push(r, &mut obs);
        join.advance(last, &mut obs);
    });
    join.advance(last + 3_600_000_000_000, &mut obs);
    join.finish(&mut obs);
    assert_eq!(join.flows(), 0, "finish leaves no flow open");
});
