//! The eBPF object, embedded at build time (see `build.rs`).

use crate::kernel::pins::LoadError;

/// The eBPF object's bytes, 4-byte aligned as `EbpfLoader::load` requires.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/blocker.bpf.o"));

/// The embedded object, or an error saying how to build one.
pub fn bytes() -> Result<&'static [u8], LoadError> {
    if OBJECT.is_empty() {
        return Err(LoadError::NoObject);
    }
    Ok(OBJECT)
}

/// Whether this build carries the eBPF object.
pub const fn embedded() -> bool {
    !cfg!(blocker_no_ebpf)
}
