//! Applies rule changes: journal first, then the kernel map. The only code
//! that changes rules, for the CLI and the daemon alike.
//!
//! Order matters. A rule is committed to the store before the map is
//! touched, so no ban is ever enforced without a record: if the disk is full
//! or the journal is unusable the ban is refused, loudly. If the map write
//! then fails (table full), the record is marked `failed`.
//!
//! Without a usable journal the enforcer runs degraded: rules already in the
//! maps keep being enforced (by the kernel, on its own), new ones are
//! refused, and the error says how to recover.

use std::time::{Duration, SystemTime};

use blocker_common::RuleEntry;
use ipnet::IpNet;
use serde::Serialize;
use tracing::{info, warn};

use crate::{
    addr, clock,
    kernel::maps::{NewEntry, RuleTables, Tables, TablesError, WhenFull},
    rule::{List, Rule},
    state::journal::{NewRule, Store, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    #[error(transparent)]
    Tables(#[from] TablesError),
    #[error("{0} (the rule was not applied: blocker never enforces a rule it could not record)")]
    Store(#[from] StoreError),
    #[error(
        "the journal is unavailable ({0}); new rules are refused until it is fixed (rules already in the kernel keep being enforced). Move the file aside and restart `blocker run`: it adopts the kernel's rules into a fresh journal"
    )]
    NoJournal(String),
}

impl EnforceError {
    /// A short, bounded name for why a rule was not applied (a metrics label).
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Tables(TablesError::Full { .. }) => "table-full",
            Self::Tables(_) => "map-error",
            Self::Store(_) => "journal-error",
            Self::NoJournal(_) => "journal-unavailable",
        }
    }
}

/// The outcome of [`Enforcer::add`].
#[derive(Clone, Copy, Debug)]
pub struct Applied {
    pub list: List,
    pub net: IpNet,
    pub entry: RuleEntry,
    /// An existing rule for the same prefix was replaced (counters kept).
    pub replaced: bool,
    /// Id of the store record.
    pub record_id: i64,
}

/// What [`Enforcer::apply_batch`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchApplied {
    /// Rules written to the maps (and journaled).
    pub written: usize,
    /// Of those, rules that replaced one for the same prefix (counters kept).
    pub replaced: usize,
    /// Rules evicted to make room (`when_full = "evict-soonest"`).
    pub evicted: usize,
}

/// A rule change to apply.
#[derive(Clone, Debug)]
pub struct Change<'a> {
    pub list: List,
    pub net: IpNet,
    pub ttl: Option<Duration>,
    pub reason: &'a str,
    pub reason_code: u32,
    pub source: &'a str,
}

impl<'a> Change<'a> {
    fn record(&self) -> NewRule<'a> {
        NewRule {
            list: self.list,
            net: self.net,
            ttl: self.ttl,
            reason: self.reason,
            reason_code: self.reason_code,
            source: self.source,
        }
    }
}

/// What [`Enforcer::reconcile`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    /// Journaled rules missing from the maps (a reboot emptied bpffs), put
    /// back with their remaining TTL.
    pub restored: Names,
    /// Journaled rules whose time ran out while nothing enforced them.
    pub expired: usize,
    /// Rules found in the maps with no journal record, now recorded.
    pub adopted: Names,
    /// Journaled rules that could not be restored (table full), with why.
    pub failed: Names,
    /// Rules present in both, left untouched (counters kept).
    pub kept: usize,
    /// A stop was requested before every rule was restored: the rest stay
    /// in the journal and are restored at the next start.
    pub interrupted: bool,
}

/// How many rules and the first few of them by name: what start-up logs.
/// (A million names would be a million strings held for nothing.)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Names {
    pub total: usize,
    /// The first [`Names::SHOWN`].
    pub first: Vec<String>,
}

impl Names {
    pub const SHOWN: usize = 20;

    fn push(&mut self, name: impl FnOnce() -> String) {
        if self.first.len() < Self::SHOWN {
            self.first.push(name());
        }
        self.total += 1;
    }

    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// Journaled rules restored per batch at start; a stop request is checked
/// between batches.
const RESTORE_CHUNK: usize = 65_536;

/// The only writer of the kernel tables' rules and settings in the daemon
/// (`T` is [`Tables`]; unit tests use `kernel::fake::FakeTables`).
pub struct Enforcer<T: RuleTables = Tables> {
    tables: T,
    store: Option<Store>,
    /// Why there is no store, for the error message.
    journal_error: Option<String>,
    when_full: WhenFull,
    /// Rules evicted to make room.
    pub evicted: u64,
}

impl<T: RuleTables> Enforcer<T> {
    pub fn new(tables: T, store: Store) -> Self {
        Self {
            tables,
            store: Some(store),
            journal_error: None,
            when_full: WhenFull::Refuse,
            evicted: 0,
        }
    }

    /// An enforcer whose journal could not be opened: degraded.
    pub fn without_journal(tables: T, why: String) -> Self {
        Self {
            tables,
            store: None,
            journal_error: Some(why),
            when_full: WhenFull::Refuse,
            evicted: 0,
        }
    }

    pub fn with_when_full(mut self, when_full: WhenFull) -> Self {
        self.when_full = when_full;
        self
    }

    /// The tables, to read: every write goes through the enforcer.
    pub fn tables(&self) -> &T {
        &self.tables
    }

    /// The tables, to change behind the enforcer's back (unit tests).
    #[cfg(test)]
    pub(crate) fn tables_mut(&mut self) -> &mut T {
        &mut self.tables
    }

    /// Recomputes the tables' "active" slots from their contents (at start).
    pub fn sync_active(&mut self) -> Result<(), EnforceError> {
        Ok(self.tables.sync_active()?)
    }

    /// Sets a runtime setting of the XDP program (a `blocker_common::config`
    /// slot: the zero-window SYN threshold, the global policy's end).
    pub fn set_setting(&mut self, slot: u32, value: u64) -> Result<(), EnforceError> {
        Ok(self.tables.set_config(slot, value)?)
    }

    /// Forgets a source's zero-window SYN count (it was just banned, so a
    /// later flood from it starts from zero).
    pub fn forget_zero_window(&mut self, source: std::net::IpAddr) -> Result<(), EnforceError> {
        Ok(self.tables.forget_zero_window(source)?)
    }

    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Why the journal is unavailable, if it is.
    pub fn journal_error(&self) -> Option<&str> {
        self.journal_error.as_deref()
    }

    fn store_or_err(&mut self) -> Result<&mut Store, EnforceError> {
        let why = self
            .journal_error
            .clone()
            .unwrap_or_else(|| "not opened".into());
        self.store.as_mut().ok_or(EnforceError::NoJournal(why))
    }

    /// Records and applies a rule.
    pub fn add(&mut self, change: &Change<'_>) -> Result<Applied, EnforceError> {
        let record_id = self.store_or_err()?.record(&change.record())?;
        self.apply_recorded(change, record_id)
    }

    /// Records many rules in one journal commit, then applies each.
    pub fn add_many(
        &mut self,
        changes: &[Change<'_>],
    ) -> Result<Vec<Result<Applied, EnforceError>>, EnforceError> {
        let records: Vec<NewRule<'_>> = changes.iter().map(Change::record).collect();
        let ids = self.store_or_err()?.record_all(&records)?;
        Ok(changes
            .iter()
            .zip(ids)
            .map(|(c, id)| self.apply_recorded(c, id))
            .collect())
    }

    /// Records and applies many rules at once: the path for imports and
    /// whole decision lists (a CrowdSec startup stream, a community list).
    ///
    /// 1. Checks every table can take its new rules, before anything is
    ///    written: [`TablesError::WontFit`] names the setting to raise (with
    ///    `when_full = "evict-soonest"` the soonest-expiring rules make room
    ///    instead, journaled as evicted).
    /// 2. Journals all of them in one transaction.
    /// 3. Writes the maps in batches (`BPF_MAP_UPDATE_BATCH` for the exact
    ///    tables; the LPM tries take one update per rule, having no batch
    ///    operations). If that fails the records are marked failed.
    ///
    /// O(n + size of the touched tables). Duplicates in `changes`: the last
    /// one wins.
    pub fn apply_batch(&mut self, changes: &[Change<'_>]) -> Result<BatchApplied, EnforceError> {
        self.store_or_err()?;
        let new: Vec<NewEntry> = changes
            .iter()
            .map(|c| NewEntry {
                list: c.list,
                net: c.net,
                ttl: c.ttl,
                reason: c.reason_code,
            })
            .collect();
        let mut evicted = 0;
        let plan = loop {
            match self.tables.plan_batch(&new) {
                Ok(plan) => break plan,
                Err(TablesError::WontFit {
                    list,
                    example,
                    present,
                    new: wanted,
                    capacity,
                    ..
                }) if self.when_full == WhenFull::EvictSoonest => {
                    let need = present + wanted - capacity as usize;
                    let victims = self.tables.evict_soonest_many(list, example, need)?;
                    if victims.is_empty() {
                        // Only permanent rules left: refuse, naming the setting.
                        match self.tables.plan_batch(&new) {
                            Ok(plan) => break plan,
                            Err(e) => return Err(e.into()),
                        }
                    }
                    warn!(
                        "{} is full: evicted {} rules (expiring soonest) to make room for a batch of {}",
                        list.as_str(),
                        victims.len(),
                        changes.len()
                    );
                    evicted += victims.len();
                    self.evicted += victims.len() as u64;
                    let nets: Vec<(List, IpNet)> =
                        victims.iter().map(|v| (v.list, v.net)).collect();
                    self.store_or_err()?.remove_all(&nets, "evicted")?;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let records: Vec<NewRule<'_>> = changes.iter().map(Change::record).collect();
        let ids = self.store_or_err()?.record_all(&records)?;
        if let Err(e) = self.tables.write_batch(&plan) {
            if let Err(undo) = self.store_or_err()?.remove_ids(&ids, "failed") {
                tracing::error!("could not mark {} store records failed: {undo}", ids.len());
            }
            return Err(e.into());
        }
        Ok(BatchApplied {
            written: plan.len(),
            replaced: plan.replaced(),
            evicted,
        })
    }

    /// Removes the rules for exactly these prefixes from the maps (batched)
    /// and the journal (one transaction). Returns how many existed in either.
    pub fn remove_batch(
        &mut self,
        rules: &[(List, IpNet)],
        why: &str,
    ) -> Result<usize, EnforceError> {
        let in_maps = self.tables.remove_batch(rules)?;
        let in_store = match self.store.as_mut() {
            Some(s) => s.remove_all(rules, why)?,
            None => 0,
        };
        Ok(in_maps.max(in_store))
    }

    fn apply_recorded(
        &mut self,
        change: &Change<'_>,
        record_id: i64,
    ) -> Result<Applied, EnforceError> {
        let mut result =
            self.tables
                .upsert(change.list, change.net, change.ttl, change.reason_code);
        if matches!(result, Err(TablesError::Full { .. }))
            && self.when_full == WhenFull::EvictSoonest
            && let Some(victim) = self.tables.evict_soonest(change.list, change.net)?
        {
            self.evicted += 1;
            warn!(
                "{} is full: evicted the {} rule for {} (expiring soonest) to make room for {}",
                change.list.as_str(),
                victim.list.as_str(),
                addr::display(&victim.net),
                addr::display(&change.net)
            );
            if let Some(store) = self.store.as_mut() {
                store.remove(victim.list, victim.net, "evicted")?;
            }
            result = self
                .tables
                .upsert(change.list, change.net, change.ttl, change.reason_code);
        }
        match result {
            Ok((entry, replaced)) => Ok(Applied {
                list: change.list,
                net: change.net,
                entry,
                replaced,
                record_id,
            }),
            Err(e) => {
                if let Some(store) = self.store.as_mut()
                    && let Err(undo) = store.remove_id(record_id, "failed")
                {
                    tracing::error!("could not mark store record {record_id} failed: {undo}");
                }
                Err(e.into())
            }
        }
    }

    /// Removes the rule for exactly `net` from `list`, from the map and the
    /// journal. `false` if neither had it. Works without a journal (removing
    /// a rule can never enforce anything unrecorded).
    pub fn remove(&mut self, list: List, net: IpNet, why: &str) -> Result<bool, EnforceError> {
        let in_map = self.tables.remove(list, net)?;
        let in_store = match self.store.as_mut() {
            Some(s) => s.remove(list, net, why)?,
            None => false,
        };
        Ok(in_map || in_store)
    }

    /// Removes these garbage-collection candidates (found expired by a scan
    /// off the pipeline, `daemon::gc`) from the maps (batched) and marks them
    /// in the journal (one transaction). Each is looked up again first: a
    /// rule renewed since the scan (a new ban of the same address) is live
    /// and stays. Returns the rules removed.
    pub fn expire(&mut self, candidates: &[(List, IpNet)]) -> Result<Vec<Rule>, EnforceError> {
        let now = clock::boottime_ns();
        let mut expired = Vec::with_capacity(candidates.len());
        for &(list, net) in candidates {
            if let Some(entry) = self.tables.entry(list, net)?
                && !entry.is_live(now)
            {
                expired.push(Rule {
                    list,
                    net,
                    entry,
                    counters: Default::default(),
                });
            }
        }
        if expired.is_empty() {
            return Ok(expired);
        }
        let keys: Vec<(List, IpNet)> = expired.iter().map(|r| (r.list, r.net)).collect();
        self.remove_batch(&keys, "expired")?;
        Ok(expired)
    }

    /// Brings the maps and the journal into agreement, at daemon start:
    /// journaled rules missing from the maps are restored with their
    /// remaining TTL (after a reboot bpffs is empty), those that expired
    /// meanwhile are marked, and map rules nobody recorded are adopted so
    /// they survive the next reboot.
    pub fn reconcile(&mut self) -> Result<Reconciled, EnforceError> {
        self.reconcile_until(&std::sync::atomic::AtomicBool::new(false))
    }

    /// [`reconcile`](Self::reconcile), stopping between restore batches
    /// once `stop` is set (SIGTERM during start-up). What is restored by
    /// then is in the maps and the journal alike; the rest is restored at
    /// the next start, so nothing is lost either way.
    ///
    /// Streaming, so memory stays bounded at a million rules: the maps'
    /// prefixes are held compactly ([`crate::kernel::maps::RuleKeys`], 4 bytes per exact IPv4
    /// ban), the journal is read in pages of [`RESTORE_CHUNK`] rules
    /// without their free text, and each page is written to the maps in
    /// batches before the next is read. O(n log n) in all.
    pub fn reconcile_until(
        &mut self,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<Reconciled, EnforceError> {
        self.reconcile_paged(stop, RESTORE_CHUNK)
    }

    /// [`reconcile_until`](Self::reconcile_until) in pages of `page` rules.
    fn reconcile_paged(
        &mut self,
        stop: &std::sync::atomic::AtomicBool,
        page_size: usize,
    ) -> Result<Reconciled, EnforceError> {
        let stopped = || stop.load(std::sync::atomic::Ordering::SeqCst);
        let mut report = Reconciled::default();
        let Some(store) = self.store.as_mut() else {
            return Err(EnforceError::NoJournal(
                self.journal_error.clone().unwrap_or_default(),
            ));
        };
        let now_unix = clock::unix_secs(SystemTime::now());
        let now_boot = clock::boottime_ns();
        let in_maps = self.tables.keys()?;
        // Which of the maps' rules the journal has (the rest are adopted).
        let mut journaled = vec![false; in_maps.len()];
        let name = |list: List, net: &IpNet| format!("{} {}", list.as_str(), addr::display(net));
        let mut after = 0;
        loop {
            if stopped() {
                report.interrupted = true;
                break;
            }
            let page = store.active_page(after, page_size)?;
            let Some(last) = page.last() else { break };
            after = last.id;
            let mut expired: Vec<(List, IpNet)> = Vec::new();
            let mut expired_in_maps: Vec<(List, IpNet)> = Vec::new();
            let mut restore: Vec<(List, IpNet, RuleEntry)> = Vec::new();
            for r in &page {
                let (Some(list), Some(net)) = (r.list, r.net) else {
                    continue;
                };
                let at = in_maps.position(list, &net);
                if let Some(i) = at {
                    journaled[i] = true;
                }
                if r.expires_at.is_some_and(|e| e <= now_unix) {
                    expired.push((list, net));
                    if at.is_some() {
                        expired_in_maps.push((list, net));
                    }
                    continue;
                }
                if at.is_some() {
                    report.kept += 1;
                    continue;
                }
                restore.push((
                    list,
                    net,
                    RuleEntry {
                        expires_at_ns: r
                            .expires_at
                            .map_or(0, |e| clock::from_system(clock::from_unix_secs(e))),
                        added_at_ns: clock::from_system(clock::from_unix_secs(r.added_at)),
                        reason: r.reason_code,
                        ..RuleEntry::default()
                    },
                ));
            }
            drop(page);
            if !expired.is_empty() {
                store.remove_all(&expired, "expired")?;
                self.tables.remove_batch(&expired_in_maps)?;
                report.expired += expired.len();
            }
            // The page's rules are absent from the maps (compared above):
            // written in batches without reading the tables again. Those
            // that do not fit (table full) each say why; the rest are in.
            let failed = self.tables.restore_batch(&restore)?;
            let mut not_in: std::collections::HashSet<(List, IpNet)> =
                std::collections::HashSet::with_capacity(failed.len());
            for (list, net, e) in failed {
                report.failed.push(|| format!("{}: {e}", name(list, &net)));
                not_in.insert((list, net));
            }
            for (list, net, _) in &restore {
                if !not_in.contains(&(*list, *net)) {
                    report.restored.push(|| name(*list, net));
                }
            }
        }
        if report.interrupted || stopped() {
            report.interrupted = true;
            info!(
                "reconciliation stopped: {} journaled rules restored so far; the rest stay journaled and are restored at the next start",
                report.restored.len(),
            );
            return Ok(report);
        }
        // The maps' rules nobody recorded: adopted, in pages too.
        let orphans = journaled
            .iter()
            .enumerate()
            .filter(|(_, j)| !**j)
            .map(|(i, _)| in_maps.at(i));
        let mut page: Vec<(List, IpNet, RuleEntry)> = Vec::new();
        let mut adopt = |page: &mut Vec<(List, IpNet, RuleEntry)>,
                         report: &mut Reconciled|
         -> Result<(), EnforceError> {
            let reasons: Vec<String> = page
                .iter()
                .map(|(_, _, e)| {
                    format!(
                        "adopted from the kernel maps ({})",
                        blocker_common::reason::name(e.reason)
                    )
                })
                .collect();
            let records: Vec<NewRule<'_>> = page
                .iter()
                .zip(&reasons)
                .map(|((list, net, e), reason)| NewRule {
                    list: *list,
                    net: *net,
                    ttl: clock::remaining(e.expires_at_ns, now_boot),
                    reason,
                    reason_code: e.reason,
                    source: "adopted",
                })
                .collect();
            store.record_all(&records)?;
            for (list, net, _) in page.iter() {
                report.adopted.push(|| name(*list, net));
            }
            page.clear();
            Ok(())
        };
        for (list, net) in orphans {
            match self.tables.entry(list, net)? {
                Some(entry) if entry.is_live(now_boot) => page.push((list, net, entry)),
                _ => {}
            }
            if page.len() >= page_size {
                adopt(&mut page, &mut report)?;
            }
        }
        if !page.is_empty() {
            adopt(&mut page, &mut report)?;
        }
        if !report.restored.is_empty()
            || report.expired > 0
            || !report.adopted.is_empty()
            || !report.failed.is_empty()
        {
            info!(
                "reconciled the journal and the maps: {} restored, {} expired, {} adopted, {} kept, {} failed",
                report.restored.len(),
                report.expired,
                report.adopted.len(),
                report.kept,
                report.failed.len()
            );
        }
        for f in &report.failed.first {
            warn!("could not restore {f}");
        }
        if report.failed.len() > report.failed.first.len() {
            warn!(
                "... and {} more rules could not be restored",
                report.failed.len() - report.failed.first.len()
            );
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::kernel::fake::FakeTables;

    struct TempDir(std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp_dir(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "blocker-enforcer-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }

    fn net(i: u32) -> IpNet {
        addr::host(std::net::IpAddr::from(std::net::Ipv4Addr::from(
            0xc612_0000 | i,
        )))
    }

    fn change(net: IpNet, ttl: Option<Duration>) -> Change<'static> {
        Change {
            list: List::Block,
            net,
            ttl,
            reason: "test",
            reason_code: blocker_common::reason::IMPORT,
            source: "import",
        }
    }

    /// More rules than one page: every journaled rule comes back after the
    /// maps were emptied (a reboot), an expired one is marked, a rule only
    /// in the maps is adopted, and rules in both are kept.
    #[test]
    fn reconcile_restores_pages_adopts_and_expires() {
        let dir = temp_dir("reconcile");
        // Pages of 16: the fake table counts its rules on every insert.
        let n = 16 * 3 + 5;
        let mut e = Enforcer::new(FakeTables::default(), Store::open_in(&dir.0).unwrap());
        let changes: Vec<Change<'_>> = (0..n).map(|i| change(net(i), None)).collect();
        assert_eq!(e.apply_batch(&changes).unwrap().written, n as usize);
        // One that expired while nothing enforced it.
        let gone = net(n);
        e.add(&change(gone, Some(Duration::from_secs(3600))))
            .unwrap();
        e.store
            .as_ref()
            .unwrap()
            .conn()
            .execute(
                "UPDATE rules SET expires_at = 1 WHERE prefix = ?1",
                [gone.to_string()],
            )
            .unwrap();
        // A reboot: the maps are empty but for a rule nobody recorded.
        e.tables_mut().rules.clear();
        let orphan = net(n + 1);
        e.tables_mut().rules.insert(
            (List::Block, orphan),
            RuleEntry {
                id: 7,
                ..RuleEntry::default()
            },
        );
        let report = e.reconcile_paged(&AtomicBool::new(false), 16).unwrap();
        assert_eq!(report.restored.len(), n as usize);
        assert_eq!(report.restored.first.len(), Names::SHOWN);
        assert_eq!(report.expired, 1);
        assert_eq!(report.adopted.len(), 1);
        assert_eq!(
            report.adopted.first,
            [format!("block {orphan}").replace("/32", "")]
        );
        assert!(report.failed.is_empty() && !report.interrupted);
        let tables = e.tables();
        assert!((0..n).all(|i| tables.rules.contains_key(&(List::Block, net(i)))));
        assert!(!tables.rules.contains_key(&(List::Block, gone)));
        let store = e.store().unwrap();
        assert!(store.active(List::Block, gone).unwrap().is_none());
        assert_eq!(
            store.active(List::Block, orphan).unwrap().unwrap().source,
            "adopted"
        );
        // Again: everything is in both now.
        let report = e.reconcile().unwrap();
        assert_eq!(report.kept, n as usize + 1);
        assert!(report.restored.is_empty() && report.adopted.is_empty());
    }

    /// A full table: as many as fit are restored, each of the others is
    /// reported with why, and they stay journaled for the next start.
    #[test]
    fn reconcile_reports_what_does_not_fit() {
        let dir = temp_dir("reconcile-full");
        let mut e = Enforcer::new(FakeTables::default(), Store::open_in(&dir.0).unwrap());
        let changes: Vec<Change<'_>> = (0..10).map(|i| change(net(i), None)).collect();
        e.apply_batch(&changes).unwrap();
        e.tables_mut().rules.clear();
        e.tables_mut().capacity.insert(List::Block, 6);
        let report = e.reconcile().unwrap();
        assert_eq!(report.restored.len(), 6);
        assert_eq!(report.failed.len(), 4);
        assert!(
            report.failed.first[0].contains("full"),
            "{:?}",
            report.failed
        );
        assert_eq!(e.store().unwrap().active_page(0, 100).unwrap().len(), 10);
    }

    /// A stop request before the first page: nothing restored, reported.
    #[test]
    fn reconcile_stops_between_pages() {
        let dir = temp_dir("reconcile-stop");
        let mut e = Enforcer::new(FakeTables::default(), Store::open_in(&dir.0).unwrap());
        e.add(&change(net(1), None)).unwrap();
        e.tables_mut().rules.clear();
        let report = e.reconcile_until(&AtomicBool::new(true)).unwrap();
        assert!(report.interrupted && report.restored.is_empty());
        assert!(e.tables().rules.is_empty());
    }
}
