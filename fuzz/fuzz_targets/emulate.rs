//! The kernel programs' capture rules as `analyze` replays them
//! (`KernelRules::segment`), on arbitrary TCP segments, feeding the join
//! as a capture does (see `rejectwatch_fuzz::segments` for the layout).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rejectwatch::{
    join::Joiner,
    observe::{Collect, Source},
    source::emulate::{KernelRules, Ports},
};
use rejectwatch_fuzz::{Bytes, join_config, segments};

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes::new(data);
    let h = input.u8();
    // The snap lengths the command line accepts (64.., 16..).
    let ports = if h & 1 != 0 { Ports::All } else { Ports::from_list(&[80, 8080]) };
    let snaplen = [64, 256, 2048, 4096][(h >> 1 & 3) as usize];
    let response_snaplen = [16, 64, 1024, 4096][(h >> 3 & 3) as usize];
    let mut rules = KernelRules::new(ports, snaplen, response_snaplen);
    let mut cfg = join_config(input.u8());
    cfg.snaplen = snaplen;
    let mut join = Joiner::new(cfg, Source::Pcap);
    let mut obs = Collect::default();
    segments(&mut input, |s| {
        if let Some(r) = rules.segment(&s) {
            assert!(r.data.len() <= s.payload.len());
            join.push(r, &mut obs);
        }
    });
    join.finish(&mut obs);
});
