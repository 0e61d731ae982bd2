//! What the council knows: the incident (quoted evidence) and the facts of
//! each agent's component. Rule agents read their part; LLM agents get it
//! rendered into their prompt, clearly separated from instructions.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::incident::IncidentView;

/// Facts of the host: what must never be blocked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    /// Addresses of this host's interfaces.
    pub local_addrs: Vec<IpAddr>,
    /// Configured peers and the allowlist.
    pub trusted: Vec<IpNet>,
    /// TCP ports this host listens on.
    pub listening_ports: Vec<u16>,
}

/// Facts of the kernel: what the probes and XDP saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelFacts {
    /// How the treason probes are attached ("kprobe", "tracepoint", "off").
    pub probes: String,
    /// Zero-window SYNs per second over the last sampling interval, all sources.
    pub zero_window_syn_rate: u64,
    /// Distinct sources that crossed the zero-window SYN threshold recently.
    pub zero_window_sources_recent: u64,
    /// Whether the zero-window SYN drop policy is on, and for how long.
    pub zero_window_policy_secs_left: Option<u64>,
}

/// Facts of the jail: the suspect's history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailFacts {
    /// Earlier bans of exactly this address (any outcome).
    pub previous_bans: u32,
    /// Unix time of the latest of them.
    pub last_ban_at: Option<i64>,
}

/// Facts of the filter: the kernel tables now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterFacts {
    /// The suspect matches a live allowlist rule.
    pub allowlisted: bool,
    /// A live block rule already covers the suspect: seconds left, `None`
    /// inside for a permanent rule.
    pub blocked: Option<Option<u64>>,
    /// Rules in the suspect's exact-address blocklist, and its capacity.
    pub block_entries: u64,
    pub block_capacity: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub host: HostFacts,
    pub kernel: KernelFacts,
    pub jail: JailFacts,
    pub filter: FilterFacts,
}

/// Everything an agent is given for a debate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Brief {
    pub incident: IncidentView,
    pub facts: Facts,
}
