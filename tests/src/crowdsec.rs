//! A real CrowdSec Local API for the bouncer tests: Debian's `crowdsec` and
//! `cscli`, unpacked by `cargo xtask` (see `xtask/src/crowdsec.rs`; the
//! package cannot be installed here: its post-install step wants the online
//! Central API). Each [`Lapi`] has its own config, SQLite database and port,
//! runs `crowdsec -no-cs` (the API alone, no log acquisition, no Central
//! API) on the loopback of the namespace it is given, and is stopped and
//! removed on drop.

use std::{
    fs::File,
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::{describe, lab::NetNs, unique};

/// Where `cargo xtask` says the unpacked package is.
pub const ROOT_ENV: &str = "BLOCKER_CROWDSEC_ROOT";

/// The unpacked `crowdsec` package: `$BLOCKER_CROWDSEC_ROOT`, else the
/// newest one in xtask's cache. Panics (never skips) when neither exists.
pub fn package_root() -> PathBuf {
    if let Some(p) = std::env::var_os(ROOT_ENV) {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("blocker/crowdsec");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&cache)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(".unpacked").exists())
        .collect();
    dirs.sort();
    dirs.pop().unwrap_or_else(|| {
        panic!(
            "CrowdSec is not unpacked: ${ROOT_ENV} is unset and {} holds no package; run `sudo -E cargo xtask bootstrap` (or the tests through `cargo xtask test`)",
            cache.display()
        )
    })
}

/// A running CrowdSec Local API with a private config and database.
pub struct Lapi {
    pub dir: PathBuf,
    pub addr: SocketAddr,
    root: PathBuf,
    netns: Option<String>,
    child: Option<Child>,
}

impl Lapi {
    /// Starts a Local API on a free loopback port of `ns` (the host's when
    /// `None`) and registers a machine for `cscli` (`cscli machines add
    /// --auto`), so that `cscli decisions add` works.
    pub fn start(ns: Option<&NetNs>) -> Self {
        crate::require_root();
        let root = package_root();
        let dir = std::env::temp_dir().join(unique("blocker-crowdsec-"));
        std::fs::create_dir_all(dir.join("data")).expect("crowdsec dir");
        let pick = || {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
        };
        let addr = match ns {
            Some(ns) => ns.run_in(pick),
            None => pick(),
        };
        let mut lapi = Self {
            dir,
            addr,
            root,
            netns: ns.map(NetNs::path),
            child: None,
        };
        lapi.write_config();
        lapi.spawn();
        lapi.cscli(&["machines", "add", "--auto", "--force"]);
        lapi
    }

    /// `http://127.0.0.1:PORT`, what the bouncer is given.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("config.yaml")
    }

    fn write_config(&self) {
        let d = self.dir.display();
        // The packaged config.yaml minus `online_client` (no Central API),
        // with every path in our directory and no metrics listener.
        let config = format!(
            "common:
  daemonize: false
  log_media: file
  log_level: info
  log_dir: {d}/
  working_dir: {d}
config_paths:
  config_dir: {d}/
  data_dir: {d}/data/
  simulation_path: {d}/simulation.yaml
  hub_dir: {d}/hub/
  index_path: {d}/hub/.index.json
  notification_dir: {d}/notifications/
  plugin_dir: {d}/plugins/
crowdsec_service:
  acquisition_path: {d}/acquis.yaml
  parser_routines: 1
cscli:
  output: human
db_config:
  log_level: info
  type: sqlite
  use_wal: true
  db_path: {d}/data/crowdsec.db
  flush:
    max_items: 500000
    max_age: 7d
api:
  client:
    insecure_skip_verify: false
    credentials_path: {d}/local_api_credentials.yaml
  server:
    log_level: info
    listen_uri: {addr}
    profiles_path: {d}/profiles.yaml
    trusted_ips:
      - 127.0.0.1
      - ::1
prometheus:
  enabled: false
",
            addr = self.addr
        );
        std::fs::write(self.config_path(), config).expect("crowdsec config");
        let packaged = self.root.join("etc/crowdsec");
        for f in ["profiles.yaml", "simulation.yaml"] {
            std::fs::copy(packaged.join(f), self.dir.join(f)).expect("packaged crowdsec config");
        }
        std::fs::write(self.dir.join("acquis.yaml"), "").expect("acquis.yaml");
    }

    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = match &self.netns {
            Some(path) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={path}")).arg(program);
                c
            }
            None => Command::new(program),
        };
        c.arg("-c").arg(self.config_path()).args(args);
        c
    }

    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("lapi.out"))
            .expect("lapi log");
        let child = self
            .command(&self.root.join("usr/bin/crowdsec"), &["-no-cs"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn crowdsec");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("crowdsec exited early ({status}):\n{}", self.log());
            }
            if self.reachable() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the CrowdSec Local API did not listen on {} within 30 s:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn reachable(&self) -> bool {
        let addr = self.addr;
        let connect = move || TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok();
        match &self.netns {
            Some(path) => std::thread::scope(|s| {
                s.spawn(|| {
                    crate::lab::enter(path);
                    connect()
                })
                .join()
                .expect("netns thread panicked")
            }),
            None => connect(),
        }
    }

    /// The API's own log (and its stdout/stderr).
    pub fn log(&self) -> String {
        let mut text = std::fs::read_to_string(self.dir.join("lapi.out")).unwrap_or_default();
        for f in ["crowdsec.log", "crowdsec_api.log"] {
            text += &std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        }
        text
    }

    /// Stops the API (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again on the same port with the same database.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// `cscli ARGS` against this API, whatever its exit status.
    pub fn cscli_output(&self, args: &[&str]) -> Output {
        self.command(&self.root.join("usr/bin/cscli"), args)
            .output()
            .expect("spawn cscli")
    }

    /// `cscli ARGS`, panicking with its output unless it succeeds; stdout.
    pub fn cscli(&self, args: &[&str]) -> String {
        let out = self.cscli_output(args);
        assert!(out.status.success(), "cscli {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `cscli ARGS -o json`, parsed (`null` for an empty list).
    pub fn cscli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let out = self.cscli(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("cscli {a:?}: bad JSON ({e}): {out}"))
    }

    /// Registers a bouncer and returns its API key.
    pub fn add_bouncer(&self, name: &str) -> String {
        let key = self.cscli(&["bouncers", "add", name, "-o", "raw"]);
        let key = key.trim().to_string();
        assert!(!key.is_empty(), "cscli bouncers add printed no key");
        key
    }

    /// Registers a machine (a watcher that pushes alerts) with `password`.
    pub fn add_machine(&self, name: &str, password: &str) {
        let creds = self.dir.join(format!("{name}.yaml"));
        let creds = creds.to_string_lossy();
        self.cscli(&["machines", "add", name, "-p", password, "-f", &creds]);
    }
}

impl Drop for Lapi {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
