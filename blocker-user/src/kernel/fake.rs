//! An in-memory stand-in for the kernel tables, for unit tests of the
//! enforcer and the daemon's pipeline (no BPF, no root). It keeps the
//! semantics those callers rely on: exact-then-longest-prefix matching,
//! capacities that fill up, counters carried over on replace, expiry.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::IpAddr,
    time::Duration,
};

use blocker_common::{RuleEntry, XdpStats};
use ipnet::IpNet;

use crate::{
    addr, clock,
    kernel::maps::{RuleTables, Scan, TablesError},
    rule::{List, Rule},
};

#[derive(Default)]
pub struct FakeTables {
    pub rules: BTreeMap<(List, IpNet), RuleEntry>,
    /// Rules per list at most (`None`: unbounded).
    pub capacity: HashMap<List, usize>,
    pub config: HashMap<u32, u64>,
    pub stats: XdpStats,
    /// Sources in the zero-window SYN table.
    pub zero_window: HashSet<IpAddr>,
}

impl FakeTables {
    fn full(&self, list: List) -> Result<(), TablesError> {
        let n = self.rules.keys().filter(|(l, _)| *l == list).count();
        match self.capacity.get(&list) {
            Some(&cap) if n >= cap => Err(TablesError::Full {
                what: "the fake table",
                map: "fake",
                capacity: cap as u32,
                key: "fake",
            }),
            _ => Ok(()),
        }
    }
}

impl RuleTables for FakeTables {
    fn capacity(&self, _name: &str) -> Option<u32> {
        None
    }

    fn upsert(
        &mut self,
        list: List,
        net: IpNet,
        ttl: Option<Duration>,
        reason: u32,
    ) -> Result<(RuleEntry, bool), TablesError> {
        let mut entry = RuleEntry {
            expires_at_ns: clock::expiry_from_now(ttl),
            added_at_ns: clock::boottime_ns(),
            reason,
            ..RuleEntry::default()
        };
        let replaced = match self.rules.get(&(list, net)) {
            Some(prev) => {
                // The id (and with it the counters) stays with the prefix.
                (entry.id, entry.slot) = (prev.id, prev.slot);
                true
            }
            None => {
                self.full(list)?;
                false
            }
        };
        self.rules.insert((list, net), entry);
        Ok((entry, replaced))
    }

    fn insert(&mut self, list: List, net: IpNet, entry: RuleEntry) -> Result<(), TablesError> {
        if !self.rules.contains_key(&(list, net)) {
            self.full(list)?;
        }
        self.rules.insert((list, net), entry);
        Ok(())
    }

    fn remove(&mut self, list: List, net: IpNet) -> Result<bool, TablesError> {
        Ok(self.rules.remove(&(list, net)).is_some())
    }

    fn rules(&self, list: List) -> Result<Vec<Rule>, TablesError> {
        Ok(self
            .rules
            .iter()
            .filter(|((l, _), _)| *l == list)
            .map(|(&(list, net), &entry)| Rule {
                list,
                net,
                entry,
                counters: blocker_common::RuleCounters::default(),
            })
            .collect())
    }

    fn matching(&self, list: List, peer: IpAddr) -> Result<Option<RuleEntry>, TablesError> {
        let peer = addr::canonical(peer);
        Ok(self
            .rules
            .iter()
            .filter(|((l, net), _)| *l == list && net.contains(&peer))
            .max_by_key(|((_, net), _)| net.prefix_len())
            .map(|(_, e)| *e))
    }

    fn evict_soonest(&mut self, list: List, _net: IpNet) -> Result<Option<Rule>, TablesError> {
        let victim = self
            .rules(list)?
            .into_iter()
            .filter(|r| r.entry.expires_at_ns != 0)
            .min_by_key(|r| r.entry.expires_at_ns);
        if let Some(v) = victim {
            self.rules.remove(&(v.list, v.net));
        }
        Ok(victim)
    }

    fn expired(&self, now_ns: u64) -> Result<Scan, TablesError> {
        Ok(Scan {
            expired: self
                .rules
                .iter()
                .filter(|(_, e)| !e.is_live(now_ns))
                .map(|(&k, _)| k)
                .collect(),
            fill: crate::kernel::maps::block_fill(self).unwrap_or_default(),
        })
    }

    fn entry(&self, list: List, net: IpNet) -> Result<Option<RuleEntry>, TablesError> {
        Ok(self.rules.get(&(list, net)).copied())
    }

    fn sync_active(&mut self) -> Result<(), TablesError> {
        Ok(())
    }

    fn stats(&self) -> Result<XdpStats, TablesError> {
        Ok(self.stats)
    }

    fn forget_zero_window(&mut self, source: IpAddr) -> Result<(), TablesError> {
        self.zero_window.remove(&addr::canonical(source));
        Ok(())
    }

    fn config(&self, index: u32) -> Result<u64, TablesError> {
        Ok(self.config.get(&index).copied().unwrap_or(0))
    }

    fn set_config(&mut self, index: u32, value: u64) -> Result<(), TablesError> {
        self.config.insert(index, value);
        Ok(())
    }
}
