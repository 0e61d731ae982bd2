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
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use aya::maps::RingBuf;
use blocker_common::{config as slot, maps as map_names};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{
    DaemonError, RunOptions,
    journal_writer::spawn_journal,
    pipeline::{Finished, FloodMeter, Pipeline},
    signals::Signals,
    status::{CouncilStatus, DaemonStatus, InterfaceStatus, STATUS_FILE, write_status},
};
use crate::{
    clock, council,
    evidence::{self, alert::PipelineCounters},
    guard::Guard,
    incident::Tracker,
    kernel::{
        maps::Tables,
        pins::{self, Globals, PinDir},
        probes::{self, ProbeMode, ProbeStatus},
        sys,
        xdp::{self, Attached},
    },
    metrics::Metrics,
    state::{enforcer::Enforcer, journal::Store},
};

/// Runs the daemon until `signals` asks it to stop. A stop during
/// start-up ends it between two steps (and between reconciliation
/// batches), leaving at most what a normal stop leaves: pinned maps, and
/// XDP links that are attached and pinned; never a program on an interface
/// that no pin tracks. SIGHUP reloads what can change live ([`reload`](super::reload)).
pub async fn run(opts: RunOptions, mut signals: Signals) -> Result<(), DaemonError> {
    let cfg = &opts.config;
    pins::require_caps(pins::RUN_CAPS)?;
    // Cancelled on shutdown: debates in flight stop (nothing passes) and
    // their HTTP calls are dropped.
    let cancel = tokio_util::sync::CancellationToken::new();
    let council = Arc::new(council::build(&cfg.council)?.with_cancel(cancel.clone()));
    let guard = Guard::new(cfg.guard.clone()).map_err(DaemonError::Trusted)?;
    let pins = PinDir::new(&cfg.pin_dir);
    // Before anything is loaded or attached: a second daemon on the same
    // pins would swap its programs into the first one's links.
    pins.ensure()?;
    crate::state::journal::create_private_dir(&cfg.state_dir)?;
    let _lock = super::lock::DaemonLock::acquire(pins.path(), &cfg.state_dir)?;
    if stop_requested(&signals, || {
        "before loading: nothing was loaded or attached".into()
    }) {
        return Ok(());
    }

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
        let done: Vec<&str> = interfaces
            .iter()
            .map(|i: &InterfaceStatus| i.iface.as_str())
            .collect();
        if stop_requested(&signals, || attach_state(&done)) {
            return Ok(());
        }
        // attach_xdp attaches and pins in one step that no signal can cut
        // (the handlers only raise a flag).
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
    let all: Vec<&str> = opts.interfaces.iter().map(String::as_str).collect();
    if stop_requested(&signals, || attach_state(&all)) {
        return Ok(());
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
    // Two rings: the probes' (confirmed evidence) and XDP's zero-window-SYN
    // events (forgeable), so a spoofed flood fills only its own.
    let mut take_ring = |name: &'static str| {
        ebpf.take_map(name)
            .ok_or(DaemonError::MissingMap { name })
            .and_then(|m| RingBuf::try_from(m).map_err(|source| DaemonError::Map { name, source }))
    };
    let probe_ring = take_ring(map_names::EVENTS)?;
    let xdp_ring = take_ring(map_names::XDP_EVENTS)?;
    let tables = Tables::from_ebpf(&mut ebpf)?;
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
    enforcer.sync_active()?;
    enforcer.set_setting(slot::ZW_THRESHOLD, cfg.xdp.zero_window_threshold)?;
    if enforcer.store().is_some() {
        // Batched, checking for a stop between batches: a journal of a
        // million rules after a reboot takes a while.
        let stop = signals.flag();
        let report = enforcer.reconcile_until(&stop)?;
        log_some("restored", "from the journal", &report.restored);
        log_some("adopted", "into the journal", &report.adopted);
        // Reconciling a million rules leaves freed pages in glibc's arenas:
        // give them back, so the daemon's resident memory is what it holds.
        crate::kernel::sys::trim_heap();
        if report.interrupted {
            info!(
                "{} during start-up: stopping cleanly while reconciling; {}",
                signals.stopped_by(),
                attach_state(&all)
            );
            return Ok(());
        }
    }
    if stop_requested(&signals, || attach_state(&all)) {
        return Ok(());
    }

    // Sources → two bounded lanes, by evidence class: a flood of forgeable
    // evidence fills only its own lane, and the loop drains the confirmed
    // lane first.
    let counters = Arc::new(PipelineCounters::default());
    let (alert_tx, mut alert_rx) = evidence::alert::lanes(cfg.sources.queue);
    for ring in [probe_ring, xdp_ring] {
        tokio::spawn(evidence::probe::run(
            ring,
            alert_tx.clone(),
            counters.clone(),
        ));
    }
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

    // Metrics hang off this stage: the pipeline counts into them, the
    // kernel's figures are read from the pins at scrape time.
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = cfg
        .metrics
        .socket_addr()
        .map_err(DaemonError::MetricsAddr)?
    {
        let registry = metrics.registry(PinDir::new(&cfg.pin_dir), cfg.state_dir.clone());
        crate::metrics::serve::spawn(addr, metrics.clone(), registry).await?;
    }
    // Journal retention on its own thread and connection.
    let retention = {
        let m = metrics.clone();
        crate::state::retention::spawn(&cfg.state_dir, &cfg.journal, move |p| m.pruned(p))
    };
    // The CrowdSec bouncer: its own enforcer (pinned maps, its own journal
    // connection) on its own task, so a large decision list never runs on
    // the pipeline's task.
    let (crowdsec_status, push_tx) = if cfg.sources.crowdsec.enabled {
        match start_crowdsec(cfg, &pins, cancel.clone()) {
            Ok((status, push)) => (Some(status), push),
            Err(e) => {
                warn!("CrowdSec bouncer not started: {e}");
                (None, None)
            }
        }
    } else {
        (None, None)
    };

    // The fleet: peers' decisions come in on their own queue, own ones go
    // out through the link's outbox. Without [fleet] the queue stays empty.
    let (fleet_tx, mut fleet_rx) = mpsc::channel::<crate::fleet::link::Inbound>(1024);
    let fleet = if cfg.fleet.enabled {
        let db = cfg.state_dir.join(crate::state::journal::DB_FILE);
        let status = crate::fleet::SharedStatus::default();
        let link = crate::fleet::link::spawn(
            cfg.fleet.clone(),
            db.clone(),
            status.clone(),
            fleet_tx.clone(),
        )
        .await?;
        metrics.watch_fleet(status.clone());
        let journal = crate::fleet::link::open_journal(&db)?;
        info!(
            "fleet: node {} sharing verdicts on {} (stream {})",
            cfg.fleet.node_name(),
            cfg.fleet.servers.join(", "),
            cfg.fleet.stream
        );
        Some(super::pipeline::FleetSide {
            node: cfg.fleet.node_name(),
            link,
            status,
            journal,
        })
    } else {
        None
    };
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
        queue_shed: [[0; 4]; 2],
        flood: FloodMeter::default(),
        local_addrs: sys::local_addresses(),
        listening_ports: spawn_port_watcher(),
        block_fill: HashMap::new(),
        gc_status: super::gc::GcStatus::default(),
        done_tx,
        journal_tx,
        metrics,
        interfaces: opts.interfaces.clone(),
        crowdsec_status,
        push_tx,
        fleet,
        reload: opts.reload.clone(),
        cancel: cancel.clone(),
    };
    // The file's [guard] allowlist into the kernel allowlist.
    p.sync_config_allowlist();
    p.heartbeat();
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

    // Expired rules are found off this task (a walk of every map) and
    // removed here a chunk at a time; without the scanner they stay
    // unenforced in their slots until a restart reconciles them.
    let (mut gc_found, gc_closed) = match super::gc::spawn_scanner(&pins, cfg.daemon.gc_interval) {
        Ok(rx) => (rx, false),
        Err(e) => {
            warn!(
                "garbage collection of expired rules is off: {e}; expired rules are not enforced, but keep their slots until a restart"
            );
            p.gc_status.error = Some(e);
            (tokio::sync::mpsc::channel(1).1, true)
        }
    };
    let mut gc = tokio::time::interval(cfg.daemon.gc_interval);
    gc.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = signals.stop.clone();
    // Turns since the last collection step: under a sustained stream of
    // confirmed evidence the biased select below never reaches collection,
    // so every GC_EVERY-th turn takes a waiting chunk first (a ban then
    // waits behind at most one chunk, as it may anyway).
    const GC_EVERY: u32 = 8;
    let mut since_gc = 0u32;
    loop {
        since_gc += 1;
        if since_gc >= GC_EVERY && !gc_closed {
            since_gc = 0;
            if let Ok(found) = gc_found.try_recv() {
                p.on_gc_found(found);
            }
        }
        // Biased, in this order: a stop, confirmed evidence, finished
        // debates, the fleet, the clocks, and forgeable evidence last, so
        // a flood of the latter only ever waits behind everything else.
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(alert) = alert_rx.confirmed.recv() => p.on_alert(alert),
            Some(done) = done_rx.recv() => p.on_debate(done),
            Some(()) = signals.reload.recv() => p.on_reload(),
            Some(inbound) = fleet_rx.recv() => p.on_fleet(inbound),
            _ = tick.tick() => {
                p.on_tick();
                p.fill_status(&mut status);
                status.council.llm_budget = p.council.budget_status();
                if let Ok(r) = retention.lock() {
                    status.journal = r.clone();
                }
                if let Err(e) = write_status(&status_path, &status) {
                    warn!("{e}");
                }
            }
            _ = gc.tick() => p.on_gc(),
            Some(found) = gc_found.recv(), if !gc_closed => {
                since_gc = 0;
                p.on_gc_found(found);
            }
            Some(alert) = alert_rx.forgeable.recv() => p.on_alert(alert),
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

/// Whether a stop was requested during start-up; if so, says so with
/// what the daemon leaves behind.
fn stop_requested(signals: &Signals, leaves: impl FnOnce() -> String) -> bool {
    if !signals.stopping() {
        return false;
    }
    info!(
        "{} during start-up: stopping cleanly; {}",
        signals.stopped_by(),
        leaves()
    );
    true
}

/// What a stop leaves, with XDP attached (and pinned) on `done`.
fn attach_state(done: &[&str]) -> String {
    if done.is_empty() {
        "the maps are pinned, XDP is attached nowhere".into()
    } else {
        format!(
            "XDP stays attached and pinned on {} as after a normal stop (remove it with `blocker detach`)",
            done.join(", ")
        )
    }
}

/// Logs up to 20 rules by name, then how many more.
fn log_some(what: &str, whence: &str, rules: &crate::state::enforcer::Names) {
    for r in &rules.first {
        info!("{what} {r} {whence}");
    }
    if rules.len() > rules.first.len() {
        info!(
            "... and {} more {what} {whence}",
            rules.len() - rules.first.len()
        );
    }
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

/// Starts the CrowdSec bouncer with an enforcer of its own.
fn start_crowdsec(
    cfg: &crate::config::Config,
    pins: &PinDir,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<super::crowdsec::Spawned, super::crowdsec::StartError> {
    use super::crowdsec::StartError;
    let tables = crate::kernel::maps::Tables::open(pins)?;
    let store =
        crate::state::journal::Store::open_in(&cfg.state_dir).map_err(StartError::Journal)?;
    let enforcer =
        crate::state::enforcer::Enforcer::new(tables, store).with_when_full(cfg.maps.when_full);
    let guard = crate::guard::Guard::new(cfg.guard.clone()).map_err(StartError::Guard)?;
    super::crowdsec::spawn(
        &cfg.sources.crowdsec,
        enforcer,
        guard,
        crate::kernel::sys::local_addresses(),
        cfg.daemon.dry_run,
        cancel,
    )
}
