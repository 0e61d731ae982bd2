//! What the council knows: the incident (quoted evidence) and the facts of
//! each agent's component. Rule agents read their part; LLM agents get it
//! rendered into their prompt, clearly separated from instructions.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use std::collections::HashMap;

use blocker_common::{config as slot, maps as map_names};

use crate::{
    clock,
    incident::IncidentView,
    kernel::maps::{RuleTables, live_allowlist},
    rule::List,
};

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

/// The journal's memory of a suspect, as the jail agent sees it. A trait
/// so that the council reads the journal (`state::journal::Store`
/// implements it) without depending on the journal, which records the
/// council's verdicts.
pub trait BanHistory {
    fn jail_facts(&self, peer: IpAddr) -> JailFacts;
}

/// Where the council's facts come from.
pub struct FactSources<'a> {
    /// The kernel tables, when loaded.
    pub tables: Option<&'a dyn RuleTables>,
    /// The journal, when usable.
    pub history: Option<&'a dyn BanHistory>,
    /// The guard's trusted prefixes (`GuardConfig::trusted_nets`).
    pub trusted: &'a [ipnet::IpNet],
    pub local_addrs: &'a [IpAddr],
    pub listening_ports: &'a [u16],
    /// How the probes are attached.
    pub probes: &'a str,
    pub zero_window_syn_rate: u64,
    pub zero_window_sources_recent: u64,
    /// Entries per exact blocklist map ([`block_fill`](crate::kernel::maps::block_fill)).
    pub block_fill: &'a HashMap<&'static str, u64>,
}

/// The facts of every component about `view`.
/// Seconds the zero-window SYN drop policy stays on, if it is on.
pub fn zero_window_policy_secs_left(tables: Option<&dyn RuleTables>) -> Option<u64> {
    let now_ns = clock::boottime_ns();
    let until = tables
        .and_then(|t| t.config(slot::ZW_DROP_UNTIL_NS).ok())
        .unwrap_or(0);
    (until > now_ns).then(|| (until - now_ns) / 1_000_000_000)
}

pub fn gather_facts(view: &IncidentView, src: &FactSources<'_>) -> Facts {
    let now_ns = clock::boottime_ns();
    let kernel = KernelFacts {
        probes: src.probes.to_string(),
        zero_window_syn_rate: src.zero_window_syn_rate,
        zero_window_sources_recent: src.zero_window_sources_recent,
        zero_window_policy_secs_left: zero_window_policy_secs_left(src.tables),
    };
    let mut trusted = src.trusted.to_vec();
    trusted.extend(live_allowlist(src.tables));
    let host = HostFacts {
        local_addrs: src.local_addrs.to_vec(),
        trusted,
        listening_ports: src.listening_ports.to_vec(),
    };
    if view.is_global() {
        return Facts {
            host,
            kernel,
            ..Facts::default()
        };
    }
    let jail = src
        .history
        .map(|h| h.jail_facts(view.peer))
        .unwrap_or_default();
    let filter = match src.tables {
        None => FilterFacts::default(),
        Some(tables) => {
            let live = |list| {
                tables
                    .matching(list, view.peer)
                    .ok()
                    .flatten()
                    .filter(|e| e.is_live(now_ns))
            };
            let map = if view.peer.is_ipv4() {
                map_names::BLOCK_V4
            } else {
                map_names::BLOCK_V6
            };
            FilterFacts {
                allowlisted: live(List::Allow).is_some(),
                blocked: live(List::Block)
                    .map(|e| clock::remaining(e.expires_at_ns, now_ns).map(|d| d.as_secs())),
                block_entries: src.block_fill.get(map).copied().unwrap_or(0),
                block_capacity: u64::from(tables.capacity(map).unwrap_or(0)),
            }
        }
    };
    Facts {
        host,
        kernel,
        jail,
        filter,
    }
}
