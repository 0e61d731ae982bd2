//! The offline council: deterministic agents named after the seed's
//! lawyers, each voting from the facts of its own component. No network, no
//! model; the same incident always gets the same debate.
//!
//! - host: never block this host's own addresses or trusted peers; reads IDS
//!   alerts against our services.
//! - kernel: kernel-confirmed evidence (treason probes, kernel log); the
//!   global zero-window SYN policy for spoofed floods.
//!
//! No agent proposes or approves a per-source block on forgeable evidence
//! alone (zero-window SYNs, IDS alerts on packets that need no handshake):
//! a forged source address would turn the ban against a bystander. Such
//! evidence is watched; zero-window SYN floods get the global policy.
//! - jail: history; escalates the TTL of repeat offenders like fail2ban's
//!   `bantime.increment` (base × factor^previous bans, capped).
//! - filter: the tables as they are: no dead-weight bans (allowlisted,
//!   already blocked for longer), no bans into a full table.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Action, Agent, Ballot, Brief, Draft, Proposal, Stance, Turn, TurnFailure, Vote};
use crate::{addr, evidence::alert::AlertKind};

/// Tunables of the rule agents (`[council.rules]` in the config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// TTL of a first ban.
    #[serde(with = "crate::ttl::duration")]
    pub base_ttl: Duration,
    /// Longest TTL the jail escalates to.
    #[serde(with = "crate::ttl::duration")]
    pub max_ttl: Duration,
    /// Each earlier ban multiplies the TTL by this.
    pub ttl_factor: u32,
    /// IDS alerts at this Suricata severity or more severe (1 = highest)
    /// are blocked; less severe ones are watched.
    pub ids_block_severity: u8,
    /// Zero-window SYNs per second (all sources) that make a flood.
    pub flood_rate: u64,
    /// Or: distinct sources crossing the per-source threshold recently.
    pub flood_sources: u64,
    /// How long the zero-window SYN policy stays on.
    #[serde(with = "crate::ttl::duration")]
    pub policy_ttl: Duration,
    /// How long a watch lasts.
    #[serde(with = "crate::ttl::duration")]
    pub watch_ttl: Duration,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            base_ttl: Duration::from_secs(3600),
            max_ttl: Duration::from_secs(7 * 86_400),
            ttl_factor: 2,
            ids_block_severity: 2,
            flood_rate: 1000,
            flood_sources: 50,
            policy_ttl: Duration::from_secs(600),
            watch_ttl: Duration::from_secs(3600),
        }
    }
}

/// The roles rule agents can play.
pub const ROLES: [&str; 4] = ["host", "kernel", "jail", "filter"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Host,
    Kernel,
    Jail,
    Filter,
}

/// A deterministic council member.
pub struct RuleAgent {
    name: String,
    role: Role,
    cfg: RulesConfig,
}

impl RuleAgent {
    /// The agent for `role` (one of [`ROLES`]), or `None` for an unknown role.
    pub fn new(role: &str, cfg: RulesConfig) -> Option<Self> {
        let r = match role {
            "host" => Role::Host,
            "kernel" => Role::Kernel,
            "jail" => Role::Jail,
            "filter" => Role::Filter,
            _ => return None,
        };
        Some(Self {
            name: role.to_string(),
            role: r,
            cfg,
        })
    }

    fn drafts(&self, b: &Brief) -> Vec<Draft> {
        match self.role {
            Role::Kernel => self.kernel_drafts(b),
            Role::Host => self.host_drafts(b),
            Role::Jail | Role::Filter => Vec::new(),
        }
    }

    fn kernel_drafts(&self, b: &Brief) -> Vec<Draft> {
        let i = &b.incident;
        let k = &b.facts.kernel;
        if i.is_global() || i.count(AlertKind::ZeroWindowFlood) > 0 {
            let flood = k.zero_window_syn_rate >= self.cfg.flood_rate
                || k.zero_window_sources_recent >= self.cfg.flood_sources;
            let active_long_enough = k
                .zero_window_policy_secs_left
                .is_some_and(|s| s >= self.cfg.policy_ttl.as_secs() / 2);
            if flood && !active_long_enough {
                return vec![Draft {
                    action: Action::ZeroWindowSynPolicy {
                        enable: true,
                        ttl_secs: self.cfg.policy_ttl.as_secs(),
                    },
                    justification: format!(
                        "zero-window SYN flood: {}/s from {} sources past the threshold; sources are likely spoofed, so per-source bans cannot stop it",
                        k.zero_window_syn_rate, k.zero_window_sources_recent
                    ),
                }];
            }
            return Vec::new();
        }
        // The kernel already filtered out transient closed windows: a stall
        // event means the window stayed shut with nothing acknowledged past
        // the threshold, and a retransmission into a zero window means the
        // peer retracted window it had offered. Each is conclusive.
        let shrunk = i.count(AlertKind::TreasonRetransmit);
        let syn = i.count(AlertKind::ZeroWindowSyn);
        let stalls = i.count(AlertKind::TreasonProbe) + i.count(AlertKind::ZeroWindowSeen);
        let logged = i.count(AlertKind::KernelLog);
        let mut why = Vec::new();
        if shrunk > 0 {
            why.push(format!(
                "it shrank its window to zero under data in flight ({shrunk} retransmission events, the kernel's treason condition)"
            ));
        }
        if stalls > 0 {
            let longest = i
                .evidence
                .iter()
                .filter_map(|a| a.tcp.as_ref())
                .map(|t| t.stalled_ms)
                .max()
                .unwrap_or(0);
            let sockets: std::collections::BTreeSet<u64> = i
                .evidence
                .iter()
                .filter_map(|a| a.tcp.as_ref())
                .filter(|t| t.stalled_ms > 0)
                .map(|t| t.socket)
                .collect();
            why.push(format!(
                "it kept {} socket(s) pinned with a closed window and nothing acknowledged for up to {:.1} s (slow read / sockstress)",
                sockets.len().max(1),
                longest as f64 / 1000.0
            ));
        }
        if logged > 0 {
            why.push(format!(
                "the kernel logged the treason message for it ({logged}×)"
            ));
        }
        // A zero-window SYN comes before any handshake: its source address
        // may be anyone's (hping3 -a), so it never bans on its own. No real
        // TCP stack opens with a zero window, which is why the global
        // policy (proposed on the global incident when they flood) costs
        // legitimate clients nothing; a real sockstress peer has to finish
        // the handshake and is caught by the probes on that socket.
        if why.is_empty() {
            if syn == 0 {
                return Vec::new();
            }
            return vec![Draft {
                action: Action::Watch {
                    target: i.peer,
                    ttl_secs: self.cfg.watch_ttl.as_secs(),
                },
                justification: format!(
                    "{syn} zero-window SYN threshold event(s) in XDP: sent before any handshake, so the source may be forged; watching it (floods switch the global zero-window SYN policy on)"
                ),
            }];
        }
        vec![Draft {
            action: Action::Block {
                target: addr::host(i.peer),
                ttl_secs: self.cfg.base_ttl.as_secs(),
            },
            justification: why.join("; "),
        }]
    }

    fn host_drafts(&self, b: &Brief) -> Vec<Draft> {
        let i = &b.incident;
        if i.is_global() {
            return Vec::new();
        }
        let Some(worst) = i
            .evidence
            .iter()
            .filter_map(|a| a.ids.as_ref())
            .min_by_key(|ids| ids.severity)
        else {
            return Vec::new();
        };
        let established = i
            .evidence
            .iter()
            .filter_map(|a| a.ids.as_ref())
            .any(|ids| ids.established);
        let action = if worst.severity <= self.cfg.ids_block_severity && established {
            Action::Block {
                target: addr::host(i.peer),
                ttl_secs: self.cfg.base_ttl.as_secs(),
            }
        } else {
            Action::Watch {
                target: i.peer,
                ttl_secs: self.cfg.watch_ttl.as_secs(),
            }
        };
        vec![Draft {
            action,
            justification: format!(
                "IDS rule {} (severity {}) matched its traffic to this host{}",
                worst.signature_id,
                worst.severity,
                if established {
                    ""
                } else {
                    " on packets that need no handshake (the source may be forged)"
                }
            ),
        }]
    }

    fn ballot(&self, b: &Brief, p: &Proposal) -> Ballot {
        let forgeable = match &p.action {
            Action::Block { target, .. } => {
                !b.incident.confirmed().iter().any(|a| target.contains(a))
            }
            _ => false,
        };
        let (stance, reason, alternative) = if forgeable {
            object(
                "all evidence against it could have been forged (no completed handshake): a per-source ban could hit a bystander",
            )
        } else {
            match self.role {
                Role::Host => self.host_vote(b, p),
                Role::Kernel => self.kernel_vote(b, p),
                Role::Jail => self.jail_vote(b, p),
                Role::Filter => self.filter_vote(b, p),
            }
        };
        Ballot {
            proposal: p.id,
            stance,
            reason,
            alternative,
        }
    }

    fn host_vote(&self, b: &Brief, p: &Proposal) -> (Stance, String, Option<Draft>) {
        let Some(target) = p.action.target_net() else {
            return approve("no host address is affected");
        };
        let h = &b.facts.host;
        if let Some(local) = h.local_addrs.iter().find(|a| target.contains(*a)) {
            return object(format!("{target} covers {local}, an address of this host"));
        }
        if let Some(t) = h
            .trusted
            .iter()
            .find(|t| t.contains(&target.network()) || target.contains(&t.network()))
        {
            return object(format!("{target} overlaps the trusted/allowlisted {t}"));
        }
        approve("not one of ours, not a trusted peer")
    }

    fn kernel_vote(&self, b: &Brief, p: &Proposal) -> (Stance, String, Option<Draft>) {
        let i = &b.incident;
        match &p.action {
            Action::Block { target, ttl_secs } => {
                // Evidence names single addresses; a wider block punishes
                // neighbours the kernel saw nothing from.
                if !addr::is_host(target) && i.addresses().len() < 2 {
                    let alt = Draft {
                        action: Action::Block {
                            target: addr::host(i.peer),
                            ttl_secs: *ttl_secs,
                        },
                        justification: "the evidence names one address".into(),
                    };
                    return (
                        Stance::Object,
                        format!("evidence is about {} alone, not all of {target}", i.peer),
                        Some(alt),
                    );
                }
                approve("consistent with the evidence")
            }
            Action::Unblock { .. } if i.alert_count > 0 => {
                object("the source is still misbehaving in this incident")
            }
            Action::ZeroWindowSynPolicy { enable: true, .. } => {
                let k = &b.facts.kernel;
                if k.zero_window_syn_rate >= self.cfg.flood_rate
                    || k.zero_window_sources_recent >= self.cfg.flood_sources
                {
                    approve("the zero-window SYN flood is real")
                } else {
                    object(format!(
                        "no flood: {}/s from {} sources",
                        k.zero_window_syn_rate, k.zero_window_sources_recent
                    ))
                }
            }
            _ => approve("nothing against it"),
        }
    }

    fn jail_vote(&self, b: &Brief, p: &Proposal) -> (Stance, String, Option<Draft>) {
        let j = &b.facts.jail;
        match &p.action {
            Action::Block { target, ttl_secs } => {
                let wanted = escalated_ttl(&self.cfg, j.previous_bans);
                if *ttl_secs < wanted {
                    let alt = Draft {
                        action: Action::Block {
                            target: *target,
                            ttl_secs: wanted,
                        },
                        justification: format!(
                            "repeat offender ({} earlier bans): TTL escalated ×{} per ban",
                            j.previous_bans, self.cfg.ttl_factor
                        ),
                    };
                    return (
                        Stance::Object,
                        format!(
                            "{} earlier bans; {} is too short for a repeat offender",
                            j.previous_bans,
                            crate::ttl::format_remaining(Duration::from_secs(*ttl_secs))
                        ),
                        Some(alt),
                    );
                }
                approve(if j.previous_bans == 0 {
                    "first offence".to_string()
                } else {
                    format!("TTL fits {} earlier bans", j.previous_bans)
                })
            }
            Action::Unblock { .. } if j.previous_bans >= 2 => object(format!(
                "{} earlier bans: a recidivist stays in",
                j.previous_bans
            )),
            _ => approve("no history against it"),
        }
    }

    fn filter_vote(&self, b: &Brief, p: &Proposal) -> (Stance, String, Option<Draft>) {
        let f = &b.facts.filter;
        match &p.action {
            Action::Block { ttl_secs, .. } => {
                if f.allowlisted {
                    return object(
                        "the source is allowlisted; the allowlist wins in XDP, so a ban would be dead weight",
                    );
                }
                match f.blocked {
                    Some(None) => return object("already blocked permanently"),
                    Some(Some(left)) if left >= *ttl_secs => {
                        return object(format!(
                            "already blocked for {}",
                            crate::ttl::format_remaining(Duration::from_secs(left))
                        ));
                    }
                    _ => {}
                }
                if f.block_capacity > 0 && f.block_entries >= f.block_capacity {
                    return object(format!(
                        "the blocklist is full ({} entries)",
                        f.block_capacity
                    ));
                }
                approve("room in the table, not yet blocked")
            }
            Action::Unblock { .. } if f.blocked.is_none() => object("nothing to unblock"),
            Action::ZeroWindowSynPolicy {
                enable: true,
                ttl_secs,
            } => match b.facts.kernel.zero_window_policy_secs_left {
                Some(left) if left >= *ttl_secs => object("the policy is already on for longer"),
                _ => approve("the policy is off or ending"),
            },
            _ => approve("no table conflict"),
        }
    }
}

fn approve(reason: impl Into<String>) -> (Stance, String, Option<Draft>) {
    (Stance::Approve, reason.into(), None)
}

fn object(reason: impl Into<String>) -> (Stance, String, Option<Draft>) {
    (Stance::Object, reason.into(), None)
}

/// fail2ban-style escalation: `base × factor^previous`, capped at `max`.
pub fn escalated_ttl(cfg: &RulesConfig, previous_bans: u32) -> u64 {
    let base = cfg.base_ttl.as_secs();
    let factor = u64::from(cfg.ttl_factor.max(1));
    let mut ttl = base;
    for _ in 0..previous_bans.min(64) {
        ttl = ttl.saturating_mul(factor);
        if ttl >= cfg.max_ttl.as_secs() {
            break;
        }
    }
    ttl.min(cfg.max_ttl.as_secs())
        .max(base.min(cfg.max_ttl.as_secs()))
}

#[async_trait]
impl Agent for RuleAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "rules"
    }

    async fn propose(&self, brief: &Brief) -> Result<Turn<Vec<Draft>>, TurnFailure> {
        Ok(Turn::plain(self.drafts(brief)))
    }

    async fn review(
        &self,
        brief: &Brief,
        _round: u32,
        open: &[Proposal],
        _votes: &[Vote],
    ) -> Result<Turn<Vec<Ballot>>, TurnFailure> {
        Ok(Turn::plain(
            open.iter()
                .filter(|p| p.author != self.name)
                .map(|p| self.ballot(brief, p))
                .collect(),
        ))
    }
}
