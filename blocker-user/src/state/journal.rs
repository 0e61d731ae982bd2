//! The SQLite journal: every rule ever written (with its free-text reason
//! and where it came from), so bans survive reboots and the council can see
//! a source's history. The seed's `badips` table, done properly.
//!
//! A rule is written here and committed before it is written to the map
//! (see `enforcer`), so a crash can never leave a ban enforced but
//! unrecorded.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use ipnet::IpNet;
use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    addr, clock,
    council::facts::{BanHistory, JailFacts},
    rule::List,
};

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "blocker.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {dir}: {source}")]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "store {path}: {source}; if the file is corrupt, move it aside (bans still in the kernel maps keep being enforced) and restart"
    )]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "store {path}: the disk is full ({free_kib} KiB free); blocker refuses new rules rather than enforce ones it cannot record: free some space"
    )]
    DiskFull { path: PathBuf, free_kib: u64 },
    #[error(
        "no journal at {path}: nothing has been recorded yet (`blocker run` or `blocker ban` creates it)"
    )]
    Missing { path: PathBuf },
    #[error(
        "store {path} has schema version {found}, newer than this blocker understands ({known}); upgrade blocker"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

/// A SQLite error as the operator should read it. A full disk shows up as
/// SQLITE_FULL, or as an I/O error when SQLite cannot even grow its
/// shared-memory index; in both cases, say the disk is full.
fn sqlite_error(path: &Path, source: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{DiskFull, SystemIoFailure};
    let code = source.sqlite_error_code();
    let free = path
        .parent()
        .and_then(|d| crate::kernel::sys::free_bytes(d).ok());
    let tight = free.is_some_and(|f| f < 256 * 1024);
    if code == Some(DiskFull) || (code == Some(SystemIoFailure) && tight) {
        return StoreError::DiskFull {
            path: path.to_owned(),
            free_kib: free.unwrap_or(0) / 1024,
        };
    }
    StoreError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

/// The fleet's tables (migration 3); `fleet::journal` reads and writes them.
pub const FLEET_SCHEMA: &str = "CREATE TABLE fleet_outbox (
        id           INTEGER PRIMARY KEY,
        decision_id  TEXT NOT NULL UNIQUE,
        kind         TEXT NOT NULL,         -- block, unblock
        target       TEXT NOT NULL,         -- canonical CIDR
        body         TEXT NOT NULL,         -- JSON: the decision as published
        created_at   INTEGER NOT NULL,      -- unix seconds
        published_at INTEGER,               -- NULL = queued
        stream_seq   INTEGER                -- the stream's sequence number
    );
    CREATE INDEX fleet_outbox_queued ON fleet_outbox (id) WHERE published_at IS NULL;
    CREATE TABLE fleet_received (
        id           INTEGER PRIMARY KEY,
        decision_id  TEXT NOT NULL,
        origin       TEXT NOT NULL,
        kind         TEXT NOT NULL,
        target       TEXT NOT NULL,
        body         TEXT NOT NULL,         -- JSON: the decision as received
        received_at  INTEGER NOT NULL,      -- unix seconds
        outcome      TEXT NOT NULL,         -- applied, refused, failed
        detail       TEXT,                  -- why it was refused, or the error
        rule_id      INTEGER                -- the rules row an applied block wrote
    );
    CREATE INDEX fleet_received_decision ON fleet_received (decision_id);";

/// Schema migrations; entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: rules with their history.
    "CREATE TABLE rules (
        id          INTEGER PRIMARY KEY,
        list        TEXT NOT NULL CHECK (list IN ('allow', 'block')),
        prefix      TEXT NOT NULL,          -- canonical CIDR, e.g. 198.51.100.7/32
        added_at    INTEGER NOT NULL,       -- unix seconds
        expires_at  INTEGER,                -- unix seconds; NULL = never
        reason      TEXT NOT NULL,
        reason_code INTEGER NOT NULL,       -- blocker_common::reason
        source      TEXT NOT NULL,          -- cli, council, import, ...
        removed_at  INTEGER,                -- unix seconds; NULL = active
        removed_by  TEXT                    -- unban, expired, replaced, failed
    );
    CREATE INDEX rules_active ON rules (list, prefix) WHERE removed_at IS NULL;
    CREATE INDEX rules_prefix ON rules (prefix);",
    // 2: the council's work: incidents, debates (whole transcripts), verdicts.
    "CREATE TABLE incidents (
        id          INTEGER PRIMARY KEY,    -- the tracker's id
        peer        TEXT NOT NULL,
        opened_at   INTEGER NOT NULL,       -- unix seconds
        closed_at   INTEGER,
        alert_count INTEGER NOT NULL,
        summary     TEXT NOT NULL           -- JSON: counts by kind, evidence sample
    );
    CREATE TABLE debates (
        id                INTEGER PRIMARY KEY,
        incident_id       INTEGER,
        peer              TEXT NOT NULL,
        started_at        INTEGER NOT NULL,
        wall_ms           INTEGER NOT NULL,
        rounds            INTEGER NOT NULL,
        calls             INTEGER NOT NULL,
        prompt_tokens     INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        stop              TEXT NOT NULL,
        passed            INTEGER NOT NULL,
        transcript        TEXT NOT NULL     -- JSON: the whole debate
    );
    CREATE INDEX debates_incident ON debates (incident_id);
    CREATE TABLE verdicts (
        id            INTEGER PRIMARY KEY,
        debate_id     INTEGER,
        incident_id   INTEGER,
        peer          TEXT NOT NULL,
        action        TEXT NOT NULL,        -- JSON: the typed action
        justification TEXT NOT NULL,
        decided_at    INTEGER NOT NULL,
        outcome       TEXT NOT NULL,        -- applied, refused, dry-run, failed
        detail        TEXT,                 -- the guard's reason, or the error
        rule_id       INTEGER               -- the rules row an applied block wrote
    );
    CREATE INDEX verdicts_debate ON verdicts (debate_id);",
    // 3: the fleet's outbox (own decisions to publish, also the queue while
    // NATS is away) and the decisions received from peers.
    FLEET_SCHEMA,
    // 4: retention (`[journal]`, state::retention) deletes the oldest
    // records first and keeps whatever an active rule rests on; these
    // indexes make "is this row still referenced?" a lookup.
    "CREATE INDEX verdicts_rule ON verdicts (rule_id) WHERE rule_id IS NOT NULL;
    CREATE INDEX verdicts_incident ON verdicts (incident_id);",
    // 5: one index on rules, not two. Finding a prefix's active record
    // walks that prefix's history through `rules_prefix` (a few rows,
    // bounded by retention), so `rules_active` only doubled the B-tree work
    // of every insert and removal: measured on a million-rule import, the
    // journal's share halved without it (issue 14).
    "DROP INDEX IF EXISTS rules_active;",
];

/// A prefix in the journal's text form (`198.51.100.7/32`), formatted on
/// the stack: a bulk import binds a million of them.
struct PrefixText {
    buf: [u8; 64],
    len: usize,
}

impl PrefixText {
    fn new(net: &IpNet) -> Self {
        use std::fmt::Write as _;
        let mut t = Self {
            buf: [0; 64],
            len: 0,
        };
        // The longest prefix, an IPv6 address with /128, is 43 bytes.
        write!(t, "{net}").expect("a prefix fits in 64 bytes");
        t
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).expect("formatted as UTF-8")
    }
}

impl std::fmt::Write for PrefixText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Rows deleted by retention, per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pruned {
    pub incidents: u64,
    pub debates: u64,
    pub verdicts: u64,
    /// Removed (expired, unbanned, replaced) rules; active ones are never
    /// deleted.
    pub rules: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.incidents + self.debates + self.verdicts + self.rules
    }
}

impl std::ops::AddAssign for Pruned {
    fn add_assign(&mut self, o: Self) {
        self.incidents += o.incidents;
        self.debates += o.debates;
        self.verdicts += o.verdicts;
        self.rules += o.rules;
    }
}

/// The retention deletes, oldest rows first, at most `?2` per statement,
/// of rows older than `?1` (unix seconds). Order matters: a verdict that
/// wrote an active rule is kept, and so are the debate it came from and
/// the incident behind that debate, because the statements after it skip
/// rows something still refers to.
const PRUNE: [&str; 4] = [
    "DELETE FROM verdicts WHERE id IN (
        SELECT v.id FROM verdicts v WHERE v.decided_at < ?1
        AND NOT EXISTS (SELECT 1 FROM rules r WHERE r.id = v.rule_id AND r.removed_at IS NULL)
        ORDER BY v.id LIMIT ?2)",
    "DELETE FROM debates WHERE id IN (
        SELECT d.id FROM debates d WHERE d.started_at < ?1
        AND NOT EXISTS (SELECT 1 FROM verdicts v WHERE v.debate_id = d.id)
        ORDER BY d.id LIMIT ?2)",
    "DELETE FROM incidents WHERE id IN (
        SELECT i.id FROM incidents i WHERE COALESCE(i.closed_at, i.opened_at) < ?1
        AND NOT EXISTS (SELECT 1 FROM debates d WHERE d.incident_id = i.id)
        AND NOT EXISTS (SELECT 1 FROM verdicts v WHERE v.incident_id = i.id)
        ORDER BY i.id LIMIT ?2)",
    "DELETE FROM rules WHERE id IN (
        SELECT id FROM rules WHERE removed_at IS NOT NULL AND removed_at < ?1
        ORDER BY id LIMIT ?2)",
];

/// Whether a rule's `source` is of `origin`: the same, or under it
/// (`crowdsec` covers `crowdsec:cscli` and `crowdsec:lists:NAME`;
/// `crowdsec:lists` covers every list). What `--origin` selects.
pub fn source_matches(source: &str, origin: &str) -> bool {
    source == origin
        || source
            .strip_prefix(origin)
            .is_some_and(|rest| rest.starts_with(':'))
}

/// A rule as recorded in the store.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredRule {
    pub id: i64,
    pub list: List,
    pub net: IpNet,
    pub added_at: i64,
    pub expires_at: Option<i64>,
    pub reason: String,
    pub reason_code: u32,
    pub source: String,
    pub removed_at: Option<i64>,
    pub removed_by: Option<String>,
}

/// An active rule as reconciliation reads it: no free text. `list` and
/// `net` are `None` for a row that no longer parses (never written by
/// blocker; skipped).
#[derive(Clone, Copy, Debug)]
pub struct ActiveRule {
    pub id: i64,
    pub list: Option<List>,
    pub net: Option<IpNet>,
    pub added_at: i64,
    pub expires_at: Option<i64>,
    pub reason_code: u32,
}

/// Active rules' (reason, source) by list and prefix: [`Store::active_labels`].
pub type ActiveLabels =
    std::collections::HashMap<(List, IpNet), (std::rc::Rc<str>, std::rc::Rc<str>)>;

/// An incident to record.
#[derive(Clone, Debug)]
pub struct IncidentRecord<'a> {
    pub id: u64,
    pub peer: std::net::IpAddr,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    pub alert_count: u64,
    pub summary: &'a str,
}

/// A verdict to record.
#[derive(Clone, Debug)]
pub struct VerdictRecord<'a> {
    pub debate_id: Option<i64>,
    pub incident_id: Option<u64>,
    pub peer: std::net::IpAddr,
    pub action: &'a crate::council::Action,
    pub justification: &'a str,
    pub outcome: &'a str,
    pub detail: Option<&'a str>,
    pub rule_id: Option<i64>,
}

/// A debate in `blocker debates list`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DebateRow {
    pub id: i64,
    pub incident_id: Option<i64>,
    pub peer: String,
    pub started_at: i64,
    pub wall_ms: i64,
    pub rounds: i64,
    pub calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub stop: String,
    pub passed: i64,
}

/// A verdict of a debate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerdictRow {
    pub id: i64,
    /// JSON of the typed action.
    pub action: String,
    pub justification: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub rule_id: Option<i64>,
}

/// A recent verdict, for `blocker top`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerdictSummary {
    /// Unix seconds.
    pub decided_at: i64,
    pub peer: String,
    /// JSON of the typed action.
    pub action: String,
    /// applied, refused, dry-run or failed.
    pub outcome: String,
    /// The guard's reason, or the error.
    pub detail: Option<String>,
}

/// What to record for a new rule.
#[derive(Clone, Debug)]
pub struct NewRule<'a> {
    pub list: List,
    pub net: IpNet,
    pub ttl: Option<Duration>,
    pub reason: &'a str,
    pub reason_code: u32,
    pub source: &'a str,
}

/// Creates `dir` (and its parents) and makes it 0700: the state directory
/// holds the journal, whose transcripts carry attacker text and verdict
/// history.
pub fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt as _;
    let e = |source| StoreError::Dir {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(e)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(e)
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) `<state_dir>/blocker.db`.
    pub fn open_in(state_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(state_dir)?;
        let store = Self::open(&state_dir.join(DB_FILE))?;
        // Transcripts hold attacker text and the verdict history: owner
        // only. SQLite creates the -wal and -shm files with the database's
        // mode.
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(
            state_dir.join(DB_FILE),
            std::fs::Permissions::from_mode(0o600),
        );
        Ok(store)
    }

    /// Opens `<state_dir>/blocker.db` only if it exists: readers (`blocker
    /// top`, the metrics collector) must not create an empty journal that
    /// a later `blocker run` would take for the real one.
    pub fn open_existing_in(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::Missing { path });
        }
        Self::open(&path)
    }

    /// Opens (creating if needed) the database at `path` and migrates it.
    /// (Its directory is the caller's: see [`create_private_dir`].)
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| sqlite_error(path, source);
        let conn = Connection::open(path).map_err(err)?;
        // Freed pages go back to the file system when retention asks
        // (`incremental_vacuum`). Only takes effect on a new file; older
        // journals are converted once by [`Store::ensure_incremental_vacuum`].
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(err)?;
        // WAL: readers (CLI) never block the daemon's writes. NORMAL sync is
        // durable across process crashes; FULL also across power loss, which
        // is what a ban journal must survive.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        let mut store = Self {
            conn,
            path: path.to_owned(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The connection, for the fleet's rows in the same journal.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| sqlite_error(&self.path, source)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.err())?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let path = self.path.clone();
            let err = move |source| StoreError::Sqlite {
                path: path.clone(),
                source,
            };
            let tx = self.conn.transaction().map_err(&err)?;
            tx.execute_batch(sql).map_err(&err)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(&err)?;
            tx.commit().map_err(&err)?;
        }
        Ok(())
    }

    /// Records `rule` as the active rule for its prefix (a previous active
    /// one is marked `replaced`), committed before returning. Returns its id.
    pub fn record(&mut self, rule: &NewRule<'_>) -> Result<i64, StoreError> {
        let mut id = 0;
        self.batch(|s| {
            id = s.record_uncommitted(rule)?;
            Ok(())
        })?;
        Ok(id)
    }

    /// Records several rules in one transaction (one fsync): imports and
    /// restores. Returns their ids, in order.
    pub fn record_all(&mut self, rules: &[NewRule<'_>]) -> Result<Vec<i64>, StoreError> {
        let mut ids = Vec::with_capacity(rules.len());
        self.batch(|s| {
            for r in rules {
                ids.push(s.record_uncommitted(r)?);
            }
            Ok(())
        })?;
        Ok(ids)
    }

    /// The two statements of [`Store::record`], inside the caller's batch.
    fn record_uncommitted(&mut self, rule: &NewRule<'_>) -> Result<i64, StoreError> {
        let now = clock::unix_secs(SystemTime::now());
        let expires = rule
            .ttl
            .map(|t| now.saturating_add(i64::try_from(t.as_secs()).unwrap_or(i64::MAX)));
        let prefix = PrefixText::new(&rule.net);
        // Cached statements: a batch of a million records prepares each
        // SQL text once, not twice per record.
        self.conn
            .prepare_cached(
                "UPDATE rules SET removed_at = ?1, removed_by = 'replaced'
                 WHERE prefix = ?3 AND list = ?2 AND removed_at IS NULL",
            )
            .and_then(|mut st| st.execute(params![now, rule.list.as_str(), prefix.as_str()]))
            .map_err(self.err())?;
        self.conn
            .prepare_cached(
                "INSERT INTO rules (list, prefix, added_at, expires_at, reason, reason_code, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    rule.list.as_str(),
                    prefix.as_str(),
                    now,
                    expires,
                    rule.reason,
                    rule.reason_code,
                    rule.source
                ])
            })
            .map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Marks the active rules for these prefixes removed, in one
    /// transaction; returns how many were.
    pub fn remove_all(&mut self, rules: &[(List, IpNet)], why: &str) -> Result<usize, StoreError> {
        let now = clock::unix_secs(SystemTime::now());
        let mut n = 0;
        self.batch(|s| {
            let mut st = s
                .conn
                .prepare_cached(
                    "UPDATE rules SET removed_at = ?1, removed_by = ?2
                     WHERE prefix = ?4 AND list = ?3 AND removed_at IS NULL",
                )
                .map_err(s.err())?;
            for (list, net) in rules {
                let prefix = PrefixText::new(net);
                n += st
                    .execute(params![now, why, list.as_str(), prefix.as_str()])
                    .map_err(s.err())?;
            }
            Ok(())
        })?;
        Ok(n)
    }

    /// Marks records removed by id, in one transaction (undo of a failed
    /// batch of map writes).
    pub fn remove_ids(&mut self, ids: &[i64], why: &str) -> Result<(), StoreError> {
        let now = clock::unix_secs(SystemTime::now());
        self.batch(|s| {
            let mut st = s
                .conn
                .prepare_cached("UPDATE rules SET removed_at = ?1, removed_by = ?2 WHERE id = ?3")
                .map_err(s.err())?;
            for id in ids {
                st.execute(params![now, why, id]).map_err(s.err())?;
            }
            Ok(())
        })
    }

    /// Marks the active rule for `net` on `list` removed; `false` if none.
    pub fn remove(&mut self, list: List, net: IpNet, why: &str) -> Result<bool, StoreError> {
        let now = clock::unix_secs(SystemTime::now());
        let n = self
            .conn
            .execute(
                "UPDATE rules SET removed_at = ?1, removed_by = ?2
                 WHERE list = ?3 AND prefix = ?4 AND removed_at IS NULL",
                params![now, why, list.as_str(), net.to_string()],
            )
            .map_err(self.err())?;
        Ok(n > 0)
    }

    /// Marks one record removed by id (undo of a failed map write).
    pub fn remove_id(&mut self, id: i64, why: &str) -> Result<(), StoreError> {
        let now = clock::unix_secs(SystemTime::now());
        self.conn
            .execute(
                "UPDATE rules SET removed_at = ?1, removed_by = ?2 WHERE id = ?3",
                params![now, why, id],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The active rule for `net` on `list`.
    pub fn active(&self, list: List, net: IpNet) -> Result<Option<StoredRule>, StoreError> {
        self.conn
            .query_row(
                &format!("{SELECT} WHERE list = ?1 AND prefix = ?2 AND removed_at IS NULL"),
                params![list.as_str(), net.to_string()],
                row_to_rule,
            )
            .optional()
            .map_err(self.err())
            .map(Option::flatten)
    }

    /// Every active rule.
    pub fn active_rules(&self) -> Result<Vec<StoredRule>, StoreError> {
        self.query(
            &format!("{SELECT} WHERE removed_at IS NULL ORDER BY id"),
            [],
        )
    }

    /// Up to `limit` active rules with an id above `after`, by id, without
    /// their free text: reconciliation reads a million-rule journal in
    /// pages of these, so its memory is one page, not the journal.
    pub fn active_page(&self, after: i64, limit: usize) -> Result<Vec<ActiveRule>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, list, prefix, added_at, expires_at, reason_code FROM rules
                 WHERE removed_at IS NULL AND id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map(params![after, limit as i64], |r| {
                let list = match r.get_ref(1)?.as_str()? {
                    "allow" => Some(List::Allow),
                    "block" => Some(List::Block),
                    _ => None,
                };
                let net = r.get_ref(2)?.as_str()?.parse::<IpNet>().ok();
                Ok(ActiveRule {
                    id: r.get(0)?,
                    list,
                    net,
                    added_at: r.get(3)?,
                    expires_at: r.get(4)?,
                    reason_code: r.get(5)?,
                })
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(rows)
    }

    /// The prefixes of the active rules on `list` whose source is `origin`
    /// or under it ([`source_matches`], in SQL): `unban --origin` of a
    /// million rules reads just these.
    pub fn active_of_origin(&self, list: List, origin: &str) -> Result<Vec<IpNet>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT prefix FROM rules WHERE removed_at IS NULL AND list = ?1
                 AND (source = ?2 OR substr(source, 1, length(?2) + 1) = ?2 || ':')
                 ORDER BY id",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map(params![list.as_str(), origin], |r| {
                Ok(r.get_ref(0)?.as_str()?.parse::<IpNet>().ok())
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(rows.into_iter().flatten().collect())
    }

    /// Every active rule's reason and source, by list and prefix, each
    /// distinct text held once (an import of a million rules has one
    /// reason): what `blocker export` labels the kernel's rules with.
    pub fn active_labels(&self) -> Result<ActiveLabels, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT list, prefix, reason, source FROM rules WHERE removed_at IS NULL")
            .map_err(self.err())?;
        let mut texts: std::collections::HashSet<std::rc::Rc<str>> = Default::default();
        let mut intern = |t: &str| -> std::rc::Rc<str> {
            if let Some(t) = texts.get(t) {
                return t.clone();
            }
            let t: std::rc::Rc<str> = t.into();
            texts.insert(t.clone());
            t
        };
        let mut out = ActiveLabels::new();
        let mut rows = st.query([]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let text = |i| r.get_ref(i).and_then(|v| Ok(v.as_str()?));
            let (list, prefix, reason, source) =
                (|| Ok::<_, rusqlite::Error>((text(0)?, text(1)?, text(2)?, text(3)?)))()
                    .map_err(self.err())?;
            let list = match list {
                "allow" => List::Allow,
                "block" => List::Block,
                _ => continue,
            };
            let Ok(net) = prefix.parse::<IpNet>() else {
                continue;
            };
            out.insert((list, net), (intern(reason), intern(source)));
        }
        Ok(out)
    }

    /// Every record ever made for exactly `net` (any list), oldest first.
    pub fn history(&self, net: IpNet) -> Result<Vec<StoredRule>, StoreError> {
        self.query(
            &format!("{SELECT} WHERE prefix = ?1 ORDER BY id"),
            params![net.to_string()],
        )
    }

    /// Runs `f` inside one transaction: several journal records, one
    /// commit (one fsync). `f` must not start another batch.
    pub fn batch(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(self.err())?;
        match f(self) {
            Ok(()) => self.conn.execute_batch("COMMIT").map_err(self.err()),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Bytes the journal's pages hold, free pages excluded: what retention
    /// bounds by `[journal] max_size`.
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        let q = |sql: &str| -> Result<u64, StoreError> {
            self.conn
                .query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
                .map_err(self.err())
        };
        let pages = q("PRAGMA page_count")?.saturating_sub(q("PRAGMA freelist_count")?);
        Ok(pages * q("PRAGMA page_size")?)
    }

    /// Makes an older journal (created before retention, `auto_vacuum`
    /// off) give freed pages back to the file system: one `VACUUM`, which
    /// holds the write lock for as long as it copies the file, so callers
    /// run it before the pipeline starts. Returns whether it converted.
    pub fn ensure_incremental_vacuum(&mut self) -> Result<bool, StoreError> {
        let mode: i64 = self
            .conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .map_err(self.err())?;
        // 2 = INCREMENTAL.
        if mode == 2 {
            return Ok(false);
        }
        self.conn
            .pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(self.err())?;
        self.conn.execute_batch("VACUUM").map_err(self.err())?;
        Ok(true)
    }

    /// One retention batch, in one short transaction: deletes at most
    /// `limit` rows of each table that are older than `cutoff` (unix
    /// seconds), oldest first, never what an active rule rests on (see
    /// [`PRUNE`]), then gives the freed pages back to the file system.
    pub fn prune_batch(&mut self, cutoff: i64, limit: usize) -> Result<Pruned, StoreError> {
        let mut n = [0u64; 4];
        self.batch(|s| {
            for (sql, count) in PRUNE.iter().zip(n.iter_mut()) {
                *count = s
                    .conn
                    .prepare_cached(sql)
                    .and_then(|mut st| st.execute(params![cutoff, limit as i64]))
                    .map_err(s.err())? as u64;
            }
            Ok(())
        })?;
        let pruned = Pruned {
            verdicts: n[0],
            debates: n[1],
            incidents: n[2],
            rules: n[3],
        };
        if pruned.total() > 0 {
            // Outside the transaction (SQLite runs it as its own); frees
            // only pages this batch left on the free list, so it is short.
            // Every step frees one page: step until done (`execute_batch`
            // stops after the first).
            self.conn
                .prepare_cached("PRAGMA incremental_vacuum")
                .and_then(|mut st| {
                    let mut rows = st.query([])?;
                    while rows.next()?.is_some() {}
                    Ok(())
                })
                .map_err(self.err())?;
        }
        Ok(pruned)
    }

    /// Copies the WAL into the database file without waiting for readers
    /// or blocking writers (PASSIVE), so the file's size reflects what
    /// retention freed.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(self.err())
    }

    /// Rows in the incidents, debates and verdicts tables.
    pub fn council_rows(&self) -> Result<Pruned, StoreError> {
        let q = |t: &str| -> Result<u64, StoreError> {
            self.conn
                .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n as u64)
                .map_err(self.err())
        };
        Ok(Pruned {
            incidents: q("incidents")?,
            debates: q("debates")?,
            verdicts: q("verdicts")?,
            rules: q("rules")?,
        })
    }

    /// The highest incident id recorded (the tracker continues after it).
    pub fn max_incident_id(&self) -> Result<u64, StoreError> {
        let id: Option<i64> = self
            .conn
            .query_row("SELECT MAX(id) FROM incidents", [], |r| r.get(0))
            .map_err(self.err())?;
        let debated: Option<i64> = self
            .conn
            .query_row("SELECT MAX(incident_id) FROM debates", [], |r| r.get(0))
            .map_err(self.err())?;
        Ok(id.max(debated).unwrap_or(0).max(0) as u64)
    }

    /// Records (or updates) an incident.
    pub fn record_incident(&mut self, i: &IncidentRecord<'_>) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO incidents (id, peer, opened_at, closed_at, alert_count, summary)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET closed_at = excluded.closed_at,
                     alert_count = excluded.alert_count, summary = excluded.summary",
                params![
                    i.id as i64,
                    i.peer.to_string(),
                    i.opened_at,
                    i.closed_at,
                    i.alert_count as i64,
                    i.summary
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Records a debate and returns its id.
    pub fn record_debate(
        &mut self,
        incident_id: u64,
        debate: &crate::council::Debate,
    ) -> Result<i64, StoreError> {
        let transcript = serde_json::to_string(debate).unwrap_or_else(|_| "{}".into());
        let stop = serde_json::to_string(&debate.stop).unwrap_or_default();
        self.conn
            .execute(
                "INSERT INTO debates (incident_id, peer, started_at, wall_ms, rounds, calls, prompt_tokens,
                     completion_tokens, stop, passed, transcript)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    incident_id as i64,
                    debate.peer.to_string(),
                    clock::unix_secs(SystemTime::now()),
                    debate.wall_ms as i64,
                    debate.rounds,
                    debate.usage.calls,
                    debate.usage.prompt_tokens as i64,
                    debate.usage.completion_tokens as i64,
                    stop.trim_matches('"'),
                    debate.passed.len() as i64,
                    transcript
                ],
            )
            .map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records a verdict and what became of it; returns its id.
    pub fn record_verdict(&mut self, v: &VerdictRecord<'_>) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO verdicts (debate_id, incident_id, peer, action, justification, decided_at, outcome, detail, rule_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    v.debate_id,
                    v.incident_id.map(|i| i as i64),
                    v.peer.to_string(),
                    serde_json::to_string(v.action).unwrap_or_default(),
                    v.justification,
                    clock::unix_secs(SystemTime::now()),
                    v.outcome,
                    v.detail,
                    v.rule_id
                ],
            )
            .map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The last `limit` verdicts, newest first.
    pub fn recent_verdicts(&self, limit: usize) -> Result<Vec<VerdictSummary>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT decided_at, peer, action, outcome, detail FROM verdicts ORDER BY id DESC LIMIT ?1",
            )
            .map_err(self.err())?;
        stmt.query_map(params![limit as i64], |r| {
            Ok(VerdictSummary {
                decided_at: r.get(0)?,
                peer: r.get(1)?,
                action: r.get(2)?,
                outcome: r.get(3)?,
                detail: r.get(4)?,
            })
        })
        .map_err(self.err())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(self.err())
    }

    /// Debates, newest first: `(id, incident_id, peer, started_at, wall_ms,
    /// rounds, calls, prompt+completion tokens, stop, passed)`.
    pub fn debates(&self, limit: usize) -> Result<Vec<DebateRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, incident_id, peer, started_at, wall_ms, rounds, calls, prompt_tokens,
                        completion_tokens, stop, passed FROM debates ORDER BY id DESC LIMIT ?1",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![limit as i64], |r| {
                Ok(DebateRow {
                    id: r.get(0)?,
                    incident_id: r.get(1)?,
                    peer: r.get(2)?,
                    started_at: r.get(3)?,
                    wall_ms: r.get(4)?,
                    rounds: r.get(5)?,
                    calls: r.get(6)?,
                    prompt_tokens: r.get(7)?,
                    completion_tokens: r.get(8)?,
                    stop: r.get(9)?,
                    passed: r.get(10)?,
                })
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(rows)
    }

    /// The incident a debate was about.
    pub fn debates_incident(&self, id: i64) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT incident_id FROM debates WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())
            .map(Option::flatten)
    }

    /// A debate's full transcript and the verdicts it led to.
    pub fn debate(
        &self,
        id: i64,
    ) -> Result<Option<(crate::council::Debate, Vec<VerdictRow>)>, StoreError> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT transcript FROM debates WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        let Some(text) = text else { return Ok(None) };
        let Ok(debate) = serde_json::from_str(&text) else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, action, justification, outcome, detail, rule_id FROM verdicts WHERE debate_id = ?1 ORDER BY id",
            )
            .map_err(self.err())?;
        let verdicts = stmt
            .query_map(params![id], |r| {
                Ok(VerdictRow {
                    id: r.get(0)?,
                    action: r.get(1)?,
                    justification: r.get(2)?,
                    outcome: r.get(3)?,
                    detail: r.get(4)?,
                    rule_id: r.get(5)?,
                })
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(Some((debate, verdicts)))
    }

    fn query(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<StoredRule>, StoreError> {
        let mut stmt = self.conn.prepare(sql).map_err(self.err())?;
        let rows = stmt
            .query_map(params, row_to_rule)
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(rows.into_iter().flatten().collect())
    }
}

impl BanHistory for Store {
    fn jail_facts(&self, peer: IpAddr) -> JailFacts {
        let history = self.history(addr::host(peer)).unwrap_or_default();
        let bans: Vec<_> = history
            .iter()
            .filter(|r| r.list == List::Block && r.removed_by.as_deref() != Some("failed"))
            .collect();
        JailFacts {
            previous_bans: bans.len() as u32,
            last_ban_at: bans.last().map(|r| r.added_at),
        }
    }
}

const SELECT: &str = "SELECT id, list, prefix, added_at, expires_at, reason, reason_code, source,
    removed_at, removed_by FROM rules";

/// A row, or `None` for a row whose prefix or list no longer parses (never
/// written by blocker; skipped rather than failing every read).
fn row_to_rule(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<StoredRule>> {
    let list = match r.get::<_, String>(1)?.as_str() {
        "allow" => List::Allow,
        "block" => List::Block,
        _ => return Ok(None),
    };
    let Ok(net) = r.get::<_, String>(2)?.parse::<IpNet>() else {
        return Ok(None);
    };
    Ok(Some(StoredRule {
        id: r.get(0)?,
        list,
        net,
        added_at: r.get(3)?,
        expires_at: r.get(4)?,
        reason: r.get(5)?,
        reason_code: r.get(6)?,
        source: r.get(7)?,
        removed_at: r.get(8)?,
        removed_by: r.get(9)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> (Store, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "blocker-store-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        (Store::open_in(&dir).unwrap(), dir)
    }

    fn rule(net: &str, list: List) -> NewRule<'static> {
        NewRule {
            list,
            net: net.parse().unwrap(),
            ttl: Some(Duration::from_secs(3600)),
            reason: "test",
            reason_code: blocker_common::reason::MANUAL,
            source: "cli",
        }
    }

    #[test]
    fn records_replaces_and_removes() {
        let (mut s, dir) = temp_store();
        let net: IpNet = "198.51.100.7/32".parse().unwrap();
        let a = s.record(&rule("198.51.100.7/32", List::Block)).unwrap();
        let b = s.record(&rule("198.51.100.7/32", List::Block)).unwrap();
        assert_ne!(a, b);
        let active = s.active(List::Block, net).unwrap().unwrap();
        assert_eq!(active.id, b);
        assert!(active.expires_at.unwrap() > active.added_at);
        assert_eq!(s.active_rules().unwrap().len(), 1);
        let hist = s.history(net).unwrap();
        assert_eq!(hist.len(), 2);
        assert_eq!(hist[0].removed_by.as_deref(), Some("replaced"));
        assert!(s.remove(List::Block, net, "unban").unwrap());
        assert!(!s.remove(List::Block, net, "unban").unwrap());
        assert!(s.active(List::Block, net).unwrap().is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A journal from before migration 5 (two indexes on rules) opens, loses
    /// the redundant index, and still finds, replaces and removes its rules.
    #[test]
    fn migration_5_keeps_old_journals_working() {
        let dir = std::env::temp_dir().join(format!(
            "blocker-store-m5-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(DB_FILE);
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..4] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 4).unwrap();
            conn.execute(
                "INSERT INTO rules (list, prefix, added_at, reason, reason_code, source)
                 VALUES ('block', '198.51.100.7/32', 1, 'old', 1, 'cli')",
                [],
            )
            .unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        let indexes: i64 = s
            .conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'rules'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 1, "only rules_prefix is left");
        let net: IpNet = "198.51.100.7/32".parse().unwrap();
        assert_eq!(s.active(List::Block, net).unwrap().unwrap().reason, "old");
        s.record(&rule("198.51.100.7/32", List::Block)).unwrap();
        assert_eq!(
            s.history(net).unwrap()[0].removed_by.as_deref(),
            Some("replaced")
        );
        assert_eq!(s.active_page(0, 10).unwrap().len(), 1);
        assert_eq!(s.remove_all(&[(List::Block, net)], "unban").unwrap(), 1);
        assert!(s.active_page(0, 10).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn pages_and_origins_select_active_rules() {
        let (mut s, dir) = temp_store();
        let mut r = rule("198.51.100.1/32", List::Block);
        r.source = "crowdsec:lists:firehol";
        s.record(&r).unwrap();
        r.net = "198.51.100.2/32".parse().unwrap();
        r.source = "crowdsec:cscli";
        s.record(&r).unwrap();
        r.net = "198.51.100.3/32".parse().unwrap();
        r.source = "crowdsecx";
        s.record(&r).unwrap();
        s.record(&rule("198.51.100.0/24", List::Allow)).unwrap();
        let ids: Vec<i64> = s.active_page(0, 2).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), 2);
        let rest = s.active_page(ids[1], 10).unwrap();
        assert_eq!(rest.len(), 2);
        assert!(rest.iter().all(|r| r.id > ids[1]));
        let got = s.active_of_origin(List::Block, "crowdsec").unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            s.active_of_origin(List::Block, "crowdsec:lists")
                .unwrap()
                .len(),
            1
        );
        assert!(
            s.active_of_origin(List::Allow, "crowdsec")
                .unwrap()
                .is_empty()
        );
        let labels = s.active_labels().unwrap();
        assert_eq!(labels.len(), 4);
        let (reason, source) = &labels[&(List::Block, "198.51.100.3/32".parse().unwrap())];
        assert_eq!((&**reason, &**source), ("test", "crowdsecx"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn origins_select_sources() {
        assert!(source_matches("crowdsec:cscli", "crowdsec:cscli"));
        assert!(source_matches("crowdsec:cscli", "crowdsec"));
        assert!(source_matches("crowdsec:lists:firehol", "crowdsec:lists"));
        assert!(!source_matches("crowdsec:cscli-import", "crowdsec:cscli"));
        assert!(!source_matches("crowdsecx", "crowdsec"));
        assert!(!source_matches("council", "crowdsec"));
    }

    #[test]
    fn lists_are_separate() {
        let (mut s, dir) = temp_store();
        s.record(&rule("198.51.100.0/24", List::Allow)).unwrap();
        s.record(&rule("198.51.100.0/24", List::Block)).unwrap();
        assert_eq!(s.active_rules().unwrap().len(), 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn reopen_keeps_data_and_refuses_newer_schema() {
        let (mut s, dir) = temp_store();
        s.record(&rule("2001:db8::/48", List::Block)).unwrap();
        drop(s);
        let s = Store::open_in(&dir).unwrap();
        assert_eq!(s.active_rules().unwrap().len(), 1);
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        assert!(matches!(
            Store::open_in(&dir),
            Err(StoreError::TooNew { found: 99, .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir =
            std::env::temp_dir().join(format!("blocker-store-corrupt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(DB_FILE),
            b"this is not a database, just junk bytes....",
        )
        .unwrap();
        let err = Store::open_in(&dir)
            .err()
            .expect("corrupt file must not open");
        assert!(err.to_string().contains("move it aside"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
