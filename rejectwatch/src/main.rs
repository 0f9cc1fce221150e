//! The `rejectwatch` command.
fn main() -> std::process::ExitCode {
    rejectwatch::main()
}
