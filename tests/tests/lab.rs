//! blocker on a real veth between network namespaces: ping and TCP from a
//! banned source fail, from others succeed; bans survive the daemon.

use std::{net::SocketAddr, process::Command, time::Duration};

use blocker_tests::{
    State, describe,
    lab::{CLIENT_V4, CLIENT_V6, Daemon, Lab, SERVER_V4, SERVER_V6},
};

const PORT: u16 = 8080;
const TCP_TIMEOUT: Duration = Duration::from_millis(700);

fn server4() -> SocketAddr {
    SocketAddr::new(SERVER_V4.parse().unwrap(), PORT)
}

fn server6() -> SocketAddr {
    SocketAddr::new(SERVER_V6.parse().unwrap(), PORT)
}

#[test]
fn bans_take_effect_on_live_traffic_and_unbans_lift_them() {
    let lab = Lab::new();
    let _srv = lab.tcp_server(PORT);
    let state = State::new();
    let _d = Daemon::start(&state, &lab.server, &lab.server_if, &[]);

    let (banned, other) = (CLIENT_V4[0], CLIENT_V4[1]);
    assert!(lab.ping(banned, SERVER_V4), "before the ban");
    assert!(
        lab.tcp_connect(banned, server4(), TCP_TIMEOUT),
        "before the ban"
    );

    state.ok(&[
        "ban",
        banned,
        CLIENT_V6[0],
        "--ttl",
        "1h",
        "--reason",
        "test",
    ]);
    assert!(!lab.ping(banned, SERVER_V4), "ping from a banned v4 source");
    assert!(
        !lab.tcp_connect(banned, server4(), TCP_TIMEOUT),
        "TCP from a banned v4 source"
    );
    assert!(
        !lab.ping(CLIENT_V6[0], SERVER_V6),
        "ping from a banned v6 source"
    );
    assert!(
        !lab.tcp_connect(CLIENT_V6[0], server6(), TCP_TIMEOUT),
        "TCP from a banned v6 source"
    );
    assert!(lab.ping(other, SERVER_V4), "ping from another source");
    assert!(
        lab.tcp_connect(other, server4(), TCP_TIMEOUT),
        "TCP from another source"
    );
    assert!(
        lab.tcp_connect(CLIENT_V6[1], server6(), TCP_TIMEOUT),
        "TCP from another v6 source"
    );

    // The drops were counted on the rule and globally.
    let list = state.json(&["list"]);
    let rule = list["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == banned)
        .expect("banned rule listed");
    assert!(rule["packets"].as_u64().unwrap() >= 2, "{rule}");
    assert_eq!(rule["reason"], "test");
    assert_eq!(rule["source"], "cli");
    assert!(rule["expires_in_secs"].as_u64().unwrap() > 3500);
    let stats = state.json(&["stats"]);
    assert!(stats["dropped"].as_u64().unwrap() >= 4, "{stats}");

    state.ok(&["unban", banned, CLIENT_V6[0]]);
    assert!(lab.ping(banned, SERVER_V4), "after the unban");
    assert!(
        lab.tcp_connect(banned, server4(), TCP_TIMEOUT),
        "after the unban"
    );
    assert!(
        lab.tcp_connect(CLIENT_V6[0], server6(), TCP_TIMEOUT),
        "v6 after the unban"
    );
}

#[test]
fn cidr_bans_and_the_allowlist_on_live_traffic() {
    let lab = Lab::new();
    let _srv = lab.tcp_server(PORT);
    let state = State::new();
    let _d = Daemon::start(&state, &lab.server, &lab.server_if, &[]);
    state.ok(&["ban", "198.18.0.0/30", "2001:db8::/120"]); // .0-.3 and ::0-::ff
    assert!(!lab.tcp_connect(CLIENT_V4[0], server4(), TCP_TIMEOUT));
    assert!(!lab.tcp_connect(CLIENT_V4[1], server4(), TCP_TIMEOUT));
    assert!(
        lab.tcp_connect(CLIENT_V4[2], server4(), TCP_TIMEOUT),
        ".4 is outside the /30"
    );
    assert!(!lab.tcp_connect(CLIENT_V6[0], server6(), TCP_TIMEOUT));
    // The allowlist wins over the ban.
    let out = state.run(&["allow", CLIENT_V4[1]]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        lab.tcp_connect(CLIENT_V4[1], server4(), TCP_TIMEOUT),
        "allowlisted inside a banned /30"
    );
    assert!(!lab.tcp_connect(CLIENT_V4[0], server4(), TCP_TIMEOUT));
    // Banning an allowlisted address says it has no effect.
    let out = state.run(&["ban", CLIENT_V4[1]]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("allowlisted"),
        "{}",
        describe(&out)
    );
    state.ok(&["disallow", CLIENT_V4[1]]);
    assert!(!lab.tcp_connect(CLIENT_V4[1], server4(), TCP_TIMEOUT));
}

#[test]
fn sigkill_keeps_enforcing_and_restart_keeps_every_entry() {
    let lab = Lab::new();
    let _srv = lab.tcp_server(PORT);
    let state = State::new();
    let mut d = Daemon::start(&state, &lab.server, &lab.server_if, &[]);
    state.ok(&["ban", CLIENT_V4[0], "203.0.113.0/24", "2001:db8:ffff::/48"]);
    state.ok(&["allow", "198.51.100.0/24"]);
    for i in 0..50 {
        state.ok(&["ban", &format!("198.19.{}.{}", i / 10, i % 10 + 1)]);
    }
    let before = state.json(&["list"]);
    assert_eq!(before["rules"].as_array().unwrap().len(), 54);

    d.kill9();
    assert!(
        !lab.ping(CLIENT_V4[0], SERVER_V4),
        "still dropping after SIGKILL"
    );
    assert!(
        !lab.tcp_connect(CLIENT_V4[0], server4(), TCP_TIMEOUT),
        "still dropping after SIGKILL"
    );
    assert!(
        lab.tcp_connect(CLIENT_V4[1], server4(), TCP_TIMEOUT),
        "others unaffected"
    );
    // The CLI still works with no daemon.
    state.ok(&["ban", CLIENT_V4[2]]);
    assert!(
        !lab.tcp_connect(CLIENT_V4[2], server4(), TCP_TIMEOUT),
        "ban without a daemon"
    );

    let d2 = Daemon::start(&state, &lab.server, &lab.server_if, &[]);
    assert!(
        d2.log().contains("replaced the XDP program"),
        "{}",
        d2.log()
    );
    let after = state.json(&["list"]);
    let key = |v: &serde_json::Value| {
        let mut rules: Vec<(String, String)> = v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["list"].to_string(), r["prefix"].to_string()))
            .collect();
        rules.sort();
        rules
    };
    let mut expected = key(&before);
    expected.push(("\"block\"".into(), format!("\"{}/32\"", CLIENT_V4[2])));
    expected.sort();
    assert_eq!(key(&after), expected, "every entry survives the restart");
    assert!(
        !lab.tcp_connect(CLIENT_V4[0], server4(), TCP_TIMEOUT),
        "dropping after restart"
    );
    // Counters survive too (same pinned map).
    let rule = after["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == CLIENT_V4[0])
        .unwrap();
    assert!(rule["packets"].as_u64().unwrap() >= 2);
}

#[test]
fn expiry_is_enforced_by_the_kernel_without_a_daemon() {
    let lab = Lab::new();
    let _srv = lab.tcp_server(PORT);
    let state = State::new();
    let mut d = Daemon::start(&state, &lab.server, &lab.server_if, &[]);
    state.ok(&["ban", CLIENT_V4[0], "--ttl", "2s"]);
    assert!(!lab.tcp_connect(CLIENT_V4[0], server4(), TCP_TIMEOUT));
    d.kill9();
    std::thread::sleep(Duration::from_millis(2200));
    assert!(
        lab.tcp_connect(CLIENT_V4[0], server4(), TCP_TIMEOUT),
        "ban expired in the kernel"
    );
    let stats = state.json(&["stats"]);
    assert!(stats["expired_rule_hits"].as_u64().unwrap() >= 1, "{stats}");
    let list = state.json(&["list"]);
    assert_eq!(list["rules"][0]["expired"], true, "{list}");
}

#[test]
fn bpftool_prints_formatted_keys_and_values() {
    let lab = Lab::new();
    let state = State::new();
    let _d = Daemon::start(&state, &lab.server, &lab.server_if, &[]);
    state.ok(&["ban", "198.18.0.2", "2001:db8::2", "--reason", "bpftool"]);
    let dump = |map: &str| -> serde_json::Value {
        let out = Command::new("bpftool")
            .args(["-j", "map", "dump", "pinned"])
            .arg(state.pin_dir.join(map))
            .output()
            .expect("bpftool");
        assert!(out.status.success(), "{}", describe(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v4 = dump("BLOCK_V4");
    let formatted = &v4[0]["formatted"];
    assert_eq!(formatted["key"], serde_json::json!([198, 18, 0, 2]), "{v4}");
    assert_eq!(formatted["value"]["reason"], 1);
    assert_eq!(formatted["value"]["expires_at_ns"], 0);
    let v6 = dump("BLOCK_V6");
    assert_eq!(v6[0]["formatted"]["key"][0], 0x20, "{v6}");
    let stats = dump("STATS");
    assert!(
        stats[0]["formatted"]["values"][0]["value"]
            .get("passed")
            .is_some(),
        "{stats}"
    );
    // Per-rule counters: per CPU, keyed by the rule's id, and summed by
    // `blocker list`.
    assert!(!lab.tcp_connect(CLIENT_V4[0], server4(), TCP_TIMEOUT));
    let id = formatted["value"]["id"].as_u64().unwrap();
    let slot = formatted["value"]["slot"].as_u64().unwrap();
    let counters = dump("RULE_COUNTERS");
    let entry = counters
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["formatted"]["key"].as_u64() == Some(slot))
        .unwrap_or_else(|| panic!("no counter slot {slot}: {counters}"));
    let per_cpu: u64 = entry["formatted"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["value"]["id"].as_u64() == Some(id))
        .map(|v| v["value"]["packets"].as_u64().unwrap())
        .sum();
    assert!(per_cpu >= 1, "{entry}");
    let list = state.json(&["list"]);
    let listed = list["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == CLIENT_V4[0])
        .unwrap_or_else(|| panic!("{list}"));
    assert!(listed["packets"].as_u64().unwrap() >= per_cpu, "{list}");
}

#[test]
fn detach_restores_traffic_and_purge_removes_pins() {
    let lab = Lab::new();
    let _srv = lab.tcp_server(PORT);
    let state = State::new();
    let _d = Daemon::start(&state, &lab.server, &lab.server_if, &[]);
    state.ok(&["ban", CLIENT_V4[0]]);
    assert!(!lab.tcp_connect(CLIENT_V4[0], server4(), TCP_TIMEOUT));
    // Detach works while the daemon runs (it holds no link reference).
    let out = state.ok(&["detach", "--iface", &lab.server_if]);
    assert!(out.contains("detached"), "{out}");
    assert!(
        lab.tcp_connect(CLIENT_V4[0], server4(), TCP_TIMEOUT),
        "no XDP after detach"
    );
    let status = state.json(&["status"]);
    assert_eq!(
        status["interfaces"].as_array().unwrap().len(),
        0,
        "{status}"
    );
    // Detaching again is an error that names what is attached.
    let out = state.run(&["detach", "--iface", &lab.server_if]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not attached"));
    // Purge refuses while the daemon runs.
    let out = state.run(&["detach", "--all", "--purge"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop it before purging"));
}

#[test]
fn status_reports_interfaces_daemon_and_capacity() {
    let lab = Lab::new();
    let state = State::new();
    let d = Daemon::start(&state, &lab.server, &lab.server_if, &[]);
    state.ok(&["ban", "198.18.0.2"]);
    let status = state.json(&["status"]);
    assert_eq!(status["loaded"], true);
    assert_eq!(status["daemon"]["pid"], d.pid());
    let iface = &status["interfaces"][0];
    assert_eq!(iface["iface"], lab.server_if.as_str());
    assert_eq!(iface["attached"], true);
    assert!(iface["prog_id"].as_u64().unwrap() > 0);
    let block = status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["map"] == "BLOCK_V4")
        .unwrap();
    assert_eq!(
        (block["entries"].as_u64(), block["capacity"].as_u64()),
        (Some(1), Some(262144))
    );
}

#[test]
fn xdp_modes_driver_skb_and_auto_fallback() {
    // veth supports native XDP; loopback does not (no ndo_bpf).
    let lab = Lab::new();
    {
        let state = State::new();
        let d = Daemon::start(
            &state,
            &lab.server,
            &lab.server_if,
            &["--xdp-mode", "driver"],
        );
        assert!(d.log().contains("driver mode"), "{}", d.log());
        // Dropping `state` detaches the driver-mode link: native and generic
        // XDP cannot share an interface.
    }

    let ns = &lab.server;
    let dummy = "lo";
    let state2 = State::new();
    let out = ns
        .command(
            blocker_tests::blocker_bin(),
            &["run", "--iface", dummy, "--xdp-mode", "driver"],
        )
        .env("BLOCKER_PIN_DIR", &state2.pin_dir)
        .env("BLOCKER_STATE_DIR", &state2.state_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("retry with --xdp-mode skb"), "{err}");

    let d = Daemon::start(&state2, ns, dummy, &[]);
    assert!(d.log().contains("falling back to skb"), "{}", d.log());
    let state3 = State::new();
    let d2 = Daemon::start(&state3, ns, &lab.server_if, &["--xdp-mode", "skb"]);
    assert!(d2.log().contains("skb mode"), "{}", d2.log());
}
