//! The TOML configuration (`--config`). The documented default file,
//! `blocker.toml`, is embedded so defaults and documentation cannot drift; a
//! unit test checks it parses to [`Config::default`].

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub mod reference;

// Each room owns the section it reads; this file only assembles them, so
// the rooms never import the whole configuration back.
pub use crate::{
    council::{
        config::{AgentKind, ConsensusName, CouncilConfig, Fallback},
        llm::{LlmConfig, LlmRoleConfig},
        rules::RulesConfig,
    },
    guard::GuardConfig,
    incident::IncidentConfig,
    kernel::{
        maps::{MapsConfig, WhenFull},
        probes::ProbeMode,
        xdp::XdpMode,
    },
};
// Not re-exported: rooms take it from `ttl`, where it lives.
use crate::ttl::duration;

/// Why configuration text was refused.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not TOML, or a key or value the sections do not take.
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// Values that parse but make no sense together ([`Config::validate`]).
    #[error("{0}")]
    Invalid(String),
}

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
    #[error("invalid config {path}: {source}")]
    Parse { path: PathBuf, source: ParseError },
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
    pub journal: crate::state::retention::JournalConfig,
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
            journal: crate::state::retention::JournalConfig::default(),
            fleet: crate::fleet::FleetConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
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
        Self::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let config: Self = toml::from_str(text)?;
        config.validate().map_err(ParseError::Invalid)?;
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
        self.guard
            .allowlist_nets()
            .map_err(|e| format!("[guard] allowlist: {e}"))?;
        if self.treason.event_interval < Duration::from_millis(1) {
            return Err("[treason] event_interval must be at least 1ms".into());
        }
        self.fleet.validate()?;
        self.journal.validate()?;
        if self.treason.stall < Duration::from_millis(100) {
            return Err("[treason] stall must be at least 100ms".into());
        }
        Ok(())
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
                .to_string()
                .contains("block_v4")
        );
        assert!(
            Config::parse("[maps]\nblok_v4 = 1\n")
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
        assert!(Config::parse("[daemon]\ngc_interval = \"soon\"\n").is_err());
        assert!(Config::parse("[xdp]\nmode = \"turbo\"\n").is_err());
        assert!(
            Config::parse("[council]\nroles = []\n")
                .unwrap_err()
                .to_string()
                .contains("roles")
        );
        assert!(Config::parse("[council]\nconsensus = \"quorum\"\nquorum = 4\n").is_err());
        assert!(
            Config::parse("[guard]\ntrusted = [\"10.0.0.5/8\"]\n")
                .unwrap_err()
                .to_string()
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
                .to_string()
                .contains("not in roles")
        );
        // A custom role needs a model and a prompt.
        let custom = "[council]\nroles = [\"host\", \"auditor\"]\n";
        assert!(
            Config::parse(custom)
                .unwrap_err()
                .to_string()
                .contains("no offline rules")
        );
        let custom = format!("{custom}role_agents = {{ auditor = \"llm\" }}\n");
        assert!(
            Config::parse(&custom)
                .unwrap_err()
                .to_string()
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
        assert!(e.to_string().contains("longer than"), "{e}");
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
