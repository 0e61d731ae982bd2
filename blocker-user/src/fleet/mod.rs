//! The fleet: nodes share the verdicts they applied over NATS JetStream, and
//! each node applies its peers' decisions through its own guard.
//!
//! ```text
//! verdict applied ─► outbox (journal, on disk) ─► JetStream stream ─► peers' durable consumers
//!                                                        │
//! peer decision ─► parse + origin check ─► policy (accept, max_ttl, clock) ─► guard ─► enforcer
//! ```
//!
//! Publishing hangs off the verdict/state stage: only decisions this node
//! applied are published (council verdicts, operator bans marked
//! `--share`), never a received one, so decisions cannot loop. Received
//! decisions enter like evidence from another source: the node's own
//! allowlist, trusted list and addresses always win. Every received decision
//! is journaled with its origin and outcome.
//!
//! Clocks: decisions carry an absolute wall-clock expiry, so nodes are
//! assumed to run NTP (or chrony) and agree to within `max_clock_skew`;
//! decisions issued in the future or expiring beyond `max_ttl` plus that
//! skew are refused as absurd.

pub mod decision;
pub mod journal;
pub mod link;

use std::{
    collections::{BTreeMap, VecDeque},
    path::PathBuf,
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub use decision::{ClockRefusal, Decision, Kind, Rejection};

/// `[fleet]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// Share verdicts with the fleet and apply the peers' (off by default).
    pub enabled: bool,
    /// This node's name: the origin of its decisions and the last token of
    /// their subject. Empty: the host name.
    pub node: String,
    /// NATS server URLs (`nats://host:4222`, `tls://host:4222`); the client
    /// fails over between them and reconnects forever.
    pub servers: Vec<String>,
    /// User and password (`authorization { users = [...] }` on the server).
    pub user: String,
    pub password: String,
    /// Or a token.
    pub token: String,
    /// Or a `.creds` file (JWT + NKey seed, from `nsc`).
    pub creds_file: PathBuf,
    /// Or a file holding an NKey seed (`SU...`).
    pub nkey_seed_file: PathBuf,
    /// CA certificate (PEM) to verify the server's TLS certificate; setting
    /// it requires TLS.
    pub tls_ca_file: PathBuf,
    /// The JetStream stream holding decisions.
    pub stream: String,
    /// Subject prefix: decisions go to `<subject>.<node>`.
    pub subject: String,
    /// How long the stream keeps decisions: at least the longest TTL a
    /// node may apply (`[fleet.policy] max_ttl` and `[guard] max_ttl` of the
    /// publishers), so a node that comes back catches up on every live one.
    #[serde(with = "crate::ttl::duration")]
    pub max_age: Duration,
    /// Stream replicas (1 on a single server; 3 on a cluster).
    pub replicas: usize,
    /// Share operator bans (`blocker ban`) even without `--share`.
    pub share_operator_bans: bool,
    /// How far apart the nodes' wall clocks may be (NTP keeps them within
    /// milliseconds; this is slack, not a licence to skip NTP).
    #[serde(with = "crate::ttl::duration")]
    pub max_clock_skew: Duration,
    /// How long the journal keeps the fleet's rows after they stopped
    /// mattering (published and superseded or expired outbox rows,
    /// received decisions past their expiry), pruned at each GC.
    #[serde(with = "crate::ttl::duration")]
    pub keep: Duration,
    pub policy: PolicyConfig,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            node: String::new(),
            servers: vec!["nats://127.0.0.1:4222".into()],
            user: String::new(),
            password: String::new(),
            token: String::new(),
            creds_file: PathBuf::new(),
            nkey_seed_file: PathBuf::new(),
            tls_ca_file: PathBuf::new(),
            stream: "BLOCKER_DECISIONS".into(),
            subject: "blocker.decisions".into(),
            max_age: Duration::from_secs(30 * 86_400),
            replicas: 1,
            share_operator_bans: false,
            max_clock_skew: Duration::from_secs(30),
            keep: Duration::from_secs(7 * 86_400),
            policy: PolicyConfig::default(),
        }
    }
}

/// `[fleet.policy]`: what this node takes from its peers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Peers whose decisions are considered; any other origin is rejected
    /// and counted.
    pub origins: Vec<String>,
    /// Kinds of decision taken from them.
    pub accept: Vec<Kind>,
    /// Longest TTL applied from a peer (longer ones are shortened to it).
    #[serde(with = "crate::ttl::duration")]
    pub max_ttl: Duration,
    /// Per-origin exceptions: `[fleet.policy.origin.NAME]` with its own
    /// `accept` and `max_ttl`.
    pub origin: BTreeMap<String, OriginPolicy>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            origins: Vec::new(),
            accept: vec![Kind::Block, Kind::Unblock],
            max_ttl: Duration::from_secs(86_400),
            origin: BTreeMap::new(),
        }
    }
}

/// `[fleet.policy.origin.NAME]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginPolicy {
    pub accept: Vec<Kind>,
    #[serde(with = "crate::ttl::duration")]
    pub max_ttl: Duration,
}

/// Why the policy refused a peer's decision (the guard's own refusals come
/// on top).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyRefusal {
    #[error("{kind} decisions from {origin} are not accepted ([fleet.policy] accept)")]
    NotAccepted { kind: &'static str, origin: String },
    #[error(transparent)]
    Clock(#[from] ClockRefusal),
    #[error("{target} is not blocked by {origin}: a peer lifts only its own bans")]
    NotTheirs { target: String, origin: String },
}

impl PolicyRefusal {
    /// A short, bounded label for counters and the journal.
    pub const fn label(&self) -> &'static str {
        match self {
            Self::NotAccepted { .. } => "not_accepted",
            Self::Clock(ClockRefusal::Expired(_)) => "expired",
            Self::Clock(_) => "clock",
            Self::NotTheirs { .. } => "not_theirs",
        }
    }
}

impl PolicyConfig {
    /// Whether decisions from `origin` are considered at all.
    pub fn knows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == origin)
    }

    /// `(accept, max_ttl)` for `origin`.
    pub fn for_origin(&self, origin: &str) -> (&[Kind], Duration) {
        match self.origin.get(origin) {
            Some(p) => (&p.accept, p.max_ttl),
            None => (&self.accept, self.max_ttl),
        }
    }

    /// Applies the policy to a parsed decision from a known origin at wall
    /// time `now`: the TTL to apply for a block, `None` for an unblock.
    pub fn check(
        &self,
        d: &Decision,
        now: std::time::SystemTime,
        skew: Duration,
    ) -> Result<Option<Duration>, PolicyRefusal> {
        let (accept, max_ttl) = self.for_origin(&d.origin);
        if !accept.contains(&d.kind) {
            return Err(PolicyRefusal::NotAccepted {
                kind: d.kind.as_str(),
                origin: d.origin.clone(),
            });
        }
        Ok(d.check_clock(now, max_ttl, skew)?)
    }
}

impl FleetConfig {
    /// The node name: `node`, or the host name.
    pub fn node_name(&self) -> String {
        if !self.node.is_empty() {
            return self.node.clone();
        }
        let uname = rustix::system::uname();
        let name = uname.nodename().to_string_lossy();
        // One subject token: the first label, other characters replaced.
        name.split('.')
            .next()
            .unwrap_or("")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// The durable consumer of this node.
    pub fn durable(&self) -> String {
        format!("blocker-{}", self.node_name())
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        decision::valid_node(&self.node_name())
            .map_err(|e| format!("[fleet] node {:?}: {e}", self.node_name()))?;
        if self.servers.is_empty() {
            return Err("[fleet] servers is empty: name at least one nats:// URL".into());
        }
        if self.stream.is_empty()
            || self
                .stream
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(format!(
                "[fleet] stream {:?}: letters, digits, '-' and '_' only",
                self.stream
            ));
        }
        if self.subject.is_empty()
            || self
                .subject
                .split('.')
                .any(|t| t.is_empty() || t.contains(['*', '>', ' ']))
        {
            return Err(format!(
                "[fleet] subject {:?}: dot-separated tokens without wildcards",
                self.subject
            ));
        }
        let auths = [
            !self.user.is_empty(),
            !self.token.is_empty(),
            !self.creds_file.as_os_str().is_empty(),
            !self.nkey_seed_file.as_os_str().is_empty(),
        ];
        if auths.iter().filter(|a| **a).count() > 1 {
            return Err(
                "[fleet] set one of user/password, token, creds_file or nkey_seed_file".into(),
            );
        }
        if self.user.is_empty() != self.password.is_empty() {
            return Err("[fleet] user and password go together".into());
        }
        for o in &self.policy.origins {
            decision::valid_node(o).map_err(|e| format!("[fleet.policy] origins {o:?}: {e}"))?;
        }
        for o in self.policy.origin.keys() {
            if !self.policy.knows(o) {
                return Err(format!(
                    "[fleet.policy.origin.{o}]: {o:?} is not in [fleet.policy] origins"
                ));
            }
        }
        let longest = self
            .policy
            .origin
            .values()
            .map(|p| p.max_ttl)
            .chain([self.policy.max_ttl])
            .max()
            .unwrap_or_default();
        if self.max_age < longest {
            return Err(format!(
                "[fleet] max_age ({}) is shorter than the longest [fleet.policy] max_ttl ({}): a node coming back would miss live decisions",
                humantime::format_duration(self.max_age),
                humantime::format_duration(longest)
            ));
        }
        if self.replicas == 0 || self.replicas > 5 {
            return Err("[fleet] replicas must be between 1 and 5".into());
        }
        Ok(())
    }
}

/// Decisions seen from one origin.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct OriginCounters {
    pub received: u64,
    pub applied: u64,
    pub refused: u64,
}

/// The fleet as `blocker status` shows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FleetStatus {
    pub enabled: bool,
    pub node: String,
    pub servers: Vec<String>,
    pub connected: bool,
    /// The last error talking to the server, if any since connecting.
    pub last_error: Option<String>,
    /// Messages the server still holds for this node's consumer.
    pub lag: u64,
    /// Own decisions waiting in the outbox (e.g. while the server is down).
    pub queued: u64,
    /// Own decisions published (acknowledged by the stream).
    pub sent: u64,
    /// Per origin: received, applied, refused.
    pub origins: BTreeMap<String, OriginCounters>,
    /// Messages rejected before any policy: by reason (unparsable,
    /// unknown_origin, ...).
    pub rejected: BTreeMap<String, u64>,
    /// Origin applied → applied here, milliseconds (wall clocks of the two
    /// nodes, so it includes their skew).
    pub propagation: Propagation,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Propagation {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The latest samples, oldest first (at most [`MAX_SAMPLES`]).
    pub recent_ms: Vec<f64>,
}

/// Propagation samples kept.
pub const MAX_SAMPLES: usize = 1000;

impl Propagation {
    /// Adds one sample and refreshes the percentiles.
    pub fn add(&mut self, ms: f64) {
        let mut recent: VecDeque<f64> = std::mem::take(&mut self.recent_ms).into();
        if recent.len() >= MAX_SAMPLES {
            recent.pop_front();
        }
        recent.push_back(ms);
        self.recent_ms = recent.into();
        self.count += 1;
        let mut v = self.recent_ms.clone();
        v.sort_by(f64::total_cmp);
        let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        self.p50_ms = at(0.5);
        self.p99_ms = at(0.99);
        self.max_ms = at(1.0);
    }
}

/// The status shared by the link task and the pipeline.
pub type SharedStatus = std::sync::Arc<std::sync::Mutex<FleetStatus>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn policy_bounds_what_peers_send() {
        let cfg = Config::parse(
            "[fleet]\nenabled = true\nnode = \"c\"\n[fleet.policy]\norigins = [\"a\", \"b\"]\naccept = [\"block\"]\nmax_ttl = \"1h\"\n[fleet.policy.origin.b]\naccept = [\"block\", \"unblock\"]\nmax_ttl = \"2h\"\n",
        )
        .unwrap();
        let p = &cfg.fleet.policy;
        assert!(p.knows("a") && !p.knows("mallory"));
        let now = std::time::SystemTime::now();
        let skew = Duration::from_secs(30);
        let net = "198.18.0.2/32".parse().unwrap();
        let block = |o: &str, ttl| Decision::block(o, net, Duration::from_secs(ttl), 2, "x", "y");
        assert!(p.check(&block("a", 600), now, skew).is_ok());
        assert!(matches!(
            p.check(&block("a", 3 * 3600), now, skew),
            Err(PolicyRefusal::Clock(ClockRefusal::TooFarAhead { .. }))
        ));
        assert!(p.check(&block("b", 7000), now, skew).is_ok());
        let unblock = |o: &str| Decision::unblock(o, net, "x");
        assert!(matches!(
            p.check(&unblock("a"), now, skew),
            Err(PolicyRefusal::NotAccepted { .. })
        ));
        assert_eq!(p.check(&unblock("b"), now, skew), Ok(None));
    }

    #[test]
    fn config_is_checked() {
        assert!(Config::parse("[fleet]\nenabled = true\nnode = \"a.b\"\n").is_err());
        assert!(Config::parse("[fleet]\nenabled = true\nnode = \"a\"\nservers = []\n").is_err());
        assert!(
            Config::parse("[fleet]\nenabled = true\nnode = \"a\"\nuser = \"u\"\n")
                .unwrap_err()
                .to_string()
                .contains("password")
        );
        assert!(
            Config::parse(
                "[fleet]\nenabled = true\nnode = \"a\"\nmax_age = \"1h\"\n[fleet.policy]\nmax_ttl = \"2h\"\n"
            )
            .unwrap_err()
            .to_string().contains("max_age")
        );
        assert!(
            Config::parse(
                "[fleet]\nenabled = true\nnode = \"a\"\n[fleet.policy.origin.z]\naccept = []\nmax_ttl = \"1h\"\n"
            )
            .unwrap_err()
            .to_string().contains("not in")
        );
        let c = Config::parse("[fleet]\nenabled = true\nnode = \"edge-1\"\n").unwrap();
        assert_eq!(c.fleet.durable(), "blocker-edge-1");
        assert!(!FleetConfig::default().node_name().is_empty());
    }

    #[test]
    fn propagation_percentiles() {
        let mut p = Propagation::default();
        for i in 1..=100 {
            p.add(f64::from(i));
        }
        assert_eq!(
            (p.count, p.p50_ms, p.p99_ms, p.max_ms),
            (100, 51.0, 99.0, 100.0)
        );
    }
}
