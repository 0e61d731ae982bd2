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
    // The fleet's metrics families, before anything was decided.
    let applied_b = "blocker_fleet_decisions_applied_total{origin=\"a\"}";
    assert!(
        wait_until(CONVERGE, || b.metric("blocker_fleet_connected") == 1.0),
        "B's metrics do not show it connected:\n{}",
        b.metrics()
    );
    assert_eq!(b.metric(applied_b), 0.0);
    assert_eq!(a.metric("blocker_fleet_decisions_sent_total"), 0.0);

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

    // The metrics moved with it: A sent, B and C received and applied
    // (C refused the allowlisted one), the propagation histogram counted.
    assert!(
        wait_until(CONVERGE, || a.metric("blocker_fleet_decisions_sent_total")
            >= (n + 2) as f64),
        "A's sent counter:\n{}",
        a.metrics()
    );
    assert_eq!(a.metric("blocker_fleet_publish_queue"), 0.0);
    for node in [b, c] {
        let m = node.metrics();
        let v = |k: &str| blocker_tests::fleet::sample(&m, k);
        assert!(v(applied_b) >= n as f64, "{}:\n{m}", node.name);
        assert!(
            v("blocker_fleet_decisions_received_total{origin=\"a\"}") >= (n + 1) as f64,
            "{}:\n{m}",
            node.name
        );
        assert!(
            v("blocker_fleet_propagation_seconds_count") >= n as f64,
            "{m}"
        );
        assert!(m.contains("blocker_fleet_lag_messages "), "{m}");
        assert!(
            v("blocker_rules_added_total{list=\"block\",origin=\"fleet:a\"}") >= n as f64,
            "{m}"
        );
    }
    assert!(c.metric("blocker_fleet_decisions_refused_total{origin=\"a\"}") >= 1.0);
    assert_eq!(
        b.metric("blocker_fleet_decisions_refused_total{origin=\"a\"}"),
        0.0
    );

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
    // Fleet rows are pruned 5 s after they stop mattering, checked every
    // second: the journal does not grow forever.
    let mut fleet = Fleet::new(PRUNE_FAST, |_| String::new());
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
    // One read: the row is pruned a few seconds after it was journaled.
    let mut seen = None;
    assert!(
        wait_until(CONVERGE, || {
            seen = b
                .received()
                .into_iter()
                .find(|r| r.target == "198.18.2.3/32");
            seen.is_some()
        }),
        "B never saw the expired decision"
    );
    let expired = seen.unwrap();
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
    // The metrics say so too.
    assert!(
        wait_until(CONVERGE, || {
            let m = a.metrics();
            blocker_tests::fleet::sample(&m, "blocker_fleet_connected") == 0.0
                && blocker_tests::fleet::sample(&m, "blocker_fleet_publish_queue") >= 3.0
                && m.contains("blocker_fleet_connected ")
        }),
        "A's metrics during the outage:\n{}",
        a.metrics()
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
    assert!(
        wait_until(CONVERGE, || a.metric("blocker_fleet_connected") == 1.0
            && a.metric("blocker_fleet_publish_queue") == 0.0),
        "A's metrics after the outage:\n{}",
        a.metrics()
    );

    // Pruned: A's outbox row of the expired ban, and every node's record
    // of it; the live bans' rows stay (A still shares their unbans).
    // (By target, not by count: the treason probes see every socket of the
    // host, so a's council may also catch another test's attacker.)
    let outbox = || {
        let db = a.state.state_dir.join(blocker::state::journal::DB_FILE);
        let conn = blocker::fleet::link::open_journal(&db).expect("journal");
        blocker::fleet::journal::outbox_targets(&conn).expect("outbox")
    };
    assert!(
        wait_until(CONVERGE, || !outbox()
            .contains(&"198.18.2.3/32".to_string())),
        "A's outbox still holds the expired ban: {:?}\n{}",
        outbox(),
        a.log()
    );
    let kept = outbox();
    for live in ["198.18.2.1", "198.18.2.2", "198.18.3.1", "198.18.3.2"] {
        assert!(
            kept.contains(&host(live)),
            "{live} pruned from A's outbox: {kept:?}"
        );
    }
    for n in [b, c] {
        assert!(
            wait_until(CONVERGE, || !n
                .received()
                .iter()
                .any(|r| r.target == "198.18.2.3/32")),
            "{} kept the expired decision: {:?}",
            n.name,
            n.received()
        );
        assert!(
            n.received()
                .iter()
                .any(|r| r.target == "198.18.2.1/32" && r.outcome == "applied"),
            "{} pruned a live decision",
            n.name
        );
    }
    assert!(a.log().contains("fleet: pruned"), "{}", a.log());
    assert!(
        a.metric("blocker_journal_pruned_rows_total{table=\"fleet_outbox\"}") >= 1.0,
        "{}",
        a.metrics()
    );
    assert!(c.metric("blocker_journal_pruned_rows_total{table=\"fleet_received\"}") >= 1.0);
}

/// `[fleet] keep` and `[daemon] gc_interval` for tests of pruning.
const PRUNE_FAST: &str = "keep = \"5s\"\n[daemon]\ngc_interval = \"1s\"";

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
        let m = n.metrics();
        for reason in ["unparsable", "unknown_origin"] {
            assert!(
                blocker_tests::fleet::sample(
                    &m,
                    &format!("blocker_fleet_messages_rejected_total{{reason=\"{reason}\"}}")
                ) >= 1.0,
                "{}:\n{m}",
                n.name
            );
        }
    }
}

/// Connects with the daemon's own client options built from `cfg`
/// ([`blocker::fleet::link::connect_options`]: credentials, TLS) and stores
/// a decision in the stream, as a node does first. Err: why not.
async fn round_trip(cfg: &blocker::fleet::FleetConfig) -> Result<u64, String> {
    let opts = blocker::fleet::link::connect_options(cfg)
        .await
        .map_err(|e| e.to_string())?;
    let client = opts
        .connect(cfg.servers.clone())
        .await
        .map_err(|e| e.to_string())?;
    let js = async_nats::jetstream::new(client);
    let work = async {
        js.get_or_create_stream(blocker::fleet::link::stream_config(cfg))
            .await
            .map_err(|e| format!("stream: {e}"))?;
        let d = Decision::block(
            &cfg.node,
            "198.18.5.1/32".parse().unwrap(),
            Duration::from_secs(600),
            2,
            "credentials test",
            "x",
        );
        let ack = js
            .publish(d.subject(&cfg.subject), d.to_json().into())
            .await
            .map_err(|e| format!("publish: {e}"))?
            .await
            .map_err(|e| format!("ack: {e}"))?;
        Ok(ack.sequence)
    };
    // The daemon's options retry the first connection forever: a refused
    // one shows as this timeout.
    tokio::time::timeout(Duration::from_secs(20), work)
        .await
        .map_err(|_| "no answer in 20 s".to_string())?
}

/// A client without the daemon's options, without retries: the server's
/// own answer to a stranger.
async fn plain_connect(opts: async_nats::ConnectOptions, url: &str) -> String {
    match opts
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
    {
        Ok(c) => match tokio::time::timeout(Duration::from_secs(5), c.flush()).await {
            Ok(Ok(())) => "connected".into(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "flush timed out".into(),
        },
        Err(e) => e.to_string(),
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn fleet_config(node: &str, url: &str) -> blocker::fleet::FleetConfig {
    blocker::fleet::FleetConfig {
        enabled: true,
        node: node.into(),
        servers: vec![url.into()],
        ..Default::default()
    }
}

#[test]
fn a_token_an_nkey_and_tls_with_a_ca_file_authenticate_strangers_do_not() {
    use blocker_tests::nats::{Auth, NatsServer, Tls};

    // A token.
    let server = NatsServer::start_with(None, "127.0.0.1", &Auth::Token("fleet-token"), None);
    let url = server.url();
    let mut cfg = fleet_config("a", &url);
    cfg.token = "fleet-token".into();
    assert!(cfg.validate().is_ok());
    let stored = block_on(round_trip(&cfg));
    assert!(stored.is_ok(), "token: {stored:?}\nnats:\n{}", server.log());
    let wrong = block_on(plain_connect(
        async_nats::ConnectOptions::with_token("guess".into()),
        &url,
    ));
    assert!(
        wrong.to_lowercase().contains("authorization"),
        "a wrong token got: {wrong}"
    );
    drop(server);

    // An NKey: the seed stays on the node, the server knows only the
    // public key (the client signs the server's nonce).
    let kp = nkeys::KeyPair::new_user();
    let server = NatsServer::start_with(None, "127.0.0.1", &Auth::Nkeys(&[kp.public_key()]), None);
    let url = server.url();
    let seed = server.dir.join("node.nk");
    std::fs::write(&seed, format!("{}\n", kp.seed().unwrap())).unwrap();
    let mut cfg = fleet_config("b", &url);
    cfg.nkey_seed_file = seed;
    let stored = block_on(round_trip(&cfg));
    assert!(stored.is_ok(), "nkey: {stored:?}\nnats:\n{}", server.log());
    let other = nkeys::KeyPair::new_user();
    let stranger = block_on(plain_connect(
        async_nats::ConnectOptions::with_nkey(other.seed().unwrap()),
        &url,
    ));
    assert!(
        stranger.to_lowercase().contains("authorization"),
        "an unknown NKey got: {stranger}"
    );
    let anonymous = block_on(plain_connect(async_nats::ConnectOptions::new(), &url));
    assert!(
        anonymous.to_lowercase().contains("authorization"),
        "no credentials got: {anonymous}"
    );
    drop(server);

    // TLS with a CA file (and user/password inside the TLS session).
    // A state dir of its own: removed on drop.
    let scratch = blocker_tests::State::new();
    let dir = scratch.state_dir.clone();
    let tls = Tls::generate(&dir, "127.0.0.1");
    let users = [blocker_tests::nats::User {
        name: "c",
        password: "c-secret",
        publish: vec!["blocker.decisions.c".into()],
    }];
    let server = NatsServer::start_with(None, "127.0.0.1", &Auth::Users(&users), Some(&tls));
    let url = server.url();
    let mut cfg = fleet_config("c", &url);
    cfg.user = "c".into();
    cfg.password = "c-secret".into();
    cfg.tls_ca_file = tls.ca.clone();
    let stored = block_on(round_trip(&cfg));
    assert!(stored.is_ok(), "tls: {stored:?}\nnats:\n{}", server.log());
    // Without the CA the server's certificate is not trusted.
    let untrusted = block_on(plain_connect(
        async_nats::ConnectOptions::with_user_and_password("c".into(), "c-secret".into())
            .require_tls(true),
        &url,
    ));
    assert_ne!(untrusted, "connected", "a client without the CA connected");
    assert!(
        !untrusted.to_lowercase().contains("authorization"),
        "refused for the wrong reason: {untrusted}"
    );
    // The CA file missing: a clear error naming the file, before any connection.
    cfg.tls_ca_file = dir.join("missing-ca.pem");
    let missing = block_on(round_trip(&cfg));
    assert!(
        missing
            .as_ref()
            .is_err_and(|e| e.contains("missing-ca.pem")),
        "{missing:?}"
    );
}
