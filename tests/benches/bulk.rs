//! Bulk operations on a running daemon (`cargo xtask bench bulk`), side by
//! side in the same run with the tools blocker replaces loading the same
//! addresses:
//!
//! 1. The kernel memory of every map at the default capacities (`bpftool map
//!    show`: `bytes_memlock`) and the daemon's RSS idle.
//! 2. With capacities raised to fit: `blocker import` of N exact IPv4 bans
//!    (default 1,000,000) and of M CIDRs (default 100,000), `blocker export
//!    --json` of all of them, the daemon's RSS at N + M rules, a restart
//!    after the pins are wiped (`blocker detach --all --purge`, as after a
//!    reboot: the journal restores every rule), and `blocker unban --origin
//!    import` of all of them.
//! 3. `ipset restore` (hash:ip, hash:net) and `nft -f` (an nftables set,
//!    with `flags interval` for the CIDRs) of the same addresses, each in a
//!    namespace of its own.
//!
//! Wall time of each command, and its user and system CPU (getrusage of the
//! waited-for child). Environment: `BLOCKER_BIN`, `BENCH_SMOKE=1` (1,000 and
//! 100 rules: the smoke inside `cargo xtask test`), `BENCH_EXACT`,
//! `BENCH_CIDRS`, `BENCH_JSON`.
//!
//! The addresses come from 240.0.0.0/4 (reserved, RFC 1112 §4): they are
//! only ever map keys and set elements, never in a frame.

use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use blocker_tests::{
    State, describe,
    lab::{Daemon, Lab, NetNs},
    wait_until,
};
use serde_json::{Value, json};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `i`-th exact address, in 240.0.0.0/8.
fn exact(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xf000_0000 | i)
}

/// The `i`-th /24, in 244.0.0.0/6 (apart from the exact ones).
fn cidr(i: u32) -> String {
    format!("{}/24", Ipv4Addr::from(0xf400_0000 | (i << 8)))
}

/// Wall time and the child's CPU of one command.
#[derive(Clone, Copy, Debug)]
struct Cost {
    wall: f64,
    user: f64,
    sys: f64,
}

impl Cost {
    fn json(&self) -> Value {
        json!({ "wall_s": self.wall, "user_s": self.user, "sys_s": self.sys })
    }
}

fn children_cpu() -> (f64, f64) {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

/// Runs `cmd` to completion (it must succeed) and returns its output and cost.
fn timed(what: &str, cmd: &mut Command) -> (Output, Cost) {
    let (u0, s0) = children_cpu();
    let t = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: spawn: {e}"));
    let wall = t.elapsed().as_secs_f64();
    let (u1, s1) = children_cpu();
    assert!(out.status.success(), "{what}: {}", describe(&out));
    let c = Cost {
        wall,
        user: u1 - u0,
        sys: s1 - s0,
    };
    eprintln!(
        "  {what}: {:.2} s (user {:.2} s, sys {:.2} s)",
        c.wall, c.user, c.sys
    );
    (out, c)
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The daemon's RSS, the largest of a few samples over `over` (it may still
/// be catching up on what the CLI wrote).
fn rss_mib(d: &Daemon, over: Duration) -> f64 {
    let end = Instant::now() + over;
    let mut max = vm_rss_kib(d.pid());
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(250));
        max = max.max(vm_rss_kib(d.pid()));
    }
    max as f64 / 1024.0
}

/// `bpftool map show` of every map pinned under `dir`: name, entries,
/// kernel memory.
fn memlock(dir: &Path) -> Vec<Value> {
    let mut maps = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let out = Command::new("bpftool")
            .args(["-j", "map", "show", "pinned"])
            .arg(&p)
            .output()
            .expect("bpftool");
        // Links and programs are pinned here too: not maps.
        if !out.status.success() {
            continue;
        }
        let v: Value = serde_json::from_slice(&out.stdout).expect("bpftool -j map show");
        maps.push(json!({
            "name": v["name"], "type": v["type"],
            "max_entries": v["max_entries"], "bytes_memlock": v["bytes_memlock"],
        }));
    }
    maps
}

fn stats(state: &State) -> Value {
    state.json(&["stats"])
}

fn rules_in_maps(state: &State) -> u64 {
    stats(state)["block_rules"]
        .as_u64()
        .expect("stats: block_rules")
}

fn main() {
    let smoke = std::env::var("BENCH_SMOKE").is_ok_and(|v| v == "1");
    let n = env_num("BENCH_EXACT", if smoke { 1_000 } else { 1_000_000 }) as u32;
    let m = env_num("BENCH_CIDRS", if smoke { 100 } else { 100_000 }) as u32;
    let mut doc = serde_json::Map::new();
    doc.insert("part".into(), json!("bulk"));
    doc.insert("exact".into(), json!(n));
    doc.insert("cidrs".into(), json!(m));

    let dir = tempdir();
    let exact_file = dir.join("exact.txt");
    let cidr_file = dir.join("cidrs.txt");
    {
        let mut text = String::with_capacity(n as usize * 16);
        for i in 0..n {
            writeln!(text, "{}", exact(i)).unwrap();
        }
        std::fs::write(&exact_file, text).unwrap();
        let mut text = String::with_capacity(m as usize * 20);
        for i in 0..m {
            writeln!(text, "{}", cidr(i)).unwrap();
        }
        std::fs::write(&cidr_file, text).unwrap();
    }

    // 1. Defaults: kernel memory per map, RSS idle.
    eprintln!("bulk: default capacities: memlock per map, daemon RSS idle");
    {
        let lab = Lab::new();
        let state = State::new();
        let d = Daemon::start(&state, &lab.server, &lab.server_if, &[]);
        let maps = memlock(&state.pin_dir);
        let total: u64 = maps
            .iter()
            .filter_map(|m| m["bytes_memlock"].as_u64())
            .sum();
        for mp in &maps {
            eprintln!(
                "  {:<20} {:>9} entries {:>12} bytes",
                mp["name"].as_str().unwrap_or("?"),
                mp["max_entries"],
                mp["bytes_memlock"]
            );
        }
        eprintln!("  total {:.1} MiB", total as f64 / 1048576.0);
        let rss = rss_mib(&d, Duration::from_secs(2));
        eprintln!("  daemon RSS idle: {rss:.1} MiB");
        doc.insert(
            "defaults".into(),
            json!({ "maps": maps, "memlock_total_bytes": total, "rss_idle_mib": rss }),
        );
    }

    // 2. blocker at N + M rules.
    eprintln!("bulk: blocker, {n} exact bans and {m} CIDRs into a running daemon");
    let lab = Lab::new();
    let state = State::new();
    let config = state.state_dir.join("bulk.toml");
    std::fs::write(
        &config,
        format!(
            "[maps]\nblock_v4 = {}\nblock_net_v4 = {}\n",
            (n + n / 8).max(1024),
            (m + m / 8).max(1024)
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap().to_string();
    let mut d = Daemon::start(&state, &lab.server, &lab.server_if, &["--config", &cfg]);
    let rss_idle = rss_mib(&d, Duration::from_secs(1));
    let maps_big = memlock(&state.pin_dir);
    let cli = |args: &[&str]| {
        let mut c = state.cmd(&["--config", &cfg]);
        c.args(args).env("RUST_LOG", "warn");
        c
    };
    let (out, import_exact) = timed(
        &format!("blocker import ({n} exact)"),
        cli(&["import", exact_file.to_str().unwrap(), "--json"]).stdin(Stdio::null()),
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("import --json");
    assert_eq!(v["imported"].as_u64(), Some(u64::from(n)), "{v}");
    let (out, import_cidr) = timed(
        &format!("blocker import ({m} CIDRs)"),
        cli(&["import", cidr_file.to_str().unwrap(), "--json"]).stdin(Stdio::null()),
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("import --json");
    assert_eq!(v["imported"].as_u64(), Some(u64::from(m)), "{v}");
    let total = u64::from(n + m);
    assert_eq!(rules_in_maps(&state), total, "{}", stats(&state));
    let rss_full = rss_mib(&d, Duration::from_secs(3));
    eprintln!("  daemon RSS idle {rss_idle:.1} MiB, at {total} rules {rss_full:.1} MiB");

    let (out, export) = timed(
        &format!("blocker export --json ({total})"),
        &mut cli(&["export", "--json"]),
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("export --json");
    assert_eq!(v["rules"].as_array().map(Vec::len), Some(total as usize));
    let export_bytes = out.stdout.len();

    // A reboot: the pins go, the journal stays; the next start restores.
    eprintln!("bulk: restart after the pins are wiped ({total} journaled rules)");
    d.stop();
    let mut c = cli(&["detach", "--all", "--purge"]);
    timed("blocker detach --all --purge", &mut c);
    assert_eq!(
        std::fs::read_dir(&state.pin_dir).map_or(0, |d| d.count()),
        0
    );
    let t = Instant::now();
    let d = Daemon::start_within(
        &state,
        &lab.server,
        &lab.server_if,
        &["--config", &cfg],
        Duration::from_secs(600),
    );
    let restore_s = t.elapsed().as_secs_f64();
    eprintln!("  daemon ready after restoring: {restore_s:.2} s");
    assert!(
        wait_until(Duration::from_secs(60), || rules_in_maps(&state) == total),
        "restored {} of {total}",
        rules_in_maps(&state)
    );
    let rss_restored = rss_mib(&d, Duration::from_secs(2));

    let (_, unban) = timed(
        &format!("blocker unban --origin import ({total})"),
        &mut cli(&["unban", "--origin", "import", "--json"]),
    );
    assert_eq!(rules_in_maps(&state), 0, "{}", stats(&state));
    drop(d);
    doc.insert(
        "blocker".into(),
        json!({
            "import_exact": import_exact.json(), "import_cidrs": import_cidr.json(),
            "export": export.json(), "export_bytes": export_bytes,
            "restore_s": restore_s, "unban": unban.json(),
            "rss_idle_mib": rss_idle, "rss_full_mib": rss_full,
            "rss_restored_mib": rss_restored, "maps": maps_big,
        }),
    );

    // 3. The same addresses with ipset and nftables.
    eprintln!("bulk: ipset restore and nft -f of the same addresses");
    let ns = NetNs::new();
    let mut ipset = String::with_capacity(n as usize * 24);
    writeln!(
        ipset,
        "create bk hash:ip family inet hashsize {} maxelem {}",
        n.next_power_of_two().max(1024),
        n.max(1024)
    )
    .unwrap();
    for i in 0..n {
        writeln!(ipset, "add bk {}", exact(i)).unwrap();
    }
    let ipset_exact_file = dir.join("ipset-exact.txt");
    std::fs::write(&ipset_exact_file, &ipset).unwrap();
    let mut ipset = String::new();
    writeln!(
        ipset,
        "create bknet hash:net family inet hashsize {} maxelem {}",
        m.next_power_of_two().max(1024),
        m.max(1024)
    )
    .unwrap();
    for i in 0..m {
        writeln!(ipset, "add bknet {}", cidr(i)).unwrap();
    }
    let ipset_cidr_file = dir.join("ipset-cidrs.txt");
    std::fs::write(&ipset_cidr_file, &ipset).unwrap();
    let nft_file = |name: &str, interval: bool, elems: &mut dyn Iterator<Item = String>| {
        let mut t = format!(
            "table ip {name} {{\n  set s {{\n    type ipv4_addr\n{}    elements = {{\n",
            if interval { "    flags interval\n" } else { "" }
        );
        for e in elems {
            writeln!(t, "      {e},").unwrap();
        }
        t.push_str("    }\n  }\n}\n");
        let p = dir.join(format!("{name}.nft"));
        std::fs::write(&p, t).unwrap();
        p
    };
    let nft_exact = nft_file("bk", false, &mut (0..n).map(|i| exact(i).to_string()));
    let nft_cidr = nft_file("bknet", true, &mut (0..m).map(cidr));
    let in_ns = |prog: &str, args: &[&str]| {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns.name, prog]).args(args);
        c
    };
    let (_, ipset_exact) = timed(
        &format!("ipset restore ({n} exact, hash:ip)"),
        &mut in_ns(
            "ipset",
            &["restore", "-f", ipset_exact_file.to_str().unwrap()],
        ),
    );
    let (_, ipset_cidr) = timed(
        &format!("ipset restore ({m} CIDRs, hash:net)"),
        &mut in_ns(
            "ipset",
            &["restore", "-f", ipset_cidr_file.to_str().unwrap()],
        ),
    );
    let (_, ipset_flush) = timed("ipset destroy (both)", &mut in_ns("ipset", &["destroy"]));
    let (_, nft_exact_c) = timed(
        &format!("nft -f ({n} exact, set)"),
        &mut in_ns("nft", &["-f", nft_exact.to_str().unwrap()]),
    );
    let (_, nft_cidr_c) = timed(
        &format!("nft -f ({m} CIDRs, interval set)"),
        &mut in_ns("nft", &["-f", nft_cidr.to_str().unwrap()]),
    );
    let (_, nft_flush) = timed(
        "nft flush ruleset",
        &mut in_ns("nft", &["flush", "ruleset"]),
    );
    drop(ns);
    doc.insert(
        "ipset".into(),
        json!({ "import_exact": ipset_exact.json(), "import_cidrs": ipset_cidr.json(), "remove": ipset_flush.json() }),
    );
    doc.insert(
        "nft".into(),
        json!({ "import_exact": nft_exact_c.json(), "import_cidrs": nft_cidr_c.json(), "remove": nft_flush.json() }),
    );

    println!(
        "import {n} exact:  blocker {:.2} s, ipset {:.2} s ({:.2}x), nft {:.2} s ({:.2}x)",
        import_exact.wall,
        ipset_exact.wall,
        import_exact.wall / ipset_exact.wall,
        nft_exact_c.wall,
        import_exact.wall / nft_exact_c.wall
    );
    println!(
        "import {m} CIDRs: blocker {:.2} s, ipset {:.2} s ({:.2}x), nft {:.2} s ({:.2}x)",
        import_cidr.wall,
        ipset_cidr.wall,
        import_cidr.wall / ipset_cidr.wall,
        nft_cidr_c.wall,
        import_cidr.wall / nft_cidr_c.wall
    );
    println!(
        "export {total}: {:.2} s; unban {total}: {:.2} s; restore after wiped pins: {restore_s:.2} s",
        export.wall, unban.wall
    );
    println!(
        "daemon RSS: idle {rss_idle:.1} MiB, at {total} rules {rss_full:.1} MiB, after restore {rss_restored:.1} MiB"
    );
    let _ = std::fs::remove_dir_all(&dir);
    if let Ok(path) = std::env::var("BENCH_JSON") {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&Value::Object(doc)).unwrap(),
        )
        .expect("write BENCH_JSON");
        println!("results written to {path}");
    }
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(blocker_tests::unique("blocker-bulk-"));
    std::fs::create_dir_all(&d).unwrap();
    d
}
