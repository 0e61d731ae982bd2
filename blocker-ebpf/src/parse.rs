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
