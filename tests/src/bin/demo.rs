//! `cargo xtask demo`: a lab of network namespaces where attackers meet
//! blocker and its offline council, narrated as it happens.
//!
//! Everything runs in namespaces this program creates and removes (also on
//! failure), with addresses from 198.18.0.0/15 and bounded traffic.

use std::{
    io::{BufRead as _, BufReader, Seek as _},
    net::{IpAddr, SocketAddr},
    path::Path,
    process::ExitCode,
    time::{Duration, Instant},
};

use blocker_tests::{
    State,
    lab::{Daemon, Lab, SERVER_V4, sh},
    peers::{KernelPeer, RAW_PEER_V4, RawPeer},
};

const PORT: u16 = 8080;
const SLOW: &str = "198.18.0.2";
const FLOODER: &str = "198.18.0.3";
const FRIEND: &str = "198.18.0.4";
const NORMAL: &str = "198.18.0.5";
const BYTES: usize = 4 << 20;

fn say(start: Instant, what: &str) {
    println!("[{:6.2}s] {what}", start.elapsed().as_secs_f64());
}

fn rules(state: &State) -> Vec<serde_json::Value> {
    state.json(&["list"])["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn block(state: &State, addr: &str) -> Option<serde_json::Value> {
    rules(state)
        .into_iter()
        .find(|r| r["list"] == "block" && r["address"] == addr)
}

/// Prints new daemon log lines worth narrating.
struct LogTail {
    path: std::path::PathBuf,
    pos: u64,
}

impl LogTail {
    fn pump(&mut self, start: Instant) {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        if f.seek(std::io::SeekFrom::Start(self.pos)).is_err() {
            return;
        }
        let mut r = BufReader::new(f);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if !line.ends_with('\n') {
                break;
            }
            self.pos += line.len() as u64;
            // "2026-...Z  INFO message" → "message"
            let msg = line
                .split_once(" INFO ")
                .or_else(|| line.split_once(" WARN "))
                .map_or(line.trim_end(), |(_, m)| m.trim_end());
            let interesting = [
                "council on",
                "proposal",
                "approves",
                "objects",
                "outcome",
                "verdict",
                "guard refused",
                "falling back",
                "probes attached",
                "attached XDP",
                "blocker running",
            ];
            if interesting.iter().any(|k| msg.contains(k)) {
                say(start, &format!("  blocker │ {msg}"));
            }
            line.clear();
        }
    }
}

fn main() -> ExitCode {
    let start = Instant::now();
    println!("blocker demo: a victim, three attackers, a friend and a bystander\n");
    let lab = Lab::new();
    sh(&[
        "ip",
        "-n",
        &lab.client.name,
        "addr",
        "add",
        &format!("{NORMAL}/24"),
        "dev",
        &lab.client_if,
    ]);
    let server: SocketAddr = SocketAddr::new(SERVER_V4.parse().unwrap(), PORT);
    let _victim = lab.victim_server(PORT, BYTES);
    say(
        start,
        &format!(
            "lab up: victim {server} serves {} MiB to every client (namespace {})",
            BYTES >> 20,
            lab.server.name
        ),
    );
    say(
        start,
        &format!("  {SLOW:<14} slow reader: connects, never reads (slow-read / sockstress)"),
    );
    say(
        start,
        &format!(
            "  {RAW_PEER_V4:<14} window shrinker: acks part of the data and closes its window (the kernel's \"treason uncloaked\")"
        ),
    );
    say(
        start,
        &format!("  {FLOODER:<14} zero-window SYN flooder (hping3 -S -w 0)"),
    );
    say(
        start,
        &format!("  {FRIEND:<14} allowlisted client that behaves exactly like the slow reader"),
    );
    say(
        start,
        &format!("  {NORMAL:<14} normal client downloading the response"),
    );

    let state = State::new();
    state.ok(&["allow", FRIEND, "--reason", "demo: trusted partner"]);
    say(start, &format!("operator: blocker allow {FRIEND}"));
    let cfg = state.state_dir.join("demo.toml");
    std::fs::write(
        &cfg,
        "# Demo: a 3 s stall threshold instead of the default 10 s, to keep it short.\n\
         [treason]\nstall = \"3s\"\n[xdp]\nzero_window_threshold = 20\n[sources]\nkmsg = false\n",
    )
    .expect("write demo config");
    say(
        start,
        "starting `blocker run` with the offline council (host, kernel, jail, filter; unanimous)",
    );
    let daemon = Daemon::start(
        &state,
        &lab.server,
        &lab.server_if,
        &["--config", cfg.to_str().unwrap()],
    );
    let mut tail = LogTail {
        path: daemon.log.clone(),
        pos: 0,
    };
    tail.pump(start);

    say(start, "attack: all clients connect");
    let normal = KernelPeer::reader(&lab.client, NORMAL.parse::<IpAddr>().unwrap(), server);
    let _friend = KernelPeer::slow_reader(&lab.client, FRIEND.parse::<IpAddr>().unwrap(), server);
    let _slow = KernelPeer::slow_reader(&lab.client, SLOW.parse::<IpAddr>().unwrap(), server);
    let shrinker = RawPeer::window_shrinker(&lab, RAW_PEER_V4.parse::<IpAddr>().unwrap(), server);
    let flood = lab.zero_window_syns(FLOODER, PORT, 40, 5000);
    say(
        start,
        &format!("attack: {FLOODER} sent 40 zero-window SYNs (hping3 exit {flood:?})"),
    );

    // The flooder's SYNs carry a forgeable source address (hping3 -a): it
    // is watched, never banned, so that nobody can aim blocker at a bystander.
    let attackers = [SLOW, RAW_PEER_V4];
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline && !attackers.iter().all(|a| block(&state, a).is_some()) {
        tail.pump(start);
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the friend's debate finish too (its stall fires alongside).
    std::thread::sleep(Duration::from_secs(1));
    tail.pump(start);
    drop(shrinker);

    println!();
    say(
        start,
        "after the attack, every source tries a fresh TCP connection:",
    );
    let mut ok = true;
    let expect = [
        (SLOW, "slow reader", true),
        (RAW_PEER_V4, "window shrinker", true),
        (FLOODER, "zero-window SYN flooder", false),
        (FRIEND, "allowlisted client", false),
        (NORMAL, "normal client", false),
    ];
    println!(
        "    {:<14} {:<24} {:<9} {:>8}  REASON",
        "SOURCE", "ROLE", "BANNED", "DROPPED"
    );
    for (addr, role, should_ban) in expect {
        let rule = block(&state, addr);
        let dropped = rule
            .as_ref()
            .and_then(|r| r["packets"].as_u64())
            .unwrap_or(0);
        let reason = rule
            .as_ref()
            .and_then(|r| r["reason"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "-".into());
        println!(
            "    {addr:<14} {role:<24} {:<9} {dropped:>8}  {}",
            if rule.is_some() { "yes" } else { "no" },
            reason.chars().take(90).collect::<String>()
        );
        if rule.is_some() != should_ban {
            ok = false;
            println!(
                "    ^ expected {}",
                if should_ban { "a ban" } else { "no ban" }
            );
        }
    }
    // Kernel-socket clients can prove it with a connect; the raw peer has no
    // kernel socket to connect from.
    for (addr, should_work) in [
        (SLOW, false),
        (FLOODER, true),
        (FRIEND, true),
        (NORMAL, true),
    ] {
        let works = lab.tcp_connect(addr, server, Duration::from_millis(700));
        println!(
            "    connect from {addr:<14} {}",
            if works {
                "succeeds"
            } else {
                "times out (dropped in XDP)"
            }
        );
        ok &= works == should_work;
    }
    let read = normal.bytes_read();
    say(
        start,
        &format!("the normal client read {read} of {BYTES} bytes"),
    );
    ok &= normal.wait_read(BYTES as u64, Duration::from_secs(10));

    let status = state.json(&["status"]);
    let d = &status["daemon"];
    println!();
    say(
        start,
        &format!(
            "probes: {} | alerts: {} | debates: {} | verdicts applied: {}, refused by the guard: {}",
            d["probes"]["active"],
            d["alerts"]["delivered"],
            d["council"]["debates"],
            d["council"]["applied"],
            d["council"]["refused"]
        ),
    );
    say(
        start,
        &format!(
            "kernel evidence → map entry: p50 {:.1} ms, max {:.1} ms over {} bans",
            d["latency"]["p50_ms"].as_f64().unwrap_or(0.0),
            d["latency"]["max_ms"].as_f64().unwrap_or(0.0),
            d["latency"]["count"]
        ),
    );
    drop(normal);
    drop(daemon);
    let pins = state.pin_dir.clone();
    drop(state);
    drop(lab);
    say(
        start,
        &format!(
            "cleaned up: namespaces removed, pins removed ({})",
            if Path::new(&pins).exists() {
                "NOT removed"
            } else {
                "ok"
            }
        ),
    );
    if ok {
        println!(
            "\ndemo passed: every attacker banned and dropped; the allowlisted and normal clients were never blocked"
        );
        ExitCode::SUCCESS
    } else {
        println!("\ndemo FAILED: see above");
        ExitCode::FAILURE
    }
}
