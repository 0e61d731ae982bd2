//! Types shared by the blocker eBPF programs and userspace.
//!
//! Everything here is `#[repr(C)]`, `Copy` and free of implicit padding (flags
//! are `u32`, not `bool`), so the kernel and userspace agree on every byte and
//! `bpftool map dump` can print the values through BTF. Addresses are always
//! in network byte order, exactly as they appear in the packet.
//!
//! Map names are the constants in [`maps`]; the eBPF statics carry the same
//! names and userspace never retypes them.
#![no_std]

/// Version of the pinned map layout. Bump it whenever a key or value layout or
/// a map's meaning changes: a daemon refuses pins written with another version
/// (see `blocker-user`'s loader) instead of misreading them.
///
/// 2: rule values carry an `id` and a `slot` of [`maps::RULE_COUNTERS`]
/// (per-CPU packet and byte counts) instead of shared counters; the
/// zero-window tables use per-CPU LRU lists.
/// 3: [`XdpStats`] counts the bytes of passed, allowlisted and malformed
/// frames too (88 → 112 bytes per CPU).
pub const LAYOUT_VERSION: u32 = 3;

/// Where the maps and XDP links are pinned unless `--pin-dir` says otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/blocker";

/// Names of the maps, identical to the eBPF statics that define them.
pub mod maps {
    /// Exact IPv4 blocklist: [`Ipv4Key`](super::Ipv4Key) → [`RuleEntry`](super::RuleEntry).
    pub const BLOCK_V4: &str = "BLOCK_V4";
    /// Exact IPv6 blocklist: [`Ipv6Key`](super::Ipv6Key) → [`RuleEntry`](super::RuleEntry).
    pub const BLOCK_V6: &str = "BLOCK_V6";
    /// IPv4 CIDR blocklist (LPM trie): [`LpmV4`](super::LpmV4) → [`RuleEntry`](super::RuleEntry).
    pub const BLOCK_NET_V4: &str = "BLOCK_NET_V4";
    /// IPv6 CIDR blocklist (LPM trie): [`Ipv6Key`](super::Ipv6Key) → [`RuleEntry`](super::RuleEntry).
    pub const BLOCK_NET_V6: &str = "BLOCK_NET_V6";
    /// IPv4 allowlist (LPM trie), checked before any blocklist.
    pub const ALLOW_V4: &str = "ALLOW_V4";
    /// IPv6 allowlist (LPM trie), checked before any blocklist.
    pub const ALLOW_V6: &str = "ALLOW_V6";
    /// Per-CPU global counters: one [`XdpStats`](super::XdpStats) per CPU.
    pub const STATS: &str = "STATS";
    /// Zero-window SYNs per IPv4 source (LRU): [`Ipv4Key`](super::Ipv4Key) → [`ZeroWindowEntry`](super::ZeroWindowEntry).
    pub const ZW_SYN_V4: &str = "ZW_SYN_V4";
    /// Zero-window SYNs per IPv6 source (LRU): [`Ipv6Key`](super::Ipv6Key) → [`ZeroWindowEntry`](super::ZeroWindowEntry).
    pub const ZW_SYN_V6: &str = "ZW_SYN_V6";
    /// Per-CPU packet and byte counts of the rules (per-CPU array):
    /// [`RuleEntry::slot`](super::RuleEntry::slot) →
    /// [`RuleCounters`](super::RuleCounters) on every CPU, valid for the rule
    /// whose id it carries.
    pub const RULE_COUNTERS: &str = "RULE_COUNTERS";
    /// Runtime settings written by userspace: `u64` slots indexed by [`config`](super::config).
    pub const CONFIG: &str = "CONFIG";
    /// One [`Meta`](super::Meta) recording the layout version of the pins.
    pub const META: &str = "META";
    /// Ring buffer of the treason probes' [`Event`](super::Event)s to the
    /// daemon (not pinned): confirmed evidence, on an established socket.
    pub const EVENTS: &str = "EVENTS";
    /// Ring buffer of XDP's zero-window-SYN threshold [`Event`](super::Event)s
    /// (not pinned): forgeable evidence, kept apart so that a spoofed flood
    /// filling it cannot crowd the probes' events out of theirs.
    pub const XDP_EVENTS: &str = "XDP_EVENTS";
    /// Per-socket probe state (LRU): rate limit and zero-window stall
    /// tracking, [`SockState`](super::SockState) (not pinned).
    pub const SOCK_STATE: &str = "SOCK_STATE";

    /// Every map that is pinned under the pin directory.
    pub const PINNED: [&str; 12] = [
        BLOCK_V4,
        BLOCK_V6,
        BLOCK_NET_V4,
        BLOCK_NET_V6,
        ALLOW_V4,
        ALLOW_V6,
        STATS,
        ZW_SYN_V4,
        ZW_SYN_V6,
        RULE_COUNTERS,
        CONFIG,
        META,
    ];
}

/// Names of the eBPF programs in the object.
pub mod programs {
    /// The XDP filter attached to interfaces.
    pub const XDP: &str = "blocker_xdp";
    /// An XDP program that only returns `XDP_PASS`: the baseline that
    /// `cargo xtask bench` measures the filter against, side by side.
    pub const XDP_BASELINE: &str = "blocker_xdp_baseline";
    /// kprobe on `tcp_retransmit_timer()`: the kernel's treason check.
    pub const KPROBE_RETRANSMIT: &str = "treason_rtx_timer";
    /// kprobe on `tcp_send_probe0()`: the persist timer's zero-window probe.
    pub const KPROBE_PROBE0: &str = "treason_probe0";
    /// Tracepoint `tcp:tcp_retransmit_skb` (fallback for the retransmit path).
    pub const TP_RETRANSMIT: &str = "treason_tp_rtx";
    /// Tracepoint `tcp:tcp_probe` (fallback for the persist path).
    pub const TP_PROBE: &str = "treason_tp_probe";
    /// Kernel functions and tracepoints they attach to.
    pub const KPROBE_RETRANSMIT_FN: &str = "tcp_retransmit_timer";
    pub const KPROBE_PROBE0_FN: &str = "tcp_send_probe0";
    pub const TP_CATEGORY: &str = "tcp";
    pub const TP_RETRANSMIT_EVENT: &str = "tcp_retransmit_skb";
    pub const TP_PROBE_EVENT: &str = "tcp_probe";
}

/// An IPv4 address in network byte order, the key of [`maps::BLOCK_V4`].
pub type Ipv4Key = [u8; 4];
/// An IPv6 address in network byte order, the key of [`maps::BLOCK_V6`] and
/// the data part of the IPv6 LPM keys.
pub type Ipv6Key = [u8; 16];

/// Data part of the IPv4 LPM trie keys: the address followed by four zero
/// bytes.
///
/// The padding is there for alignment: `trie_lookup_elem()`
/// (kernel/bpf/lpm_trie.c) returns `node->data + trie->data_size`, and nodes
/// start 8-byte aligned, so with a 4-byte data part the [`RuleEntry`] would be
/// only 4-byte aligned and its `u64` fields would be read misaligned. Prefixes never exceed 32 bits, so the padding never
/// takes part in a match; lookups use prefix length 64.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LpmV4 {
    pub addr: Ipv4Key,
    pub pad: [u8; 4],
}

impl LpmV4 {
    pub const fn new(addr: Ipv4Key) -> Self {
        Self { addr, pad: [0; 4] }
    }
}

/// Prefix length used for IPv4 LPM lookups (address plus padding, see [`LpmV4`]).
pub const LPM_V4_LOOKUP_BITS: u32 = 64;
/// Prefix length used for IPv6 LPM lookups.
pub const LPM_V6_LOOKUP_BITS: u32 = 128;

/// Value of every allow and block rule.
///
/// Times are CLOCK_BOOTTIME nanoseconds (`bpf_ktime_get_boot_ns()`), so a rule
/// expires on time even while the daemon is down.
///
/// The XDP program only reads it: every CPU reads `expires_at_ns` of the rules
/// that match its traffic, so a counter written in the same cache line would
/// bounce that line between CPUs on every matched frame (measured: the same
/// dropped frame on both CPUs at once cost 2.9× one CPU alone). The counts
/// live in [`maps::RULE_COUNTERS`], per CPU, under [`RuleEntry::id`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleEntry {
    /// The rule stops applying at this CLOCK_BOOTTIME instant; 0 = never.
    pub expires_at_ns: u64,
    /// CLOCK_BOOTTIME instant the rule was written.
    pub added_at_ns: u64,
    /// Identity of this rule for its counters: random, chosen by userspace
    /// when the rule is created and kept when it is replaced (so a re-ban
    /// keeps its counts, and a new rule for the same address starts from
    /// zero). 0: not counted.
    pub id: u64,
    /// Why the rule exists, one of [`reason`].
    pub reason: u32,
    /// Index of this rule's [`RuleCounters`] in [`maps::RULE_COUNTERS`]
    /// (userspace uses `id % capacity`). Rules sharing a slot share it like a
    /// direct-mapped cache: the slot counts for the id it carries, and the
    /// other rule's first match on a CPU takes it over.
    pub slot: u32,
}

/// Per-CPU counts of one rule, the values of [`maps::RULE_COUNTERS`];
/// userspace sums, over the CPUs, the slots that carry the rule's id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleCounters {
    /// [`RuleEntry::id`] of the rule these counts belong to.
    pub id: u64,
    /// Packets matched: dropped for block rules, passed for allow rules.
    pub packets: u64,
    /// Bytes of those packets (whole frames).
    pub bytes: u64,
}

impl RuleEntry {
    /// Whether the rule still applies at `now_ns` (CLOCK_BOOTTIME).
    #[inline(always)]
    pub const fn is_live(&self, now_ns: u64) -> bool {
        self.expires_at_ns == 0 || now_ns < self.expires_at_ns
    }
}

/// Reason codes stored in [`RuleEntry::reason`]; the free-text reason lives in
/// the daemon's store.
pub mod reason {
    pub const UNKNOWN: u32 = 0;
    /// An operator ran `blocker ban`/`blocker allow`.
    pub const MANUAL: u32 = 1;
    /// The kernel caught the peer holding our sockets with a closed window.
    pub const TREASON: u32 = 2;
    /// The source sent zero-window SYNs past the threshold.
    pub const ZERO_WINDOW_SYN: u32 = 3;
    /// An IDS alert (Suricata eve.json).
    pub const IDS: u32 = 4;
    /// `blocker import` of a ban list.
    pub const IMPORT: u32 = 5;
    /// A council verdict with several kinds of evidence.
    pub const COUNCIL: u32 = 6;
    /// A decision of an outside source (a CrowdSec Local API); the journal
    /// record's source says which (`crowdsec:cscli`, `crowdsec:CAPI`, ...).
    pub const EXTERNAL: u32 = 7;

    /// Short name used in CLI output and JSON.
    pub const fn name(code: u32) -> &'static str {
        match code {
            MANUAL => "manual",
            TREASON => "treason",
            ZERO_WINDOW_SYN => "zero-window-syn",
            IDS => "ids",
            IMPORT => "import",
            COUNCIL => "council",
            EXTERNAL => "external",
            _ => "unknown",
        }
    }
}

/// Per-CPU counters of the XDP program. Every frame ends in exactly one of
/// `passed` or `dropped`; the other fields say why.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames handed on to the kernel.
    pub passed: u64,
    /// Frames dropped (by a block rule or the zero-window SYN policy).
    pub dropped: u64,
    /// Bytes of the dropped frames.
    pub dropped_bytes: u64,
    /// Frames the allowlist passed that a block rule or the zero-window SYN
    /// accounting would otherwise have handled. Other frames from
    /// allowlisted sources never reach the allowlist lookup (the XDP
    /// program checks the blocklists first) and count only as `passed`.
    pub allowlisted: u64,
    /// Frames that could not be parsed (truncated or invalid headers); passed.
    pub malformed: u64,
    /// Frames that are not IPv4/IPv6 (ARP, LLDP, ...); passed.
    pub non_ip: u64,
    /// Frames whose source matched a block or allow rule that had expired.
    pub expired: u64,
    /// TCP SYNs (without ACK) advertising a zero window.
    pub zw_syn: u64,
    /// Zero-window SYNs dropped by the global policy switch (not counted per
    /// source while the switch is on).
    pub zw_syn_dropped: u64,
    /// Events sent to userspace (XDP thresholds and treason probes).
    pub events: u64,
    /// Events lost because the ring buffer was full.
    pub events_lost: u64,
    /// Bytes of the passed frames (allowlisted and malformed ones included).
    pub passed_bytes: u64,
    /// Bytes of the `allowlisted` frames.
    pub allowlisted_bytes: u64,
    /// Bytes of the `malformed` frames.
    pub malformed_bytes: u64,
}

/// Zero-window SYN accounting per source address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZeroWindowEntry {
    /// Zero-window SYNs seen from this source.
    pub count: u64,
    /// CLOCK_BOOTTIME of the first one, to within one scheduler tick (the
    /// XDP program reads the exact clock once per tick and CPU, not per SYN).
    pub first_seen_ns: u64,
    /// CLOCK_BOOTTIME of the latest one, to within one scheduler tick; never
    /// before `first_seen_ns`.
    pub last_seen_ns: u64,
    /// Non-zero once a threshold event has been sent for this source.
    pub reported: u32,
    /// Reserved, zero.
    pub flags: u32,
}

/// Slots of the [`maps::CONFIG`] array (`u64` each). Each setting has its own
/// slot so concurrent writers (daemon, CLI) never overwrite each other's.
pub mod config {
    /// Non-zero when [`maps::ALLOW_V4`](super::maps::ALLOW_V4) may hold entries.
    ///
    /// The six table slots let the XDP program skip lookups in empty tables.
    /// Userspace sets a slot after inserting and clears it only after seeing
    /// the table empty, then re-checks (see `blocker-user`'s tables module).
    pub const ALLOW_V4_ACTIVE: u32 = 0;
    pub const ALLOW_V6_ACTIVE: u32 = 1;
    pub const BLOCK_V4_ACTIVE: u32 = 2;
    pub const BLOCK_V6_ACTIVE: u32 = 3;
    pub const BLOCK_NET_V4_ACTIVE: u32 = 4;
    pub const BLOCK_NET_V6_ACTIVE: u32 = 5;
    /// Zero-window SYNs from one source that trigger an event; 0 = no events.
    pub const ZW_THRESHOLD: u32 = 6;
    /// Drop every zero-window SYN until this CLOCK_BOOTTIME instant; 0 = off.
    pub const ZW_DROP_UNTIL_NS: u32 = 7;
    /// Number of slots.
    pub const LEN: u32 = 8;
}

/// Contents of the [`maps::META`] array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// [`LAYOUT_VERSION`](super::LAYOUT_VERSION) of the code that created the pins.
    pub layout_version: u32,
    /// Reserved, zero.
    pub flags: u32,
}

/// Kinds of [`Event`].
pub mod event_kind {
    /// A source crossed the zero-window SYN threshold (XDP).
    pub const ZERO_WINDOW_SYN: u32 = 1;
    /// A retransmission timer fired on a socket whose peer advertises a zero
    /// window: the kernel's "treason uncloaked" condition.
    pub const TREASON_RETRANSMIT: u32 = 2;
    /// A zero-window probe was sent: the peer keeps our socket in the
    /// persist timer (sockstress, slow read).
    pub const TREASON_PROBE: u32 = 3;
    /// A segment arrived on an established socket while its send window was
    /// zero (`tcp:tcp_probe` fallback).
    pub const ZERO_WINDOW_SEEN: u32 = 4;
}

/// Address family values in [`Event::family`] (`AF_INET`, `AF_INET6`).
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// An event sent from the kernel to the daemon through [`maps::EVENTS`].
///
/// "Peer" is the remote end (the suspect), "local" is ours. IPv4 addresses
/// use the first four bytes of the 16-byte fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_BOOTTIME when the kernel saw it.
    pub ts_ns: u64,
    /// One of [`event_kind`].
    pub kind: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Peer port, host byte order (0 when not applicable).
    pub peer_port: u16,
    /// Local port, host byte order (0 when not applicable).
    pub local_port: u16,
    /// TCP state of the socket (`TCP_ESTABLISHED` = 1, ...), 0 for XDP events.
    pub state: u16,
    /// The peer's advertised send window (`tcp_sock.snd_wnd`), 0 for XDP.
    pub snd_wnd: u32,
    /// Peer address, network byte order.
    pub peer_addr: [u8; 16],
    /// Local address, network byte order.
    pub local_addr: [u8; 16],
    /// Kind-specific count: zero-window SYNs for XDP events, bytes in flight
    /// (`snd_nxt - snd_una`) for probe events.
    pub count: u64,
    /// Identity of the socket (its kernel address) for probe events, so
    /// userspace can tell one stalled connection from many.
    pub sock_id: u64,
    /// For stall events: how long the window has been closed with no
    /// progress, in nanoseconds.
    pub stalled_ns: u64,
}

/// Per-socket state the probes keep in [`maps::SOCK_STATE`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockState {
    /// CLOCK_BOOTTIME of the last event sent for this socket.
    pub last_event_ns: u64,
    /// When the closed window was first seen (0: not stalled).
    pub stall_since_ns: u64,
    /// `snd_una` at that moment: if it moves, the peer is reading.
    pub stall_una: u32,
    /// Reserved, zero.
    pub flags: u32,
}

/// Byte offsets of the socket fields the treason probes read, relative to a
/// `struct sock *` (which is also the `struct tcp_sock *`: `tcp_sock` starts
/// with `inet_connection_sock`, which starts with `sock`).
///
/// Userspace reads them from the running kernel's BTF
/// (`/sys/kernel/btf/vmlinux`) and passes them in as the global
/// `SOCK_OFFSETS` before load, so nothing is hard-coded for one kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockOffsets {
    /// `sock_common.skc_family` (u16).
    pub family: u32,
    /// `sock_common.skc_state` (u8).
    pub state: u32,
    /// `sock_common.skc_dport`: peer port, network byte order (u16).
    pub dport: u32,
    /// `sock_common.skc_num`: local port, host byte order (u16).
    pub num: u32,
    /// `sock_common.skc_daddr`: peer IPv4 address (4 bytes).
    pub daddr: u32,
    /// `sock_common.skc_rcv_saddr`: local IPv4 address (4 bytes).
    pub rcv_saddr: u32,
    /// `sock_common.skc_v6_daddr`: peer IPv6 address (16 bytes).
    pub v6_daddr: u32,
    /// `sock_common.skc_v6_rcv_saddr`: local IPv6 address (16 bytes).
    pub v6_rcv_saddr: u32,
    /// `sock_common.skc_flags` (unsigned long; bit `SOCK_DEAD` = 0; `sk_flags`
    /// is a macro for it since Linux 4.4, commit 8e5eb54d303b).
    pub flags: u32,
    /// `sock.sk_wmem_queued` (int): bytes queued for sending, sent or not.
    pub wmem_queued: u32,
    /// `tcp_sock.snd_wnd` (u32): the window the peer advertised.
    pub snd_wnd: u32,
    /// `tcp_sock.snd_una` (u32).
    pub snd_una: u32,
    /// `tcp_sock.snd_nxt` (u32).
    pub snd_nxt: u32,
    /// `tcp_sock.packets_out` (u32): segments in flight.
    pub packets_out: u32,
    /// Non-zero once filled in; the probes do nothing while it is zero.
    pub valid: u32,
    /// Reserved, zero.
    pub flags_reserved: u32,
}

impl SockOffsets {
    /// All zero: the value compiled into the object, meaning "not set".
    pub const UNSET: Self = Self {
        family: 0,
        state: 0,
        dport: 0,
        num: 0,
        daddr: 0,
        rcv_saddr: 0,
        v6_daddr: 0,
        v6_rcv_saddr: 0,
        flags: 0,
        wmem_queued: 0,
        snd_wnd: 0,
        snd_una: 0,
        snd_nxt: 0,
        packets_out: 0,
        valid: 0,
        flags_reserved: 0,
    };
}

/// Offsets of the fields the tracepoint fallback reads from its context,
/// taken from the tracepoints' `format` files in tracefs at load time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracepointOffsets {
    /// `tcp:tcp_probe` fields.
    pub probe_snd_wnd: u32,
    pub probe_snd_nxt: u32,
    pub probe_snd_una: u32,
    pub probe_skaddr: u32,
    /// `tcp:tcp_retransmit_skb` fields.
    pub retransmit_skaddr: u32,
    pub retransmit_state: u32,
    /// Non-zero once filled in.
    pub valid: u32,
    /// Reserved, zero.
    pub flags: u32,
}

impl TracepointOffsets {
    /// All zero: "not set".
    pub const UNSET: Self = Self {
        probe_snd_wnd: 0,
        probe_snd_nxt: 0,
        probe_snd_una: 0,
        probe_skaddr: 0,
        retransmit_skaddr: 0,
        retransmit_state: 0,
        valid: 0,
        flags: 0,
    };
}

/// Names of the load-time globals (`EbpfLoader::override_global`).
pub mod globals {
    /// [`SockOffsets`](super::SockOffsets) from the kernel's BTF.
    pub const SOCK_OFFSETS: &str = "SOCK_OFFSETS";
    /// [`TracepointOffsets`](super::TracepointOffsets) from tracefs.
    pub const TP_OFFSETS: &str = "TP_OFFSETS";
    /// Minimum CLOCK_BOOTTIME nanoseconds between two probe events for the
    /// same socket (u64).
    pub const EVENT_INTERVAL_NS: &str = "EVENT_INTERVAL_NS";
    /// A closed window must last this long (CLOCK_BOOTTIME ns, u64) with no
    /// acknowledged progress before a stall event is sent.
    pub const STALL_NS: &str = "STALL_NS";
}

/// Default for [`globals::STALL_NS`]: ten seconds.
pub const DEFAULT_STALL_NS: u64 = 10_000_000_000;

/// Default for [`globals::EVENT_INTERVAL_NS`]: one event per socket per second.
pub const DEFAULT_EVENT_INTERVAL_NS: u64 = 1_000_000_000;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are `#[repr(C)]`, `Copy`, contain only integers and
    // integer arrays, and have no implicit padding (checked by the size tests
    // in blocker-user).
    unsafe impl aya::Pod for super::LpmV4 {}
    unsafe impl aya::Pod for super::RuleEntry {}
    unsafe impl aya::Pod for super::RuleCounters {}
    unsafe impl aya::Pod for super::XdpStats {}
    unsafe impl aya::Pod for super::ZeroWindowEntry {}
    unsafe impl aya::Pod for super::Meta {}
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::SockState {}
    unsafe impl aya::Pod for super::SockOffsets {}
    unsafe impl aya::Pod for super::TracepointOffsets {}
}

// Layouts are part of the pinned-map contract: fail the build (both sides)
// if a field change alters a size, rather than misreading old pins.
const _: () = {
    assert!(core::mem::size_of::<LpmV4>() == 8);
    assert!(core::mem::size_of::<RuleEntry>() == 32);
    assert!(core::mem::size_of::<RuleCounters>() == 24);
    assert!(core::mem::size_of::<XdpStats>() == 112);
    assert!(core::mem::size_of::<ZeroWindowEntry>() == 32);
    assert!(core::mem::size_of::<Meta>() == 8);
    assert!(core::mem::size_of::<Event>() == 80);
    assert!(core::mem::size_of::<SockState>() == 24);
    assert!(core::mem::size_of::<SockOffsets>() == 64);
    assert!(core::mem::size_of::<TracepointOffsets>() == 32);
};
