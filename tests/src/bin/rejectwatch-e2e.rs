//! `rejectwatch` itself, built inside the tests package so integration tests
//! can locate it through CARGO_BIN_EXE_rejectwatch-e2e.
fn main() -> std::process::ExitCode {
    rejectwatch::main()
}
