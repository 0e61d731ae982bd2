//! Garbage collection of expired rules, off the pipeline's critical path.
//!
//! The XDP program ignores an expired rule by itself (`RuleEntry::is_live`);
//! collection only frees its slot and marks it in the journal. Finding the
//! expired rules means walking every map, which at a million rules takes
//! hundreds of milliseconds: a scanner thread does that with its own map
//! handles and hands the pipeline what it found in chunks of [`CHUNK`]. The
//! pipeline removes one chunk per turn of its event loop (looked up again,
//! batched map deletes, one journal transaction), after confirmed evidence
//! and finished debates, so 100k rules expiring at once never hold a ban
//! back by more than one chunk's work.

use std::{collections::HashMap, time::Duration};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::warn;

use crate::{
    clock,
    kernel::{maps::Tables, pins::PinDir},
    rule::List,
};

/// Candidates per pipeline turn. Removing one costs about 60 µs here
/// (its lookup, its share of the batched delete, its journal UPDATE), so
/// 512 held the pipeline 30 ms (`cargo xtask bench pipeline`); 64 keep a
/// step to a few milliseconds, one SQLite commit each.
pub(super) const CHUNK: usize = 64;

/// Expired-rule collection, in `blocker status --json` (`gc`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct GcStatus {
    /// Rules removed because they expired, since start.
    pub expired: u64,
    /// Chunks the pipeline has removed.
    pub steps: u64,
    /// The longest time one chunk held the pipeline, milliseconds.
    pub max_step_ms: f64,
    /// Why collection is off, if it is (expired rules then keep their
    /// slots until a restart reconciles them; they are still not enforced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the scanner hands the pipeline.
pub(super) enum Found {
    /// Expired rules to remove, at most [`CHUNK`].
    Expired(Vec<(List, IpNet)>),
    /// Entries per exact blocklist map, after each walk (the filter agent's
    /// facts; counting them on the pipeline would walk every rule there).
    Fill(HashMap<&'static str, u64>),
}

/// Starts the scanner thread: every `every`, it reads the maps pinned in
/// `pins` and sends the expired rules it finds, [`CHUNK`] at a time, then
/// the tables' fill. The channel holds two messages, so the scanner waits
/// for the pipeline rather than queueing a million candidates; it ends when
/// the receiver is dropped. Returns the receiver, or why collection could
/// not start.
pub(super) fn spawn_scanner(
    pins: &PinDir,
    every: Duration,
) -> Result<mpsc::Receiver<Found>, String> {
    let tables = Tables::open(pins).map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel(2);
    std::thread::Builder::new()
        .name("blocker-gc".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                if tx.is_closed() {
                    return;
                }
                let scan = match tables.expired(clock::boottime_ns()) {
                    Ok(scan) => scan,
                    Err(e) => {
                        warn!("garbage collection: reading the maps failed: {e}; retrying in {every:?}");
                        continue;
                    }
                };
                let chunks = scan.expired.chunks(CHUNK).map(|c| Found::Expired(c.to_vec()));
                for found in chunks.chain([Found::Fill(scan.fill)]) {
                    if tx.blocking_send(found).is_err() {
                        return;
                    }
                }
            }
        })
        .map_err(|e| format!("starting the garbage-collection thread: {e}"))?;
    Ok(rx)
}
