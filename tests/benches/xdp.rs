//! Per-packet cost of the XDP program, measured with `BPF_PROG_TEST_RUN`
//! (the kernel times `repeat` runs on one CPU) side by side with an XDP
//! program that only returns XDP_PASS, in the same process and rounds, so
//! the ratio holds on a noisy shared machine.
//!
//! Run with `cargo xtask bench`. Environment: `BENCH_REPEAT` (runs per
//! measurement, default 1000000), `BENCH_ROUNDS` (default 7),
//! `BENCH_JSON` (write results there).

use std::time::Duration;

use blocker::config::MapsConfig;
use blocker_common::{config, programs};
use blocker_tests::{
    frames::Spec,
    testrun::{Harness, XDP_DROP, XDP_PASS},
};

struct Case {
    name: &'static str,
    harness: usize,
    frame: Vec<u8>,
    expect: u32,
}

fn env_num(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let repeat = env_num("BENCH_REPEAT", 1_000_000);
    let rounds = env_num("BENCH_ROUNDS", 7) as usize;
    let caps = MapsConfig::default();

    let baseline = Harness::with(programs::XDP_BASELINE, &caps);
    let empty = Harness::new();
    let mut loaded = Harness::new();
    // 10,000 exact IPv4 bans, 1,000 IPv4 /28s, 1,000 exact IPv6 bans,
    // 16 allowlisted /28s: a busy production-sized table.
    for i in 0..10_000u32 {
        loaded.ban(&format!("198.19.{}.{}", i / 250, i % 250 + 1));
    }
    for i in 0..1_000u32 {
        loaded.ban(&format!("198.19.{}.{}/28", 128 + i / 16, (i % 16) * 16));
    }
    for i in 0..1_000u32 {
        loaded.ban(&format!("2001:db8:1::{:x}", i + 1));
    }
    for i in 0..16u32 {
        loaded.allow(&format!("198.18.200.{}/28", i * 16));
    }
    loaded
        .tables
        .set_config(config::ZW_THRESHOLD, u64::MAX)
        .unwrap();
    let harnesses = [&baseline, &empty, &loaded];

    let cases = vec![
        Case {
            name: "baseline: XDP_PASS only",
            harness: 0,
            frame: Spec::syn("198.18.0.3", "198.18.0.1").build(),
            expect: XDP_PASS,
        },
        Case {
            name: "pass, empty tables (lookups skipped)",
            harness: 1,
            frame: Spec::syn("198.18.0.3", "198.18.0.1").build(),
            expect: XDP_PASS,
        },
        Case {
            name: "pass, 12k rules, v4 no match",
            harness: 2,
            frame: Spec::syn("198.18.0.3", "198.18.0.1").build(),
            expect: XDP_PASS,
        },
        Case {
            name: "pass, 12k rules, v6 no match",
            harness: 2,
            frame: Spec::syn("2001:db8::3", "2001:db8::1").build(),
            expect: XDP_PASS,
        },
        Case {
            name: "pass, allowlisted (LPM hit)",
            harness: 2,
            frame: Spec::syn("198.18.200.77", "198.18.0.1").build(),
            expect: XDP_PASS,
        },
        Case {
            name: "drop, exact v4 (hash hit)",
            harness: 2,
            frame: Spec::syn("198.19.10.7", "198.18.0.1").build(),
            expect: XDP_DROP,
        },
        Case {
            name: "drop, exact v6 (hash hit)",
            harness: 2,
            frame: Spec::syn("2001:db8:1::7", "2001:db8::1").build(),
            expect: XDP_DROP,
        },
        Case {
            name: "drop, v4 /28 (LPM hit)",
            harness: 2,
            frame: Spec::syn("198.19.130.40", "198.18.0.1").build(),
            expect: XDP_DROP,
        },
        Case {
            name: "pass, zero-window SYN counted",
            harness: 2,
            frame: Spec::zero_window_syn("198.18.0.4", "198.18.0.1").build(),
            expect: XDP_PASS,
        },
        Case {
            name: "pass, QinQ + IPv4 options",
            harness: 2,
            frame: Spec::syn("198.18.0.3", "198.18.0.1")
                .vlans(2)
                .ipv4_options(&[1; 8])
                .build(),
            expect: XDP_PASS,
        },
    ];

    // Interleave cases within each round so drift hits all of them alike.
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut ratio: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        let (_, base) = baseline.run_repeat(&cases[0].frame, repeat);
        let base = base.as_nanos() as f64;
        for (i, c) in cases.iter().enumerate() {
            let (action, d): (u32, Duration) = harnesses[c.harness].run_repeat(&c.frame, repeat);
            assert_eq!(action, c.expect, "{}", c.name);
            let t = d.as_nanos() as f64;
            ns[i].push(t);
            ratio[i].push(t / base.max(1.0));
        }
    }

    println!(
        "XDP per-packet cost, BPF_PROG_TEST_RUN, repeat={repeat}, rounds={rounds} (median over rounds)"
    );
    println!(
        "{:<40} {:>8} {:>8} {:>8} {:>10}",
        "case", "ns/pkt", "min", "max", "x baseline"
    );
    let mut json = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let (min, max) = (
            ns[i].iter().copied().fold(f64::INFINITY, f64::min),
            ns[i].iter().copied().fold(0.0, f64::max),
        );
        let med = median(&mut ns[i]);
        let r = median(&mut ratio[i]);
        println!("{:<40} {med:>8.1} {min:>8.1} {max:>8.1} {r:>10.2}", c.name);
        json.push(serde_json::json!({
            "case": c.name, "frame_bytes": c.frame.len(), "ns_per_packet_median": med,
            "ns_min": min, "ns_max": max, "ratio_to_baseline": r,
        }));
    }
    if let Ok(path) = std::env::var("BENCH_JSON") {
        let doc = serde_json::json!({ "repeat": repeat, "rounds": rounds, "cases": json });
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap())
            .expect("write BENCH_JSON");
        println!("results written to {path}");
    }
}
