//! Journal retention (`[journal]`): incidents, debates (with their
//! transcripts), verdicts and removed rules are deleted once older than
//! `max_age`, and the oldest go first while the journal holds more than
//! `max_size`, so a week of attacks cannot fill the disk.
//!
//! It runs on its own thread with its own connection, in small batches
//! (one short transaction each, a pause between them), so the enforcer's
//! ban records and the journal writer only ever wait for one batch. What an
//! active rule rests on (the rule, the verdict that wrote it, its debate
//! and incident) is never deleted: bans in force survive retention and
//! restarts. Freed pages go back to the file system (`auto_vacuum =
//! INCREMENTAL`), so the file shrinks.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::journal::{Pruned, Store, StoreError};
use crate::clock;

/// `[journal]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// Records older than this are deleted (`0s`: no age limit).
    #[serde(with = "crate::ttl::duration")]
    pub max_age: Duration,
    /// Most bytes the journal's records may take (`0`: no size limit).
    #[serde(with = "size")]
    pub max_size: u64,
    /// How often retention runs.
    #[serde(with = "crate::ttl::duration")]
    pub interval: Duration,
    /// Rows per table per transaction.
    pub batch: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(30 * 86_400),
            max_size: 512 << 20,
            interval: Duration::from_secs(600),
            batch: 500,
        }
    }
}

impl JournalConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.interval < Duration::from_secs(1) {
            return Err("[journal] interval must be at least 1s".into());
        }
        if !(1..=100_000).contains(&self.batch) {
            return Err("[journal] batch must be between 1 and 100000".into());
        }
        if self.max_size != 0 && self.max_size < 1 << 20 {
            return Err("[journal] max_size must be at least 1MiB (or 0: no limit)".into());
        }
        Ok(())
    }
}

/// Pause between two batches: the writers that waited for one get in.
const PAUSE: Duration = Duration::from_millis(5);

/// What retention did, for `blocker status` (`journal` in `daemon.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RetentionStatus {
    pub max_age_secs: u64,
    pub max_size_bytes: u64,
    /// Bytes the records take now (free pages excluded).
    pub used_bytes: u64,
    /// Size of the database file.
    pub file_bytes: u64,
    /// Passes finished since start.
    pub passes: u64,
    /// A pass is deleting right now.
    pub running: bool,
    /// Rows deleted since start.
    pub pruned: Pruned,
    /// Unix seconds of the last finished pass.
    pub last_pass_at: Option<i64>,
    pub last_pass_ms: u64,
    /// Longest a batch held the journal's write lock, since start.
    pub longest_batch_ms: u64,
    /// The journal stays above `max_size` with nothing left to delete but
    /// what active rules rest on.
    pub over_size: bool,
    pub error: Option<String>,
}

/// The status shared between the retention thread and the daemon's tick.
pub type SharedRetention = Arc<Mutex<RetentionStatus>>;

/// One retention pass: age first, then size, batch by batch, updating
/// `status` as it goes. `on_batch` sees what each batch deleted (metrics).
pub fn prune(
    store: &mut Store,
    cfg: &JournalConfig,
    status: &SharedRetention,
    mut on_batch: impl FnMut(&Pruned),
) -> Result<Pruned, StoreError> {
    let started = Instant::now();
    set(status, |s| s.running = true);
    let mut total = Pruned::default();
    let mut over_size = false;
    let mut run = |store: &mut Store, cutoff: i64| -> Result<u64, StoreError> {
        let t = Instant::now();
        let p = store.prune_batch(cutoff, cfg.batch)?;
        let ms = t.elapsed().as_millis() as u64;
        total += p;
        on_batch(&p);
        set(status, |s| {
            s.pruned += p;
            s.longest_batch_ms = s.longest_batch_ms.max(ms);
        });
        std::thread::sleep(PAUSE);
        Ok(p.total())
    };
    if !cfg.max_age.is_zero() {
        let age = i64::try_from(cfg.max_age.as_secs()).unwrap_or(i64::MAX);
        let cutoff = clock::unix_secs(SystemTime::now()).saturating_sub(age);
        while run(store, cutoff)? > 0 {}
    }
    if cfg.max_size != 0 {
        while store.used_bytes()? > cfg.max_size {
            if run(store, i64::MAX)? == 0 {
                over_size = true;
                break;
            }
        }
    }
    store.checkpoint()?;
    let used = store.used_bytes()?;
    let file = std::fs::metadata(store.path()).map_or(0, |m| m.len());
    set(status, |s| {
        s.running = false;
        s.passes += 1;
        s.used_bytes = used;
        s.file_bytes = file;
        s.over_size = over_size;
        s.last_pass_at = Some(clock::unix_secs(SystemTime::now()));
        s.last_pass_ms = started.elapsed().as_millis() as u64;
        s.error = None;
    });
    if total.total() > 0 {
        info!(
            "journal retention: pruned {} incidents, {} debates, {} verdicts, {} removed rules in {} ms; the journal holds {} KiB",
            total.incidents,
            total.debates,
            total.verdicts,
            total.rules,
            started.elapsed().as_millis(),
            used / 1024
        );
    }
    if over_size {
        warn!(
            "journal retention: the journal holds {} KiB, over [journal] max_size ({} KiB), and what is left backs active rules; raise max_size or lift bans",
            used / 1024,
            cfg.max_size / 1024
        );
    }
    Ok(total)
}

fn set(status: &SharedRetention, f: impl FnOnce(&mut RetentionStatus)) {
    if let Ok(mut s) = status.lock() {
        f(&mut s);
    }
}

/// Starts retention on its own thread and connection: converts an older
/// journal to incremental vacuum first (before returning, so before the
/// pipeline writes), then runs a pass every `interval`, the first one now.
/// Without a usable journal nothing runs (the daemon is degraded anyway).
pub fn spawn(
    state_dir: &Path,
    cfg: &JournalConfig,
    on_batch: impl FnMut(&Pruned) + Send + 'static,
) -> SharedRetention {
    let status = Arc::new(Mutex::new(RetentionStatus {
        max_age_secs: cfg.max_age.as_secs(),
        max_size_bytes: cfg.max_size,
        ..RetentionStatus::default()
    }));
    let mut store = match Store::open_existing_in(state_dir) {
        Ok(s) => s,
        Err(e) => {
            set(&status, |s| s.error = Some(e.to_string()));
            return status;
        }
    };
    match store.ensure_incremental_vacuum() {
        Ok(true) => info!(
            "journal {} converted to incremental vacuum (once), so retention can shrink it",
            store.path().display()
        ),
        Ok(false) => {}
        Err(e) => warn!("journal retention: {e}; the file will not shrink"),
    }
    let (cfg, shared) = (cfg.clone(), status.clone());
    let mut on_batch = on_batch;
    let spawned = std::thread::Builder::new()
        .name("journal-retention".into())
        .spawn(move || {
            loop {
                if let Err(e) = prune(&mut store, &cfg, &shared, &mut on_batch) {
                    warn!("journal retention: {e}; trying again in {:?}", cfg.interval);
                    set(&shared, |s| {
                        s.running = false;
                        s.error = Some(e.to_string());
                    });
                }
                // The daemon gone (its status dropped): stop.
                if Arc::strong_count(&shared) == 1 {
                    break;
                }
                std::thread::sleep(cfg.interval);
            }
        });
    if let Err(e) = spawned {
        warn!("journal retention not started: {e}");
    }
    status
}

/// Serde for byte sizes written as `512MiB`, `1GiB`, `64MB`, `0`.
pub mod size {
    use serde::{Deserialize, Deserializer, Serializer};

    const UNITS: &[(&str, u64)] = &[
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("TiB", 1 << 40),
        ("KB", 1_000),
        ("MB", 1_000_000),
        ("GB", 1_000_000_000),
        ("TB", 1_000_000_000_000),
        ("B", 1),
    ];

    /// `512MiB` → 536870912.
    pub fn parse(s: &str) -> Result<u64, String> {
        let t = s.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(digits);
        let n: u64 = n
            .parse()
            .map_err(|_| format!("{s:?} is not a size (examples: 512MiB, 2GiB, 0)"))?;
        let unit = unit.trim();
        let mult = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(u, _)| u.eq_ignore_ascii_case(unit))
                .map(|(_, m)| *m)
                .ok_or_else(|| {
                    format!("{s:?}: unknown unit {unit:?} (B, KiB, MiB, GiB, KB, MB, GB)")
                })?
        };
        n.checked_mul(mult)
            .ok_or_else(|| format!("{s:?} is too large"))
    }

    /// The largest binary unit that divides `n` exactly.
    pub fn format(n: u64) -> String {
        for (u, m) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if n != 0 && n.is_multiple_of(m) {
                return format!("{}{u}", n / m);
            }
        }
        format!("{n}B")
    }

    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*n))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::{
        rule::List,
        state::journal::{NewRule, VerdictRecord},
    };

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "blocker-retention-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// `n` incidents opened `age_secs` ago, each with a 256-byte summary, in
    /// one transaction.
    fn fill(store: &Store, n: u64, first: u64, age_secs: i64) {
        let at = clock::unix_secs(SystemTime::now()) - age_secs;
        let summary = "x".repeat(256);
        let c = store.conn();
        c.execute_batch("BEGIN").unwrap();
        {
            let mut st = c
                .prepare(
                    "INSERT INTO incidents (id, peer, opened_at, closed_at, alert_count, summary)
                     VALUES (?1, '198.18.1.1', ?2, ?2, 1, ?3)",
                )
                .unwrap();
            for i in first..first + n {
                st.execute(rusqlite::params![i as i64, at, summary])
                    .unwrap();
            }
        }
        c.execute_batch("COMMIT").unwrap();
    }

    /// An active council ban backed by a verdict and a debate of incident
    /// `incident`, all `age_secs` old.
    fn active_ban(store: &mut Store, incident: u64, age_secs: i64) -> i64 {
        let peer: IpAddr = "198.18.7.7".parse().unwrap();
        let rule = store
            .record(&NewRule {
                list: List::Block,
                net: crate::addr::host(peer),
                ttl: Some(Duration::from_secs(3600)),
                reason: "council",
                reason_code: blocker_common::reason::MANUAL,
                source: "council",
            })
            .unwrap();
        let action = crate::council::Action::Block {
            target: crate::addr::host(peer),
            ttl_secs: 3600,
        };
        store
            .conn()
            .execute(
                "INSERT INTO debates (incident_id, peer, started_at, wall_ms, rounds, calls, prompt_tokens, completion_tokens, stop, passed, transcript)
                 VALUES (?1, '198.18.7.7', ?2, 1, 2, 0, 0, 0, 'converged', 1, '{}')",
                rusqlite::params![incident as i64, clock::unix_secs(SystemTime::now()) - age_secs],
            )
            .unwrap();
        let debate = store.conn().last_insert_rowid();
        store
            .record_verdict(&VerdictRecord {
                debate_id: Some(debate),
                incident_id: Some(incident),
                peer,
                action: &action,
                justification: "treason",
                outcome: "applied",
                detail: None,
                rule_id: Some(rule),
            })
            .unwrap();
        store
            .conn()
            .execute(
                "UPDATE verdicts SET decided_at = decided_at - ?1",
                [age_secs],
            )
            .unwrap();
        rule
    }

    #[test]
    fn a_hundred_thousand_incidents_shrink_to_the_bounds_and_active_bans_stay() {
        let dir = temp_dir("shrink");
        let mut store = Store::open_in(&dir).unwrap();
        // 60k old (past max_age), 40k recent but over max_size.
        fill(&store, 60_000, 1, 90 * 86_400);
        fill(&store, 40_000, 60_001, 60);
        active_ban(&mut store, 5, 90 * 86_400);
        store.checkpoint().unwrap();
        let before = store.used_bytes().unwrap();
        assert!(before > 20 << 20, "{before}");
        let cfg = JournalConfig {
            max_size: 4 << 20,
            batch: 2000,
            ..JournalConfig::default()
        };
        let status = SharedRetention::default();
        let mut batches = 0;
        let pruned = prune(&mut store, &cfg, &status, |_| batches += 1).unwrap();
        let s = status.lock().unwrap().clone();
        assert!(s.used_bytes <= cfg.max_size, "{s:?}");
        assert!(!s.over_size, "{s:?}");
        assert!(batches > 10, "small batches: {batches}");
        // The file shrank (incremental vacuum), not only its free list.
        let file = std::fs::metadata(store.path()).unwrap().len();
        assert!(file <= cfg.max_size + (1 << 20), "file {file}, {s:?}");
        let rows = store.council_rows().unwrap();
        assert!(rows.incidents < 40_000, "{rows:?}");
        assert_eq!(pruned.incidents, 100_000 - rows.incidents);
        // Everything old went, except the incident behind the active ban.
        let old: i64 = store
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM incidents WHERE id <= 60000",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old, 1);
        assert_eq!(store.active_rules().unwrap().len(), 1);
        assert_eq!((rows.debates, rows.verdicts), (1, 1));
        // And after a restart.
        drop(store);
        let store = Store::open_in(&dir).unwrap();
        assert_eq!(store.active_rules().unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn records_of_lifted_bans_age_out() {
        let dir = temp_dir("lifted");
        let mut store = Store::open_in(&dir).unwrap();
        let rule = active_ban(&mut store, 9, 90 * 86_400);
        fill(&store, 10, 9, 90 * 86_400);
        let status = SharedRetention::default();
        let cfg = JournalConfig::default();
        prune(&mut store, &cfg, &status, |_| {}).unwrap();
        assert_eq!(store.council_rows().unwrap().incidents, 1);
        // Lifted 60 days ago: nothing backs an active rule any more.
        store.remove_id(rule, "unban").unwrap();
        store
            .conn()
            .execute("UPDATE rules SET removed_at = removed_at - 5184000", [])
            .unwrap();
        prune(&mut store, &cfg, &status, |_| {}).unwrap();
        assert_eq!(
            store.council_rows().unwrap(),
            Pruned::default(),
            "{:?}",
            status.lock().unwrap()
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(size::parse("512MiB").unwrap(), 512 << 20);
        assert_eq!(size::parse("1 gib").unwrap(), 1 << 30);
        assert_eq!(size::parse("64MB").unwrap(), 64_000_000);
        assert_eq!(size::parse("0").unwrap(), 0);
        assert!(size::parse("lots").is_err());
        assert!(size::parse("5 parsecs").is_err());
        assert!(size::parse("99999999999TiB").is_err());
        assert_eq!(size::format(512 << 20), "512MiB");
        assert_eq!(size::format(1000), "1000B");
    }
}
