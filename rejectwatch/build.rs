//! Builds the eBPF object (rejectwatch-ebpf) for the bpf target with
//! aya-build, so `cargo build` of the daemon embeds a matching kernel side.
use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

fn main() -> anyhow::Result<()> {
    // aya-build honours AYA_BUILD_SKIP=1 by building nothing, but the lib
    // embeds the object with include_bytes!, so a build that never loads it
    // (the fuzz targets, instrumented and built without bpf-linker) gets an
    // empty one: loading it fails as any unreadable object does.
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    if std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        let out = std::env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?;
        std::fs::write(std::path::Path::new(&out).join("rejectwatch"), []).context("writing the empty object")?;
        return Ok(());
    }
    let cargo_metadata::Metadata { packages, .. } =
        cargo_metadata::MetadataCommand::new().no_deps().exec().context("MetadataCommand::exec")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "rejectwatch-ebpf")
        .ok_or_else(|| anyhow!("rejectwatch-ebpf package not found"))?;
    let root = ebpf.manifest_path.parent().ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    let package = aya_build::Package { name: ebpf.name.as_str(), root_dir: root.as_str(), ..Default::default() };
    aya_build::build_ebpf([package], Toolchain::default())
}
