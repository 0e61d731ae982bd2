//! A fleet lab: three nodes, each a [`Lab`] (a server namespace running
//! `blocker run` on its veth, protecting its own victim, and a client
//! namespace where attackers and normal clients live), plus a hub
//! namespace holding a real `nats-server` on a bridge that every node's
//! server namespace reaches over a second veth (198.19.250.0/24). The
//! attackers' addresses are the same in every lab: the same attacker moving
//! from host to host behind a load balancer.

use std::{path::PathBuf, time::Duration};

use crate::{
    State,
    lab::{Daemon, Lab, NetNs, sh},
    nats::{NatsServer, User},
    unique, wait_until,
};

/// The hub's address on the fleet bridge, where nats-server listens.
pub const HUB: &str = "198.19.250.1";
pub const NATS_PORT: u16 = 4222;
/// Each node's metrics endpoint, on loopback in its server namespace.
pub const METRICS_PORT: u16 = 9464;
/// Node names; node i has 198.19.250.(11 + i) on the fleet bridge.
pub const NODES: [&str; 3] = ["a", "b", "c"];
/// A user allowed to publish on any origin's subject: the tests' stand-in
/// for a compromised or buggy publisher.
pub const TESTER: (&str, &str) = ("tester", "tester-secret");

pub fn password(node: &str) -> String {
    format!("{node}-secret")
}

pub struct Node {
    pub name: &'static str,
    pub lab: Lab,
    pub state: State,
    pub config: PathBuf,
    pub daemon: Option<Daemon>,
}

impl Node {
    /// Starts (or restarts) the daemon.
    pub fn start(&mut self) {
        let cfg = self.config.display().to_string();
        self.daemon = Some(Daemon::start(
            &self.state,
            &self.lab.server,
            &self.lab.server_if,
            &["--config", &cfg],
        ));
    }

    /// SIGKILL the daemon (its bans stay in the kernel).
    pub fn kill(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill9();
        }
    }

    pub fn log(&self) -> String {
        self.daemon.as_ref().map(Daemon::log).unwrap_or_default()
    }

    /// `blocker ...` against this node (CLI, maps and journal).
    pub fn ok(&self, args: &[&str]) -> String {
        let mut a = vec!["--config", self.config.to_str().unwrap()];
        a.extend_from_slice(args);
        self.state.ok(&a)
    }

    /// The daemon's fleet status (`daemon.json`).
    pub fn fleet(&self) -> serde_json::Value {
        self.state.daemon_status()["fleet"].clone()
    }

    /// `GET /metrics` on the daemon's endpoint ([`METRICS`], in the
    /// node's server namespace); empty if it does not answer.
    pub fn metrics(&self) -> String {
        self.lab.server.run_in(|| {
            use std::io::{Read as _, Write as _};
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], METRICS_PORT));
            let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            else {
                return String::new();
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            );
            let mut raw = String::new();
            let _ = s.read_to_string(&mut raw);
            raw.split_once("\r\n\r\n")
                .map(|(_, body)| body.to_owned())
                .unwrap_or_default()
        })
    }

    /// One sample of [`Node::metrics`], `name{labels}` as exposed; 0 when absent.
    pub fn metric(&self, key: &str) -> f64 {
        sample(&self.metrics(), key)
    }

    /// Active block rules, by prefix, with their source.
    pub fn blocked(&self) -> Vec<(String, String)> {
        let mut a = vec!["--config", self.config.to_str().unwrap(), "list"];
        a.push("--list");
        a.push("block");
        self.state.json(&a)["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|r| {
                (
                    r["prefix"].as_str().unwrap_or_default().to_owned(),
                    r["source"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    pub fn has_block(&self, prefix: &str) -> bool {
        self.blocked().iter().any(|(p, _)| p == prefix)
    }

    /// The decisions this node received, newest first, from its journal.
    pub fn received(&self) -> Vec<blocker::fleet::journal::ReceivedRow> {
        let conn = blocker::fleet::link::open_journal(
            &self.state.state_dir.join(blocker::state::journal::DB_FILE),
        )
        .expect("open journal");
        blocker::fleet::journal::received(&conn, 10_000).expect("read fleet_received")
    }
}

/// `name{labels}` → value in a Prometheus text scrape; 0 when absent.
pub fn sample(text: &str, key: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0.0)
}

pub struct Fleet {
    pub nodes: Vec<Node>,
    pub nats: NatsServer,
    pub hub: NetNs,
}

impl Fleet {
    /// Builds the namespaces, starts nats-server and the three daemons;
    /// `extra` goes into every node's config at the end of `[fleet]` (so
    /// it may set fleet keys, then open tables of its own), `per_node(name)`
    /// at the very end.
    pub fn new(extra: &str, per_node: impl Fn(&str) -> String) -> Self {
        let hub = NetNs::new();
        sh(&[
            "ip", "-n", &hub.name, "link", "add", "br0", "type", "bridge",
        ]);
        sh(&[
            "ip",
            "-n",
            &hub.name,
            "addr",
            "add",
            &format!("{HUB}/24"),
            "dev",
            "br0",
        ]);
        sh(&["ip", "-n", &hub.name, "link", "set", "br0", "up"]);
        let mut users: Vec<User> = NODES
            .iter()
            .map(|n| User {
                name: n,
                password: Box::leak(password(n).into_boxed_str()),
                // A node may publish only as itself: the origin in a
                // subject is bound to the credentials.
                publish: vec![format!("blocker.decisions.{n}")],
            })
            .collect();
        users.push(User {
            name: TESTER.0,
            password: TESTER.1,
            publish: vec!["blocker.decisions.>".into()],
        });
        let nats = NatsServer::start(Some(&hub), HUB, &users);
        let mut nodes = Vec::new();
        for (i, name) in NODES.iter().enumerate() {
            let lab = Lab::new();
            let (h, n) = (unique("fh"), unique("fn"));
            sh(&[
                "ip",
                "link",
                "add",
                &h,
                "netns",
                &hub.name,
                "type",
                "veth",
                "peer",
                "name",
                &n,
                "netns",
                &lab.server.name,
            ]);
            sh(&[
                "ip", "-n", &hub.name, "link", "set", &h, "master", "br0", "up",
            ]);
            sh(&[
                "ip",
                "-n",
                &lab.server.name,
                "addr",
                "add",
                &format!("198.19.250.{}/24", 11 + i),
                "dev",
                &n,
            ]);
            sh(&["ip", "-n", &lab.server.name, "link", "set", &n, "up"]);
            let state = State::new();
            let config = state.state_dir.join("fleet.toml");
            std::fs::write(
                &config,
                node_config(name, &nats.url(), extra, &per_node(name)),
            )
            .expect("write node config");
            nodes.push(Node {
                name,
                lab,
                state,
                config,
                daemon: None,
            });
        }
        for n in &mut nodes {
            n.start();
        }
        let fleet = Self { nodes, nats, hub };
        for n in &fleet.nodes {
            assert!(
                wait_until(Duration::from_secs(30), || n.fleet()["connected"] == true
                    && n.log().contains("fleet: consuming")),
                "node {} did not connect to NATS: {}\n{}\nnats:\n{}",
                n.name,
                n.fleet(),
                n.log(),
                fleet.nats.log()
            );
        }
        fleet
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).expect("node")
    }

    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("node")
    }

    /// Runs `f` with a Tokio runtime on a thread inside the hub namespace
    /// (where the server listens), e.g. to talk to NATS as a client.
    pub fn in_hub<T: Send, F: std::future::Future<Output = T>>(
        &self,
        f: impl FnOnce() -> F + Send,
    ) -> T {
        self.hub.run_in(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(f())
        })
    }
}

/// A node's config: fleet on, its credentials, every node an origin,
/// metrics on [`METRICS_PORT`]; no
/// kernel log, fast treason stall, no per-minute cap (the tests make many
/// decisions quickly), flood thresholds out of the way, treason probes
/// only on node a.
pub fn node_config(name: &str, url: &str, extra: &str, own: &str) -> String {
    format!(
        "[sources]\nkmsg = false\n[treason]\nstall = \"2s\"\nprobe = \"{}\"\n\
         [guard]\nmax_bans_per_minute = 100000\n\
         [council.rules]\nflood_sources = 1000000\nflood_rate = 1000000000\n\
         [metrics]\naddr = \"{METRICS_PORT}\"\n\
         [fleet]\nenabled = true\nnode = \"{name}\"\nservers = [\"{url}\"]\n\
         user = \"{name}\"\npassword = \"{}\"\n{extra}\n\
         [fleet.policy]\norigins = [\"a\", \"b\", \"c\"]\n{own}\n",
        // The treason tracepoints see every socket of the kernel, whatever
        // its namespace: on one host, B and C would catch A's attacker
        // themselves. Only A watches, so what B and C block came from A.
        if name == "a" { "auto" } else { "off" },
        password(name)
    )
}
