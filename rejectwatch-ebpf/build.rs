//! Rebuild the eBPF object when the bpf-linker binary changes: the crate has
//! an undeclared dependency on it (cargo has no artifact dependency for it).
use which::which;

fn main() {
    let bpf_linker = which("bpf-linker").expect("bpf-linker not on PATH: run scripts/deps.sh");
    println!("cargo:rerun-if-changed={}", bpf_linker.display());
}
