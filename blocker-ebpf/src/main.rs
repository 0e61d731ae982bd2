//! blocker's kernel programs.
//!
//! Entry points stay thin: each calls a `try_*` body in its own module. The
//! maps live in [`maps`]; their names are the constants in
//! `blocker_common::maps`.
#![no_std]
#![no_main]
// `core::intrinsics::atomic_xadd` is the only way to emit BPF_ATOMIC_ADD from
// Rust: the bpfel target has no compare-and-swap, so `AtomicU64::fetch_add`
// does not exist there. See `maps::atomic_add`.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod maps;
mod parse;
mod xdp;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

/// Drops frames from blocklisted sources, passes allowlisted ones first, and
/// counts zero-window SYNs per source.
#[xdp]
pub fn blocker_xdp(ctx: XdpContext) -> u32 {
    xdp::try_blocker_xdp(&ctx)
}

/// Passes every frame. Loaded only by `cargo xtask bench` as the baseline the
/// filter's per-packet cost is measured against.
#[xdp]
pub fn blocker_xdp_baseline(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

// The probes read kernel memory with GPL-only helpers; MIT code may be
// relicensed under the GPL, so the dual licence is accurate.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: every path that could panic is
    // bounds-checked before the verifier ever sees it.
    loop {}
}
