//! Record sources: the kernel (ring buffer) and capture files. Each turns
//! what it reads into [`crate::record::Record`]s for the same core.

pub mod clock;
pub mod ebpf;
pub mod emulate;
pub mod pcap;
