//! The CLI's errors: each says what went wrong and what to do, with exit
//! status 2 for bad input and 1 for everything else.

use std::process::Command;

use blocker_tests::{State, blocker_bin, describe};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn invalid_input_exits_2_with_a_hint() {
    let state = State::new();
    for (args, hint) in [
        (vec!["ban", "300.1.1.1"], "is not an IP address"),
        (vec!["ban", "10.0.0.5/24"], "did you mean 10.0.0.0/24"),
        (vec!["ban", "198.18.0.9", "--ttl", "10"], "examples: 90s"),
        (vec!["ban", "198.18.0.9", "--ttl", "0s"], "is zero"),
        (vec!["ban", "0.0.0.0/0"], "--force"),
        (vec!["allow", "::/0"], "--force"),
        (vec!["unban", "example.com"], "is not an IP address"),
        (
            vec!["run", "--iface", "x", "--xdp-mode", "turbo"],
            "possible values",
        ),
        (vec!["zero-window", "--top", "many"], "invalid digit"),
    ] {
        let out = state.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        assert!(stderr(&out).contains(hint), "{args:?}: {}", describe(&out));
    }
    // Nothing was created by the refused commands.
    assert!(!state.pin_dir.exists());
}

#[test]
fn unprivileged_users_are_told_what_is_missing() {
    let state = State::new();
    // setpriv (util-linux) drops to nobody with no capabilities.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(blocker_bin())
        .args(["ban", "198.18.0.9"])
        .env("BLOCKER_PIN_DIR", &state.pin_dir)
        .env("BLOCKER_STATE_DIR", &state.state_dir)
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("needs root") && err.contains("CAP_BPF"),
        "{err}"
    );
}

#[test]
fn read_commands_before_anything_is_loaded_say_how_to_start() {
    let state = State::new();
    for cmd in ["list", "stats", "zero-window"] {
        let out = state.run(&[cmd]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", describe(&out));
        assert!(
            stderr(&out).contains("blocker run --iface"),
            "{cmd}: {}",
            describe(&out)
        );
    }
    let out = state.ok(&["status"]);
    assert!(out.contains("not loaded"), "{out}");
}

#[test]
fn unknown_interface_is_named() {
    let state = State::new();
    let out = state.run(&["run", "--iface", "nosuchif0"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("interface nosuchif0 not found"),
        "{}",
        describe(&out)
    );
}

#[test]
fn full_blocklist_names_capacity_and_the_setting() {
    let state = State::new();
    let config = state.state_dir.join("small.toml");
    std::fs::write(&config, "[maps]\nblock_v4 = 2\nblock_net_v4 = 1\n").unwrap();
    let c = config.to_str().unwrap();
    state.ok(&["--config", c, "ban", "198.18.0.2", "198.18.0.3"]);
    let out = state.run(&["--config", c, "ban", "198.18.0.4"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("IPv4 blocklist is full (2 entries") && err.contains("block_v4"),
        "{err}"
    );
    state.ok(&["--config", c, "ban", "198.18.4.0/24"]);
    let err = stderr(&state.run(&["--config", c, "ban", "198.18.5.0/24"]));
    assert!(
        err.contains("CIDR blocklist is full (1 entries") && err.contains("block_net_v4"),
        "{err}"
    );
    // The refused bans are not left in the journal as active.
    let list = state.json(&["list"]);
    assert_eq!(list["rules"].as_array().unwrap().len(), 3, "{list}");
    // Replacing an existing entry still works when full.
    state.ok(&["--config", c, "ban", "198.18.0.2", "--ttl", "1h"]);
}

#[test]
fn incompatible_pins_are_refused_with_the_fix() {
    let state = State::new();
    std::fs::create_dir_all(&state.pin_dir).unwrap();
    // A BLOCK_V4 from "another version": 8-byte values.
    let out = Command::new("bpftool")
        .args(["map", "create"])
        .arg(state.pin_dir.join("BLOCK_V4"))
        .args([
            "type", "hash", "key", "4", "value", "8", "entries", "16", "name", "BLOCK_V4",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let out = state.run(&["ban", "198.18.0.2"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("incompatible") && err.contains("8-byte values"),
        "{err}"
    );
    assert!(err.contains("blocker detach --all --purge"), "{err}");
}

#[test]
fn pin_dir_outside_bpffs_is_refused() {
    let state = State::new();
    let dir = state.state_dir.join("not-bpffs");
    let out = state
        .cmd(&["ban", "198.18.0.2"])
        .env("BLOCKER_PIN_DIR", &dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("not on a bpf filesystem"),
        "{}",
        describe(&out)
    );
}

#[test]
fn bpffs_is_mounted_when_missing() {
    // In a private mount namespace without bpffs, blocker mounts it itself.
    let state = State::new();
    let script = format!(
        "umount /sys/fs/bpf 2>/dev/null; mountpoint -q /sys/fs/bpf && exit 99; \
         {bin} ban 198.18.0.2 && mountpoint -q /sys/fs/bpf && ls /sys/fs/bpf/{name}/BLOCK_V4",
        bin = blocker_bin().display(),
        name = state.pin_dir.file_name().unwrap().to_str().unwrap(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("BLOCKER_PIN_DIR", &state.pin_dir)
        .env("BLOCKER_STATE_DIR", &state.state_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stderr(&out).contains("mounted a bpf filesystem") || out.status.success());
    // The host's bpffs never saw those pins.
    assert!(!state.pin_dir.exists());
}

#[test]
fn ban_before_any_daemon_creates_the_maps_and_says_so() {
    let state = State::new();
    let out = state.run(&["ban", "198.18.0.2", "--reason", "early"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stderr(&out).contains("no interface is attached"),
        "{}",
        describe(&out)
    );
    let list = state.json(&["list"]);
    assert_eq!(list["rules"][0]["reason"], "early");
    let out = state.run(&["unban", "198.18.0.9"]);
    assert!(
        stderr(&out).contains("was not banned"),
        "{}",
        describe(&out)
    );
    state.ok(&["ban", "198.18.8.0/24"]);
    let out = state.run(&["unban", "198.18.8.7"]);
    assert!(
        stderr(&out).contains("covered by 198.18.8.0/24"),
        "{}",
        describe(&out)
    );
}

#[test]
fn pins_of_an_older_layout_version_are_refused() {
    let state = State::new();
    state.ok(&["ban", "198.18.0.2"]);
    // Layout 1 kept counters in the rule values; this binary uses another.
    let out = Command::new("bpftool")
        .args(["map", "update", "pinned"])
        .arg(state.pin_dir.join("META"))
        .args([
            "key", "0", "0", "0", "0", "value", "1", "0", "0", "0", "0", "0", "0", "0",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let out = state.run(&["ban", "198.18.0.3"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("layout version 1, this binary uses")
            && err.contains("blocker detach --all --purge"),
        "{err}"
    );
}

#[test]
fn an_import_that_cannot_fit_is_refused_before_anything_is_written() {
    let state = State::new();
    let config = state.state_dir.join("small.toml");
    std::fs::write(&config, "[maps]\nblock_v4 = 8\n").unwrap();
    let c = config.to_str().unwrap();
    state.ok(&["--config", c, "ban", "198.18.0.2"]);
    let list = state.state_dir.join("list.txt");
    let text: String = (10..20).map(|i| format!("198.18.1.{i}\n")).collect();
    std::fs::write(&list, text).unwrap();
    let out = state.run(&["--config", c, "import", list.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot take 10 more rules (1 of 8 entries")
            && err.contains("nothing was written")
            && err.contains("block_v4"),
        "{err}"
    );
    // Neither the maps nor the journal took any of them.
    let rules = state.json(&["list"]);
    assert_eq!(rules["rules"].as_array().unwrap().len(), 1, "{rules}");
    // A rule already present needs no room: 7 new + 1 replaced fit in 8.
    let text: String = (2..5)
        .map(|i| format!("198.18.0.{i}\n"))
        .chain((10..15).map(|i| format!("198.18.1.{i}\n")))
        .collect();
    std::fs::write(&list, text).unwrap();
    let out = state.ok(&["--config", c, "import", list.to_str().unwrap()]);
    assert!(out.contains("imported 8 rule(s) (1 replaced)"), "{out}");
}

#[test]
fn unban_by_origin_lifts_exactly_that_origins_rules_in_one_batch() {
    let state = State::new();
    let file = state.state_dir.join("list.txt");
    // A duplicate line is imported once.
    std::fs::write(&file, "198.18.0.2\n198.18.0.3\n198.18.4.0/24\n198.18.0.2\n").unwrap();
    let out = state.json(&["import", file.to_str().unwrap()]);
    assert_eq!(out["imported"], 3, "{out}");
    state.ok(&["ban", "198.18.0.9"]);
    let out = state.json(&["unban", "--origin", "import"]);
    let mut removed: Vec<&str> = out["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        ["198.18.0.2", "198.18.0.3", "198.18.4.0/24"],
        "{out}"
    );
    // Gone from the journal and the kernel maps; the other origin's ban stays.
    let list = state.json(&["list"]);
    let rules = list["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{list}");
    assert_eq!(state.json(&["stats"])["block_rules"], 1);
    let out = state.run(&["unban", "--origin", "import"]);
    assert!(
        stderr(&out).contains("no block rules from import"),
        "{}",
        describe(&out)
    );
}
