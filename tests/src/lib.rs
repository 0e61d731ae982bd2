//! Helpers for blocker's privileged integration tests: crafted frames, a
//! `BPF_PROG_TEST_RUN` harness, network-namespace labs and the CLI under
//! test. Everything a test creates is removed by a guard's `Drop`, also when
//! the test fails.
//!
//! Test network rules (DESIGN.md): namespaces only, addresses from
//! 198.18.0.0/15 and 2001:db8::/32, no route out, bounded traffic.

pub mod crowdsec;
pub mod eve;
pub mod fleet;
pub mod frames;
pub mod lab;
pub mod llm_server;
pub mod nats;
pub mod peers;
pub mod testrun;
pub mod xdp_filter;

use std::{
    path::PathBuf,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

/// A short name unique to this test process and call, for namespaces,
/// interfaces (15 characters at most) and pin directories.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}{n}", std::process::id() % 100_000)
}

/// The `blocker` binary under test: `$BLOCKER_BIN` (set by `cargo xtask
/// test`), else the workspace's debug build.
pub fn blocker_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BLOCKER_BIN") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/blocker");
    assert!(
        p.exists(),
        "blocker binary not found at {}; run the tests with `cargo xtask test`",
        p.display()
    );
    p
}

/// A private pin directory and state directory for one test, removed on
/// drop (links detach when their pins go and no daemon holds them).
pub struct State {
    pub pin_dir: PathBuf,
    pub state_dir: PathBuf,
}

impl State {
    pub fn new() -> Self {
        let name = unique("blocker-test-");
        let s = Self {
            pin_dir: PathBuf::from("/sys/fs/bpf").join(&name),
            state_dir: std::env::temp_dir().join(&name),
        };
        std::fs::create_dir_all(&s.state_dir).expect("create state dir");
        s
    }

    /// `blocker` with this state's directories and `args`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(blocker_bin());
        c.env("BLOCKER_PIN_DIR", &self.pin_dir)
            .env("BLOCKER_STATE_DIR", &self.state_dir)
            .env_remove("BLOCKER_CONFIG")
            .env("RUST_LOG", "info")
            .args(args);
        c
    }

    /// Runs `blocker args` and returns its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("spawn blocker")
    }

    /// Runs `blocker args`, panicking with its output unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "blocker {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `blocker args --json`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ok(&a);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("blocker {a:?}: bad JSON ({e}): {out}"))
    }
}

impl State {
    /// What the running daemon last published (`daemon.json`), or null.
    pub fn daemon_status(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.state_dir.join(blocker::daemon::STATUS_FILE))
            .unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // Detach links explicitly (BPF_LINK_DETACH) in case something still
        // holds them, then remove every pin.
        let _ = self.cmd(&["detach", "--all"]).output();
        let _ = std::fs::remove_dir_all(&self.pin_dir);
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// Polls `f` every 100 ms until it holds or `timeout` passes; returns
/// whether it held.
pub fn wait_until(timeout: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    f()
}

/// stdout and stderr of a command, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Fails the test run loudly when not root: privileged tests must never
/// pass by skipping.
pub fn require_root() {
    // SAFETY: no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "blocker's integration tests need root (BPF, XDP, network namespaces); run `sudo -E cargo xtask test`"
    );
}
