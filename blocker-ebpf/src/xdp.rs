//! The XDP filter.
//!
//! Order of decisions for every frame:
//! 1. Ethernet with up to two VLAN tags (802.1Q / 802.1ad), then IPv4 or IPv6.
//!    Anything else passes: non-IP frames count as `non_ip`, frames cut short
//!    or with invalid headers as `malformed`.
//! 2. The source address: a live exact or CIDR block rule → DROP, unless the
//!    allowlist covers the source → PASS. The blocklists come first because
//!    on the common path (a source no rule names) the allowlist cannot change
//!    the outcome, so it is not looked up at all; it is looked up exactly
//!    when its answer matters (a block rule matched, or a zero-window SYN),
//!    so it still always wins. An expired rule is ignored (and counted), also
//!    when it is the longest prefix in front of a live one (see
//!    [`find_lpm`]).
//! 3. TCP SYN without ACK and with window 0 (allowlisted sources exempt):
//!    dropped while the global zero-window policy is on, without touching the
//!    per-source table (a spoofed flood would otherwise turn every frame into
//!    an LRU insert and eviction); otherwise counted per source (LRU), with
//!    one event when a source crosses the threshold. The per-source
//!    timestamps come from a per-CPU coarse clock ([`coarse_boot_ns`]): the
//!    exact one costs more than the rest of the path together.
//!
//! Matched rules are counted in [`RULE_COUNTERS`], per CPU: nothing on the
//! drop or allow paths writes memory that another CPU reads.
//!
//! Nothing here logs or loops over map entries; the only loops are the
//! bounded walk over IPv6 extension headers and, for a source whose longest
//! matching prefix has expired, a bounded search for the live one behind it.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_jiffies64, bpf_ktime_get_boot_ns},
    programs::XdpContext,
};
use blocker_common::{
    AF_INET, AF_INET6, Event, Ipv4Key, Ipv6Key, LPM_V4_LOOKUP_BITS, LPM_V6_LOOKUP_BITS, LpmV4,
    RuleCounters, RuleEntry, XdpStats, ZeroWindowEntry, config, event_kind,
};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
    vlan::VlanHdr,
};

use crate::{
    maps::{
        ALLOW_V4, ALLOW_V6, BLOCK_NET_V4, BLOCK_NET_V6, BLOCK_V4, BLOCK_V6, CLOCK, ClockCache,
        MapRef, RULE_COUNTERS, STATS, XDP_EVENTS, ZW_SYN_V4, ZW_SYN_V6, atomic_add, config,
        insert_new, lookup_mut,
    },
    parse::{Malformed, load_u32, ptr_at},
};

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_DSTOPTS: u8 = 60;
/// More extension headers than this and the frame counts as malformed; real
/// traffic carries one or two.
const MAX_IPV6_EXT_HEADERS: usize = 8;

const TCP_FLAG_SYN: u8 = 0x02;
const TCP_FLAG_ACK: u8 = 0x10;
/// Offset of the flags byte in the TCP header (RFC 9293, section 3.1).
const TCP_FLAGS_OFFSET: usize = 13;

pub fn try_blocker_xdp(ctx: &XdpContext) -> u32 {
    let Some(stats) = STATS.get_ptr_mut(0) else {
        // Cannot happen for index 0 of a one-slot array; pass rather than
        // abort so a broken map never takes the link down.
        return xdp_action::XDP_PASS;
    };
    // SAFETY: per-CPU slot of this CPU; XDP runs with preemption disabled, so
    // nothing else writes it while we hold it.
    let stats = unsafe { &mut *stats };
    let frame_len = (ctx.data_end() - ctx.data()) as u64;
    let action = match try_classify(ctx, stats, frame_len) {
        Ok(action) => action,
        Err(Malformed) => {
            stats.malformed += 1;
            stats.malformed_bytes += frame_len;
            xdp_action::XDP_PASS
        }
    };
    if action == xdp_action::XDP_DROP {
        stats.dropped += 1;
        stats.dropped_bytes += frame_len;
    } else {
        stats.passed += 1;
        stats.passed_bytes += frame_len;
    }
    action
}

#[inline(always)]
fn is_vlan(ether_type: u16) -> bool {
    ether_type == EtherType::Ieee8021q as u16 || ether_type == EtherType::Ieee8021ad as u16
}

#[inline(always)]
fn try_classify(ctx: &XdpContext, stats: &mut XdpStats, frame_len: u64) -> Result<u32, Malformed> {
    let eth: *const EthHdr = ptr_at(ctx, 0)?;
    // SAFETY: `ptr_at` checked the header lies inside the frame.
    let mut ether_type = unsafe { (*eth).ether_type };
    let mut offset = EthHdr::LEN;
    // Up to two tags: 802.1Q, or 802.1ad outer + 802.1Q inner (QinQ).
    if is_vlan(ether_type) {
        let vlan: *const VlanHdr = ptr_at(ctx, offset)?;
        // SAFETY: bounds checked by `ptr_at`.
        ether_type = unsafe { (*vlan).ether_type };
        offset += VlanHdr::LEN;
        if is_vlan(ether_type) {
            let vlan: *const VlanHdr = ptr_at(ctx, offset)?;
            // SAFETY: bounds checked by `ptr_at`.
            ether_type = unsafe { (*vlan).ether_type };
            offset += VlanHdr::LEN;
            if is_vlan(ether_type) {
                // A third tag: more than we parse.
                return Err(Malformed);
            }
        }
    }
    if ether_type == EtherType::Ipv4 as u16 {
        try_ipv4(ctx, offset, stats, frame_len)
    } else if ether_type == EtherType::Ipv6 as u16 {
        try_ipv6(ctx, offset, stats, frame_len)
    } else {
        stats.non_ip += 1;
        Ok(xdp_action::XDP_PASS)
    }
}

#[inline(always)]
fn try_ipv4(
    ctx: &XdpContext,
    offset: usize,
    stats: &mut XdpStats,
    frame_len: u64,
) -> Result<u32, Malformed> {
    let ip: *const Ipv4Hdr = ptr_at(ctx, offset)?;
    // SAFETY: bounds checked by `ptr_at`.
    let (vihl, proto, frags) = unsafe { ((*ip).vihl, (*ip).proto, (*ip).frags) };
    if vihl >> 4 != 4 {
        return Err(Malformed);
    }
    let header_len = usize::from(vihl & 0x0f) * 4;
    if header_len < Ipv4Hdr::LEN {
        return Err(Malformed);
    }

    // The one copy of the source address: every lookup keys on it.
    // SAFETY: bounds checked by `ptr_at`.
    let src = unsafe { load_u32((&raw const (*ip).src_addr).cast()) };
    let mut lpm_key = Key::new(LPM_V4_LOOKUP_BITS, LpmV4::new(src.to_ne_bytes()));
    let tables = Tables {
        family: AF_INET,
        zero_window: MapRef::of(&ZW_SYN_V4),
        allow: MapRef::of(&ALLOW_V4),
        allow_slot: config::ALLOW_V4_ACTIVE,
        exact: MapRef::of(&BLOCK_V4),
        exact_slot: config::BLOCK_V4_ACTIVE,
        net: MapRef::of(&BLOCK_NET_V4),
        net_slot: config::BLOCK_NET_V4_ACTIVE,
    };
    if let Some(action) = tables.check(&mut lpm_key, stats, frame_len) {
        return Ok(action);
    }

    // Only the first fragment carries the TCP header (RFC 791 fragment offset).
    if proto != IPPROTO_TCP || u16::from_be_bytes(frags) & 0x1fff != 0 {
        return Ok(xdp_action::XDP_PASS);
    }
    let mut tcp = Tcp {
        tables: &tables,
        lpm_key: &mut lpm_key,
        frame_len,
    };
    tcp.check(ctx, offset + header_len, stats)
}

#[inline(always)]
fn try_ipv6(
    ctx: &XdpContext,
    offset: usize,
    stats: &mut XdpStats,
    frame_len: u64,
) -> Result<u32, Malformed> {
    let ip: *const Ipv6Hdr = ptr_at(ctx, offset)?;
    // SAFETY: bounds checked by `ptr_at`.
    let (version, mut next) = unsafe { ((*ip).vcf[0] >> 4, (*ip).next_hdr) };
    if version != 6 {
        return Err(Malformed);
    }

    // The one copy of the source address: every lookup keys on it.
    // SAFETY: bounds checked by `ptr_at` (the whole fixed header).
    let src: Ipv6Key = unsafe {
        let w = (&raw const (*ip).src_addr).cast::<u8>();
        core::mem::transmute::<[u32; 4], Ipv6Key>([
            load_u32(w),
            load_u32(w.add(4)),
            load_u32(w.add(8)),
            load_u32(w.add(12)),
        ])
    };
    let mut lpm_key = Key::new(LPM_V6_LOOKUP_BITS, src);
    let tables = Tables {
        family: AF_INET6,
        zero_window: MapRef::of(&ZW_SYN_V6),
        allow: MapRef::of(&ALLOW_V6),
        allow_slot: config::ALLOW_V6_ACTIVE,
        exact: MapRef::of(&BLOCK_V6),
        exact_slot: config::BLOCK_V6_ACTIVE,
        net: MapRef::of(&BLOCK_NET_V6),
        net_slot: config::BLOCK_NET_V6_ACTIVE,
    };
    if let Some(action) = tables.check(&mut lpm_key, stats, frame_len) {
        return Ok(action);
    }

    // Walk the extension headers that may precede TCP (RFC 8200, section 4).
    let mut offset = offset + Ipv6Hdr::LEN;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            IPPROTO_TCP => {
                let mut tcp = Tcp {
                    tables: &tables,
                    lpm_key: &mut lpm_key,
                    frame_len,
                };
                return tcp.check(ctx, offset, stats);
            }
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                // Next Header, Hdr Ext Len in 8-octet units not counting the first.
                let ext: *const [u8; 2] = ptr_at(ctx, offset)?;
                // SAFETY: bounds checked by `ptr_at`.
                let ext = unsafe { *ext };
                next = ext[0];
                offset += (usize::from(ext[1]) + 1) * 8;
            }
            IPPROTO_FRAGMENT => {
                let frag: *const [u8; 8] = ptr_at(ctx, offset)?;
                // SAFETY: bounds checked by `ptr_at`.
                let frag = unsafe { *frag };
                // Only the first fragment (offset 0) carries the TCP header.
                if u16::from_be_bytes([frag[2], frag[3]]) & 0xfff8 != 0 {
                    return Ok(xdp_action::XDP_PASS);
                }
                next = frag[0];
                offset += 8;
            }
            // UDP, ICMPv6, ESP, AH, No Next Header, ...: nothing more to do.
            _ => return Ok(xdp_action::XDP_PASS),
        }
    }
    Err(Malformed)
}

/// An LPM trie lookup key: the layout of aya's `lpm_trie::Key` (prefix
/// length, then the data, no padding) but 4-byte aligned instead of packed,
/// so the address words are written with 4-byte stores, not byte by byte.
#[repr(C, align(4))]
struct Key<L> {
    prefix_len: u32,
    data: L,
}

impl<L> Key<L> {
    #[inline(always)]
    const fn new(prefix_len: u32, data: L) -> Self {
        Self { prefix_len, data }
    }
}

/// The data of an LPM lookup key, which holds the source address: the
/// exact tables and the zero-window table key on that same stack copy.
trait Source: Sized {
    /// The exact tables' key (the address alone).
    type Addr;
    fn addr(key: &Key<Self>) -> &Self::Addr;
}

impl Source for LpmV4 {
    type Addr = Ipv4Key;
    #[inline(always)]
    fn addr(key: &Key<Self>) -> &Ipv4Key {
        &key.data.addr
    }
}

impl Source for Ipv6Key {
    type Addr = Ipv6Key;
    #[inline(always)]
    fn addr(key: &Key<Self>) -> &Ipv6Key {
        &key.data
    }
}

/// A TCP segment that passed the blocklists, with what the zero-window
/// check needs to consult the allowlist.
struct Tcp<'a, L> {
    tables: &'a Tables,
    lpm_key: &'a mut Key<L>,
    frame_len: u64,
}

impl<L: Source> Tcp<'_, L> {
    #[inline(always)]
    fn check(
        &mut self,
        ctx: &XdpContext,
        offset: usize,
        stats: &mut XdpStats,
    ) -> Result<u32, Malformed> {
        let tcp: *const TcpHdr = ptr_at(ctx, offset)?;
        let flags: *const u8 = ptr_at(ctx, offset + TCP_FLAGS_OFFSET)?;
        // SAFETY: bounds checked by `ptr_at` (the whole fixed header, then the byte).
        let (flags, window) = unsafe { (*flags, (*tcp).window) };
        if flags & (TCP_FLAG_SYN | TCP_FLAG_ACK) != TCP_FLAG_SYN || window != [0, 0] {
            return Ok(xdp_action::XDP_PASS);
        }
        // The allowlist exempts a source from the zero-window policy and its
        // accounting, as it exempts it from block rules.
        if let Some(rule) = self.tables.allowed(self.lpm_key, stats) {
            return Ok(pass_allowlisted(rule, self.frame_len, stats));
        }
        stats.zw_syn += 1;
        // Policy first: while it drops every zero-window SYN, counting them per
        // source only feeds the LRU (one insert and one eviction per spoofed
        // source) and cannot change the verdict. The exact clock is read only
        // while a policy is set: it is the costliest helper on this path.
        let drop_until = config(config::ZW_DROP_UNTIL_NS);
        if drop_until != 0 && boot_ns() < drop_until {
            stats.zw_syn_dropped += 1;
            return Ok(xdp_action::XDP_DROP);
        }
        let now = coarse_boot_ns();
        count_zero_window(
            self.tables.zero_window,
            self.tables.family,
            L::addr(self.lpm_key),
            now,
            stats,
        );
        Ok(xdp_action::XDP_PASS)
    }
}

/// Counts one zero-window SYN from `addr` in `map` (an LRU hash), and sends
/// one event the first time the source reaches the threshold.
#[inline(always)]
fn count_zero_window<K>(map: MapRef, family: u16, addr: &K, now: u64, stats: &mut XdpStats) {
    let count = match lookup_mut::<K, ZeroWindowEntry>(map, addr) {
        Some(entry) => {
            // SAFETY: `entry` points to a live, 8-byte aligned map value.
            unsafe {
                atomic_add(&raw mut (*entry).count, 1);
                // Another CPU's coarse clock may lag this one's by up to a
                // tick: never move last_seen back (before first_seen).
                if now > (*entry).last_seen_ns {
                    (*entry).last_seen_ns = now;
                }
                if (*entry).reported != 0 {
                    return;
                }
                (*entry).count
            }
        }
        None => {
            let entry = ZeroWindowEntry {
                count: 1,
                first_seen_ns: now,
                last_seen_ns: now,
                reported: 0,
                flags: 0,
            };
            // Another CPU may have inserted the same source a moment ago;
            // BPF_NOEXIST keeps its entry, and this one SYN goes uncounted.
            insert_new(map, addr, &entry);
            1
        }
    };
    let threshold = config(config::ZW_THRESHOLD);
    if threshold == 0 || count < threshold {
        return;
    }
    if let Some(entry) = lookup_mut::<K, ZeroWindowEntry>(map, addr) {
        // SAFETY: live map value. Two CPUs may both see `reported == 0` and
        // each send an event; userspace deduplicates, and that race is rarer
        // than the per-packet cost of a compare-and-swap loop.
        unsafe { (*entry).reported = 1 };
    }
    let mut event = Event {
        ts_ns: boot_ns(),
        kind: event_kind::ZERO_WINDOW_SYN,
        family,
        count,
        ..Event::default()
    };
    // SAFETY: `K` is an address of 4 or 16 bytes, and `peer_addr` holds 16.
    unsafe {
        core::ptr::copy_nonoverlapping(
            core::ptr::from_ref(addr).cast::<u8>(),
            event.peer_addr.as_mut_ptr(),
            core::mem::size_of::<K>().min(event.peer_addr.len()),
        );
    }
    if XDP_EVENTS.output(event, 0).is_ok() {
        stats.events += 1;
    } else {
        stats.events_lost += 1;
    }
}

#[inline(always)]
fn boot_ns() -> u64 {
    // SAFETY: no preconditions; CLOCK_BOOTTIME so rule expiry survives suspend
    // and matches what userspace writes (kernel 5.8, commit 71d19214776e).
    unsafe { bpf_ktime_get_boot_ns() }
}

/// CLOCK_BOOTTIME as this CPU last read it in the current jiffy: at most one
/// scheduler tick (1/HZ, 4 ms at HZ=250) behind [`boot_ns`], for timestamps
/// that only need that precision (zero-window first/last seen).
///
/// `bpf_ktime_get_boot_ns` costs about 40 ns here (a timekeeper read with
/// rdtsc, in a VM), more than the rest of the zero-window path together,
/// while the verifier inlines `bpf_jiffies64` to one load of `jiffies_64`
/// (`do_misc_fixups()`, kernel/bpf/verifier.c, commit 5576b991e9c1), and
/// the per-CPU array lookup too: so the exact clock is read once per tick
/// and CPU instead of once per frame.
#[inline(always)]
fn coarse_boot_ns() -> u64 {
    // SAFETY: no preconditions (kernel 5.5, commit 5576b991e9c1).
    let jiffies = unsafe { bpf_jiffies64() };
    let Some(cache) = CLOCK.get_ptr_mut(0) else {
        return boot_ns();
    };
    // SAFETY: this CPU's slot of a per-CPU array; XDP runs with preemption
    // disabled, so nothing else writes it while we use it.
    unsafe {
        if (*cache).jiffies != jiffies || (*cache).boot_ns == 0 {
            *cache = ClockCache {
                jiffies,
                boot_ns: boot_ns(),
            };
        }
        (*cache).boot_ns
    }
}

/// The allowlist and blocklists of one address family.
struct Tables {
    /// `AF_INET` or `AF_INET6`, for events.
    family: u16,
    /// The per-source zero-window counts (LRU).
    zero_window: MapRef,
    allow: MapRef,
    allow_slot: u32,
    exact: MapRef,
    exact_slot: u32,
    net: MapRef,
    net_slot: u32,
}

/// What a rule lookup found.
enum Found {
    Live(*const RuleEntry),
    Expired,
    Nothing,
}

impl Tables {
    /// `Some(action)` when a rule decides the frame, `None` to go on.
    /// Tables userspace marked empty are not looked up at all.
    #[inline(always)]
    fn check<L: Source>(
        &self,
        lpm_key: &mut Key<L>,
        stats: &mut XdpStats,
        frame_len: u64,
    ) -> Option<u32> {
        let blocked = self.blocking(lpm_key, stats)?;
        if let Some(allow) = self.allowed(lpm_key, stats) {
            return Some(pass_allowlisted(allow, frame_len, stats));
        }
        count_match(blocked, frame_len);
        Some(xdp_action::XDP_DROP)
    }

    /// The live block rule for the source: exact first, then CIDR.
    #[inline(always)]
    fn blocking<L: Source>(
        &self,
        lpm_key: &mut Key<L>,
        stats: &mut XdpStats,
    ) -> Option<*const RuleEntry> {
        if config(self.exact_slot) != 0
            && let Found::Live(rule) = find(self.exact, L::addr(lpm_key), stats)
        {
            return Some(rule);
        }
        if config(self.net_slot) != 0
            && let Found::Live(rule) = find_lpm(self.net, lpm_key, stats)
        {
            return Some(rule);
        }
        None
    }

    /// The live allow rule covering the source.
    #[inline(always)]
    fn allowed<L>(&self, lpm_key: &mut Key<L>, stats: &mut XdpStats) -> Option<*const RuleEntry> {
        if config(self.allow_slot) != 0
            && let Found::Live(rule) = find_lpm(self.allow, lpm_key, stats)
        {
            return Some(rule);
        }
        None
    }
}

#[inline(always)]
fn find<K>(map: MapRef, key: &K, stats: &mut XdpStats) -> Found {
    let Some(rule) = lookup_mut::<K, RuleEntry>(map, key) else {
        return Found::Nothing;
    };
    if is_live(rule) {
        Found::Live(rule)
    } else {
        stats.expired += 1;
        Found::Expired
    }
}

#[inline(always)]
fn is_live(rule: *const RuleEntry) -> bool {
    // SAFETY: live map value of a rule map.
    let rule = unsafe { &*rule };
    // Permanent rules skip the clock read.
    rule.expires_at_ns == 0 || rule.is_live(boot_ns())
}

/// Further expired prefixes one LPM lookup steps over, after the first,
/// before it gives up (and treats the source as unmatched). Expired rules
/// only linger until the daemon's next garbage collection, so nested chains
/// of them are short.
const MAX_EXPIRED_STEPS: usize = 3;

/// Steps of the binary search for a prefix length: enough for 0..=128.
const PREFIX_SEARCH_STEPS: usize = 8;

/// The longest *live* prefix in LPM trie `map` that covers `key.data`.
///
/// A trie lookup returns only the longest matching prefix. If that rule has
/// expired but the daemon has not removed it yet (or is not running), a
/// shorter live rule behind it must still apply: an expired temporary allow
/// of a /28 must not hand a permanently allowlisted /24 over to a ban, and
/// an expired narrower ban must not lift a wider one. So on an expired hit
/// we find the expired rule's prefix length L (the shortest lookup length
/// that still returns it: lookups with length >= L return it, shorter ones
/// cannot) and look up again with L - 1. `key.prefix_len` is restored.
///
/// This costs nothing on the common path (one lookup, as before) and about
/// ten lookups per expired prefix otherwise. It compares map value pointers,
/// which the verifier allows privileged loaders only; blocker loads as root.
#[inline(always)]
fn find_lpm<L>(map: MapRef, key: &mut Key<L>, stats: &mut XdpStats) -> Found {
    let full = key.prefix_len;
    let found = find_lpm_from(map, key, stats);
    key.prefix_len = full;
    found
}

#[inline(always)]
fn find_lpm_from<L>(map: MapRef, key: &mut Key<L>, stats: &mut XdpStats) -> Found {
    let Some(mut rule) = lookup_mut::<Key<L>, RuleEntry>(map, key) else {
        return Found::Nothing;
    };
    if is_live(rule) {
        return Found::Live(rule);
    }
    // Counted once per table, however many expired prefixes are passed.
    stats.expired += 1;
    for _ in 0..MAX_EXPIRED_STEPS {
        // Binary search for the smallest length in (lo, hi] whose lookup
        // still returns `rule`; lookups with `hi` do.
        let (mut lo, mut hi) = (0u32, key.prefix_len);
        for _ in 0..PREFIX_SEARCH_STEPS {
            if lo + 1 >= hi {
                break;
            }
            let mid = lo + (hi - lo) / 2;
            key.prefix_len = mid;
            if lookup_mut::<Key<L>, RuleEntry>(map, key) == Some(rule) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        // The search never looks at length 0: with `hi` at 1 the rule is a
        // /1 or a /0, and nothing is shorter than a /0.
        key.prefix_len = 0;
        if hi <= 1 && lookup_mut::<Key<L>, RuleEntry>(map, key) == Some(rule) {
            return Found::Expired;
        }
        key.prefix_len = hi - 1;
        match lookup_mut::<Key<L>, RuleEntry>(map, key) {
            Some(shorter) if is_live(shorter) => return Found::Live(shorter),
            Some(shorter) => rule = shorter,
            None => return Found::Expired,
        }
    }
    Found::Expired
}

/// A frame an allow rule lets through: counted on the rule and as
/// allowlisted, then passed.
#[inline(always)]
fn pass_allowlisted(rule: *const RuleEntry, frame_len: u64, stats: &mut XdpStats) -> u32 {
    count_match(rule, frame_len);
    stats.allowlisted += 1;
    stats.allowlisted_bytes += frame_len;
    xdp_action::XDP_PASS
}

/// Counts a matched frame in this CPU's [`RULE_COUNTERS`] slot of `rule`.
#[inline(always)]
fn count_match(rule: *const RuleEntry, frame_len: u64) {
    // SAFETY: live map value of a rule map.
    let (id, slot) = unsafe { ((*rule).id, (*rule).slot) };
    if id == 0 {
        return;
    }
    let Some(counters) = RULE_COUNTERS.get_ptr_mut(slot) else {
        return;
    };
    // SAFETY: this CPU's slot of a per-CPU array; XDP runs with preemption
    // disabled, so nothing else writes it meanwhile.
    unsafe {
        if (*counters).id == id {
            (*counters).packets += 1;
            (*counters).bytes += frame_len;
        } else {
            // A slot last used by another rule (removed, or sharing it).
            *counters = RuleCounters {
                id,
                packets: 1,
                bytes: frame_len,
            };
        }
    }
}
