//! The fleet on a real NATS JetStream server (Debian's nats-server) with
//! three `blocker run` daemons, each in its own namespace protecting its
//! own victim: decisions propagate, each node's guard has the last word,
//! nodes catch up after a restart and after a server outage, the server
//! refuses strangers and nodes reject bad messages.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use blocker::fleet::Decision;
use blocker_tests::{
    fleet::{Fleet, TESTER, password},
    lab::{CLIENT_V4, SERVER_V4},
    peers::KernelPeer,
    wait_until,
};

const PORT: u16 = 8080;
const TCP_TIMEOUT: Duration = Duration::from_millis(700);
const CONVERGE: Duration = Duration::from_secs(60);

fn server4() -> SocketAddr {
    SocketAddr::new(SERVER_V4.parse().unwrap(), PORT)
}

fn host(a: &str) -> String {
    format!("{a}/32")
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn decisions_propagate_each_guard_has_the_last_word_and_unbans_follow() {
    let fleet = Fleet::new("", |_| String::new());
    let (a, b, c) = (fleet.node("a"), fleet.node("b"), fleet.node("c"));
    let _victim = a.lab.victim_server(PORT, 4 << 20);
    let _srv_b = b.lab.tcp_server(PORT);
    let _srv_c = c.lab.tcp_server(PORT);
    let attacker = CLIENT_V4[0];
    assert!(
        b.lab.tcp_connect(attacker, server4(), TCP_TIMEOUT),
        "before"
    );

    // A slow reader attacks A; A's council bans it; B and C drop it too.
    let peer = KernelPeer::slow_reader(&a.lab.client, attacker.parse().unwrap(), server4());
    let t = Instant::now();
    assert!(
        wait_until(CONVERGE, || b.has_block(&host(attacker))
            && c.has_block(&host(attacker))),
        "slow reader banned on A did not reach B and C in {CONVERGE:?}\nA: {}\nB: {}\nA log:\n{}\nB log:\n{}",
        a.fleet(),
        b.fleet(),
        a.log(),
        b.log()
    );
    eprintln!(
        "slow reader on A: banned on B and C {:?} after it connected",
        t.elapsed()
    );
    drop(peer);
    assert!(a.has_block(&host(attacker)));
    assert!(
        b.blocked()
            .iter()
            .any(|(p, s)| p == &host(attacker) && s == "fleet:a"),
        "journaled with its origin: {:?}\nB log:\n{}\nC log:\n{}",
        b.blocked(),
        b.log(),
        c.log()
    );
    for n in [b, c] {
        assert!(
            !n.lab.tcp_connect(attacker, server4(), TCP_TIMEOUT),
            "{} still lets the attacker in",
            n.name
        );
        assert!(
            n.lab.tcp_connect(CLIENT_V4[2], server4(), TCP_TIMEOUT),
            "{} blocks an innocent client",
            n.name
        );
    }

    // An operator ban shared by A, of an address C allowlists: B applies
    // it, C's guard refuses it and journals why.
    let friend = CLIENT_V4[1];
    c.ok(&["allow", friend]);
    a.ok(&[
        "ban",
        friend,
        "--ttl",
        "1h",
        "--reason",
        "shared test",
        "--share",
    ]);
    assert!(
        wait_until(CONVERGE, || b.has_block(&host(friend))),
        "shared ban did not reach B: {}",
        b.fleet()
    );
    assert!(
        wait_until(CONVERGE, || c
            .received()
            .iter()
            .any(|r| r.target == host(friend))),
        "C never got the decision: {}",
        c.fleet()
    );
    let row = c
        .received()
        .into_iter()
        .find(|r| r.target == host(friend))
        .unwrap();
    assert_eq!(row.outcome, "refused", "{row:?}");
    assert_eq!(row.origin, "a");
    assert!(
        row.detail.as_deref().unwrap_or("").contains("allowlisted"),
        "{row:?}"
    );
    assert!(!c.has_block(&host(friend)));
    assert!(c.lab.tcp_connect(friend, server4(), TCP_TIMEOUT));
    assert!(
        wait_until(CONVERGE, || c.fleet()["origins"]["a"]["refused"].as_u64()
            >= Some(1)),
        "C did not count the refusal: {}",
        c.fleet()
    );

    // 100 decisions on A, shared operator bans made in one CLI call (the
    // daemon's publisher picks them from the outbox, polled every 250 ms):
    // propagation A decided → B and C applied.
    let before_b = b.fleet()["origins"]["a"]["applied"].as_u64().unwrap_or(0);
    let before_c = c.fleet()["origins"]["a"]["applied"].as_u64().unwrap_or(0);
    let n = 100u64;
    let targets: Vec<String> = (0..n).map(|i| format!("198.18.1.{}", i + 1)).collect();
    let mut args = vec!["ban", "--ttl", "1h", "--share"];
    args.extend(targets.iter().map(String::as_str));
    a.ok(&args);
    for (node, before) in [(b, before_b), (c, before_c)] {
        assert!(
            wait_until(
                Duration::from_secs(120),
                || node.fleet()["origins"]["a"]["applied"].as_u64() >= Some(before + n)
            ),
            "{} applied only {} of {n} decisions from A\nA: {}\nA log tail:\n{}",
            node.name,
            node.fleet()["origins"]["a"]["applied"],
            a.fleet(),
            a.log()
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .join("\n")
        );
        let mut ms: Vec<f64> = node.fleet()["propagation"]["recent_ms"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .take(n as usize)
            .filter_map(|v| v.as_f64())
            .collect();
        let (p50, p99) = (pct(&mut ms, 0.5), pct(&mut ms, 0.99));
        eprintln!(
            "fleet propagation A → {} over {n} decisions: p50 {p50:.1} ms, p99 {p99:.1} ms",
            node.name
        );
    }
    assert!(b.has_block("198.18.1.100/32") && c.has_block("198.18.1.1/32"));

    // An unban on A lifts the shared ban on B and C (A shared it, so the
    // unban is shared too).
    a.ok(&["unban", attacker]);
    assert!(
        wait_until(CONVERGE, || !b.has_block(&host(attacker))
            && !c.has_block(&host(attacker))),
        "unban on A did not reach B and C\nB: {}\nC: {}",
        b.fleet(),
        c.fleet()
    );
    assert!(b.lab.tcp_connect(attacker, server4(), TCP_TIMEOUT));
    assert!(c.lab.tcp_connect(attacker, server4(), TCP_TIMEOUT));
}

#[test]
fn nodes_catch_up_after_a_restart_and_a_server_outage() {
    let mut fleet = Fleet::new("", |_| String::new());
    fleet.node_mut("b").kill();
    let a = fleet.node("a");
    let c = fleet.node("c");
    for (addr, ttl) in [
        ("198.18.2.1", "1h"),
        ("198.18.2.2", "1h"),
        ("198.18.2.3", "3s"),
    ] {
        a.ok(&["ban", addr, "--ttl", ttl, "--share"]);
    }
    assert!(
        wait_until(CONVERGE, || c.received().len() >= 3),
        "C did not get the three decisions: {}",
        c.fleet()
    );
    // Let the short one expire while B is down.
    std::thread::sleep(Duration::from_secs(4));
    fleet.node_mut("b").start();
    let b = fleet.node("b");
    assert!(
        wait_until(CONVERGE, || b.has_block("198.18.2.1/32")
            && b.has_block("198.18.2.2/32")),
        "B did not catch up after its restart: {}\n{}",
        b.fleet(),
        b.log()
    );
    assert!(
        wait_until(CONVERGE, || b
            .received()
            .iter()
            .any(|r| r.target == "198.18.2.3/32")),
        "B never saw the expired decision"
    );
    let expired = b
        .received()
        .into_iter()
        .find(|r| r.target == "198.18.2.3/32")
        .unwrap();
    assert_eq!(expired.outcome, "refused", "{expired:?}");
    assert!(
        expired.detail.as_deref().unwrap_or("").contains("expired"),
        "{expired:?}"
    );
    assert!(
        !b.has_block("198.18.2.3/32"),
        "an expired decision was applied"
    );

    // The server dies while A bans: A keeps enforcing and queues on disk.
    let _srv = fleet.node("a").lab.tcp_server(PORT);
    fleet.nats.kill();
    let a = fleet.node("a");
    assert!(
        wait_until(CONVERGE, || a.fleet()["connected"] == false),
        "A did not notice the outage: {}",
        a.fleet()
    );
    let outage = [CLIENT_V4[2], "198.18.3.1", "198.18.3.2"];
    for addr in outage {
        a.ok(&["ban", addr, "--ttl", "1h", "--share"]);
    }
    assert!(
        !a.lab.tcp_connect(CLIENT_V4[2], server4(), TCP_TIMEOUT),
        "A must keep enforcing while NATS is down"
    );
    assert!(
        wait_until(CONVERGE, || a.fleet()["queued"].as_u64() >= Some(3)),
        "A did not queue its decisions: {}",
        a.fleet()
    );
    fleet.nats.restart();
    let (a, b, c) = (fleet.node("a"), fleet.node("b"), fleet.node("c"));
    for n in [b, c] {
        assert!(
            wait_until(Duration::from_secs(90), || outage
                .iter()
                .all(|x| n.has_block(&host(x)))),
            "{} did not converge after the outage: {}\nA: {}\n{}",
            n.name,
            n.fleet(),
            a.fleet(),
            n.log()
        );
    }
    assert!(wait_until(CONVERGE, || a.fleet()["queued"] == 0));
}

#[test]
fn the_server_refuses_strangers_and_nodes_reject_bad_messages() {
    let fleet = Fleet::new("", |_| String::new());
    let url = fleet.nats.url();
    let (b, c) = (fleet.node("b"), fleet.node("c"));
    let outcome = fleet.in_hub(|| async move {
        let stranger = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(3))
            .connect(url.as_str())
            .await;
        let stranger = match stranger {
            Ok(_) => "connected".to_string(),
            Err(e) => e.to_string(),
        };
        // B may publish only as itself: its credentials do not cover A's
        // subject.
        let bc = async_nats::ConnectOptions::with_user_and_password("b".into(), password("b"))
            .connect(url.as_str())
            .await
            .expect("b connects");
        let js = async_nats::jetstream::new(bc);
        let forged = Decision::block(
            "a",
            "198.18.4.1/32".parse().unwrap(),
            Duration::from_secs(600),
            2,
            "forged",
            "x",
        );
        let forged_ack = match js
            .publish(forged.subject("blocker.decisions"), forged.to_json().into())
            .await
        {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        // A publisher allowed everywhere sends junk and an unknown origin.
        let tc =
            async_nats::ConnectOptions::with_user_and_password(TESTER.0.into(), TESTER.1.into())
                .connect(url.as_str())
                .await
                .expect("tester connects");
        let js = async_nats::jetstream::new(tc);
        js.publish("blocker.decisions.a", "not a decision {".into())
            .await
            .expect("publish junk")
            .await
            .expect("junk stored");
        let mallory = Decision::block(
            "mallory",
            "198.18.4.2/32".parse().unwrap(),
            Duration::from_secs(600),
            2,
            "trust me",
            "x",
        );
        js.publish(
            mallory.subject("blocker.decisions"),
            mallory.to_json().into(),
        )
        .await
        .expect("publish mallory")
        .await
        .expect("mallory stored");
        (stranger, forged_ack)
    });
    assert!(
        outcome.0.to_lowercase().contains("authorization"),
        "a client without credentials got: {}",
        outcome.0
    );
    assert!(!outcome.1, "b published on a's subject");
    for n in [b, c] {
        assert!(
            wait_until(CONVERGE, || n.fleet()["rejected"]["unparsable"].as_u64()
                >= Some(1)
                && n.fleet()["rejected"]["unknown_origin"].as_u64() >= Some(1)),
            "{} did not count the bad messages: {}",
            n.name,
            n.fleet()
        );
        assert!(!n.has_block("198.18.4.1/32") && !n.has_block("198.18.4.2/32"));
    }
}
