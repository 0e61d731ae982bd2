//! `cargo xtask vmtest`: blocker's privileged tests on other kernels.
//!
//! Our development kernel has no kprobes; the distribution kernels that
//! operators run do. This boots Debian's own kernels under QEMU with TCG
//! (KVM does not work on our machines), each with a minimal initramfs:
//! busybox as `/init` shell, the kernel modules the tests need, the host
//! tools they call (with their shared libraries), the `blocker` binary and
//! the compiled integration-test executables. The guest runs [`GUEST_SUITES`]
//! and reports over a second serial port; the host fails on any failed
//! test, timeout, crash or missing marker, and prints a summary per kernel.
//!
//! Tiers: `host` runs the normal integration tests natively; `6.1` and
//! `6.12` (see [`kernel::SERIES`]) are Debian kernels in guests.
//!
//! Caches under `~/.cache/blocker/vm/`: `kernels/` (unpacked packages),
//! `initramfs/` (images keyed by the SHA-256 of their contents),
//! `staged/` (stripped executables, decompressed modules). Logs of each run
//! go to `target/vmtest/<kernel release>/`.
//!
//! To add tests for the guests (the kprobe treason probes, the kmsg source,
//! ...): add an entry to [`GUEST_SUITES`]; a tool they run to
//! [`GUEST_TOOLS`]; a kernel module they need to [`GUEST_MODULES`].

mod guest;
mod initramfs;
pub mod kernel;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    bootstrap, compile,
    util::{note, run},
};
use guest::{GUEST_BIN_DIR, GUEST_TEST_DIR, MODULE_LIST, PLAN, PlanEntry};
use initramfs::{Image, Transform};

/// Debian packages the VM tier needs, with the reason for each.
pub const VM_PACKAGES: &[(&str, &str)] = &[
    (
        "qemu-system-x86",
        "`qemu-system-x86_64` boots the test kernels (TCG; KVM does not work here)",
    ),
    (
        "busybox-static",
        "a static busybox is the guest's /init shell and coreutils",
    ),
    (
        "kmod",
        "`depmod` writes modules.dep for the unpacked kernels (Debian makes it at install time)",
    ),
    (
        "xz-utils",
        "Debian's 6.12 modules are .ko.xz; they are decompressed for busybox insmod",
    ),
    ("zstd", "for kernels whose modules are .ko.zst"),
    (
        "binutils",
        "`objcopy --strip-debug` keeps the test executables in the initramfs small",
    ),
];

/// One integration-test executable to run in every guest.
pub struct Suite {
    /// cargo's name for it: `tests/tests/NAME.rs`.
    pub bin: &'static str,
    /// libtest name filters (a test runs if its name contains any); empty
    /// for all.
    pub filters: &'static [&'static str],
    /// More libtest arguments, e.g. `--include-ignored` or `--exact`.
    pub args: &'static [&'static str],
    /// For the whole executable in the guest (TCG is 10-50x slower than
    /// the host).
    pub timeout_secs: u32,
    /// Why it runs in the guests.
    pub why: &'static str,
}

/// What runs inside each guest kernel, in order.
pub const GUEST_SUITES: &[Suite] = &[
    Suite {
        bin: "xdp_testrun",
        filters: &[],
        args: &[],
        timeout_secs: 600,
        why: "the XDP program's verdicts and counters through BPF_PROG_TEST_RUN: \
              the verifier and map types of this kernel",
    },
    Suite {
        bin: "lab",
        filters: &[],
        args: &[],
        timeout_secs: 600,
        why: "blocker on a veth between namespaces: bans drop live traffic, survive \
              SIGKILL and restarts, expire in the kernel; driver/skb XDP modes; \
              BTF-formatted bpftool dumps",
    },
    Suite {
        bin: "cli",
        filters: &[],
        args: &[],
        timeout_secs: 300,
        why: "the CLI's errors and bpffs handling on this kernel",
    },
    Suite {
        bin: "treason",
        filters: &[
            "slow_reader_is_caught",
            "window_shrinking_peer",
            "sockstress_zero_window_handshake",
            "probe_selection",
            "kernel_log_treason_message",
        ],
        args: &["--include-ignored"],
        timeout_secs: 900,
        why: "the kprobe treason path for real: auto picks kprobes here, the \
              tcp_retransmit_timer and tcp_send_probe0 kprobes catch a window shrinker, \
              a slow reader and a sockstress peer through this kernel's BTF offsets; \
              the kmsg source reads the kernel's own treason message (dynamic debug)",
    },
];

/// Host tools the tests call, copied into the guests with their libraries.
/// (name on PATH, Debian package, why)
pub const GUEST_TOOLS: &[(&str, &str, &str)] = &[
    (
        "ip",
        "iproute2",
        "the labs' namespaces, veths and addresses",
    ),
    ("tc", "iproute2", "qdiscs for slow-peer labs"),
    (
        "ss",
        "iproute2",
        "socket state (windows, timers) of lab connections",
    ),
    ("ping", "iputils-ping", "the labs' ICMP checks"),
    ("bpftool", "bpftool", "formatted map dumps"),
    ("nsenter", "util-linux", "blocker inside a lab namespace"),
    ("unshare", "util-linux", "private mount namespaces"),
    ("setpriv", "util-linux", "running blocker unprivileged"),
    ("mountpoint", "util-linux", "bpffs checks"),
    ("hping3", "hping3", "zero-window SYN floods"),
];

/// Kernel modules loaded in every guest (dependencies first), unless the
/// kernel has them built in.
pub const GUEST_MODULES: &[&str] = &["veth"];

/// Every guest kernel of the matrix; `cargo xtask test` (CI) boots them
/// all: together they take about 6 minutes (README).
pub fn all_guest_kernels() -> Vec<String> {
    kernel::SERIES.iter().map(|s| s.name.to_string()).collect()
}

#[derive(Debug, Clone, clap::Args)]
pub struct VmOptions {
    /// Virtual CPUs per guest.
    #[arg(long, default_value_t = 2)]
    pub smp: u32,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1536)]
    pub memory_mb: u32,
    /// Extra seconds per guest for booting and setup, on top of the suites'
    /// own limits.
    #[arg(long, default_value_t = 180)]
    pub boot_timeout: u64,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kernels to test: `host` (native), a series (`6.1`, `6.12`), a Debian
    /// package name (`linux-image-6.1.0-47-amd64`) or a local .deb; repeat
    /// or separate with commas. Default: host, then every series.
    #[arg(long = "kernel", value_delimiter = ',', value_name = "KERNEL")]
    pub kernels: Vec<String>,
    /// Only tests whose name contains this (in every suite).
    #[arg(long, value_name = "FILTER")]
    pub filter: Option<String>,
    #[command(flatten)]
    pub vm: VmOptions,
}

/// `cargo xtask vmtest`.
pub fn run_matrix(args: &Args) -> anyhow::Result<()> {
    if !crate::util::is_root() {
        bail!(
            "the tests attach XDP and build network namespaces, so they need root: \
             `sudo -E cargo xtask vmtest`"
        );
    }
    let mut kernels = args.kernels.clone();
    if kernels.is_empty() {
        kernels.push("host".into());
        kernels.extend(all_guest_kernels());
    }
    bootstrap::packages(bootstrap::TEST_PACKAGES)?;
    bootstrap::packages(VM_PACKAGES)?;
    let obj = compile::ebpf()?;
    let bin = compile::all(false)?;
    let mut outcomes = Vec::new();
    if kernels.iter().any(|k| k == "host") {
        outcomes.push(host_tier(&obj, &bin, args.filter.as_deref()));
    }
    let guests: Vec<String> = kernels.into_iter().filter(|k| k != "host").collect();
    if !guests.is_empty() {
        outcomes.extend(guest_tiers(
            &guests,
            &obj,
            &bin,
            args.filter.as_deref(),
            &args.vm,
        )?);
    }
    finish(&outcomes)
}

/// The guest tiers for `cargo xtask test` (the host tier already ran).
pub fn run_guests(
    kernels: &[String],
    obj: &Path,
    bin: &Path,
    filter: Option<&str>,
    opts: &VmOptions,
) -> anyhow::Result<()> {
    bootstrap::packages(VM_PACKAGES)?;
    // The host tier is the integration-test step that just ran.
    let guests: Vec<String> = kernels.iter().filter(|k| *k != "host").cloned().collect();
    let outcomes = guest_tiers(&guests, obj, bin, filter, opts)?;
    finish(&outcomes)
}

/// How one kernel went.
struct Outcome {
    label: String,
    release: String,
    secs: f64,
    problems: Vec<String>,
    detail: String,
}

fn host_tier(obj: &Path, bin: &Path, filter: Option<&str>) -> Outcome {
    note("== host kernel: the integration tests, natively");
    let started = Instant::now();
    let mut cmd = compile::host_cargo(obj);
    cmd.args(["test", "-p", "blocker-tests", "--"])
        .env("BLOCKER_BIN", bin)
        .env("RUST_BACKTRACE", "1");
    if let Some(f) = filter {
        cmd.arg(f);
    }
    let problems = match run(&mut cmd) {
        Ok(()) => Vec::new(),
        Err(e) => vec![format!("{e:#}")],
    };
    Outcome {
        label: "host".into(),
        release: crate::util::cmd_output(Command::new("uname").arg("-r"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        secs: started.elapsed().as_secs_f64(),
        problems,
        detail: "all integration tests (cargo test -p blocker-tests)".into(),
    }
}

fn vm_cache() -> PathBuf {
    bootstrap::cache_dir().join("vm")
}

/// Compiled integration-test executables by target name, from cargo's JSON
/// messages (builds them if needed, as `cargo test` would).
fn test_executables(obj: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let out = crate::util::cmd_output(compile::host_cargo(obj).args([
        "test",
        "-p",
        "blocker-tests",
        "--no-run",
        "--message-format=json",
    ]))
    .context("building the integration-test executables")?;
    let mut found = BTreeMap::new();
    for line in out.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" || msg["profile"]["test"] != true {
            continue;
        }
        let is_test = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"));
        if let (true, Some(name), Some(exe)) = (
            is_test,
            msg["target"]["name"].as_str(),
            msg["executable"].as_str(),
        ) {
            found.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    Ok(found)
}

fn guest_tiers(
    specs: &[String],
    obj: &Path,
    bin: &Path,
    filter: Option<&str>,
    opts: &VmOptions,
) -> anyhow::Result<Vec<Outcome>> {
    let cache = vm_cache();
    let exes = test_executables(obj)?;
    let mut plan = Vec::new();
    let mut payload = Vec::new();
    for s in GUEST_SUITES {
        let exe = exes.get(s.bin).with_context(|| {
            format!(
                "no integration test named {:?} (found {:?}); fix GUEST_SUITES in xtask/src/vm.rs",
                s.bin,
                exes.keys().collect::<Vec<_>>()
            )
        })?;
        let dest = format!("{GUEST_TEST_DIR}/{}", s.bin);
        let mut args: Vec<String> = s.args.iter().map(|a| a.to_string()).collect();
        match filter {
            // A user filter narrows within the suite's own selection (libtest
            // ORs its filters, so pass whichever of the two is narrower).
            Some(f) if s.filters.is_empty() || s.filters.iter().any(|x| f.contains(x)) => {
                args.push(f.to_string());
            }
            Some(f) => args.extend(
                s.filters
                    .iter()
                    .filter(|x| x.contains(f))
                    .map(|x| x.to_string()),
            ),
            None => args.extend(s.filters.iter().map(|x| x.to_string())),
        }
        if filter.is_some() && !s.filters.is_empty() && args.len() == s.args.len() {
            continue; // the filter excludes every selected test of this suite
        }
        note(&format!("guest suite {}: {}", s.bin, s.why));
        plan.push(PlanEntry {
            name: s.bin.to_string(),
            program: dest.clone(),
            args,
            timeout_secs: s.timeout_secs,
        });
        payload.push((dest, exe.clone()));
    }
    let mut outcomes = Vec::new();
    for spec in specs {
        note(&format!("== kernel {spec}: tests in a QEMU guest"));
        let started = Instant::now();
        let outcome = match kernel::resolve(&cache, spec) {
            Err(e) => Outcome {
                label: spec.clone(),
                release: "?".into(),
                secs: started.elapsed().as_secs_f64(),
                problems: vec![format!("getting the kernel: {e:#}")],
                detail: String::new(),
            },
            Ok(k) => {
                if let Some(s) = kernel::SERIES.iter().find(|s| s.name == spec) {
                    note(&format!("{} {}: {}", k.package, k.version, s.why));
                }
                one_guest(&cache, &k, bin, &payload, &plan, filter, opts, started).unwrap_or_else(
                    |e| Outcome {
                        label: k.label.clone(),
                        release: k.release.clone(),
                        secs: started.elapsed().as_secs_f64(),
                        problems: vec![format!("{e:#}")],
                        detail: String::new(),
                    },
                )
            }
        };
        report(&outcome);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The initramfs for `k`: everything but the kernel itself.
fn image_for(
    k: &kernel::Kernel,
    bin: &Path,
    payload: &[(String, PathBuf)],
    plan: &[PlanEntry],
) -> anyhow::Result<Image> {
    let mut img = Image::default();
    // The host's top-level layout (/bin -> usr/bin on merged-/usr systems).
    for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        if let Ok(target) = std::fs::read_link(top) {
            img.symlink(top, target.to_str().context("non-UTF-8 link")?)?;
        }
    }
    for d in ["/proc", "/sys", "/dev", "/tmp", "/run", "/root", "/etc"] {
        img.dir(d)?;
    }
    // The kernel opens /dev/console before /init runs: without it, init has
    // no stdout.
    img.char_dev("/dev/console", 5, 1)?;
    img.bytes(
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    )?;
    img.bytes("/etc/group", "root:x:0:\nnogroup:x:65534:\n", 0o644)?;

    // Real tools first, so busybox only fills in what they do not provide.
    let mut real = Vec::new();
    for (tool, package, _) in GUEST_TOOLS {
        let path = initramfs::which(tool).with_context(|| {
            format!("{tool} is not installed on the host (Debian package {package})")
        })?;
        img.host_binary(&path)?;
        real.push(*tool);
    }
    let busybox = Path::new("/bin/busybox");
    anyhow::ensure!(
        initramfs::shared_libraries(busybox)?.is_empty(),
        "{} is not static; install busybox-static",
        busybox.display()
    );
    img.host_path(busybox)?;
    let busybox_real = std::fs::canonicalize(busybox)?;
    for applet in initramfs::busybox_applets(busybox)? {
        let name = applet.rsplit('/').next().unwrap_or_default();
        if name.is_empty() || real.contains(&name) || applet == "/bin/busybox" {
            continue;
        }
        // `bin/x` with /bin -> usr/bin becomes /usr/bin/x.
        let dest = resolve_top(&applet);
        if !img.contains(&dest) {
            img.symlink(&dest, busybox_real.to_str().context("utf-8")?)?;
        }
    }

    // The kernel's modules, dependencies first.
    let mut order = Vec::new();
    for m in GUEST_MODULES {
        module_order(k, m, &mut order)?;
    }
    let mut list = String::new();
    for rel in &order {
        let src = k.modules_dir().join(rel);
        let (plain, transform) = if let Some(p) = rel.strip_suffix(".xz") {
            (p, Transform::Unxz)
        } else if let Some(p) = rel.strip_suffix(".zst") {
            (p, Transform::Unzstd)
        } else {
            (rel.as_str(), Transform::Copy)
        };
        let dest = format!("/usr/lib/modules/{}/{plain}", k.release);
        img.host_file(&dest, &src, transform)?;
        list.push_str(&dest);
        list.push('\n');
    }
    img.bytes(MODULE_LIST, list, 0o644)?;

    img.host_binary_at(
        &format!("{GUEST_BIN_DIR}/blocker"),
        bin,
        Transform::StripDebug,
    )?;
    for (dest, exe) in payload {
        img.host_binary_at(dest, exe, Transform::StripDebug)?;
    }
    img.bytes("/init", guest::init_script(), 0o755)?;
    img.bytes(PLAN, guest::plan_script(plan), 0o644)?;
    Ok(img)
}

/// `/bin/x` -> `/usr/bin/x` when the host's /bin is a link to usr/bin.
fn resolve_top(path: &str) -> String {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (top, rest) = (parts.next().unwrap_or_default(), parts.next());
    match (std::fs::read_link(format!("/{top}")), rest) {
        (Ok(target), Some(rest)) if target.is_relative() => {
            format!("/{}/{rest}", target.display())
        }
        _ => path.to_string(),
    }
}

/// Appends `module` and its dependencies (first) to `order`, as paths
/// relative to the modules directory. Built-in modules add nothing.
fn module_order(k: &kernel::Kernel, module: &str, order: &mut Vec<String>) -> anyhow::Result<()> {
    let dir = k.modules_dir();
    let deps = std::fs::read_to_string(dir.join("modules.dep"))
        .with_context(|| format!("reading modules.dep of {}", k.release))?;
    let norm = |s: &str| s.replace('-', "_");
    let stem = |path: &str| {
        let file = path.rsplit('/').next().unwrap_or(path);
        norm(file.split(".ko").next().unwrap_or(file))
    };
    let table: BTreeMap<String, (String, Vec<String>)> = deps
        .lines()
        .filter_map(|l| {
            let (path, rest) = l.split_once(':')?;
            Some((
                stem(path),
                (
                    path.to_string(),
                    rest.split_whitespace().map(str::to_string).collect(),
                ),
            ))
        })
        .collect();
    let Some((path, dependencies)) = table.get(&norm(module)) else {
        let builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
        if builtin.lines().any(|l| stem(l) == norm(module)) {
            return Ok(());
        }
        bail!("kernel {} has no module {module}", k.release);
    };
    // modules.dep lists the whole closure; load the deepest first.
    for d in dependencies.iter().rev() {
        if !order.contains(d) {
            module_order(k, &stem(d), order)?;
        }
    }
    if !order.contains(path) {
        order.push(path.clone());
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn one_guest(
    cache: &Path,
    k: &kernel::Kernel,
    bin: &Path,
    payload: &[(String, PathBuf)],
    plan: &[PlanEntry],
    filter: Option<&str>,
    opts: &VmOptions,
    started: Instant,
) -> anyhow::Result<Outcome> {
    let kprobes = k.config("KPROBES")?;
    anyhow::ensure!(
        kprobes.as_deref() == Some("y"),
        "{} is built without CONFIG_KPROBES; the guest tiers exist to test the kprobe path",
        k.package
    );
    let img = image_for(k, bin, payload, plan)?;
    let initrd = img.build(cache, &k.release)?;
    let out_dir = compile::target_dir().join("vmtest").join(&k.release);
    let suites_secs: u64 = plan.iter().map(|p| u64::from(p.timeout_secs)).sum();
    let timeout = Duration::from_secs(opts.boot_timeout + suites_secs);
    note(&format!(
        "booting {} under QEMU TCG ({} vCPUs, {} MiB, {} suites, deadline {} s); console log: {}",
        k.release,
        opts.smp,
        opts.memory_mb,
        plan.len(),
        timeout.as_secs(),
        out_dir.join("console.log").display()
    ));
    let boot = guest::boot(&guest::Boot {
        vmlinuz: &k.vmlinuz(),
        initrd: &initrd,
        smp: opts.smp,
        memory_mb: opts.memory_mb,
        timeout,
        tag: &k.label,
        out_dir: &out_dir,
    })?;
    let r = &boot.results;
    let mut problems = Vec::new();
    if boot.timed_out {
        problems.push(format!(
            "timed out after {} s (QEMU killed)",
            timeout.as_secs()
        ));
    }
    if r.begin_uptime.is_none() {
        problems.push("the guest never reached /init's first marker".into());
    }
    if r.done_uptime.is_none() && !boot.timed_out {
        problems.push(format!(
            "the guest stopped before finishing (QEMU {})",
            boot.exit.map_or("killed".into(), |s| s.to_string())
        ));
        // The kernel's own last word, if it panicked or oopsed.
        let console = std::fs::read_to_string(&boot.console_log).unwrap_or_default();
        if let Some(line) = console
            .lines()
            .rev()
            .find(|l| l.contains("Kernel panic") || l.contains("BUG:") || l.contains("Oops"))
        {
            problems.push(format!("console: {}", line.trim()));
        }
    }
    problems.extend(r.errors.iter().map(|e| format!("guest: {e}")));
    for (m, ok, msg) in &r.modules {
        if !ok {
            problems.push(format!("module {m} failed to load: {msg}"));
        }
    }
    if r.facts.get("uname") != Some(&k.release) && r.begin_uptime.is_some() {
        problems.push(format!(
            "guest runs {:?}, expected {}",
            r.facts.get("uname"),
            k.release
        ));
    }
    // CONFIG_KPROBES=y: the kprobe PMU must be there, or the kprobe tests
    // would not be testing anything.
    if r.begin_uptime.is_some() && r.facts.get("kprobe").map(String::as_str) != Some("yes") {
        problems.push(format!(
            "kprobe is not in /sys/bus/event_source/devices ({:?})",
            r.facts.get("event_sources")
        ));
    }
    // ... and a kprobe must really arm, on the function that matters most.
    let first = guest::KPROBE_TARGETS[0];
    let armed = r.facts.get("kprobe_attach").cloned().unwrap_or_default();
    if r.begin_uptime.is_some()
        && !armed
            .split_whitespace()
            .any(|w| w == format!("{first}=yes"))
    {
        problems.push(format!(
            "could not arm a kprobe on {first} through tracefs ({armed:?})"
        ));
    }
    for p in plan.iter().filter(|_| r.begin_uptime.is_some()) {
        match r.suites.iter().find(|s| s.name == p.name) {
            None if r.done_uptime.is_some() => problems.push(format!("{} never started", p.name)),
            None => problems.push(format!("{} did not run", p.name)),
            Some(s) => match s.rc {
                None => problems.push(format!("{} did not finish", p.name)),
                Some(0) if !s.summary => {
                    problems.push(format!("{} printed no libtest summary", p.name));
                }
                Some(0) if s.passed == 0 && filter.is_none() => problems.push(format!(
                    "{} ran no test: a filter in GUEST_SUITES matches nothing",
                    p.name
                )),
                Some(0) => {}
                Some(124 | 143) => problems.push(format!(
                    "{} timed out in the guest after {} s",
                    p.name, p.timeout_secs
                )),
                Some(rc) => problems.push(format!(
                    "{}: {} failed, {} passed (exit {rc})",
                    p.name, s.failed, s.passed
                )),
            },
        }
    }
    if !problems.is_empty() {
        problems.push(format!("console log: {}", boot.console_log.display()));
    }
    let boot_secs = r.begin_uptime.unwrap_or(0.0);
    let mut detail = format!(
        "boot {boot_secs:.1}s, QEMU {:.0}s, kprobe PMU {}, kprobes armed:{}, BTF {}",
        boot.wall.as_secs_f64(),
        r.facts.get("kprobe").map_or("?", String::as_str),
        armed
            .split_whitespace()
            .filter_map(|w| w.strip_suffix("=yes"))
            .fold(String::new(), |acc, f| acc + " " + f),
        r.facts.get("btf").map_or("?", String::as_str),
    );
    for s in &r.suites {
        detail.push_str(&format!(
            "; {} {}/{} in {:.0}s",
            s.name,
            s.passed,
            s.passed + s.failed,
            s.secs
        ));
    }
    Ok(Outcome {
        label: k.label.clone(),
        release: r.facts.get("uname").cloned().unwrap_or(k.release.clone()),
        secs: started.elapsed().as_secs_f64(),
        problems,
        detail: format!("{} passed, {} failed; {detail}", r.passed(), r.failed()),
    })
}

fn report(o: &Outcome) {
    if o.problems.is_empty() {
        note(&format!(
            "kernel {} ({}) ok in {:.0}s",
            o.label, o.release, o.secs
        ));
    } else {
        note(&format!("kernel {} ({}) FAILED:", o.label, o.release));
        for p in &o.problems {
            note(&format!("  - {p}"));
        }
    }
}

fn finish(outcomes: &[Outcome]) -> anyhow::Result<()> {
    note("kernel matrix:");
    for o in outcomes {
        note(&format!(
            "  {:<6} {:<24} {:<6} {:>6.0}s  {}",
            o.label,
            o.release,
            if o.problems.is_empty() {
                "ok"
            } else {
                "FAILED"
            },
            o.secs,
            o.detail
        ));
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.problems.is_empty())
        .map(|o| o.label.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("kernel tests failed on: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_suite_has_a_timeout_and_a_reason() {
        for s in GUEST_SUITES {
            assert!(s.timeout_secs > 0 && !s.why.is_empty(), "{}", s.bin);
        }
    }
}
