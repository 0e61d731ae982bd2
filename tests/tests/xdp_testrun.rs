//! The XDP program on crafted frames through `BPF_PROG_TEST_RUN`: every
//! case asserts the action and how the counters moved.

use std::time::Duration;

use blocker::rule::List;
use blocker_common::{XdpStats, config};
use blocker_tests::{
    frames::{Spec, V6Ext, arp, with_extra_vlan},
    testrun::{Harness, XDP_ABORTED, XDP_DROP, XDP_PASS, pin_to_cpu},
};

const BANNED4: &str = "198.18.0.2";
const OTHER4: &str = "198.18.0.3";
const SERVER4: &str = "198.18.0.1";
const BANNED6: &str = "2001:db8::2";
const OTHER6: &str = "2001:db8::3";
const SERVER6: &str = "2001:db8::1";

fn net(s: &str) -> blocker::addr::IpNet {
    blocker::addr::parse_net(s).unwrap()
}

fn passed(len: usize) -> XdpStats {
    XdpStats {
        passed: 1,
        passed_bytes: len as u64,
        ..XdpStats::default()
    }
}

fn dropped(len: usize) -> XdpStats {
    XdpStats {
        dropped: 1,
        dropped_bytes: len as u64,
        ..XdpStats::default()
    }
}

#[test]
fn exact_ipv4_ban_drops_only_that_source() {
    let mut h = Harness::new();
    h.ban(BANNED4);
    let f = Spec::syn(BANNED4, SERVER4).build();
    assert_eq!(h.run_counted(&f), (XDP_DROP, dropped(f.len())));
    let f = Spec::syn(OTHER4, SERVER4).build();
    assert_eq!(h.run_counted(&f), (XDP_PASS, passed(f.len())));
    // UDP from the banned source is dropped too: bans are per address.
    let f = Spec::syn(BANNED4, SERVER4).udp().build();
    assert_eq!(h.run(&f), XDP_DROP);
}

#[test]
fn exact_ipv6_ban_drops_only_that_source() {
    let mut h = Harness::new();
    h.ban(BANNED6);
    let f = Spec::syn(BANNED6, SERVER6).build();
    assert_eq!(h.run_counted(&f), (XDP_DROP, dropped(f.len())));
    let f = Spec::syn(OTHER6, SERVER6).build();
    assert_eq!(h.run_counted(&f), (XDP_PASS, passed(f.len())));
}

#[test]
fn cidr_bans_match_the_prefix_only() {
    let mut h = Harness::new();
    h.ban("198.18.0.0/30"); // .0 - .3
    h.ban("2001:db8:0:0:1::/80");
    assert_eq!(h.run(&Spec::syn("198.18.0.3", SERVER4).build()), XDP_DROP);
    assert_eq!(h.run(&Spec::syn("198.18.0.4", SERVER4).build()), XDP_PASS);
    assert_eq!(h.run(&Spec::syn("198.18.1.1", SERVER4).build()), XDP_PASS);
    assert_eq!(
        h.run(&Spec::syn("2001:db8::1:0:0:9", SERVER6).build()),
        XDP_DROP
    );
    assert_eq!(
        h.run(&Spec::syn("2001:db8::2:0:0:9", SERVER6).build()),
        XDP_PASS
    );
}

#[test]
fn per_rule_counters_count_drops_and_bytes() {
    let mut h = Harness::new();
    h.ban(BANNED4);
    h.ban("198.18.4.0/24");
    let f = Spec::syn(BANNED4, SERVER4).build();
    let g = Spec::syn("198.18.4.9", SERVER4).build();
    for _ in 0..3 {
        h.run(&f);
    }
    h.run(&g);
    let rules = h.tables.rules(List::Block).unwrap();
    let exact = rules
        .iter()
        .find(|r| r.net.to_string() == "198.18.0.2/32")
        .unwrap();
    assert_eq!(
        (exact.counters.packets, exact.counters.bytes),
        (3, 3 * f.len() as u64)
    );
    let cidr = rules
        .iter()
        .find(|r| r.net.to_string() == "198.18.4.0/24")
        .unwrap();
    assert_eq!(
        (cidr.counters.packets, cidr.counters.bytes),
        (1, g.len() as u64)
    );
}

#[test]
fn allowlist_beats_blocklist() {
    let mut h = Harness::new();
    h.ban(BANNED4);
    h.ban("198.18.0.0/24");
    h.allow("198.18.0.0/29");
    h.ban(BANNED6);
    h.allow("2001:db8::/64");
    let f = Spec::syn(BANNED4, SERVER4).build();
    let (action, d) = h.run_counted(&f);
    assert_eq!(action, XDP_PASS);
    assert_eq!(
        d,
        XdpStats {
            passed: 1,
            passed_bytes: f.len() as u64,
            allowlisted_bytes: f.len() as u64,
            allowlisted: 1,
            ..Default::default()
        }
    );
    // Outside the allowed /29 the /24 ban applies.
    assert_eq!(h.run(&Spec::syn("198.18.0.9", SERVER4).build()), XDP_DROP);
    assert_eq!(h.run(&Spec::syn(BANNED6, SERVER6).build()), XDP_PASS);
    // Allow rules count what they passed.
    let allow = h.tables.rules(List::Allow).unwrap();
    assert_eq!(allow.iter().map(|r| r.counters.packets).sum::<u64>(), 2);
}

#[test]
fn expired_rules_are_ignored_and_counted() {
    let mut h = Harness::new();
    h.rule(List::Block, BANNED4, Some(Duration::from_millis(1)));
    h.rule(List::Block, "2001:db8::/48", Some(Duration::from_millis(1)));
    h.rule(List::Block, OTHER4, Some(Duration::from_secs(3600)));
    std::thread::sleep(Duration::from_millis(5));
    let f = Spec::syn(BANNED4, SERVER4).build();
    let (action, d) = h.run_counted(&f);
    assert_eq!(action, XDP_PASS);
    assert_eq!(
        d,
        XdpStats {
            passed: 1,
            passed_bytes: f.len() as u64,
            expired: 1,
            ..Default::default()
        }
    );
    assert_eq!(
        h.run_counted(&Spec::syn(BANNED6, SERVER6).build())
            .1
            .expired,
        1
    );
    assert_eq!(h.run(&Spec::syn(OTHER4, SERVER4).build()), XDP_DROP);
    // An expired allow rule no longer shields a banned source.
    h.rule(List::Allow, "198.18.0.3", Some(Duration::from_millis(1)));
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(h.run(&Spec::syn(OTHER4, SERVER4).build()), XDP_DROP);
}

/// An LPM lookup returns only the longest matching prefix. Until the daemon
/// garbage-collects an expired rule (or forever, with no daemon running), a
/// longest match that has expired must not hide a live shorter one: found
/// by `xdp_fuzz`, where an expired temporary allow of a /64 inside a
/// permanently allowed /48 let an exact ban drop the allowlisted source.
#[test]
fn expired_narrower_rules_do_not_shadow_live_wider_ones() {
    let mut h = Harness::new();
    let gone = Some(Duration::from_millis(1));
    h.allow("198.18.8.0/24");
    h.rule(List::Allow, "198.18.8.0/28", gone);
    h.rule(List::Allow, "198.18.8.0/30", gone);
    h.ban("198.18.8.2");
    h.allow("2001:db8:8::/48");
    h.rule(List::Allow, "2001:db8:8::/64", gone);
    h.ban("2001:db8:8::5");
    h.ban("198.18.7.0/24");
    h.rule(List::Block, "198.18.7.0/28", gone);
    h.ban("2001:db8:7::/48");
    h.rule(List::Block, "2001:db8:7::/127", gone);
    // An expired /0 with nothing behind it is simply no match.
    h.rule(List::Allow, "0.0.0.0/0", gone);
    std::thread::sleep(Duration::from_millis(5));

    let f = Spec::syn("198.18.8.2", SERVER4).build();
    assert_eq!(
        h.run_counted(&f),
        (
            XDP_PASS,
            XdpStats {
                passed: 1,
                passed_bytes: f.len() as u64,
                allowlisted_bytes: f.len() as u64,
                allowlisted: 1,
                expired: 1,
                ..Default::default()
            }
        ),
        "allowlisted through the /24 behind two expired allows"
    );
    assert_eq!(
        h.run(&Spec::syn("2001:db8:8::5", SERVER6).build()),
        XDP_PASS
    );
    let f = Spec::syn("198.18.7.1", SERVER4).build();
    assert_eq!(
        h.run_counted(&f),
        (
            XDP_DROP,
            XdpStats {
                dropped: 1,
                dropped_bytes: f.len() as u64,
                expired: 2,
                ..Default::default()
            }
        ),
        "banned by the /24 behind the expired /28 (and the expired /0 allow)"
    );
    assert_eq!(
        h.run(&Spec::syn("2001:db8:7::1", SERVER6).build()),
        XDP_DROP
    );
    // Outside every live rule: passed. No block rule names the source, so
    // the allowlist (and its expired /0) is not even looked up.
    let (action, d) = h.run_counted(&Spec::syn("198.18.9.1", SERVER4).build());
    assert_eq!((action, d.expired), (XDP_PASS, 0));
    // A zero-window SYN does consult it: the expired /0 is counted.
    let (action, d) = h.run_counted(&Spec::zero_window_syn("198.18.9.1", SERVER4).build());
    assert_eq!((action, d.expired, d.zw_syn), (XDP_PASS, 1, 1));
    // The live rules' counters saw the frames, the expired ones did not.
    let allow = h.tables.rules(List::Allow).unwrap();
    let hits = |net: &str| {
        allow
            .iter()
            .find(|r| r.net.to_string() == net)
            .map(|r| r.counters.packets)
    };
    assert_eq!(hits("198.18.8.0/24"), Some(1));
    assert_eq!(hits("198.18.8.0/28"), Some(0));
}

#[test]
fn vlan_and_qinq_are_parsed() {
    let mut h = Harness::new();
    h.ban(BANNED4);
    h.ban(BANNED6);
    for vlans in [1, 2] {
        let f = Spec::syn(BANNED4, SERVER4).vlans(vlans).build();
        assert_eq!(
            h.run_counted(&f),
            (XDP_DROP, dropped(f.len())),
            "{vlans} tags"
        );
        let f = Spec::syn(BANNED6, SERVER6).vlans(vlans).build();
        assert_eq!(h.run(&f), XDP_DROP, "{vlans} tags v6");
        let f = Spec::zero_window_syn(OTHER4, SERVER4).vlans(vlans).build();
        assert_eq!(h.run_counted(&f).1.zw_syn, 1, "{vlans} tags zero-window");
    }
    // Three tags are more than the program parses: passed, counted malformed.
    let f = with_extra_vlan(&Spec::syn(BANNED4, SERVER4).vlans(2).build());
    let (action, d) = h.run_counted(&f);
    assert_eq!(action, XDP_PASS);
    assert_eq!(
        d,
        XdpStats {
            passed: 1,
            passed_bytes: f.len() as u64,
            malformed_bytes: f.len() as u64,
            malformed: 1,
            ..Default::default()
        }
    );
}

#[test]
fn ipv4_options_are_skipped() {
    let mut h = Harness::new();
    h.ban(BANNED4);
    for words in 1..=10usize {
        // NOP options padded to `words` 32-bit words (IHL 6..15).
        let opts = vec![1u8; words * 4];
        let f = Spec::syn(BANNED4, SERVER4).ipv4_options(&opts).build();
        assert_eq!(h.run(&f), XDP_DROP, "IHL {}", 5 + words);
        let f = Spec::zero_window_syn(OTHER4, SERVER4)
            .ipv4_options(&opts)
            .build();
        let (action, d) = h.run_counted(&f);
        assert_eq!(action, XDP_PASS);
        assert_eq!(d.zw_syn, 1, "zero-window SYN after {words} option words");
    }
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let mut h = Harness::new();
    h.ban(BANNED6);
    let all = V6Ext {
        hop_by_hop: true,
        routing: true,
        destination_options: true,
        fragment: Some(0),
    };
    let combos = [
        V6Ext {
            hop_by_hop: true,
            ..Default::default()
        },
        V6Ext {
            routing: true,
            ..Default::default()
        },
        V6Ext {
            destination_options: true,
            ..Default::default()
        },
        V6Ext {
            fragment: Some(0),
            ..Default::default()
        },
        all,
    ];
    for ext in combos {
        let f = Spec::zero_window_syn(OTHER6, SERVER6).v6_ext(ext).build();
        let (action, d) = h.run_counted(&f);
        assert_eq!((action, d.zw_syn), (XDP_PASS, 1), "{ext:?}");
        let f = Spec::syn(BANNED6, SERVER6).v6_ext(ext).build();
        assert_eq!(h.run(&f), XDP_DROP, "{ext:?}");
    }
    // A non-first fragment has no TCP header: nothing to count.
    let f = Spec::zero_window_syn(OTHER6, SERVER6)
        .v6_ext(V6Ext {
            fragment: Some(100),
            ..Default::default()
        })
        .build();
    assert_eq!(h.run_counted(&f), (XDP_PASS, passed(f.len())));
}

#[test]
fn non_first_ipv4_fragments_are_not_parsed_as_tcp() {
    let h = Harness::new();
    let mut spec = Spec::zero_window_syn(OTHER4, SERVER4);
    spec.ipv4_fragment_offset = 100;
    let f = spec.build();
    assert_eq!(h.run_counted(&f), (XDP_PASS, passed(f.len())));
}

#[test]
fn non_ip_frames_pass_and_are_counted() {
    let h = Harness::new();
    let (action, d) = h.run_counted(&arp());
    assert_eq!(action, XDP_PASS);
    assert_eq!(
        d,
        XdpStats {
            passed: 1,
            passed_bytes: arp().len() as u64,
            non_ip: 1,
            ..Default::default()
        }
    );
}

#[test]
fn invalid_ip_headers_pass_as_malformed() {
    let mut h = Harness::new();
    h.ban(BANNED4);
    let good = Spec::syn(BANNED4, SERVER4).build();
    // IHL below 5.
    let mut f = good.clone();
    f[14] = 0x44;
    assert_eq!(
        h.run_counted(&f),
        (
            XDP_PASS,
            XdpStats {
                passed: 1,
                passed_bytes: f.len() as u64,
                malformed_bytes: f.len() as u64,
                malformed: 1,
                ..Default::default()
            }
        )
    );
    // IPv4 ethertype but version 6 in the header.
    let mut f = good.clone();
    f[14] = 0x65;
    assert_eq!(h.run_counted(&f).1.malformed, 1);
    // IHL 15 on a frame too short for 60 header bytes: the source is known,
    // so the ban still applies.
    let mut f = good;
    f[14] = 0x4f;
    f.truncate(14 + 40);
    assert_eq!(h.run(&f), XDP_DROP);
}

/// `BPF_PROG_TEST_RUN` refuses XDP input shorter than an Ethernet header
/// (`bpf_test_init`: size < ETH_HLEN is EINVAL), so truncation starts at 14.
const MIN_TEST_RUN_LEN: usize = 14;

#[test]
fn truncated_at_every_length_never_aborts() {
    let mut h = Harness::new();
    h.ban(BANNED4);
    h.ban(BANNED6);
    let cases = [
        (
            "v4 zero-window SYN",
            Spec::zero_window_syn(OTHER4, SERVER4).build(),
            14 + 20,
            false,
        ),
        (
            "v4 banned",
            Spec::syn(BANNED4, SERVER4).build(),
            14 + 20,
            true,
        ),
        (
            "v4 QinQ banned",
            Spec::syn(BANNED4, SERVER4).vlans(2).build(),
            22 + 20,
            true,
        ),
        (
            "v6 banned",
            Spec::syn(BANNED6, SERVER6).build(),
            14 + 40,
            true,
        ),
        (
            "v6 exts zero-window",
            Spec::zero_window_syn(OTHER6, SERVER6)
                .v6_ext(V6Ext {
                    hop_by_hop: true,
                    routing: true,
                    destination_options: true,
                    fragment: Some(0),
                })
                .build(),
            14 + 40,
            false,
        ),
    ];
    for (name, frame, ip_end, banned) in cases {
        for len in MIN_TEST_RUN_LEN..frame.len() {
            let cut = &frame[..len];
            let (action, d) = h.run_counted(cut);
            assert_ne!(action, XDP_ABORTED, "{name} cut at {len}");
            if len < ip_end {
                // The source address is not complete: pass, malformed.
                assert_eq!(
                    (action, d),
                    (
                        XDP_PASS,
                        XdpStats {
                            passed: 1,
                            passed_bytes: len as u64,
                            malformed_bytes: len as u64,
                            malformed: 1,
                            ..Default::default()
                        }
                    ),
                    "{name} cut at {len}"
                );
            } else if banned {
                // A truncated transport header cannot shield a banned source.
                assert_eq!(action, XDP_DROP, "{name} cut at {len}");
            } else {
                // Cut inside the extension headers or TCP: passed as
                // malformed, never counted as a zero-window SYN.
                assert_eq!(
                    (action, d),
                    (
                        XDP_PASS,
                        XdpStats {
                            passed: 1,
                            passed_bytes: len as u64,
                            malformed_bytes: len as u64,
                            malformed: 1,
                            ..Default::default()
                        }
                    ),
                    "{name} cut at {len}"
                );
            }
        }
        // And whole, the frame does what it should.
        let (action, d) = h.run_counted(&frame);
        assert_eq!(
            action,
            if banned { XDP_DROP } else { XDP_PASS },
            "{name} whole"
        );
        assert_eq!(d.malformed, 0, "{name} whole");
    }
}

#[test]
fn zero_window_syns_are_counted_per_source() {
    let h = Harness::new();
    let zw4 = Spec::zero_window_syn(OTHER4, SERVER4).build();
    let zw6 = Spec::zero_window_syn(OTHER6, SERVER6).build();
    for _ in 0..3 {
        let (action, d) = h.run_counted(&zw4);
        assert_eq!((action, d.zw_syn), (XDP_PASS, 1));
    }
    assert_eq!(h.run_counted(&zw6).1.zw_syn, 1);
    // Not counted: SYN-ACK with window 0, SYN with a window, plain ACK.
    for f in [
        Spec::zero_window_syn(OTHER4, SERVER4)
            .flags(true, true)
            .build(),
        Spec::syn(OTHER4, SERVER4).build(),
        Spec::zero_window_syn(OTHER4, SERVER4)
            .flags(false, true)
            .build(),
        Spec::zero_window_syn(OTHER6, SERVER6)
            .flags(true, true)
            .build(),
    ] {
        assert_eq!(h.run_counted(&f), (XDP_PASS, passed(f.len())));
    }
    let mut sources = h.tables.zero_window().unwrap();
    sources.sort_by_key(|(a, _)| *a);
    assert_eq!(sources.len(), 2);
    assert_eq!(sources[0].0.to_string(), OTHER4);
    assert_eq!(sources[0].1.count, 3);
    assert!(sources[0].1.first_seen_ns <= sources[0].1.last_seen_ns);
    assert_eq!(sources[1].0.to_string(), OTHER6);
    assert_eq!(sources[1].1.count, 1);
}

/// The per-source timestamps come from the XDP program's coarse clock (the
/// exact clock read once per tick and CPU): they must still follow
/// CLOCK_BOOTTIME, to within a tick, and move on between SYNs a tick apart.
#[test]
fn zero_window_timestamps_follow_the_boot_clock() {
    // Slack for the coarse clock: two ticks at HZ=100 (the slowest common
    // setting), and scheduling delays on a loaded machine.
    const SLACK_NS: u64 = 50_000_000;
    let h = Harness::new();
    let zw = Spec::zero_window_syn(OTHER4, SERVER4).build();
    let before = blocker::clock::boottime_ns();
    assert_eq!(h.run(&zw), XDP_PASS);
    let between = blocker::clock::boottime_ns();
    // Far more than a tick at any HZ, so the second SYN sees a later jiffy.
    std::thread::sleep(Duration::from_millis(200));
    let mid = blocker::clock::boottime_ns();
    assert_eq!(h.run(&zw), XDP_PASS);
    let after = blocker::clock::boottime_ns();
    let sources = h.tables.zero_window().unwrap();
    assert_eq!(sources.len(), 1);
    let e = sources[0].1;
    assert_eq!(e.count, 2);
    assert!(
        e.first_seen_ns + SLACK_NS >= before && e.first_seen_ns <= between,
        "first_seen {} outside [{before} - slack, {between}]",
        e.first_seen_ns
    );
    assert!(
        e.last_seen_ns + SLACK_NS >= mid && e.last_seen_ns <= after,
        "last_seen {} outside [{mid} - slack, {after}]",
        e.last_seen_ns
    );
}

#[test]
fn zero_window_policy_switch_drops_until_it_expires() {
    let mut h = Harness::new();
    let zw = Spec::zero_window_syn(OTHER4, SERVER4).build();
    let normal = Spec::syn(OTHER4, SERVER4).build();
    let now = blocker::clock::boottime_ns();
    h.tables
        .set_config(config::ZW_DROP_UNTIL_NS, now + 3_600_000_000_000)
        .unwrap();
    let (action, d) = h.run_counted(&zw);
    assert_eq!(action, XDP_DROP);
    assert_eq!((d.zw_syn, d.zw_syn_dropped, d.dropped), (1, 1, 1));
    assert_eq!(
        h.run(&normal),
        XDP_PASS,
        "only zero-window SYNs are dropped"
    );
    // Policy first: while it drops, the per-source table is not touched, so
    // a spoofed flood costs no LRU insert (or eviction) per frame.
    assert!(
        h.tables.zero_window().unwrap().is_empty(),
        "no per-source accounting while the policy drops"
    );
    // Allowlisted sources are never dropped by the policy, nor counted.
    h.allow(OTHER4);
    let (action, d) = h.run_counted(&zw);
    assert_eq!(action, XDP_PASS);
    assert_eq!((d.allowlisted, d.zw_syn, d.zw_syn_dropped), (1, 0, 0));
    h.tables.remove(List::Allow, net(OTHER4)).unwrap();
    // Expired switch: back to counting only.
    h.tables
        .set_config(config::ZW_DROP_UNTIL_NS, now - 1)
        .unwrap();
    assert_eq!(h.run(&zw), XDP_PASS);
}

#[test]
fn zero_window_threshold_sends_one_event() {
    let mut h = Harness::new();
    let mut ring =
        aya::maps::RingBuf::try_from(h.ebpf.take_map(blocker_common::maps::XDP_EVENTS).unwrap())
            .unwrap();
    h.tables.set_config(config::ZW_THRESHOLD, 3).unwrap();
    let zw = Spec::zero_window_syn(OTHER6, SERVER6).build();
    let mut events = 0;
    for i in 1..=10 {
        let d = h.run_counted(&zw).1;
        events += d.events;
        assert_eq!(
            d.events,
            u64::from(i == 3),
            "event only when crossing the threshold (SYN {i})"
        );
    }
    assert_eq!(events, 1);
    let item = ring.next().expect("one event in the ring buffer");
    assert_eq!(item.len(), size_of::<blocker_common::Event>());
    // SAFETY: the kernel wrote an Event; read it unaligned.
    let ev: blocker_common::Event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
    drop(item);
    assert_eq!(ev.kind, blocker_common::event_kind::ZERO_WINDOW_SYN);
    assert_eq!(ev.family, blocker_common::AF_INET6);
    assert_eq!(ev.count, 3);
    assert_eq!(
        blocker::addr::from_event(ev.family, ev.peer_addr)
            .unwrap()
            .to_string(),
        OTHER6
    );
    assert!(ring.next().is_none(), "exactly one event");
}

/// A spoofed flood of threshold events fills XDP's own ring and nothing
/// else: the treason probes' ring (confirmed evidence) stays empty for
/// them, however long userspace takes to drain (issue 10).
#[test]
fn a_flood_of_zero_window_events_fills_only_its_own_ring() {
    let mut h = Harness::new();
    let mut probe_ring =
        aya::maps::RingBuf::try_from(h.ebpf.take_map(blocker_common::maps::EVENTS).unwrap())
            .unwrap();
    // Every new source crosses a threshold of 1 at once: one event each.
    h.tables.set_config(config::ZW_THRESHOLD, 1).unwrap();
    let mut lost = 0;
    let mut sent = 0;
    // 256 KiB of ring fills after about 3,600 events; nothing drains it.
    for i in 0..8000u32 {
        let src = format!("198.18.{}.{}", 64 + i / 250, i % 250 + 1);
        let d = h
            .run_counted(&Spec::zero_window_syn(&src, SERVER4).build())
            .1;
        sent += d.events;
        lost += d.events_lost;
        if lost > 0 {
            break;
        }
    }
    assert!(lost > 0, "the XDP ring never filled ({sent} events sent)");
    assert!(
        sent > 1000,
        "only {sent} events fit before the ring was full"
    );
    assert!(
        probe_ring.next().is_none(),
        "an XDP event reached the probes' ring"
    );
}

#[test]
fn empty_table_flags_follow_inserts_and_removals() {
    let mut h = Harness::new();
    assert_eq!(h.tables.config(config::BLOCK_V4_ACTIVE).unwrap(), 0);
    h.ban(BANNED4);
    h.ban(OTHER4);
    assert_eq!(h.tables.config(config::BLOCK_V4_ACTIVE).unwrap(), 1);
    h.tables.remove(List::Block, net(BANNED4)).unwrap();
    // Still one rule: the table must stay active and keep dropping.
    assert_eq!(h.tables.config(config::BLOCK_V4_ACTIVE).unwrap(), 1);
    assert_eq!(h.run(&Spec::syn(OTHER4, SERVER4).build()), XDP_DROP);
    h.tables.remove(List::Block, net(OTHER4)).unwrap();
    assert_eq!(h.tables.config(config::BLOCK_V4_ACTIVE).unwrap(), 0);
    assert_eq!(h.run(&Spec::syn(OTHER4, SERVER4).build()), XDP_PASS);
}

#[test]
fn re_banning_keeps_counters_and_updates_expiry() {
    let mut h = Harness::new();
    h.rule(List::Block, "198.18.8.0/24", Some(Duration::from_secs(60)));
    h.run(&Spec::syn("198.18.8.1", SERVER4).build());
    let (_, replaced) = h
        .tables
        .upsert(
            List::Block,
            net("198.18.8.0/24"),
            None,
            blocker_common::reason::MANUAL,
        )
        .unwrap();
    assert!(replaced);
    // A covering rule is not "the same rule": a /25 inside is new.
    let (_, replaced) = h
        .tables
        .upsert(
            List::Block,
            net("198.18.8.0/25"),
            None,
            blocker_common::reason::MANUAL,
        )
        .unwrap();
    assert!(!replaced);
    let rules = h.tables.rules(List::Block).unwrap();
    let r24 = rules.iter().find(|r| r.net.prefix_len() == 24).unwrap();
    assert_eq!((r24.counters.packets, r24.entry.expires_at_ns), (1, 0));
    let r25 = rules.iter().find(|r| r.net.prefix_len() == 25).unwrap();
    assert_eq!(r25.counters.packets, 0);
}

fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The drop and allow paths write nothing another CPU reads: each CPU counts
/// in its own slot of RULE_COUNTERS, userspace sums them, and the rule value
/// itself (which every CPU reads) is never written by the program.
#[test]
fn rule_counters_are_per_cpu_and_the_rule_value_stays_unwritten() {
    assert!(
        online_cpus() >= 2,
        "this test needs two CPUs to run a frame on each"
    );
    let mut h = Harness::new();
    h.ban(BANNED4);
    h.ban("2001:db8:5::/48");
    h.allow("198.18.0.4/30");
    h.ban("198.18.0.4");
    let before = h
        .tables
        .matching(List::Block, BANNED4.parse().unwrap())
        .unwrap()
        .unwrap();
    let f = Spec::syn(BANNED4, SERVER4).build();
    let g = Spec::syn("2001:db8:5::9", SERVER6).build();
    let a = Spec::syn("198.18.0.4", SERVER4).build();
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_to_cpu(0);
            assert_eq!(h.run(&g), XDP_DROP);
            assert_eq!(h.run(&a), XDP_PASS);
            // Frames matching no rule pass without touching a counter.
            assert_eq!(h.run(&Spec::syn(OTHER6, SERVER6).build()), XDP_PASS);
        });
    });
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_to_cpu(1);
            for _ in 0..2 {
                assert_eq!(h.run(&f), XDP_DROP);
                assert_eq!(h.run(&g), XDP_DROP);
            }
        });
    });
    let after = h
        .tables
        .matching(List::Block, BANNED4.parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(before, after, "the rule value is read-only to the program");
    let per_cpu = h.tables.counters_per_cpu(&after).unwrap();
    assert_eq!(
        (per_cpu[0].packets, per_cpu[1].packets),
        (0, 2),
        "counted on CPU 1 only"
    );
    let rules = h.tables.rules(List::Block).unwrap();
    let count = |n: &str| {
        let r = rules.iter().find(|r| r.net.to_string() == n).unwrap();
        (r.counters.packets, r.counters.bytes)
    };
    assert_eq!(count("198.18.0.2/32"), (2, 2 * f.len() as u64));
    // Summed over both CPUs.
    assert_eq!(count("2001:db8:5::/48"), (3, 3 * g.len() as u64));
    let cidr = rules
        .iter()
        .find(|r| r.net.to_string() == "2001:db8:5::/48")
        .unwrap();
    let per_cpu = h.tables.counters_per_cpu(&cidr.entry).unwrap();
    assert_eq!((per_cpu[0].packets, per_cpu[1].packets), (1, 2));
    // The allowlist's rescue counted on the allow rule, not the ban.
    assert_eq!(count("198.18.0.4/32"), (0, 0));
    let allow = h.tables.rules(List::Allow).unwrap();
    assert_eq!(allow[0].counters.packets, 1);
}

/// The allowlist is looked up only when its answer matters: for a source a
/// block rule names, and for zero-window SYNs. It still always wins.
#[test]
fn allowlist_is_consulted_only_when_it_can_change_the_verdict() {
    let mut h = Harness::new();
    h.allow("198.18.0.0/29");
    h.allow("2001:db8::/64");
    let plain = Spec::syn(OTHER4, SERVER4).build();
    assert_eq!(h.run_counted(&plain), (XDP_PASS, passed(plain.len())));
    let plain6 = Spec::syn(OTHER6, SERVER6).build();
    assert_eq!(h.run_counted(&plain6), (XDP_PASS, passed(plain6.len())));
    assert_eq!(
        h.tables.rules(List::Allow).unwrap()[0].counters.packets,
        0,
        "a frame no block rule names is not an allowlist match"
    );
    h.ban(OTHER4);
    h.ban("2001:db8::/32");
    let (action, d) = h.run_counted(&plain);
    assert_eq!((action, d.allowlisted, d.dropped), (XDP_PASS, 1, 0));
    let (action, d) = h.run_counted(&plain6);
    assert_eq!((action, d.allowlisted, d.dropped), (XDP_PASS, 1, 0));
    // Outside the allowed /64 the /32 ban drops.
    assert_eq!(
        h.run(&Spec::syn("2001:db8:1::3", SERVER6).build()),
        XDP_DROP
    );
    let zw = Spec::zero_window_syn("198.18.0.5", SERVER4).build();
    let (action, d) = h.run_counted(&zw);
    assert_eq!((action, d.allowlisted, d.zw_syn), (XDP_PASS, 1, 0));
    assert!(h.tables.zero_window().unwrap().is_empty());
}

/// A new rule for an address that had one starts counting from zero; a
/// replaced one (re-ban) keeps its counts (`re_banning_keeps_counters...`).
#[test]
fn a_rule_created_again_counts_from_zero() {
    let mut h = Harness::new();
    h.ban(BANNED4);
    let f = Spec::syn(BANNED4, SERVER4).build();
    h.run(&f);
    h.run(&f);
    let packets = |h: &Harness| h.tables.rules(List::Block).unwrap()[0].counters.packets;
    assert_eq!(packets(&h), 2);
    assert!(h.tables.remove(List::Block, net(BANNED4)).unwrap());
    h.ban(BANNED4);
    assert_eq!(packets(&h), 0);
    h.run(&f);
    assert_eq!(packets(&h), 1);
}

/// The zero-window LRU maps keep per-CPU lists, so evictions under a spoofed
/// flood take no lock shared by all CPUs.
#[test]
fn lru_maps_use_per_cpu_lists() {
    let _h = Harness::new();
    let obj = blocker::kernel::object::bytes().unwrap();
    let obj = aya_obj::Object::parse(obj).unwrap();
    for name in [
        blocker_common::maps::ZW_SYN_V4,
        blocker_common::maps::ZW_SYN_V6,
    ] {
        // BPF_F_NO_COMMON_LRU (linux/bpf.h).
        assert_eq!(obj.maps[name].map_flags() & 2, 2, "{name}");
    }
}
