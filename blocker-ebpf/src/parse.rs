//! Bounds-checked packet access.

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;

/// The frame ended before a header it announced, or a header is invalid.
pub struct Malformed;

/// A pointer to a `T` at `offset` bytes into the frame, or [`Malformed`] if
/// the frame is too short. The single place packet bounds are checked.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, Malformed> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return Err(Malformed);
    }
    Ok((start + offset) as *const T)
}

/// The 4 bytes at `p` in the frame as one 4-byte load, in memory order.
///
/// network-types declares addresses as byte arrays (alignment 1), and the
/// bpfel target may not assume misaligned access is allowed, so LLVM reads
/// them a byte at a time: an IPv6 source became 16 byte loads, shifts and a
/// copy through the stack (or a call to `memmove`), 12-14 ns per frame here.
/// One `ldxw` per word instead: the verifier allows misaligned packet reads
/// where the architecture has efficient unaligned access (x86-64, arm64:
/// `check_pkt_ptr_alignment()` is strict only without
/// CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS or with BPF_F_STRICT_ALIGNMENT).
/// (LLVM's `+allows-misaligned-mem-access` would do this everywhere, but also
/// on the probes' stack, where the verifier refuses misaligned access.)
///
/// # Safety
///
/// `p..p + 4` must lie inside the frame, checked against `data_end` (as
/// [`ptr_at`] does) on the path to this load: the verifier refuses it
/// otherwise.
#[inline(always)]
pub unsafe fn load_u32(p: *const u8) -> u32 {
    let v: u64;
    // SAFETY: guaranteed by the caller; a plain load, no side effects.
    unsafe {
        core::arch::asm!(
            "{v} = *(u32 *)({p} + 0)",
            v = out(reg) v,
            p = in(reg) p,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    // A 4-byte load zero-extends into the 64-bit register.
    v as u32
}
