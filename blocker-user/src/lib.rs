//! blocker: a kernel-side IP blocker.
//!
//! The XDP program (crate `blocker-ebpf`) drops packets from addresses in BPF
//! maps before the kernel allocates anything for them. This library owns the
//! userspace logic; the `blocker` binary parses arguments and calls it.
//!
//! Modules follow the data flow: [`loader`] puts the programs in the kernel,
//! [`tables`] reads and writes the maps, [`store`] journals every rule,
//! [`enforcer`] applies rule changes, and [`daemon`] runs it all.

pub mod addr;
pub mod alert;
pub mod btf;
pub mod clock;
pub mod config;
pub mod council;
pub mod daemon;
pub mod debate;
pub mod enforcer;
pub mod fleet;
pub mod guard;
pub mod incident;
pub mod loader;
pub mod object;
pub mod probes;
pub mod rulefile;
pub mod sources;
pub mod store;
pub mod sys;
pub mod tables;
pub mod tracefs;
pub mod ttl;
