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
//!
//! The tables are the journal's ([`FLEET_SCHEMA`](crate::state::journal::FLEET_SCHEMA),
//! one of its migrations): the journal owns every table it holds.

use std::time::SystemTime;

use ipnet::IpNet;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Decision, Kind};
use crate::clock;

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

/// Marks many outbox rows published, `(row, stream sequence)`, in one
/// transaction: one commit for a batch the stream acknowledged.
pub fn mark_published_all(conn: &Connection, marks: &[(i64, u64)]) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "UPDATE fleet_outbox SET published_at = ?1, stream_seq = ?2 WHERE id = ?3",
        )?;
        let now = clock::unix_secs(SystemTime::now());
        for (row, seq) in marks {
            stmt.execute(params![now, *seq as i64, row])?;
        }
    }
    tx.commit()
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

/// One received decision and what became of it, for [`record_received_all`].
pub struct Received<'a> {
    pub decision: &'a Decision,
    pub outcome: &'a str,
    pub detail: Option<&'a str>,
    pub rule_id: Option<i64>,
}

/// Journals a batch of received decisions in one transaction: one commit
/// (one fsync with `synchronous = FULL`) for everything a drain of the
/// consumer brought, instead of one per decision.
pub fn record_received_all(conn: &Connection, rows: &[Received<'_>]) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO fleet_received
                (decision_id, origin, kind, target, body, received_at, outcome, detail, rule_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let now = clock::unix_secs(SystemTime::now());
        for r in rows {
            let d = r.decision;
            stmt.execute(params![
                d.id,
                d.origin,
                d.kind.as_str(),
                d.target.to_string(),
                String::from_utf8(d.to_json()).expect("JSON is UTF-8"),
                now,
                r.outcome,
                r.detail,
                r.rule_id
            ])?;
        }
    }
    tx.commit()
}

/// Received decisions journaled: all of them, and those applied.
pub fn received_counts(conn: &Connection) -> rusqlite::Result<(u64, u64)> {
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(outcome = 'applied'), 0) FROM fleet_received",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
}

/// Outbox rows published, total (what [`prune`] keeps bounded).
pub fn outbox_count(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT COUNT(*) FROM fleet_outbox", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
}

/// The targets of the outbox's rows, oldest first (one per row).
pub fn outbox_targets(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT target FROM fleet_outbox ORDER BY id")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Rows removed by [`prune`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub outbox: usize,
    pub received: usize,
}

/// Deletes rows that no longer matter, so the fleet's tables do not grow
/// forever; `keep` is how long a row stays after it stopped mattering.
///
/// - Outbox: a published row once it is older than `keep` and its block
///   has expired, or it is an unblock, or a later row about the same
///   target supersedes it. The latest published block of a live ban stays:
///   [`shared_block`] reads it to share the unban. Queued rows always stay.
/// - Received: a block whose expiry is more than `keep` past, any other
///   row (unblocks, refusals, failures) received more than `keep` ago. A
///   redelivery of a pruned decision meets the clock check (expired) or,
///   for an unblock, finds no rule of that origin: nothing is re-applied.
pub fn prune(
    conn: &Connection,
    now: SystemTime,
    keep: std::time::Duration,
) -> rusqlite::Result<Pruned> {
    let now_s = clock::unix_secs(now);
    let cutoff = now_s.saturating_sub(i64::try_from(keep.as_secs()).unwrap_or(i64::MAX));
    let tx = conn.unchecked_transaction()?;
    // SQLite computes the rows a DELETE matches before deleting any, so
    // the MAX(id) subquery sees the table as it was.
    let outbox = tx.execute(
        "DELETE FROM fleet_outbox
         WHERE published_at IS NOT NULL AND published_at < ?1
           AND (kind = 'unblock'
                OR COALESCE(json_extract(body, '$.expires_at'), 0) < ?1
                OR id < (SELECT MAX(o.id) FROM fleet_outbox o
                         WHERE o.target = fleet_outbox.target))",
        params![cutoff],
    )?;
    let received = tx.execute(
        "DELETE FROM fleet_received
         WHERE (kind = 'block' AND outcome = 'applied'
                AND COALESCE(json_extract(body, '$.expires_at'), 0) < ?1)
            OR (NOT (kind = 'block' AND outcome = 'applied') AND received_at < ?1)",
        params![cutoff],
    )?;
    tx.commit()?;
    Ok(Pruned { outbox, received })
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
        c.execute_batch(crate::state::journal::FLEET_SCHEMA)
            .unwrap();
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
        mark_published_all(&c, &[(p[0].row, 7)]).unwrap();
        assert_eq!(queued_count(&c).unwrap(), 0);
        assert!(pending(&c, 10).unwrap().is_empty());
        queue(&c, &Decision::unblock("a", net, "r")).unwrap();
        assert!(!shared_block(&c, net).unwrap());
    }

    #[test]
    fn prune_keeps_what_still_matters() {
        let c = conn();
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let net = |s: &str| -> IpNet { s.parse().unwrap() };
        let publish_all = |c: &Connection| {
            for q in pending(c, 100).unwrap() {
                mark_published_all(c, &[(q.row, 1)]).unwrap();
            }
        };
        // Outbox: a live shared ban, an expired one, a ban then its unban,
        // and a queued one.
        let live = Decision::block("a", net("198.18.6.1/32"), hour, 2, "r", "i");
        let mut expired = Decision::block("a", net("198.18.6.2/32"), hour, 2, "r", "i");
        expired.expires_at = Some(clock::unix_secs(now) - 10);
        let lifted = Decision::block("a", net("198.18.6.3/32"), hour, 2, "r", "i");
        for d in [&live, &expired, &lifted] {
            queue(&c, d).unwrap();
        }
        queue(&c, &Decision::unblock("a", net("198.18.6.3/32"), "r")).unwrap();
        publish_all(&c);
        let queued = Decision::block("a", net("198.18.6.4/32"), hour, 2, "r", "i");
        queue(&c, &queued).unwrap();
        // Received: an applied live block, an applied expired one, a refusal.
        record_received(&c, &live, "applied", None, Some(1)).unwrap();
        record_received(&c, &expired, "applied", None, Some(2)).unwrap();
        record_received(&c, &lifted, "refused", Some("allowlisted"), None).unwrap();

        // Nothing is older than `keep` yet.
        assert_eq!(prune(&c, now, hour).unwrap(), Pruned::default());
        // A day later (keep 0): what no longer matters goes.
        let later = now + Duration::from_secs(2);
        let p = prune(&c, later, Duration::ZERO).unwrap();
        assert_eq!(
            p,
            Pruned {
                outbox: 3,
                received: 2
            },
            "{p:?}"
        );
        // The live ban's row stays, so its unban is still shared; the
        // queued one is still to be sent.
        assert!(shared_block(&c, live.target).unwrap());
        assert!(!shared_block(&c, net("198.18.6.3/32")).unwrap());
        assert_eq!(outbox_count(&c).unwrap(), 2);
        assert_eq!(pending(&c, 10).unwrap()[0].decision, queued);
        let kept = received(&c, 10).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].decision_id, live.id);
        assert_eq!(received_counts(&c).unwrap(), (1, 1));
        // Once the live ban has expired too, it goes as well.
        let p = prune(&c, now + 2 * hour, Duration::ZERO).unwrap();
        assert_eq!(
            p,
            Pruned {
                outbox: 1,
                received: 1
            }
        );
        assert_eq!(outbox_count(&c).unwrap(), 1, "the queued row stays");
    }

    #[test]
    fn a_batch_is_journaled_in_one_transaction() {
        let c = conn();
        let ds: Vec<Decision> = (1..=3)
            .map(|i| {
                Decision::block(
                    "b",
                    format!("198.18.7.{i}/32").parse().unwrap(),
                    Duration::from_secs(60),
                    2,
                    "r",
                    "i",
                )
            })
            .collect();
        let rows: Vec<Received<'_>> = ds
            .iter()
            .map(|d| Received {
                decision: d,
                outcome: "applied",
                detail: None,
                rule_id: Some(1),
            })
            .collect();
        record_received_all(&c, &rows).unwrap();
        assert_eq!(received_counts(&c).unwrap(), (3, 3));
        assert!(ds.iter().all(|d| seen(&c, &d.id).unwrap()));
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
