//! What the pinned maps and the journal say right now: one read shared by
//! the metrics collector (at scrape time) and `blocker top` (every second).
//!
//! Everything here is read-only and works with or without a daemon: the
//! kernel counters and rules come from the pins, the rules' origins and the
//! recent verdicts from the journal, the probe mode from the daemon's status
//! file when one is running.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    path::Path,
};

use blocker_common::{XdpStats, config as slot};
use ipnet::IpNet;
use serde::Serialize;

use crate::{
    addr, clock,
    kernel::maps::{Tables, TablesError},
    rule::List,
    state::journal::{Store, VerdictSummary},
};

/// Origins kept as distinct label values at most; the rest are summed
/// under [`OTHER_ORIGIN`] so a misbehaving source cannot explode the series.
pub const MAX_ORIGINS: usize = 32;
/// The origin label of rules beyond [`MAX_ORIGINS`] distinct origins.
pub const OTHER_ORIGIN: &str = "other";
/// The origin of a kernel rule the journal does not know (written by hand
/// with bpftool, or the journal is unavailable).
pub const UNKNOWN_ORIGIN: &str = "unknown";

/// A rule in the kernel with the journal's origin for it.
#[derive(Clone, Debug, Serialize)]
pub struct LiveRule {
    pub list: List,
    pub net: IpNet,
    /// The journal's `source` column (`cli`, `council`, `import`,
    /// `crowdsec:CAPI`, ...), bounded by [`origin_label`].
    pub origin: String,
    /// Packets and bytes matched (dropped for block rules).
    pub packets: u64,
    pub bytes: u64,
    /// Seconds until the kernel stops applying it; `None` = permanent.
    pub remaining_secs: Option<u64>,
    /// The rule expired in the kernel and awaits garbage collection.
    pub expired: bool,
}

/// A source in the zero-window SYN table.
#[derive(Clone, Debug, Serialize)]
pub struct ZeroWindowTalker {
    pub source: IpAddr,
    pub count: u64,
    /// Seconds since its last zero-window SYN.
    pub last_seen_secs_ago: u64,
}

/// The state of the journal as a reader sees it.
#[derive(Clone, Debug, Serialize)]
pub struct JournalState {
    /// `None` when it opened and answered; otherwise why not (degraded).
    pub error: Option<String>,
}

impl JournalState {
    pub fn degraded(&self) -> bool {
        self.error.is_some()
    }
}

/// One read of everything.
#[derive(Clone, Debug, Serialize)]
pub struct Live {
    /// Global XDP counters summed over CPUs.
    #[serde(skip)]
    pub stats: XdpStats,
    /// Every rule in the kernel, block rules by packets dropped, most first.
    pub rules: Vec<LiveRule>,
    /// Zero-window SYN sources, most SYNs first.
    pub zero_window: Vec<ZeroWindowTalker>,
    /// Seconds the drop-all-zero-window-SYNs policy stays on; `None` = off.
    pub zero_window_policy_secs: Option<u64>,
    pub journal: JournalState,
    /// The most recent verdicts, newest first.
    pub verdicts: Vec<VerdictSummary>,
}

/// Maps every string to a bounded set of label values: the first
/// [`MAX_ORIGINS`] distinct origins keep their name (sanitized), the rest
/// become [`OTHER_ORIGIN`].
#[derive(Default)]
pub struct OriginLabels {
    seen: HashMap<String, String>,
}

impl OriginLabels {
    pub fn label(&mut self, origin: &str) -> String {
        if let Some(l) = self.seen.get(origin) {
            return l.clone();
        }
        if self.seen.len() >= MAX_ORIGINS {
            return OTHER_ORIGIN.to_string();
        }
        let label = origin_label(origin);
        self.seen.insert(origin.to_string(), label.clone());
        label
    }
}

/// A journal source as a label value: printable ASCII without quotes or
/// backslashes, at most 64 bytes (the source may come from a peer's
/// decision list name).
pub fn origin_label(origin: &str) -> String {
    let s: String = origin
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\'))
        .take(64)
        .collect();
    if s.is_empty() {
        UNKNOWN_ORIGIN.to_string()
    } else {
        s
    }
}

/// `ipv4` or `ipv6`, as CrowdSec's bouncers label `ip_type`.
pub const fn ip_type(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "ipv4",
        IpNet::V6(_) => "ipv6",
    }
}

impl Live {
    /// Reads the maps through `tables` and the journal in `state_dir`
    /// (opened per call: it is the daemon's, and a reader must never hold
    /// it). `verdicts` = how many recent verdicts to fetch (0 = none).
    pub fn read(tables: &Tables, state_dir: &Path, verdicts: usize) -> Result<Self, TablesError> {
        let now = clock::boottime_ns();
        let stats = tables.stats()?;
        let (origins, journal, recent) = match Store::open_existing_in(state_dir) {
            Ok(store) => {
                let origins: HashMap<(List, IpNet), String> = match store.active_rules() {
                    Ok(rules) => rules
                        .into_iter()
                        .map(|r| ((r.list, r.net), r.source))
                        .collect(),
                    Err(_) => HashMap::new(),
                };
                let recent = if verdicts > 0 {
                    store.recent_verdicts(verdicts).unwrap_or_default()
                } else {
                    Vec::new()
                };
                (origins, JournalState { error: None }, recent)
            }
            Err(e) => (
                HashMap::new(),
                JournalState {
                    error: Some(e.to_string()),
                },
                Vec::new(),
            ),
        };
        let mut labels = OriginLabels::default();
        let mut rules = Vec::new();
        for list in [List::Block, List::Allow] {
            for r in tables.rules(list)? {
                let origin = origins
                    .get(&(list, r.net))
                    .map(String::as_str)
                    .unwrap_or(UNKNOWN_ORIGIN);
                rules.push(LiveRule {
                    list,
                    net: r.net,
                    origin: labels.label(origin),
                    packets: r.counters.packets,
                    bytes: r.counters.bytes,
                    remaining_secs: clock::remaining(r.entry.expires_at_ns, now)
                        .map(|d| d.as_secs()),
                    expired: !r.entry.is_live(now),
                });
            }
        }
        rules.sort_by(|a, b| {
            (a.list, std::cmp::Reverse(a.packets), a.net).cmp(&(
                b.list,
                std::cmp::Reverse(b.packets),
                b.net,
            ))
        });
        let mut zero_window: Vec<ZeroWindowTalker> = tables
            .zero_window()?
            .into_iter()
            .map(|(source, e)| ZeroWindowTalker {
                source,
                count: e.count,
                last_seen_secs_ago: now.saturating_sub(e.last_seen_ns) / 1_000_000_000,
            })
            .collect();
        zero_window.sort_by(|a, b| b.count.cmp(&a.count).then(a.source.cmp(&b.source)));
        let until = tables.config(slot::ZW_DROP_UNTIL_NS)?;
        Ok(Self {
            stats,
            rules,
            zero_window,
            zero_window_policy_secs: (until > now).then(|| (until - now) / 1_000_000_000),
            journal,
            verdicts: recent,
        })
    }

    /// Live block rules.
    pub fn bans(&self) -> impl Iterator<Item = &LiveRule> {
        self.rules
            .iter()
            .filter(|r| r.list == List::Block && !r.expired)
    }

    /// Packets and bytes dropped by the kernel's current block rules, per
    /// (origin, ip_type): CrowdSec's bouncers' `dropped_packets` and
    /// `dropped_bytes`. A gauge: a rule's counts leave the sum when the rule
    /// is removed.
    pub fn drops_by_origin(&self) -> BTreeMap<(String, &'static str), (u64, u64)> {
        let mut out = BTreeMap::new();
        for r in self.rules.iter().filter(|r| r.list == List::Block) {
            let e: &mut (u64, u64) = out.entry((r.origin.clone(), ip_type(&r.net))).or_default();
            e.0 += r.packets;
            e.1 += r.bytes;
        }
        out
    }

    /// Live rules per (list, origin, ip_type).
    pub fn active_by_origin(&self) -> BTreeMap<(List, String, &'static str), u64> {
        let mut out = BTreeMap::new();
        for r in self.rules.iter().filter(|r| !r.expired) {
            *out.entry((r.list, r.origin.clone(), ip_type(&r.net)))
                .or_default() += 1;
        }
        out
    }
}

/// A rule's prefix as a label value.
pub fn rule_label(net: &IpNet) -> String {
    addr::display(net)
}
