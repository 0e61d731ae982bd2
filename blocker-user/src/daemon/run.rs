//! `blocker run`: load, attach, and turn evidence into bans until told to
//! stop.
//!
//! ```text
//! ring buffer (probes, XDP) ─┐
//! /dev/kmsg ─────────────────┼─► bounded queue ─► incidents ─► council (concurrent, bounded)
//! eve.json ──────────────────┘                                     │ typed verdicts
//!                                          maps ◄── enforcer ◄── guard
//! ```
//!
//! One task owns the incidents, the guard and the enforcer, so no locks are
//! needed; debates run as their own tasks and report back. Enforcement does
//! not depend on this process: maps and XDP links are pinned, and the kernel
//! ignores expired rules by itself.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    future::Future,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use aya::maps::RingBuf;
use blocker_common::{config as slot, maps as map_names, reason};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::{
    addr, clock,
    config::{AgentKind, Config, XdpMode},
    council::{
        self, Action, Brief, Council, Debate, Draft, Stance,
        facts::{FilterFacts, HostFacts, JailFacts, KernelFacts},
    },
    evidence,
    evidence::alert::{Alert, AlertKind, AlertSource, PipelineCounters, PipelineSnapshot},
    guard::{self, Guard},
    incident::IncidentView,
    incident::{Incident, Tracker, TrackerCounters, Trigger},
    kernel::maps::{Tables, TablesError},
    kernel::pins::{self, Globals, LoadError, PinDir},
    kernel::probes::{self, ProbeError, ProbeMode, ProbeStatus},
    kernel::sys,
    kernel::xdp::{self, AttachError, Attached},
    rule::List,
    state::enforcer::{Change, EnforceError, Enforcer},
    state::journal::{IncidentRecord, Store, StoreError, VerdictRecord},
};

/// File in the state directory where a running daemon describes itself.
pub const STATUS_FILE: &str = "daemon.json";

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Tables(#[from] TablesError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Enforce(#[from] EnforceError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// What `blocker run` was asked to do (flags already merged into `config`).
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub interfaces: Vec<String>,
    pub xdp_mode: XdpMode,
    pub config: Config,
}

/// What a running daemon publishes about itself (`blocker status`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DaemonStatus {
    pub pid: u32,
    pub started_at: String,
    pub updated_at: String,
    pub pin_dir: PathBuf,
    pub dry_run: bool,
    pub interfaces: Vec<InterfaceStatus>,
    pub probes: ProbeStatus,
    pub alerts: PipelineSnapshot,
    pub incidents: IncidentStatus,
    pub council: CouncilStatus,
    /// Kernel event to map entry, over the last bans.
    pub latency: LatencyStatus,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct InterfaceStatus {
    pub iface: String,
    pub attached: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct IncidentStatus {
    pub open: usize,
    #[serde(flatten)]
    pub counters: TrackerCounters,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CouncilStatus {
    pub agents: Vec<String>,
    pub debates: u64,
    pub running: usize,
    pub queued: usize,
    /// Triggers dropped because the debate queue was full.
    pub queue_dropped: u64,
    pub applied: u64,
    pub refused: u64,
    pub failed: u64,
    pub dry_run: u64,
    /// Debate/incident records dropped because the journal writer fell behind.
    pub journal_dropped: u64,
    /// Rules evicted to make room in a full table (`when_full = "evict-soonest"`).
    pub evicted: u64,
    /// Why the journal is unavailable (degraded mode), if it is.
    pub journal_error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencyStatus {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Medians of the stages: kernel timestamp → debate triggered (ring
    /// buffer, alert queue), trigger → debate done (council and its
    /// scheduling), debate done → map written (guard, journal commit, map).
    pub intake_p50_ms: f64,
    pub council_p50_ms: f64,
    pub apply_p50_ms: f64,
    /// The most recent samples, milliseconds, oldest first (at most 1000).
    pub recent_ms: Vec<f64>,
}

impl DaemonStatus {
    /// The status file of a daemon that is still running, if any.
    pub fn read(state_dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(state_dir.join(STATUS_FILE)).ok()?;
        let status: Self = serde_json::from_str(&text).ok()?;
        sys::pid_alive(status.pid).then_some(status)
    }
}

/// Builds the council from `[council]`: rule agents, LLM agents (sharing
/// one endpoint, `$OPENAI_API_KEY`), or a mix, plus the optional judge.
pub fn build_council(cfg: &Config) -> Result<Council, DaemonError> {
    let c = &cfg.council;
    let endpoint = if c.uses_llm() {
        let e = council::llm::Endpoint::from_env(&c.llm)
            .map_err(|e| DaemonError::Config(e.to_string()))?;
        info!(
            "LLM council endpoint {} ({})",
            e.base_url(),
            if e.has_key() {
                format!("API key from ${}", council::llm::API_KEY_ENV)
            } else {
                format!("no API key: ${} is not set", council::llm::API_KEY_ENV)
            }
        );
        Some(Arc::new(e))
    } else {
        None
    };
    let mut agents: Vec<Arc<dyn council::Agent>> = Vec::new();
    for role in &c.roles {
        match (c.kind_of(role), &endpoint) {
            (AgentKind::Llm, Some(endpoint)) => {
                let agent =
                    council::llm::LlmAgent::new(role, &c.llm, endpoint.clone(), c.max_rounds)
                        .map_err(|e| DaemonError::Config(e.to_string()))?;
                agents.push(Arc::new(agent));
            }
            _ => {
                let agent =
                    council::rules::RuleAgent::new(role, c.rules.clone()).ok_or_else(|| {
                        DaemonError::Config(format!(
                            "[council] roles: {role:?} has no offline rules (known: {})",
                            council::rules::ROLES.join(", ")
                        ))
                    })?;
                agents.push(Arc::new(agent));
            }
        }
    }
    let mut council = Council::new(agents, c.consensus(), c.max_rounds);
    if let (true, Some(endpoint)) = (c.llm.judge, &endpoint) {
        council = council.with_judge(Arc::new(council::llm::LlmJudge::new(
            &c.llm,
            endpoint.clone(),
        )));
    }
    Ok(council)
}

/// Runs the daemon until `shutdown` resolves.
pub async fn run(opts: RunOptions, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let cfg = &opts.config;
    pins::require_caps(pins::RUN_CAPS)?;
    // Cancelled on shutdown: debates in flight stop (nothing passes) and
    // their HTTP calls are dropped.
    let cancel = tokio_util::sync::CancellationToken::new();
    let council = Arc::new(build_council(cfg)?.with_cancel(cancel.clone()));
    let guard = Guard::new(cfg.guard.clone()).map_err(|e| DaemonError::Config(e.to_string()))?;
    let pins = PinDir::new(&cfg.pin_dir);

    // Probe offsets come from the running kernel and must be set before load.
    let mut probe_mode = cfg.treason.probe;
    let offsets = match probes::prepare(probe_mode) {
        Ok(o) => o,
        Err(e) if probe_mode == ProbeMode::Auto => {
            warn!("treason probes disabled: {e}");
            probe_mode = ProbeMode::Off;
            probes::Offsets::default()
        }
        Err(e) => return Err(e.into()),
    };
    let globals = Globals {
        sock_offsets: offsets.sock,
        tracepoint_offsets: offsets.tracepoints,
        event_interval_ns: cfg.treason.event_interval.as_nanos() as u64,
        stall_ns: cfg.treason.stall.as_nanos() as u64,
    };
    let (mut ebpf, _resized) = pins::load_for_daemon(&pins, &cfg.maps, &globals)?;
    let mut interfaces = Vec::new();
    for iface in &opts.interfaces {
        let attached = xdp::attach_xdp(&mut ebpf, &pins, iface, opts.xdp_mode)?;
        match attached {
            Attached::Replaced => info!(
                "replaced the XDP program on {iface} atomically (pinned link {})",
                pins.link(iface).display()
            ),
            Attached::Driver | Attached::Skb => info!(
                "attached XDP to {iface} in {} mode (pinned link {})",
                if attached == Attached::Driver {
                    "driver"
                } else {
                    "skb"
                },
                pins.link(iface).display()
            ),
        }
        interfaces.push(InterfaceStatus {
            iface: iface.clone(),
            attached: format!("{attached:?}").to_lowercase(),
        });
    }
    let probe_status = match probes::attach(&mut ebpf, probe_mode, &offsets) {
        Ok(s) => s,
        Err(e) if probe_mode == ProbeMode::Auto => {
            warn!("treason probes disabled: {e}");
            ProbeStatus {
                requested: ProbeMode::Auto,
                active: "off".into(),
                fallback_reason: Some(e.to_string()),
                ..ProbeStatus::default()
            }
        }
        Err(e) => return Err(e.into()),
    };
    spawn_ebpf_logger(&mut ebpf);
    let ring = ebpf
        .take_map(map_names::EVENTS)
        .ok_or_else(|| DaemonError::Config("the object has no EVENTS map".into()))
        .and_then(|m| {
            RingBuf::try_from(m).map_err(|e| DaemonError::Config(format!("EVENTS: {e}")))
        })?;
    let mut tables = Tables::from_ebpf(&mut ebpf)?;
    tables.sync_active()?;
    tables.set_config(slot::ZW_THRESHOLD, cfg.xdp.zero_window_threshold)?;
    // A broken journal must not stop enforcement: the pinned rules keep
    // working, new bans are refused (never enforced unrecorded), and the
    // operator is told how to recover.
    let (mut enforcer, first_incident) = match Store::open_in(&cfg.state_dir) {
        Ok(store) => {
            let first = store.max_incident_id().unwrap_or(0) + 1;
            (Enforcer::new(tables, store), first)
        }
        Err(e) => {
            warn!(
                "DEGRADED: {e}. Rules already in the kernel keep being enforced; new bans are refused until the journal is fixed. To recover, move {} aside and restart: the kernel's rules are adopted into a fresh journal",
                cfg.state_dir.join(crate::state::journal::DB_FILE).display()
            );
            (Enforcer::without_journal(tables, e.to_string()), 1)
        }
    };
    enforcer = enforcer.with_when_full(cfg.maps.when_full);
    if enforcer.store().is_some() {
        let report = enforcer.reconcile()?;
        for r in &report.restored {
            info!("restored {r} from the journal");
        }
        for r in &report.adopted {
            info!("adopted {r} into the journal");
        }
    }

    // Sources → one bounded queue.
    let counters = Arc::new(PipelineCounters::default());
    let (alert_tx, mut alert_rx) = mpsc::channel::<Alert>(cfg.sources.queue);
    tokio::spawn(evidence::probe::run(
        ring,
        alert_tx.clone(),
        counters.clone(),
    ));
    if cfg.sources.kmsg {
        let (tx, c) = (alert_tx.clone(), counters.clone());
        tokio::spawn(async move {
            let opts = evidence::kmsg::KmsgOptions::default();
            if let Err(e) = evidence::kmsg::run(PathBuf::from("/dev/kmsg"), tx, c, opts).await {
                warn!("kernel log source stopped: {e} (disable it with --no-kmsg)");
            }
        });
        info!("reading the kernel log (/dev/kmsg) for treason messages");
    }
    if !cfg.sources.eve_json.is_empty() {
        let path = PathBuf::from(&cfg.sources.eve_json);
        info!("following Suricata alerts in {}", path.display());
        tokio::spawn(evidence::eve::follow(
            path,
            alert_tx.clone(),
            counters.clone(),
            evidence::eve::EveOptions::default(),
        ));
    }
    drop(alert_tx);

    let journal_tx = spawn_journal(&cfg.state_dir);
    let (done_tx, mut done_rx) = mpsc::channel::<Finished>(cfg.council.max_concurrent * 2 + 4);
    let mut p = Pipeline {
        tracker: Tracker::new(cfg.incidents.clone(), first_incident),
        cfg: cfg.clone(),
        enforcer,
        guard,
        council,
        probe_status,
        counters,
        council_status: CouncilStatus::default(),
        latencies: VecDeque::new(),
        inflight: HashSet::new(),
        queue: VecDeque::new(),
        flood: FloodMeter::default(),
        local_addrs: sys::local_addresses(),
        listening_ports: spawn_port_watcher(),
        block_fill: HashMap::new(),
        done_tx,
        journal_tx,
    };
    p.council_status.agents = p.council.agent_names();
    p.refresh_fill();

    let mut status = DaemonStatus {
        pid: std::process::id(),
        started_at: clock::rfc3339(SystemTime::now()),
        pin_dir: cfg.pin_dir.clone(),
        dry_run: cfg.daemon.dry_run,
        interfaces,
        ..DaemonStatus::default()
    };
    let status_path = cfg.state_dir.join(STATUS_FILE);
    p.fill_status(&mut status);
    write_status(&status_path, &status)?;
    info!(
        "blocker running (pid {}); maps pinned under {}; council: {} ({}){}",
        status.pid,
        pins.path().display(),
        p.council.describe().join(", "),
        match cfg.council.consensus() {
            council::Consensus::Unanimous => "unanimous".to_string(),
            council::Consensus::Quorum { min_approvals } => format!("quorum {min_approvals}"),
        },
        if cfg.daemon.dry_run {
            "; DRY RUN: verdicts are logged, not applied"
        } else {
            ""
        }
    );

    let mut gc = tokio::time::interval(cfg.daemon.gc_interval);
    gc.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(alert) = alert_rx.recv() => p.on_alert(alert),
            Some(done) = done_rx.recv() => p.on_debate(done),
            _ = tick.tick() => {
                p.on_tick();
                p.fill_status(&mut status);
                if let Err(e) = write_status(&status_path, &status) {
                    warn!("{e}");
                }
            }
            _ = gc.tick() => p.on_gc(),
        }
    }

    // Stop the debates in flight and journal them as cancelled.
    cancel.cancel();
    p.queue.clear();
    if !p.inflight.is_empty() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while !p.inflight.is_empty() {
            match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                Ok(Some(done)) => p.on_debate(done),
                _ => break,
            }
        }
    }
    let _ = std::fs::remove_file(&status_path);
    for iface in opts.interfaces.iter().filter(|i| pins.link(i).exists()) {
        info!(
            "exiting; XDP stays attached on {iface} and keeps enforcing (remove it with `blocker detach --iface {iface}`)"
        );
    }
    drop(ebpf);
    Ok(())
}

/// Journal records that need not precede any map change, written by a
/// background task in batches (one commit, one fsync, per batch) so the
/// pipeline never waits on them. A ban's own rule record is not among them:
/// the enforcer commits it before touching the map.
enum JournalEntry {
    Debate {
        incident_id: u64,
        debate: Box<Debate>,
        verdicts: Vec<(Action, String, Outcome)>,
    },
    Incident {
        id: u64,
        peer: IpAddr,
        opened_at: i64,
        closed_at: i64,
        alert_count: u64,
        summary: String,
    },
}

/// Forwards the eBPF programs' log records (rare events only: see the
/// probes' `log_read_failure`) into our log.
fn spawn_ebpf_logger(ebpf: &mut aya::Ebpf) {
    let logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(l) => l,
        Err(e) => {
            warn!("eBPF log records will not be shown: {e}");
            return;
        }
    };
    // SAFETY: the logger owns its ring buffer's fd for as long as the
    // AsyncFd owns the logger, and always reports the same fd.
    let fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
    };
    let Ok(mut fd) = fd else {
        warn!("eBPF log records will not be shown: cannot poll their ring buffer");
        return;
    };
    tokio::spawn(async move {
        while let Ok(mut guard) = fd.readable_mut().await {
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}

/// Keeps a cached copy of the listening TCP ports up to date.
fn spawn_port_watcher() -> Arc<std::sync::Mutex<Vec<u16>>> {
    let ports = Arc::new(std::sync::Mutex::new(sys::listening_ports()));
    let shared = Arc::downgrade(&ports);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(10));
        every.tick().await;
        loop {
            every.tick().await;
            let fresh = tokio::task::spawn_blocking(sys::listening_ports)
                .await
                .unwrap_or_default();
            let Some(shared) = shared.upgrade() else {
                break;
            };
            if let Ok(mut p) = shared.lock() {
                *p = fresh;
            }
        }
    });
    ports
}

/// Starts the journal writer on its own connection to the store. Without a
/// usable journal the records are dropped (and counted) as they arrive.
fn spawn_journal(state_dir: &Path) -> mpsc::Sender<JournalEntry> {
    let (tx, mut rx) = mpsc::channel::<JournalEntry>(4096);
    let Ok(mut store) = Store::open_in(state_dir) else {
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        return tx;
    };
    tokio::task::spawn_blocking(move || {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < 256 {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            let result = store.batch(|s| {
                for entry in &batch {
                    match entry {
                        JournalEntry::Debate {
                            incident_id,
                            debate,
                            verdicts,
                        } => {
                            let debate_id = s.record_debate(*incident_id, debate)?;
                            for (action, justification, o) in verdicts {
                                s.record_verdict(&VerdictRecord {
                                    debate_id: Some(debate_id),
                                    incident_id: Some(*incident_id),
                                    peer: debate.peer,
                                    action,
                                    justification,
                                    outcome: o.outcome,
                                    detail: o.detail.as_deref(),
                                    rule_id: o.rule_id,
                                })?;
                            }
                        }
                        JournalEntry::Incident {
                            id,
                            peer,
                            opened_at,
                            closed_at,
                            alert_count,
                            summary,
                        } => {
                            s.record_incident(&IncidentRecord {
                                id: *id,
                                peer: *peer,
                                opened_at: *opened_at,
                                closed_at: Some(*closed_at),
                                alert_count: *alert_count,
                                summary,
                            })?;
                        }
                    }
                }
                Ok(())
            });
            if let Err(e) = result {
                warn!(
                    "could not journal {} debate/incident records: {e}",
                    batch.len()
                );
            }
        }
    });
    tx
}

/// What became of a verdict, for the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// applied, refused, dry-run or failed.
    pub outcome: &'static str,
    /// The guard's reason, or the error.
    pub detail: Option<String>,
    /// The rules row an applied block wrote.
    pub rule_id: Option<i64>,
}

impl Outcome {
    fn new(outcome: &'static str, detail: Option<String>) -> Self {
        Self {
            outcome,
            detail,
            rule_id: None,
        }
    }
}

/// The one path from a debate to the maps, for the daemon and `blocker
/// debate` alike: the guard checks the verdict (its text, then its
/// action), then, unless `enforcer` is `None` (a dry run), the enforcer
/// applies it. Every refusal is logged with its reason; an applied block
/// is counted against the guard's rate here.
pub fn execute(
    enforcer: Option<&mut Enforcer>,
    guard: &mut Guard,
    ctx: &guard::Context<'_>,
    view: &IncidentView,
    draft: &Draft,
    reason_code: u32,
) -> Outcome {
    let action = &draft.action;
    if let Err(refusal) = guard.check_verdict(draft, ctx) {
        warn!(
            "guard refused to {action} (incident #{}): {refusal}",
            view.id
        );
        return Outcome::new("refused", Some(refusal.to_string()));
    }
    let Some(enforcer) = enforcer else {
        info!("dry run: would {action} (incident #{})", view.id);
        return Outcome::new("dry-run", None);
    };
    let justification = crate::text::sanitize_text(&draft.justification);
    let mut rule_id = None;
    let result: Result<(), String> = match action {
        Action::Block { target, ttl_secs } => enforcer
            .add(&Change {
                list: List::Block,
                net: *target,
                ttl: Some(Duration::from_secs(*ttl_secs)),
                reason: &justification,
                reason_code,
                source: "council",
            })
            .map(|applied| {
                rule_id = Some(applied.record_id);
                guard.record_ban();
            })
            .map_err(|e| e.to_string()),
        Action::Unblock { target } => enforcer
            .remove(List::Block, *target, "council")
            .map(|_| {
                info!(
                    "verdict applied: unblocked {} (incident #{})",
                    addr::display(target),
                    view.id
                )
            })
            .map_err(|e| e.to_string()),
        Action::Watch { target, ttl_secs } => {
            info!(
                "verdict: watching {target} for {} (incident #{}; no map change)",
                crate::ttl::format_remaining(Duration::from_secs(*ttl_secs)),
                view.id
            );
            Ok(())
        }
        Action::ZeroWindowSynPolicy { enable, ttl_secs } => {
            let until = if *enable {
                clock::expiry_from_now(Some(Duration::from_secs(*ttl_secs)))
            } else {
                0
            };
            enforcer
                .tables_mut()
                .set_config(slot::ZW_DROP_UNTIL_NS, until)
                .map(|()| info!("verdict applied: {action} (incident #{})", view.id))
                .map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(()) => Outcome {
            outcome: "applied",
            detail: None,
            rule_id,
        },
        Err(e) => {
            warn!("verdict failed: {action} (incident #{}): {e}", view.id);
            Outcome::new("failed", Some(e))
        }
    }
}

/// Journals a debate and what became of each verdict, synchronously (the
/// daemon batches the same records in the background); the debate's id.
pub fn journal(
    store: &mut Store,
    view: &IncidentView,
    debate: &Debate,
    outcomes: &[Outcome],
) -> Option<i64> {
    let debate_id = store
        .record_debate(view.id, debate)
        .map_err(|e| warn!("could not journal the debate: {e}"))
        .ok();
    for (draft, o) in debate.passed.iter().zip(outcomes) {
        let _ = store
            .record_verdict(&VerdictRecord {
                debate_id,
                incident_id: Some(view.id),
                peer: view.peer,
                action: &draft.action,
                justification: &crate::text::sanitize_text(&draft.justification),
                outcome: o.outcome,
                detail: o.detail.as_deref(),
                rule_id: o.rule_id,
            })
            .map_err(|e| warn!("could not journal the verdict: {e}"));
    }
    debate_id
}

/// Where the council's facts come from.
pub struct FactSources<'a> {
    /// The kernel tables, when loaded.
    pub tables: Option<&'a Tables>,
    /// The journal, when usable.
    pub store: Option<&'a Store>,
    pub guard: &'a guard::GuardConfig,
    pub local_addrs: &'a [IpAddr],
    pub listening_ports: &'a [u16],
    /// How the probes are attached.
    pub probes: &'a str,
    pub zero_window_syn_rate: u64,
    pub zero_window_sources_recent: u64,
    /// Entries per exact blocklist map ([`block_fill`]).
    pub block_fill: &'a HashMap<&'static str, u64>,
}

/// Live allowlist prefixes (none without tables).
pub fn live_allowlist(tables: Option<&Tables>) -> Vec<ipnet::IpNet> {
    let now_ns = clock::boottime_ns();
    tables
        .and_then(|t| t.rules(List::Allow).ok())
        .map(|r| {
            r.into_iter()
                .filter(|r| r.entry.is_live(now_ns))
                .map(|r| r.net)
                .collect()
        })
        .unwrap_or_default()
}

/// Entries per exact blocklist map.
pub fn block_fill(tables: &Tables) -> Option<HashMap<&'static str, u64>> {
    let rules = tables.rules(List::Block).ok()?;
    let count = |v4: bool| {
        rules
            .iter()
            .filter(|r| addr::is_host(&r.net) && r.net.addr().is_ipv4() == v4)
            .count() as u64
    };
    Some(HashMap::from([
        (map_names::BLOCK_V4, count(true)),
        (map_names::BLOCK_V6, count(false)),
    ]))
}

/// The facts of every component about `view`.
pub fn gather_facts(view: &IncidentView, src: &FactSources<'_>) -> council::Facts {
    let now_ns = clock::boottime_ns();
    let policy_until = src
        .tables
        .and_then(|t| t.config(slot::ZW_DROP_UNTIL_NS).ok())
        .unwrap_or(0);
    let kernel = KernelFacts {
        probes: src.probes.to_string(),
        zero_window_syn_rate: src.zero_window_syn_rate,
        zero_window_sources_recent: src.zero_window_sources_recent,
        zero_window_policy_secs_left: (policy_until > now_ns)
            .then(|| (policy_until - now_ns) / 1_000_000_000),
    };
    let mut trusted = src.guard.trusted_nets().unwrap_or_default();
    trusted.extend(live_allowlist(src.tables));
    let host = HostFacts {
        local_addrs: src.local_addrs.to_vec(),
        trusted,
        listening_ports: src.listening_ports.to_vec(),
    };
    if view.is_global() {
        return council::Facts {
            host,
            kernel,
            ..council::Facts::default()
        };
    }
    let hostnet = addr::host(view.peer);
    let history = src
        .store
        .and_then(|s| s.history(hostnet).ok())
        .unwrap_or_default();
    let bans: Vec<_> = history
        .iter()
        .filter(|r| r.list == List::Block && r.removed_by.as_deref() != Some("failed"))
        .collect();
    let jail = JailFacts {
        previous_bans: bans.len() as u32,
        last_ban_at: bans.last().map(|r| r.added_at),
    };
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
    council::Facts {
        host,
        kernel,
        jail,
        filter,
    }
}

/// A finished debate on its way back to the pipeline.
struct Finished {
    trigger: Trigger,
    debate: Debate,
    /// CLOCK_BOOTTIME when the debate task finished.
    finished_ns: u64,
}

/// Where the time between the kernel's evidence and the map entry went.
#[derive(Clone, Copy)]
struct LatencySample {
    /// Kernel timestamp to the tracker's trigger (ring buffer, queue).
    intake_ns: u64,
    /// Trigger to the end of the debate (scheduling, queueing, council).
    council_ns: u64,
    /// Debate end to the map write (guard, journal commit, map update).
    apply_ns: u64,
}

impl LatencySample {
    fn total(&self) -> u64 {
        self.intake_ns + self.council_ns + self.apply_ns
    }
}

/// Zero-window SYN flood sensing: the global rate and the sources that
/// crossed the per-source threshold recently.
#[derive(Default)]
struct FloodMeter {
    last_total: Option<(u64, Instant)>,
    rate: u64,
    recent: HashMap<IpAddr, u64>,
}

/// Bound on remembered flood sources (a spoofed flood has millions).
const MAX_FLOOD_SOURCES: usize = 100_000;
/// Queued debate triggers at most; older ones are dropped when full.
const MAX_QUEUED_DEBATES: usize = 1024;
/// Latency samples kept for the status percentiles.
const MAX_LATENCIES: usize = 10_000;

struct Pipeline {
    cfg: Config,
    enforcer: Enforcer,
    guard: Guard,
    tracker: Tracker,
    council: Arc<Council>,
    probe_status: ProbeStatus,
    counters: Arc<PipelineCounters>,
    council_status: CouncilStatus,
    /// Kernel event → map entry, by stage.
    latencies: VecDeque<LatencySample>,
    inflight: HashSet<IpAddr>,
    queue: VecDeque<Trigger>,
    flood: FloodMeter,
    local_addrs: Vec<IpAddr>,
    /// TCP ports we listen on. Reading /proc/net/tcp walks the whole TCP
    /// hash table (10-25 ms here), so a background task refreshes this
    /// every 10 s instead of every debate paying for it.
    listening_ports: Arc<std::sync::Mutex<Vec<u16>>>,
    /// Entries per exact blocklist map (refreshed by GC), for the filter agent.
    block_fill: HashMap<&'static str, u64>,
    done_tx: mpsc::Sender<Finished>,
    journal_tx: mpsc::Sender<JournalEntry>,
}

impl Pipeline {
    fn on_alert(&mut self, alert: Alert) {
        let now = clock::boottime_ns();
        if alert.kind == AlertKind::ZeroWindowSyn && self.flood.recent.len() < MAX_FLOOD_SOURCES {
            self.flood.recent.insert(addr::canonical(alert.peer), now);
        }
        let mut closed = Vec::new();
        let trigger = self.tracker.ingest(alert, now, &mut closed);
        for i in closed {
            self.record_closed(&i);
        }
        if let Some(t) = trigger {
            self.schedule(t);
        }
    }

    fn schedule(&mut self, t: Trigger) {
        let peer = t.view.peer;
        if self.inflight.contains(&peer) || self.inflight.len() >= self.cfg.council.max_concurrent {
            // One debate per peer at a time; a newer trigger replaces a
            // queued one for the same peer (it carries all the evidence).
            if let Some(q) = self.queue.iter_mut().find(|q| q.view.peer == peer) {
                *q = t;
            } else {
                if self.queue.len() >= MAX_QUEUED_DEBATES {
                    self.queue.pop_front();
                    self.council_status.queue_dropped += 1;
                }
                self.queue.push_back(t);
            }
            return;
        }
        self.launch(t);
    }

    fn launch(&mut self, trigger: Trigger) {
        let brief = Brief {
            facts: self.facts(&trigger.view),
            incident: trigger.view.clone(),
        };
        self.inflight.insert(trigger.view.peer);
        let council = self.council.clone();
        let tx = self.done_tx.clone();
        tokio::spawn(async move {
            let debate = council.deliberate(&brief).await;
            let finished_ns = clock::boottime_ns();
            let _ = tx
                .send(Finished {
                    trigger,
                    debate,
                    finished_ns,
                })
                .await;
        });
    }

    fn launch_queued(&mut self) {
        while self.inflight.len() < self.cfg.council.max_concurrent {
            let Some(pos) = self
                .queue
                .iter()
                .position(|t| !self.inflight.contains(&t.view.peer))
            else {
                break;
            };
            let t = self.queue.remove(pos).expect("index from position");
            // The incident may have grown since; debate its current state.
            let t = match self.tracker.get(&t.view.peer) {
                Some(i) if i.resolved => continue,
                Some(i) => Trigger {
                    view: i.view(clock::boottime_ns()),
                    observed_ns: t.observed_ns,
                    triggered_ns: t.triggered_ns,
                },
                None => t,
            };
            self.launch(t);
        }
    }

    fn facts(&self, view: &IncidentView) -> council::Facts {
        let ports = self
            .listening_ports
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default();
        gather_facts(
            view,
            &FactSources {
                tables: Some(self.enforcer.tables()),
                store: self.enforcer.store(),
                guard: &self.cfg.guard,
                local_addrs: &self.local_addrs,
                listening_ports: &ports,
                probes: &self.probe_status.active,
                zero_window_syn_rate: self.flood.rate,
                zero_window_sources_recent: self.flood.recent.len() as u64,
                block_fill: &self.block_fill,
            },
        )
    }

    fn on_debate(&mut self, done: Finished) {
        let Finished {
            trigger,
            debate,
            finished_ns,
        } = done;
        self.inflight.remove(&trigger.view.peer);
        self.council_status.debates += 1;
        narrate(&trigger.view, &debate);
        // Apply first: on the critical path only the rule's own journal
        // commit precedes the map write. The debate and its verdicts are
        // journaled right after.
        let verdicts: Vec<(Action, String, Outcome)> = debate
            .passed
            .iter()
            .map(|d| {
                let o = self.apply(&trigger, d, finished_ns);
                (
                    d.action.clone(),
                    crate::text::sanitize_text(&d.justification),
                    o,
                )
            })
            .collect();
        self.journal(JournalEntry::Debate {
            incident_id: trigger.view.id,
            debate: Box::new(debate),
            verdicts,
        });
        self.launch_queued();
    }

    fn apply(&mut self, trigger: &Trigger, draft: &Draft, finished_ns: u64) -> Outcome {
        let view = &trigger.view;
        let allowlist = live_allowlist(Some(self.enforcer.tables()));
        let evidence = view.addresses();
        let ctx = guard::Context {
            evidence: &evidence,
            local: &self.local_addrs,
            allowlist: &allowlist,
        };
        let reason = reason_code(view);
        let enforcer = (!self.cfg.daemon.dry_run).then_some(&mut self.enforcer);
        let outcome = execute(enforcer, &mut self.guard, &ctx, view, draft, reason);
        match outcome.outcome {
            "refused" => self.council_status.refused += 1,
            "failed" => self.council_status.failed += 1,
            "dry-run" => {
                self.council_status.dry_run += 1;
                // As if applied: one verdict per incident, not one per repeat of
                // the same evidence.
                if matches!(draft.action, Action::Block { .. }) {
                    self.tracker.resolve(view.peer);
                }
            }
            _ => {
                self.council_status.applied += 1;
                if let Action::Block { target, ttl_secs } = &draft.action {
                    let now = clock::boottime_ns();
                    let sample = LatencySample {
                        intake_ns: trigger.triggered_ns.saturating_sub(trigger.observed_ns),
                        council_ns: finished_ns.saturating_sub(trigger.triggered_ns),
                        apply_ns: now.saturating_sub(finished_ns),
                    };
                    let latency = sample.total();
                    self.tracker.resolve(view.peer);
                    let _ = self.enforcer.tables_mut().forget_zero_window(view.peer);
                    if self.latencies.len() >= MAX_LATENCIES {
                        self.latencies.pop_front();
                    }
                    self.latencies.push_back(sample);
                    info!(
                        "verdict applied: banned {} for {} (incident #{}; {:.2} ms after the kernel's evidence)",
                        addr::display(target),
                        crate::ttl::format_remaining(Duration::from_secs(*ttl_secs)),
                        view.id,
                        latency as f64 / 1e6
                    );
                }
            }
        }
        outcome
    }

    fn on_tick(&mut self) {
        let now = clock::boottime_ns();
        // Global zero-window SYN rate from the per-CPU counters.
        if let Ok(stats) = self.enforcer.tables().stats() {
            let t = Instant::now();
            if let Some((last, at)) = self.flood.last_total {
                let secs = t.duration_since(at).as_secs_f64().max(0.001);
                self.flood.rate = ((stats.zw_syn.saturating_sub(last)) as f64 / secs) as u64;
            }
            self.flood.last_total = Some((stats.zw_syn, t));
        }
        let window = self.cfg.incidents.window.as_nanos() as u64;
        self.flood
            .recent
            .retain(|_, seen| now.saturating_sub(*seen) < window);
        let rules = &self.cfg.council.rules;
        if self.flood.rate >= rules.flood_rate
            || self.flood.recent.len() as u64 >= rules.flood_sources
        {
            let alert = Alert {
                source: AlertSource::Xdp,
                kind: AlertKind::ZeroWindowFlood,
                peer: IpAddr::from([0, 0, 0, 0]),
                peer_port: None,
                local: None,
                local_port: None,
                observed_ns: now,
                signature: "global-zero-window-syn-rate".into(),
                count: self.flood.rate,
                tcp: None,
                ids: None,
            };
            self.on_alert(alert);
        }
        for i in self.tracker.expire(now) {
            self.record_closed(&i);
        }
        self.local_addrs = sys::local_addresses();
        self.launch_queued();
    }

    fn on_gc(&mut self) {
        match self.enforcer.collect_expired() {
            Ok(expired) => {
                for rule in expired {
                    info!(
                        "{} rule for {} expired and was removed",
                        rule.list.as_str(),
                        addr::display(&rule.net)
                    );
                }
            }
            Err(e) => warn!("garbage collection failed: {e}"),
        }
        self.refresh_fill();
    }

    fn refresh_fill(&mut self) {
        if let Some(fill) = block_fill(self.enforcer.tables()) {
            self.block_fill = fill;
        }
    }

    fn record_closed(&mut self, i: &Incident) {
        if i.deliberations == 0 {
            return;
        }
        let now = SystemTime::now();
        let opened = now - Duration::from_nanos(clock::boottime_ns().saturating_sub(i.opened_ns));
        let summary = serde_json::json!({
            "by_kind": i.by_kind,
            "evidence": i.evidence,
            "resolved": i.resolved,
            "deliberations": i.deliberations,
        })
        .to_string();
        self.journal(JournalEntry::Incident {
            id: i.id,
            peer: i.peer,
            opened_at: clock::unix_secs(opened),
            closed_at: clock::unix_secs(now),
            alert_count: i.alert_count,
            summary,
        });
    }

    /// Hands a record to the journal writer; if it is behind by thousands
    /// of records, the record is dropped and counted rather than stalling
    /// the pipeline.
    fn journal(&mut self, entry: JournalEntry) {
        if self.journal_tx.try_send(entry).is_err() {
            self.council_status.journal_dropped += 1;
        }
    }

    fn fill_status(&self, s: &mut DaemonStatus) {
        s.updated_at = clock::rfc3339(SystemTime::now());
        s.probes = self.probe_status.clone();
        s.alerts = self.counters.snapshot();
        s.incidents = IncidentStatus {
            open: self.tracker.open_count(),
            counters: self.tracker.counters,
        };
        s.council = CouncilStatus {
            running: self.inflight.len(),
            queued: self.queue.len(),
            evicted: self.enforcer.evicted,
            journal_error: self.enforcer.journal_error().map(str::to_owned),
            ..self.council_status.clone()
        };
        let ms = |f: fn(&LatencySample) -> u64| -> Vec<f64> {
            self.latencies.iter().map(|l| f(l) as f64 / 1e6).collect()
        };
        let total = ms(LatencySample::total);
        let recent: Vec<f64> = total.iter().rev().take(1000).rev().copied().collect();
        let pct = |mut v: Vec<f64>, p: f64| {
            v.sort_by(|a, b| a.total_cmp(b));
            if v.is_empty() {
                0.0
            } else {
                v[((v.len() - 1) as f64 * p).round() as usize]
            }
        };
        s.latency = LatencyStatus {
            count: total.len(),
            p50_ms: pct(total.clone(), 0.5),
            p99_ms: pct(total.clone(), 0.99),
            max_ms: pct(total, 1.0),
            intake_p50_ms: pct(ms(|l| l.intake_ns), 0.5),
            council_p50_ms: pct(ms(|l| l.council_ns), 0.5),
            apply_p50_ms: pct(ms(|l| l.apply_ns), 0.5),
            recent_ms: recent,
        };
    }
}

/// The reason code stored with a council ban, from the incident's evidence.
pub fn reason_code(view: &IncidentView) -> u32 {
    let kernel = [
        AlertKind::TreasonRetransmit,
        AlertKind::TreasonProbe,
        AlertKind::ZeroWindowSeen,
        AlertKind::KernelLog,
    ]
    .iter()
    .any(|k| view.count(*k) > 0);
    let syn = view.count(AlertKind::ZeroWindowSyn) > 0;
    let ids = view.count(AlertKind::Ids) > 0;
    match (kernel, syn, ids) {
        (true, false, false) => reason::TREASON,
        (false, true, false) => reason::ZERO_WINDOW_SYN,
        (false, false, true) => reason::IDS,
        _ => reason::COUNCIL,
    }
}

/// Logs a debate the way an operator reads it: evidence, proposals, votes,
/// what passed.
fn narrate(view: &IncidentView, d: &Debate) {
    // Kinds with the signatures seen (e.g. which spelling of the kernel's
    // treason message), so an operator sees what the evidence was.
    let kinds: Vec<String> = view
        .by_kind
        .iter()
        .map(|(k, n)| {
            let mut sigs: Vec<&str> = view
                .evidence
                .iter()
                .filter(|a| a.kind == *k)
                .map(|a| a.signature.as_str())
                .collect();
            sigs.dedup();
            format!("{} ×{n} [{}]", k.as_str(), sigs.join(", "))
        })
        .collect();
    let subject = if view.is_global() {
        "all sources".to_string()
    } else {
        view.peer.to_string()
    };
    info!(
        "council on incident #{} ({subject}): {} alert(s): {}",
        view.id,
        view.alert_count,
        kinds.join(", ")
    );
    for p in &d.proposals {
        info!(
            "  proposal #{} by {}: {} — {}",
            p.id, p.author, p.action, p.justification
        );
        let votes: Vec<String> = d
            .votes
            .iter()
            .filter(|v| v.proposal == p.id)
            .fold(Vec::<&council::Vote>::new(), |mut acc, v| {
                // Latest vote per agent.
                acc.retain(|x| x.voter != v.voter);
                acc.push(v);
                acc
            })
            .iter()
            .map(|v| {
                format!(
                    "{} {} ({})",
                    v.voter,
                    match v.stance {
                        Stance::Approve => "approves",
                        Stance::Object => "objects",
                        Stance::Abstain => "abstains",
                    },
                    v.reason
                )
            })
            .collect();
        if !votes.is_empty() {
            info!("    {}", votes.join("; "));
        }
    }
    if d.passed.is_empty() {
        info!(
            "  outcome: nothing passed ({} round(s), {:?}, {} ms)",
            d.rounds, d.stop, d.wall_ms
        );
    } else {
        let passed: Vec<String> = d.passed.iter().map(|p| p.action.to_string()).collect();
        info!(
            "  outcome: {} ({} round(s), {} ms)",
            passed.join("; "),
            d.rounds,
            d.wall_ms
        );
    }
}

fn write_status(path: &Path, status: &DaemonStatus) -> Result<(), DaemonError> {
    let io = |source| DaemonError::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(status).expect("status serializes");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
