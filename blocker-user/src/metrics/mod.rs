//! Prometheus/OpenMetrics metrics: the [`Metrics`] families the pipeline
//! counts into, the kernel and journal figures read at scrape time
//! ([`live`]), and the HTTP endpoint ([`serve`]).
//!
//! This hangs off the verdict/state stage: the pipeline counts what it
//! decided and applied into [`Metrics`]; the kernel's counters and rules
//! are read from the pins when Prometheus scrapes, through the same
//! [`Tables`] every reader uses.
//!
//! # Adding a family
//!
//! 1. Add a field to [`Metrics`] (a `Counter`, `Gauge`, `Histogram`, or a
//!    `Family<YourLabels, _>` with a `#[derive(EncodeLabelSet)]` label
//!    struct of bounded values: never an address, a free-text reason or an
//!    unbounded name).
//! 2. Register it in [`Metrics::new`] with one `reg.register(...)` line:
//!    the name without the `blocker_` prefix (added by the registry) and,
//!    for counters, without `_total` (the encoder adds it); units go in the
//!    name or through `register_with_unit`.
//! 3. Count into it where the event happens, through the `Arc<Metrics>`
//!    the daemon hands to its stages (`metrics.my_family.get_or_create(&labels).inc()`).
//!
//! Names follow the Prometheus conventions (counters end in `_total`, units
//! in the name) and, where the figure means the same thing, CrowdSec's
//! bouncers (`origin` and `ip_type` labels on dropped packets and bytes and
//! on active decisions).

pub mod live;
pub mod serve;

use std::{
    path::PathBuf,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

use crate::kernel::{maps::Tables, pins::PinDir};

use live::Live;

/// The prefix of every blocker series.
pub const PREFIX: &str = "blocker";
/// Rules reported one by one (`blocker_rule_dropped_packets`), most
/// dropping first; the rest appear only in the per-origin sums.
pub const TOP_RULES: usize = 10;

/// A list and the rule's origin (the journal's source: `cli`, `council`,
/// `import`, `crowdsec:CAPI`, `fleet:...`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub list: &'static str,
    pub origin: String,
}

/// A list (allow, block).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListLabels {
    pub list: &'static str,
}

/// A bounded reason code (a guard refusal kind, `table-full`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// Where an alert came from and what it says.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub source: &'static str,
    pub kind: &'static str,
}

/// Where an alert or incident came from.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: &'static str,
}

/// Where evidence was shed under a flood (`intake`, `debate-queue`), its
/// evidence class and its source.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShedLabels {
    pub stage: &'static str,
    pub class: &'static str,
    pub source: &'static str,
}

/// A verdict's action and what became of it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    pub action: &'static str,
    pub outcome: &'static str,
}

/// Prompt or completion tokens.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub kind: &'static str,
}

/// A journal table.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    pub table: &'static str,
}

/// Every family the daemon counts into. One instance per daemon, shared as
/// `Arc<Metrics>`; see the module docs for adding one.
#[derive(Debug)]
pub struct Metrics {
    /// Rules written to the kernel by this daemon.
    pub rules_added: Family<RuleLabels, Counter>,
    /// Rules garbage-collected after their TTL.
    pub rules_expired: Family<ListLabels, Counter>,
    /// Rules evicted to make room in a full table.
    pub rules_evicted: Family<RuleLabels, Counter>,
    /// Rules refused (guard refusals, full tables, no journal).
    pub rules_refused: Family<ReasonLabels, Counter>,
    /// Alerts that reached the incident tracker.
    pub alerts: Family<AlertLabels, Counter>,
    /// Incidents opened, by the source of their first alert.
    pub incidents: Family<SourceLabels, Counter>,
    /// Alerts and debate triggers shed by a full queue, by stage,
    /// evidence class and source.
    pub evidence_shed: Family<ShedLabels, Counter>,
    /// Debates finished.
    pub debates: Counter,
    /// Rounds the finished debates took.
    pub debate_rounds: Counter,
    pub debate_duration_seconds: Histogram,
    pub debate_tokens: Family<TokenLabels, Counter>,
    /// Verdicts that passed a debate, by action and outcome.
    pub verdicts: Family<VerdictLabels, Counter>,
    /// Verdicts the guard refused, by the kind of refusal.
    pub guard_refusals: Family<ReasonLabels, Counter>,
    /// Kernel evidence timestamp to the map entry, per council ban.
    pub evidence_to_ban_seconds: Histogram,
    /// Debate/incident records dropped because the journal writer fell behind.
    pub journal_dropped: Counter,
    /// 1 while the journal is unavailable (degraded mode).
    pub journal_degraded: Gauge,
    /// Rows deleted by journal retention, by table.
    pub journal_pruned: Family<TableLabels, Counter>,
    /// A peer's decision applied here: origin applied → applied here
    /// (the two nodes' wall clocks, so their skew is included).
    pub fleet_propagation_seconds: Histogram,
    /// The fleet link's status, when `[fleet] enabled`: read at scrape
    /// time like the kernel's counters.
    fleet: Mutex<Option<crate::fleet::SharedStatus>>,
    /// Boot-time seconds of the pipeline's last tick (liveness).
    heartbeat_ns: AtomicU64,
    /// What readiness needs to know.
    ready: Mutex<Readiness>,
}

/// The daemon's readiness, as last reported by the pipeline.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    /// Interfaces whose pinned XDP link must exist.
    pub interfaces: Vec<String>,
    pub pin_dir: PathBuf,
    /// Why the journal is unavailable, if it is.
    pub journal_error: Option<String>,
    /// The probe mode in use (`tracepoint`, `kprobe`, `off`).
    pub probe_mode: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            rules_added: Family::default(),
            rules_expired: Family::default(),
            rules_evicted: Family::default(),
            rules_refused: Family::default(),
            alerts: Family::default(),
            incidents: Family::default(),
            evidence_shed: Family::default(),
            debates: Counter::default(),
            debate_rounds: Counter::default(),
            // 1 ms .. ~524 s: rule debates take microseconds, LLM debates minutes.
            debate_duration_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 20)),
            debate_tokens: Family::default(),
            verdicts: Family::default(),
            guard_refusals: Family::default(),
            // 100 µs .. ~105 s.
            evidence_to_ban_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 21)),
            journal_dropped: Counter::default(),
            journal_degraded: Gauge::default(),
            journal_pruned: Family::default(),
            // 1 ms .. ~131 s.
            fleet_propagation_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 18)),
            fleet: Mutex::new(None),
            heartbeat_ns: AtomicU64::new(0),
            ready: Mutex::new(Readiness::default()),
        }
    }
}

impl Metrics {
    /// The registry exposing these families plus the scrape-time figures of
    /// the pinned maps under `pins` and the journal in `state_dir`.
    pub fn registry(self: &std::sync::Arc<Self>, pins: PinDir, state_dir: PathBuf) -> Registry {
        let mut root = Registry::default();
        let reg = root.sub_registry_with_prefix(PREFIX);
        let m = self.as_ref();
        reg.register(
            "rules_added",
            "Rules written to the kernel by the daemon, by list and origin",
            m.rules_added.clone(),
        );
        reg.register(
            "rules_expired",
            "Rules removed by garbage collection after their TTL, by list",
            m.rules_expired.clone(),
        );
        reg.register(
            "rules_evicted",
            "Rules evicted to make room in a full table (when_full = \"evict-soonest\")",
            m.rules_evicted.clone(),
        );
        reg.register(
            "rules_refused",
            "Rules not applied, by reason (guard refusal kinds, table-full, journal-unavailable, map-error)",
            m.rules_refused.clone(),
        );
        reg.register(
            "alerts",
            "Alerts handed to the incident tracker, by source and kind",
            m.alerts.clone(),
        );
        reg.register(
            "incidents",
            "Incidents opened, by the source of their first alert",
            m.incidents.clone(),
        );
        reg.register(
            "evidence_shed",
            "Alerts (stage intake) and debate triggers (stage debate-queue) shed because their queue was full, by evidence class and source; confirmed evidence has its own lane and priority",
            m.evidence_shed.clone(),
        );
        reg.register("debates", "Council debates finished", m.debates.clone());
        reg.register(
            "debate_rounds",
            "Rounds taken by the finished debates",
            m.debate_rounds.clone(),
        );
        reg.register_with_unit(
            "debate_duration",
            "Wall time of a council debate",
            Unit::Seconds,
            m.debate_duration_seconds.clone(),
        );
        reg.register(
            "debate_tokens",
            "LLM tokens used by the council, by kind (prompt, completion)",
            m.debate_tokens.clone(),
        );
        reg.register(
            "verdicts",
            "Verdicts passed by the council, by action and outcome (applied, refused, failed, dry-run)",
            m.verdicts.clone(),
        );
        reg.register(
            "guard_refusals",
            "Verdicts the guard refused, by reason",
            m.guard_refusals.clone(),
        );
        reg.register_with_unit(
            "evidence_to_ban",
            "Time from the kernel's evidence to the block rule in the map, per council ban",
            Unit::Seconds,
            m.evidence_to_ban_seconds.clone(),
        );
        reg.register(
            "journal_dropped_records",
            "Debate and incident records dropped because the journal writer fell behind",
            m.journal_dropped.clone(),
        );
        reg.register(
            "journal_degraded",
            "1 while the journal is unavailable: kernel rules keep working, new bans are refused",
            m.journal_degraded.clone(),
        );
        reg.register(
            "journal_pruned_rows",
            "Rows deleted by journal retention ([journal] max_age, max_size), by table",
            m.journal_pruned.clone(),
        );
        reg.register_with_unit(
            "fleet_propagation",
            "Time from a peer applying a decision to this node applying it (the nodes' wall clocks)",
            Unit::Seconds,
            m.fleet_propagation_seconds.clone(),
        );
        reg.register_collector(Box::new(KernelCollector {
            pins,
            state_dir,
            metrics: self.clone(),
            tables: Mutex::new(None),
        }));
        root
    }

    /// Exposes the fleet link's status (`blocker_fleet_*`).
    pub fn watch_fleet(&self, status: crate::fleet::SharedStatus) {
        if let Ok(mut f) = self.fleet.lock() {
            *f = Some(status);
        }
    }

    fn fleet_status(&self) -> Option<crate::fleet::FleetStatus> {
        let f = self.fleet.lock().ok()?;
        let s = f.as_ref()?.lock().ok()?.clone();
        Some(s)
    }

    /// Called on every pipeline tick: liveness and readiness inputs.
    pub fn heartbeat(&self, ready: Readiness) {
        self.heartbeat_ns
            .store(crate::clock::boottime_ns(), Ordering::Relaxed);
        self.journal_degraded
            .set(i64::from(ready.journal_error.is_some()));
        if let Ok(mut r) = self.ready.lock() {
            *r = ready;
        }
    }

    /// Seconds since the last heartbeat (`None` before the first).
    pub fn since_heartbeat_secs(&self) -> Option<f64> {
        let at = self.heartbeat_ns.load(Ordering::Relaxed);
        (at != 0).then(|| crate::clock::boottime_ns().saturating_sub(at) as f64 / 1e9)
    }

    /// What readiness needs, as last reported.
    pub fn readiness(&self) -> Readiness {
        self.ready.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Counts what a journal retention batch deleted.
    pub fn pruned(&self, p: &crate::state::journal::Pruned) {
        for (table, n) in [
            ("incidents", p.incidents),
            ("debates", p.debates),
            ("verdicts", p.verdicts),
            ("rules", p.rules),
        ] {
            if n > 0 {
                self.journal_pruned
                    .get_or_create(&TableLabels { table })
                    .inc_by(n);
            }
        }
    }

    /// Counts a finished debate.
    pub fn debate(&self, d: &crate::council::Debate) {
        self.debates.inc();
        self.debate_rounds.inc_by(u64::from(d.rounds));
        self.debate_duration_seconds
            .observe(d.wall_ms as f64 / 1000.0);
        for (kind, n) in [
            ("prompt", d.usage.prompt_tokens),
            ("completion", d.usage.completion_tokens),
        ] {
            self.debate_tokens
                .get_or_create(&TokenLabels { kind })
                .inc_by(n);
        }
    }

    /// Counts what became of a verdict.
    pub fn verdict(&self, action: &crate::council::Action, o: &crate::verdict::Outcome) {
        self.verdicts
            .get_or_create(&VerdictLabels {
                action: action.kind(),
                outcome: o.outcome,
            })
            .inc();
        match o.outcome {
            "refused" => self.refused(o.reason.unwrap_or("unknown"), true),
            "failed" => self.refused(o.reason.unwrap_or("unknown"), false),
            _ => {}
        }
    }

    /// Counts a rule refusal and, for guard refusals, the guard's reason.
    pub fn refused(&self, reason: &'static str, by_guard: bool) {
        self.rules_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
        if by_guard {
            self.guard_refusals
                .get_or_create(&ReasonLabels { reason })
                .inc();
        }
    }
}

/// Reads the pinned maps and the journal at each scrape.
struct KernelCollector {
    pins: PinDir,
    state_dir: PathBuf,
    metrics: std::sync::Arc<Metrics>,
    /// Opened on the first scrape and kept (the pins outlive the daemon's
    /// own handles, so this never goes stale while the pins exist).
    tables: Mutex<Option<Tables>>,
}

impl std::fmt::Debug for KernelCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelCollector")
            .field("pins", &self.pins.path())
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

/// A counter family with one series per label set.
fn counters<'a, L: EncodeLabelSet + 'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let probe = ConstCounter::new(0u64);
    let mut family = enc.encode_descriptor(name, help, None, probe.metric_type())?;
    for (labels, v) in series {
        ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A gauge family with one series per label set.
fn gauges<'a, L: EncodeLabelSet + 'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, i64)>,
) -> Result<(), std::fmt::Error> {
    let probe = ConstGauge::new(0i64);
    let mut family = enc.encode_descriptor(name, help, None, probe.metric_type())?;
    for (labels, v) in series {
        ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginIpLabels {
    origin: String,
    ip_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActiveLabels {
    list: &'static str,
    origin: String,
    ip_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopRuleLabels {
    rule: String,
    origin: String,
}

/// A peer node: only names from `[fleet.policy] origins` get this far
/// (any other origin is rejected and counted by reason), so the label is
/// bounded by the config.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FleetOriginLabels {
    origin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FleetRejectLabels {
    reason: String,
}

/// The `blocker_fleet_*` families, from the link's status.
fn encode_fleet(
    enc: &mut DescriptorEncoder,
    f: &crate::fleet::FleetStatus,
) -> Result<(), std::fmt::Error> {
    gauge(
        enc,
        "fleet_connected",
        "1 while the node is connected to a NATS server",
        i64::from(f.connected),
    )?;
    gauge(
        enc,
        "fleet_lag_messages",
        "Decisions the stream still holds for this node's consumer",
        f.lag as i64,
    )?;
    gauge(
        enc,
        "fleet_publish_queue",
        "Own decisions waiting in the on-disk outbox to be published",
        f.queued as i64,
    )?;
    counter(
        enc,
        "fleet_decisions_sent",
        "Own decisions published (stored by the stream)",
        f.sent,
    )?;
    let origin = |o: &String| FleetOriginLabels { origin: o.clone() };
    counters(
        enc,
        "fleet_decisions_received",
        "Peers' decisions received, by origin",
        f.origins.iter().map(|(o, c)| (origin(o), c.received)),
    )?;
    counters(
        enc,
        "fleet_decisions_applied",
        "Peers' decisions applied here, by origin",
        f.origins.iter().map(|(o, c)| (origin(o), c.applied)),
    )?;
    counters(
        enc,
        "fleet_decisions_refused",
        "Peers' decisions refused here (policy, guard, clock) or that failed, by origin",
        f.origins.iter().map(|(o, c)| (origin(o), c.refused)),
    )?;
    counters(
        enc,
        "fleet_messages_rejected",
        "Messages rejected before any policy (unparsable, unknown_origin, ...), by reason",
        f.rejected
            .iter()
            .map(|(r, n)| (FleetRejectLabels { reason: r.clone() }, *n)),
    )
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabels {
    mode: String,
}

impl Collector for KernelCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(mut tables) = self.tables.lock() else {
            return Ok(());
        };
        if tables.is_none() {
            *tables = Tables::open(&self.pins).ok();
        }
        let live = tables
            .as_ref()
            .and_then(|t| Live::read(t, &self.state_dir, 0).ok());
        gauge(
            &mut enc,
            "maps_loaded",
            "1 when the pinned maps could be read",
            i64::from(live.is_some()),
        )?;
        let ready = self.metrics.readiness();
        gauges(
            &mut enc,
            "probe_mode",
            "The treason probes' attach mode (1 for the mode in use)",
            [(
                ModeLabels {
                    mode: if ready.probe_mode.is_empty() {
                        "off".into()
                    } else {
                        ready.probe_mode
                    },
                },
                1,
            )],
        )?;
        if let Some(f) = self.metrics.fleet_status() {
            encode_fleet(&mut enc, &f)?;
        }
        let Some(live) = live else {
            return Ok(());
        };
        let s = &live.stats;
        for (name, help, v) in [
            (
                "xdp_passed_packets",
                "Frames XDP handed on to the kernel",
                s.passed,
            ),
            (
                "xdp_passed_bytes",
                "Bytes of the frames XDP handed on to the kernel",
                s.passed_bytes,
            ),
            (
                "xdp_dropped_packets",
                "Frames XDP dropped (block rules and the zero-window SYN policy)",
                s.dropped,
            ),
            (
                "xdp_dropped_bytes",
                "Bytes of the frames XDP dropped",
                s.dropped_bytes,
            ),
            (
                "xdp_allowlisted_packets",
                "Frames passed because the source is allowlisted",
                s.allowlisted,
            ),
            (
                "xdp_allowlisted_bytes",
                "Bytes of the frames passed because the source is allowlisted",
                s.allowlisted_bytes,
            ),
            (
                "xdp_malformed_packets",
                "Frames with truncated or invalid headers (passed)",
                s.malformed,
            ),
            (
                "xdp_malformed_bytes",
                "Bytes of the frames with truncated or invalid headers (passed)",
                s.malformed_bytes,
            ),
            (
                "xdp_non_ip_packets",
                "Frames that are neither IPv4 nor IPv6 (passed)",
                s.non_ip,
            ),
            (
                "xdp_expired_rule_packets",
                "Frames whose source matched a rule that had expired",
                s.expired,
            ),
            (
                "zero_window_syn_packets",
                "TCP SYNs advertising a zero window",
                s.zw_syn,
            ),
            (
                "zero_window_syn_dropped_packets",
                "Zero-window SYNs dropped by the global policy",
                s.zw_syn_dropped,
            ),
            (
                "probe_events",
                "Events the kernel programs sent to userspace (XDP thresholds, treason probes)",
                s.events,
            ),
            (
                "probe_events_lost",
                "Kernel events lost because the ring buffer was full",
                s.events_lost,
            ),
        ] {
            // ConstCounter's encoder appends `_total`.
            counter(&mut enc, name, help, v)?;
        }
        let drops = live.drops_by_origin();
        let labels = |(origin, ip_type): &(String, &'static str)| OriginIpLabels {
            origin: origin.clone(),
            ip_type,
        };
        gauges(
            &mut enc,
            "dropped_packets",
            "Packets dropped by the current block rules, by origin and IP family (leaves the sum when a rule is removed)",
            drops.iter().map(|(k, v)| (labels(k), v.0 as i64)),
        )?;
        gauges(
            &mut enc,
            "dropped_bytes",
            "Bytes dropped by the current block rules, by origin and IP family",
            drops.iter().map(|(k, v)| (labels(k), v.1 as i64)),
        )?;
        gauges(
            &mut enc,
            "active_rules",
            "Rules in the kernel that still apply, by list, origin and IP family",
            live.active_by_origin()
                .into_iter()
                .map(|((list, origin, ip_type), n)| {
                    (
                        ActiveLabels {
                            list: list.as_str(),
                            origin,
                            ip_type,
                        },
                        n as i64,
                    )
                }),
        )?;
        gauges(
            &mut enc,
            "rule_dropped_packets",
            "Packets dropped by each of the top block rules (at most TOP_RULES = 10 series)",
            live.bans()
                .filter(|r| r.packets > 0)
                .take(TOP_RULES)
                .map(|r| {
                    (
                        TopRuleLabels {
                            rule: live::rule_label(&r.net),
                            origin: r.origin.clone(),
                        },
                        r.packets as i64,
                    )
                }),
        )?;
        gauge(
            &mut enc,
            "zero_window_syn_sources",
            "Sources tracked in the zero-window SYN table",
            live.zero_window.len() as i64,
        )?;
        gauge(
            &mut enc,
            "zero_window_syn_policy_active",
            "1 while all zero-window SYNs are dropped (the council's global policy)",
            i64::from(live.zero_window_policy_secs.is_some()),
        )?;
        gauge(
            &mut enc,
            "zero_window_syn_policy_remaining_seconds",
            "Seconds the zero-window SYN policy stays on (0 when off)",
            live.zero_window_policy_secs.unwrap_or(0) as i64,
        )?;
        Ok(())
    }
}
