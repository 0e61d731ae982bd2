//! fail2ban with the shipped action (packaging/fail2ban/action.d/blocker.conf):
//! the real `fail2ban-server` from Debian's package, with a configuration
//! directory of its own (no systemd here), watches a log file the test
//! writes. Three failed logins from one 198.18.x.y source → fail2ban bans it
//! through `blocker ban` → the running daemon's XDP program drops its real
//! traffic; `fail2ban-client unban` → `blocker unban` → it passes again.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use blocker_tests::{
    State, blocker_bin, describe,
    lab::{CLIENT_V4, Daemon, Lab, SERVER_V4},
    require_root, unique, wait_until,
};

/// The action file as shipped.
fn shipped_action() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/fail2ban/action.d/blocker.conf")
}

/// A fail2ban-server in the foreground with its own config, socket and
/// database under `dir`; stopped (and its directory removed) on drop.
struct Fail2ban {
    dir: PathBuf,
    child: Option<Child>,
}

impl Fail2ban {
    fn socket(&self) -> PathBuf {
        self.dir.join("fail2ban.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("fail2ban.log")).unwrap_or_default()
    }

    /// `fail2ban-client` against this server.
    fn client(&self, args: &[&str]) -> std::process::Output {
        Command::new("fail2ban-client")
            .arg("-c")
            .arg(self.dir.join("conf"))
            .arg("-s")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("spawn fail2ban-client (apt-get install fail2ban)")
    }

    /// Writes the config (one jail `blockertest` over `logpath` with the
    /// shipped action) and starts the server.
    fn start(state: &State, logpath: &Path) -> Self {
        let dir = std::env::temp_dir().join(unique("blocker-f2b-"));
        let conf = dir.join("conf");
        for sub in ["action.d", "filter.d"] {
            std::fs::create_dir_all(conf.join(sub)).expect("fail2ban config dir");
        }
        std::fs::copy(shipped_action(), conf.join("action.d/blocker.conf"))
            .expect("copy the shipped action");
        let write = |name: &str, text: String| {
            std::fs::write(conf.join(name), text).expect("write fail2ban config");
        };
        write(
            "fail2ban.conf",
            format!(
                "[Definition]\nloglevel = INFO\nlogtarget = {log}\nsocket = {sock}\npidfile = {pid}\ndbfile = {db}\ndbpurgeage = 1d\n",
                log = dir.join("fail2ban.log").display(),
                sock = dir.join("fail2ban.sock").display(),
                pid = dir.join("fail2ban.pid").display(),
                db = dir.join("fail2ban.sqlite3").display(),
            ),
        );
        // The lines carry no timestamp: {NONE} makes fail2ban take them as
        // happening now.
        write(
            "filter.d/blockertest.conf",
            "[Definition]\nfailregex = ^Failed login for \\S+ from <HOST>$\ndatepattern = {NONE}\n"
                .to_string(),
        );
        write(
            "jail.conf",
            format!(
                "[DEFAULT]\nbackend = polling\n\n[blockertest]\nenabled = true\nfilter = blockertest\nlogpath = {log}\nmaxretry = 3\nfindtime = 10m\nbantime = 1h\naction = blocker[blocker=\"{bin}\", blocker_opts=\"--pin-dir {pins} --state-dir {state}\"]\n",
                log = logpath.display(),
                bin = blocker_bin().display(),
                pins = state.pin_dir.display(),
                state = state.state_dir.display(),
            ),
        );
        let out = std::fs::File::create(dir.join("server.out")).expect("server output");
        let child = Command::new("fail2ban-server")
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(dir.join("fail2ban.sock"))
            .arg("-p")
            .arg(dir.join("fail2ban.pid"))
            .args(["-x", "-f", "start"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn fail2ban-server (apt-get install fail2ban)");
        let mut f = Self {
            dir,
            child: Some(child),
        };
        let up = wait_until(Duration::from_secs(60), || {
            if let Some(status) = f.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "fail2ban-server exited ({status}):\n{}\n{}",
                    std::fs::read_to_string(f.dir.join("server.out")).unwrap_or_default(),
                    f.log()
                );
            }
            let out = f.client(&["status", "blockertest"]);
            out.status.success()
        });
        assert!(
            up,
            "fail2ban-server did not bring up the jail in 60 s:\n{}",
            f.log()
        );
        f
    }
}

impl Drop for Fail2ban {
    fn drop(&mut self) {
        let _ = self.client(&["stop"]);
        if let Some(mut c) = self.child.take() {
            let stopped = wait_until(Duration::from_secs(10), || {
                c.try_wait().ok().flatten().is_some()
            });
            if !stopped {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn banned(state: &State) -> Vec<serde_json::Value> {
    state.json(&["list"])["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn three_failed_logins_ban_in_xdp_and_fail2ban_unbans() {
    require_root();
    let state = State::new();
    let lab = Lab::new();
    let daemon = Daemon::start(&state, &lab.server, &lab.server_if, &["--no-kmsg"]);
    let attacker = CLIENT_V4[0];
    let friend = CLIENT_V4[1];
    assert!(
        lab.ping(attacker, SERVER_V4),
        "lab path broken before the ban"
    );

    let logpath = state.state_dir.join("auth.log");
    std::fs::write(&logpath, "").expect("create the log");
    let f2b = Fail2ban::start(&state, &logpath);

    // One failure of the friend (under maxretry), three of the attacker.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&logpath)
        .unwrap();
    writeln!(log, "Failed login for alice from {friend}").unwrap();
    for user in ["root", "admin", "root"] {
        writeln!(log, "Failed login for {user} from {attacker}").unwrap();
    }
    log.flush().unwrap();

    let found = wait_until(Duration::from_secs(60), || {
        banned(&state).iter().any(|r| r["address"] == attacker)
    });
    assert!(
        found,
        "fail2ban did not ban {attacker} through blocker in 60 s:\nfail2ban: {}\nlist: {:?}",
        f2b.log(),
        banned(&state)
    );
    let rules = banned(&state);
    assert_eq!(rules.len(), 1, "only the attacker is banned: {rules:?}");
    let rule = &rules[0];
    assert_eq!(rule["reason"], "fail2ban blockertest", "{rule}");
    // bantime = 1h became the kernel expiry.
    let left = rule["expires_in_secs"].as_u64().expect("a TTL");
    assert!((3000..=3600).contains(&left), "{rule}");
    let status = f2b.client(&["status", "blockertest"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains(attacker),
        "{}",
        describe(&status)
    );

    // Dropped in XDP: real packets from the attacker, counted on its rule;
    // the friend passes.
    assert!(
        !lab.ping(attacker, SERVER_V4),
        "banned source still answered"
    );
    assert!(lab.ping(friend, SERVER_V4), "the friend was dropped");
    let counted = wait_until(Duration::from_secs(10), || {
        banned(&state)
            .first()
            .and_then(|r| r["packets"].as_u64())
            .is_some_and(|p| p > 0)
    });
    assert!(counted, "no drop counted on the rule: {:?}", banned(&state));

    // `fail2ban-client unban` runs the action's `blocker unban`.
    let out = f2b.client(&["unban", attacker]);
    assert!(out.status.success(), "{}", describe(&out));
    let gone = wait_until(Duration::from_secs(30), || banned(&state).is_empty());
    assert!(
        gone,
        "unban did not reach blocker: {:?}\n{}",
        banned(&state),
        f2b.log()
    );
    assert!(
        wait_until(Duration::from_secs(10), || lab.ping(attacker, SERVER_V4)),
        "the unbanned source is still dropped"
    );
    drop(f2b);
    drop(daemon);
}
