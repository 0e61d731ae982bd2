//! Scheduling: alerts become incidents, incidents become debates (at most
//! one per peer, a bounded number at once, the rest queued), and finished
//! debates go through the guard to the enforcer. One task owns all of it,
//! so no locks are needed; debates run as their own tasks and report back.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{
    crowdsec, gc,
    journal_writer::JournalEntry,
    narrate::narrate,
    status::{CouncilStatus, DaemonStatus, IncidentStatus, LatencyStatus, ShedStatus},
};
use crate::{
    addr, clock,
    config::Config,
    council::{
        self, Action, Brief, Council, Debate, Draft,
        facts::{BanHistory, FactSources, gather_facts},
    },
    evidence::alert::{Alert, AlertKind, AlertSource, EvidenceClass, PipelineCounters},
    fleet::{self, Decision, PolicyRefusal, link::Inbound},
    guard::{self, Guard},
    incident::{Incident, IncidentView, Tracker, Trigger},
    kernel::{
        maps::{RuleTables, Tables, block_fill, live_allowlist},
        probes::ProbeStatus,
        sys,
    },
    metrics::{AlertLabels, ListLabels, Metrics, Readiness, RuleLabels, ShedLabels, SourceLabels},
    rule::List,
    state::enforcer::{Change, Enforcer},
    verdict::{Outcome, execute, reason_code},
};

/// A finished debate on its way back to the pipeline.
pub(super) struct Finished {
    pub(super) trigger: Trigger,
    pub(super) debate: Debate,
    /// CLOCK_BOOTTIME when the debate task finished.
    pub(super) finished_ns: u64,
}

/// Where the time between the kernel's evidence and the map entry went.
#[derive(Clone, Copy)]
pub(super) struct LatencySample {
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
pub(super) struct FloodMeter {
    last_total: Option<(u64, Instant)>,
    rate: u64,
    recent: HashMap<IpAddr, u64>,
}

/// Bound on remembered flood sources (a spoofed flood has millions).
const MAX_FLOOD_SOURCES: usize = 100_000;
/// Queued debate triggers at most. When full, the oldest of the lowest
/// priority ([`priority`]) is shed, or the newcomer if it ranks below
/// everything queued: a flood of forgeable incidents never sheds a
/// confirmed one.
const MAX_QUEUED_DEBATES: usize = 1024;
/// Latency samples kept for the status percentiles.
const MAX_LATENCIES: usize = 10_000;

pub(super) struct Pipeline<T: RuleTables = Tables> {
    pub(super) cfg: Config,
    pub(super) enforcer: Enforcer<T>,
    pub(super) guard: Guard,
    pub(super) tracker: Tracker,
    pub(super) council: Arc<Council>,
    pub(super) probe_status: ProbeStatus,
    pub(super) counters: Arc<PipelineCounters>,
    pub(super) council_status: CouncilStatus,
    /// Kernel event → map entry, by stage.
    pub(super) latencies: VecDeque<LatencySample>,
    pub(super) inflight: HashSet<IpAddr>,
    pub(super) queue: VecDeque<Trigger>,
    /// Triggers shed from the full debate queue, by evidence class and
    /// source ([`EvidenceClass::index`], [`AlertSource::index`]).
    pub(super) queue_shed: [[u64; 4]; 2],
    pub(super) flood: FloodMeter,
    pub(super) local_addrs: Vec<IpAddr>,
    /// TCP ports we listen on. Reading /proc/net/tcp walks the whole TCP
    /// hash table (10-25 ms here), so a background task refreshes this
    /// every 10 s instead of every debate paying for it.
    pub(super) listening_ports: Arc<std::sync::Mutex<Vec<u16>>>,
    /// Entries per exact blocklist map (refreshed by GC), for the filter agent.
    pub(super) block_fill: HashMap<&'static str, u64>,
    /// Expired-rule collection so far.
    pub(super) gc_status: gc::GcStatus,
    pub(super) done_tx: mpsc::Sender<Finished>,
    pub(super) journal_tx: mpsc::Sender<JournalEntry>,
    pub(super) metrics: Arc<Metrics>,
    /// The interfaces XDP must stay attached to (readiness).
    pub(super) interfaces: Vec<String>,
    pub(super) crowdsec_status: Option<Arc<std::sync::Mutex<crowdsec::CrowdsecStatus>>>,
    /// Kernel-confirmed bans to push to CrowdSec, when pushing is on.
    pub(super) push_tx: Option<mpsc::Sender<crowdsec::PushItem>>,
    /// The fleet, when `[fleet] enabled`.
    pub(super) fleet: Option<FleetSide>,
    /// Where SIGHUP reads the configuration again, if from a file.
    pub(super) reload: Option<super::reload::Reload>,
    /// Cancels debates in flight at shutdown (councils built on reload
    /// get it too).
    pub(super) cancel: tokio_util::sync::CancellationToken,
}

/// The pipeline's end of the fleet: where own decisions go, the status the
/// link shares, and a journal connection for received decisions.
pub(super) struct FleetSide {
    pub(super) node: String,
    pub(super) link: fleet::link::Link,
    pub(super) status: fleet::SharedStatus,
    pub(super) journal: rusqlite::Connection,
}

/// What became of a peer's decision: outcome (`applied`, `refused`,
/// `failed`, `dry-run`), why, and the rules row an applied block wrote.
type ExternalOutcome = (&'static str, Option<String>, Option<i64>);

fn refused(why: String) -> ExternalOutcome {
    ("refused", Some(why), None)
}

impl<T: RuleTables> Pipeline<T> {
    pub(super) fn on_alert(&mut self, alert: Alert) {
        let now = clock::boottime_ns();
        if alert.kind == AlertKind::ZeroWindowSyn && self.flood.recent.len() < MAX_FLOOD_SOURCES {
            self.flood.recent.insert(addr::canonical(alert.peer), now);
        }
        self.metrics
            .alerts
            .get_or_create(&AlertLabels {
                source: alert.source.as_str(),
                kind: alert.kind.as_str(),
            })
            .inc();
        let source = alert.source.as_str();
        let opened = self.tracker.counters.opened;
        let mut closed = Vec::new();
        let trigger = self.tracker.ingest(alert, now, &mut closed);
        if self.tracker.counters.opened > opened {
            self.metrics
                .incidents
                .get_or_create(&SourceLabels { source })
                .inc();
        }
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
                    // The oldest of the lowest priority goes, unless the
                    // newcomer ranks below everything queued.
                    let lowest = self
                        .queue
                        .iter()
                        .enumerate()
                        .min_by_key(|(i, q)| (priority(&q.view), *i))
                        .map(|(i, q)| (i, priority(&q.view)));
                    match lowest {
                        Some((i, rank)) if rank <= priority(&t.view) => {
                            let shed = self.queue.remove(i).expect("index from enumerate");
                            self.shed_trigger(&shed);
                        }
                        _ => {
                            self.shed_trigger(&t);
                            return;
                        }
                    }
                }
                self.queue.push_back(t);
            }
            return;
        }
        self.launch(t);
    }

    /// Counts a trigger shed from the full debate queue.
    fn shed_trigger(&mut self, t: &Trigger) {
        let (class, source) = class_and_source(&t.view);
        self.council_status.queue_dropped += 1;
        self.queue_shed[class.index()][source.index()] += 1;
        self.metrics
            .evidence_shed
            .get_or_create(&ShedLabels {
                stage: "debate-queue",
                class: class.as_str(),
                source: source.as_str(),
            })
            .inc();
    }

    /// Brings the intake's shed counters (kept by the sources, which know
    /// nothing of metrics) into the metrics family.
    fn sync_intake_shed(&self) {
        for (class, source, n) in self.counters.shed() {
            let c = self.metrics.evidence_shed.get_or_create(&ShedLabels {
                stage: "intake",
                class: class.as_str(),
                source: source.as_str(),
            });
            c.inc_by(n.saturating_sub(c.get()));
        }
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
            // Highest priority first, oldest first within it.
            let Some(pos) = self
                .queue
                .iter()
                .enumerate()
                .filter(|(_, t)| !self.inflight.contains(&t.view.peer))
                .max_by_key(|(i, t)| (priority(&t.view), std::cmp::Reverse(*i)))
                .map(|(i, _)| i)
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
                history: self.enforcer.store().map(|s| s as &dyn BanHistory),
                trusted: &self.cfg.guard.trusted_nets().unwrap_or_default(),
                local_addrs: &self.local_addrs,
                listening_ports: &ports,
                probes: &self.probe_status.active,
                zero_window_syn_rate: self.flood.rate,
                zero_window_sources_recent: self.flood.recent.len() as u64,
                block_fill: &self.block_fill,
            },
        )
    }

    pub(super) fn on_debate(&mut self, done: Finished) {
        let Finished {
            trigger,
            debate,
            finished_ns,
        } = done;
        self.inflight.remove(&trigger.view.peer);
        self.council_status.debates += 1;
        self.metrics.debate(&debate);
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
                    crate::text::clean_justification(&d.justification),
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
        let confirmed = view.confirmed();
        let ctx = guard::Context {
            evidence: &evidence,
            confirmed: &confirmed,
            policy_secs_left: crate::council::facts::zero_window_policy_secs_left(Some(
                self.enforcer.tables(),
            )),
            local: &self.local_addrs,
            allowlist: &allowlist,
        };
        let reason = reason_code(view);
        let evicted = self.enforcer.evicted;
        let enforcer = (!self.cfg.daemon.dry_run).then_some(&mut self.enforcer);
        let outcome = execute(enforcer, &mut self.guard, &ctx, view, draft, reason);
        self.metrics.verdict(&draft.action, &outcome);
        if self.enforcer.evicted > evicted {
            self.metrics
                .rules_evicted
                .get_or_create(&RuleLabels {
                    list: List::Block.as_str(),
                    origin: "council".into(),
                })
                .inc_by(self.enforcer.evicted - evicted);
        }
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
                    self.metrics
                        .rules_added
                        .get_or_create(&RuleLabels {
                            list: List::Block.as_str(),
                            origin: "council".into(),
                        })
                        .inc();
                    self.metrics
                        .evidence_to_ban_seconds
                        .observe(latency as f64 / 1e9);
                    self.tracker.resolve(view.peer);
                    let _ = self.enforcer.forget_zero_window(view.peer);
                    if self.latencies.len() >= MAX_LATENCIES {
                        self.latencies.pop_front();
                    }
                    self.latencies.push_back(sample);
                    self.push(view, *target, *ttl_secs);
                    if let Some(f) = &self.fleet {
                        // Only what this node decided and applied is
                        // shared; received decisions never come this way.
                        let digest: Vec<String> = view
                            .by_kind
                            .iter()
                            .map(|(k, n)| format!("{}×{n}", k.as_str()))
                            .collect();
                        let d = Decision::block(
                            &f.node,
                            *target,
                            Duration::from_secs(*ttl_secs),
                            reason,
                            &draft.justification,
                            &format!("incident #{}: {}", view.id, digest.join(", ")),
                        );
                        if f.link.publish.try_send(d).is_err() {
                            warn!(
                                "fleet: the publisher is behind; {} is not shared",
                                addr::display(target)
                            );
                        }
                    }
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

    /// Hands a kernel-confirmed ban to the CrowdSec pusher (never waits:
    /// a full queue drops the alert and counts it).
    fn push(&self, view: &IncidentView, target: ipnet::IpNet, ttl_secs: u64) {
        let (Some(tx), Some(scenario)) = (&self.push_tx, crowdsec::scenario_of(view)) else {
            return;
        };
        if !addr::is_host(&target) {
            return;
        }
        let item = crowdsec::PushItem {
            peer: target.addr(),
            scenario,
            message: format!(
                "{} banned by blocker for {}s on kernel evidence ({scenario}, incident #{})",
                target.addr(),
                ttl_secs,
                view.id
            ),
            ttl: Duration::from_secs(ttl_secs),
            at: SystemTime::now(),
            events: view.alert_count,
        };
        if tx.try_send(item).is_err()
            && let Some(st) = &self.crowdsec_status
            && let Ok(mut st) = st.lock()
        {
            st.push.dropped += 1;
        }
    }

    /// A batch of peers' decisions, in stream order: the policy, then this
    /// node's guard, then the enforcer; journaled with their origin
    /// whatever the outcome (one transaction for the batch), and never
    /// published again. `done` is answered after the journal commit, so
    /// the link acknowledges only what is on disk.
    pub(super) fn on_fleet(&mut self, inbound: Inbound) {
        let Inbound { decisions, done } = inbound;
        let Some(f) = self.fleet.as_ref() else {
            return;
        };
        // Redeliveries (we crashed before the ack) were handled already;
        // so was a second copy inside the batch.
        let mut ids = HashSet::new();
        let fresh: Vec<Decision> = decisions
            .into_iter()
            .filter(|d| {
                !fleet::journal::seen(&f.journal, &d.id).unwrap_or(false)
                    && ids.insert(d.id.clone())
            })
            .collect();
        let outcomes = self.apply_external(&fresh);
        let f = self.fleet.as_ref().expect("checked above");
        let rows: Vec<fleet::journal::Received<'_>> = fresh
            .iter()
            .zip(&outcomes)
            .map(|(d, (outcome, detail, rule_id))| fleet::journal::Received {
                decision: d,
                outcome,
                detail: detail.as_deref(),
                rule_id: *rule_id,
            })
            .collect();
        if let Err(e) = fleet::journal::record_received_all(&f.journal, &rows) {
            warn!(
                "fleet: could not journal {} received decisions: {e}",
                rows.len()
            );
        }
        let now = fleet::decision::unix_ms(SystemTime::now());
        {
            let mut s = f.status.lock().expect("status lock");
            for (d, (outcome, _, _)) in fresh.iter().zip(&outcomes) {
                let c = s.origins.entry(d.origin.clone()).or_default();
                c.received += 1;
                if *outcome == "applied" {
                    c.applied += 1;
                    let ms = now.saturating_sub(d.issued_at_ms).max(0) as f64;
                    s.propagation.add(ms);
                    self.metrics.fleet_propagation_seconds.observe(ms / 1e3);
                } else {
                    c.refused += 1;
                }
            }
        }
        for (d, (outcome, detail, _)) in fresh.iter().zip(&outcomes) {
            if *outcome == "applied" && d.kind == fleet::Kind::Block {
                self.metrics
                    .rules_added
                    .get_or_create(&RuleLabels {
                        list: List::Block.as_str(),
                        origin: format!("fleet:{}", d.origin),
                    })
                    .inc();
            }
            match detail {
                Some(why) => warn!("fleet: {outcome} {}: {why}", d.describe()),
                None => info!("fleet: {outcome} {}", d.describe()),
            }
        }
        let _ = done.send(());
    }

    /// What becomes of each decision of `ds`, in order. Consecutive blocks
    /// that pass the policy and the guard are written together (one journal
    /// commit); an unblock first writes the blocks before it, so a block
    /// then its unblock in one batch end lifted, as they would one by one.
    fn apply_external(&mut self, ds: &[Decision]) -> Vec<ExternalOutcome> {
        let mut out: Vec<Option<ExternalOutcome>> = vec![None; ds.len()];
        // The allowlist is the same for the whole batch: decisions from
        // peers never touch it.
        let allowlist = live_allowlist(Some(self.enforcer.tables()));
        let mut blocks: Vec<(usize, Duration)> = Vec::new();
        for (i, d) in ds.iter().enumerate() {
            let ttl = match self.cfg.fleet.policy.check(
                d,
                SystemTime::now(),
                self.cfg.fleet.max_clock_skew,
            ) {
                Ok(t) => t,
                Err(e) => {
                    out[i] = Some(refused(e.to_string()));
                    continue;
                }
            };
            match (d.kind, ttl) {
                (fleet::Kind::Block, Some(ttl)) => {
                    // No incident here: the guard's external entry point
                    // checks the target against this node's allowlist,
                    // trusted list, own addresses, special ranges, width
                    // and TTL bounds (the peer's text is data: sanitized,
                    // journaled, never run).
                    let ctx = guard::ExternalContext {
                        local: &self.local_addrs,
                        allowlist: &allowlist,
                    };
                    match self.guard.check_external(d.target, Some(ttl), &ctx) {
                        Ok(()) => blocks.push((i, ttl)),
                        Err(r) => out[i] = Some(refused(format!("guard: {r}"))),
                    }
                }
                (fleet::Kind::Unblock, _) => {
                    self.write_blocks(ds, &mut blocks, &mut out);
                    out[i] = Some(self.unblock_external(d));
                }
                (fleet::Kind::Block, None) => {
                    out[i] = Some(refused("a block without an expiry".into()));
                }
            }
        }
        self.write_blocks(ds, &mut blocks, &mut out);
        out.into_iter()
            .map(|o| o.expect("every decision has an outcome"))
            .collect()
    }

    /// Writes the blocks that passed the checks, in one journal commit.
    fn write_blocks(
        &mut self,
        ds: &[Decision],
        blocks: &mut Vec<(usize, Duration)>,
        out: &mut [Option<ExternalOutcome>],
    ) {
        if blocks.is_empty() {
            return;
        }
        if self.cfg.daemon.dry_run {
            for (i, _) in blocks.drain(..) {
                out[i] = Some(("dry-run", None, None));
            }
            return;
        }
        let sources: Vec<String> = blocks
            .iter()
            .map(|(i, _)| format!("fleet:{}", ds[*i].origin))
            .collect();
        let changes: Vec<Change<'_>> = blocks
            .iter()
            .zip(&sources)
            .map(|((i, ttl), source)| Change {
                list: List::Block,
                net: ds[*i].target,
                ttl: Some(*ttl),
                reason: &ds[*i].reason,
                reason_code: ds[*i].reason_code,
                source,
            })
            .collect();
        match self.enforcer.add_many(&changes) {
            Ok(results) => {
                for ((i, _), r) in blocks.iter().zip(results) {
                    out[*i] = Some(match r {
                        Ok(a) => ("applied", None, Some(a.record_id)),
                        Err(e) => ("failed", Some(e.to_string()), None),
                    });
                }
            }
            Err(e) => {
                for (i, _) in blocks.iter() {
                    out[*i] = Some(("failed", Some(e.to_string()), None));
                }
            }
        }
        blocks.clear();
    }

    /// A peer lifts one of its own bans (never another origin's).
    fn unblock_external(&mut self, d: &Decision) -> ExternalOutcome {
        let source = format!("fleet:{}", d.origin);
        let theirs = self
            .enforcer
            .store()
            .and_then(|s| s.active(List::Block, d.target).ok().flatten())
            .is_some_and(|r| r.source == source);
        if !theirs {
            return refused(
                PolicyRefusal::NotTheirs {
                    target: addr::display(&d.target),
                    origin: d.origin.clone(),
                }
                .to_string(),
            );
        }
        if self.cfg.daemon.dry_run {
            return ("dry-run", None, None);
        }
        match self.enforcer.remove(List::Block, d.target, &source) {
            Ok(_) => ("applied", None, None),
            Err(e) => ("failed", Some(e.to_string()), None),
        }
    }

    pub(super) fn on_tick(&mut self) {
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
        self.sync_intake_shed();
        self.heartbeat();
    }

    /// Liveness and readiness for the metrics endpoint.
    pub(super) fn heartbeat(&self) {
        self.metrics.heartbeat(Readiness {
            interfaces: self.interfaces.clone(),
            pin_dir: self.cfg.pin_dir.clone(),
            journal_error: self.enforcer.journal_error().map(str::to_owned),
            probe_mode: self.probe_status.active.clone(),
        });
    }

    /// What the garbage-collection scanner found (`daemon::gc`): one chunk
    /// of expired rules removed, or the tables' fill.
    pub(super) fn on_gc_found(&mut self, found: gc::Found) {
        let expired = match found {
            gc::Found::Fill(fill) => {
                self.block_fill = fill;
                return;
            }
            gc::Found::Expired(candidates) => candidates,
        };
        let started = Instant::now();
        match self.enforcer.expire(&expired) {
            Ok(removed) => {
                for list in [List::Allow, List::Block] {
                    let n = removed.iter().filter(|r| r.list == list).count();
                    if n > 0 {
                        self.metrics
                            .rules_expired
                            .get_or_create(&ListLabels {
                                list: list.as_str(),
                            })
                            .inc_by(n as u64);
                    }
                }
                // One line per rule while they are few; 100k expiring at
                // once get one line per chunk, not 100k lines.
                if removed.len() <= 8 {
                    for rule in &removed {
                        info!(
                            "{} rule for {} expired and was removed",
                            rule.list.as_str(),
                            addr::display(&rule.net)
                        );
                    }
                } else {
                    let sample: Vec<String> = removed
                        .iter()
                        .take(3)
                        .map(|r| addr::display(&r.net))
                        .collect();
                    info!(
                        "{} rules expired and were removed ({}, …)",
                        removed.len(),
                        sample.join(", ")
                    );
                }
                self.gc_status.expired += removed.len() as u64;
            }
            Err(e) => warn!("garbage collection failed: {e}"),
        }
        self.gc_status.steps += 1;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        self.gc_status.max_step_ms = self.gc_status.max_step_ms.max(ms);
    }

    /// The periodic clean-up the pipeline does itself (the fleet's journal).
    pub(super) fn on_gc(&mut self) {
        if let Some(f) = &self.fleet {
            match fleet::journal::prune(&f.journal, SystemTime::now(), self.cfg.fleet.keep) {
                Ok(p) if p.outbox + p.received > 0 => {
                    for (table, n) in [("fleet_outbox", p.outbox), ("fleet_received", p.received)] {
                        self.metrics
                            .journal_pruned
                            .get_or_create(&crate::metrics::TableLabels { table })
                            .inc_by(n as u64);
                    }
                    info!(
                        "fleet: pruned {} published outbox rows and {} received decisions no longer in force",
                        p.outbox, p.received
                    );
                }
                Ok(_) => {}
                Err(e) => warn!("fleet: pruning the journal failed: {e}"),
            }
        }
    }

    pub(super) fn refresh_fill(&mut self) {
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
            self.metrics.journal_dropped.inc();
        }
    }

    pub(super) fn fill_status(&self, s: &mut DaemonStatus) {
        s.updated_at = clock::rfc3339(SystemTime::now());
        s.probes = self.probe_status.clone();
        s.alerts = self.counters.snapshot();
        s.shed = self
            .counters
            .shed()
            .into_iter()
            .map(|(class, source, count)| ShedStatus {
                stage: "intake".into(),
                class,
                source,
                count,
            })
            .chain(EvidenceClass::ALL.into_iter().flat_map(|class| {
                AlertSource::ALL.into_iter().filter_map(move |source| {
                    let count = self.queue_shed[class.index()][source.index()];
                    (count > 0).then(|| ShedStatus {
                        stage: "debate-queue".into(),
                        class,
                        source,
                        count,
                    })
                })
            }))
            .collect();
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
        if let Some(f) = &self.fleet {
            s.fleet = f.status.lock().expect("status lock").clone();
        }
        s.gc = self.gc_status.clone();
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
        s.crowdsec = self
            .crowdsec_status
            .as_ref()
            .and_then(|c| c.lock().ok().map(|c| c.clone()));
    }
}

/// Debate priority: confirmed evidence first, then global incidents (a
/// policy switch protects everyone at once), then forgeable per-source
/// incidents (which end in `watch` anyway).
fn priority(view: &IncidentView) -> u8 {
    if !view.confirmed().is_empty() {
        2
    } else if view.is_global() {
        1
    } else {
        0
    }
}

/// The evidence class of an incident (confirmed if any of its evidence is)
/// and the source of its first alert, for the shed counters.
fn class_and_source(view: &IncidentView) -> (EvidenceClass, AlertSource) {
    let class = if view.confirmed().is_empty() {
        EvidenceClass::Forgeable
    } else {
        EvidenceClass::Confirmed
    };
    let source = view.evidence.first().map_or(AlertSource::Xdp, |a| a.source);
    (class, source)
}

#[cfg(test)]
mod tests {
    //! The pipeline against in-memory tables (`kernel::fake`), the offline
    //! council and a real SQLite journal in a temporary directory: no BPF,
    //! no root.

    use std::{
        path::PathBuf,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use blocker_common::config as slot;

    use super::*;
    use crate::{kernel::fake::FakeTables, rule::List, state::journal::Store};

    /// A state directory for one test, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "blocker-pipeline-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    struct Harness {
        p: Pipeline<FakeTables>,
        done: mpsc::Receiver<Finished>,
        _journal: mpsc::Receiver<JournalEntry>,
        _dir: TempDir,
    }

    fn harness(cfg: Config, tables: FakeTables) -> Harness {
        let dir = TempDir::new();
        let enforcer = Enforcer::new(tables, Store::open_in(&dir.0).unwrap());
        let (done_tx, done) = mpsc::channel(64);
        let (journal_tx, journal) = mpsc::channel(4096);
        let p = Pipeline {
            tracker: Tracker::new(cfg.incidents.clone(), 1),
            guard: Guard::new(cfg.guard.clone()).unwrap(),
            council: Arc::new(council::build(&cfg.council).unwrap()),
            enforcer,
            probe_status: ProbeStatus::default(),
            counters: Arc::default(),
            council_status: CouncilStatus::default(),
            latencies: VecDeque::new(),
            inflight: HashSet::new(),
            queue: VecDeque::new(),
            queue_shed: [[0; 4]; 2],
            flood: FloodMeter::default(),
            local_addrs: Vec::new(),
            listening_ports: Arc::default(),
            block_fill: HashMap::new(),
            gc_status: gc::GcStatus::default(),
            done_tx,
            journal_tx,
            metrics: Arc::default(),
            interfaces: Vec::new(),
            crowdsec_status: None,
            push_tx: None,
            fleet: None,
            reload: None,
            cancel: tokio_util::sync::CancellationToken::new(),
            cfg,
        };
        Harness {
            p,
            done,
            _journal: journal,
            _dir: dir,
        }
    }

    fn treason(peer: &str) -> Alert {
        Alert {
            source: AlertSource::Probe,
            kind: AlertKind::TreasonRetransmit,
            peer: peer.parse().unwrap(),
            peer_port: Some(40000),
            local: None,
            local_port: Some(8080),
            observed_ns: clock::boottime_ns(),
            signature: "treason-retransmit".into(),
            count: 1,
            tcp: None,
            ids: None,
        }
    }

    /// A council draft banning `target` for an hour.
    fn block_1h(target: &str) -> Draft {
        Draft {
            action: Action::Block {
                target: net(target),
                ttl_secs: 3600,
            },
            justification: "it shrank its window to zero".into(),
        }
    }

    fn net(s: &str) -> ipnet::IpNet {
        addr::parse_net(s).unwrap()
    }

    /// Waits for the next finished debate (generous: the offline council
    /// takes milliseconds, but the machine may be loaded).
    async fn next(done: &mut mpsc::Receiver<Finished>) -> Finished {
        tokio::time::timeout(Duration::from_secs(30), done.recv())
            .await
            .expect("a debate finished within 30 s")
            .expect("the pipeline holds a sender")
    }

    #[tokio::test]
    async fn gc_removes_what_expired_and_keeps_a_rule_renewed_since_the_scan() {
        let mut tables = FakeTables::default();
        let expired = blocker_common::RuleEntry {
            expires_at_ns: 1,
            ..Default::default()
        };
        for (list, n) in [
            (List::Block, "198.18.0.5/32"),
            (List::Block, "198.18.1.0/24"),
            (List::Allow, "198.18.2.0/24"),
            (List::Block, "198.18.0.6/32"),
        ] {
            tables.rules.insert((list, net(n)), expired);
        }
        let mut h = harness(Config::default(), tables);
        let mut scan = h.p.enforcer.tables().expired(clock::boottime_ns()).unwrap();
        assert_eq!(scan.expired.len(), 4);
        assert_eq!(scan.fill[blocker_common::maps::BLOCK_V4], 2);
        // Renewed after the scan (a new ban of the same address): live now.
        h.p.enforcer.tables_mut().rules.insert(
            (List::Block, net("198.18.0.6/32")),
            blocker_common::RuleEntry {
                expires_at_ns: clock::boottime_ns() + 3_600_000_000_000,
                ..Default::default()
            },
        );
        scan.expired.push((List::Block, net("198.18.7.7/32")));
        h.p.on_gc_found(gc::Found::Expired(scan.expired));
        let left: Vec<_> = h.p.enforcer.tables().rules.keys().copied().collect();
        assert_eq!(left, [(List::Block, net("198.18.0.6/32"))]);
        assert_eq!((h.p.gc_status.expired, h.p.gc_status.steps), (3, 1));
        h.p.on_gc_found(gc::Found::Fill(HashMap::from([(
            blocker_common::maps::BLOCK_V4,
            1,
        )])));
        assert_eq!(h.p.block_fill[blocker_common::maps::BLOCK_V4], 1);
    }

    #[tokio::test]
    async fn a_treason_alert_becomes_a_ban_in_the_tables() {
        let mut tables = FakeTables::default();
        tables.zero_window.insert("198.18.0.2".parse().unwrap());
        let mut h = harness(Config::default(), tables);
        h.p.on_alert(treason("198.18.0.2"));
        assert_eq!(h.p.inflight.len(), 1, "one debate launched");
        let done = next(&mut h.done).await;
        h.p.on_debate(done);

        let rule = h.p.enforcer.tables().rules[&(List::Block, net("198.18.0.2/32"))];
        assert!(
            rule.expires_at_ns > clock::boottime_ns(),
            "a ban with a TTL"
        );
        assert_eq!(rule.reason, blocker_common::reason::TREASON);
        assert_eq!(h.p.council_status.applied, 1);
        assert_eq!(
            (h.p.council_status.refused, h.p.council_status.failed),
            (0, 0)
        );
        assert!(h.p.inflight.is_empty());
        assert_eq!(h.p.latencies.len(), 1, "the ban's latency is sampled");
        assert!(
            h.p.enforcer.tables().zero_window.is_empty(),
            "the banned source's zero-window count is forgotten"
        );
        // The incident is resolved: the same evidence again starts no debate.
        h.p.on_alert(treason("198.18.0.2"));
        assert!(h.p.inflight.is_empty() && h.p.queue.is_empty());
    }

    #[tokio::test]
    async fn one_debate_per_peer_and_at_most_max_concurrent() {
        let mut cfg = Config::default();
        cfg.council.max_concurrent = 1;
        let mut h = harness(cfg, FakeTables::default());
        h.p.on_alert(treason("198.18.0.2"));
        h.p.on_alert(treason("198.18.0.3"));
        h.p.on_alert(treason("198.18.0.4"));
        assert_eq!(h.p.inflight.len(), 1);
        assert_eq!(h.p.queue.len(), 2, "the others wait");
        // A new trigger for a queued peer replaces its queued one.
        let mut again = treason("198.18.0.3");
        again.kind = AlertKind::TreasonProbe;
        again.signature = "treason-probe".into();
        h.p.on_alert(again);
        assert_eq!(h.p.queue.len(), 2, "replaced, not appended");

        for _ in 0..3 {
            let done = next(&mut h.done).await;
            h.p.on_debate(done);
            assert!(h.p.inflight.len() <= 1);
        }
        assert!(h.p.queue.is_empty());
        let banned: Vec<_> = h.p.enforcer.tables().rules.keys().cloned().collect();
        assert_eq!(
            banned,
            ["198.18.0.2/32", "198.18.0.3/32", "198.18.0.4/32"]
                .map(|n| (List::Block, net(n)))
                .to_vec()
        );
        assert_eq!(h.p.council_status.debates, 3);
    }

    #[tokio::test]
    async fn the_queue_is_bounded() {
        let mut cfg = Config::default();
        cfg.council.max_concurrent = 1;
        let mut h = harness(cfg, FakeTables::default());
        for i in 0..(MAX_QUEUED_DEBATES as u32 + 3) {
            let a = std::net::Ipv4Addr::from(u32::from_be_bytes([198, 18, 0, 0]) + i);
            h.p.on_alert(treason(&a.to_string()));
        }
        assert_eq!(h.p.inflight.len(), 1);
        assert_eq!(h.p.queue.len(), MAX_QUEUED_DEBATES);
        assert_eq!(h.p.council_status.queue_dropped, 2);
    }

    /// A Suricata alert on UDP: no handshake, so its source is forgeable.
    fn udp_ids(peer: &str) -> Alert {
        Alert {
            source: AlertSource::Suricata,
            kind: AlertKind::Ids,
            peer: peer.parse().unwrap(),
            peer_port: Some(53),
            local: None,
            local_port: Some(53),
            observed_ns: clock::boottime_ns(),
            signature: "2100001".into(),
            count: 1,
            tcp: None,
            ids: Some(crate::evidence::alert::IdsFacts {
                signature_id: 2_100_001,
                signature: "ET DNS flood".into(),
                severity: 1,
                proto: "UDP".into(),
                established: false,
                ..Default::default()
            }),
        }
    }

    #[tokio::test]
    async fn a_forgeable_flood_never_sheds_a_confirmed_incident() {
        let mut cfg = Config::default();
        cfg.council.max_concurrent = 1;
        let mut h = harness(cfg, FakeTables::default());
        let flood = MAX_QUEUED_DEBATES as u32 + 10;
        for i in 0..flood {
            let a = std::net::Ipv4Addr::from(u32::from_be_bytes([198, 18, 100, 0]) + i);
            h.p.on_alert(udp_ids(&a.to_string()));
        }
        assert_eq!(h.p.inflight.len(), 1);
        assert_eq!(h.p.queue.len(), MAX_QUEUED_DEBATES, "the queue is full");
        let forgeable = EvidenceClass::Forgeable.index();
        let suricata = AlertSource::Suricata.index();
        assert_eq!(h.p.queue_shed[forgeable][suricata], 9);

        // A real slow reader arrives behind the flood.
        h.p.on_alert(treason("198.18.0.2"));
        assert_eq!(h.p.queue.len(), MAX_QUEUED_DEBATES);
        assert!(
            h.p.queue
                .iter()
                .any(|t| t.view.peer == "198.18.0.2".parse::<IpAddr>().unwrap()),
            "the confirmed incident is queued, a forgeable one shed for it"
        );
        assert_eq!(h.p.queue_shed[forgeable][suricata], 10);
        assert_eq!(
            h.p.queue_shed[EvidenceClass::Confirmed.index()]
                .iter()
                .sum::<u64>(),
            0
        );
        // More forgeable ones shed each other, never it.
        for i in 0..50 {
            let a = std::net::Ipv4Addr::from(u32::from_be_bytes([198, 19, 0, 0]) + i);
            h.p.on_alert(udp_ids(&a.to_string()));
        }
        assert_eq!(h.p.queue_shed[forgeable][suricata], 60);

        // The next debate to start is the confirmed one, ahead of 1023
        // older forgeable incidents.
        let done = next(&mut h.done).await;
        h.p.on_debate(done);
        assert!(
            h.p.inflight
                .contains(&"198.18.0.2".parse::<IpAddr>().unwrap()),
            "the confirmed incident is debated next"
        );
        let done = next(&mut h.done).await;
        assert_eq!(done.trigger.view.peer.to_string(), "198.18.0.2");
        h.p.on_debate(done);
        assert!(
            h.p.enforcer
                .tables()
                .rules
                .contains_key(&(List::Block, net("198.18.0.2/32"))),
            "the slow reader is banned"
        );
        // No forgeable incident got a ban.
        assert_eq!(h.p.enforcer.tables().rules.len(), 1);

        // The counters are in the status and the metrics family.
        let mut st = DaemonStatus::default();
        h.p.fill_status(&mut st);
        assert_eq!(
            st.shed,
            vec![ShedStatus {
                stage: "debate-queue".into(),
                class: EvidenceClass::Forgeable,
                source: AlertSource::Suricata,
                count: 60,
            }]
        );
        let shed = h.p.metrics.evidence_shed.get_or_create(&ShedLabels {
            stage: "debate-queue",
            class: "forgeable",
            source: "suricata",
        });
        assert_eq!(shed.get(), 60);
    }

    #[tokio::test]
    async fn a_reload_allowlists_through_the_enforcer_and_the_guard_refuses_it() {
        let mut h = harness(Config::default(), FakeTables::default());
        let mut cfg = h.p.cfg.clone();
        cfg.guard.allowlist = vec!["198.18.0.2".into()];
        cfg.guard.max_ttl = Duration::from_secs(7 * 86_400);
        cfg.xdp.zero_window_threshold = 3;
        h.p.apply_config(cfg, "test");
        assert!(
            h.p.enforcer
                .tables()
                .rules
                .contains_key(&(List::Allow, net("198.18.0.2/32"))),
            "the allowlist reached the kernel table"
        );
        assert_eq!(h.p.cfg.guard.max_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(
            h.p.cfg.xdp.zero_window_threshold,
            Config::default().xdp.zero_window_threshold,
            "a setting that needs a restart is ignored"
        );
        h.p.on_alert(treason("198.18.0.2"));
        let done = next(&mut h.done).await;
        let outcome =
            h.p.apply(&done.trigger, &block_1h("198.18.0.2/32"), done.finished_ns);
        assert_eq!(outcome.outcome, "refused", "{outcome:?}");
        // Out of the file, out of the table; an operator's own allow rule
        // is left alone.
        h.p.enforcer
            .add(&Change {
                list: List::Allow,
                net: net("198.18.0.9/32"),
                ttl: None,
                reason: "office",
                reason_code: blocker_common::reason::MANUAL,
                source: "cli",
            })
            .unwrap();
        let mut cfg = h.p.cfg.clone();
        cfg.guard.allowlist = vec!["198.18.0.9".into()];
        h.p.apply_config(cfg, "test");
        let allow: Vec<_> = h.p.enforcer.tables().rules(List::Allow).unwrap();
        assert_eq!(
            allow.iter().map(|r| r.net).collect::<Vec<_>>(),
            vec![net("198.18.0.9/32")]
        );
        assert_eq!(
            h.p.enforcer
                .store()
                .unwrap()
                .active(List::Allow, net("198.18.0.9/32"))
                .unwrap()
                .unwrap()
                .source,
            "cli"
        );
    }

    #[tokio::test]
    async fn a_dry_run_writes_nothing() {
        let mut cfg = Config::default();
        cfg.daemon.dry_run = true;
        let mut h = harness(cfg, FakeTables::default());
        h.p.on_alert(treason("198.18.0.2"));
        let done = next(&mut h.done).await;
        h.p.on_debate(done);
        assert!(h.p.enforcer.tables().rules.is_empty());
        assert_eq!(h.p.council_status.dry_run, 1);
        assert_eq!(h.p.council_status.applied, 0);
        // Resolved as if applied: no second debate on the same evidence.
        h.p.on_alert(treason("198.18.0.2"));
        assert!(h.p.inflight.is_empty());
    }

    #[tokio::test]
    async fn an_allowlisted_peer_is_refused_by_the_guard() {
        let mut tables = FakeTables::default();
        tables
            .insert(
                List::Allow,
                net("198.18.0.0/24"),
                blocker_common::RuleEntry::default(),
            )
            .unwrap();
        let mut h = harness(Config::default(), tables);
        h.p.on_alert(treason("198.18.0.2"));
        let done = next(&mut h.done).await;
        // Whatever the council concluded (its host agent sees the
        // allowlist too), a block of the source must not get past the guard.
        let outcome =
            h.p.apply(&done.trigger, &block_1h("198.18.0.2/32"), done.finished_ns);
        assert_eq!(outcome.outcome, "refused", "{outcome:?}");
        assert_eq!(h.p.council_status.refused, 1);
        h.p.on_debate(done);
        assert!(
            h.p.enforcer.tables().rules(List::Block).unwrap().is_empty(),
            "no ban for an allowlisted source"
        );
        assert_eq!(h.p.council_status.applied, 0);
    }

    #[tokio::test]
    async fn a_full_table_fails_the_verdict_and_says_so() {
        let mut tables = FakeTables::default();
        tables.capacity.insert(List::Block, 0);
        let mut h = harness(Config::default(), tables);
        h.p.on_alert(treason("198.18.0.2"));
        let done = next(&mut h.done).await;
        h.p.on_debate(done);
        assert!(h.p.enforcer.tables().rules.is_empty());
        assert_eq!(h.p.council_status.failed, 1);
        assert_eq!(h.p.council_status.applied, 0);
    }

    #[tokio::test]
    async fn a_zero_window_syn_flood_raises_a_global_incident() {
        let mut cfg = Config::default();
        cfg.council.rules.flood_sources = 3;
        let mut h = harness(cfg, FakeTables::default());
        for peer in ["198.18.0.2", "198.18.0.3", "198.18.0.4"] {
            let mut a = treason(peer);
            a.source = AlertSource::Xdp;
            a.kind = AlertKind::ZeroWindowSyn;
            a.signature = "zero-window-syn".into();
            h.p.on_alert(a);
        }
        let per_source = h.p.inflight.len();
        h.p.on_tick();
        assert!(
            h.p.inflight.contains(&IpAddr::from([0, 0, 0, 0]))
                || h.p.queue.iter().any(|t| t.view.is_global()),
            "a global incident is debated ({per_source} per-source debates running)"
        );
        // Let every debate finish; a global verdict is a policy toggle.
        while !h.p.inflight.is_empty() {
            let done = next(&mut h.done).await;
            h.p.on_debate(done);
        }
        let until =
            h.p.enforcer
                .tables()
                .config(slot::ZW_DROP_UNTIL_NS)
                .unwrap();
        assert!(
            until > clock::boottime_ns(),
            "the council turned on the zero-window SYN policy (until {until})"
        );
    }
}
