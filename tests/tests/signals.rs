//! Signals (issue 10): SIGTERM during start-up ends the daemon cleanly,
//! leaving either what a normal stop leaves (pinned maps, an attached and
//! pinned XDP link) or nothing attached; SIGHUP reloads the configuration's
//! guard, allowlist and council settings without reloading the programs,
//! and an invalid file changes nothing.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use blocker_tests::{
    State, blocker_bin,
    lab::{CLIENT_V4, Daemon, Lab, NetNs, SERVER_V4},
    peers::KernelPeer,
    unique, wait_until,
};

const PORT: u16 = 8080;
const TCP_TIMEOUT: Duration = Duration::from_millis(700);
/// Generous: the machine is shared.
const PROMPT: Duration = Duration::from_secs(60);
const DETECT: Duration = Duration::from_secs(30);

fn base_config() -> &'static str {
    "[treason]\nstall = \"2s\"\n[sources]\nkmsg = false\n"
}

fn write_config(state: &State, extra: &str) -> PathBuf {
    let path = state.state_dir.join("test.toml");
    std::fs::write(&path, format!("{}{extra}", base_config())).unwrap();
    path
}

/// `blocker run` spawned without waiting for it to be ready.
fn spawn(state: &State, lab: &Lab, cfg: &Path, log: &Path) -> Child {
    let file = File::create(log).unwrap();
    lab.server
        .command(
            blocker_bin(),
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
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap()
}

fn kill(pid: u32, sig: i32) {
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

/// Whether an XDP program is attached to `iface` in `ns`.
fn xdp_attached(ns: &NetNs, iface: &str) -> bool {
    let out = ns.output("ip", &["-details", "-json", "link", "show", "dev", iface]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0].get("xdp").is_some()
}

/// The addresses of a large ban list, in the test ranges.
fn many_addresses(n: u32) -> String {
    let mut s = String::new();
    for i in 0..n {
        // 198.19.0.0/16 and 198.18.128.0/17: clear of the lab's hosts.
        let a = if i < 65_536 {
            [198, 19, (i >> 8) as u8, i as u8]
        } else {
            let j = i - 65_536;
            [198, 18, 128 | (j >> 8) as u8, j as u8]
        };
        s.push_str(&std::net::Ipv4Addr::from(a).to_string());
        s.push('\n');
    }
    s
}

/// As after a reboot: bans in the journal, nothing in bpffs.
fn forget_pins(state: &State) {
    let _ = state.cmd(&["detach", "--all"]).output();
    let _ = std::fs::remove_dir_all(&state.pin_dir);
}

#[test]
fn sigterm_during_start_up_stops_cleanly_with_nothing_half_attached() {
    let lab = Lab::new();
    let state = State::new();
    let cfg = write_config(&state, "");
    let list = state.state_dir.join("many.txt");
    const RULES: u32 = 90_000;
    std::fs::write(&list, many_addresses(RULES)).unwrap();
    state.ok(&["import", list.to_str().unwrap(), "--ttl", "1d"]);
    let mut report = Vec::new();
    for delay_ms in [0u64, 5, 30, 100, 300, 1000, 3000] {
        forget_pins(&state);
        assert!(!xdp_attached(&lab.server, &lab.server_if));
        let log = state.state_dir.join(format!("{}.log", unique("start-")));
        let mut child = spawn(&state, &lab, &cfg, &log);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let sent = Instant::now();
        kill(child.id(), libc::SIGTERM);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if sent.elapsed() > PROMPT {
                let _ = child.kill();
                panic!(
                    "blocker run ignored SIGTERM for {PROMPT:?} (sent {delay_ms} ms after spawn):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        use std::os::unix::process::ExitStatusExt as _;
        // Before the handlers are installed (the first instants of the
        // process) SIGTERM's default action ends it: nothing was loaded.
        assert!(
            status.success() || status.signal() == Some(libc::SIGTERM),
            "{status} after SIGTERM at {delay_ms} ms:\n{text}"
        );
        if status.success() {
            assert!(text.contains("SIGTERM received"), "{text}");
            assert!(
                text.contains("during start-up: stopping cleanly") || text.contains("exiting"),
                "no line says how it stopped:\n{text}"
            );
        }
        // Consistent: an XDP program is attached exactly when a pinned link
        // tracks it.
        let attached = xdp_attached(&lab.server, &lab.server_if);
        let pinned = state.pin_dir.join(format!("link_{}", lab.server_if));
        let pinned = pinned.exists()
            || std::fs::read_dir(&state.pin_dir)
                .map(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().contains(&lab.server_if))
                })
                .unwrap_or(false);
        assert_eq!(
            attached, pinned,
            "XDP attached: {attached}, pinned link: {pinned} after SIGTERM at {delay_ms} ms:\n{text}"
        );
        let stage = text
            .lines()
            .find(|l| l.contains("stopping cleanly") || l.contains("exiting;"))
            .map(|l| l.split_once("INFO").map_or(l, |x| x.1).trim().to_string())
            .unwrap_or_else(|| format!("{status}"));
        report.push(format!(
            "{delay_ms} ms: exit {status} after {:?}; attached {attached}: {stage}",
            sent.elapsed()
        ));
    }
    for r in &report {
        println!("signals lab: SIGTERM at {r}");
    }
    // No stale lock, and the journal is whole: a normal start restores
    // every ban.
    forget_pins(&state);
    let mut d = Daemon::start(
        &state,
        &lab.server,
        &lab.server_if,
        &["--config", cfg.to_str().unwrap()],
    );
    assert!(
        wait_until(PROMPT, || {
            state.json(&["list"])["rules"]
                .as_array()
                .is_some_and(|r| r.len() as u32 >= RULES)
        }),
        "{}",
        d.log()
    );
    assert!(d.stop().success(), "{}", d.log());
    assert!(
        xdp_attached(&lab.server, &lab.server_if),
        "a normal stop leaves XDP attached"
    );
}

fn allowed(state: &State) -> Vec<String> {
    state.json(&["list", "--list", "allow", "--origin", "config"])["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| r["address"].as_str().unwrap().to_string())
        .collect()
}

fn banned(state: &State) -> Vec<String> {
    state.json(&["list", "--list", "block"])["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| r["address"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn sighup_reloads_the_allowlist_and_guard_and_rejects_an_invalid_config() {
    let lab = Lab::new();
    let _srv = lab.victim_server(PORT, 4 << 20);
    let state = State::new();
    let cfg = write_config(&state, "");
    let d = Daemon::start(
        &state,
        &lab.server,
        &lab.server_if,
        &["--config", cfg.to_str().unwrap()],
    );
    let hup_and_wait = |needle: &str| {
        let before = d.log().matches(needle).count();
        kill(d.pid(), libc::SIGHUP);
        assert!(
            wait_until(DETECT, || d.log().matches(needle).count() > before),
            "no {needle:?} after SIGHUP:\n{}",
            d.log()
        );
    };
    hup_and_wait("SIGHUP: nothing changed");

    // Allowlist the client, tighten the guard, and ask for something that
    // needs a restart.
    let suspect = CLIENT_V4[0];
    write_config(
        &state,
        &format!(
            "[xdp]\nzero_window_threshold = 7\n[guard]\nallowlist = [\"{suspect}\"]\nmax_ttl = \"7d\"\n"
        ),
    );
    hup_and_wait(&format!("allowlist: added {suspect}"));
    let log = d.log();
    for line in [
        format!("SIGHUP: [guard] allowlist: [] → [\"{suspect}\"]"),
        "SIGHUP: [guard] max_ttl: \"30days\" → \"7days\"".to_string(),
        "SIGHUP: [xdp] zero_window_threshold: 20 → 7: needs a restart".to_string(),
    ] {
        assert!(log.contains(&line), "missing {line:?}:\n{log}");
    }
    assert!(
        !log.contains("attached XDP") || log.matches("attached XDP").count() == 1,
        "the programs were reloaded:\n{log}"
    );
    assert_eq!(allowed(&state), vec![suspect.to_string()]);
    // The kernel allowlist map has it...
    let dump = state.ok(&["list", "--list", "allow", "--json"]);
    assert!(dump.contains(suspect), "{dump}");
    // ...and the guard refuses a ban on it: a real slow reader from that
    // address is debated, not banned.
    let _slow = KernelPeer::slow_reader(
        &lab.client,
        suspect.parse().unwrap(),
        std::net::SocketAddr::new(SERVER_V4.parse().unwrap(), PORT),
    );
    assert!(
        wait_until(DETECT, || {
            state.daemon_status()["council"]["debates"]
                .as_u64()
                .unwrap_or(0)
                >= 1
        }),
        "the slow reader was never debated:\n{}",
        d.log()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !banned(&state).iter().any(|b| b.starts_with(suspect)),
        "an allowlisted address was banned:\n{}",
        d.log()
    );

    // An invalid file is rejected with the reason; the old config stays.
    std::fs::write(&cfg, "[guard]\nallowlist = [\"not-an-address\"]\n").unwrap();
    hup_and_wait("rejected, the running configuration is kept");
    assert!(
        d.log().contains("[guard] allowlist"),
        "the reason is not logged:\n{}",
        d.log()
    );
    std::fs::write(&cfg, "[guard\n").unwrap();
    hup_and_wait("rejected, the running configuration is kept");
    assert_eq!(state.daemon_status()["pid"].as_u64(), Some(d.pid() as u64));
    assert_eq!(allowed(&state), vec![suspect.to_string()]);

    // Out of the file, out of the kernel allowlist.
    write_config(&state, "[xdp]\nzero_window_threshold = 7\n");
    hup_and_wait(&format!("allowlist: removed {suspect}"));
    assert_eq!(allowed(&state), Vec::<String>::new());
    assert!(lab.tcp_connect(
        CLIENT_V4[1],
        std::net::SocketAddr::new(SERVER_V4.parse().unwrap(), PORT),
        TCP_TIMEOUT
    ));
}
