//! `rejectwatch analyze`: capture files through the same core as live.

use std::sync::{Arc, Mutex};

use anyhow::bail;

use crate::{
    cli::AnalyzeArgs,
    join::Joiner,
    metrics::Metrics,
    observe::Source,
    sink::{Sinks, open_output},
    source::{
        emulate::{KernelRules, Ports},
        pcap,
    },
};

pub fn analyze(args: AnalyzeArgs) -> anyhow::Result<()> {
    for f in &args.files {
        if !f.exists() {
            bail!("cannot read {}: no such file", f.display());
        }
        if !pcap::is_capture(f) {
            bail!("cannot read {}: not a pcap or pcapng capture", f.display());
        }
    }
    let p = &args.pipeline;
    let metrics = Arc::new(Mutex::new(Metrics::new()));
    let out = p.exchanges.as_deref().map(open_output).transpose()?;
    let mut sinks = Sinks::new(metrics.clone(), out);
    let ports = if args.port.is_empty() { Ports::All } else { Ports::from_list(&args.port) };
    let mut rules = KernelRules::new(ports, p.snaplen, p.response_snaplen);
    let mut join = Joiner::new(p.join_config(), Source::Pcap);
    let mut packets = 0;
    for f in &args.files {
        let stats = pcap::replay(f, &mut rules, &mut join, &mut sinks)?;
        packets += stats.packets;
        metrics.lock().unwrap_or_else(|e| e.into_inner()).records.with_label_values(&["pcap"]).inc_by(stats.records);
    }
    join.finish(&mut sinks);
    sinks.flush()?;
    eprintln!(
        "rejectwatch: {} packets from {} file(s): {} exchanges, {} unmatched, {} parse errors",
        packets,
        args.files.len(),
        sinks.count,
        sinks.unmatched,
        sinks.parse_errors,
    );
    Ok(())
}
