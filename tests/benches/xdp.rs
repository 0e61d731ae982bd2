//! Per-packet cost of the XDP program, measured with `BPF_PROG_TEST_RUN`
//! (the kernel times `repeat` runs on one CPU), side by side in the same
//! process and rounds with an XDP program that only returns XDP_PASS and
//! with xdp-filter (xdp-tools) in its address-only mode, so ratios hold on a
//! noisy shared machine.
//!
//! Parts (`BENCH_PART`):
//! - `xdp`: blocker against xdp-filter at 1, 1k and 10k exact bans per family
//!   (xdp-filter holds at most 10k), drop and pass, IPv4 and IPv6; the
//!   zero-window SYN accounting against blocker's own pass; the same dropped
//!   frame on every CPU at once against one CPU alone.
//! - `scale`: blocker at 1 to 1M rules, exact and CIDR, v4 and v6, with
//!   xdp-filter beside it where comparable (exact, up to its 10k).
//!
//! Run with `cargo xtask bench`. Environment: `BENCH_REPEAT` (runs per
//! measurement), `BENCH_ROUNDS`, `BENCH_SMOKE=1` (tiny tables, a few runs:
//! the smoke inside `cargo xtask test`), `BENCH_JSON` (write results there).
//!
//! Table filler addresses for more than the 131,072 IPv4 hosts of
//! 198.18.0.0/15 come from 240.0.0.0/4 (reserved, RFC 1112 §4): they are
//! map keys in private, unpinned maps and never appear in a frame.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Instant,
};

use blocker::{addr::IpNet, config::MapsConfig, rule::List};
use blocker_common::{RuleEntry, config, programs, reason};
use blocker_tests::{
    frames::Spec,
    testrun::{Harness, XDP_DROP, XDP_PASS, pin_to_cpu, test_run},
    xdp_filter::{self, XdpFilter},
};
use serde_json::json;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Opts {
    repeat: u32,
    rounds: usize,
    smoke: bool,
}

/// The `i`-th filler IPv4 host (never 198.18.0.0/15, where the frames are).
fn filler_v4(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xf000_0000 | i)
}

/// The `i`-th filler IPv4 /24.
fn filler_v4_net(i: u32) -> IpNet {
    IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0xf000_0000 | (i << 8)), 24).unwrap())
}

/// The `i`-th filler IPv6 host, in 2001:db8:f::/48.
fn filler_v6(i: u32) -> Ipv6Addr {
    Ipv6Addr::from(0x2001_0db8_000f_0000_0000_0000_0000_0000u128 | u128::from(i))
}

/// The `i`-th filler IPv6 /64, in 2001:db8:e000::/35.
fn filler_v6_net(i: u32) -> IpNet {
    let a = 0x2001_0db8_e000_0000_0000_0000_0000_0000u128 | (u128::from(i) << 64);
    IpNet::V6(ipnet::Ipv6Net::new(Ipv6Addr::from(a), 64).unwrap())
}

fn host(a: IpAddr) -> IpNet {
    blocker::addr::host(a)
}

/// Writes a permanent block rule directly (one syscall: filling a million
/// entries through the upsert path would measure the CLI, not the filter).
fn fill(h: &mut Harness, net: IpNet) {
    let entry = RuleEntry {
        added_at_ns: 1,
        reason: reason::IMPORT,
        ..RuleEntry::default()
    };
    h.tables
        .insert(List::Block, net, entry)
        .unwrap_or_else(|e| panic!("fill {net}: {e}"));
}

const SERVER4: &str = "198.18.0.1";
const SERVER6: &str = "2001:db8::1";

fn main() {
    let smoke = std::env::var("BENCH_SMOKE").is_ok_and(|v| v == "1");
    let opts = Opts {
        repeat: env_num("BENCH_REPEAT", if smoke { 1000 } else { 1_000_000 }) as u32,
        rounds: env_num("BENCH_ROUNDS", if smoke { 1 } else { 5 }) as usize,
        smoke,
    };
    let part = std::env::var("BENCH_PART").unwrap_or_else(|_| "xdp".into());
    let doc = match part.as_str() {
        "xdp" => part_xdp(&opts),
        "scale" => part_scale(&opts),
        other => panic!("BENCH_PART={other}: expected xdp or scale"),
    };
    if let Ok(path) = std::env::var("BENCH_JSON") {
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap())
            .expect("write BENCH_JSON");
        println!("results written to {path}");
    }
}

/// One measured case: a program and a frame with its expected action.
struct Case<'a> {
    name: String,
    group: &'static str,
    size: usize,
    prog: &'a aya::programs::Xdp,
    frame: Vec<u8>,
    expect: u32,
}

/// Runs every case once per round, interleaved, with the baseline first in
/// each round; medians over rounds of ns/packet and of the ratio to the
/// baseline.
fn measure(opts: &Opts, baseline: &aya::programs::Xdp, cases: &[Case<'_>]) -> Vec<(f64, f64)> {
    let base_frame = Spec::syn("198.18.0.3", SERVER4).build();
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut ratio: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..opts.rounds {
        eprint!("\r  round {}/{}", round + 1, opts.rounds);
        let (_, base) = test_run(baseline, &base_frame, opts.repeat);
        let base = base.as_nanos() as f64;
        for (i, c) in cases.iter().enumerate() {
            let (action, d) = test_run(c.prog, &c.frame, opts.repeat);
            assert_eq!(action, c.expect, "{}", c.name);
            let t = d.as_nanos() as f64;
            ns[i].push(t);
            ratio[i].push(t / base.max(1.0));
        }
    }
    eprintln!();
    ns.iter_mut()
        .zip(ratio.iter_mut())
        .map(|(n, r)| (median(n), median(r)))
        .collect()
}

fn part_xdp(opts: &Opts) -> serde_json::Value {
    let caps = MapsConfig::default();
    let baseline = Harness::with(programs::XDP_BASELINE, &caps);
    let sizes: &[usize] = if opts.smoke {
        &[1, 10]
    } else {
        &[1, 1_000, xdp_filter::CAPACITY]
    };
    let banned4: IpAddr = "198.18.0.2".parse().unwrap();
    let banned6: IpAddr = "2001:db8::2".parse().unwrap();
    let mut blockers = Vec::new();
    let mut peers = Vec::new();
    for &n in sizes {
        eprintln!("  filling blocker and xdp-filter with {n} IPv4 + {n} IPv6 bans");
        let mut h = Harness::new();
        h.tables.set_config(config::ZW_THRESHOLD, u64::MAX).unwrap();
        fill(&mut h, host(banned4));
        fill(&mut h, host(banned6));
        for i in 1..n as u32 {
            fill(&mut h, host(IpAddr::V4(filler_v4(i))));
            fill(&mut h, host(IpAddr::V6(filler_v6(i))));
        }
        blockers.push(h);
        peers.push(n);
    }
    // xdp-filter pins globally: one instance at a time, refilled per size.
    let mut results = Vec::new();
    let frames = [
        (
            "drop v4",
            Spec::syn("198.18.0.2", SERVER4).build(),
            XDP_DROP,
        ),
        (
            "pass v4",
            Spec::syn("198.18.0.3", SERVER4).build(),
            XDP_PASS,
        ),
        (
            "drop v6",
            Spec::syn("2001:db8::2", SERVER6).build(),
            XDP_DROP,
        ),
        (
            "pass v6",
            Spec::syn("2001:db8::3", SERVER6).build(),
            XDP_PASS,
        ),
    ];
    let zw = Spec::zero_window_syn("198.18.0.4", SERVER4).build();
    let mut scaling = Vec::new();
    for (k, &n) in peers.iter().enumerate() {
        let mut xf = XdpFilter::load();
        xf.deny_source(banned4);
        xf.deny_source(banned6);
        for i in 1..n as u32 {
            xf.deny_source(IpAddr::V4(filler_v4(i)));
            xf.deny_source(IpAddr::V6(filler_v6(i)));
        }
        let h = &blockers[k];
        let mut cases = Vec::new();
        for (name, frame, expect) in &frames {
            cases.push(Case {
                name: format!("blocker {name}, {n} rules"),
                group: name,
                size: n,
                prog: h.prog(),
                frame: frame.clone(),
                expect: *expect,
            });
            cases.push(Case {
                name: format!("xdp-filter {name}, {n} rules"),
                group: name,
                size: n,
                prog: &xf.prog,
                frame: frame.clone(),
                expect: *expect,
            });
        }
        cases.push(Case {
            name: format!("blocker zero-window SYN counted, {n} rules"),
            group: "zero-window SYN",
            size: n,
            prog: h.prog(),
            frame: zw.clone(),
            expect: XDP_PASS,
        });
        cases.push(Case {
            name: format!("xdp-filter zero-window SYN, {n} rules"),
            group: "zero-window SYN",
            size: n,
            prog: &xf.prog,
            frame: zw.clone(),
            expect: XDP_PASS,
        });
        eprintln!("  measuring {} cases at {n} rules", cases.len());
        let m = measure(opts, baseline.prog(), &cases);
        for (c, (ns, r)) in cases.iter().zip(m) {
            println!("{:<52} {ns:>8.1} ns {r:>6.2}x baseline", c.name);
            results.push(json!({
                "case": c.name, "group": c.group, "rules": c.size,
                "program": if c.name.starts_with("blocker") { "blocker" } else { "xdp-filter" },
                "ns_per_packet": ns, "ratio_to_baseline": r,
            }));
        }
        if n == *peers.last().unwrap() {
            let drop4 = &frames[0].1;
            scaling.push(cpu_scaling(opts, "blocker", h.prog(), drop4));
            scaling.push(cpu_scaling(opts, "xdp-filter", &xf.prog, drop4));
        }
    }
    let (_, base) = test_run(
        baseline.prog(),
        &Spec::syn("198.18.0.3", SERVER4).build(),
        opts.repeat,
    );
    json!({
        "part": "xdp", "repeat": opts.repeat, "rounds": opts.rounds,
        "baseline_ns": base.as_nanos() as f64,
        "cases": results, "cpu_scaling": scaling,
    })
}

/// The same frame on one CPU alone, then on every CPU at once; ns/packet of
/// each (medians over rounds).
fn cpu_scaling(
    opts: &Opts,
    name: &str,
    prog: &aya::programs::Xdp,
    frame: &[u8],
) -> serde_json::Value {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "the CPU scaling case needs two CPUs");
    let (mut alone, mut together) = (Vec::new(), Vec::new());
    for _ in 0..opts.rounds {
        let t = std::thread::scope(|s| {
            s.spawn(|| {
                pin_to_cpu(0);
                test_run(prog, frame, opts.repeat).1.as_nanos() as f64
            })
            .join()
            .unwrap()
        });
        alone.push(t);
        let start = std::sync::Barrier::new(cpus);
        let per_cpu: Vec<f64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..cpus)
                .map(|cpu| {
                    let start = &start;
                    s.spawn(move || {
                        pin_to_cpu(cpu);
                        start.wait();
                        test_run(prog, frame, opts.repeat).1.as_nanos() as f64
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        together.push(per_cpu.iter().sum::<f64>() / per_cpu.len() as f64);
    }
    let (a, t) = (median(&mut alone), median(&mut together));
    println!(
        "{name:<12} drop v4 on 1 CPU {a:>7.1} ns, on {cpus} CPUs at once {t:>7.1} ns ({:.2}x)",
        t / a
    );
    json!({ "program": name, "cpus": cpus, "alone_ns": a, "together_ns": t, "ratio": t / a })
}

fn part_scale(opts: &Opts) -> serde_json::Value {
    let sizes: Vec<usize> = if opts.smoke {
        vec![1, 100]
    } else {
        vec![1, 1_000, xdp_filter::CAPACITY, 100_000, 1_000_000]
    };
    let top = *sizes.last().unwrap() as u32;
    let caps = MapsConfig {
        block_v4: top + 16,
        block_v6: top + 16,
        block_net_v4: top + 16,
        block_net_v6: top + 16,
        ..MapsConfig::default()
    };
    let baseline = Harness::with(programs::XDP_BASELINE, &caps);
    type Filler = fn(u32) -> IpNet;
    let kinds: [(&str, Filler, &str, &str, &str); 4] = [
        (
            "exact v4",
            |i| host(IpAddr::V4(filler_v4(i))),
            "198.18.0.2",
            "198.18.0.3",
            SERVER4,
        ),
        (
            "exact v6",
            |i| host(IpAddr::V6(filler_v6(i))),
            "2001:db8::2",
            "2001:db8::3",
            SERVER6,
        ),
        (
            "CIDR v4",
            filler_v4_net,
            "198.18.0.2",
            "198.18.1.3",
            SERVER4,
        ),
        (
            "CIDR v6",
            filler_v6_net,
            "2001:db8::2",
            "2001:db8:1::3",
            SERVER6,
        ),
    ];
    let mut results = Vec::new();
    for (kind, filler, banned, other, server) in kinds {
        let mut h = Harness::with(programs::XDP, &caps);
        // The banned source's own rule: exact, or the /24 (/64) around it.
        let own = if kind.starts_with("exact") {
            host(banned.parse().unwrap())
        } else if kind.ends_with("v4") {
            blocker::addr::parse_net("198.18.0.0/24").unwrap()
        } else {
            blocker::addr::parse_net("2001:db8::/64").unwrap()
        };
        fill(&mut h, own);
        let mut have = 1usize;
        for &n in &sizes {
            let t = Instant::now();
            while have < n {
                fill(&mut h, filler(have as u32));
                have += 1;
            }
            eprintln!(
                "  {kind}: {n} rules (filled in {:.1} s)",
                t.elapsed().as_secs_f64()
            );
            // xdp-filter, where comparable: exact addresses only (it has
            // no prefixes), up to its fixed capacity, the same entries.
            let peer = (kind.starts_with("exact") && n <= xdp_filter::CAPACITY).then(|| {
                let mut xf = XdpFilter::load();
                xf.deny_source(banned.parse().unwrap());
                for i in 1..n as u32 {
                    xf.deny_source(filler(i).addr());
                }
                xf
            });
            let mut cases = Vec::new();
            for (program, prog) in std::iter::once(("blocker", h.prog()))
                .chain(peer.as_ref().map(|xf| ("xdp-filter", &xf.prog)))
            {
                cases.push(Case {
                    name: format!("{program} {kind} drop, {n} rules"),
                    group: "drop",
                    size: n,
                    prog,
                    frame: Spec::syn(banned, server).build(),
                    expect: XDP_DROP,
                });
                cases.push(Case {
                    name: format!("{program} {kind} pass, {n} rules"),
                    group: "pass",
                    size: n,
                    prog,
                    frame: Spec::syn(other, server).build(),
                    expect: XDP_PASS,
                });
            }
            let m = measure(opts, baseline.prog(), &cases);
            for (c, (ns, r)) in cases.iter().zip(m) {
                println!("{:<52} {ns:>8.1} ns {r:>6.2}x baseline", c.name);
                results.push(json!({
                    "kind": kind, "case": c.group, "rules": n,
                    "program": if c.name.starts_with("blocker") { "blocker" } else { "xdp-filter" },
                    "ns_per_packet": ns, "ratio_to_baseline": r,
                }));
            }
            drop(peer);
        }
    }
    json!({ "part": "scale", "repeat": opts.repeat, "rounds": opts.rounds, "cases": results })
}
