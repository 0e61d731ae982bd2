//! The TOML configuration (`--config`). The documented default file,
//! `blocker.toml`, is embedded so defaults and documentation cannot drift; a
//! unit test checks it parses to [`Config::default`].

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub use crate::{
    council::{
        llm::{LlmConfig, LlmRoleConfig},
        rules::RulesConfig,
    },
    guard::GuardConfig,
    incident::IncidentConfig,
    kernel::probes::ProbeMode,
};

/// The documented default configuration file.
pub const DEFAULT_TOML: &str = include_str!("../blocker.toml");

/// Where `blocker` looks when `--config` is not given (a missing file there
/// is fine: defaults apply).
pub const DEFAULT_PATH: &str = "/etc/blocker/blocker.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub pin_dir: PathBuf,
    pub state_dir: PathBuf,
    pub xdp: XdpConfig,
    pub treason: TreasonConfig,
    pub sources: SourcesConfig,
    pub incidents: IncidentConfig,
    pub council: CouncilConfig,
    pub guard: GuardConfig,
    pub maps: MapsConfig,
    pub daemon: DaemonConfig,
    pub fleet: crate::fleet::FleetConfig,
    pub metrics: MetricsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pin_dir: PathBuf::from(blocker_common::DEFAULT_PIN_DIR),
            state_dir: PathBuf::from("/var/lib/blocker"),
            xdp: XdpConfig::default(),
            treason: TreasonConfig::default(),
            sources: SourcesConfig::default(),
            incidents: IncidentConfig::default(),
            council: CouncilConfig::default(),
            guard: GuardConfig::default(),
            maps: MapsConfig::default(),
            daemon: DaemonConfig::default(),
            fleet: crate::fleet::FleetConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[derive(clap::ValueEnum)]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic (skb) mode.
    #[default]
    Auto,
    /// Native mode only: fastest, needs driver support.
    Driver,
    /// Generic mode: works on every interface, after the kernel allocated the skb.
    Skb,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct XdpConfig {
    pub mode: XdpMode,
    pub zero_window_threshold: u64,
}

impl Default for XdpConfig {
    fn default() -> Self {
        Self {
            mode: XdpMode::Auto,
            zero_window_threshold: 20,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TreasonConfig {
    pub probe: ProbeMode,
    #[serde(with = "duration")]
    pub event_interval: Duration,
    #[serde(with = "duration")]
    pub stall: Duration,
}

impl Default for TreasonConfig {
    fn default() -> Self {
        Self {
            probe: ProbeMode::Auto,
            event_interval: Duration::from_secs(1),
            stall: Duration::from_nanos(blocker_common::DEFAULT_STALL_NS),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesConfig {
    pub kmsg: bool,
    pub eve_json: String,
    pub queue: usize,
    pub crowdsec: crate::evidence::crowdsec::CrowdsecConfig,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        Self {
            kmsg: true,
            eve_json: String::new(),
            queue: 4096,
            crowdsec: crate::evidence::crowdsec::CrowdsecConfig::default(),
        }
    }
}

/// What plays a role on the council.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// The offline, deterministic rule agent of the role.
    #[default]
    Rules,
    /// A model behind an OpenAI-compatible endpoint (`[council.llm]`).
    Llm,
}

/// How the council decides (`[council]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CouncilConfig {
    pub roles: Vec<String>,
    /// What plays every role, unless `role_agents` says otherwise.
    pub agents: AgentKind,
    /// Per-role exceptions to `agents`, for mixed councils.
    pub role_agents: BTreeMap<String, AgentKind>,
    pub consensus: ConsensusName,
    pub quorum: usize,
    pub max_rounds: u32,
    pub max_concurrent: usize,
    /// Longest a whole debate may take, every round and retry included.
    #[serde(with = "crate::config::duration")]
    pub debate_deadline: Duration,
    /// What decides an incident with confirmed evidence when an LLM
    /// council cannot conclude (deadline, errors, budget, abstentions).
    pub fallback: Fallback,
    pub rules: RulesConfig,
    pub llm: LlmConfig,
}

/// `[council] fallback`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// The offline rule agents decide.
    Rules,
    /// Nothing is decided (the transcript says why).
    None,
}

impl Default for CouncilConfig {
    fn default() -> Self {
        Self {
            roles: crate::council::rules::ROLES
                .iter()
                .map(|r| r.to_string())
                .collect(),
            agents: AgentKind::Rules,
            role_agents: BTreeMap::new(),
            consensus: ConsensusName::Unanimous,
            quorum: 2,
            max_rounds: 4,
            max_concurrent: 4,
            debate_deadline: Duration::from_secs(60),
            fallback: Fallback::Rules,
            rules: RulesConfig::default(),
            llm: LlmConfig::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConsensusName {
    Unanimous,
    Quorum,
}

impl CouncilConfig {
    /// What plays `role`.
    pub fn kind_of(&self, role: &str) -> AgentKind {
        self.role_agents.get(role).copied().unwrap_or(self.agents)
    }

    /// Whether any role is played by a model (or a judge sits).
    pub fn uses_llm(&self) -> bool {
        self.llm.judge || self.roles.iter().any(|r| self.kind_of(r) == AgentKind::Llm)
    }

    pub fn consensus(&self) -> crate::council::Consensus {
        match self.consensus {
            ConsensusName::Unanimous => crate::council::Consensus::Unanimous,
            ConsensusName::Quorum => crate::council::Consensus::Quorum {
                min_approvals: self.quorum,
            },
        }
    }
}

/// Capacities of the kernel tables, in entries.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct MapsConfig {
    pub when_full: WhenFull,
    pub block_v4: u32,
    pub block_v6: u32,
    pub block_net_v4: u32,
    pub block_net_v6: u32,
    pub allow_v4: u32,
    pub allow_v6: u32,
    pub zero_window_v4: u32,
    pub zero_window_v6: u32,
    /// Slots of the per-CPU rule counters (see
    /// `blocker_common::maps::RULE_COUNTERS`).
    pub rule_counters: u32,
}

impl Default for MapsConfig {
    fn default() -> Self {
        Self {
            when_full: WhenFull::Refuse,
            // A community blocklist (CrowdSec's bouncer spec asks for 100k
            // decisions) fits with room to spare.
            block_v4: 262144,
            block_v6: 65536,
            block_net_v4: 16384,
            block_net_v6: 16384,
            allow_v4: 4096,
            allow_v6: 4096,
            zero_window_v4: 65536,
            zero_window_v6: 65536,
            rule_counters: 65536,
        }
    }
}

/// What a new rule does when its table is full.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WhenFull {
    /// Refuse the new rule with an error (and count it).
    #[default]
    Refuse,
    /// Make room by removing the rule that expires soonest (never a
    /// permanent one); the journal records the eviction.
    EvictSoonest,
}

impl MapsConfig {
    /// `(map name, capacity, config key)` for every sized map.
    pub fn entries(&self) -> [(&'static str, u32, &'static str); 9] {
        use blocker_common::maps::*;
        [
            (BLOCK_V4, self.block_v4, "block_v4"),
            (BLOCK_V6, self.block_v6, "block_v6"),
            (BLOCK_NET_V4, self.block_net_v4, "block_net_v4"),
            (BLOCK_NET_V6, self.block_net_v6, "block_net_v6"),
            (ALLOW_V4, self.allow_v4, "allow_v4"),
            (ALLOW_V6, self.allow_v6, "allow_v6"),
            (ZW_SYN_V4, self.zero_window_v4, "zero_window_v4"),
            (ZW_SYN_V6, self.zero_window_v6, "zero_window_v6"),
            (RULE_COUNTERS, self.rule_counters, "rule_counters"),
        ]
    }

    /// The config key that sets the capacity of map `name`.
    pub fn key_for(&self, name: &str) -> Option<&'static str> {
        self.entries()
            .into_iter()
            .find(|e| e.0 == name)
            .map(|e| e.2)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    #[serde(with = "duration")]
    pub gc_interval: Duration,
    pub dry_run: bool,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            gc_interval: Duration::from_secs(30),
            dry_run: false,
        }
    }
}

/// `[metrics]`: the Prometheus endpoint of `blocker run`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `HOST:PORT`, `[V6]:PORT` or a bare port (loopback); empty = off.
    pub addr: String,
}

impl MetricsConfig {
    /// The address to listen on, `None` when metrics are off.
    pub fn socket_addr(&self) -> Result<Option<std::net::SocketAddr>, String> {
        parse_metrics_addr(&self.addr)
    }
}

/// `9100` → `127.0.0.1:9100` (never all interfaces unless asked for);
/// `0.0.0.0:9100`, `[::1]:9100` as written; empty → off.
pub fn parse_metrics_addr(s: &str) -> Result<Option<std::net::SocketAddr>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(port) = s.parse::<u16>() {
        return Ok(Some((std::net::Ipv4Addr::LOCALHOST, port).into()));
    }
    s.parse().map(Some).map_err(|_| {
        format!(
            "[metrics] addr (--metrics-addr) {s:?} is not a port or HOST:PORT (examples: 9100, 127.0.0.1:9100, [::1]:9100)"
        )
    })
}

impl Config {
    /// Loads `path`; with `required == false` a missing file means defaults.
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense (also after command-line
    /// flags were merged in).
    pub fn validate(&self) -> Result<(), String> {
        for (name, n, key) in self.maps.entries() {
            if n == 0 {
                return Err(format!(
                    "[maps] {key} = 0: map {name} needs at least one entry"
                ));
            }
        }
        self.metrics.socket_addr()?;
        if self.daemon.gc_interval < Duration::from_secs(1) {
            return Err("[daemon] gc_interval must be at least 1s".into());
        }
        if self.council.roles.is_empty() {
            return Err("[council] roles is empty: the council needs at least one agent".into());
        }
        let mut seen = std::collections::HashSet::new();
        for r in &self.council.roles {
            if !seen.insert(r) {
                return Err(format!("[council] roles lists {r:?} twice"));
            }
        }
        if self.council.max_rounds < 2 || self.council.max_rounds > 10 {
            return Err(
                "[council] max_rounds (--max-debate-rounds) must be between 2 and 10".into(),
            );
        }
        for role in self.council.role_agents.keys() {
            if !self.council.roles.contains(role) {
                return Err(format!(
                    "[council] role_agents names {role:?}, which is not in roles"
                ));
            }
        }
        for role in self.council.llm.roles.keys() {
            if !self.council.roles.contains(role) {
                return Err(format!(
                    "[council.llm.roles.{role}]: {role:?} is not in [council] roles"
                ));
            }
        }
        for role in &self.council.roles {
            match self.council.kind_of(role) {
                AgentKind::Rules if !crate::council::rules::ROLES.contains(&role.as_str()) => {
                    return Err(format!(
                        "[council] role {role:?} has no offline rules (known: {}); play it with an LLM (role_agents = {{ {role} = \"llm\" }})",
                        crate::council::rules::ROLES.join(", ")
                    ));
                }
                AgentKind::Llm => {
                    self.council
                        .llm
                        .system_prompt_for(role)
                        .map_err(|e| e.to_string())?;
                }
                AgentKind::Rules => {}
            }
        }
        let llm = &self.council.llm;
        if llm.timeout < Duration::from_millis(100) {
            return Err("[council.llm] timeout must be at least 100ms".into());
        }
        if llm.retries > 10 {
            return Err("[council.llm] retries must be at most 10".into());
        }
        if llm.max_reply_bytes < 256 {
            return Err("[council.llm] max_reply_bytes must be at least 256".into());
        }
        if llm.model.is_empty() {
            return Err("[council.llm] model is empty".into());
        }
        self.sources.crowdsec.validate()?;
        if self.council.max_concurrent == 0 || self.sources.queue == 0 {
            return Err("[council] max_concurrent and [sources] queue must be at least 1".into());
        }
        if self.council.consensus == ConsensusName::Quorum
            && (self.council.quorum == 0 || self.council.quorum >= self.council.roles.len())
        {
            return Err(format!(
                "[council] quorum = {} must be between 1 and the number of roles minus one ({})",
                self.council.quorum,
                self.council.roles.len().saturating_sub(1)
            ));
        }
        if self.guard.min_prefix_v4 > 32 || self.guard.min_prefix_v6 > 128 {
            return Err("[guard] min_prefix_v4/v6 must be at most 32/128".into());
        }
        if self.guard.min_ttl > self.guard.max_ttl {
            return Err("[guard] min_ttl is larger than max_ttl".into());
        }
        self.guard
            .trusted_nets()
            .map_err(|e| format!("[guard] trusted: {e}"))?;
        if self.treason.event_interval < Duration::from_millis(1) {
            return Err("[treason] event_interval must be at least 1ms".into());
        }
        self.fleet.validate()?;
        if self.treason.stall < Duration::from_millis(100) {
            return Err("[treason] stall must be at least 100ms".into());
        }
        Ok(())
    }
}

/// Serde for durations written as `30s`, `5m`, `1h`.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        let d = crate::ttl::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e} (examples: 30s, 5m, 1h)")))?;
        // Durations reach the kernel and the incident tracker as u64
        // nanoseconds (CLOCK_BOOTTIME). Longer ones would wrap there and
        // slip past the lower bounds `validate` checks: "584years 200days"
        // is a `stall` of a few hours, 2^64 ns one of zero.
        if u64::try_from(d.as_nanos()).is_err() {
            return Err(serde::de::Error::custom(format!(
                "{s:?} is longer than the longest duration blocker handles (about 584 years)"
            )));
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_file_matches_defaults() {
        assert_eq!(Config::parse(DEFAULT_TOML).unwrap(), Config::default());
    }

    #[test]
    fn empty_file_is_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn overrides_and_errors() {
        let c = Config::parse("[maps]\nblock_v4 = 10\n[xdp]\nmode = \"skb\"\n").unwrap();
        assert_eq!(c.maps.block_v4, 10);
        assert_eq!(c.xdp.mode, XdpMode::Skb);
        assert!(
            Config::parse("[maps]\nblock_v4 = 0\n")
                .unwrap_err()
                .contains("block_v4")
        );
        assert!(
            Config::parse("[maps]\nblok_v4 = 1\n")
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(Config::parse("[daemon]\ngc_interval = \"soon\"\n").is_err());
        assert!(Config::parse("[xdp]\nmode = \"turbo\"\n").is_err());
        assert!(
            Config::parse("[council]\nroles = []\n")
                .unwrap_err()
                .contains("roles")
        );
        assert!(Config::parse("[council]\nconsensus = \"quorum\"\nquorum = 4\n").is_err());
        assert!(
            Config::parse("[guard]\ntrusted = [\"10.0.0.5/8\"]\n")
                .unwrap_err()
                .contains("trusted")
        );
        assert!(Config::parse("[treason]\nprobe = \"ebpf\"\n").is_err());
        let mixed =
            Config::parse("[council]\nagents = \"llm\"\nrole_agents = { kernel = \"rules\" }\n")
                .unwrap();
        assert_eq!(mixed.council.kind_of("kernel"), AgentKind::Rules);
        assert_eq!(mixed.council.kind_of("host"), AgentKind::Llm);
        assert!(mixed.council.uses_llm());
        assert!(!Config::default().council.uses_llm());
        assert!(Config::parse("[council]\nagents = \"gpt\"\n").is_err());
        assert!(
            Config::parse("[council]\nrole_agents = { judge = \"llm\" }\n")
                .unwrap_err()
                .contains("not in roles")
        );
        // A custom role needs a model and a prompt.
        let custom = "[council]\nroles = [\"host\", \"auditor\"]\n";
        assert!(
            Config::parse(custom)
                .unwrap_err()
                .contains("no offline rules")
        );
        let custom = format!("{custom}role_agents = {{ auditor = \"llm\" }}\n");
        assert!(
            Config::parse(&custom)
                .unwrap_err()
                .contains("system_prompt")
        );
        let c = Config::parse(&format!(
            "{custom}[council.llm.roles.auditor]\nsystem_prompt = \"You audit.\"\nfacts = [\"jail\"]\nmodel = \"m\"\n"
        ))
        .unwrap();
        assert_eq!(c.council.llm.model_for("auditor"), "m");
        assert!(Config::parse("[council.llm]\ntimeout = \"1ms\"\n").is_err());
        let q = Config::parse("[council]\nconsensus = \"quorum\"\nquorum = 2\n").unwrap();
        assert_eq!(
            q.council.consensus(),
            crate::council::Consensus::Quorum { min_approvals: 2 }
        );
    }

    #[test]
    fn durations_past_u64_nanoseconds_are_refused() {
        // 2^64 ns exactly: `as u64` made it a stall of 0.
        let e = Config::parse("[treason]\nstall = \"18446744073s 709551616ns\"\n").unwrap_err();
        assert!(e.contains("longer than"), "{e}");
        assert!(Config::parse("[incidents]\nwindow = \"600years\"\n").is_err());
        // The longest that fits is fine.
        let c = Config::parse("[incidents]\ncooldown = \"18446744073s 709551615ns\"\n").unwrap();
        assert_eq!(c.incidents.cooldown.as_nanos(), u128::from(u64::MAX));
    }

    #[test]
    fn missing_optional_file_is_defaults() {
        let c = Config::load(Path::new("/nonexistent/blocker.toml"), false).unwrap();
        assert_eq!(c, Config::default());
        assert!(Config::load(Path::new("/nonexistent/blocker.toml"), true).is_err());
    }

    #[test]
    fn metrics_addr_bare_port_is_loopback() {
        assert_eq!(parse_metrics_addr("").unwrap(), None);
        assert_eq!(
            parse_metrics_addr("9100").unwrap(),
            Some("127.0.0.1:9100".parse().unwrap())
        );
        assert_eq!(
            parse_metrics_addr("[::1]:9100").unwrap(),
            Some("[::1]:9100".parse().unwrap())
        );
        let e = parse_metrics_addr("localhost:x").unwrap_err();
        assert!(e.contains("--metrics-addr"), "{e}");
        assert!(Config::parse("[metrics]\naddr = \"nope\"\n").is_err());
    }
}
