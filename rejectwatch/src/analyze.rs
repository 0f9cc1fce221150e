//! `rejectwatch analyze`: capture files and access logs through the same
//! enrichment and sinks as live traffic (captures through the same join).

use std::path::Path;

use anyhow::{Context as _, bail};

use crate::{
    assemble::{Assembled, Builder},
    cli::{AnalyzeArgs, InputFormat, TtlFrom},
    detect::evidence::Class,
    join::Joiner,
    observe::Source,
    report::{write_actors, write_prospects},
    source::{
        emulate::{KernelRules, Ports},
        logreader, pcap,
    },
    state::write_atomically,
};

pub fn analyze(args: AnalyzeArgs) -> anyhow::Result<()> {
    let mut captures: Vec<&Path> = Vec::new();
    let mut logs: Vec<&Path> = Vec::new();
    for f in &args.files {
        let stdin = f.as_os_str() == "-";
        if !stdin && !f.exists() {
            bail!("cannot read {}: no such file", f.display());
        }
        match args.format {
            InputFormat::Pcap if stdin => bail!("--format pcap: captures cannot be read from stdin"),
            InputFormat::Pcap => captures.push(f),
            InputFormat::Auto if !stdin && pcap::is_capture(f) => captures.push(f),
            _ => logs.push(f),
        }
    }
    let p = &args.pipeline;
    let cfg = p.config()?;
    // Written at the end: checked now, not after the whole input.
    for (flag, path) in [
        ("--actors", &args.actors),
        ("--prospects", &args.prospects),
        ("--metrics", &args.metrics),
        ("--report", &args.report),
        ("--stix", &args.stix),
    ] {
        if let Some(path) = path {
            crate::state::atomic::check_writable(flag, path)?;
        }
    }
    // A replay keeps no blocklist state: its time is the log's, and a
    // daemon's state must not be mixed with it. The host of the input is
    // not this one: no own addresses to spare.
    let Assembled { pipeline: mut pipe, metrics, resumed, .. } =
        Builder::new(&cfg, p).resume_from(args.resume.clone()).marks(&args.mark).build()?;
    if let Some(line) = resumed {
        eprintln!("rejectwatch: {line}");
    }
    if args.blocklist_ttl_from == TtlFrom::Now {
        // The one reading of the wall clock: the core counts in record
        // time, and this is the time the run's list starts from.
        pipe = pipe.listing_from(crate::time::secs(crate::time::clock::wall_now()));
    }
    for n in pipe.enricher.notices() {
        eprintln!("rejectwatch: {n}");
    }
    let mut packets = 0;
    let mut skipped = pcap::Skipped::default();
    if !captures.is_empty() {
        let ports = if args.port.is_empty() { Ports::All } else { Ports::from_list(&args.port) };
        let mut rules = KernelRules::new(ports, p.snaplen, p.response_snaplen);
        let mut join = Joiner::new(p.join_config(), Source::Pcap);
        let stats = pcap::replay(&captures, &mut rules, &mut join, &mut pipe)?;
        packets = stats.packets;
        skipped = stats.skipped;
        metrics.lock().unwrap_or_else(|e| e.into_inner()).records.with_label_values(&["pcap"]).inc_by(stats.records);
        join.finish(&mut pipe);
    }
    let mut log_stats = logreader::LogStats::default();
    if !logs.is_empty() {
        let threads = match args.threads {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        // On one thread the pipeline enriches, in its batches, and the
        // detectors search; with more, each worker prepares what it parses.
        let workers: Vec<_> = if threads > 1 {
            (0..threads)
                .map(|_| {
                    let mut up = pipe.upstream();
                    move |batch: &mut [&mut crate::exchange::Exchange]| up.prepare(batch)
                })
                .collect()
        } else {
            Vec::new()
        };
        pipe.set_prepared_upstream(!workers.is_empty());
        let stats = logreader::replay_parallel(&logs, args.format.log_format(), &cfg.json_log, workers, &mut pipe)?;
        pipe.set_prepared_upstream(false);
        metrics.lock().unwrap_or_else(|e| e.into_inner()).records.with_label_values(&["log"]).inc_by(stats.lines);
        log_stats = stats;
    }
    // The files are written once, as of the last record, even when no
    // threat is listed by then: a loader pointed at them finds the run's
    // answer, not a missing file or an older run's list.
    pipe.blocklist.changed = true;
    pipe.finish();
    pipe.sinks.flush()?;
    if let Some(dir) = &args.resume {
        crate::state::snapshot::write(dir, crate::state::snapshot::encode(&pipe.detect)?)?;
    }
    let actors = pipe.detect.roster().actors();
    if let Some(path) = &args.actors {
        write_actors(path, &actors, &pipe.blocklist)?;
    }
    if let Some(path) = &args.prospects {
        write_prospects(path, &actors, pipe.enricher.geo())?;
    }
    if let Some(path) = &args.report {
        crate::html::Report {
            source: sources(&args.files),
            actors: actors.clone(),
            blocklist: &pipe.blocklist,
            geo: pipe.enricher.geo(),
            tally: &pipe.sinks.tally,
            findings: pipe.sinks.findings_written,
            as_of: pipe.detect.now(),
            marks: args.mark.iter().map(|m| crate::time::secs(m.at)).collect(),
        }
        .write(path)?;
    }
    if let Some(path) = &args.stix {
        let bundle = crate::stix::bundle(&actors, &pipe.blocklist, &cfg.stix);
        write_atomically(path, |w| {
            serde_json::to_writer_pretty(&mut *w, &bundle).map_err(std::io::Error::other)?;
            writeln!(w)
        })
        .with_context(|| format!("--stix: cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.metrics {
        let text = metrics.lock().unwrap_or_else(|e| e.into_inner()).encode();
        write_atomically(path, |w| w.write_all(text.as_bytes()))
            .with_context(|| format!("--metrics: cannot write {}", path.display()))?;
    }
    let s = &pipe.sinks;
    let count = |c: Class| actors.iter().filter(|a| a.class == c).count();
    // Said, so that "0 blocklisted" beside threats does not read as a
    // fault: a threat is not listed when every client of it is exempt
    // (see `not_blocked` in the roster) or, its entries lasting `ttl` from
    // its last request, when it went quiet long before the input's end.
    let (mut exempt, mut unlisted) = (0, 0);
    for a in actors.iter().filter(|a| a.class == Class::Threat) {
        if !a.clients.is_empty() && a.clients.iter().all(|k| pipe.blocklist.not_blocked(k).is_some()) {
            exempt += 1;
        } else if !a.clients.iter().any(|k| pipe.blocklist.lists(k)) {
            unlisted += 1;
        }
    }
    let mut why = Vec::new();
    if exempt > 0 {
        why.push(format!(
            "{exempt} never listed (loopback, own, link-local or private addresses, trusted proxies, allowlisted)"
        ));
    }
    if unlisted > 0 {
        why.push(match args.blocklist_ttl_from {
            TtlFrom::LastRecord => format!(
                "{unlisted} quiet for longer than blocklist.ttl ({}) by the last record",
                humantime::format_duration(cfg.blocklist.ttl)
            ),
            TtlFrom::Now => format!("{unlisted} past blocklist.max_entries ({})", cfg.blocklist.max_entries),
        });
    }
    let unlisted = match exempt + unlisted {
        0 => String::new(),
        n => format!(" ({n} threat actor(s) not listed: {})", why.join(", ")),
    };
    // Every frame and line is accounted for by kind: a capture of a
    // tunnel nobody decodes reads as "0 exchanges, 0 parse errors" else.
    let named = |kinds: Vec<String>| if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) };
    let no_tcp = named(skipped.kinds().map(|(k, n)| format!("{k} {n}")).collect());
    let log_lines = log_summary(&log_stats);
    let why = named(s.parse_error_reasons.iter().map(|((src, r), n)| format!("{src} {r} {n}")).collect());
    eprintln!(
        "rejectwatch: {} file(s), {packets} packets{no_tcp}, {log_lines}: {} exchanges, {} unmatched, \
         {} parse errors{why}; {} findings; actors: {} threat, {} prospect, {} misconfiguration, {} unknown; \
         {} blocklisted{unlisted}",
        args.files.len(),
        s.count,
        s.unmatched,
        s.parse_errors,
        s.findings_written,
        count(Class::Threat),
        count(Class::Prospect),
        count(Class::Misconfiguration),
        count(Class::Unknown),
        pipe.blocklist.len(),
    );
    Ok(())
}

/// The input files by name, for the report's heading: the first few and
/// how many more.
fn sources(files: &[std::path::PathBuf]) -> String {
    const SHOWN: usize = 4;
    let name = |f: &std::path::PathBuf| match f.file_name() {
        _ if f.as_os_str() == "-" => "stdin".to_string(),
        Some(n) => n.to_string_lossy().into_owned(),
        None => f.display().to_string(),
    };
    let mut s = files.iter().take(SHOWN).map(name).collect::<Vec<_>>().join(", ");
    if files.len() > SHOWN {
        s.push_str(&format!(" and {} more", files.len() - SHOWN));
    }
    s
}

/// `N log lines` and, when there were any, what they were: read by
/// format, wrappers taken off, error-log lines, and unread by reason.
fn log_summary(s: &logreader::LogStats) -> String {
    let list = |m: &std::collections::BTreeMap<&str, u64>| {
        m.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
    };
    let mut parts = Vec::new();
    if !s.formats.is_empty() {
        parts.push(format!("read: {}", list(&s.formats)));
    }
    if !s.wrappers.is_empty() {
        parts.push(format!("unwrapped: {}", list(&s.wrappers)));
    }
    if s.error_log_lines > 0 {
        parts.push(format!("error_log_line {}", s.error_log_lines));
    }
    if s.journal_fields > 0 {
        parts.push(format!("journal_field {}", s.journal_fields));
    }
    if s.bad > 0 {
        parts.push(format!("unreadable {}: {}", s.bad, list(&s.unreadable)));
    }
    if parts.is_empty() {
        format!("{} log lines", s.lines)
    } else {
        format!("{} log lines ({})", s.lines, parts.join("; "))
    }
}
