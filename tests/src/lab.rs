//! Network-namespace labs: a server namespace running blocker on its veth
//! end, a client namespace with several source addresses, real ping and TCP
//! between them. Guards remove everything on drop.

use std::{
    fs::File,
    io::Write as _,
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{State, blocker_bin, describe, unique};

pub const SERVER_V4: &str = "198.18.0.1";
/// Client addresses: the first is usually banned, the others must keep working.
pub const CLIENT_V4: [&str; 3] = ["198.18.0.2", "198.18.0.3", "198.18.0.4"];
pub const SERVER_V6: &str = "2001:db8::1";
pub const CLIENT_V6: [&str; 2] = ["2001:db8::2", "2001:db8::3"];

/// The TCP service the treason labs' peers talk to, on the server.
pub const SERVICE_PORT: u16 = 8080;
/// How long a lab peer waits for the service before giving up.
pub const PEER_TCP_TIMEOUT: Duration = Duration::from_millis(700);
/// Generous: detection takes the stall threshold plus the next persist
/// probe, on a loaded machine.
pub const DETECT: Duration = Duration::from_secs(30);

/// The service over IPv4.
pub fn service_v4() -> std::net::SocketAddr {
    std::net::SocketAddr::new(SERVER_V4.parse().unwrap(), SERVICE_PORT)
}

/// The service over IPv6.
pub fn service_v6() -> std::net::SocketAddr {
    std::net::SocketAddr::new(SERVER_V6.parse().unwrap(), SERVICE_PORT)
}

/// A daemon config for the treason labs: a 2 s stall threshold (10 s by
/// default) so tests are quick, no kernel log source (other tests' peers
/// would show up in it), then `extra`.
pub fn quick_config(state: &State, extra: &str) -> PathBuf {
    let path = state.state_dir.join("test.toml");
    std::fs::write(
        &path,
        format!("[treason]\nstall = \"2s\"\n[sources]\nkmsg = false\n{extra}"),
    )
    .unwrap();
    path
}

/// A network namespace, deleted on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new() -> Self {
        crate::require_root();
        let name = unique("bk");
        sh(&["ip", "netns", "add", &name]);
        let ns = Self { name };
        sh(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `program args` inside the namespace. `nsenter --net` keeps the host's
    /// /sys (and so bpffs), unlike `ip netns exec`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path()))
            .arg(program)
            .args(args);
        c
    }

    /// The hardware address of `iface` in this namespace.
    pub fn mac(&self, iface: &str) -> [u8; 6] {
        let out = sh(&["ip", "-n", &self.name, "-j", "link", "show", "dev", iface]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j link");
        let text = v[0]["address"].as_str().expect("link address");
        let mut mac = [0u8; 6];
        for (b, part) in mac.iter_mut().zip(text.split(':')) {
            *b = u8::from_str_radix(part, 16).expect("hex MAC");
        }
        mac
    }

    /// Waits until addrconf has configured IPv6 on `iface` after link-up.
    /// Until then the interface has no `ff00::/8` route and drops incoming
    /// multicast, so neighbour solicitations for its addresses go unanswered
    /// and the first connection a peer opens to one of them stalls for a
    /// second (the SYN-ACK waits for ND's retry). addrconf acts on the
    /// carrier-up event, which linkwatch delivers up to a second late.
    pub fn wait_ipv6_ready(&self, iface: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let args = [
            "ip",
            "-n",
            &self.name,
            "-6",
            "route",
            "show",
            "table",
            "local",
            "type",
            "multicast",
            "dev",
            iface,
        ];
        while sh(&args).trim().is_empty() {
            assert!(
                Instant::now() < deadline,
                "IPv6 not configured on {iface} in {} after 5 s",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn output(&self, program: &str, args: &[&str]) -> Output {
        self.command(program, args)
            .output()
            .expect("spawn in netns")
    }

    /// Runs `f` on a thread that has joined this namespace (network
    /// namespaces are per thread), and returns its result.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        std::thread::scope(|s| {
            s.spawn(move || {
                enter(&path);
                f()
            })
            .join()
            .expect("netns thread panicked")
        })
    }
}

impl Default for NetNs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Moves the calling thread into the network namespace at `path`.
pub(crate) fn enter(path: &str) {
    let f = File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: valid fd of a network namespace; affects only this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// A TCP connection from `src` to `dst` in the calling thread's namespace.
/// `rcvbuf` sets `SO_RCVBUF` before `connect`, so that it also sizes the
/// window offered in the SYN and the window scale
/// (`tcp_select_initial_window()`) and turns off receive-buffer autotuning.
pub(crate) fn connect(
    src: IpAddr,
    dst: SocketAddr,
    timeout: Duration,
    rcvbuf: Option<usize>,
) -> std::io::Result<socket2::Socket> {
    let domain = if dst.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
    if let Some(size) = rcvbuf {
        sock.set_recv_buffer_size(size)?;
    }
    sock.bind(&SocketAddr::new(src, 0).into())?;
    sock.connect_timeout(&dst.into(), timeout)?;
    Ok(sock)
}

/// Runs a command and panics with its output unless it succeeds.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A process's resident memory now (`VmRSS`) and at its peak (`VmHWM`),
/// KiB; zeros once it is gone.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Two namespaces joined by a veth pair.
pub struct Lab {
    pub client: NetNs,
    pub server: NetNs,
    pub client_if: String,
    pub server_if: String,
}

impl Lab {
    /// `count` SYNs with a zero window from the client namespace to
    /// `SERVER_V4:port`, `gap_us` apart, their source address forged to
    /// `src` (hping3 `-a`): bounded, and nothing is expected back. Returns
    /// hping3's exit code (non-zero when no reply came, which is normal).
    pub fn zero_window_syns(&self, src: &str, port: u16, count: u32, gap_us: u32) -> Option<i32> {
        let out = self.client.output(
            "hping3",
            &[
                "-q",
                "-S",
                "-w",
                "0",
                "-p",
                &port.to_string(),
                "-c",
                &count.to_string(),
                "-i",
                &format!("u{gap_us}"),
                "-a",
                src,
                SERVER_V4,
            ],
        );
        // Only a spawn error matters.
        assert!(out.status.code().is_some(), "hping3: {}", describe(&out));
        out.status.code()
    }

    /// Sends `count` frames from the client's veth as trafgen config file
    /// `conf` describes them (netsniff-ng's trafgen: one CPU, bounded),
    /// returning once all are sent, or trafgen's error. Under load veth can
    /// refuse a flush of trafgen's TX ring (EAGAIN), which ends trafgen with
    /// part of the count sent: callers count what arrived, not what was
    /// asked for.
    pub fn trafgen(&self, conf: &std::path::Path, count: u64) -> Result<(), String> {
        let out = self.client.output(
            "trafgen",
            &[
                "-o",
                &self.client_if,
                "-i",
                conf.to_str().expect("UTF-8 path"),
                "-n",
                &count.to_string(),
                "-P",
                "1",
            ],
        );
        if out.status.success() {
            Ok(())
        } else {
            Err(describe(&out))
        }
    }

    pub fn new() -> Self {
        let server = NetNs::new();
        let client = NetNs::new();
        let server_if = unique("vs");
        let client_if = unique("vc");
        sh(&[
            "ip",
            "link",
            "add",
            &client_if,
            "netns",
            &client.name,
            "type",
            "veth",
            "peer",
            "name",
            &server_if,
            "netns",
            &server.name,
        ]);
        let lab = Self {
            client,
            server,
            client_if,
            server_if,
        };
        let s = &lab.server.name;
        let c = &lab.client.name;
        sh(&[
            "ip",
            "-n",
            s,
            "addr",
            "add",
            &format!("{SERVER_V4}/24"),
            "dev",
            &lab.server_if,
        ]);
        sh(&[
            "ip",
            "-n",
            s,
            "addr",
            "add",
            &format!("{SERVER_V6}/64"),
            "dev",
            &lab.server_if,
            "nodad",
        ]);
        for a in CLIENT_V4 {
            sh(&[
                "ip",
                "-n",
                c,
                "addr",
                "add",
                &format!("{a}/24"),
                "dev",
                &lab.client_if,
            ]);
        }
        for a in CLIENT_V6 {
            sh(&[
                "ip",
                "-n",
                c,
                "addr",
                "add",
                &format!("{a}/64"),
                "dev",
                &lab.client_if,
                "nodad",
            ]);
        }
        sh(&["ip", "-n", s, "link", "set", &lab.server_if, "up"]);
        sh(&["ip", "-n", c, "link", "set", &lab.client_if, "up"]);
        lab.server.wait_ipv6_ready(&lab.server_if);
        lab.client.wait_ipv6_ready(&lab.client_if);
        // Prime neighbour tables so the first probe of a test measures the
        // filter, not ARP/ND.
        assert!(
            lab.ping(CLIENT_V4[1], SERVER_V4),
            "lab v4 path does not work"
        );
        assert!(
            lab.ping(CLIENT_V6[1], SERVER_V6),
            "lab v6 path does not work"
        );
        lab
    }

    /// One ping from `src` (a client address) to `dst`, 1 s timeout.
    pub fn ping(&self, src: &str, dst: &str) -> bool {
        self.client
            .output("ping", &["-c", "1", "-W", "1", "-I", src, dst])
            .status
            .success()
    }

    /// A TCP connection from `src` to `dst` within `timeout`.
    pub fn tcp_connect(&self, src: &str, dst: SocketAddr, timeout: Duration) -> bool {
        let src: IpAddr = src.parse().expect("client address");
        self.client
            .run_in(move || connect(src, dst, timeout, None).is_ok())
    }

    /// A TCP server in the server namespace on `port`, IPv4 and IPv6,
    /// closing what it accepts.
    pub fn tcp_server(&self, port: u16) -> TcpServer {
        TcpServer::start(&self.server, port, OnAccept::Close)
    }

    /// A TCP server in the server namespace on `port` that writes `bytes` to
    /// every connection and keeps it open: the victim for `peers`.
    pub fn victim_server(&self, port: u16, bytes: usize) -> TcpServer {
        TcpServer::start(&self.server, port, OnAccept::Write { bytes })
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

/// What a [`TcpServer`] does with each connection it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnAccept {
    /// Close it at once: reachability checks.
    Close,
    /// Keep it open until the server drops and write `bytes` to it as fast
    /// as the peer's window allows, never reading: the victim of a peer that
    /// closes or shrinks its receive window. A peer that stops reading pins
    /// the rest in the server's send queue (the Send-Q `ss` reports).
    Write { bytes: usize },
}

/// One connection a [`TcpServer`] accepted.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub peer: SocketAddr,
    /// Bytes the kernel took into the send queue so far.
    pub written: u64,
    /// The write error that ended writing (e.g. the peer reset), if any.
    pub error: Option<String>,
}

/// A TCP server (IPv4 and IPv6) in a namespace until dropped; see
/// [`OnAccept`] for what it does with connections.
pub struct TcpServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    accepted: Arc<Mutex<Vec<Accepted>>>,
}

/// Size of one non-blocking write; the kernel takes what fits.
const WRITE_CHUNK: usize = 64 * 1024;

impl TcpServer {
    pub fn start(ns: &NetNs, port: u16, on_accept: OnAccept) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let path = ns.path();
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop2, accepted2) = (stop.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            enter(&path);
            let v4 = TcpListener::bind(("0.0.0.0", port)).expect("bind v4");
            let v6 = {
                let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)
                    .unwrap();
                s.set_only_v6(true).unwrap();
                s.bind(&SocketAddr::from(([0u16; 8], port)).into())
                    .expect("bind v6");
                s.listen(64).unwrap();
                TcpListener::from(s)
            };
            v4.set_nonblocking(true).unwrap();
            v6.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            // Held until the server drops, so that tests can inspect the
            // kernel's view of each connection with `ss`.
            let mut open: Vec<(TcpStream, usize)> = Vec::new();
            let chunk = vec![0x5a_u8; WRITE_CHUNK];
            while !stop2.load(Ordering::Relaxed) {
                let mut idle = true;
                for l in [&v4, &v6] {
                    if let Ok((conn, peer)) = l.accept() {
                        idle = false;
                        if on_accept == OnAccept::Close {
                            continue;
                        }
                        conn.set_nonblocking(true).unwrap();
                        let mut list = accepted2.lock().unwrap();
                        open.push((conn, list.len()));
                        list.push(Accepted {
                            peer,
                            written: 0,
                            error: None,
                        });
                    }
                }
                if let OnAccept::Write { bytes } = on_accept {
                    let mut list = accepted2.lock().unwrap();
                    for (conn, i) in &mut open {
                        let a = &mut list[*i];
                        while a.error.is_none() && (a.written as usize) < bytes {
                            let n = WRITE_CHUNK.min(bytes - a.written as usize);
                            match conn.write(&chunk[..n]) {
                                Ok(w) => {
                                    a.written += w as u64;
                                    idle = false;
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                                Err(e) => a.error = Some(e.to_string()),
                            }
                        }
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("server listening");
        Self {
            stop,
            thread: Some(thread),
            accepted,
        }
    }

    /// The connections accepted so far (none in [`OnAccept::Close`] mode).
    pub fn accepted(&self) -> Vec<Accepted> {
        self.accepted.lock().unwrap().clone()
    }

    /// The connection from `peer`, if accepted.
    pub fn connection(&self, peer: SocketAddr) -> Option<Accepted> {
        self.accepted().into_iter().find(|a| a.peer == peer)
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `blocker run` inside a namespace, killed on drop.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `blocker run --iface IFACE extra...` in `ns` and waits until it
    /// reports itself running.
    pub fn start(state: &State, ns: &NetNs, iface: &str, extra: &[&str]) -> Self {
        Self::start_within(state, ns, iface, extra, Duration::from_secs(20))
    }

    /// Starts the daemon on the lab's server with `config` and a fresh
    /// eve.json (`--eve-json`), and waits until it follows that file, so the
    /// confirmed alerts the test appends are read.
    pub fn start_following_eve(
        state: &State,
        lab: &Lab,
        config: &str,
    ) -> (Self, crate::eve::EveFile) {
        let eve = crate::eve::EveFile::new(state);
        let d = Self::start(
            state,
            &lab.server,
            &lab.server_if,
            &["--config", config, "--eve-json", eve.arg()],
        );
        d.wait_following_eve();
        (d, eve)
    }

    /// [`Daemon::start`], waiting up to `ready` for it (a start that
    /// restores a million journaled rules takes longer than 20 s on a busy
    /// machine).
    pub fn start_within(
        state: &State,
        ns: &NetNs,
        iface: &str,
        extra: &[&str],
        ready: Duration,
    ) -> Self {
        let log = state.state_dir.join(format!("{}.log", unique("daemon-")));
        let file = File::create(&log).expect("daemon log");
        let mut args = vec!["run", "--iface", iface];
        args.extend_from_slice(extra);
        let mut cmd = ns.command(blocker_bin(), &args);
        cmd.env("BLOCKER_PIN_DIR", &state.pin_dir)
            .env("BLOCKER_STATE_DIR", &state.state_dir)
            .env_remove("BLOCKER_CONFIG")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let child = cmd.spawn().expect("spawn blocker run");
        let mut d = Self {
            child: Some(child),
            log,
        };
        d.wait_ready(state, ready);
        d
    }

    fn wait_ready(&mut self, state: &State, ready: Duration) {
        let deadline = Instant::now() + ready;
        let status = state.state_dir.join(blocker::daemon::STATUS_FILE);
        loop {
            if let Some(code) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("blocker run exited early ({code}):\n{}", self.log());
            }
            if status.exists() && self.log().contains("blocker running") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "blocker run not ready in {} s:\n{}",
                ready.as_secs(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The daemon's resident memory now and at its peak: [`rss_kib`].
    pub fn rss_kib(&self) -> (u64, u64) {
        rss_kib(self.pid())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the daemon follows its `--eve-json` file: the follower
    /// opens it at its end, so lines written before would be skipped.
    pub fn wait_following_eve(&self) {
        assert!(
            crate::wait_until(std::time::Duration::from_secs(30), || self
                .log()
                .contains("following eve.json")),
            "the daemon never followed eve.json:\n{}",
            self.log()
        );
    }

    /// SIGKILL: no cleanup code of the daemon runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("blocker run ignored SIGTERM for 10 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}
