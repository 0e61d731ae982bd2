//! The CrowdSec bouncer and pusher inside `blocker run`.
//!
//! The bouncer polls the Local API's decision stream (the full list first,
//! then what changed), keeps the live `ban` decisions in a
//! [`Book`](crate::evidence::crowdsec::decision::Book), and makes the kernel hold
//! exactly the bans the book wants: each is checked by the guard
//! ([`Guard::check_external`]), journaled with its CrowdSec origin as the
//! rule's source (`crowdsec:cscli`, `crowdsec:CAPI`, `crowdsec:lists:NAME`)
//! and written with the decision's remaining time as the kernel expiry.
//!
//! It runs on its own task with its own enforcer over the pinned maps and
//! its own journal connection, never on the pipeline's task: a 100k-decision
//! startup list is written in journal transactions of `batch` rules (one
//! fsync each), between which the pipeline's own bans get the journal, so
//! the evidence→ban path waits for one batch at most, never for the list.
//!
//! Restarts lose and duplicate nothing: at start the rules journaled with a
//! `crowdsec:` source are what the bouncer holds; the startup list is
//! compared with them: what is gone from CrowdSec is removed, what is the
//! same is left alone (no new record), what changed is rewritten. After a
//! failed pull (unreachable API, restart, error) the next pull is a full
//! one again, because an answer lost in flight would lose its delta; what
//! the kernel holds meanwhile keeps being enforced, and retries back off
//! exponentially up to `max_backoff`, visible in `blocker status`.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use ipnet::IpNet;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    addr, clock,
    evidence::crowdsec::{
        CrowdsecConfig,
        decision::{Book, Delta, Filters, SOURCE_PREFIX, Skipped},
        lapi::{self, AlertBody, AlertDecision, AlertEvent, AlertSource, Meta},
    },
    guard::{ExternalContext, Guard},
    kernel::maps::live_allowlist,
    rule::List,
    state::enforcer::{Change, Enforcer},
};

/// Why the bouncer did not start (the daemon logs it and runs without it).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The API key or machine password, or the Local API's URL.
    #[error(transparent)]
    Crowdsec(#[from] crate::evidence::crowdsec::CrowdsecError),
    #[error(transparent)]
    Tables(#[from] crate::kernel::maps::TablesError),
    #[error("{0} (the bouncer never enforces a decision it cannot journal)")]
    Journal(#[source] crate::state::journal::StoreError),
    #[error("invalid [guard] trusted: {0}")]
    Guard(#[source] crate::addr::AddrError),
}

/// Two expiries this close are the same decision seen again (the API
/// reports time left with sub-second precision; the journal keeps seconds).
const SAME_EXPIRY_SECS: i64 = 5;

/// Per-origin packet counters are summed from the maps at most this often
/// (one walk over the block tables).
const METRICS_EVERY: Duration = Duration::from_secs(10);

/// What `blocker status` shows about CrowdSec.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CrowdsecStatus {
    pub lapi_url: String,
    /// The last pull succeeded.
    pub connected: bool,
    /// RFC 3339 of the last successful pull.
    pub last_pull: Option<String>,
    /// Why the last pull failed, if it did.
    pub last_error: Option<String>,
    /// Failed pulls in a row.
    pub failures: u64,
    /// Seconds until the next retry after a failure.
    pub retry_in_secs: Option<f64>,
    pub pulls: u64,
    /// Live `ban` decisions received and kept.
    pub decisions: usize,
    /// Prefixes blocker enforces for CrowdSec.
    pub enforced: usize,
    /// Rules written, removed (CrowdSec deleted them), kept as they were.
    pub applied: u64,
    pub removed: u64,
    pub unchanged: u64,
    /// Decisions for a prefix already banned longer by another source
    /// (an operator, the council): that rule is left alone.
    pub kept_foreign: u64,
    /// Map or journal writes that failed (table full, ...).
    pub failed: u64,
    /// Decisions the guard refused, by kind (allowlisted, trusted, ...).
    pub refused: BTreeMap<String, u64>,
    /// Decisions not enforced, by why (non-ban types, filters, ...).
    pub skipped: Skipped,
    /// The last pull that changed something.
    pub last_apply: Option<ApplyReport>,
    /// Per origin and IP family, in the conventions of CrowdSec's bouncers.
    pub origins: Vec<OriginMetrics>,
    pub push: PushStatus,
}

/// What one pull changed, and how long applying it took.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ApplyReport {
    pub startup: bool,
    pub received_new: usize,
    pub received_deleted: usize,
    pub applied: usize,
    pub removed: usize,
    pub refused: usize,
    pub ms: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct OriginMetrics {
    /// `crowdsec:CAPI`, `crowdsec:cscli`, `crowdsec:lists:NAME`, ...
    pub origin: String,
    /// `ipv4` or `ipv6`.
    pub ip_type: String,
    /// Live decisions of this origin.
    pub active_decisions: u64,
    /// Packets and bytes dropped by the rules blocker holds for it now.
    pub dropped_packets: u64,
    pub dropped_bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PushStatus {
    pub enabled: bool,
    pub pushed: u64,
    pub failed: u64,
    /// Queued alerts dropped because the API was unreachable too long.
    pub dropped: u64,
    pub last_error: Option<String>,
}

/// What blocker holds for CrowdSec for one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Owned {
    source: String,
    /// Unix seconds.
    expires_at: Option<i64>,
}

/// The part of the bouncer that touches maps and journal: moved onto a
/// blocking thread for each pull.
struct Applier {
    enforcer: Enforcer,
    guard: Guard,
    local: Vec<IpAddr>,
    owned: HashMap<IpNet, Owned>,
    batch: usize,
    dry_run: bool,
    metrics_at: Option<Instant>,
}

impl Applier {
    /// The rules journaled with a CrowdSec source: what blocker holds.
    fn load_owned(&mut self) {
        let Some(store) = self.enforcer.store() else {
            return;
        };
        match store.active_rules() {
            Ok(rules) => {
                self.owned = rules
                    .into_iter()
                    .filter(|r| r.list == List::Block && r.source.starts_with(SOURCE_PREFIX))
                    .map(|r| {
                        (
                            r.net,
                            Owned {
                                source: r.source,
                                expires_at: r.expires_at,
                            },
                        )
                    })
                    .collect();
            }
            Err(e) => warn!("CrowdSec: cannot read the journal's CrowdSec rules: {e}"),
        }
    }

    /// Makes the kernel hold what `book` wants for `touched`.
    fn apply(
        &mut self,
        book: &Book,
        touched: &[IpNet],
        status: &mut CrowdsecStatus,
    ) -> ApplyReport {
        let now = SystemTime::now();
        let allowlist = live_allowlist(Some(self.enforcer.tables()));
        let ctx = ExternalContext {
            local: &self.local,
            allowlist: &allowlist,
        };
        let mut report = ApplyReport::default();
        let mut removals: Vec<IpNet> = Vec::new();
        // (net, ttl, source, reason)
        let mut writes: Vec<(IpNet, Duration, String, String)> = Vec::new();
        let mut first_refusal: Option<String> = None;
        // Other sources' active bans: one query for a large list, instead
        // of one per prefix.
        let foreign: Option<HashMap<IpNet, Option<i64>>> = (touched.len() > 64)
            .then(|| self.enforcer.store().and_then(|s| s.active_rules().ok()))
            .flatten()
            .map(|rules| {
                rules
                    .into_iter()
                    .filter(|r| r.list == List::Block && !r.source.starts_with(SOURCE_PREFIX))
                    .map(|r| (r.net, r.expires_at))
                    .collect()
            });
        for &net in touched {
            let owned = self.owned.get(&net);
            let Some(want) = book.want(net, now) else {
                if owned.is_some() {
                    removals.push(net);
                }
                continue;
            };
            let Some(ttl) = want.ttl(now) else { continue };
            if let Err(refusal) = self.guard.check_external(net, Some(ttl), &ctx) {
                *status
                    .refused
                    .entry(refusal.kind().to_string())
                    .or_insert(0) += 1;
                report.refused += 1;
                first_refusal.get_or_insert_with(|| {
                    format!("{} ({}): {refusal}", want.source, addr::display(&net))
                });
                // A prefix allowlisted since it was banned: lift our ban.
                if owned.is_some() {
                    removals.push(net);
                }
                continue;
            }
            let until = clock::unix_secs(want.until);
            if let Some(o) = owned
                && o.source == want.source
                && o.expires_at
                    .is_some_and(|e| (e - until).abs() <= SAME_EXPIRY_SECS)
            {
                status.unchanged += 1;
                continue;
            }
            let other_expiry = match (&foreign, owned) {
                (_, Some(_)) => None,
                (Some(f), None) => f.get(&net).copied(),
                (None, None) => self
                    .enforcer
                    .store()
                    .and_then(|s| s.active(List::Block, net).ok().flatten())
                    .filter(|r| !r.source.starts_with(SOURCE_PREFIX))
                    .map(|r| r.expires_at),
            };
            if other_expiry.is_some_and(|e| e.is_none_or(|e| e >= until)) {
                // Someone else's ban that lasts at least as long: keep it
                // (and its record); the kernel drops the source either way.
                status.kept_foreign += 1;
                continue;
            }
            writes.push((
                net,
                ttl,
                want.source.clone(),
                crate::text::sanitize_text(&format!(
                    "CrowdSec decision {} ({}): {}",
                    want.decision_id, want.source, want.scenario
                )),
            ));
        }
        if let Some(r) = first_refusal {
            warn!(
                "CrowdSec: the guard refused {} decision(s), e.g. {r}",
                report.refused
            );
        }
        if self.dry_run {
            if !writes.is_empty() || !removals.is_empty() {
                info!(
                    "dry run: CrowdSec would ban {} and lift {} prefix(es)",
                    writes.len(),
                    removals.len()
                );
            }
            return report;
        }
        for net in removals {
            // Another source (the council, an operator) may have replaced
            // our rule since: that ban is theirs to keep.
            let theirs = self.enforcer.store().is_some_and(|s| {
                s.active(List::Block, net)
                    .ok()
                    .flatten()
                    .is_some_and(|r| !r.source.starts_with(SOURCE_PREFIX))
            });
            if theirs {
                self.owned.remove(&net);
                continue;
            }
            match self
                .enforcer
                .remove(List::Block, net, "crowdsec: decision deleted")
            {
                Ok(_) => {
                    self.owned.remove(&net);
                    report.removed += 1;
                }
                Err(e) => {
                    status.failed += 1;
                    warn!(
                        "CrowdSec: could not lift the ban of {}: {e}",
                        addr::display(&net)
                    );
                }
            }
        }
        let mut first_failure = None;
        for chunk in writes.chunks(self.batch) {
            let changes: Vec<Change<'_>> = chunk
                .iter()
                .map(|(net, ttl, source, reason)| Change {
                    list: List::Block,
                    net: *net,
                    ttl: Some(*ttl),
                    reason,
                    reason_code: blocker_common::reason::EXTERNAL,
                    source,
                })
                .collect();
            match self.enforcer.add_many(&changes) {
                Ok(results) => {
                    for ((net, ttl, source, _), result) in chunk.iter().zip(results) {
                        match result {
                            Ok(_) => {
                                report.applied += 1;
                                self.owned.insert(
                                    *net,
                                    Owned {
                                        source: source.clone(),
                                        expires_at: Some(clock::unix_secs(now + *ttl)),
                                    },
                                );
                            }
                            Err(e) => {
                                status.failed += 1;
                                first_failure
                                    .get_or_insert_with(|| format!("{}: {e}", addr::display(net)));
                            }
                        }
                    }
                }
                Err(e) => {
                    // The journal refused the batch: nothing of it was
                    // applied. The next full pull tries again.
                    status.failed += chunk.len() as u64;
                    first_failure.get_or_insert_with(|| e.to_string());
                }
            }
        }
        if let Some(f) = first_failure {
            warn!("CrowdSec: some bans could not be applied, e.g. {f}");
        }
        status.applied += report.applied as u64;
        status.removed += report.removed as u64;
        report
    }

    /// Per-origin metrics: live decisions from the book, dropped packets
    /// and bytes from the rules blocker holds (one walk over the maps).
    fn metrics(&mut self, book: &Book, status: &mut CrowdsecStatus, force: bool) {
        if !force && self.metrics_at.is_some_and(|t| t.elapsed() < METRICS_EVERY) {
            return;
        }
        self.metrics_at = Some(Instant::now());
        let mut by: BTreeMap<(String, &'static str), OriginMetrics> = BTreeMap::new();
        for ((origin, family), n) in book.active_by_source(SystemTime::now()) {
            by.entry((origin.clone(), family))
                .or_insert_with(|| OriginMetrics {
                    origin,
                    ip_type: family.into(),
                    ..OriginMetrics::default()
                })
                .active_decisions = n;
        }
        if let Ok(rules) = self.enforcer.tables().rules(List::Block) {
            for r in rules {
                let Some(o) = self.owned.get(&r.net) else {
                    continue;
                };
                let family = if r.net.addr().is_ipv4() {
                    "ipv4"
                } else {
                    "ipv6"
                };
                let m = by
                    .entry((o.source.clone(), family))
                    .or_insert_with(|| OriginMetrics {
                        origin: o.source.clone(),
                        ip_type: family.into(),
                        ..OriginMetrics::default()
                    });
                m.dropped_packets += r.counters.packets;
                m.dropped_bytes += r.counters.bytes;
            }
        }
        status.origins = by.into_values().collect();
        status.enforced = self.owned.len();
    }
}

/// The bouncer's published status, and where the pipeline sends
/// kernel-confirmed bans to push (when pushing is on).
pub type Spawned = (Arc<Mutex<CrowdsecStatus>>, Option<mpsc::Sender<PushItem>>);

/// Starts the bouncer (and the pusher when `[sources.crowdsec.push]` is
/// on). Returns the status the daemon publishes and the sender the
/// pipeline hands kernel-confirmed bans to.
pub fn spawn(
    cfg: &CrowdsecConfig,
    enforcer: Enforcer,
    guard: Guard,
    local: Vec<IpAddr>,
    dry_run: bool,
    cancel: CancellationToken,
) -> Result<Spawned, StartError> {
    let key = cfg.api_key()?;
    let client = lapi::Client::new(&cfg.lapi_url, cfg.timeout)?;
    let status = Arc::new(Mutex::new(CrowdsecStatus {
        lapi_url: client.base().to_string(),
        push: PushStatus {
            enabled: cfg.push.enabled,
            ..PushStatus::default()
        },
        ..CrowdsecStatus::default()
    }));
    let push_tx = if cfg.push.enabled {
        let password = cfg.push_password()?;
        let (tx, rx) = mpsc::channel(PUSH_QUEUE);
        tokio::spawn(push_loop(
            client.clone(),
            cfg.push.machine_id.clone(),
            password,
            rx,
            status.clone(),
            cancel.clone(),
        ));
        info!(
            "pushing kernel-confirmed bans to the CrowdSec Local API {} as machine {:?}",
            client.base(),
            cfg.push.machine_id
        );
        Some(tx)
    } else {
        None
    };
    let mut applier = Applier {
        enforcer,
        guard,
        local,
        owned: HashMap::new(),
        batch: cfg.batch.max(1),
        dry_run,
        metrics_at: None,
    };
    applier.load_owned();
    info!(
        "CrowdSec bouncer: pulling decisions from {} every {} (scopes {:?}{}); {} CrowdSec rule(s) in the journal",
        client.base(),
        humantime::format_duration(cfg.poll_interval),
        cfg.scopes,
        if cfg.origins.is_empty() {
            String::new()
        } else {
            format!(", origins {:?}", cfg.origins)
        },
        applier.owned.len()
    );
    tokio::spawn(bounce(
        cfg.clone(),
        client,
        key,
        applier,
        status.clone(),
        cancel,
    ));
    Ok((status, push_tx))
}

async fn bounce(
    cfg: CrowdsecConfig,
    client: lapi::Client,
    key: SecretString,
    mut applier: Applier,
    status: Arc<Mutex<CrowdsecStatus>>,
    cancel: CancellationToken,
) {
    let filters = Filters::new(&cfg);
    let query = lapi::Query {
        scopes: &cfg.scopes,
        origins: &cfg.origins,
        scenarios_containing: &cfg.scenarios_containing,
        scenarios_not_containing: &cfg.scenarios_not_containing,
    };
    let mut book = Book::default();
    let mut startup = true;
    let mut first = true;
    let mut backoff = Duration::from_secs(1);
    let mut last_full = Instant::now();
    loop {
        if last_full.elapsed() >= cfg.resync_interval {
            startup = true;
        }
        if startup {
            last_full = Instant::now();
        }
        let pulled = tokio::select! {
            () = cancel.cancelled() => return,
            r = client.stream(&key, startup, &query) => r,
        };
        let wait = match pulled {
            Ok(stream) => {
                let now = SystemTime::now();
                let delta: Delta = book.apply(&stream, startup, &filters, now);
                for t in &delta.new_types {
                    info!(
                        "CrowdSec: {t:?} decisions are not enforced (XDP only drops: `ban`); they are counted in `blocker status`"
                    );
                }
                if let Some(ex) = &delta.invalid_example {
                    warn!("CrowdSec: skipped decision(s) that do not parse, e.g. {ex}");
                }
                let mut touched = delta.touched;
                if startup {
                    // The full list: whatever blocker holds that it lacks is gone.
                    touched.extend(applier.owned.keys().copied());
                    touched.sort_unstable();
                    touched.dedup();
                }
                let was_startup = startup;
                let st = status.clone();
                let book_ref = book;
                let t0 = Instant::now();
                let joined = tokio::task::spawn_blocking(move || {
                    let mut s = st.lock().map(|s| s.clone()).unwrap_or_default();
                    let report = applier.apply(&book_ref, &touched, &mut s);
                    applier.metrics(&book_ref, &mut s, !touched.is_empty());
                    (applier, book_ref, s, report)
                })
                .await;
                let Ok((a, b, s, mut report)) = joined else {
                    warn!("CrowdSec: the apply task panicked; the bouncer stops");
                    return;
                };
                applier = a;
                book = b;
                report.startup = was_startup;
                report.received_new = delta.received_new;
                report.received_deleted = delta.received_deleted;
                report.ms = t0.elapsed().as_secs_f64() * 1e3;
                let changed = report.applied + report.removed + report.refused > 0;
                if changed || was_startup {
                    info!(
                        "CrowdSec: {}{} new, {} deleted decision(s): {} ban(s) applied, {} lifted, {} refused in {:.0} ms",
                        if was_startup { "full list, " } else { "" },
                        report.received_new,
                        report.received_deleted,
                        report.applied,
                        report.removed,
                        report.refused,
                        report.ms
                    );
                }
                if let Ok(mut st) = status.lock() {
                    let push = std::mem::take(&mut st.push);
                    *st = s;
                    // The pusher updates its part concurrently.
                    st.push = push;
                    st.connected = true;
                    st.last_pull = Some(clock::rfc3339(now));
                    st.last_error = None;
                    st.failures = 0;
                    st.retry_in_secs = None;
                    st.pulls += 1;
                    st.decisions = book.len();
                    st.skipped = book.skipped.clone();
                    if changed || was_startup {
                        st.last_apply = Some(report);
                    }
                }
                if first || !was_startup {
                    first = false;
                } else {
                    info!("CrowdSec: Local API {} reachable again", client.base());
                }
                startup = false;
                backoff = Duration::from_secs(1);
                cfg.poll_interval
            }
            Err(e) => {
                let wait = backoff;
                backoff = (backoff * 2).min(cfg.max_backoff);
                let failures = status.lock().map_or(1, |mut st| {
                    st.connected = false;
                    st.last_error = Some(e.to_string());
                    st.failures += 1;
                    st.retry_in_secs = Some(wait.as_secs_f64());
                    st.failures
                });
                // Once, then every tenth failure: an outage must not flood the log.
                if failures == 1 || failures.is_multiple_of(10) {
                    warn!(
                        "CrowdSec: pull failed ({failures} in a row): {e}; rules already in the kernel keep being enforced; retrying in {}",
                        humantime::format_duration(wait)
                    );
                }
                // An answer lost in flight loses its delta: resync in full.
                startup = true;
                first = false;
                wait
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Alerts waiting for the API, at most (the oldest are dropped first).
const PUSH_QUEUE: usize = 1024;

/// A kernel-confirmed ban to report to CrowdSec.
#[derive(Clone, Debug)]
pub struct PushItem {
    pub peer: IpAddr,
    /// `blocker/treason`, `blocker/slow-read`, `blocker/zero-window-syn`.
    pub scenario: &'static str,
    pub message: String,
    pub ttl: Duration,
    pub at: SystemTime,
    pub events: u64,
}

/// The scenarios blocker pushes under (the login announces them).
pub const SCENARIOS: [&str; 3] = [
    "blocker/treason",
    "blocker/slow-read",
    "blocker/zero-window-syn",
];

impl PushItem {
    fn body(&self) -> AlertBody {
        let at = clock::rfc3339(self.at);
        let value = self.peer.to_string();
        AlertBody {
            scenario: self.scenario.into(),
            scenario_hash: String::new(),
            scenario_version: env!("CARGO_PKG_VERSION").into(),
            message: self.message.clone(),
            events_count: i32::try_from(self.events).unwrap_or(i32::MAX),
            start_at: at.clone(),
            stop_at: at.clone(),
            capacity: 0,
            leakspeed: "0".into(),
            simulated: false,
            remediation: true,
            events: vec![AlertEvent {
                timestamp: at,
                meta: vec![Meta {
                    key: "source_ip".into(),
                    value: value.clone(),
                }],
            }],
            source: AlertSource {
                scope: "Ip".into(),
                value: value.clone(),
                ip: Some(value.clone()),
                range: None,
            },
            decisions: vec![AlertDecision {
                origin: "crowdsec".into(),
                kind: "ban".into(),
                scope: "Ip".into(),
                value,
                duration: format!("{}s", self.ttl.as_secs().max(1)),
                scenario: self.scenario.into(),
                simulated: false,
            }],
        }
    }
}

async fn push_loop(
    client: lapi::Client,
    machine_id: String,
    password: SecretString,
    mut rx: mpsc::Receiver<PushItem>,
    status: Arc<Mutex<CrowdsecStatus>>,
    cancel: CancellationToken,
) {
    let mut token: Option<(SecretString, Instant)> = None;
    let mut pending: std::collections::VecDeque<PushItem> = Default::default();
    let mut backoff = Duration::from_secs(1);
    loop {
        if pending.is_empty() {
            tokio::select! {
                () = cancel.cancelled() => return,
                item = rx.recv() => match item {
                    Some(i) => pending.push_back(i),
                    None => return,
                },
            }
        }
        while let Ok(i) = rx.try_recv() {
            if pending.len() >= PUSH_QUEUE {
                pending.pop_front();
                if let Ok(mut st) = status.lock() {
                    st.push.dropped += 1;
                }
            }
            pending.push_back(i);
        }
        // The API's tokens last an hour; log in again well before.
        if token
            .as_ref()
            .is_none_or(|(_, at)| at.elapsed() > Duration::from_secs(30 * 60))
        {
            token = match client.login(&machine_id, &password, &SCENARIOS).await {
                Ok(t) => Some((t, Instant::now())),
                Err(e) => {
                    push_failed(&status, &e.to_string(), &mut backoff, &cancel).await;
                    continue;
                }
            };
        }
        let Some((t, _)) = &token else { continue };
        let bodies: Vec<AlertBody> = pending.iter().map(PushItem::body).collect();
        match client.push_alerts(t, &bodies).await {
            Ok(ids) => {
                for i in &pending {
                    info!("pushed {} ({}) to CrowdSec as an alert", i.peer, i.scenario);
                }
                if let Ok(mut st) = status.lock() {
                    st.push.pushed += ids.len().max(bodies.len()) as u64;
                    st.push.last_error = None;
                }
                pending.clear();
                backoff = Duration::from_secs(1);
            }
            Err(e) => {
                if matches!(
                    e,
                    crate::evidence::crowdsec::CrowdsecError::Status { status: 401, .. }
                ) {
                    token = None;
                }
                push_failed(&status, &e.to_string(), &mut backoff, &cancel).await;
            }
        }
    }
}

async fn push_failed(
    status: &Arc<Mutex<CrowdsecStatus>>,
    error: &str,
    backoff: &mut Duration,
    cancel: &CancellationToken,
) {
    let n = status.lock().map_or(1, |mut st| {
        st.push.failed += 1;
        st.push.last_error = Some(error.to_string());
        st.push.failed
    });
    if n == 1 || n.is_multiple_of(10) {
        warn!(
            "CrowdSec: pushing alerts failed ({n} so far): {error}; retrying in {}",
            humantime::format_duration(*backoff)
        );
    }
    tokio::select! {
        () = cancel.cancelled() => {}
        () = tokio::time::sleep(*backoff) => {}
    }
    *backoff = (*backoff * 2).min(Duration::from_secs(60));
}

/// The CrowdSec scenario of a ban's kernel evidence, if it has any:
/// treason (window retracted under data in flight, or the kernel's own log
/// line), slow read (window held closed past the stall), zero-window SYNs.
pub fn scenario_of(view: &crate::incident::IncidentView) -> Option<&'static str> {
    use crate::evidence::alert::AlertKind as K;
    let counts = [
        (
            view.count(K::TreasonRetransmit) + view.count(K::KernelLog),
            SCENARIOS[0],
        ),
        (
            view.count(K::TreasonProbe) + view.count(K::ZeroWindowSeen),
            SCENARIOS[1],
        ),
        (view.count(K::ZeroWindowSyn), SCENARIOS[2]),
    ];
    counts
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .max_by_key(|(n, _)| *n)
        .map(|(_, s)| s)
}
