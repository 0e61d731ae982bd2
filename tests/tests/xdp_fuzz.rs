//! Hostile frames through the XDP program (`BPF_PROG_TEST_RUN`): random
//! bytes, valid frames, and valid frames mutated (bit flips, truncation,
//! lying length fields, random ethertypes, VLAN stacks, IPv4 IHL and
//! fragment values, IPv6 next-header chains and extension lengths, TCP flags
//! and windows), from a seeded PRNG so every failure reproduces.
//!
//! Each frame's action and counter movement is compared with a reference
//! model written from the program's contract (its module docs, RFC 791,
//! RFC 8200, RFC 9293) and the rules the test installed: allowlisted
//! sources pass, live bans drop, expired rules are ignored, everything else
//! passes, and only the zero-window SYN policy drops what no rule names.
//! On top of the exact comparison, the properties that matter are asserted
//! by name: never `XDP_ABORTED`, never a dropped allowlisted source, always
//! a dropped banned source whose L3 header is intact, and `passed +
//! dropped` equal to the frames run.
//!
//! `BLOCKER_XDP_FUZZ_SEED` and `BLOCKER_XDP_FUZZ_FRAMES` override the seed
//! and the frame count (for longer runs by hand).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use blocker::{addr::IpNet, rule::List};
use blocker_common::{XdpStats, config};
use blocker_tests::{
    frames::{L4, Spec, V6Ext},
    testrun::{Harness, XDP_ABORTED, XDP_DROP, XDP_PASS},
};

const DEFAULT_SEED: u64 = 0x5eed_b10c_7e57_0001;
const DEFAULT_FRAMES: usize = 40_000;

/// `BPF_PROG_TEST_RUN` refuses XDP input shorter than an Ethernet header.
const MIN_FRAME: usize = 14;

// ---- a tiny deterministic PRNG (xorshift64*) ----

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // xorshift has a fixed point at 0.
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        (self.next() >> 32) as u8
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---- the rules under test ----

/// Rule lifetimes: permanent, live for an hour, or already expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    Permanent,
    Live,
    Expired,
}

/// `(list, prefix, life)`. Allow rules overlap bans on purpose: inside a
/// banned /24, an allowed /29 that covers an exactly banned host; an exact
/// ban that is also an allowed /32; expired narrower rules inside live wider
/// ones (in both lists).
const RULES: &[(List, &str, Life)] = &[
    (List::Block, "198.18.0.0/24", Life::Permanent),
    (List::Block, "198.18.0.2", Life::Permanent),
    (List::Allow, "198.18.0.0/29", Life::Permanent),
    (List::Block, "198.18.1.7", Life::Live),
    (List::Allow, "198.18.1.7", Life::Permanent),
    (List::Block, "198.18.2.0/23", Life::Permanent),
    (List::Allow, "198.18.2.128/25", Life::Live),
    (List::Block, "198.18.3.3", Life::Permanent),
    (List::Block, "198.18.5.5", Life::Expired),
    (List::Block, "198.18.6.0/24", Life::Expired),
    (List::Block, "198.18.7.0/24", Life::Live),
    (List::Block, "198.18.7.0/28", Life::Expired),
    (List::Allow, "198.18.8.0/24", Life::Permanent),
    (List::Allow, "198.18.8.0/28", Life::Expired),
    (List::Block, "198.18.8.5", Life::Permanent),
    (List::Allow, "198.18.9.0/24", Life::Expired),
    (List::Block, "198.18.9.0/24", Life::Permanent),
    (List::Block, "2001:db8::2", Life::Permanent),
    (List::Block, "2001:db8::/64", Life::Permanent),
    (List::Allow, "2001:db8::/120", Life::Permanent),
    (List::Block, "2001:db8:1::/48", Life::Live),
    (List::Allow, "2001:db8:1:2::/64", Life::Permanent),
    (List::Block, "2001:db8:5::5", Life::Expired),
    (List::Block, "2001:db8:7::/48", Life::Permanent),
    (List::Block, "2001:db8:7::/64", Life::Expired),
    (List::Allow, "2001:db8:8::/48", Life::Permanent),
    (List::Allow, "2001:db8:8::/64", Life::Expired),
    (List::Allow, "2001:db8:8::/96", Life::Expired),
    (List::Block, "2001:db8:8::5", Life::Permanent),
];

/// Sources the frames come from: one or more per rule above, and neutral
/// ones; mutations then move them around.
const SOURCES: &[&str] = &[
    "198.18.0.2",
    "198.18.0.5",
    "198.18.0.9",
    "198.18.1.7",
    "198.18.1.8",
    "198.18.2.200",
    "198.18.3.3",
    "198.18.5.5",
    "198.18.6.1",
    "198.18.7.1",
    "198.18.7.77",
    "198.18.8.5",
    "198.18.9.9",
    "198.19.255.254",
    "2001:db8::2",
    "2001:db8::1:5",
    "2001:db8:1:2::9",
    "2001:db8:1:3::9",
    "2001:db8:2::1",
    "2001:db8:5::5",
    "2001:db8:7::1",
    "2001:db8:8::5",
    "::ffff:198.18.0.9",
];

struct Rule {
    net: IpNet,
    live: bool,
}

/// What the program is meant to do, from its contract.
struct Model {
    allow: Vec<Rule>,
    exact: Vec<Rule>,
    nets: Vec<Rule>,
    zw_policy: bool,
}

/// What the model saw in a frame.
#[derive(Default)]
struct Facts {
    /// Ethernet, VLAN tags and the fixed IP header are complete and valid:
    /// the source address is known.
    source: Option<IpAddr>,
    allowlisted: bool,
    banned: bool,
}

fn be16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

fn is_vlan(ether_type: u16) -> bool {
    ether_type == 0x8100 || ether_type == 0x88a8
}

/// Where the layers of a frame start, as far as they parse; mutations aim
/// at the fields by these offsets.
#[derive(Default)]
struct Layout {
    /// Offset and ethertype of the network header.
    l3: Option<(usize, u16)>,
    /// The TCP header, when the chain leads to one.
    tcp: Option<usize>,
    /// IPv6: offsets of the "next header" bytes along the chain (the IP
    /// header's, then each extension header's), and of each extension header.
    v6_next: Vec<usize>,
    v6_ext: Vec<usize>,
}

fn layout(f: &[u8]) -> Layout {
    let mut l = Layout::default();
    let mut et = be16(f, 12);
    let mut off = 14;
    for _ in 0..2 {
        if !is_vlan(et) {
            break;
        }
        if f.len() < off + 4 {
            return l;
        }
        et = be16(f, off + 2);
        off += 4;
    }
    l.l3 = Some((off, et));
    if et == 0x0800 && f.len() >= off + 20 {
        if f[off + 9] == 6 {
            l.tcp = Some(off + usize::from(f[off] & 0x0f) * 4);
        }
    } else if et == 0x86dd && f.len() >= off + 40 {
        let mut next_at = off + 6;
        let mut at = off + 40;
        for _ in 0..12 {
            l.v6_next.push(next_at);
            let ty = f[next_at];
            match ty {
                0 | 43 | 60 | 44 if f.len() >= at + 8 => {
                    l.v6_ext.push(at);
                    next_at = at;
                    at += if ty == 44 {
                        8
                    } else {
                        (usize::from(f[at + 1]) + 1) * 8
                    };
                }
                6 => {
                    l.tcp = Some(at);
                    break;
                }
                _ => break,
            }
        }
    }
    l
}

impl Model {
    fn rules(&self, list: List, host: bool) -> &[Rule] {
        match (list, host) {
            (List::Allow, _) => &self.allow,
            (List::Block, true) => &self.exact,
            (List::Block, false) => &self.nets,
        }
    }

    /// The longest-prefix decision of one LPM table: (live match, whether an
    /// expired, longer prefix was stepped over on the way).
    fn lpm(rules: &[Rule], src: IpAddr) -> (bool, bool) {
        let mut matching: Vec<&Rule> = rules.iter().filter(|r| r.net.contains(&src)).collect();
        matching.sort_by_key(|r| std::cmp::Reverse(r.net.prefix_len()));
        let live = matching.iter().position(|r| r.live);
        let expired_before = match live {
            Some(i) => i > 0,
            None => !matching.is_empty(),
        };
        (live.is_some(), expired_before)
    }

    /// The source decision: `Some(action)` when a rule decides. The
    /// blocklists are looked up first; the allowlist only when a block rule
    /// matched (it still wins then).
    fn check(&self, src: IpAddr, s: &mut XdpStats, facts: &mut Facts) -> Option<u32> {
        let (allowed, allow_expired) = Self::lpm(&self.allow, src);
        let exact = self
            .rules(List::Block, true)
            .iter()
            .find(|r| r.net.addr() == src);
        let (in_net, net_expired) = Self::lpm(&self.nets, src);
        facts.allowlisted = allowed;
        let blocked = match exact {
            Some(r) if r.live => true,
            other => {
                s.expired += u64::from(other.is_some());
                s.expired += u64::from(net_expired);
                in_net
            }
        };
        facts.banned = !allowed && blocked;
        if !blocked {
            return None;
        }
        s.expired += u64::from(allow_expired);
        if allowed {
            s.allowlisted += 1;
            return Some(XDP_PASS);
        }
        Some(XDP_DROP)
    }

    /// A zero-window SYN no block rule decided: the allowlist exempts it.
    fn zero_window_allowed(&self, src: IpAddr, s: &mut XdpStats) -> bool {
        let (allowed, allow_expired) = Self::lpm(&self.allow, src);
        s.expired += u64::from(allow_expired);
        if allowed {
            s.allowlisted += 1;
        }
        allowed
    }

    /// The action and counter movement for `f`.
    fn predict(&self, f: &[u8]) -> (u32, XdpStats, Facts) {
        let mut s = XdpStats::default();
        let mut facts = Facts::default();
        let action = match self.classify(f, &mut s, &mut facts) {
            Some(a) => a,
            None => {
                s.malformed += 1;
                s.malformed_bytes += f.len() as u64;
                XDP_PASS
            }
        };
        // A frame is allowlisted at most once.
        s.allowlisted_bytes = s.allowlisted * f.len() as u64;
        if action == XDP_DROP {
            s.dropped += 1;
            s.dropped_bytes += f.len() as u64;
        } else {
            s.passed += 1;
            s.passed_bytes += f.len() as u64;
        }
        (action, s, facts)
    }

    /// `None` for a malformed frame.
    fn classify(&self, f: &[u8], s: &mut XdpStats, facts: &mut Facts) -> Option<u32> {
        // Ethernet, then at most two VLAN tags (802.1Q, 802.1ad).
        let mut et = be16(f, 12);
        let mut off = 14;
        let mut tags = 0;
        while is_vlan(et) {
            if tags == 2 || f.len() < off + 4 {
                return None;
            }
            et = be16(f, off + 2);
            off += 4;
            tags += 1;
        }
        let l4 = match et {
            0x0800 => {
                // RFC 791: version 4, IHL >= 5 words.
                if f.len() < off + 20 || f[off] >> 4 != 4 || f[off] & 0x0f < 5 {
                    return None;
                }
                let src = IpAddr::from(<[u8; 4]>::try_from(&f[off + 12..off + 16]).unwrap());
                facts.source = Some(src);
                if let Some(a) = self.check(src, s, facts) {
                    return Some(a);
                }
                // Only the first fragment (offset 0) carries TCP.
                if f[off + 9] != 6 || be16(f, off + 6) & 0x1fff != 0 {
                    return Some(XDP_PASS);
                }
                off + usize::from(f[off] & 0x0f) * 4
            }
            0x86dd => {
                if f.len() < off + 40 || f[off] >> 4 != 6 {
                    return None;
                }
                let src = IpAddr::from(<[u8; 16]>::try_from(&f[off + 8..off + 24]).unwrap());
                facts.source = Some(src);
                if let Some(a) = self.check(src, s, facts) {
                    return Some(a);
                }
                // RFC 8200 section 4: walk at most 8 extension headers.
                let mut next = f[off + 6];
                let mut at = off + 40;
                let mut found = None;
                for _ in 0..8 {
                    match next {
                        6 => {
                            found = Some(at);
                            break;
                        }
                        0 | 43 | 60 => {
                            if f.len() < at + 2 {
                                return None;
                            }
                            next = f[at];
                            at += (usize::from(f[at + 1]) + 1) * 8;
                        }
                        44 => {
                            if f.len() < at + 8 {
                                return None;
                            }
                            if be16(f, at + 2) & 0xfff8 != 0 {
                                return Some(XDP_PASS);
                            }
                            next = f[at];
                            at += 8;
                        }
                        _ => return Some(XDP_PASS),
                    }
                }
                found?
            }
            _ => {
                s.non_ip += 1;
                return Some(XDP_PASS);
            }
        };
        // RFC 9293: the fixed 20-byte header; SYN without ACK, window 0.
        if f.len() < l4 + 20 {
            return None;
        }
        if f[l4 + 13] & 0x12 != 0x02 || be16(f, l4 + 14) != 0 {
            return Some(XDP_PASS);
        }
        if self.zero_window_allowed(facts.source?, s) {
            return Some(XDP_PASS);
        }
        s.zw_syn += 1;
        if self.zw_policy {
            s.zw_syn_dropped += 1;
            return Some(XDP_DROP);
        }
        Some(XDP_PASS)
    }
}

// ---- frames ----

fn random_spec(rng: &mut Rng) -> Spec {
    let src: IpAddr = rng.pick(SOURCES).parse().unwrap();
    let dst = if src.is_ipv4() {
        "198.18.0.1"
    } else {
        "2001:db8::1"
    };
    let mut spec = Spec::syn(&src.to_string(), dst).vlans(rng.below(3) as u8);
    spec.l4 = if rng.chance(20) {
        L4::Udp
    } else {
        L4::Tcp {
            syn: rng.chance(70),
            ack: rng.chance(30),
            window: if rng.chance(60) { 0 } else { rng.next() as u16 },
        }
    };
    if src.is_ipv4() {
        if rng.chance(30) {
            let words = 1 + rng.below(10);
            spec.ipv4_options = vec![1; words * 4];
        }
        if rng.chance(15) {
            spec.ipv4_fragment_offset = rng.below(8192) as u16;
        }
    } else if rng.chance(40) {
        spec.v6_ext = V6Ext {
            hop_by_hop: rng.chance(50),
            routing: rng.chance(50),
            destination_options: rng.chance(50),
            fragment: rng.chance(40).then(|| {
                if rng.chance(70) {
                    0
                } else {
                    rng.below(8192) as u16
                }
            }),
        };
    }
    if rng.chance(30) {
        spec.payload = (0..rng.below(64)).map(|_| rng.byte()).collect();
    }
    spec
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let mut f: Vec<u8> = (0..MIN_FRAME + rng.below(120))
        .map(|_| rng.byte())
        .collect();
    // Most random ethertypes are not IP; steer half of them into the parser.
    if rng.chance(50) {
        let et: u16 = *rng.pick(&[0x0800, 0x86dd, 0x8100, 0x88a8]);
        f[12..14].copy_from_slice(&et.to_be_bytes());
        if f.len() > 14 && rng.chance(50) {
            // A plausible version nibble behind it.
            f[14] = if et == 0x86dd { 0x60 } else { 0x45 } | (f[14] & 0x0f);
        }
    }
    f
}

const MUTATIONS: &[&str] = &[
    "bit-flips",
    "truncate",
    "length-lie",
    "ihl",
    "ethertype",
    "vlan-stack",
    "fragment",
    "next-header",
    "ext-length",
    "ext-chain",
    "tcp-flags",
    "tcp-window",
    "tcp-offset",
    "version",
    "source",
];

/// Applies one named mutation; returns what it did, for failure messages.
fn mutate(rng: &mut Rng, f: &mut Vec<u8>, name: &str) -> String {
    let l = layout(f);
    let l3 = l.l3.map(|(o, _)| o);
    let v4 = matches!(l.l3, Some((_, 0x0800)));
    let v6 = matches!(l.l3, Some((_, 0x86dd)));
    let in_frame = |at: usize, n: usize, f: &Vec<u8>| at + n <= f.len();
    match name {
        "truncate" => {
            let len = MIN_FRAME + rng.below(f.len() - MIN_FRAME + 1);
            f.truncate(len);
            format!("truncate to {len}")
        }
        "length-lie" if l3.is_some_and(|o| in_frame(o + 6, 2, f)) => {
            // IPv4 total length (offset 2) or IPv6 payload length (offset 4).
            let at = l3.unwrap() + if v6 { 4 } else { 2 };
            let v = rng.next() as u16;
            if at + 2 <= f.len() {
                f[at..at + 2].copy_from_slice(&v.to_be_bytes());
            }
            format!("length field at {at} = {v}")
        }
        "ihl" if v4 && in_frame(l3.unwrap(), 1, f) => {
            let at = l3.unwrap();
            let ihl = rng.below(16) as u8;
            f[at] = (f[at] & 0xf0) | ihl;
            format!("IHL {ihl}")
        }
        "version" if l3.is_some_and(|o| in_frame(o, 1, f)) => {
            let at = l3.unwrap();
            let v = rng.below(16) as u8;
            f[at] = (f[at] & 0x0f) | v << 4;
            format!("version {v}")
        }
        "ethertype" => {
            let et: u16 = *rng.pick(&[0x0800, 0x86dd, 0x8100, 0x88a8, 0x0806, 0x88cc]);
            let et = if rng.chance(20) {
                rng.next() as u16
            } else {
                et
            };
            // The outer ethertype, or the one after a tag.
            let at = if rng.chance(30) && l3.is_some_and(|o| o > 14) {
                l3.unwrap() - 2
            } else {
                12
            };
            f[at..at + 2].copy_from_slice(&et.to_be_bytes());
            format!("ethertype at {at} = {et:#06x}")
        }
        "vlan-stack" => {
            let n = 1 + rng.below(3);
            for _ in 0..n {
                let tpid: u16 = *rng.pick(&[0x8100, 0x88a8]);
                let tag = [(tpid >> 8) as u8, tpid as u8, rng.byte() & 0x0f, rng.byte()];
                f.splice(12..12, tag);
            }
            format!("{n} more VLAN tags")
        }
        "fragment" if v4 && in_frame(l3.unwrap() + 6, 2, f) => {
            let at = l3.unwrap() + 6;
            // Random flags (DF, MF, the reserved bit) and offset.
            let v = if rng.chance(50) {
                rng.next() as u16 & 0xe000
            } else {
                rng.next() as u16
            };
            f[at..at + 2].copy_from_slice(&v.to_be_bytes());
            format!("IPv4 flags+offset {v:#06x}")
        }
        "fragment" if v6 && !l.v6_next.is_empty() => {
            // A fragment header at the front of the chain.
            let at = l3.unwrap() + 40;
            let off = if rng.chance(50) {
                0
            } else {
                rng.next() as u16 & 0xfff9
            };
            let next = f[l3.unwrap() + 6];
            let hdr = [next, 0, (off >> 8) as u8, off as u8, 0, 0, 0, 7];
            f.splice(at..at, hdr);
            f[l3.unwrap() + 6] = 44;
            format!("IPv6 fragment header, offset field {off:#06x}")
        }
        "next-header" if !l.v6_next.is_empty() => {
            let at = *rng.pick(&l.v6_next);
            let v = *rng.pick(&[0u8, 6, 17, 43, 44, 50, 51, 58, 59, 60, 135, 255]);
            let v = if rng.chance(10) { rng.byte() } else { v };
            f[at] = v;
            format!("next header at {at} = {v}")
        }
        "ext-length" if !l.v6_ext.is_empty() => {
            let at = *rng.pick(&l.v6_ext) + 1;
            let v = rng.byte();
            f[at] = v;
            format!("extension length at {at} = {v}")
        }
        "ext-chain" if v6 && !l.v6_next.is_empty() => {
            // Destination options headers in front of whatever came first:
            // around the program's limit of 8.
            let n = 1 + rng.below(10);
            let at = l3.unwrap() + 40;
            for _ in 0..n {
                let next = f[l3.unwrap() + 6];
                f.splice(at..at, [next, 0, 1, 4, 0, 0, 0, 0]);
                f[l3.unwrap() + 6] = 60;
            }
            format!("{n} destination-options headers")
        }
        "tcp-flags" | "tcp-window" | "tcp-offset" => {
            let tcp = l.tcp;
            let Some(t) = tcp.filter(|&t| t + 16 <= f.len()) else {
                return flip(rng, f);
            };
            match name {
                "tcp-flags" => {
                    let v = if rng.chance(50) {
                        *rng.pick(&[0x02u8, 0x12, 0x10, 0x03, 0x06, 0xc2, 0xff, 0])
                    } else {
                        rng.byte()
                    };
                    f[t + 13] = v;
                    format!("TCP flags {v:#04x}")
                }
                "tcp-window" => {
                    let v = if rng.chance(60) { 0 } else { rng.next() as u16 };
                    f[t + 14..t + 16].copy_from_slice(&v.to_be_bytes());
                    format!("TCP window {v}")
                }
                _ => {
                    let v = rng.byte();
                    f[t + 12] = v;
                    format!("TCP data offset byte {v:#04x}")
                }
            }
        }
        "source" if l3.is_some() => {
            let (at, n) = if v6 {
                (l3.unwrap() + 8, 16)
            } else {
                (l3.unwrap() + 12, 4)
            };
            if !in_frame(at, n, f) {
                return flip(rng, f);
            }
            let src: IpAddr = rng.pick(SOURCES).parse().unwrap();
            let bytes = match src {
                IpAddr::V4(a) if n == 4 => a.octets().to_vec(),
                IpAddr::V6(a) if n == 16 => a.octets().to_vec(),
                _ => (0..n).map(|_| rng.byte()).collect(),
            };
            f[at..at + n].copy_from_slice(&bytes);
            format!("source {}", hex(&bytes))
        }
        _ => flip(rng, f),
    }
}

fn flip(rng: &mut Rng, f: &mut [u8]) -> String {
    let n = 1 + rng.below(8);
    let mut bits = Vec::new();
    for _ in 0..n {
        let bit = rng.below(f.len() * 8);
        f[bit / 8] ^= 1 << (bit % 8);
        bits.push(bit);
    }
    format!("flip bits {bits:?}")
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// `BLOCKER_XDP_FUZZ_SEED` (decimal or 0x-hex), else the default.
fn seed() -> u64 {
    let Ok(v) = std::env::var("BLOCKER_XDP_FUZZ_SEED") else {
        return DEFAULT_SEED;
    };
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    }
    .unwrap_or_else(|e| panic!("BLOCKER_XDP_FUZZ_SEED={v}: {e}"))
}

fn frame_count() -> usize {
    std::env::var("BLOCKER_XDP_FUZZ_FRAMES").map_or(DEFAULT_FRAMES, |v| {
        v.parse()
            .unwrap_or_else(|e| panic!("BLOCKER_XDP_FUZZ_FRAMES={v}: {e}"))
    })
}

fn add(total: &mut XdpStats, d: &XdpStats) {
    total.passed += d.passed;
    total.dropped += d.dropped;
    total.dropped_bytes += d.dropped_bytes;
    total.passed_bytes += d.passed_bytes;
    total.allowlisted_bytes += d.allowlisted_bytes;
    total.malformed_bytes += d.malformed_bytes;
    total.allowlisted += d.allowlisted;
    total.malformed += d.malformed;
    total.non_ip += d.non_ip;
    total.expired += d.expired;
    total.zw_syn += d.zw_syn;
    total.zw_syn_dropped += d.zw_syn_dropped;
    total.events += d.events;
    total.events_lost += d.events_lost;
}

#[test]
fn random_and_mutated_frames_keep_the_contract() {
    let (seed, frames) = (seed(), frame_count());
    println!("seed {seed:#x}, {frames} frames (BLOCKER_XDP_FUZZ_SEED / BLOCKER_XDP_FUZZ_FRAMES)");
    let mut rng = Rng::new(seed);

    let mut h = Harness::new();
    let mut model = Model {
        allow: Vec::new(),
        exact: Vec::new(),
        nets: Vec::new(),
        zw_policy: false,
    };
    for &(list, net, life) in RULES {
        let ttl = match life {
            Life::Permanent => None,
            Life::Live => Some(Duration::from_secs(3600)),
            Life::Expired => Some(Duration::from_millis(1)),
        };
        h.rule(list, net, ttl);
        let net = blocker::addr::parse_net(net).unwrap();
        let rule = Rule {
            net,
            live: life != Life::Expired,
        };
        match (list, blocker::addr::is_host(&net)) {
            (List::Allow, _) => model.allow.push(rule),
            (List::Block, true) => model.exact.push(rule),
            (List::Block, false) => model.nets.push(rule),
        }
    }
    // Let the 1 ms rules expire.
    std::thread::sleep(Duration::from_millis(10));
    // Events need a threshold; without one the ring buffer stays quiet and
    // `events` must not move.
    assert_eq!(h.tables.config(config::ZW_THRESHOLD).unwrap(), 0);

    let mut total = XdpStats::default();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut mutations: BTreeMap<&str, usize> = BTreeMap::new();
    let mut actions: BTreeMap<u32, usize> = BTreeMap::new();
    let (mut allowlisted_seen, mut banned_intact_seen) = (0usize, 0usize);
    let before = h.stats();

    for i in 0..frames {
        // The zero-window SYN policy for the second half: then it drops
        // zero-window SYNs nobody allowlisted, and only those.
        if i == frames / 2 {
            let until = blocker::clock::boottime_ns() + 3_600_000_000_000;
            h.tables
                .set_config(config::ZW_DROP_UNTIL_NS, until)
                .unwrap();
            model.zw_policy = true;
        }
        let mut log = Vec::new();
        let (kind, frame) = match rng.below(100) {
            0..20 => ("random", random_bytes(&mut rng)),
            20..40 => ("valid", random_spec(&mut rng).build()),
            _ => {
                let mut f = random_spec(&mut rng).build();
                for _ in 0..1 + rng.below(3) {
                    let name = *rng.pick(MUTATIONS);
                    *mutations.entry(name).or_default() += 1;
                    log.push(mutate(&mut rng, &mut f, name));
                }
                ("mutated", f)
            }
        };
        *kinds.entry(kind).or_default() += 1;
        let (want, want_stats, facts) = model.predict(&frame);
        let (got, got_stats) = h.run_counted(&frame);
        let why = || {
            format!(
                "frame {i} (seed {seed:#x}, {kind}, {log:?}, {} bytes): {}",
                frame.len(),
                hex(&frame)
            )
        };
        assert_ne!(got, XDP_ABORTED, "XDP_ABORTED on {}", why());
        assert!(
            got == XDP_PASS || got == XDP_DROP,
            "action {got} on {}",
            why()
        );
        if facts.allowlisted {
            allowlisted_seen += 1;
            assert_eq!(
                got,
                XDP_PASS,
                "allowlisted source {:?} dropped: {}",
                facts.source,
                why()
            );
        }
        if facts.banned {
            banned_intact_seen += 1;
            assert_eq!(
                got,
                XDP_DROP,
                "banned source {:?} with an intact L3 header passed: {}",
                facts.source,
                why()
            );
        }
        assert_eq!(
            (got, got_stats),
            (want, want_stats),
            "program (left) and model (right) disagree on {}",
            why()
        );
        *actions.entry(got).or_default() += 1;
        add(&mut total, &got_stats);
    }

    let moved = blocker_tests::testrun::diff(&h.stats(), &before);
    assert_eq!(moved, total, "the counters moved by the sum of the frames");
    assert_eq!(
        total.passed + total.dropped,
        frames as u64,
        "every frame is passed or dropped, once"
    );
    assert_eq!(total.events + total.events_lost, 0);
    println!("frames by kind: {kinds:?}");
    println!("mutations applied: {mutations:?}");
    println!(
        "actions: {} dropped, {} passed, 0 aborted",
        actions.get(&XDP_DROP).copied().unwrap_or(0),
        actions.get(&XDP_PASS).copied().unwrap_or(0)
    );
    println!(
        "model: {allowlisted_seen} frames from allowlisted sources (all passed), \
         {banned_intact_seen} from banned sources with intact L3 (all dropped)"
    );
    println!("counters: {total:?}");
    // The run must have exercised every outcome, or it proves little.
    for (name, n) in [
        ("dropped", total.dropped),
        ("allowlisted", total.allowlisted),
        ("malformed", total.malformed),
        ("non_ip", total.non_ip),
        ("expired", total.expired),
        ("zw_syn", total.zw_syn),
        ("zw_syn_dropped", total.zw_syn_dropped),
    ] {
        assert!(n > 0, "no frame counted as {name}: {total:?}");
    }
}

/// The model itself: hand-checked frames, so a model bug cannot make the
/// comparison above agree with a program bug by accident.
#[test]
fn model_agrees_with_hand_checked_frames() {
    let model = Model {
        allow: vec![Rule {
            net: "198.18.0.0/29".parse().unwrap(),
            live: true,
        }],
        exact: vec![Rule {
            net: "198.18.0.2/32".parse().unwrap(),
            live: true,
        }],
        nets: vec![
            Rule {
                net: "198.18.7.0/24".parse().unwrap(),
                live: true,
            },
            Rule {
                net: "198.18.7.0/28".parse().unwrap(),
                live: false,
            },
        ],
        zw_policy: false,
    };
    let act = |f: &[u8]| model.predict(f).0;
    assert_eq!(
        act(&Spec::syn("198.18.0.2", "198.18.0.1").build()),
        XDP_PASS
    );
    assert_eq!(
        act(&Spec::syn("198.18.7.1", "198.18.0.1").build()),
        XDP_DROP
    );
    assert_eq!(
        act(&Spec::syn("198.18.9.1", "198.18.0.1").build()),
        XDP_PASS
    );
    let (_, s, _) = model.predict(&Spec::syn("198.18.7.1", "198.18.0.1").build());
    assert_eq!(s.expired, 1, "the expired /28 was stepped over");
    let (_, s, _) = model.predict(&blocker_tests::frames::arp());
    assert_eq!((s.non_ip, s.passed), (1, 1));
    let mut f = Spec::zero_window_syn("198.18.9.1", "198.18.0.1").build();
    assert_eq!(model.predict(&f).1.zw_syn, 1);
    f.truncate(14 + 20 + 10);
    assert_eq!(model.predict(&f).1.malformed, 1);
    let v4 = Ipv4Addr::new(198, 18, 7, 1);
    let v6 = v4.to_ipv6_mapped();
    let f = Spec::syn(&v6.to_string(), "2001:db8::1").build();
    assert_eq!(
        act(&f),
        XDP_PASS,
        "IPv4 rules do not match a mapped IPv6 source"
    );
}
