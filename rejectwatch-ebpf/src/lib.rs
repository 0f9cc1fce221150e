//! Library target of the eBPF crate; the programs live in `main.rs`.
#![no_std]
