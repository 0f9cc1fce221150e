//! Sources: the kernel (ring buffer) and capture files produce
//! [`crate::record::Record`]s for the join; access logs produce exchanges
//! directly. Both then meet the same enrichment and sinks.

pub mod ebpf;
pub mod emulate;
pub mod logformat;
pub mod logreader;
pub mod pcap;
