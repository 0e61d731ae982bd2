//! The fleet's rows in the journal (`blocker.db`): the outbox, which is
//! also the on-disk queue while the server is unreachable, and every
//! decision received with what became of it.
//!
//! How operator bans reach the fleet: `blocker ban --share` (a CLI
//! process, not the daemon) writes the ban and an outbox row in the
//! journal; the daemon's publisher polls the outbox for unpublished rows
//! and publishes them. The daemon's own verdicts take the same path, so a
//! decision is on disk before it is sent and nothing is lost if the server
//! or the daemon goes away in between.

use std::time::SystemTime;

use ipnet::IpNet;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Decision, Kind};
use crate::clock;

/// The schema, one migration of the journal (see `state::journal::MIGRATIONS`).
pub const SCHEMA: &str = "CREATE TABLE fleet_outbox (
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

/// A queued or published decision.
#[derive(Clone, Debug)]
pub struct Queued {
    pub row: i64,
    pub decision: Decision,
}

/// A received decision as journaled.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReceivedRow {
    pub decision_id: String,
    pub origin: String,
    pub kind: String,
    pub target: String,
    pub received_at: i64,
    pub outcome: String,
    pub detail: Option<String>,
}

/// Queues `d` for publishing (a second copy of the same id is ignored).
pub fn queue(conn: &Connection, d: &Decision) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO fleet_outbox (decision_id, kind, target, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            d.id,
            d.kind.as_str(),
            d.target.to_string(),
            String::from_utf8(d.to_json()).expect("JSON is UTF-8"),
            clock::unix_secs(SystemTime::now())
        ],
    )?;
    Ok(())
}

/// Up to `limit` unpublished decisions, oldest first. Rows that no longer
/// parse (written by another version) are skipped with a warning.
pub fn pending(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<Queued>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, body FROM fleet_outbox WHERE published_at IS NULL ORDER BY id LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, body) = row?;
        match serde_json::from_str::<Decision>(&body) {
            Ok(decision) => out.push(Queued { row: id, decision }),
            Err(e) => tracing::warn!("fleet outbox row {id} does not parse ({e}); skipped"),
        }
    }
    Ok(out)
}

/// Marks an outbox row published at stream sequence `seq`.
pub fn mark_published(conn: &Connection, row: i64, seq: u64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE fleet_outbox SET published_at = ?1, stream_seq = ?2 WHERE id = ?3",
        params![clock::unix_secs(SystemTime::now()), seq as i64, row],
    )?;
    Ok(())
}

/// Decisions waiting to be published.
pub fn queued_count(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT COUNT(*) FROM fleet_outbox WHERE published_at IS NULL",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

/// Whether this node's latest shared decision about `target` is a block
/// (so that lifting it locally must also be shared).
pub fn shared_block(conn: &Connection, target: IpNet) -> rusqlite::Result<bool> {
    let kind: Option<String> = conn
        .query_row(
            "SELECT kind FROM fleet_outbox WHERE target = ?1 ORDER BY id DESC LIMIT 1",
            params![target.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    Ok(kind.as_deref() == Some(Kind::Block.as_str()))
}

/// Whether the decision `id` was already handled (a redelivery).
pub fn seen(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM fleet_received WHERE decision_id = ?1 LIMIT 1",
        params![id],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
}

/// Journals a received decision and its outcome.
pub fn record_received(
    conn: &Connection,
    d: &Decision,
    outcome: &str,
    detail: Option<&str>,
    rule_id: Option<i64>,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO fleet_received
            (decision_id, origin, kind, target, body, received_at, outcome, detail, rule_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            d.id,
            d.origin,
            d.kind.as_str(),
            d.target.to_string(),
            String::from_utf8(d.to_json()).expect("JSON is UTF-8"),
            clock::unix_secs(SystemTime::now()),
            outcome,
            detail,
            rule_id
        ],
    )?;
    Ok(())
}

/// The latest received decisions, newest first.
pub fn received(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<ReceivedRow>> {
    let mut stmt = conn.prepare(
        "SELECT decision_id, origin, kind, target, received_at, outcome, detail
         FROM fleet_received ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit as i64], |r| {
        Ok(ReceivedRow {
            decision_id: r.get(0)?,
            origin: r.get(1)?,
            kind: r.get(2)?,
            target: r.get(3)?,
            received_at: r.get(4)?,
            outcome: r.get(5)?,
            detail: r.get(6)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(SCHEMA).unwrap();
        c
    }

    #[test]
    fn outbox_queues_until_published() {
        let c = conn();
        let net: IpNet = "198.18.0.2/32".parse().unwrap();
        let d = Decision::block("a", net, Duration::from_secs(60), 2, "r", "i");
        queue(&c, &d).unwrap();
        queue(&c, &d).unwrap(); // same id: once
        assert_eq!(queued_count(&c).unwrap(), 1);
        assert!(shared_block(&c, net).unwrap());
        let p = pending(&c, 10).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].decision, d);
        mark_published(&c, p[0].row, 7).unwrap();
        assert_eq!(queued_count(&c).unwrap(), 0);
        assert!(pending(&c, 10).unwrap().is_empty());
        queue(&c, &Decision::unblock("a", net, "r")).unwrap();
        assert!(!shared_block(&c, net).unwrap());
    }

    #[test]
    fn received_are_journaled_once_seen() {
        let c = conn();
        let d = Decision::block(
            "b",
            "198.18.0.3/32".parse().unwrap(),
            Duration::from_secs(60),
            2,
            "r",
            "i",
        );
        assert!(!seen(&c, &d.id).unwrap());
        record_received(&c, &d, "refused", Some("allowlisted"), None).unwrap();
        assert!(seen(&c, &d.id).unwrap());
        let rows = received(&c, 10).unwrap();
        assert_eq!(rows[0].outcome, "refused");
        assert_eq!(rows[0].origin, "b");
    }
}
