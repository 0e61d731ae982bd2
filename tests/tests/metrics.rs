//! The metrics endpoint of a live `blocker run` during a lab attack, checked
//! by scraping it, by `promtool check metrics`, and by a real Prometheus;
//! and `blocker top` driven under tmux.

use std::{
    collections::HashMap,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use blocker_tests::{
    State, blocker_bin, describe,
    eve::{EveFile, confirmed_alert},
    lab::{CLIENT_V4, CLIENT_V6, Daemon, Lab, NetNs},
    unique, wait_until,
};

const PORT: u16 = 8080;
/// The daemon's metrics port inside the lab's server namespace (a fresh
/// namespace: nothing else listens there).
const METRICS_PORT: u16 = 9464;
const DETECT: Duration = Duration::from_secs(20);

/// `GET path` on the daemon's endpoint from inside `ns`: (status, body).
fn get(ns: &NetNs, port: u16, path: &str, accept: &str) -> Option<(u16, String)> {
    let path = path.to_string();
    let accept = accept.to_string();
    ns.run_in(move || {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).ok()?;
        let (head, body) = raw.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    })
}

fn scrape(ns: &NetNs) -> String {
    let (status, body) = get(ns, METRICS_PORT, "/metrics", "text/plain").expect("scrape");
    assert_eq!(status, 200, "{body}");
    body
}

/// `name{labels}` → value, from the Prometheus text format.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn value(text: &str, key: &str) -> f64 {
    samples(text).get(key).copied().unwrap_or(0.0)
}

fn config(state: &State) -> PathBuf {
    let path = state.state_dir.join("test.toml");
    std::fs::write(
        &path,
        format!(
            "[sources]\nkmsg = false\n[xdp]\nzero_window_threshold = 20\n[metrics]\naddr = \"{METRICS_PORT}\"\n"
        ),
    )
    .unwrap();
    path
}

fn start(state: &State, lab: &Lab) -> Daemon {
    let cfg = config(state);
    let (d, _eve) = Daemon::start_following_eve(state, lab, cfg.to_str().unwrap());
    d
}

/// Zero-window SYNs are forgeable evidence, watched and never a per-source
/// ban (issue 10); the ban comes from kernel-independent confirmed evidence:
/// an IDS alert on an established TCP session (an application protocol).
fn confirm(state: &State, src: &str) {
    EveFile::at(state).append(&confirmed_alert(src));
}

/// `count` zero-window SYNs from `src` to the server (bounded, 2 ms apart).
fn hping(lab: &Lab, src: &str, count: u32) {
    lab.zero_window_syns(src, PORT, count, 2000);
}

fn banned(state: &State, addr: &str) -> bool {
    state.json(&["list"])["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["list"] == "block" && r["address"] == addr)
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; `cargo xtask test` installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}\n--- scrape ---\n{text}",
        describe(&out)
    );
}

#[test]
fn scrape_follows_a_zero_window_syn_flood_and_passes_promtool() {
    let lab = Lab::new();
    let _srv = lab.tcp_server(PORT);
    let state = State::new();
    let d = start(&state, &lab);
    let flooder = CLIENT_V4[0];

    // Liveness and readiness before anything happened.
    assert!(
        wait_until(DETECT, || get(&lab.server, METRICS_PORT, "/healthz", "*/*")
            .is_some_and(|(s, _)| s == 200)),
        "/healthz never answered 200:\n{}",
        d.log()
    );
    let (status, body) = get(&lab.server, METRICS_PORT, "/readyz", "*/*").unwrap();
    assert_eq!(status, 200, "/readyz: {body}");

    let before = scrape(&lab.server);
    assert_eq!(value(&before, "blocker_maps_loaded"), 1.0, "{before}");
    assert_eq!(value(&before, "blocker_zero_window_syn_packets_total"), 0.0);
    assert_eq!(value(&before, "blocker_journal_degraded"), 0.0);
    promtool_check(&before);

    // The flood: past the threshold, the council bans the source.
    hping(&lab, flooder, 30);
    confirm(&state, flooder);
    assert!(
        wait_until(DETECT, || banned(&state, flooder)),
        "flooder not banned:\n{}",
        d.log()
    );
    let banned_text = scrape(&lab.server);
    let v = |k: &str| value(&banned_text, k);
    // Counted up to the threshold (20); once banned, the rest of the 30
    // are dropped before the zero-window check.
    assert!(
        v("blocker_zero_window_syn_packets_total") >= 20.0,
        "{banned_text}"
    );
    assert!(
        v("blocker_zero_window_syn_packets_total") + v("blocker_xdp_dropped_packets_total") >= 30.0,
        "{banned_text}"
    );
    assert!(v(r#"blocker_alerts_total{source="xdp",kind="zero-window-syn"}"#) >= 1.0);
    assert!(v(r#"blocker_incidents_total{source="xdp"}"#) >= 1.0);
    assert!(v("blocker_debates_total") >= 1.0, "{banned_text}");
    assert!(v("blocker_debate_rounds_total") >= 1.0);
    assert!(v("blocker_debate_duration_seconds_count") >= 1.0);
    assert!(v(r#"blocker_verdicts_total{action="block",outcome="applied"}"#) >= 1.0);
    assert!(v(r#"blocker_rules_added_total{list="block",origin="council"}"#) >= 1.0);
    assert!(v("blocker_evidence_to_ban_seconds_count") >= 1.0);
    assert_eq!(
        v(r#"blocker_active_rules{list="block",origin="council",ip_type="ipv4"}"#),
        1.0,
        "{banned_text}"
    );
    // The SYNs before the ban passed (hping's frames are 54 bytes: at
    // least 40 counts for IPv4 + TCP).
    assert!(
        v("blocker_xdp_passed_bytes_total") >= 20.0 * 40.0,
        "{banned_text}"
    );
    let dropped_before = v("blocker_xdp_dropped_packets_total");
    let dropped_bytes_before = v("blocker_xdp_dropped_bytes_total");

    // The banned source keeps sending: every frame is dropped, counted
    // globally, for its origin, and on its rule.
    hping(&lab, flooder, 50);
    let mut after = String::new();
    assert!(
        wait_until(DETECT, || {
            after = scrape(&lab.server);
            value(&after, "blocker_xdp_dropped_packets_total") >= dropped_before + 50.0
        }),
        "drops did not move by 50 (was {dropped_before}):\n{after}"
    );
    let v = |k: &str| value(&after, k);
    assert!(
        v("blocker_xdp_dropped_bytes_total") >= dropped_bytes_before + 50.0 * 40.0,
        "{after}"
    );
    assert!(v(r#"blocker_dropped_packets{origin="council",ip_type="ipv4"}"#) >= 50.0);
    assert!(v(r#"blocker_dropped_bytes{origin="council",ip_type="ipv4"}"#) >= 50.0 * 40.0);
    assert!(
        v(&format!(
            r#"blocker_rule_dropped_packets{{rule="{flooder}",origin="council"}}"#
        )) >= 50.0,
        "{after}"
    );

    // A ban from the CLI shows up under its own origin and family.
    state.ok(&[
        "ban",
        CLIENT_V6[0],
        "--ttl",
        "1h",
        "--reason",
        "metrics test",
    ]);
    let cli = scrape(&lab.server);
    assert_eq!(
        value(
            &cli,
            r#"blocker_active_rules{list="block",origin="cli",ip_type="ipv6"}"#
        ),
        1.0,
        "{cli}"
    );
    promtool_check(&cli);

    // OpenMetrics when asked for it.
    let (status, om) = get(
        &lab.server,
        METRICS_PORT,
        "/metrics",
        "application/openmetrics-text;version=1.0.0",
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(om.trim_end().ends_with("# EOF"), "{om}");
    assert!(om.contains("blocker_xdp_dropped_packets_total"), "{om}");
}

#[test]
fn readiness_fails_when_xdp_is_detached() {
    let lab = Lab::new();
    let state = State::new();
    let d = start(&state, &lab);
    assert!(
        wait_until(DETECT, || get(&lab.server, METRICS_PORT, "/readyz", "*/*")
            .is_some_and(|(s, _)| s == 200)),
        "never ready:\n{}",
        d.log()
    );
    state.ok(&["detach", "--iface", &lab.server_if]);
    let (status, body) = get(&lab.server, METRICS_PORT, "/readyz", "*/*").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("XDP is not attached"), "{body}");
    // Still alive: liveness is about the pipeline, not the attachment.
    assert_eq!(
        get(&lab.server, METRICS_PORT, "/healthz", "*/*").unwrap().0,
        200
    );
}

/// A Prometheus server on the namespace's loopback, killed on drop.
struct Prometheus {
    child: std::process::Child,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_the_daemon() {
    let lab = Lab::new();
    let state = State::new();
    let d = start(&state, &lab);
    let dir = state.state_dir.join(unique("prom"));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: blocker\n    static_configs:\n      - targets: ['127.0.0.1:{METRICS_PORT}']\n"
        ),
    )
    .unwrap();
    let prom_port = 9090;
    let log = dir.join("prometheus.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = lab
        .server
        .command(
            "prometheus",
            &[
                &format!("--config.file={}", cfg.display()),
                &format!("--storage.tsdb.path={}", dir.join("data").display()),
                &format!("--web.listen-address=127.0.0.1:{prom_port}"),
            ],
        )
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("prometheus (Debian package prometheus; `cargo xtask test` installs it)");
    let prom = Prometheus { child, log };
    state.ok(&[
        "ban",
        CLIENT_V4[2],
        "--ttl",
        "1h",
        "--reason",
        "prometheus test",
    ]);
    let query = |q: &str| -> Option<serde_json::Value> {
        let (status, body) = get(
            &lab.server,
            prom_port,
            &format!("/api/v1/query?query={q}"),
            "application/json",
        )?;
        (status == 200).then(|| serde_json::from_str(&body).ok())?
    };
    let mut last = None;
    let found = wait_until(Duration::from_secs(60), || {
        last = query("blocker_active_rules%7Borigin%3D%22cli%22%7D");
        last.as_ref().is_some_and(|v| {
            v["data"]["result"]
                .as_array()
                .is_some_and(|r| r.iter().any(|s| s["value"][1] == "1"))
        })
    });
    assert!(
        found,
        "Prometheus never stored blocker_active_rules{{origin=\"cli\"}} = 1: {last:?}\n{}\n{}",
        std::fs::read_to_string(&prom.log).unwrap_or_default(),
        d.log()
    );
    let up = query("up%7Bjob%3D%22blocker%22%7D").unwrap();
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
}

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux (Debian package tmux; `cargo xtask test` installs it)")
    }

    fn capture(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    fn alive(&self) -> bool {
        self.cmd(&["has-session", "-t", "top"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[test]
fn top_shows_the_attack_under_tmux_and_quits_on_q() {
    let lab = Lab::new();
    let _srv = lab.tcp_server(PORT);
    let state = State::new();
    let d = start(&state, &lab);
    let flooder = CLIENT_V4[0];
    let talker = CLIENT_V4[1];
    state.ok(&["ban", CLIENT_V6[0], "--ttl", "1h", "--reason", "top test"]);

    let tmux = Tmux {
        socket: unique("blocker-top-"),
    };
    let shell = format!(
        "BLOCKER_PIN_DIR={} BLOCKER_STATE_DIR={} {} top",
        state.pin_dir.display(),
        state.state_dir.display(),
        blocker_bin().display()
    );
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "200",
        "-y",
        "50",
        &shell,
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let mut screen = String::new();
    assert!(
        wait_until(DETECT, || {
            screen = tmux.capture();
            screen.contains("Active bans") && screen.contains(CLIENT_V6[0])
        }),
        "top never showed the CLI ban:\n{screen}"
    );
    assert!(screen.contains("daemon: running"), "{screen}");
    assert!(screen.contains("journal: ok"), "{screen}");

    // The attack as it happens: a flood banned by the council, a talker
    // below the threshold; top follows without being restarted.
    hping(&lab, flooder, 30);
    hping(&lab, talker, 10);
    confirm(&state, flooder);
    assert!(
        wait_until(DETECT, || banned(&state, flooder)),
        "flooder not banned:\n{}",
        d.log()
    );
    assert!(
        wait_until(DETECT, || {
            screen = tmux.capture();
            screen
                .lines()
                .any(|l| l.contains(flooder) && l.contains("council"))
                && screen
                    .lines()
                    .any(|l| l.contains(talker) && l.contains(" 10 "))
                && screen.contains("applied")
        }),
        "top did not follow the attack:\n{screen}"
    );

    let out = tmux.cmd(&["send-keys", "-t", "top", "q"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        wait_until(Duration::from_secs(10), || !tmux.alive()),
        "top did not quit on q:\n{}",
        tmux.capture()
    );

    // Not a terminal: one plain snapshot; --json for scripts.
    let plain = state.ok(&["top"]);
    assert!(plain.contains("Active bans (2)"), "{plain}");
    assert!(plain.contains(flooder), "{plain}");
    let json = state.json(&["top"]);
    assert!(
        json["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["net"] == format!("{flooder}/32") && r["origin"] == "council"),
        "{json}"
    );
}
