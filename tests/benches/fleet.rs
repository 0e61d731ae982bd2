//! The fleet on a real NATS JetStream server with three local nodes
//! (`cargo xtask bench fleet`):
//!
//! 1. **Propagation**: `BENCH_DECISIONS` shared operator bans on node a
//!    (`blocker ban --share`, one CLI call each, one every 50 ms), until
//!    applied on b and c; each receiver measures origin decided → applied
//!    here from the decision's own timestamp (one host, one clock). The
//!    path is CLI → journal outbox → a's publisher (polls the outbox every
//!    250 ms) → stream → b's and c's consumers → guard → map. p50 and p99.
//!    (Council bans take the same path from the publisher on, without the
//!    outbox poll; they now need confirmed evidence, issue 10, which an
//!    operator ban stands in for here.)
//! 2. **Throughput on a receiver**: with b stopped, `BENCH_BURST` decisions
//!    are published into the stream (as origin a); b starts and catches up.
//!    Decisions applied per second, from b's journal (polled every 50 ms):
//!    count / time from the first journaled to the last.
//!
//! Environment: `BLOCKER_BIN`, `BENCH_DECISIONS` (default 100),
//! `BENCH_BURST` (default 5000), `BENCH_JSON`.

use std::time::{Duration, Instant};

use blocker::fleet::Decision;
use blocker_tests::{
    fleet::{Fleet, Node, TESTER},
    wait_until,
};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn applied(f: &serde_json::Value) -> u64 {
    f["origins"]["a"]["applied"].as_u64().unwrap_or(0)
}

/// Received decisions journaled on `node`, and of those applied.
fn journaled(node: &Node) -> (u64, u64) {
    let db = node.state.state_dir.join(blocker::state::journal::DB_FILE);
    blocker::fleet::link::open_journal(&db)
        .ok()
        .and_then(|c| blocker::fleet::journal::received_counts(&c).ok())
        .unwrap_or((0, 0))
}

/// Waits for `done` up to `timeout`, printing `progress` every 5 s.
fn wait_reporting(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    progress: impl Fn() -> String,
) -> bool {
    let t = Instant::now();
    let mut last = Instant::now();
    wait_until(timeout, || {
        if last.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "  {what}: {} ({:.0} s)",
                progress(),
                t.elapsed().as_secs_f64()
            );
            last = Instant::now();
        }
        done()
    })
}

fn main() {
    let n = env_num("BENCH_DECISIONS", 100);
    let burst = env_num("BENCH_BURST", 5000);
    eprintln!("fleet bench: starting nats-server and three nodes");
    let mut fleet = Fleet::new("", |_| String::new());

    // 1. Propagation of shared operator bans.
    eprintln!("phase 1: {n} shared bans on a");
    {
        let a = fleet.node("a");
        for i in 0..n {
            let target = format!("198.18.{}.{}", 10 + i / 250, i % 250 + 1);
            a.ok(&[
                "ban", &target, "--ttl", "1h", "--share", "--reason", "bench",
            ]);
            if (i + 1) % 25 == 0 {
                eprintln!("  a: {} bans shared", i + 1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut results = serde_json::Map::new();
    for name in ["b", "c"] {
        let node = fleet.node(name);
        assert!(
            wait_reporting(
                &format!("{name} applying"),
                Duration::from_secs(120),
                || applied(&node.fleet()) >= n,
                || format!("{} of {n}", applied(&node.fleet())),
            ),
            "{name} applied {} of {n}\n{}",
            applied(&node.fleet()),
            node.log()
        );
        let mut ms: Vec<f64> = node.fleet()["propagation"]["recent_ms"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_f64())
            .collect();
        let (p50, p99) = (pct(&mut ms, 0.5), pct(&mut ms, 0.99));
        println!(
            "propagation a → {name}: p50 {p50:.1} ms, p99 {p99:.1} ms over {} shared operator bans (CLI → outbox → stream → applied)",
            ms.len()
        );
        results.insert(
            format!("propagation_{name}"),
            serde_json::json!({ "p50_ms": p50, "p99_ms": p99, "count": ms.len() }),
        );
    }

    // 2. A receiver catching up on a burst.
    fleet.node_mut("b").kill();
    let (before_b, _) = journaled(fleet.node("b"));
    let before_c = applied(&fleet.node("c").fleet());
    eprintln!("phase 2: b stopped; publishing {burst} decisions as a");
    let url = fleet.nats.url();
    fleet.in_hub(|| async move {
        let c =
            async_nats::ConnectOptions::with_user_and_password(TESTER.0.into(), TESTER.1.into())
                .connect(url.as_str())
                .await
                .expect("connect");
        let js = async_nats::jetstream::new(c);
        let mut acks = Vec::new();
        for i in 0..burst {
            let target = format!("198.19.{}.{}/32", i / 250, i % 250 + 1);
            let d = Decision::block(
                "a",
                target.parse().unwrap(),
                Duration::from_secs(3600),
                blocker_common::reason::TREASON,
                "bench",
                "bench",
            );
            let msg = async_nats::jetstream::message::PublishMessage::build()
                .payload(d.to_json().into())
                .message_id(&d.id);
            acks.push(
                js.send_publish(d.subject("blocker.decisions"), msg)
                    .await
                    .unwrap(),
            );
            if acks.len() >= 256 {
                for a in acks.drain(..) {
                    a.await.expect("stored");
                }
            }
        }
        for a in acks {
            a.await.expect("stored");
        }
    });
    eprintln!("phase 2: {burst} decisions stored; starting b");
    let t = Instant::now();
    fleet.node_mut("b").start();
    let b = fleet.node("b");
    let mut first: Option<(Instant, u64)> = None;
    let mut last = (Instant::now(), 0);
    assert!(
        wait_reporting(
            "b catching up",
            Duration::from_secs(900),
            || {
                std::thread::sleep(Duration::from_millis(50));
                let (all, _) = journaled(b);
                let got = all.saturating_sub(before_b);
                if got > 0 && first.is_none() {
                    first = Some((Instant::now(), got));
                }
                if got > last.1 {
                    last = (Instant::now(), got);
                }
                got >= burst
            },
            || format!(
                "{} of {burst} journaled",
                journaled(b).0.saturating_sub(before_b)
            ),
        ),
        "b journaled {} of {burst}\n{}",
        journaled(b).0.saturating_sub(before_b),
        b.log()
    );
    let total = t.elapsed().as_secs_f64();
    let (t0, n0) = first.expect("b journaled something");
    let span = last.0.duration_since(t0).as_secs_f64();
    let rate = (last.1 - n0) as f64 / span.max(0.001);
    let (_, applied_b) = journaled(b);
    println!(
        "receiver b: {burst} decisions journaled {span:.2} s after the first ({total:.1} s after start, daemon start included): {rate:.0} decisions/s applied ({applied_b} applied in all)"
    );
    let c = fleet.node("c");
    assert!(wait_reporting(
        "c (live) applying the burst",
        Duration::from_secs(900),
        || applied(&c.fleet()) >= before_c + burst,
        || format!("{} of {burst}", applied(&c.fleet()) - before_c),
    ));
    results.insert(
        "receiver_throughput".into(),
        serde_json::json!({ "decisions": burst, "seconds": span, "seconds_from_start": total, "per_second": rate }),
    );
    if let Some(p) = std::env::var_os("BENCH_JSON") {
        std::fs::write(p, serde_json::Value::Object(results).to_string()).unwrap();
    }
}
