//! Whole pcap and pcapng files through the capture reader, the kernel
//! rules and the join, as `analyze` reads them: the reader takes paths,
//! so the bytes go through a temp file. An odd first byte splits the rest
//! in two captures read together (the merge by time).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rejectwatch::{
    join::{JoinConfig, Joiner},
    observe::{Collect, Source},
    source::{
        emulate::{KernelRules, Ports},
        pcap,
    },
};

fuzz_target!(|data: &[u8]| {
    let Some((&h, rest)) = data.split_first() else { return };
    let (a, b) = if h & 1 != 0 { rest.split_at(rest.len() / 2) } else { (rest, &[][..]) };
    let first = rejectwatch_fuzz::temp_file("a.pcap", a);
    let second = rejectwatch_fuzz::temp_file("b.pcap", b);
    let paths: Vec<&std::path::Path> = if h & 1 != 0 { vec![&first, &second] } else { vec![&first] };
    let mut rules = KernelRules::new(Ports::All, 2048, 1024);
    let mut join = Joiner::new(JoinConfig::default(), Source::Pcap);
    let mut obs = Collect::default();
    if pcap::replay(&paths, &mut rules, &mut join, &mut obs).is_ok() {
        join.finish(&mut obs);
    }
});
