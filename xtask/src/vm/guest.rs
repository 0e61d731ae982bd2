//! Inside the guest: the `/init` script that mounts the filesystems, loads
//! the modules, reports facts about the kernel and runs the test plan; on
//! the host: QEMU under a deadline, the console streamed to a log, and the
//! result channel parsed.
//!
//! Two serial ports: ttyS0 is the console (kernel messages and the tests'
//! own output, streamed to `console.log` and the terminal), ttyS1 carries
//! only `@@vmtest` marker lines to a file, so kernel messages can never
//! split or fake a result line.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::util::{describe, note};

/// Where the guest finds what the image carries.
pub const GUEST_BIN_DIR: &str = "/opt/blocker/bin";
pub const GUEST_TEST_DIR: &str = "/opt/blocker/tests";
pub const MODULE_LIST: &str = "/etc/vmtest/modules";
pub const PLAN: &str = "/etc/vmtest/plan";

const MARK: &str = "@@vmtest";

/// Functions `/init` arms a kprobe on (the first one must work: it is where
/// the kernel's own zero-window check lives). The others are reported, for
/// whoever writes probes.
pub const KPROBE_TARGETS: &[&str] = &[
    "tcp_retransmit_timer",
    "tcp_send_probe0",
    "tcp_probe_timer",
    "tcp_write_timer_handler",
];

/// `/init`: busybox sh. Every step that can fail reports on the result
/// channel; the host treats a missing `done` as a crash or timeout.
pub fn init_script() -> String {
    format!(
        r#"#!/bin/sh
# /init of blocker's test guests, written by `cargo xtask vmtest`.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TMPDIR=/tmp RUST_BACKTRACE=1
export BLOCKER_BIN={bin}/blocker BLOCKER_VMTEST=1

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
R=/dev/ttyS1
say() {{ echo "{MARK} $*" >"$R"; echo "{MARK} $*"; }}
mnt() {{ # TYPE TARGET
    mkdir -p "$2"
    mount -t "$1" "$1" "$2" || say "error mount -t $1 $2 failed"
}}
mnt devpts /dev/pts
mnt tmpfs /dev/shm
mnt tmpfs /tmp
mnt tmpfs /run
mnt bpf /sys/fs/bpf
mnt tracefs /sys/kernel/tracing
mnt debugfs /sys/kernel/debug
mkdir -p /run/netns /var/lib /var/tmp
ip link set lo up || say "error lo up failed"

say "begin uptime=$(cut -d' ' -f1 /proc/uptime)"
say "fact uname $(uname -r)"
say "fact cpus $(nproc)"
say "fact event_sources $(ls /sys/bus/event_source/devices | tr '\n' ' ')"
has() {{ if [ -e "$2" ]; then say "fact $1 yes"; else say "fact $1 no"; fi; }}
has kprobe /sys/bus/event_source/devices/kprobe
has btf /sys/kernel/btf/vmlinux
has dynamic_debug /sys/kernel/debug/dynamic_debug/control
has tracing /sys/kernel/tracing/events

# Arm a real kprobe on each function through tracefs (the same kprobe
# machinery BPF kprobes use) and check the kernel lists it as armed.
T=/sys/kernel/tracing
armed=""
for f in {KPROBE_TARGETS}; do
    ok=no
    if ! echo "p:vmtest/$f $f" 2>/dev/null >>$T/kprobe_events; then
        echo "no kprobe on $f: not a probe-able function in this kernel (static and inlined?)"
    else
        if echo 1 >$T/events/vmtest/$f/enable &&
            grep -q "[[:space:]]$f+0x[0-9a-f]*[[:space:]]" /sys/kernel/debug/kprobes/list; then
            ok=yes
        else
            echo "kprobe on $f did not arm; armed kprobes:"
            cat /sys/kernel/debug/kprobes/list
        fi
        echo 0 >$T/events/vmtest/$f/enable
        echo "-:vmtest/$f" >>$T/kprobe_events
    fi
    armed="$armed $f=$ok"
done
say "fact kprobe_attach$armed"

# The treason message's dynamic-debug sites (the kmsg source needs them).
DD=/sys/kernel/debug/dynamic_debug/control
grep 'tcp_timer.c' $DD
say "fact ddebug_tcp_timer_sites $(grep -c 'tcp_timer.c' $DD)"

while read -r m; do
    if out=$(insmod "$m" 2>&1); then
        say "module ok ${{m##*/}}"
    else
        say "module FAIL ${{m##*/}} $(echo $out)"
    fi
done < {MODULE_LIST}

run_suite() {{ # NAME LIMIT_SECS PROGRAM ARGS...
    name=$1 limit=$2
    shift 2
    say "suite-start $name"
    t0=$(cut -d' ' -f1 /proc/uptime)
    echo 255 >/tmp/rc
    {{ timeout "$limit" "$@"; echo $? >/tmp/rc; }} 2>&1 | tee /tmp/suite.out
    t1=$(cut -d' ' -f1 /proc/uptime)
    say "suite-end $name rc=$(cat /tmp/rc) t0=$t0 t1=$t1 $(grep '^test result:' /tmp/suite.out | tail -n 1)"
}}
cd /tmp
. {PLAN}

say "done uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
echo o >/proc/sysrq-trigger
"#,
        bin = GUEST_BIN_DIR,
        KPROBE_TARGETS = KPROBE_TARGETS.join(" "),
    )
}

/// One test executable run in the guest.
pub struct PlanEntry {
    pub name: String,
    pub program: String,
    pub args: Vec<String>,
    pub timeout_secs: u32,
}

/// The plan, sourced by `/init`.
pub fn plan_script(entries: &[PlanEntry]) -> String {
    let mut s = String::from("# test plan, written by `cargo xtask vmtest`\n");
    for e in entries {
        s.push_str(&format!(
            "run_suite {} {} {}",
            sh_quote(&e.name),
            e.timeout_secs,
            sh_quote(&e.program)
        ));
        for a in &e.args {
            s.push(' ');
            s.push_str(&sh_quote(a));
        }
        s.push('\n');
    }
    s
}

fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub struct Boot<'a> {
    pub vmlinuz: &'a Path,
    pub initrd: &'a Path,
    pub smp: u32,
    pub memory_mb: u32,
    pub timeout: Duration,
    /// For output lines on the terminal, e.g. `6.1`.
    pub tag: &'a str,
    /// `console.log` and `results.txt` go here.
    pub out_dir: &'a Path,
}

pub struct BootOutcome {
    pub results: Results,
    pub timed_out: bool,
    pub exit: Option<std::process::ExitStatus>,
    pub wall: Duration,
    pub console_log: PathBuf,
}

/// Boots the kernel under QEMU (TCG) and waits for it to power off or for
/// the deadline.
pub fn boot(b: &Boot<'_>) -> anyhow::Result<BootOutcome> {
    fs::create_dir_all(b.out_dir)?;
    let console_log = b.out_dir.join("console.log");
    let results_file = b.out_dir.join("results.txt");
    let _ = fs::remove_file(&results_file);
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-cpu", "max"])
        .args(["-smp", &b.smp.to_string(), "-m", &b.memory_mb.to_string()])
        .args(["-nodefaults", "-no-reboot", "-display", "none"])
        .args(["-monitor", "none", "-net", "none"])
        .arg("-kernel")
        .arg(b.vmlinuz)
        .arg("-initrd")
        .arg(b.initrd)
        .args([
            "-append",
            // quiet: only errors on the console. panic=-1 plus -no-reboot:
            // a panic ends QEMU at once. mitigations=off: emulated
            // speculation barriers only cost time here.
            "console=ttyS0 quiet panic=-1 oops=panic mitigations=off",
        ])
        .args(["-serial", "stdio"])
        .arg("-serial")
        .arg(format!("file:{}", results_file.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    note(&describe(&cmd));
    let started = Instant::now();
    let mut child = cmd.spawn().context("starting qemu-system-x86_64")?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let tag = b.tag.to_string();
    let log_path = console_log.clone();
    let pump = std::thread::spawn(move || -> std::io::Result<()> {
        let mut log = fs::File::create(&log_path)?;
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            log.write_all(&line)?;
            let text = String::from_utf8_lossy(&line);
            eprintln!("[{tag}] {}", text.trim_end_matches(['\r', '\n']));
        }
    });
    let err_pump = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });
    let deadline = started + b.timeout;
    let mut timed_out = false;
    let exit = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let wall = started.elapsed();
    let _ = pump.join();
    let qemu_err = err_pump.join().unwrap_or_default();
    if !qemu_err.trim().is_empty() {
        fs::write(b.out_dir.join("qemu-stderr.txt"), &qemu_err)?;
        for l in qemu_err
            .lines()
            .filter(|l| !l.contains("TCG doesn't support"))
        {
            note(&format!("[{}] qemu: {l}", b.tag));
        }
    }
    let text = fs::read_to_string(&results_file).unwrap_or_default();
    Ok(BootOutcome {
        results: Results::parse(&text),
        timed_out,
        exit,
        wall,
        console_log,
    })
}

/// One executable's outcome in the guest.
#[derive(Debug, Default)]
pub struct SuiteResult {
    pub name: String,
    /// None: started but never ended (the guest died or hung).
    pub rc: Option<i32>,
    pub secs: f64,
    pub passed: u32,
    pub failed: u32,
    pub ignored: u32,
    pub filtered_out: u32,
    /// A libtest summary line was seen.
    pub summary: bool,
}

/// What the guest said on the result channel.
#[derive(Debug, Default)]
pub struct Results {
    pub begin_uptime: Option<f64>,
    pub done_uptime: Option<f64>,
    pub facts: BTreeMap<String, String>,
    /// (module file, loaded, message)
    pub modules: Vec<(String, bool, String)>,
    pub suites: Vec<SuiteResult>,
    pub errors: Vec<String>,
}

fn uptime_field(rest: &str) -> Option<f64> {
    rest.split_whitespace()
        .find_map(|w| w.strip_prefix("uptime="))
        .and_then(|v| v.parse().ok())
}

impl Results {
    pub fn parse(text: &str) -> Self {
        let mut r = Self::default();
        for raw in text.lines() {
            let Some(line) = raw.trim_end_matches('\r').strip_prefix(MARK) else {
                continue;
            };
            let line = line.trim();
            let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
            match verb {
                "begin" => r.begin_uptime = uptime_field(rest),
                "done" => r.done_uptime = uptime_field(rest).or(Some(0.0)),
                "fact" => {
                    let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                    r.facts.insert(k.to_string(), v.trim().to_string());
                }
                "module" => {
                    let mut it = rest.splitn(3, ' ');
                    let ok = it.next() == Some("ok");
                    let name = it.next().unwrap_or_default().to_string();
                    r.modules
                        .push((name, ok, it.next().unwrap_or_default().to_string()));
                }
                "suite-start" => r.suites.push(SuiteResult {
                    name: rest.trim().to_string(),
                    ..SuiteResult::default()
                }),
                "suite-end" => {
                    let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                    let Some(s) = r.suites.iter_mut().rev().find(|s| s.name == name) else {
                        r.errors.push(format!("suite-end without start: {line}"));
                        continue;
                    };
                    let mut t0 = None;
                    let mut t1 = None;
                    for w in rest.split_whitespace() {
                        if let Some(v) = w.strip_prefix("rc=") {
                            s.rc = v.parse().ok();
                        } else if let Some(v) = w.strip_prefix("t0=") {
                            t0 = v.parse::<f64>().ok();
                        } else if let Some(v) = w.strip_prefix("t1=") {
                            t1 = v.parse::<f64>().ok();
                        }
                    }
                    if let (Some(a), Some(b)) = (t0, t1) {
                        s.secs = b - a;
                    }
                    // "test result: ok. 16 passed; 0 failed; 0 ignored; 0
                    // measured; 0 filtered out; finished in 1.2s"
                    if let Some((_, summary)) = rest.split_once("test result:") {
                        s.summary = true;
                        let words: Vec<&str> = summary
                            .split(|c: char| c.is_whitespace() || c == ';')
                            .filter(|w| !w.is_empty())
                            .collect();
                        for pair in words.windows(2) {
                            let n = pair[0].parse().unwrap_or(0);
                            match pair[1] {
                                "passed" => s.passed = n,
                                "failed" => s.failed = n,
                                "ignored" => s.ignored = n,
                                "filtered" => s.filtered_out = n,
                                _ => {}
                            }
                        }
                    }
                }
                "error" => r.errors.push(rest.to_string()),
                _ => r.errors.push(format!("unknown marker: {line}")),
            }
        }
        r
    }

    pub fn passed(&self) -> u32 {
        self.suites.iter().map(|s| s.passed).sum()
    }

    pub fn failed(&self) -> u32 {
        self.suites.iter().map(|s| s.failed).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_result_channel() {
        let text = "\
@@vmtest begin uptime=3.21\r
@@vmtest fact uname 6.1.0-50-amd64\r
@@vmtest fact kprobe yes\r
@@vmtest module ok veth.ko\r
@@vmtest module FAIL foo.ko insmod: can't insert 'foo.ko': invalid module format\r
@@vmtest suite-start xdp_testrun\r
@@vmtest suite-end xdp_testrun rc=0 t0=3.50 t1=40.25 test result: ok. 19 passed; 0 failed; 1 ignored; 0 measured; 2 filtered out; finished in 36.1s\r
@@vmtest suite-start lab\r
@@vmtest done uptime=90.00\r
";
        let r = Results::parse(text);
        assert_eq!(r.begin_uptime, Some(3.21));
        assert_eq!(r.done_uptime, Some(90.0));
        assert_eq!(r.facts["uname"], "6.1.0-50-amd64");
        assert_eq!(r.facts["kprobe"], "yes");
        assert_eq!(r.modules.len(), 2);
        assert!(r.modules[0].1 && !r.modules[1].1);
        let s = &r.suites[0];
        assert_eq!(
            (s.rc, s.passed, s.failed, s.ignored, s.filtered_out),
            (Some(0), 19, 0, 1, 2)
        );
        assert!((s.secs - 36.75).abs() < 1e-9);
        assert_eq!(r.suites[1].rc, None);
        assert!(r.errors.is_empty());
    }

    #[test]
    fn plan_quotes_arguments() {
        let p = plan_script(&[PlanEntry {
            name: "lab".into(),
            program: "/opt/blocker/tests/lab".into(),
            args: vec!["bans take".into(), "it's".into()],
            timeout_secs: 60,
        }]);
        assert!(p.contains("run_suite lab 60 /opt/blocker/tests/lab 'bans take' 'it'\\''s'"));
    }
}
