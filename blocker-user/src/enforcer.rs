//! Applies rule changes: journal first, then the kernel map. The only code
//! that changes rules, for the CLI and the daemon alike.
//!
//! Order matters. A rule is committed to the store before the map is
//! touched, so no ban is ever enforced without a record (if the disk is full
//! the ban is refused, loudly); if the map write then fails (table full), the
//! record is marked `failed`.

use std::time::Duration;

use blocker_common::RuleEntry;
use ipnet::IpNet;

use crate::{
    clock,
    store::{NewRule, Store, StoreError},
    tables::{List, Rule, Tables, TablesError},
};

#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    #[error(transparent)]
    Tables(#[from] TablesError),
    #[error("{0} (the rule was not applied: blocker never enforces a rule it could not record)")]
    Store(#[from] StoreError),
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

pub struct Enforcer {
    tables: Tables,
    store: Store,
}

impl Enforcer {
    pub fn new(tables: Tables, store: Store) -> Self {
        Self { tables, store }
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    pub fn tables_mut(&mut self) -> &mut Tables {
        &mut self.tables
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// Records and applies a rule.
    pub fn add(&mut self, change: &Change<'_>) -> Result<Applied, EnforceError> {
        let record_id = self.store.record(&NewRule {
            list: change.list,
            net: change.net,
            ttl: change.ttl,
            reason: change.reason,
            reason_code: change.reason_code,
            source: change.source,
        })?;
        match self
            .tables
            .upsert(change.list, change.net, change.ttl, change.reason_code)
        {
            Ok((entry, replaced)) => Ok(Applied {
                list: change.list,
                net: change.net,
                entry,
                replaced,
                record_id,
            }),
            Err(e) => {
                if let Err(undo) = self.store.remove_id(record_id, "failed") {
                    tracing::error!("could not mark store record {record_id} failed: {undo}");
                }
                Err(e.into())
            }
        }
    }

    /// Removes the rule for exactly `net` from `list`, from the map and the
    /// journal. `false` if neither had it.
    pub fn remove(&mut self, list: List, net: IpNet, why: &str) -> Result<bool, EnforceError> {
        let in_map = self.tables.remove(list, net)?;
        let in_store = self.store.remove(list, net, why)?;
        Ok(in_map || in_store)
    }

    /// Removes expired rules from the maps and marks them in the journal.
    pub fn collect_expired(&mut self) -> Result<Vec<Rule>, EnforceError> {
        let expired = self.tables.remove_expired(clock::boottime_ns())?;
        for rule in &expired {
            self.store.remove(rule.list, rule.net, "expired")?;
        }
        Ok(expired)
    }
}
