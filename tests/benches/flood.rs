//! Floods over veth (`cargo xtask bench flood`): a bounded trafgen sender
//! in one namespace sends a fixed count of TCP SYNs from banned source
//! addresses to a receiver namespace, and each method drops them there:
//!
//! - blocker: the real daemon (`blocker run`) with the bans imported
//!   (`blocker import`), its XDP program attached to the receiver's veth
//!   (auto mode: native on veth);
//! - xdp-filter (xdp-tools), native mode, address-only (`-f ipv4,ipv6`);
//! - iptables raw PREROUTING, one `-s ADDR -j DROP` rule per ban (linear);
//! - ipset hash:ip and one iptables raw PREROUTING rule matching it;
//! - an nftables netdev ingress chain matching a set;
//! - no filter: the SYNs reach TCP (closed port; no route back to the
//!   forged sources, so no RST leaves).
//!
//! Each at 1, 1k and 10k rules (no filter once), the sources cycling over
//! every banned address (trafgen `dinc`). Measured at the receiver: packets
//! dropped (each method's own counter), packets that reached TCP (`Tcp:
//! InSegs` of the receiver namespace), packets per second, and softirq CPU
//! time (`/proc/stat`, all CPUs) per dropped packet. On veth the receive
//! processing of a frame (XDP in the veth's NAPI poll, or the netfilter
//! hooks in the backlog) runs in NET_RX softirq on the sending CPU, so the
//! sender's system time (building the skb) is excluded and what remains is
//! the receiver's cost. The softirq rate of the idle machine, measured for
//! two seconds before the first run and after the last, is subtracted.
//! blocker and xdp-filter alternate over `BENCH_ROUNDS` rounds (default 3).
//!
//! Environment: `BENCH_SMOKE=1` (2,000 SYNs, 1 and 100 rules: the smoke
//! inside `cargo xtask test`), `BENCH_PACKETS` (default 1,000,000),
//! `BENCH_ROUNDS`, `BENCH_JSON`.
//!
//! Test network rules (DESIGN.md): namespaces only, 198.18.0.0/15, bounded.

use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use blocker_tests::{
    State, describe,
    lab::{self, Daemon, Lab, NetNs},
    unique, wait_until,
    xdp_filter::XdpFilter,
};
use serde_json::{Value, json};

/// The banned sources: 198.19.0.0 upwards, inside the benchmarking range
/// 198.18.0.0/15 (RFC 2544) and apart from the lab's own 198.18.0.0/24.
const FIRST_SOURCE: u32 = 0xc613_0000;
/// Nothing listens there.
const PORT: u16 = 9;

fn source(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(FIRST_SOURCE + i)
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Softirq time of all CPUs so far, ns (`/proc/stat` `cpu` line, 7th
/// value, in USER_HZ). Without CONFIG_IRQ_TIME_ACCOUNTING the kernel
/// samples it per tick (account_system_time: in_serving_softirq()), and
/// softirq work done by ksoftirqd counts too.
fn softirq_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .expect("cpu line");
    let ticks: u64 = line
        .split_whitespace()
        .nth(7)
        .and_then(|v| v.parse().ok())
        .expect("softirq column");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    ticks * 1_000_000_000 / hz
}

/// `Proto: Field` of `/proc/net/snmp` in `ns`.
fn snmp(ns: &NetNs, proto: &str, field: &str) -> u64 {
    let out = ns.output("cat", &["/proc/net/snmp"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("{proto}:");
    let mut rows = text.lines().filter(|l| l.starts_with(&prefix));
    let (names, values) = (rows.next().expect(proto), rows.next().expect(proto));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == field)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("{proto}: {field} not in /proc/net/snmp"))
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The XDP program on `iface` and its mode, from `ip link`.
fn xdp_mode(ns: &NetNs, iface: &str) -> Option<&'static str> {
    let text = lab::sh(&["ip", "-n", &ns.name, "link", "show", "dev", iface]);
    if text.contains("xdpgeneric") {
        Some("skb")
    } else if text.contains("prog/xdp") {
        Some("native")
    } else {
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    NoFilter,
    Blocker,
    XdpFilter,
    Nft,
    Ipset,
    Iptables,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::NoFilter => "no filter",
            Method::Blocker => "blocker",
            Method::XdpFilter => "xdp-filter",
            Method::Nft => "nftables set",
            Method::Ipset => "ipset + iptables",
            Method::Iptables => "iptables linear",
        }
    }

    /// SYNs to send at `rules` rules: a linear chain costs time per rule
    /// (21–72 µs a packet at 10k rules measured before), so it gets fewer
    /// packets to stay within seconds.
    fn packets(self, base: u64, rules: u32) -> u64 {
        match self {
            Method::Iptables => (base / u64::from(rules / 500).max(1)).max(1000),
            _ => base,
        }
    }
}

/// One method loaded on the receiver; unloaded on drop.
trait Filter {
    /// Packets it dropped so far, by its own counter.
    fn dropped(&self) -> u64;
    /// Packets matched per rule, for a linear chain.
    fn per_rule(&self) -> Option<Vec<u64>> {
        None
    }
}

struct NoFilter;

impl Filter for NoFilter {
    fn dropped(&self) -> u64 {
        0
    }
}

/// Fields drop in order: the daemon first, then the state, whose drop
/// detaches the pinned XDP link.
struct Blocker {
    _daemon: Daemon,
    state: State,
}

impl Filter for Blocker {
    fn dropped(&self) -> u64 {
        self.state.json(&["stats"])["dropped"]
            .as_u64()
            .expect("stats: dropped")
    }
}

struct XdpFilterMethod(XdpFilter);

impl Filter for XdpFilterMethod {
    fn dropped(&self) -> u64 {
        self.0.dropped()
    }
}

/// iptables raw PREROUTING (linear rules, or one `-m set` rule with the
/// ipset `set`) in the receiver namespace.
struct Iptables {
    ns: String,
    set: Option<String>,
}

impl Iptables {
    fn cmd(&self, prog: &str, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.ns))
            .arg(prog)
            .args(args);
        c
    }

    /// Per rule packet counters of raw PREROUTING (`iptables-save -c`).
    fn counters(&self) -> Vec<u64> {
        let text = ok(&mut self.cmd("iptables-save", &["-c", "-t", "raw"]));
        text.lines()
            .filter(|l| l.contains("-A PREROUTING"))
            .filter_map(|l| l.strip_prefix('[')?.split(':').next()?.parse::<u64>().ok())
            .collect()
    }
}

impl Filter for Iptables {
    fn dropped(&self) -> u64 {
        self.counters().iter().sum()
    }

    fn per_rule(&self) -> Option<Vec<u64>> {
        self.set.is_none().then(|| self.counters())
    }
}

impl Drop for Iptables {
    fn drop(&mut self) {
        let _ = self
            .cmd("iptables", &["-t", "raw", "-F", "PREROUTING"])
            .output();
        if let Some(set) = &self.set {
            let _ = self.cmd("ipset", &["destroy", set]).output();
        }
    }
}

/// An nftables netdev table with an ingress chain on the receiver's veth.
struct Nft {
    ns: String,
    table: String,
}

impl Filter for Nft {
    fn dropped(&self) -> u64 {
        let text = ok(Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .args(["nft", "-j", "list", "chain", "netdev", &self.table, "in"]));
        let v: Value = serde_json::from_str(&text).expect("nft -j");
        v["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["rule"]["expr"].as_array())
            .flatten()
            .filter_map(|e| e["counter"]["packets"].as_u64())
            .sum()
    }
}

impl Drop for Nft {
    fn drop(&mut self) {
        let _ = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .args(["nft", "delete", "table", "netdev", &self.table])
            .output();
    }
}

fn load(method: Method, lab: &Lab, rules: u32, dir: &Path) -> (Box<dyn Filter>, String) {
    let ns = lab.server.name.clone();
    let iface = &lab.server_if;
    let file = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let mut lines = String::new();
    let filter: Box<dyn Filter> = match method {
        Method::NoFilter => Box::new(NoFilter),
        Method::Blocker => {
            let state = State::new();
            let config = lab::quick_config(&state, "");
            let daemon = Daemon::start(
                &state,
                &lab.server,
                iface,
                &["--config", config.to_str().unwrap()],
            );
            for i in 0..rules {
                writeln!(lines, "{}", source(i)).unwrap();
            }
            let bans = file("bans.txt", lines);
            let v = state.json(&["import", &bans]);
            assert_eq!(v["imported"].as_u64(), Some(u64::from(rules)), "{v}");
            assert!(
                wait_until(
                    Duration::from_secs(30),
                    || state.json(&["stats"])["block_rules"].as_u64() == Some(u64::from(rules))
                ),
                "blocker never held {rules} rules: {}",
                state.json(&["stats"])
            );
            Box::new(Blocker {
                _daemon: daemon,
                state,
            })
        }
        Method::XdpFilter => {
            let mut f = XdpFilter::attach(&ns, iface, "native");
            for i in 0..rules {
                f.deny_source(source(i).into());
            }
            Box::new(XdpFilterMethod(f))
        }
        Method::Nft => {
            let table = unique("bkflood");
            let elems: Vec<String> = (0..rules).map(|i| source(i).to_string()).collect();
            let path = file(
                "flood.nft",
                format!(
                    "table netdev {table} {{\n  set s {{\n    type ipv4_addr\n    elements = {{ {} }}\n  }}\n  \
                     chain in {{\n    type filter hook ingress device {iface} priority -500\n    \
                     ip saddr @s counter drop\n  }}\n}}\n",
                    elems.join(", ")
                ),
            );
            let guard = Nft { ns, table };
            ok(lab
                .server
                .command("nft", &["-f", &path])
                .stdin(std::process::Stdio::null()));
            Box::new(guard)
        }
        Method::Ipset | Method::Iptables => {
            let set = (method == Method::Ipset).then(|| unique("bkflood"));
            let guard = Iptables {
                ns,
                set: set.clone(),
            };
            lines.push_str("*raw\n:PREROUTING ACCEPT [0:0]\n");
            if let Some(set) = &set {
                let mut restore = format!(
                    "create {set} hash:ip family inet hashsize 1024 maxelem {}\n",
                    rules.max(1024)
                );
                for i in 0..rules {
                    writeln!(restore, "add {set} {}", source(i)).unwrap();
                }
                let p = file("flood.ipset", restore);
                ok(&mut guard.cmd("ipset", &["restore", "-f", &p]));
                writeln!(lines, "-A PREROUTING -m set --match-set {set} src -j DROP").unwrap();
            } else {
                for i in 0..rules {
                    writeln!(lines, "-A PREROUTING -s {}/32 -j DROP", source(i)).unwrap();
                }
            }
            lines.push_str("COMMIT\n");
            let p = file("flood.iptables", lines);
            ok(&mut guard.cmd("iptables-restore", &[&p]));
            assert_eq!(
                guard.counters().len(),
                if set.is_some() { 1 } else { rules as usize },
                "iptables raw PREROUTING after restore"
            );
            Box::new(guard)
        }
    };
    let mode = match method {
        Method::Blocker | Method::XdpFilter => xdp_mode(&lab.server, iface)
            .unwrap_or_else(|| panic!("{}: no XDP program on {iface}", method.name()))
            .to_string(),
        Method::Nft => "netdev ingress".into(),
        Method::Ipset | Method::Iptables => "raw PREROUTING".into(),
        Method::NoFilter => "—".into(),
    };
    (filter, mode)
}

/// The trafgen packet: a SYN with a normal window (not blocker's
/// zero-window accounting) from the banned sources in turn.
fn trafgen_conf(lab: &Lab, rules: u32, dir: &Path) -> PathBuf {
    let mac = lab
        .server
        .mac(&lab.server_if)
        .map(|b| format!("{b:02x}"))
        .join(":");
    let sa = if rules <= 1 {
        source(0).to_string()
    } else {
        format!("dinc({}, {})", FIRST_SOURCE, FIRST_SOURCE + rules - 1)
    };
    let p = dir.join(format!("syn-{rules}.trafgen"));
    std::fs::write(
        &p,
        format!(
            "{{ eth(da={mac}), ipv4(sa={sa}, da={}, ttl=64), tcp(sp=40000, dp={PORT}, syn, window=64240) }}\n",
            lab::SERVER_V4
        ),
    )
    .unwrap();
    p
}

struct Run {
    sent: u64,
    dropped: u64,
    reached_tcp: u64,
    send_s: f64,
    wall_s: f64,
    softirq_ns: u64,
}

/// The machine's softirq time per second without our traffic, over
/// `window` (the counter moves in 10 ms steps, so short windows mislead).
fn idle_rate(window: Duration) -> f64 {
    let (b0, t) = (softirq_ns(), Instant::now());
    std::thread::sleep(window);
    (softirq_ns() - b0) as f64 / t.elapsed().as_secs_f64()
}

fn flood(lab: &Lab, filter: &dyn Filter, conf: &Path, count: u64) -> Run {
    // veth can refuse a flush of trafgen's TX ring when its peer's queue is
    // full (EAGAIN), which ends trafgen part-way: that run is discarded and
    // sent again from fresh baselines, at most three times.
    let mut attempt = 1;
    let (tcp0, drop0, s0, t0, send_s) = loop {
        let tcp0 = snmp(&lab.server, "Tcp", "InSegs");
        let drop0 = filter.dropped();
        let (s0, t0) = (softirq_ns(), Instant::now());
        match lab.trafgen(conf, count) {
            Ok(()) => break (tcp0, drop0, s0, t0, t0.elapsed().as_secs_f64()),
            Err(e) if attempt < 3 && e.contains("Resource temporarily unavailable") => {
                println!("  trafgen stopped early (attempt {attempt}), sending again: {e}");
                attempt += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => panic!("trafgen: {e}"),
        }
    };
    // Wait until the receiver has handled every packet, or its counters stop
    // moving (a packet lost before the filter is never counted).
    let handled = || filter.dropped() - drop0 + snmp(&lab.server, "Tcp", "InSegs") - tcp0;
    let mut last = handled();
    let deadline = Instant::now() + Duration::from_secs(20);
    while last < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let now = handled();
        if now == last {
            break;
        }
        last = now;
    }
    let wall_s = t0.elapsed().as_secs_f64();
    let softirq = softirq_ns() - s0;
    Run {
        sent: count,
        dropped: filter.dropped() - drop0,
        reached_tcp: snmp(&lab.server, "Tcp", "InSegs") - tcp0,
        send_s,
        wall_s,
        softirq_ns: softirq,
    }
}

fn main() {
    let smoke = std::env::var("BENCH_SMOKE").is_ok_and(|v| v == "1");
    let base = env_num("BENCH_PACKETS", if smoke { 2_000 } else { 1_000_000 });
    let sizes: &[u32] = if smoke {
        &[1, 100]
    } else {
        &[1, 1_000, 10_000]
    };
    let dir = std::env::temp_dir().join(unique("blocker-flood-"));
    std::fs::create_dir_all(&dir).unwrap();
    // blocker and xdp-filter, whose comparison is the target, alternate
    // over several rounds (the report takes the median); the others run once.
    let rounds = env_num("BENCH_ROUNDS", if smoke { 1 } else { 3 }).max(1);
    // The idle machine's softirq rate, before the first run and after the
    // last one (seconds each: the counter moves in 10 ms steps).
    let idle = Duration::from_millis(if smoke { 100 } else { 2_000 });
    let idle_before = idle_rate(idle);
    let lab = Lab::new();
    let mut plan = vec![(Method::NoFilter, 0)];
    for &n in sizes {
        for _ in 0..rounds {
            plan.push((Method::Blocker, n));
            plan.push((Method::XdpFilter, n));
        }
        for m in [Method::Nft, Method::Ipset, Method::Iptables] {
            plan.push((m, n));
        }
    }
    let mut done = Vec::new();
    for (i, &(method, rules)) in plan.iter().enumerate() {
        assert_eq!(
            xdp_mode(&lab.server, &lab.server_if),
            None,
            "an XDP program is still attached to the receiver before {}",
            method.name()
        );
        let count = method.packets(base, rules.max(1));
        eprintln!(
            "flood [{}/{}]: {}, {rules} rules, {count} SYNs",
            i + 1,
            plan.len(),
            method.name()
        );
        let (filter, mode) = load(method, &lab, rules, &dir);
        let conf = trafgen_conf(&lab, rules.max(1), &dir);
        let r = flood(&lab, filter.as_ref(), &conf, count);
        // Every banned source was sent (trafgen's dinc), so every rule of a
        // linear chain matched some packets.
        let rules_hit = filter
            .per_rule()
            .map(|c| c.iter().filter(|&&n| n > 0).count());
        drop(filter);
        eprintln!(
            "  {mode}: sent {}, dropped {}, reached TCP {}, softirq {:.0} ms in {:.1} s",
            r.sent,
            r.dropped,
            r.reached_tcp,
            r.softirq_ns as f64 / 1e6,
            r.wall_s
        );
        // Each method must have handled what it was sent: the filters drop
        // every SYN and none reaches TCP, no filter lets them all through.
        if method == Method::NoFilter {
            assert_eq!(r.reached_tcp, r.sent, "no filter: every SYN reaches TCP");
        } else {
            assert_eq!(
                r.reached_tcp,
                0,
                "{}: a banned SYN reached TCP",
                method.name()
            );
            assert_eq!(
                r.dropped,
                r.sent,
                "{} at {rules} rules dropped {} of {} SYNs",
                method.name(),
                r.dropped,
                r.sent
            );
        }
        if let Some(hit) = rules_hit {
            assert_eq!(hit, rules as usize, "iptables rules that matched");
        }
        done.push((method, rules, mode, r));
    }
    let idle_after = idle_rate(idle);
    let bg_rate = (idle_before + idle_after) / 2.0;
    let mut runs = Vec::new();
    for (method, rules, mode, r) in done {
        let handled = if method == Method::NoFilter {
            r.reached_tcp
        } else {
            r.dropped
        };
        let background_ns = bg_rate * r.wall_s;
        let cpu = (r.softirq_ns as f64 - background_ns).max(0.0);
        let ns_per_packet = cpu / handled.max(1) as f64;
        let pps = handled as f64 / r.send_s;
        println!(
            "{:<17} {rules:>6} rules: {:>8} handled, {:>4.0} kpps, {ns_per_packet:>6.0} softirq ns per packet",
            method.name(),
            handled,
            pps / 1e3
        );
        runs.push(json!({
            "method": method.name(), "rules": rules, "mode": mode,
            "sent": r.sent, "dropped": r.dropped, "reached_tcp": r.reached_tcp,
            "send_s": r.send_s, "wall_s": r.wall_s, "pps": pps,
            "softirq_ns": r.softirq_ns, "background_ns": background_ns,
            "ns_per_packet": ns_per_packet,
        }));
    }
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    let version = |c: &str, a: &str| {
        Command::new(c)
            .arg(a)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default()
    };
    let doc = json!({
        "part": "flood",
        "packets": base,
        "sizes": sizes,
        "rounds": rounds,
        "idle_softirq_ns_per_s": [idle_before, idle_after],
        "sender": version("trafgen", "-v"),
        "iptables": version("iptables", "-V"),
        "nft": version("nft", "-v"),
        "xdp_filter": version("xdp-filter", "-V"),
        "runs": runs,
    });
    if let Ok(path) = std::env::var("BENCH_JSON") {
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap())
            .expect("write BENCH_JSON");
        println!("results written to {path}");
    }
}
