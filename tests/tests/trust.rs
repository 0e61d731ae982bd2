//! Never turned against its owner (issue 10): forged evidence bans nobody,
//! an LLM outage does not stop protection, one daemon per pin directory.
//!
//! The spoofing lab forges zero-window SYNs from addresses that never send
//! a packet themselves (raw frames out of the client's veth, the way hping3
//! `-a` or scapy would), next to a real sockstress peer that completes the
//! handshake and then holds our socket with a zero window.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    time::{Duration, Instant},
};

use blocker_tests::{
    State, describe,
    frames::Spec,
    lab::{
        CLIENT_V4, CLIENT_V6, DETECT, Daemon, Lab, PEER_TCP_TIMEOUT as TCP_TIMEOUT, SERVER_V4,
        SERVER_V6, SERVICE_PORT as PORT, quick_config as config, service_v4 as server4,
        service_v6 as server6,
    },
    llm_server::{LlmServer, Reply, Request, Script, agreeable, block, proposals},
    peers::{self, KernelPeer, RAW_PEER_V4, RawPeer},
    wait_until,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn start(state: &State, lab: &Lab, extra_config: &str) -> Daemon {
    let cfg = config(state, extra_config);
    Daemon::start(
        state,
        &lab.server,
        &lab.server_if,
        &["--config", cfg.to_str().unwrap()],
    )
}

/// Addresses with a block rule.
fn banned(state: &State) -> BTreeSet<String> {
    state.json(&["list"])["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["list"] == "block")
        .map(|r| r["address"].as_str().unwrap().to_string())
        .collect()
}

fn debates(state: &State) -> u64 {
    state.daemon_status()["council"]["debates"]
        .as_u64()
        .unwrap_or(0)
}

/// `n` zero-window SYNs forged from `src`.
fn forged(src: &str, dst: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| Spec::zero_window_syn(src, dst).build())
        .collect()
}

/// Sends `frames` at about `rate` per second, in 10 ms slices.
fn paced(lab: &Lab, frames: &[Vec<u8>], rate: usize) {
    let per_slice = (rate / 100).max(1);
    let start = Instant::now();
    for (i, chunk) in frames.chunks(per_slice).enumerate() {
        assert_eq!(peers::inject(lab, chunk).unwrap(), chunk.len());
        let due = start + Duration::from_millis(10 * (i as u64 + 1));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

#[test]
fn forged_zero_window_syns_ban_no_bystander_and_a_real_sockstress_peer_is_banned() {
    let lab = Lab::new();
    let _srv = lab.victim_server(PORT, 1 << 20);
    let state = State::new();
    let d = start(&state, &lab, "");
    // 30 zero-window SYNs "from" two bystanders that never send a packet
    // themselves (the per-source threshold is 20).
    let v4 = CLIENT_V4[0];
    let v6 = CLIENT_V6[0];
    peers::inject(&lab, &forged(v4, SERVER_V4, 30)).unwrap();
    peers::inject(&lab, &forged(v6, SERVER_V6, 30)).unwrap();
    // The evidence arrived and was debated...
    assert!(
        wait_until(DETECT, || debates(&state) >= 2),
        "the forged SYNs were never debated:\n{}",
        d.log()
    );
    // ...and a sockstress peer from another address, which has to complete
    // the handshake, is caught by the probes on the established socket.
    let peer = RawPeer::zero_window_handshake(&lab, ip(RAW_PEER_V4), server4());
    assert!(
        wait_until(DETECT, || banned(&state).contains(RAW_PEER_V4)),
        "sockstress peer not banned (peer: {:?}):\n{}",
        peer.stats(),
        d.log()
    );
    let bans = banned(&state);
    println!(
        "spoofing lab: bystander bans {} of 2 ({bans:?})",
        [v4, v6].iter().filter(|b| bans.contains(**b)).count()
    );
    assert!(
        !bans.contains(v4) && !bans.contains(v6),
        "a bystander was banned from forged evidence ({bans:?}):\n{}",
        d.log()
    );
    assert!(
        lab.tcp_connect(v4, server4(), TCP_TIMEOUT),
        "v4 bystander cut off"
    );
    assert!(
        lab.tcp_connect(v6, server6(), TCP_TIMEOUT),
        "v6 bystander cut off"
    );
    let log = d.log();
    assert!(
        log.contains("watch 198.18.0.2"),
        "forged evidence should lead to a watch:\n{log}"
    );
    let rule = state.json(&["list"])["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == RAW_PEER_V4)
        .cloned()
        .unwrap();
    assert_eq!(rule["reason_code"], "treason", "{rule}");
}

/// `sources` forged sources, `per_source` zero-window SYNs each, interleaved
/// so that every source crosses the threshold, at `rate` SYN/s; returns the
/// per-source bans.
fn spoofed_sources(sources: u32, per_source: usize, rate: usize) -> (usize, String) {
    let lab = Lab::new();
    let _srv = lab.tcp_server(PORT);
    let state = State::new();
    let d = start(&state, &lab, "");
    let addrs: Vec<String> = (0..sources)
        .map(|i| format!("198.19.{}.{}", i / 250, i % 250 + 1))
        .collect();
    // Source after source, like a scanner walking its list.
    let frames: Vec<Vec<u8>> = addrs
        .iter()
        .flat_map(|a| forged(a, SERVER_V4, per_source))
        .collect();
    paced(&lab, &frames, rate);
    // Let the council catch up with every event: each forged source is its
    // own incident (a watch, journaled), hundreds of them on two shared
    // cores, so this bound is generous; it is a bound, not a timing claim.
    assert!(
        wait_until(Duration::from_secs(300), || {
            let s = state.daemon_status();
            let c = &s["council"];
            s["alerts"]["delivered"].as_u64().unwrap_or(0) > 0
                && c["running"] == 0
                && c["queued"] == 0
        }),
        "the council never caught up:\n{}",
        d.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let bans = banned(&state).iter().filter(|b| addrs.contains(b)).count();
    assert!(
        lab.tcp_connect(CLIENT_V4[1], server4(), TCP_TIMEOUT),
        "an ordinary client was cut off"
    );
    (bans, d.log())
}

#[test]
fn a_hundred_spoofed_sources_below_the_flood_rate_ban_nobody() {
    let (bans, log) = spoofed_sources(100, 21, 500);
    println!("spoofing lab: 100 spoofed sources at 500 SYN/s -> {bans} per-source bans");
    assert_eq!(bans, 0, "{log}");
}

#[test]
fn five_hundred_spoofed_sources_above_the_flood_rate_ban_nobody() {
    let (bans, log) = spoofed_sources(500, 21, 3000);
    println!("spoofing lab: 500 spoofed sources at 3000 SYN/s -> {bans} per-source bans");
    assert_eq!(bans, 0, "{log}");
}

#[test]
fn a_second_daemon_on_the_same_pins_refuses_naming_the_first() {
    let lab = Lab::new();
    let state = State::new();
    let first = start(&state, &lab, "");
    let cfg = state.state_dir.join("test.toml");
    let out = lab
        .server
        .command(
            blocker_tests::blocker_bin(),
            &[
                "run",
                "--iface",
                &lab.server_if,
                "--config",
                cfg.to_str().unwrap(),
            ],
        )
        .env("BLOCKER_PIN_DIR", &state.pin_dir)
        .env("BLOCKER_STATE_DIR", &state.state_dir)
        .env_remove("BLOCKER_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("pid {}", first.pid())),
        "the refusal does not name the running daemon: {}",
        describe(&out)
    );
    // The first one is untouched and still enforcing.
    state.ok(&["ban", CLIENT_V4[0], "--ttl", "1h"]);
    assert!(!lab.tcp_connect(CLIENT_V4[0], server4(), TCP_TIMEOUT));
    assert!(first.log().contains("blocker running"));
    // The journal holds attacker text: owner only.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state.state_dir), 0o700);
    assert_eq!(mode(&state.state_dir.join("blocker.db")), 0o600);
}

// --- The LLM council: forgeable evidence, protection it may not remove, ---
// --- kernel addresses it must never see, and its outages.             ---

const SUSPECT: &str = "198.18.0.66";

/// An eve.json alert from `src`; `established`: on an established TCP flow
/// (Suricata names the application protocol), else a lone UDP packet that
/// anyone could have forged.
fn eve_line(src: &str, established: bool) -> String {
    let mut v = serde_json::json!({
        "timestamp": "2025-11-21T12:00:00.123456+0000", "event_type": "alert",
        "src_ip": src, "src_port": 51234, "dest_ip": "198.18.0.1", "dest_port": 21,
        "proto": if established { "TCP" } else { "UDP" },
        "alert": {"action": "allowed", "signature_id": 2100498, "signature": "ET WEB_SERVER /etc/passwd Detected",
                  "category": "Attempted Information Leak", "severity": 1},
        "direction": "to_server", "payload_printable": "GET /../../etc/passwd"
    });
    if established {
        v["app_proto"] = "ftp".into();
    }
    v.to_string()
}

/// `blocker debate --alert <file> --json` with an LLM council at `server`
/// (a dry run unless `apply`); returns (report, stderr).
fn debate_cli(
    state: &State,
    server: &LlmServer,
    alert: &str,
    apply: bool,
) -> (serde_json::Value, String) {
    let file = state.state_dir.join("alert.json");
    std::fs::write(&file, alert).unwrap();
    let mut args = vec![
        "debate",
        "--alert",
        file.to_str().unwrap(),
        "--json",
        "--agents",
        "llm",
    ];
    if !apply {
        args.push("--dry-run");
    }
    let url = server.base_url();
    args.extend(["--llm-base-url", &url, "--model", "test-model"]);
    let out = state
        .cmd(&args)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let report =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    (report, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn verdict<'a>(report: &'a serde_json::Value, ty: &str) -> &'a serde_json::Value {
    report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["action"]["type"] == ty)
        .unwrap_or_else(|| panic!("no {ty} verdict in {report:#}"))
}

/// Every agent proposes `action` in round 1 and approves everything after.
fn unanimous(action: serde_json::Value, why: &'static str) -> Script {
    Script::new(move |req: &Request| {
        if req.round == 1 {
            proposals(&[(action.clone(), why)])
        } else {
            agreeable(req)
        }
    })
}

#[test]
fn an_llm_council_banning_on_forgeable_evidence_is_refused_by_the_guard() {
    blocker_tests::require_root();
    let state = State::new();
    let server = LlmServer::start(
        unanimous(block(SUSPECT, 3600), "ET WEB_SERVER /etc/passwd Detected"),
        Duration::from_millis(5),
    );
    let (report, stderr) = debate_cli(&state, &server, &eve_line(SUSPECT, false), false);
    let v = verdict(&report, "block");
    assert_eq!(v["outcome"], "refused", "{report:#}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("could have been forged"),
        "{v}"
    );
    assert!(
        stderr.contains("guard refused to block 198.18.0.66"),
        "{stderr}"
    );
    // The prompt told the agents which class the evidence is.
    let data = server.requests()[0].data();
    assert!(
        data[0]
            .to_string()
            .contains("\"evidence_class\":\"forgeable\""),
        "{data:?}"
    );
    // The same council on an established flow: the ban passes the guard,
    // and the justification quoting the signature is kept (not refused).
    let server = LlmServer::start(
        unanimous(block(SUSPECT, 3600), "ET WEB_SERVER /etc/passwd Detected"),
        Duration::from_millis(5),
    );
    let (report, _) = debate_cli(&state, &server, &eve_line(SUSPECT, true), false);
    let v = verdict(&report, "block");
    assert_eq!(v["outcome"], "dry-run", "{report:#}");
}

#[test]
fn an_llm_council_cannot_switch_off_the_operators_policy() {
    blocker_tests::require_root();
    let state = State::new();
    // A ban creates the maps; then the operator's policy.
    state.ok(&["ban", "198.18.0.77", "--ttl", "1h"]);
    state.ok(&["policy", "zero-window-syn", "on", "--ttl", "10m"]);
    let off = serde_json::json!({"type": "zero_window_syn_policy", "enable": false, "ttl_secs": 0});
    let server = LlmServer::start(
        unanimous(off, "the alert says the policy hurts legitimate clients"),
        Duration::from_millis(5),
    );
    let (report, stderr) = debate_cli(&state, &server, &eve_line(SUSPECT, true), true);
    let v = verdict(&report, "zero_window_syn_policy");
    assert_eq!(v["outcome"], "refused", "{report:#}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("only add protection"),
        "{v}"
    );
    assert!(
        !stderr.contains("verdict applied: stop dropping"),
        "{stderr}"
    );
    let left = state.json(&["status"])["zero_window_policy_secs"].as_u64();
    assert!(left.is_some_and(|s| s > 500), "the policy was switched off");
    // Shortening it is removing protection too.
    let short =
        serde_json::json!({"type": "zero_window_syn_policy", "enable": true, "ttl_secs": 60});
    let server = LlmServer::start(
        unanimous(short, "a minute is enough"),
        Duration::from_millis(5),
    );
    let (report, _) = debate_cli(&state, &server, &eve_line(SUSPECT, true), true);
    assert_eq!(
        verdict(&report, "zero_window_syn_policy")["outcome"],
        "refused"
    );
    let left = state.json(&["status"])["zero_window_policy_secs"].as_u64();
    assert!(left.is_some_and(|s| s > 500), "the policy was shortened");
}

/// Decimal or hex spellings of x86-64 kernel addresses
/// (0xffff800000000000 and up) in `text`.
fn kernel_pointers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        let n = if let Some(h) = w.strip_prefix("0x") {
            u64::from_str_radix(h, 16).ok()
        } else {
            w.parse::<u64>().ok()
        };
        if n.is_some_and(|n| n >= 0xffff_8000_0000_0000) {
            out.push(w.to_string());
        }
    }
    out
}

#[test]
fn no_kernel_pointer_reaches_the_llm_the_journal_or_the_transcripts() {
    let lab = Lab::new();
    let _srv = lab.victim_server(PORT, 4 << 20);
    let state = State::new();
    let server = lab
        .server
        .run_in(|| LlmServer::start(Script::new(agreeable), Duration::from_millis(5)));
    let cfg = config(&state, "");
    let url = server.base_url();
    let mut d = Daemon::start(
        &state,
        &lab.server,
        &lab.server_if,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--agents",
            "llm",
            "--llm-base-url",
            &url,
            "--model",
            "test-model",
        ],
    );
    let _slow = KernelPeer::slow_reader(&lab.client, ip(CLIENT_V4[0]), server4());
    let with_socket = || {
        server.requests().into_iter().find(|r| {
            r.data()
                .first()
                .is_some_and(|d| d.to_string().contains("\"socket\""))
        })
    };
    assert!(
        wait_until(DETECT, || with_socket().is_some()),
        "no probe evidence reached the LLM:\n{}",
        d.log()
    );
    assert!(wait_until(DETECT, || debates(&state) >= 1), "{}", d.log());
    assert!(d.stop().success(), "{}", d.log());
    for r in server.requests() {
        let body = r.body.to_string();
        assert_eq!(
            kernel_pointers(&body),
            Vec::<String>::new(),
            "prompt: {body}"
        );
    }
    let id = state.json(&["debates", "list"])[0]["id"].to_string();
    let shown = state.ok(&["debates", "show", &id, "--prompts"]);
    assert_eq!(kernel_pointers(&shown), Vec::<String>::new(), "{shown}");
    assert_eq!(kernel_pointers(&d.log()), Vec::<String>::new());
    for entry in std::fs::read_dir(&state.state_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            assert_eq!(
                kernel_pointers(&text),
                Vec::<String>::new(),
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn an_llm_outage_still_bans_a_slow_reader_through_the_offline_fallback() {
    let lab = Lab::new();
    let _srv = lab.victim_server(PORT, 4 << 20);
    let state = State::new();
    let server = lab.server.run_in(|| {
        LlmServer::start(
            Script::new(|_| Reply::Status(503)),
            Duration::from_millis(5),
        )
    });
    let cfg = config(
        &state,
        "[council]\ndebate_deadline = \"5s\"\n[council.llm]\nretries = 1\nbackoff = \"100ms\"\n",
    );
    let url = server.base_url();
    let d = Daemon::start(
        &state,
        &lab.server,
        &lab.server_if,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--agents",
            "llm",
            "--llm-base-url",
            &url,
            "--model",
            "test-model",
        ],
    );
    let _slow = KernelPeer::slow_reader(&lab.client, ip(CLIENT_V4[0]), server4());
    assert!(
        wait_until(DETECT, || banned(&state).contains(CLIENT_V4[0])),
        "the slow reader was not banned during the outage:\n{}",
        d.log()
    );
    assert!(!server.requests().is_empty(), "the LLM was never asked");
    let list = state.json(&["debates", "list"]);
    let banning = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["passed"].as_u64() > Some(0))
        .unwrap_or_else(|| panic!("{list:#}"));
    assert!(
        banning["wall_ms"].as_u64().unwrap() <= 6000,
        "beyond the deadline plus one second: {banning}"
    );
    let shown = state.ok(&["debates", "show", &banning["id"].to_string()]);
    assert!(
        shown.contains("fell back to the offline council"),
        "the transcript does not say why:\n{shown}"
    );
    assert!(
        d.log().contains("fell back to the offline council"),
        "{}",
        d.log()
    );
}

/// Eve lines for `n` forged UDP alerts from as many sources in 198.19.0.0/16.
fn forged_ids_flood(n: u32) -> String {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&eve_line(
            &format!("198.19.{}.{}", i / 250, i % 250 + 1),
            false,
        ));
        text.push('\n');
    }
    text
}

#[test]
fn a_flood_of_forgeable_alerts_never_crowds_out_a_confirmed_slow_reader() {
    let lab = Lab::new();
    let _srv = lab.victim_server(PORT, 4 << 20);
    let state = State::new();
    let eve = state.state_dir.join("eve.json");
    std::fs::write(&eve, "").unwrap();
    // Small lanes and one debate at a time, so the flood overflows both the
    // intake and the debate queue.
    let d = start(
        &state,
        &lab,
        &format!(
            "queue = 16\neve_json = \"{}\"\n[council]\nmax_concurrent = 1\n",
            eve.display()
        ),
    );
    // Appends in bursts while the real slow reader holds our socket.
    let flood = |n: u32| {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().append(true).open(&eve).unwrap();
        f.write_all(forged_ids_flood(n).as_bytes()).unwrap();
    };
    flood(20_000);
    let _slow = KernelPeer::slow_reader(&lab.client, ip(CLIENT_V4[0]), server4());
    let stop_at = Instant::now() + DETECT;
    let mut banned_it = false;
    while Instant::now() < stop_at {
        flood(5_000);
        if banned(&state).contains(CLIENT_V4[0]) {
            banned_it = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        banned_it || wait_until(DETECT, || banned(&state).contains(CLIENT_V4[0])),
        "the slow reader was crowded out by forged IDS alerts:\n{}",
        d.log()
    );
    // `blocker status --json` shows what was shed (daemon.json is
    // rewritten every second).
    let shed = || -> Vec<serde_json::Value> {
        state.json(&["status"])["daemon"]["shed"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let intake = |shed: &[serde_json::Value]| {
        shed.iter()
            .filter(|s| {
                s["stage"] == "intake" && s["class"] == "forgeable" && s["source"] == "suricata"
            })
            .map(|s| s["count"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert!(
        wait_until(DETECT, || intake(&shed()) > 0),
        "nothing shed at the intake: {:?}",
        shed()
    );
    let shed = shed();
    println!("flood lab: slow reader banned; shed: {shed:?}");
    assert!(
        shed.iter().all(|s| s["class"] == "forgeable"),
        "confirmed evidence was shed: {shed:?}"
    );
    // No forged source was banned.
    let bans = banned(&state);
    assert!(
        bans.iter().all(|b| !b.starts_with("198.19.")),
        "a forged source was banned: {bans:?}"
    );
    let human = state.ok(&["status"]);
    assert!(human.contains("shed under load:"), "{human}");
}
