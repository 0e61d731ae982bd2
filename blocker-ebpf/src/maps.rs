//! The maps, and the few helpers that touch them.
//!
//! Capacities here are defaults; the loader overrides them from the config
//! (`EbpfLoader::map_max_entries`) before the maps are created.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_F_NO_COMMON_LRU, BPF_NOEXIST},
    btf_maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
    helpers::{bpf_map_lookup_elem, bpf_map_update_elem},
    macros::btf_map,
};
use blocker_common::{
    Event, Ipv4Key, Ipv6Key, LpmV4, Meta, RuleCounters, RuleEntry, SockState, XdpStats,
    ZeroWindowEntry, config,
};

/// LRU maps keep one LRU list per CPU (`BPF_F_NO_COMMON_LRU`): an insert that
/// must evict takes the local CPU's list lock only, never a lock every CPU
/// contends for (`bpf_percpu_lru_pop_free()`, kernel/bpf/bpf_lru_list.c), so
/// a spoofed flood of new sources on all receive queues does not serialise
/// on one lock.
const PER_CPU_LRU: usize = BPF_F_NO_COMMON_LRU as usize;

#[btf_map]
pub static BLOCK_V4: HashMap<Ipv4Key, RuleEntry, 262144> = HashMap::new();
#[btf_map]
pub static BLOCK_V6: HashMap<Ipv6Key, RuleEntry, 65536> = HashMap::new();
#[btf_map]
pub static BLOCK_NET_V4: LpmTrie<LpmV4, RuleEntry, 16384> = LpmTrie::new();
#[btf_map]
pub static BLOCK_NET_V6: LpmTrie<Ipv6Key, RuleEntry, 16384> = LpmTrie::new();
#[btf_map]
pub static ALLOW_V4: LpmTrie<LpmV4, RuleEntry, 4096> = LpmTrie::new();
#[btf_map]
pub static ALLOW_V6: LpmTrie<Ipv6Key, RuleEntry, 4096> = LpmTrie::new();
#[btf_map]
pub static STATS: PerCpuArray<XdpStats, 1> = PerCpuArray::new();
#[btf_map]
pub static ZW_SYN_V4: LruHashMap<Ipv4Key, ZeroWindowEntry, 65536, PER_CPU_LRU> = LruHashMap::new();
#[btf_map]
pub static ZW_SYN_V6: LruHashMap<Ipv6Key, ZeroWindowEntry, 65536, PER_CPU_LRU> = LruHashMap::new();
/// Rule slot → this CPU's counts. An array: the lookup is inlined by the
/// verifier (no helper call, no hashing), which is what keeps counting off
/// the per-packet bill.
#[btf_map]
pub static RULE_COUNTERS: PerCpuArray<RuleCounters, 65536> = PerCpuArray::new();
#[btf_map]
pub static CONFIG: Array<u64, { config::LEN as usize }> = Array::new();
/// Read only by userspace (layout version of the pins); defined here so it is
/// created and pinned with the others.
#[btf_map]
pub static META: Array<Meta, 1> = Array::new();
/// This CPU's last reading of CLOCK_BOOTTIME and the jiffy it was taken in,
/// for [`crate::xdp`]'s coarse clock (not pinned: a fresh load starts empty).
#[btf_map]
pub static CLOCK: PerCpuArray<ClockCache, 1> = PerCpuArray::new();
/// The treason probes' events (confirmed evidence).
#[btf_map]
pub static EVENTS: RingBuf<Event, { 256 * 1024 }> = RingBuf::new();
/// XDP's zero-window-SYN threshold events (forgeable evidence): a ring of
/// their own, so a spoofed flood of them can fill only this one.
#[btf_map]
pub static XDP_EVENTS: RingBuf<Event, { 256 * 1024 }> = RingBuf::new();
/// Socket pointer → probe state (rate limit, stall tracking). LRU: sockets
/// that go away are forgotten on their own.
#[btf_map]
pub static SOCK_STATE: LruHashMap<u64, SockState, 16384> = LruHashMap::new();

/// The value of config slot `slot` (see `blocker_common::config`), 0 if unset.
#[inline(always)]
pub fn config(slot: u32) -> u64 {
    CONFIG.get(slot).copied().unwrap_or(0)
}

/// One CPU's cached clock reading (see [`CLOCK`]).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ClockCache {
    /// `bpf_jiffies64()` when `boot_ns` was read.
    pub jiffies: u64,
    /// `bpf_ktime_get_boot_ns()` read in that jiffy; 0 before the first read.
    pub boot_ns: u64,
}

/// `bpf_map_lookup_elem` returning a raw pointer to the value, for maps whose
/// values the program updates in place (rule counters, zero-window counts).
///
/// aya's `get` hands out `&V`; writing through a pointer derived from a shared
/// reference would be undefined behaviour in Rust, so lookups that write go
/// through here instead.
#[inline(always)]
pub fn lookup_mut<K, V>(map: MapRef, key: &K) -> Option<*mut V> {
    // SAFETY: `map` is a map definition the loader relocates to a map fd, and
    // `key` points to a key of that map's key type.
    let value = unsafe { bpf_map_lookup_elem(map.0, core::ptr::from_ref(key).cast()) };
    (!value.is_null()).then_some(value.cast::<V>())
}

/// Inserts `value` under `key` unless the key exists (`BPF_NOEXIST`).
/// Returns whether it was inserted.
#[inline(always)]
pub fn insert_new<K, V>(map: MapRef, key: &K, value: &V) -> bool {
    // SAFETY: as for `lookup_mut`; `value` has the map's value type.
    let ret = unsafe {
        bpf_map_update_elem(
            map.0,
            core::ptr::from_ref(key).cast(),
            core::ptr::from_ref(value).cast(),
            u64::from(BPF_NOEXIST),
        )
    };
    ret == 0
}

/// Inserts or replaces `value` under `key` (`BPF_ANY`).
#[inline(always)]
pub fn insert_any<K, V>(map: MapRef, key: &K, value: &V) {
    // SAFETY: as for `lookup_mut`; `value` has the map's value type. A
    // failure (map full of non-LRU entries) only loses a rate-limit stamp.
    let _ = unsafe {
        bpf_map_update_elem(
            map.0,
            core::ptr::from_ref(key).cast(),
            core::ptr::from_ref(value).cast(),
            0,
        )
    };
}

/// A type-erased reference to one of the map statics, so one code path can
/// serve the IPv4 and IPv6 variants of a table.
#[derive(Clone, Copy)]
pub struct MapRef(*mut c_void);

impl MapRef {
    #[inline(always)]
    pub fn of<M>(map: &'static M) -> Self {
        Self(core::ptr::from_ref(map).cast_mut().cast())
    }
}

/// Atomically adds `delta` to the `u64` at `dst` (BPF_ATOMIC | BPF_ADD).
///
/// Shared map values are updated from every CPU at once; a plain `+=` would
/// lose counts. The result is not used, so LLVM emits the plain atomic add
/// that every kernel with BPF_ATOMIC understands, not the fetch variant.
///
/// # Safety
///
/// `dst` must point to an 8-byte aligned `u64` in a map value.
#[inline(always)]
pub unsafe fn atomic_add(dst: *mut u64, delta: u64) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            dst, delta,
        );
    }
}
