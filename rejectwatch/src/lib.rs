//! rejectwatch: an eBPF observer that turns an API's reject pile into
//! intelligence. Sources ([`source`]) produce [`record::Record`]s, the pure
//! core ([`join`], [`enrich`], [`detect`]) turns them into
//! [`exchange::Exchange`]s and findings, sinks ([`sink`], [`metrics`],
//! [`blocklist`], [`api`]) consume them.

pub mod alloc;
pub mod analyze;
pub mod api;
pub mod ascii;
pub mod assemble;
pub mod blocklist;
pub mod cli;
pub mod config;
pub mod decisions;
pub mod detect;
pub mod enforce;
pub mod enrich;
pub mod exchange;
pub mod hashseed;
pub mod html;
pub mod http;
pub mod join;
pub mod listener;
pub mod metrics;
pub mod netif;
pub mod observe;
pub mod pipeline;
pub mod prefetch;
pub mod record;
pub mod report;
pub mod run;
pub mod sink;
pub mod source;
pub mod state;
pub mod stix;
pub mod tally;
pub mod time;
pub mod write_errors;

/// Every exchange allocates a few short-lived strings (head fields,
/// enrichment, signal summaries); glibc's allocator spent about a third of
/// the pipeline's time on them (perf, `cargo xtask bench-detect`).
/// Declared here so every binary linking the pipeline (the daemon, the
/// test harness's copy, the benches) measures and runs the same.
#[cfg(not(feature = "alloc-count"))]
#[global_allocator]
static ALLOCATOR: alloc::Mimalloc = alloc::Mimalloc;

#[cfg(feature = "alloc-count")]
#[global_allocator]
static ALLOCATOR: alloc::count::Counting = alloc::count::Counting;

/// The whole `rejectwatch` command: logging, arguments, exit status.
/// Shared by the `rejectwatch` binary and the test harness's copy of it.
pub fn main() -> std::process::ExitCode {
    alloc::tune();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match main_with_args(std::env::args_os()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rejectwatch: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Parses `args` and runs the command they name.
pub fn main_with_args<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::Parser as _;
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    match cli.cmd {
        cli::Command::Analyze(a) => analyze::analyze(a),
        cli::Command::Mark(m) => {
            let dir = m.state_dir.clone().unwrap_or_else(state::default_state_dir);
            let at = m.at.unwrap_or_else(time::clock::wall_now);
            let mark = state::marks::Mark { kind: state::marks::DISCLOSURE.into(), at, note: m.note };
            state::marks::record(&dir, &mark)?;
            eprintln!(
                "rejectwatch: disclosure marked at {} in {}",
                time::format_ts(at),
                state::marks::file(&dir).display()
            );
            Ok(())
        }
        // One thread: the pipeline is a single task and /metrics is served
        // between drains; worker threads only added wakeups and migrations.
        cli::Command::Run(r) => {
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run::run(r))
        }
    }
}
