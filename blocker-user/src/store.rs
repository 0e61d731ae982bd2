//! The SQLite journal: every rule ever written (with its free-text reason
//! and where it came from), so bans survive reboots and the council can see
//! a source's history. The seed's `badips` table, done properly.
//!
//! A rule is written here and committed before it is written to the map
//! (see `enforcer`), so a crash can never leave a ban enforced but
//! unrecorded.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use ipnet::IpNet;
use rusqlite::{Connection, OptionalExtension, params};

use crate::{clock, tables::List};

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
        "store {path} has schema version {found}, newer than this blocker understands ({known}); upgrade blocker"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

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
        verdict_id  INTEGER,
        removed_at  INTEGER,                -- unix seconds; NULL = active
        removed_by  TEXT                    -- unban, expired, replaced, failed
    );
    CREATE INDEX rules_active ON rules (list, prefix) WHERE removed_at IS NULL;
    CREATE INDEX rules_prefix ON rules (prefix);",
];

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
    pub verdict_id: Option<i64>,
    pub removed_at: Option<i64>,
    pub removed_by: Option<String>,
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
    pub verdict_id: Option<i64>,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) `<state_dir>/blocker.db`.
    pub fn open_in(state_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|source| StoreError::Dir {
            dir: state_dir.to_owned(),
            source,
        })?;
        Self::open(&state_dir.join(DB_FILE))
    }

    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
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

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
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
        let now = clock::unix_secs(SystemTime::now());
        let expires = rule
            .ttl
            .map(|t| now.saturating_add(i64::try_from(t.as_secs()).unwrap_or(i64::MAX)));
        let path = self.path.clone();
        let err = move |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(&err)?;
        tx.execute(
            "UPDATE rules SET removed_at = ?1, removed_by = 'replaced'
             WHERE list = ?2 AND prefix = ?3 AND removed_at IS NULL",
            params![now, rule.list.as_str(), rule.net.to_string()],
        )
        .map_err(&err)?;
        tx.execute(
            "INSERT INTO rules (list, prefix, added_at, expires_at, reason, reason_code, source, verdict_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                rule.list.as_str(),
                rule.net.to_string(),
                now,
                expires,
                rule.reason,
                rule.reason_code,
                rule.source,
                rule.verdict_id
            ],
        )
        .map_err(&err)?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(&err)?;
        Ok(id)
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

    /// Every record ever made for exactly `net` (any list), oldest first.
    pub fn history(&self, net: IpNet) -> Result<Vec<StoredRule>, StoreError> {
        self.query(
            &format!("{SELECT} WHERE prefix = ?1 ORDER BY id"),
            params![net.to_string()],
        )
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

const SELECT: &str = "SELECT id, list, prefix, added_at, expires_at, reason, reason_code, source,
    verdict_id, removed_at, removed_by FROM rules";

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
        verdict_id: r.get(8)?,
        removed_at: r.get(9)?,
        removed_by: r.get(10)?,
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
            verdict_id: None,
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
