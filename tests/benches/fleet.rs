//! The fleet on a real NATS JetStream server with three local nodes
//! (`cargo xtask bench --only fleet`):
//!
//! 1. **Propagation**: council decisions on node a (zero-window SYN floods
//!    from many sources, one every 20 ms) until applied on b and c; each
//!    receiver measures origin-applied → applied-here from the decision's
//!    own timestamp (one host, one clock). p50 and p99.
//! 2. **Throughput on a receiver**: with b stopped, a burst of decisions is
//!    published into the stream (as origin a); b starts and catches up.
//!    Decisions applied per second = count / time from start to the last
//!    applied (the status file is written once a second, so the time is
//!    exact to about a second: the burst is sized to take several).
//!
//! Environment: `BLOCKER_BIN`, `BENCH_DECISIONS` (default 100),
//! `BENCH_BURST` (default 3000), `BENCH_JSON`.

use std::time::{Duration, Instant};

use blocker::fleet::Decision;
use blocker_tests::{
    fleet::{Fleet, TESTER},
    frames::Spec,
    lab::SERVER_V4,
    peers, wait_until,
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

fn main() {
    let n = env_num("BENCH_DECISIONS", 100);
    let burst = env_num("BENCH_BURST", 3000);
    let mut fleet = Fleet::new("", |_| String::new());

    // 1. Propagation of council decisions.
    {
        let a = fleet.node("a");
        for i in 0..n {
            let src = format!("198.18.{}.{}", 10 + i / 250, i % 250 + 1);
            let frames: Vec<Vec<u8>> = (0..25)
                .map(|_| Spec::zero_window_syn(&src, SERVER_V4).build())
                .collect();
            peers::inject(&a.lab, &frames).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut results = serde_json::Map::new();
    for name in ["b", "c"] {
        let node = fleet.node(name);
        assert!(
            wait_until(Duration::from_secs(120), || applied(&node.fleet()) >= n),
            "{name} applied {} of {n}",
            applied(&node.fleet())
        );
        let mut ms: Vec<f64> = node.fleet()["propagation"]["recent_ms"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_f64())
            .collect();
        let (p50, p99) = (pct(&mut ms, 0.5), pct(&mut ms, 0.99));
        println!(
            "propagation a → {name}: p50 {p50:.1} ms, p99 {p99:.1} ms over {} council decisions",
            ms.len()
        );
        results.insert(
            format!("propagation_{name}"),
            serde_json::json!({ "p50_ms": p50, "p99_ms": p99, "count": ms.len() }),
        );
    }

    // 2. A receiver catching up on a burst.
    fleet.node_mut("b").kill();
    let before = applied(&fleet.node("c").fleet());
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
    // A restarted daemon counts from zero.
    let t = Instant::now();
    fleet.node_mut("b").start();
    let b = fleet.node("b");
    assert!(
        wait_until(Duration::from_secs(600), || applied(&b.fleet()) >= burst),
        "b applied {} of {burst}",
        applied(&b.fleet())
    );
    let secs = t.elapsed().as_secs_f64();
    let rate = burst as f64 / secs;
    println!(
        "receiver b caught up on {burst} decisions in {secs:.1} s (daemon start included): {rate:.0} decisions/s applied"
    );
    let c = fleet.node("c");
    assert!(wait_until(Duration::from_secs(600), || applied(&c.fleet())
        >= before + burst));
    results.insert(
        "receiver_throughput".into(),
        serde_json::json!({ "decisions": burst, "seconds": secs, "per_second": rate }),
    );
    if let Some(p) = std::env::var_os("BENCH_JSON") {
        std::fs::write(p, serde_json::Value::Object(results).to_string()).unwrap();
    }
}
