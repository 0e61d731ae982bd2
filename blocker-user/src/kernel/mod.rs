//! Everything that talks to the kernel: the eBPF object, its pins in bpffs,
//! the XDP attachment, the treason probes and the offsets they need, typed
//! map access, and the raw system calls.

#[cfg(test)]
pub mod fake;
pub mod maps;
pub mod object;
pub mod offsets;
pub mod pins;
pub mod probes;
pub mod sys;
pub mod tracefs;
pub mod xdp;
