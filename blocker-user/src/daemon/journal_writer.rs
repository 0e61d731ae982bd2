//! The journal writer: debate and incident records go to SQLite in batches
//! from a background task, off the pipeline's critical path.

use std::{net::IpAddr, path::Path};

use tokio::sync::mpsc;
use tracing::warn;

use crate::{
    council::{Action, Debate},
    state::journal::{IncidentRecord, Store, VerdictRecord},
    verdict::Outcome,
};

/// Journal records that need not precede any map change, written by a
/// background task in batches (one commit, one fsync, per batch) so the
/// pipeline never waits on them. A ban's own rule record is not among them:
/// the enforcer commits it before touching the map.
pub(super) enum JournalEntry {
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

/// Starts the journal writer on its own connection to the store. Without a
/// usable journal the records are dropped (and counted) as they arrive.
pub(super) fn spawn_journal(state_dir: &Path) -> mpsc::Sender<JournalEntry> {
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
