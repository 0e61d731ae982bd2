//! The CrowdSec bouncer against a real CrowdSec Local API (Debian's
//! package, unpacked by `cargo xtask`): decisions become XDP drops within
//! one poll, ranges, deletions, the allowlist winning, restarts of both
//! sides losing and duplicating nothing, a 100k-decision startup list, and
//! blocker's kernel evidence pushed back as alerts.
//!
//! The Local API runs in the lab's server namespace, on its loopback, where
//! `blocker run` runs too: the bouncer talks to it over 127.0.0.1.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use blocker::{kernel::maps::Tables, kernel::pins::PinDir, rule::List, state::journal::Store};
use blocker_tests::{
    State,
    crowdsec::Lapi,
    lab::{CLIENT_V4, Daemon, Lab, SERVER_V4, sh},
    peers::KernelPeer,
    wait_until,
};

/// Poll interval of the bouncer in these tests (10 s by default).
const POLL: &str = "1s";
/// Generous: a poll plus a loaded machine.
const APPLY: Duration = Duration::from_secs(20);
const PORT: u16 = 8080;
/// A client address outside the /28 of the server and the other clients,
/// for range decisions.
const RANGE_CLIENT: &str = "198.18.0.20";
const RANGE: &str = "198.18.0.16/28";

/// The daemon's config. `probes`: whether the treason probes run. They see
/// every namespace's sockets, so a slow reader of a test running beside
/// this one would be banned here too; only the push test needs them.
fn config(state: &State, lapi: &Lapi, key: &str, probes: bool, extra: &str) -> PathBuf {
    let key_file = state.state_dir.join("crowdsec.key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let path = state.state_dir.join("test.toml");
    std::fs::write(
        &path,
        format!(
            "[treason]\nstall = \"2s\"\nprobe = \"{}\"\n[sources]\nkmsg = false\n\
             [sources.crowdsec]\nenabled = true\nlapi_url = \"{}\"\napi_key_file = \"{}\"\n\
             poll_interval = \"{POLL}\"\ntimeout = \"60s\"\nmax_backoff = \"2s\"\n{extra}",
            if probes { "auto" } else { "off" },
            lapi.url(),
            key_file.display()
        ),
    )
    .unwrap();
    path
}

fn start(state: &State, lab: &Lab, cfg: &std::path::Path) -> Daemon {
    Daemon::start(
        state,
        &lab.server,
        &lab.server_if,
        &["--config", cfg.to_str().unwrap()],
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The kernel's live block rule matching `addr`, with the packets it dropped.
fn kernel_rule(state: &State, addr: &str) -> Option<u64> {
    let tables = Tables::open(&PinDir::new(&state.pin_dir)).ok()?;
    let entry = tables
        .matching(List::Block, ip(addr))
        .ok()
        .flatten()
        .filter(|e| e.is_live(blocker::clock::boottime_ns()))?;
    Some(tables.counters(&entry).map_or(0, |c| c.packets))
}

/// `blocker list --json` rules whose source starts with `crowdsec:`.
fn crowdsec_rules(state: &State) -> Vec<serde_json::Value> {
    state.json(&["list", "--list", "block"])["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["source"]
                .as_str()
                .is_some_and(|s| s.starts_with("crowdsec:"))
        })
        .cloned()
        .collect()
}

/// Every journal record (active or not) written for CrowdSec: a restart
/// that rewrote anything would add records.
fn journal_records(state: &State) -> Vec<(String, String, Option<String>)> {
    let store = Store::open_in(&state.state_dir).unwrap();
    let mut all = Vec::new();
    for prefix in [
        "198.18.0.2/32",
        "198.18.0.16/28",
        "198.18.0.5/32",
        "198.18.0.6/32",
    ] {
        for r in store.history(prefix.parse().unwrap()).unwrap() {
            if r.source.starts_with("crowdsec:") {
                all.push((r.net.to_string(), r.source, r.removed_by));
            }
        }
    }
    all
}

fn crowdsec_status(state: &State) -> serde_json::Value {
    state.daemon_status()["crowdsec"].clone()
}

/// `ping` from `src` every 20 ms for at most `secs` seconds, in the
/// background: bounded traffic to measure the first dropped packet.
fn pinger(lab: &Lab, src: &str, secs: u32) -> Child {
    lab.client
        .command(
            "ping",
            &[
                "-q",
                "-i",
                "0.02",
                "-w",
                &secs.to_string(),
                "-I",
                src,
                SERVER_V4,
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ping")
}

#[test]
fn decisions_become_xdp_drops_and_go_when_deleted() {
    let lab = Lab::new();
    sh(&[
        "ip",
        "-n",
        &lab.client.name,
        "addr",
        "add",
        &format!("{RANGE_CLIENT}/24"),
        "dev",
        &lab.client_if,
    ]);
    let lapi = Lapi::start(Some(&lab.server));
    let key = lapi.add_bouncer("blocker-test");
    let state = State::new();
    state.ok(&["allow", CLIENT_V4[2], "--reason", "office"]);
    let cfg = config(&state, &lapi, &key, false, "");
    let d = start(&state, &lab, &cfg);
    assert!(
        wait_until(APPLY, || crowdsec_status(&state)["connected"] == true),
        "bouncer never pulled:\n{}",
        d.log()
    );
    assert!(lab.ping(CLIENT_V4[0], SERVER_V4));

    // A decision for one address: dropped in XDP within a poll. A ping
    // every 20 ms measures the first dropped packet.
    let mut ping = pinger(&lab, CLIENT_V4[0], 30);
    let t0 = Instant::now();
    lapi.cscli(&["decisions", "add", "-i", CLIENT_V4[0], "-d", "1h"]);
    let mut first_drop = None;
    let dropped = wait_until(APPLY, || {
        let hit = kernel_rule(&state, CLIENT_V4[0]).is_some_and(|packets| packets > 0);
        if hit && first_drop.is_none() {
            first_drop = Some(t0.elapsed());
        }
        hit
    });
    let _ = ping.kill();
    let _ = ping.wait();
    assert!(dropped, "decision not enforced:\n{}", d.log());
    eprintln!(
        "MEASURE cscli decisions add -> first dropped packet: {:.0} ms (poll {POLL})",
        first_drop.unwrap().as_secs_f64() * 1e3
    );
    assert!(!lab.ping(CLIENT_V4[0], SERVER_V4));
    assert!(lab.ping(CLIENT_V4[1], SERVER_V4), "a bystander was dropped");
    let rules = crowdsec_rules(&state);
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0]["source"], "crowdsec:cscli");
    assert_eq!(rules[0]["reason_code"], "external");
    let left = rules[0]["expires_in_secs"].as_u64().unwrap();
    assert!(
        (3500..=3600).contains(&left),
        "kernel expiry = time left: {left}"
    );

    // A range.
    lapi.cscli(&["decisions", "add", "-r", RANGE, "-d", "30m"]);
    assert!(
        wait_until(APPLY, || kernel_rule(&state, RANGE_CLIENT).is_some()),
        "range not enforced:\n{}",
        d.log()
    );
    assert!(!lab.ping(RANGE_CLIENT, SERVER_V4));
    assert!(lab.ping(CLIENT_V4[1], SERVER_V4));

    // The allowlist wins, and the refusal is counted.
    lapi.cscli(&["decisions", "add", "-i", CLIENT_V4[2], "-d", "1h"]);
    // Another type than ban: counted, not enforced.
    lapi.cscli(&["decisions", "add", "-i", CLIENT_V4[1], "-t", "captcha"]);
    assert!(
        wait_until(APPLY, || {
            let s = crowdsec_status(&state);
            s["refused"]["allowlisted"] == 1 && s["skipped"]["types"]["captcha"] == 1
        }),
        "no refusal counted: {}\n{}",
        crowdsec_status(&state),
        d.log()
    );
    assert!(kernel_rule(&state, CLIENT_V4[2]).is_none());
    assert!(kernel_rule(&state, CLIENT_V4[1]).is_none());
    assert!(lab.ping(CLIENT_V4[2], SERVER_V4));
    assert!(lab.ping(CLIENT_V4[1], SERVER_V4));
    assert!(d.log().contains("\"captcha\" decisions are not enforced"));

    // Listed, exported and unbanned by origin.
    let listed = state.json(&["list", "--origin", "crowdsec:cscli"]);
    assert_eq!(
        listed["rules"].as_array().unwrap().len(),
        2,
        "{listed}\n{}",
        d.log()
    );
    let none = state.json(&["list", "--origin", "crowdsec:CAPI"]);
    assert!(none["rules"].as_array().unwrap().is_empty(), "{none}");
    let exported = state.ok(&["export", "--origin", "crowdsec:cscli"]);
    assert!(
        exported.contains(CLIENT_V4[0]) && exported.contains(RANGE),
        "{exported}"
    );
    assert!(!exported.contains(CLIENT_V4[2]), "{exported}");

    // Deleted in CrowdSec: traffic passes again, the journal says why.
    lapi.cscli(&["decisions", "delete", "-i", CLIENT_V4[0]]);
    assert!(
        wait_until(APPLY, || kernel_rule(&state, CLIENT_V4[0]).is_none()),
        "deleted decision still enforced:\n{}",
        d.log()
    );
    assert!(lab.ping(CLIENT_V4[0], SERVER_V4));
    let records = journal_records(&state);
    assert!(
        records.iter().any(|(n, s, by)| n == "198.18.0.2/32"
            && s == "crowdsec:cscli"
            && by.as_deref() == Some("crowdsec: decision deleted")),
        "{records:?}"
    );

    // The key is never logged nor published.
    assert!(!d.log().contains(&key), "the API key is in the log");
    assert!(!state.daemon_status().to_string().contains(&key));
}

#[test]
fn restarts_of_blocker_and_of_the_lapi_lose_and_duplicate_nothing() {
    let lab = Lab::new();
    sh(&[
        "ip",
        "-n",
        &lab.client.name,
        "addr",
        "add",
        &format!("{RANGE_CLIENT}/24"),
        "dev",
        &lab.client_if,
    ]);
    let mut lapi = Lapi::start(Some(&lab.server));
    let key = lapi.add_bouncer("blocker-test");
    let state = State::new();
    let cfg = config(&state, &lapi, &key, false, "");
    lapi.cscli(&["decisions", "add", "-i", CLIENT_V4[0], "-d", "1h"]);
    lapi.cscli(&["decisions", "add", "-r", RANGE, "-d", "1h"]);
    let mut d = start(&state, &lab, &cfg);
    assert!(
        wait_until(APPLY, || crowdsec_rules(&state).len() == 2),
        "startup list not applied:\n{}",
        d.log()
    );
    let before = journal_records(&state);
    assert_eq!(before.len(), 2, "{before:?}");

    // blocker restarts; meanwhile CrowdSec deletes one decision and adds one.
    d.stop();
    assert!(
        kernel_rule(&state, CLIENT_V4[0]).is_some(),
        "kept while down"
    );
    lapi.cscli(&["decisions", "delete", "-r", RANGE]);
    lapi.cscli(&["decisions", "add", "-i", "198.18.0.5", "-d", "1h"]);
    let d = start(&state, &lab, &cfg);
    assert!(
        wait_until(APPLY, || {
            let r = crowdsec_rules(&state);
            r.len() == 2 && r.iter().any(|r| r["address"] == "198.18.0.5")
        }),
        "changes made while blocker was down not applied: {:?}\n{}",
        crowdsec_rules(&state),
        d.log()
    );
    assert!(kernel_rule(&state, RANGE_CLIENT).is_none());
    assert!(lab.ping(RANGE_CLIENT, SERVER_V4));
    let after = journal_records(&state);
    // The address kept its one record (no duplicate), the range's record is
    // closed, the new address has one.
    let of = |net: &str| after.iter().filter(|r| r.0 == net).collect::<Vec<_>>();
    assert_eq!(of("198.18.0.2/32").len(), 1, "{after:?}");
    assert_eq!(of("198.18.0.2/32")[0].2, None, "{after:?}");
    assert_eq!(of("198.18.0.16/28").len(), 1, "{after:?}");
    assert!(of("198.18.0.16/28")[0].2.is_some(), "{after:?}");
    assert_eq!(of("198.18.0.5/32").len(), 1, "{after:?}");

    // The LAPI goes away: enforcement stays, status says so, retries back off.
    lapi.stop();
    assert!(
        wait_until(APPLY, || {
            let s = crowdsec_status(&state);
            s["connected"] == false && s["failures"].as_u64() >= Some(2)
        }),
        "outage not visible: {}",
        crowdsec_status(&state)
    );
    let s = crowdsec_status(&state);
    assert!(s["retry_in_secs"].as_f64().is_some(), "{s}");
    assert!(s["last_error"].as_str().is_some(), "{s}");
    let status_text = state.ok(&["status"]);
    assert!(status_text.contains("CrowdSec"), "{status_text}");
    assert!(
        !lab.ping(CLIENT_V4[0], SERVER_V4),
        "enforcement lost in the outage"
    );
    // Back, with a change made meanwhile... (decisions need the API, so the
    // change comes right after it is back)
    lapi.restart();
    lapi.cscli(&["decisions", "add", "-i", "198.18.0.6", "-d", "1h"]);
    assert!(
        wait_until(APPLY, || crowdsec_rules(&state)
            .iter()
            .any(|r| r["address"] == "198.18.0.6")
            && crowdsec_status(&state)["connected"] == true),
        "not resynced after the LAPI came back:\n{}",
        d.log()
    );
    let resynced = journal_records(&state);
    assert_eq!(
        resynced.len(),
        after.len() + 1,
        "a resync duplicated records: {resynced:?}"
    );
    assert!(!lab.ping(CLIENT_V4[0], SERVER_V4));
}

/// Writes `n` decisions for `cscli decisions import` (JSON).
fn decision_file(
    dir: &std::path::Path,
    name: &str,
    addrs: impl Iterator<Item = String>,
) -> PathBuf {
    let list: Vec<serde_json::Value> = addrs
        .map(|a| {
            serde_json::json!({"duration": "4h", "origin": "bulk", "scope": "ip", "type": "ban", "value": a})
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(&list).unwrap()).unwrap();
    path
}

#[test]
fn a_100k_startup_list_and_a_36k_burst_apply_in_bulk() {
    let lab = Lab::new();
    let lapi = Lapi::start(Some(&lab.server));
    let key = lapi.add_bouncer("blocker-test");
    let state = State::new();
    // 65,536 IPv4 (198.19.0.0/16) and 34,464 IPv6 addresses.
    let v4 = (0..65_536u32).map(|i| format!("198.19.{}.{}", i >> 8, i & 255));
    let v6 = (0..34_464u32).map(|i| format!("2001:db8:1::{:x}", i + 1));
    let file = decision_file(&lapi.dir, "startup.json", v4.chain(v6));
    let t = Instant::now();
    lapi.cscli(&["decisions", "import", "-i", file.to_str().unwrap()]);
    eprintln!(
        "MEASURE cscli decisions import of 100000: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let cfg = config(
        &state,
        &lapi,
        &key,
        false,
        "resync_interval = \"15s\"\n[maps]\nblock_v4 = 131072\nblock_v6 = 131072\n",
    );
    let t0 = Instant::now();
    let d = start(&state, &lab, &cfg);
    // The pipeline's own bans are not held up meanwhile: a ban through the
    // journal during the bulk apply.
    let t_ban = Instant::now();
    state.ok(&["ban", CLIENT_V4[1], "--ttl", "1h"]);
    let ban_ms = t_ban.elapsed().as_secs_f64() * 1e3;
    let applied =
        |n: u64| move |s: &serde_json::Value| s["applied"].as_u64().is_some_and(|a| a >= n);
    assert!(
        wait_until(Duration::from_secs(300), || applied(100_000)(
            &crowdsec_status(&state)
        )),
        "startup list not applied: {}\n{}",
        crowdsec_status(&state),
        d.log()
    );
    let s = crowdsec_status(&state);
    eprintln!(
        "MEASURE 100k startup list: {:.1} s from blocker start to all applied; apply step {:.0} ms; a CLI ban meanwhile took {ban_ms:.0} ms",
        t0.elapsed().as_secs_f64(),
        s["last_apply"]["ms"].as_f64().unwrap_or(-1.0)
    );
    assert_eq!(s["decisions"], 100_000, "{s}");
    assert!(kernel_rule(&state, "198.19.255.255").is_some());
    assert!(kernel_rule(&state, CLIENT_V4[1]).is_some());
    let per_origin = s["origins"].as_array().unwrap();
    assert!(
        per_origin
            .iter()
            .any(|o| o["origin"] == "crowdsec:cscli-import"
                && o["ip_type"] == "ipv4"
                && o["active_decisions"] == 65_536),
        "{s}"
    );

    // A burst of 36k more.
    let burst = (0..36_000u32).map(|i| format!("2001:db8:2::{:x}", i + 1));
    let file = decision_file(&lapi.dir, "burst.json", burst);
    lapi.cscli(&["decisions", "import", "-i", file.to_str().unwrap()]);
    let t1 = Instant::now();
    assert!(
        wait_until(Duration::from_secs(300), || applied(136_000)(
            &crowdsec_status(&state)
        )),
        "burst not applied: {}",
        crowdsec_status(&state)
    );
    eprintln!(
        "MEASURE 36k burst: {:.1} s from import to all applied; apply step {:.0} ms",
        t1.elapsed().as_secs_f64(),
        crowdsec_status(&state)["last_apply"]["ms"]
            .as_f64()
            .unwrap_or(-1.0)
    );
}

#[test]
fn kernel_confirmed_slow_reader_is_pushed_as_an_alert() {
    let lab = Lab::new();
    let _srv = lab.victim_server(PORT, 4 << 20);
    let lapi = Lapi::start(Some(&lab.server));
    let key = lapi.add_bouncer("blocker-test");
    let password = "blocker-test-machine-password-0123456789";
    lapi.add_machine("blocker-test-machine", password);
    let state = State::new();
    let pw_file = state.state_dir.join("machine.password");
    std::fs::write(&pw_file, password).unwrap();
    let cfg = config(
        &state,
        &lapi,
        &key,
        true,
        &format!(
            "[sources.crowdsec.push]\nenabled = true\nmachine_id = \"blocker-test-machine\"\npassword_file = \"{}\"\n",
            pw_file.display()
        ),
    );
    let d = start(&state, &lab, &cfg);
    let server: SocketAddr = SocketAddr::new(ip(SERVER_V4), PORT);
    let _slow = KernelPeer::slow_reader(&lab.client, ip(CLIENT_V4[0]), server);
    let pushed = || {
        let alerts = lapi.cscli_json(&["alerts", "list"]);
        alerts.as_array().is_some_and(|a| {
            a.iter().any(|x| {
                x["scenario"] == "blocker/slow-read"
                    && x["source"]["ip"] == CLIENT_V4[0]
                    && x["machine_id"] == "blocker-test-machine"
            })
        })
    };
    assert!(
        wait_until(Duration::from_secs(45), pushed),
        "no alert in cscli alerts list: {}\n{}",
        crowdsec_status(&state),
        d.log()
    );
    // Its decision comes back through the stream and is not applied twice:
    // the ban stays the council's.
    std::thread::sleep(Duration::from_secs(2));
    let list = state.json(&["list", "--list", "block"]);
    let rule = list["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == CLIENT_V4[0])
        .cloned()
        .unwrap_or_else(|| panic!("no ban: {list}"));
    assert_eq!(rule["source"], "council", "{rule}");
    assert!(crowdsec_status(&state)["skipped"]["own"].as_u64() >= Some(1));
    assert!(!d.log().contains(password));
}
