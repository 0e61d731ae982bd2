//! blocker: a kernel-side IP blocker.
//!
//! The XDP program (crate `blocker-ebpf`) drops packets from addresses in BPF
//! maps before the kernel allocates anything for them. This library owns the
//! userspace logic; the `blocker` binary parses arguments and calls it.

pub mod addr;
pub mod clock;
pub mod config;
pub mod council;
pub mod daemon;
pub mod debate;
pub mod evidence;
pub mod fleet;
pub mod guard;
pub mod incident;
pub mod kernel;
pub mod rule;
pub mod state;
pub mod text;
pub mod ttl;
pub mod verdict;
