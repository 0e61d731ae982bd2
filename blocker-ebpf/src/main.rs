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
// `asm!` on bpf: the XDP program loads packet words with it (`parse::load_u32`).
#![feature(asm_experimental_arch)]
#![allow(internal_features)]

mod maps;
mod parse;
mod treason;
mod xdp;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{kprobe, tracepoint, xdp},
    programs::{ProbeContext, TracePointContext, XdpContext},
};

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

/// kprobe on `tcp_retransmit_timer()`.
#[kprobe]
pub fn treason_rtx_timer(ctx: ProbeContext) -> u32 {
    if treason::try_kprobe_retransmit(&ctx).is_err() {
        treason::log_read_failure(&ctx, "tcp_retransmit_timer");
    }
    0
}

/// kprobe on `tcp_send_probe0()`.
#[kprobe]
pub fn treason_probe0(ctx: ProbeContext) -> u32 {
    if treason::try_kprobe_probe0(&ctx).is_err() {
        treason::log_read_failure(&ctx, "tcp_send_probe0");
    }
    0
}

/// Tracepoint `tcp:tcp_retransmit_skb` (fallback without kprobes).
#[tracepoint]
pub fn treason_tp_rtx(ctx: TracePointContext) -> u32 {
    if treason::try_tp_retransmit(&ctx).is_err() {
        treason::log_read_failure(&ctx, "tcp:tcp_retransmit_skb");
    }
    0
}

/// Tracepoint `tcp:tcp_probe` (fallback without kprobes).
#[tracepoint]
pub fn treason_tp_probe(ctx: TracePointContext) -> u32 {
    if treason::try_tp_probe(&ctx).is_err() {
        treason::log_read_failure(&ctx, "tcp:tcp_probe");
    }
    0
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
