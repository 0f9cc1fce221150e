//! The `rejectwatch` command.
use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match rejectwatch::main_with_args(std::env::args_os()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rejectwatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}
