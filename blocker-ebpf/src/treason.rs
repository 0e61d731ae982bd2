//! The treason probes: evidence that a TCP peer pins our sockets with a
//! closed window.
//!
//! Two ways in, same events out:
//! - kprobes (kernels with `CONFIG_KPROBES`): `tcp_retransmit_timer()`, where
//!   the kernel itself checks `!tp->snd_wnd && !sock_flag(sk, SOCK_DEAD) &&
//!   !((1 << sk->sk_state) & (TCPF_SYN_SENT | TCPF_SYN_RECV))` with packets
//!   in flight (net/ipv4/tcp_timer.c), and `tcp_send_probe0()`, the persist
//!   timer that probes a peer keeping its window closed;
//! - tracepoints (everywhere): `tcp:tcp_retransmit_skb` (the retransmission
//!   that path ends in; `snd_wnd` read through the socket pointer) and
//!   `tcp:tcp_probe` (every segment into an established socket, carrying
//!   `snd_wnd` before the segment's own window is applied).
//!
//! A closed window alone is normal (a busy reader's buffer fills for a
//! moment); what pins a socket is a window that *stays* closed while we have
//! data and nothing gets acknowledged. The persist-path probes therefore
//! report a socket only once its stall (closed window, `snd_una` frozen)
//! has lasted `STALL_NS`. The retransmit path needs no threshold: a peer that
//! retracts window it already offered is misbehaving by itself.
//!
//! Field offsets come from the running kernel's BTF and tracefs (globals set
//! by the loader); until they are set the probes do nothing. Events are rate
//! limited per socket in the kernel so one stalled connection cannot flood
//! the ring buffer.

use aya_ebpf::{
    EbpfContext, Global,
    helpers::{bpf_ktime_get_boot_ns, bpf_probe_read_kernel},
    programs::{ProbeContext, TracePointContext},
};
use blocker_common::{
    AF_INET, AF_INET6, DEFAULT_EVENT_INTERVAL_NS, DEFAULT_STALL_NS, Event, SockOffsets, SockState,
    TracepointOffsets, event_kind,
};

use crate::maps::{EVENTS, MapRef, SOCK_STATE, STATS, insert_any, lookup_mut};

#[unsafe(no_mangle)]
static SOCK_OFFSETS: Global<SockOffsets> = Global::new(SockOffsets::UNSET);
#[unsafe(no_mangle)]
static TP_OFFSETS: Global<TracepointOffsets> = Global::new(TracepointOffsets::UNSET);
#[unsafe(no_mangle)]
static EVENT_INTERVAL_NS: Global<u64> = Global::new(DEFAULT_EVENT_INTERVAL_NS);
#[unsafe(no_mangle)]
static STALL_NS: Global<u64> = Global::new(DEFAULT_STALL_NS);

/// include/net/tcp_states.h
const TCP_SYN_SENT: u8 = 2;
const TCP_SYN_RECV: u8 = 3;
/// `enum sock_flags` starts with SOCK_DEAD (include/net/sock.h).
const SOCK_DEAD_BIT: u64 = 1;

/// A read of kernel memory failed (the socket went away under us).
pub struct ReadFailed;

/// Logs a failed read. Rare by construction: probe reads of a live socket
/// do not fail unless the BTF-derived offsets are wrong, which is exactly
/// what an operator must hear about. Never called per packet.
#[inline(never)]
pub fn log_read_failure<C: EbpfContext>(ctx: &C, probe: &'static str) {
    aya_log_ebpf::warn!(
        ctx,
        "treason probe {}: reading the socket failed; are the BTF offsets of this kernel right?",
        probe
    );
}

#[inline(always)]
fn read<T>(base: u64, offset: u32) -> Result<T, ReadFailed> {
    // SAFETY: bpf_probe_read_kernel validates the address; a bad one yields
    // an error, never a fault.
    unsafe { bpf_probe_read_kernel((base + u64::from(offset)) as *const T) }.map_err(|_| ReadFailed)
}

#[inline(always)]
fn excluded_state(state: u8) -> bool {
    state == TCP_SYN_SENT || state == TCP_SYN_RECV
}

/// kprobe `tcp_retransmit_timer(struct sock *sk)`: the kernel's treason check.
pub fn try_kprobe_retransmit(ctx: &ProbeContext) -> Result<(), ReadFailed> {
    let off = SOCK_OFFSETS.load();
    if off.valid == 0 {
        return Ok(());
    }
    let sk: u64 = ctx.arg::<u64>(0).ok_or(ReadFailed)?;
    // Same order as the kernel: nothing in flight means no retransmission.
    if read::<u32>(sk, off.packets_out)? == 0 || read::<u32>(sk, off.snd_wnd)? != 0 {
        return Ok(());
    }
    if read::<u64>(sk, off.flags)? & SOCK_DEAD_BIT != 0
        || excluded_state(read::<u8>(sk, off.state)?)
    {
        return Ok(());
    }
    emit(sk, &off, event_kind::TREASON_RETRANSMIT, 0)
}

/// kprobe `tcp_send_probe0(struct sock *sk)`: the persist timer probes a peer
/// whose window is closed (or too small for the next segment).
pub fn try_kprobe_probe0(ctx: &ProbeContext) -> Result<(), ReadFailed> {
    let off = SOCK_OFFSETS.load();
    if off.valid == 0 {
        return Ok(());
    }
    let sk: u64 = ctx.arg::<u64>(0).ok_or(ReadFailed)?;
    if read::<u32>(sk, off.snd_wnd)? != 0 {
        return Ok(());
    }
    let una: u32 = read(sk, off.snd_una)?;
    match stalled_for(sk, una) {
        Some(stalled) => emit(sk, &off, event_kind::TREASON_PROBE, stalled),
        None => Ok(()),
    }
}

/// tracepoint `tcp:tcp_retransmit_skb`: a retransmission on a socket whose
/// peer advertises a zero window.
pub fn try_tp_retransmit(ctx: &TracePointContext) -> Result<(), ReadFailed> {
    let (off, tp) = (SOCK_OFFSETS.load(), TP_OFFSETS.load());
    if off.valid == 0 || tp.valid == 0 {
        return Ok(());
    }
    // SAFETY: offsets from this tracepoint's format file, sizes checked by
    // the loader.
    let state: i32 =
        unsafe { ctx.read_at(tp.retransmit_state as usize) }.map_err(|_| ReadFailed)?;
    if excluded_state(state as u8) {
        return Ok(());
    }
    // SAFETY: as above.
    let sk: u64 = unsafe { ctx.read_at(tp.retransmit_skaddr as usize) }.map_err(|_| ReadFailed)?;
    if read::<u32>(sk, off.snd_wnd)? != 0 || read::<u64>(sk, off.flags)? & SOCK_DEAD_BIT != 0 {
        return Ok(());
    }
    emit(sk, &off, event_kind::TREASON_RETRANSMIT, 0)
}

/// tracepoint `tcp:tcp_probe`: fires for every segment into an established
/// socket, so the common case (window open) must return after one read.
pub fn try_tp_probe(ctx: &TracePointContext) -> Result<(), ReadFailed> {
    let tp = TP_OFFSETS.load();
    if tp.valid == 0 {
        return Ok(());
    }
    // SAFETY: offsets from this tracepoint's format file.
    let snd_wnd: u32 = unsafe { ctx.read_at(tp.probe_snd_wnd as usize) }.map_err(|_| ReadFailed)?;
    if snd_wnd != 0 {
        return Ok(());
    }
    let off = SOCK_OFFSETS.load();
    if off.valid == 0 {
        return Ok(());
    }
    // SAFETY: as above.
    let (nxt, una, sk): (u32, u32, u64) = unsafe {
        (
            ctx.read_at(tp.probe_snd_nxt as usize)
                .map_err(|_| ReadFailed)?,
            ctx.read_at(tp.probe_snd_una as usize)
                .map_err(|_| ReadFailed)?,
            ctx.read_at(tp.probe_skaddr as usize)
                .map_err(|_| ReadFailed)?,
        )
    };
    // A closed window only matters while we have something to send: data in
    // flight, or queued behind the closed window (the persist case, where
    // snd_nxt == snd_una and the data waits in the write queue).
    if nxt == una && read::<i32>(sk, off.wmem_queued)? <= 0 {
        return Ok(());
    }
    match stalled_for(sk, una) {
        Some(stalled) => emit(sk, &off, event_kind::ZERO_WINDOW_SEEN, stalled),
        None => Ok(()),
    }
}

#[inline(always)]
fn now_ns() -> u64 {
    // SAFETY: no preconditions.
    unsafe { bpf_ktime_get_boot_ns() }
}

/// Tracks how long `sk`'s window has been closed with `snd_una` frozen at
/// `una`; `Some(duration)` once that reaches the stall threshold. Any
/// acknowledged progress restarts the clock.
#[inline(always)]
fn stalled_for(sk: u64, una: u32) -> Option<u64> {
    let now = now_ns();
    let map = MapRef::of(&SOCK_STATE);
    let Some(state) = lookup_mut::<u64, SockState>(map, &sk) else {
        let fresh = SockState {
            last_event_ns: 0,
            stall_since_ns: now,
            stall_una: una,
            flags: 0,
        };
        insert_any(map, &sk, &fresh);
        return None;
    };
    // SAFETY: live map value; a racing update from another CPU can only
    // restart the clock, which errs on the side of not reporting.
    let state = unsafe { &mut *state };
    if state.stall_since_ns == 0 || state.stall_una != una {
        state.stall_since_ns = now;
        state.stall_una = una;
        return None;
    }
    let stalled = now.wrapping_sub(state.stall_since_ns);
    (stalled >= STALL_NS.load()).then_some(stalled)
}

/// Sends one event for socket `sk`, at most one per socket per interval.
#[inline(always)]
fn emit(sk: u64, off: &SockOffsets, kind: u32, stalled_ns: u64) -> Result<(), ReadFailed> {
    let now = now_ns();
    let map = MapRef::of(&SOCK_STATE);
    if let Some(state) = lookup_mut::<u64, SockState>(map, &sk) {
        // SAFETY: live map value.
        let state = unsafe { &mut *state };
        if state.last_event_ns != 0
            && now.wrapping_sub(state.last_event_ns) < EVENT_INTERVAL_NS.load()
        {
            return Ok(());
        }
        state.last_event_ns = now;
    } else {
        let fresh = SockState {
            last_event_ns: now,
            ..SockState::default()
        };
        insert_any(map, &sk, &fresh);
    }

    let family: u16 = read(sk, off.family)?;
    let mut event = Event {
        ts_ns: now,
        kind,
        family,
        peer_port: u16::from_be(read::<u16>(sk, off.dport)?),
        local_port: read::<u16>(sk, off.num)?,
        state: u16::from(read::<u8>(sk, off.state)?),
        snd_wnd: read(sk, off.snd_wnd)?,
        count: u64::from(read::<u32>(sk, off.snd_nxt)?.wrapping_sub(read::<u32>(sk, off.snd_una)?)),
        sock_id: sk,
        stalled_ns,
        ..Event::default()
    };
    if family == AF_INET {
        let peer: [u8; 4] = read(sk, off.daddr)?;
        let local: [u8; 4] = read(sk, off.rcv_saddr)?;
        event.peer_addr[..4].copy_from_slice(&peer);
        event.local_addr[..4].copy_from_slice(&local);
    } else if family == AF_INET6 {
        event.peer_addr = read(sk, off.v6_daddr)?;
        event.local_addr = read(sk, off.v6_rcv_saddr)?;
    } else {
        return Ok(());
    }

    let stats = STATS.get_ptr_mut(0);
    let sent = EVENTS.output(event, 0).is_ok();
    if let Some(stats) = stats {
        // SAFETY: this CPU's slot; probes run with preemption disabled
        // around the program (bpf_prog_run under migrate_disable + RCU).
        // A rare lost increment when an XDP run on the same CPU interrupts
        // us is acceptable for a statistics counter.
        unsafe {
            if sent {
                (*stats).events += 1;
            } else {
                (*stats).events_lost += 1;
            }
        }
    }
    Ok(())
}
