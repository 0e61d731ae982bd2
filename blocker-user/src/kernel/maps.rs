//! Typed access to the kernel tables: the allow and block rules, the
//! counters, the zero-window SYN table and the runtime settings. Every read
//! and write of those maps in userspace goes through [`Tables`].

use std::{net::IpAddr, time::Duration};

use aya::{
    Ebpf,
    maps::{Array, HashMap, IterableMap as _, LpmTrie, Map, MapData, MapError, PerCpuArray},
};
use blocker_common::{
    Ipv4Key, Ipv6Key, LpmV4, RuleCounters, RuleEntry, XdpStats, ZeroWindowEntry, config as slot,
    maps,
};
use ipnet::IpNet;

use serde::{Deserialize, Serialize};

use crate::{
    addr, clock,
    kernel::pins::{LoadError, PinDir, open_pinned},
    rule::{List, Rule},
};

/// Capacities of the kernel tables, in entries.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct MapsConfig {
    pub when_full: WhenFull,
    pub block_v4: u32,
    pub block_v6: u32,
    pub block_net_v4: u32,
    pub block_net_v6: u32,
    pub allow_v4: u32,
    pub allow_v6: u32,
    pub zero_window_v4: u32,
    pub zero_window_v6: u32,
    /// Slots of the per-CPU rule counters (see
    /// `blocker_common::maps::RULE_COUNTERS`).
    pub rule_counters: u32,
}

impl Default for MapsConfig {
    fn default() -> Self {
        Self {
            when_full: WhenFull::Refuse,
            // A community blocklist (CrowdSec's bouncer spec asks for 100k
            // decisions) fits with room to spare.
            block_v4: 262144,
            block_v6: 65536,
            block_net_v4: 16384,
            block_net_v6: 16384,
            allow_v4: 4096,
            allow_v6: 4096,
            zero_window_v4: 65536,
            zero_window_v6: 65536,
            rule_counters: 65536,
        }
    }
}

/// What a new rule does when its table is full.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WhenFull {
    /// Refuse the new rule with an error (and count it).
    #[default]
    Refuse,
    /// Make room by removing the rule that expires soonest (never a
    /// permanent one); the journal records the eviction.
    EvictSoonest,
}

impl MapsConfig {
    /// `(map name, capacity, config key)` for every sized map.
    pub fn entries(&self) -> [(&'static str, u32, &'static str); 9] {
        use blocker_common::maps::*;
        [
            (BLOCK_V4, self.block_v4, "block_v4"),
            (BLOCK_V6, self.block_v6, "block_v6"),
            (BLOCK_NET_V4, self.block_net_v4, "block_net_v4"),
            (BLOCK_NET_V6, self.block_net_v6, "block_net_v6"),
            (ALLOW_V4, self.allow_v4, "allow_v4"),
            (ALLOW_V6, self.allow_v6, "allow_v6"),
            (ZW_SYN_V4, self.zero_window_v4, "zero_window_v4"),
            (ZW_SYN_V6, self.zero_window_v6, "zero_window_v6"),
            (RULE_COUNTERS, self.rule_counters, "rule_counters"),
        ]
    }

    /// The config key that sets the capacity of map `name`.
    pub fn key_for(&self, name: &str) -> Option<&'static str> {
        self.entries()
            .into_iter()
            .find(|e| e.0 == name)
            .map(|e| e.2)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(
        "{what} is full ({capacity} entries in map {map}); raise `{key}` under [maps] in the config and restart `blocker run`, or remove entries"
    )]
    Full {
        what: &'static str,
        map: &'static str,
        capacity: u32,
        key: &'static str,
    },
    #[error(
        "{what} cannot take {new} more rules ({present} of {capacity} entries in map {map} are in use); nothing was written. Raise `{key}` under [maps] in the config and restart `blocker run`, or import fewer"
    )]
    WontFit {
        what: &'static str,
        map: &'static str,
        capacity: u32,
        present: usize,
        new: usize,
        key: &'static str,
        /// The list and one prefix of the table, to evict from it.
        list: List,
        example: IpNet,
    },
    #[error("map {map}: {source}")]
    Map { map: &'static str, source: MapError },
}

/// The kernel tables, opened from a loaded object or from the pins.
pub struct Tables {
    block_v4: HashMap<MapData, Ipv4Key, RuleEntry>,
    block_v6: HashMap<MapData, Ipv6Key, RuleEntry>,
    block_net_v4: LpmTrie<MapData, LpmV4, RuleEntry>,
    block_net_v6: LpmTrie<MapData, Ipv6Key, RuleEntry>,
    allow_v4: LpmTrie<MapData, LpmV4, RuleEntry>,
    allow_v6: LpmTrie<MapData, Ipv6Key, RuleEntry>,
    stats: PerCpuArray<MapData, XdpStats>,
    zw_v4: HashMap<MapData, Ipv4Key, ZeroWindowEntry>,
    zw_v6: HashMap<MapData, Ipv6Key, ZeroWindowEntry>,
    counters: PerCpuArray<MapData, RuleCounters>,
    config: Array<MapData, u64>,
    capacities: std::collections::HashMap<&'static str, u32>,
    ids: RuleIds,
}

/// Chooses rule ids ([`RuleEntry::id`]): random, so the daemon and CLI
/// commands writing rules at once need no coordination. With 2^64 values a
/// collision among a million live rules has a probability of about 3e-8, and
/// would only merge two rules' counters. The counter slot is `id % capacity`.
struct RuleIds(u64);

impl RuleIds {
    fn new() -> Self {
        let mut seed = [0u8; 8];
        let got = rustix::rand::getrandom(&mut seed, rustix::rand::GetRandomFlags::empty());
        let mut state = u64::from_ne_bytes(seed);
        if got != Ok(8) {
            // No getrandom(2): time and pid still differ between writers.
            state = clock::boottime_ns() ^ (u64::from(std::process::id()) << 40);
        }
        Self(state)
    }

    /// splitmix64 (Steele, Lea, Flood 2014): every output distinct over a
    /// period of 2^64; never 0, which means "not counted".
    fn next(&mut self) -> u64 {
        loop {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            if z != 0 {
                return z;
            }
        }
    }
}

/// Where a rule for a given list and prefix is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Table {
    BlockV4,
    BlockV6,
    BlockNetV4,
    BlockNetV6,
    AllowV4,
    AllowV6,
}

impl Table {
    const ALL: [Self; 6] = [
        Self::AllowV4,
        Self::AllowV6,
        Self::BlockV4,
        Self::BlockV6,
        Self::BlockNetV4,
        Self::BlockNetV6,
    ];

    fn of(list: List, net: &IpNet) -> Self {
        match (list, net, addr::is_host(net)) {
            (List::Allow, IpNet::V4(_), _) => Self::AllowV4,
            (List::Allow, IpNet::V6(_), _) => Self::AllowV6,
            (List::Block, IpNet::V4(_), true) => Self::BlockV4,
            (List::Block, IpNet::V6(_), true) => Self::BlockV6,
            (List::Block, IpNet::V4(_), false) => Self::BlockNetV4,
            (List::Block, IpNet::V6(_), false) => Self::BlockNetV6,
        }
    }

    const fn map(self) -> &'static str {
        match self {
            Self::BlockV4 => maps::BLOCK_V4,
            Self::BlockV6 => maps::BLOCK_V6,
            Self::BlockNetV4 => maps::BLOCK_NET_V4,
            Self::BlockNetV6 => maps::BLOCK_NET_V6,
            Self::AllowV4 => maps::ALLOW_V4,
            Self::AllowV6 => maps::ALLOW_V6,
        }
    }

    const fn active_slot(self) -> u32 {
        match self {
            Self::BlockV4 => slot::BLOCK_V4_ACTIVE,
            Self::BlockV6 => slot::BLOCK_V6_ACTIVE,
            Self::BlockNetV4 => slot::BLOCK_NET_V4_ACTIVE,
            Self::BlockNetV6 => slot::BLOCK_NET_V6_ACTIVE,
            Self::AllowV4 => slot::ALLOW_V4_ACTIVE,
            Self::AllowV6 => slot::ALLOW_V6_ACTIVE,
        }
    }

    const fn describe(self) -> (&'static str, &'static str) {
        match self {
            Self::BlockV4 => ("the IPv4 blocklist", "block_v4"),
            Self::BlockV6 => ("the IPv6 blocklist", "block_v6"),
            Self::BlockNetV4 => ("the IPv4 CIDR blocklist", "block_net_v4"),
            Self::BlockNetV6 => ("the IPv6 CIDR blocklist", "block_net_v6"),
            Self::AllowV4 => ("the IPv4 allowlist", "allow_v4"),
            Self::AllowV6 => ("the IPv6 allowlist", "allow_v6"),
        }
    }

    const fn list(self) -> List {
        match self {
            Self::AllowV4 | Self::AllowV6 => List::Allow,
            _ => List::Block,
        }
    }
}

/// Elements per `BPF_MAP_*_BATCH` call: large enough that syscalls vanish
/// from the profile, small enough to keep the kernel's copy buffers modest.
const BATCH_CHUNK: usize = 16_384;

/// A rule to write with [`Tables::upsert_batch`].
#[derive(Clone, Copy, Debug)]
pub struct NewEntry {
    pub list: List,
    pub net: IpNet,
    pub ttl: Option<Duration>,
    pub reason: u32,
}

/// What one walk of the tables for garbage collection found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Expired rules, by list and exact prefix.
    pub expired: Vec<(List, IpNet)>,
    /// Entries per exact blocklist map (what [`block_fill`] counts).
    pub fill: std::collections::HashMap<&'static str, u64>,
}

/// What [`Tables::plan_batch`] found: every table the batch fits in, the
/// ids replaced rules keep. Writing it cannot run out of room unless
/// another writer fills a table meanwhile.
pub struct BatchPlan {
    entries: Vec<(Table, IpNet, RuleEntry, bool)>,
}

impl BatchPlan {
    /// Rules the batch replaces (same list and prefix already present).
    pub fn replaced(&self) -> usize {
        self.entries.iter().filter(|e| e.3).count()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `BPF_EXIST` (linux/bpf.h): update only an existing element.
const BPF_EXIST: u64 = 2;

/// Every rule of an LPM table, v4 or v6 (`to_net` reads its key type).
fn collect_trie<K: aya::Pod>(
    trie: &LpmTrie<MapData, K, RuleEntry>,
    to_net: fn(&aya::maps::lpm_trie::Key<K>) -> Option<IpNet>,
    list: List,
    out: &mut Vec<Rule>,
    e: impl Fn(MapError) -> TablesError,
) -> Result<(), TablesError> {
    for item in trie.iter() {
        let (k, entry) = item.map_err(&e)?;
        if let Some(net) = to_net(&k) {
            out.push(Rule {
                list,
                net,
                entry,
                counters: RuleCounters::default(),
            });
        }
    }
    Ok(())
}

fn map_err(map: &'static str) -> impl Fn(MapError) -> TablesError {
    move |source| TablesError::Map { map, source }
}

fn typed<T: TryFrom<Map, Error = MapError>>(
    take: &mut impl FnMut(&'static str) -> Result<Map, LoadError>,
    name: &'static str,
) -> Result<T, TablesError> {
    T::try_from(take(name)?).map_err(map_err(name))
}

impl Tables {
    /// Takes the maps out of a loaded object (the daemon, and CLI commands
    /// that may have to create the pins).
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self, TablesError> {
        Self::build(|name| {
            ebpf.take_map(name).ok_or(LoadError::Map {
                name,
                source: MapError::InvalidName { name: name.into() },
            })
        })
    }

    /// Opens the pinned maps (read-mostly CLI commands).
    pub fn open(pins: &PinDir) -> Result<Self, TablesError> {
        Self::build(|name| open_pinned(pins, name))
    }

    fn build(
        mut take: impl FnMut(&'static str) -> Result<Map, LoadError>,
    ) -> Result<Self, TablesError> {
        let mut t = Self {
            block_v4: typed(&mut take, maps::BLOCK_V4)?,
            block_v6: typed(&mut take, maps::BLOCK_V6)?,
            block_net_v4: typed(&mut take, maps::BLOCK_NET_V4)?,
            block_net_v6: typed(&mut take, maps::BLOCK_NET_V6)?,
            allow_v4: typed(&mut take, maps::ALLOW_V4)?,
            allow_v6: typed(&mut take, maps::ALLOW_V6)?,
            stats: typed(&mut take, maps::STATS)?,
            zw_v4: typed(&mut take, maps::ZW_SYN_V4)?,
            zw_v6: typed(&mut take, maps::ZW_SYN_V6)?,
            counters: typed(&mut take, maps::RULE_COUNTERS)?,
            config: typed(&mut take, maps::CONFIG)?,
            capacities: Default::default(),
            ids: RuleIds::new(),
        };
        t.capacities = [
            (maps::BLOCK_V4, t.block_v4.map().info()),
            (maps::BLOCK_V6, t.block_v6.map().info()),
            (maps::BLOCK_NET_V4, t.block_net_v4.map().info()),
            (maps::BLOCK_NET_V6, t.block_net_v6.map().info()),
            (maps::ALLOW_V4, t.allow_v4.map().info()),
            (maps::ALLOW_V6, t.allow_v6.map().info()),
            (maps::ZW_SYN_V4, t.zw_v4.map().info()),
            (maps::ZW_SYN_V6, t.zw_v6.map().info()),
            (maps::RULE_COUNTERS, t.counters.map().info()),
        ]
        .into_iter()
        .filter_map(|(name, info)| info.ok().map(|i| (name, i.max_entries())))
        .collect();
        Ok(t)
    }

    /// Capacity (max entries) of map `name`, as created in the kernel.
    pub fn capacity(&self, name: &str) -> Option<u32> {
        self.capacities.get(name).copied()
    }

    /// Gives `entry` a fresh id and its counter slot ([`RuleEntry::id`],
    /// [`RuleEntry::slot`]).
    pub fn assign_id(&mut self, entry: &mut RuleEntry) {
        entry.id = self.ids.next();
        let slots = u64::from(self.capacity(maps::RULE_COUNTERS).unwrap_or(1).max(1));
        entry.slot = (entry.id % slots) as u32;
    }

    /// Writes a rule for `net` on `list` that expires after `ttl` (`None`:
    /// never), keeping the packet counters (the id) of the rule it replaces.
    /// Returns the entry written and whether it replaced one.
    pub fn upsert(
        &mut self,
        list: List,
        net: IpNet,
        ttl: Option<Duration>,
        reason: u32,
    ) -> Result<(RuleEntry, bool), TablesError> {
        let mut entry = RuleEntry {
            expires_at_ns: clock::expiry_from_now(ttl),
            added_at_ns: clock::boottime_ns(),
            id: 0,
            reason,
            slot: 0,
        };
        let table = Table::of(list, &net);
        // A lookup in an LPM trie is longest-prefix: with the rule's own
        // prefix length it returns that rule if it exists, else a covering
        // one. Writing with BPF_EXIST succeeds only for an existing exact
        // prefix (trie_update_elem), which tells the two apart without
        // walking the trie.
        let previous = match (table, net) {
            (Table::BlockV4, IpNet::V4(n)) => self.block_v4.get(&addr::v4_key(n.addr()), 0),
            (Table::BlockV6, IpNet::V6(n)) => self.block_v6.get(&addr::v6_key(n.addr()), 0),
            (Table::BlockNetV4, IpNet::V4(n)) => self.block_net_v4.get(&addr::lpm_v4(n), 0),
            (Table::BlockNetV6, IpNet::V6(n)) => self.block_net_v6.get(&addr::lpm_v6(n), 0),
            (Table::AllowV4, IpNet::V4(n)) => self.allow_v4.get(&addr::lpm_v4(n), 0),
            (Table::AllowV6, IpNet::V6(n)) => self.allow_v6.get(&addr::lpm_v6(n), 0),
            _ => unreachable!("Table::of matches the family"),
        };
        match previous {
            Ok(prev) => {
                let mut carried = entry;
                if prev.id == 0 {
                    self.assign_id(&mut carried);
                } else {
                    (carried.id, carried.slot) = (prev.id, prev.slot);
                }
                match self.write(table, net, carried, BPF_EXIST) {
                    Ok(()) => return Ok((carried, true)),
                    Err(e) if errno(&e) == Some(libc::ENOENT) => {}
                    Err(e) => return Err(self.write_error(table, e)),
                }
            }
            Err(MapError::KeyNotFound) => {}
            Err(e) => return Err(map_err(table.map())(e)),
        }
        self.assign_id(&mut entry);
        self.insert(list, net, entry)?;
        Ok((entry, false))
    }

    /// Writes `entry` as is (restoring or importing rules); an entry without
    /// an id gets a fresh one.
    pub fn insert(
        &mut self,
        list: List,
        net: IpNet,
        mut entry: RuleEntry,
    ) -> Result<(), TablesError> {
        if entry.id == 0 {
            self.assign_id(&mut entry);
        }
        let table = Table::of(list, &net);
        self.write(table, net, entry, 0)
            .map_err(|e| self.write_error(table, e))?;
        // Mark the table non-empty only after the entry is in: the XDP
        // program must never skip a table that holds a rule.
        self.set_config(table.active_slot(), 1)?;
        Ok(())
    }

    fn write(
        &mut self,
        table: Table,
        net: IpNet,
        entry: RuleEntry,
        flags: u64,
    ) -> Result<(), MapError> {
        match (table, net) {
            (Table::BlockV4, IpNet::V4(n)) => {
                self.block_v4.insert(addr::v4_key(n.addr()), entry, flags)
            }
            (Table::BlockV6, IpNet::V6(n)) => {
                self.block_v6.insert(addr::v6_key(n.addr()), entry, flags)
            }
            (Table::BlockNetV4, IpNet::V4(n)) => {
                self.block_net_v4.insert(&addr::lpm_v4(n), entry, flags)
            }
            (Table::BlockNetV6, IpNet::V6(n)) => {
                self.block_net_v6.insert(&addr::lpm_v6(n), entry, flags)
            }
            (Table::AllowV4, IpNet::V4(n)) => self.allow_v4.insert(&addr::lpm_v4(n), entry, flags),
            (Table::AllowV6, IpNet::V6(n)) => self.allow_v6.insert(&addr::lpm_v6(n), entry, flags),
            _ => unreachable!("Table::of matches the family"),
        }
    }

    fn write_error(&self, table: Table, e: MapError) -> TablesError {
        // Hash maps report a full table with E2BIG, LPM tries with ENOSPC
        // (htab_map_update_elem, trie_update_elem).
        match errno(&e) {
            Some(libc::E2BIG | libc::ENOSPC) => {
                let (what, key) = table.describe();
                TablesError::Full {
                    what,
                    map: table.map(),
                    capacity: self.capacity(table.map()).unwrap_or(0),
                    key,
                }
            }
            _ => TablesError::Map {
                map: table.map(),
                source: e,
            },
        }
    }

    /// Checks that `rules` fit (before anything is written) and prepares
    /// their entries: a rule for a prefix already on its list keeps that
    /// rule's id (its counters). O(n + size of the touched tables): one
    /// batched read of each exact table, one key walk of each LPM trie.
    /// Fails with [`TablesError::Full`], naming the setting to raise, when a
    /// table cannot take its new rules.
    pub fn plan_batch(&mut self, rules: &[NewEntry]) -> Result<BatchPlan, TablesError> {
        let now = clock::boottime_ns();
        let entries: Vec<(List, IpNet, RuleEntry)> = rules
            .iter()
            .map(|r| {
                let entry = RuleEntry {
                    expires_at_ns: clock::expiry_from_now(r.ttl),
                    added_at_ns: now,
                    id: 0,
                    reason: r.reason,
                    slot: 0,
                };
                (r.list, r.net, entry)
            })
            .collect();
        self.plan_entries(&entries)
    }

    /// [`plan_batch`](Self::plan_batch) for entries with their times set
    /// (restoring journaled rules). An entry's id is kept when it has one
    /// and the prefix is new; a replaced rule's id always wins.
    pub fn plan_entries(
        &mut self,
        rules: &[(List, IpNet, RuleEntry)],
    ) -> Result<BatchPlan, TablesError> {
        use std::collections::{HashMap as Map, HashSet};
        let mut existing: Map<Table, Map<ExactKey, RuleEntry>> = Map::new();
        let mut lpm_keys: Map<Table, HashSet<IpNet>> = Map::new();
        let mut new_per_table: Map<Table, usize> = Map::new();
        let mut seen: HashSet<(Table, IpNet)> = HashSet::with_capacity(rules.len());
        let mut entries = Vec::with_capacity(rules.len());
        for &(list, net, mut entry) in rules {
            let r = NewEntry {
                list,
                net,
                ttl: None,
                reason: entry.reason,
            };
            let table = Table::of(r.list, &r.net);
            let previous = match table {
                Table::BlockV4 | Table::BlockV6 => {
                    if let std::collections::hash_map::Entry::Vacant(v) = existing.entry(table) {
                        v.insert(self.exact_entries(table)?);
                    }
                    existing[&table].get(&exact_key(&r.net)).copied()
                }
                _ => {
                    if let std::collections::hash_map::Entry::Vacant(v) = lpm_keys.entry(table) {
                        let mut keys = Vec::new();
                        self.collect(table, &mut keys)?;
                        v.insert(keys.into_iter().map(|k| k.net).collect());
                    }
                    if lpm_keys[&table].contains(&r.net) {
                        self.matching_exact(table, r.net)?
                    } else {
                        None
                    }
                }
            };
            let replaced = previous.is_some();
            match previous {
                Some(prev) if prev.id != 0 => (entry.id, entry.slot) = (prev.id, prev.slot),
                _ if entry.id != 0 => {}
                _ => self.assign_id(&mut entry),
            }
            // The same prefix twice in one batch takes one slot.
            if !replaced && seen.insert((table, r.net)) {
                *new_per_table.entry(table).or_default() += 1;
            }
            entries.push((table, r.net, entry, replaced));
        }
        for (table, new) in new_per_table {
            let capacity = self.capacity(table.map()).unwrap_or(0) as usize;
            let present = match table {
                Table::BlockV4 | Table::BlockV6 => existing.get(&table).map_or(0, Map::len),
                _ => lpm_keys.get(&table).map_or(0, HashSet::len),
            };
            if present + new > capacity {
                let (what, key) = table.describe();
                let example = entries
                    .iter()
                    .find(|e: &&(Table, IpNet, RuleEntry, bool)| e.0 == table)
                    .map(|e| e.1);
                return Err(TablesError::WontFit {
                    what,
                    map: table.map(),
                    capacity: capacity as u32,
                    present,
                    new,
                    key,
                    list: table.list(),
                    example: example.expect("a new rule of this table"),
                });
            }
        }
        Ok(BatchPlan { entries })
    }

    /// Writes a planned batch: `BPF_MAP_UPDATE_BATCH` for the exact tables,
    /// one update per rule for the LPM tries (which have no batch
    /// operations). Returns how many were written; on error nothing after
    /// the failing chunk is.
    pub fn write_batch(&mut self, plan: &BatchPlan) -> Result<usize, TablesError> {
        let mut written = 0;
        let mut touched = std::collections::HashSet::new();
        for table in Table::ALL {
            let rows: Vec<&(Table, IpNet, RuleEntry, bool)> =
                plan.entries.iter().filter(|e| e.0 == table).collect();
            if rows.is_empty() {
                continue;
            }
            touched.insert(table);
            match table {
                Table::BlockV4 | Table::BlockV6 => {
                    let mut keys = Vec::with_capacity(rows.len() * 16);
                    let values: Vec<RuleEntry> = rows.iter().map(|r| r.2).collect();
                    for r in &rows {
                        keys.extend_from_slice(&exact_key(&r.1));
                    }
                    let key_size = if table == Table::BlockV4 { 4 } else { 16 };
                    let fd = self.exact_fd(table);
                    let result = crate::kernel::sys::update_batch(
                        fd,
                        &keys,
                        key_size,
                        crate::kernel::sys::pod_bytes(&values),
                        size_of::<RuleEntry>(),
                        BATCH_CHUNK,
                    );
                    match result {
                        Ok(n) => written += n,
                        Err((_, e)) => {
                            let e = MapError::SyscallError(aya::sys::SyscallError {
                                call: "bpf_map_update_batch",
                                io_error: e,
                            });
                            // Mark what is in before failing.
                            self.set_config(table.active_slot(), 1)?;
                            return Err(self.write_error(table, e));
                        }
                    }
                }
                _ => {
                    for r in rows {
                        if let Err(e) = self.write(table, r.1, r.2, 0) {
                            self.set_config(table.active_slot(), 1)?;
                            return Err(self.write_error(table, e));
                        }
                        written += 1;
                    }
                }
            }
            self.set_config(table.active_slot(), 1)?;
        }
        Ok(written)
    }

    /// Removes up to `count` rules from the table `net` goes to on `list`,
    /// those expiring soonest first (expired ones first of all), never a
    /// permanent one. O(n) in the table's size. Returns the evicted rules.
    pub fn evict_soonest_many(
        &mut self,
        list: List,
        net: IpNet,
        count: usize,
    ) -> Result<Vec<Rule>, TablesError> {
        let table = Table::of(list, &net);
        let mut rules = Vec::new();
        self.collect(table, &mut rules)?;
        rules.retain(|r| r.entry.expires_at_ns != 0);
        if rules.len() > count {
            rules.select_nth_unstable_by_key(count, |r| r.entry.expires_at_ns);
            rules.truncate(count);
        }
        let nets: Vec<(List, IpNet)> = rules.iter().map(|r| (r.list, r.net)).collect();
        self.remove_batch(&nets)?;
        Ok(rules)
    }

    /// [`plan_batch`](Self::plan_batch) then [`write_batch`](Self::write_batch).
    pub fn upsert_batch(&mut self, rules: &[NewEntry]) -> Result<BatchPlan, TablesError> {
        let plan = self.plan_batch(rules)?;
        self.write_batch(&plan)?;
        Ok(plan)
    }

    /// Removes the rules for exactly these prefixes: batched deletes for the
    /// exact tables, one delete per rule for the tries. Returns how many
    /// were there.
    pub fn remove_batch(&mut self, rules: &[(List, IpNet)]) -> Result<usize, TablesError> {
        let mut removed = 0;
        for table in Table::ALL {
            let nets: Vec<IpNet> = rules
                .iter()
                .filter(|(l, n)| Table::of(*l, n) == table)
                .map(|(_, n)| *n)
                .collect();
            if nets.is_empty() {
                continue;
            }
            match table {
                Table::BlockV4 | Table::BlockV6 => {
                    let mut keys = Vec::with_capacity(nets.len() * 16);
                    for n in &nets {
                        keys.extend_from_slice(&exact_key(n));
                    }
                    let key_size = if table == Table::BlockV4 { 4 } else { 16 };
                    removed += crate::kernel::sys::delete_batch(
                        self.exact_fd(table),
                        &keys,
                        key_size,
                        BATCH_CHUNK,
                    )
                    .map_err(|e| {
                        map_err(table.map())(MapError::SyscallError(aya::sys::SyscallError {
                            call: "bpf_map_delete_batch",
                            io_error: e,
                        }))
                    })?;
                }
                _ => {
                    for n in nets {
                        if self.remove_quiet(table, n)? {
                            removed += 1;
                        }
                    }
                }
            }
            self.refresh_active(table)?;
        }
        Ok(removed)
    }

    fn exact_fd(&self, table: Table) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd as _;
        match table {
            Table::BlockV4 => self.block_v4.map().fd().as_fd(),
            _ => self.block_v6.map().fd().as_fd(),
        }
    }

    /// Every entry of an exact table, by key bytes, in batched reads.
    fn exact_entries(
        &self,
        table: Table,
    ) -> Result<std::collections::HashMap<ExactKey, RuleEntry>, TablesError> {
        let mut out = std::collections::HashMap::new();
        self.exact_chunks(table, |key, entry| {
            out.insert(ExactKey::from_bytes(key), entry);
        })?;
        Ok(out)
    }

    /// Hands `f` every (key bytes, entry) of an exact table, read in
    /// batches (one syscall per 16k rules; memory one batch).
    fn exact_chunks(
        &self,
        table: Table,
        mut f: impl FnMut(&[u8], RuleEntry),
    ) -> Result<(), TablesError> {
        let key_size = if table == Table::BlockV4 { 4 } else { 16 };
        crate::kernel::sys::lookup_chunks(
            self.exact_fd(table),
            key_size,
            size_of::<RuleEntry>(),
            BATCH_CHUNK,
            |keys, values| {
                let values: Vec<RuleEntry> = crate::kernel::sys::pod_from_bytes(values);
                for (k, v) in keys.chunks_exact(key_size).zip(values) {
                    f(k, v);
                }
            },
        )
        .map_err(|e| {
            map_err(table.map())(MapError::SyscallError(aya::sys::SyscallError {
                call: "bpf_map_lookup_batch",
                io_error: e,
            }))
        })
    }

    /// Every rule's list and prefix, compact (see [`RuleKeys`]).
    pub fn keys(&self) -> Result<RuleKeys, TablesError> {
        let mut k = RuleKeys::default();
        self.exact_chunks(Table::BlockV4, |key, _| {
            k.v4.push(u32::from_be_bytes(key.try_into().expect("4 bytes")));
        })?;
        self.exact_chunks(Table::BlockV6, |key, _| {
            k.v6.push(u128::from_be_bytes(key.try_into().expect("16 bytes")));
        })?;
        let mut other = Vec::new();
        for table in [
            Table::AllowV4,
            Table::AllowV6,
            Table::BlockNetV4,
            Table::BlockNetV6,
        ] {
            self.collect(table, &mut other)?;
        }
        k.other = other.into_iter().map(|r| (r.list, r.net)).collect();
        k.sort();
        Ok(k)
    }

    /// Writes rules for prefixes the tables do not hold (restoring
    /// journaled rules): batched for the exact tables, without reading the
    /// tables first (the caller compared against [`keys`](Self::keys)).
    /// Returns the rules that did not fit, each with why; the others are in.
    pub fn restore_batch(
        &mut self,
        rules: &[(List, IpNet, RuleEntry)],
    ) -> Result<Vec<(List, IpNet, TablesError)>, TablesError> {
        let mut failed = Vec::new();
        for table in Table::ALL {
            let mut rows: Vec<(IpNet, RuleEntry)> = rules
                .iter()
                .filter(|r| Table::of(r.0, &r.1) == table)
                .map(|r| (r.1, r.2))
                .collect();
            if rows.is_empty() {
                continue;
            }
            for r in &mut rows {
                if r.1.id == 0 {
                    self.assign_id(&mut r.1);
                }
            }
            let list = table.list();
            let mut written = 0;
            match table {
                Table::BlockV4 | Table::BlockV6 => {
                    let mut keys = Vec::with_capacity(rows.len() * 16);
                    for r in &rows {
                        keys.extend_from_slice(&exact_key(&r.0));
                    }
                    let values: Vec<RuleEntry> = rows.iter().map(|r| r.1).collect();
                    let key_size = if table == Table::BlockV4 { 4 } else { 16 };
                    match crate::kernel::sys::update_batch(
                        self.exact_fd(table),
                        &keys,
                        key_size,
                        crate::kernel::sys::pod_bytes(&values),
                        size_of::<RuleEntry>(),
                        BATCH_CHUNK,
                    ) {
                        Ok(n) => written = n,
                        Err((n, e)) => {
                            // The batch stops at the first rule that does
                            // not go in: that one and the rest failed.
                            written = n;
                            let errno = e.raw_os_error();
                            for r in &rows[n..] {
                                let e = errno.map_or_else(
                                    || std::io::Error::other(e.to_string()),
                                    std::io::Error::from_raw_os_error,
                                );
                                let e = MapError::SyscallError(aya::sys::SyscallError {
                                    call: "bpf_map_update_batch",
                                    io_error: e,
                                });
                                failed.push((list, r.0, self.write_error(table, e)));
                            }
                        }
                    }
                }
                _ => {
                    for &(net, entry) in &rows {
                        match self.write(table, net, entry, 0) {
                            Ok(()) => written += 1,
                            Err(e) => failed.push((list, net, self.write_error(table, e))),
                        }
                    }
                }
            }
            if written > 0 {
                // After the entries are in: the XDP program must never skip
                // a table that holds a rule.
                self.set_config(table.active_slot(), 1)?;
            }
        }
        Ok(failed)
    }

    /// The rule stored for exactly `net` in LPM `table`, if any.
    fn matching_exact(&self, table: Table, net: IpNet) -> Result<Option<RuleEntry>, TablesError> {
        let got = match (table, net) {
            (Table::BlockNetV4, IpNet::V4(n)) => self.block_net_v4.get(&addr::lpm_v4(n), 0),
            (Table::BlockNetV6, IpNet::V6(n)) => self.block_net_v6.get(&addr::lpm_v6(n), 0),
            (Table::AllowV4, IpNet::V4(n)) => self.allow_v4.get(&addr::lpm_v4(n), 0),
            (Table::AllowV6, IpNet::V6(n)) => self.allow_v6.get(&addr::lpm_v6(n), 0),
            _ => unreachable!("LPM tables only"),
        };
        match got {
            // A lookup with the rule's own length returns it, or a covering
            // rule: only the caller's key set tells them apart (it does).
            Ok(e) => Ok(Some(e)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(table.map())(e)),
        }
    }

    /// The rule on `list` the XDP program would match for source `addr`
    /// (exact first, then the longest prefix), live or expired.
    pub fn matching(&self, list: List, addr: IpAddr) -> Result<Option<RuleEntry>, TablesError> {
        let found = |r: Result<RuleEntry, MapError>, map| match r {
            Ok(e) => Ok(Some(e)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(map)(e)),
        };
        let host = addr::host(addr);
        match (list, host) {
            (List::Allow, IpNet::V4(n)) => {
                found(self.allow_v4.get(&addr::lpm_v4(n), 0), maps::ALLOW_V4)
            }
            (List::Allow, IpNet::V6(n)) => {
                found(self.allow_v6.get(&addr::lpm_v6(n), 0), maps::ALLOW_V6)
            }
            (List::Block, IpNet::V4(n)) => match found(
                self.block_v4.get(&addr::v4_key(n.addr()), 0),
                maps::BLOCK_V4,
            )? {
                Some(e) => Ok(Some(e)),
                None => found(
                    self.block_net_v4.get(&addr::lpm_v4(n), 0),
                    maps::BLOCK_NET_V4,
                ),
            },
            (List::Block, IpNet::V6(n)) => match found(
                self.block_v6.get(&addr::v6_key(n.addr()), 0),
                maps::BLOCK_V6,
            )? {
                Some(e) => Ok(Some(e)),
                None => found(
                    self.block_net_v6.get(&addr::lpm_v6(n), 0),
                    maps::BLOCK_NET_V6,
                ),
            },
        }
    }

    /// Removes the rule for exactly `net` on `list`; `false` if there was none.
    pub fn remove(&mut self, list: List, net: IpNet) -> Result<bool, TablesError> {
        let table = Table::of(list, &net);
        let removed = self.remove_quiet(table, net)?;
        if removed {
            self.refresh_active(table)?;
        }
        Ok(removed)
    }

    /// [`remove`](Self::remove) without refreshing the table's active slot.
    fn remove_quiet(&mut self, table: Table, net: IpNet) -> Result<bool, TablesError> {
        let result = match (table, net) {
            (Table::BlockV4, IpNet::V4(n)) => self.block_v4.remove(&addr::v4_key(n.addr())),
            (Table::BlockV6, IpNet::V6(n)) => self.block_v6.remove(&addr::v6_key(n.addr())),
            (Table::BlockNetV4, IpNet::V4(n)) => self.block_net_v4.remove(&addr::lpm_v4(n)),
            (Table::BlockNetV6, IpNet::V6(n)) => self.block_net_v6.remove(&addr::lpm_v6(n)),
            (Table::AllowV4, IpNet::V4(n)) => self.allow_v4.remove(&addr::lpm_v4(n)),
            (Table::AllowV6, IpNet::V6(n)) => self.allow_v6.remove(&addr::lpm_v6(n)),
            _ => unreachable!("Table::of matches the family"),
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if matches!(e, MapError::KeyNotFound) || errno(&e) == Some(libc::ENOENT) => {
                Ok(false)
            }
            Err(e) => Err(map_err(table.map())(e)),
        }
    }

    /// Every rule on `list`, sorted by address, with its counters.
    pub fn rules(&self, list: List) -> Result<Vec<Rule>, TablesError> {
        let mut out = Vec::new();
        for table in Table::ALL.into_iter().filter(|t| t.list() == list) {
            self.collect(table, &mut out)?;
        }
        // A few rules (the allowlist, which the pipeline reads for every
        // debate) look up their own counter slots; many walk the whole
        // counter array once. The walk is one syscall per slot (65,536 by
        // default, ~100 ms here), which each debate used to pay.
        if out.len().saturating_mul(8) < self.counters.len() as usize {
            for rule in &mut out {
                rule.counters = self.counters(&rule.entry)?;
            }
        } else {
            let counters = self.all_counters()?;
            for rule in &mut out {
                if let Some(c) = counters.get(&rule.entry.id) {
                    rule.counters = *c;
                }
            }
        }
        out.sort_by(|a, b| {
            (a.net.addr(), a.net.prefix_len()).cmp(&(b.net.addr(), b.net.prefix_len()))
        });
        Ok(out)
    }

    /// Every rule on `list` without its counters (garbage collection and
    /// counting need no counter walk).
    fn rules_only(&self, list: List) -> Result<Vec<Rule>, TablesError> {
        let mut out = Vec::new();
        for table in Table::ALL.into_iter().filter(|t| t.list() == list) {
            self.collect(table, &mut out)?;
        }
        Ok(out)
    }

    /// Every counter slot, summed over the CPUs per rule id: one walk of the
    /// counter array (bounded by its capacity, not by the number of rules).
    fn all_counters(&self) -> Result<std::collections::HashMap<u64, RuleCounters>, TablesError> {
        let mut out: std::collections::HashMap<u64, RuleCounters> = Default::default();
        for slot in 0..self.counters.len() {
            let per_cpu = self
                .counters
                .get(&slot, 0)
                .map_err(map_err(maps::RULE_COUNTERS))?;
            for c in per_cpu.iter().filter(|c| c.id != 0) {
                let sum = out.entry(c.id).or_insert(RuleCounters {
                    id: c.id,
                    ..RuleCounters::default()
                });
                sum.packets += c.packets;
                sum.bytes += c.bytes;
            }
        }
        Ok(out)
    }

    /// The counters of `entry` on each possible CPU, unsummed (what the XDP
    /// program wrote; zero where the slot counts for another rule).
    pub fn counters_per_cpu(&self, entry: &RuleEntry) -> Result<Vec<RuleCounters>, TablesError> {
        let per_cpu = self
            .counters
            .get(&entry.slot, 0)
            .map_err(map_err(maps::RULE_COUNTERS))?;
        Ok(per_cpu
            .iter()
            .map(|c| {
                if c.id == entry.id && entry.id != 0 {
                    *c
                } else {
                    RuleCounters::default()
                }
            })
            .collect())
    }

    /// The counters of `entry`, summed over the CPUs.
    pub fn counters(&self, entry: &RuleEntry) -> Result<RuleCounters, TablesError> {
        let per_cpu = self.counters_per_cpu(entry)?;
        Ok(sum_counters(per_cpu.iter()))
    }

    fn collect(&self, table: Table, out: &mut Vec<Rule>) -> Result<(), TablesError> {
        let list = table.list();
        let e = map_err(table.map());
        match table {
            Table::BlockV4 | Table::BlockV6 => {
                // Batched reads: one syscall per 16k rules, not two per rule.
                self.exact_chunks(table, |key, entry| {
                    out.push(Rule {
                        list,
                        net: addr::host(exact_ip(key)),
                        entry,
                        counters: RuleCounters::default(),
                    });
                })?;
            }
            Table::BlockNetV4 => collect_trie(&self.block_net_v4, addr::from_lpm_v4, list, out, e)?,
            Table::AllowV4 => collect_trie(&self.allow_v4, addr::from_lpm_v4, list, out, e)?,
            Table::BlockNetV6 => collect_trie(&self.block_net_v6, addr::from_lpm_v6, list, out, e)?,
            Table::AllowV6 => collect_trie(&self.allow_v6, addr::from_lpm_v6, list, out, e)?,
        }
        Ok(())
    }

    /// Makes room in the table `net` would go to on `list` by removing the
    /// rule that expires soonest (an already expired one first). Permanent
    /// rules are never evicted. Returns the evicted rule, or `None` when the
    /// table holds only permanent rules.
    pub fn evict_soonest(&mut self, list: List, net: IpNet) -> Result<Option<Rule>, TablesError> {
        let mut rules = Vec::new();
        self.collect(Table::of(list, &net), &mut rules)?;
        let victim = rules
            .into_iter()
            .filter(|r| r.entry.expires_at_ns != 0)
            .min_by_key(|r| r.entry.expires_at_ns);
        match victim {
            Some(v) if self.remove(v.list, v.net)? => Ok(Some(v)),
            _ => Ok(None),
        }
    }

    /// The rules that expired before `now_ns` (CLOCK_BOOTTIME), found
    /// without changing anything: the XDP program already ignores them, and
    /// garbage collection removes them later (see `daemon::gc`). Reads the
    /// exact tables one batch at a time, so the walk of a million rules holds
    /// only the expired ones in memory.
    pub fn expired(&self, now_ns: u64) -> Result<Scan, TablesError> {
        let mut out = Vec::new();
        let mut fill = std::collections::HashMap::new();
        for table in Table::ALL {
            let list = table.list();
            match table {
                Table::BlockV4 | Table::BlockV6 => {
                    let entries = fill.entry(table.map()).or_insert(0u64);
                    self.exact_chunks(table, |key, entry| {
                        *entries += 1;
                        if !entry.is_live(now_ns) {
                            out.push((list, addr::host(exact_ip(key))));
                        }
                    })?;
                }
                // The tries are small (16k by default): read whole.
                _ => {
                    let mut rules = Vec::new();
                    self.collect(table, &mut rules)?;
                    out.extend(
                        rules
                            .into_iter()
                            .filter(|r| !r.entry.is_live(now_ns))
                            .map(|r| (r.list, r.net)),
                    );
                }
            }
        }
        Ok(Scan { expired: out, fill })
    }

    /// The rule stored for exactly `net` on `list`, if any (for an LPM table,
    /// possibly a covering rule when `net` itself is absent: see
    /// `matching_exact`).
    pub fn entry(&self, list: List, net: IpNet) -> Result<Option<RuleEntry>, TablesError> {
        let table = Table::of(list, &net);
        let found = |r: Result<RuleEntry, MapError>| match r {
            Ok(e) => Ok(Some(e)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(table.map())(e)),
        };
        match (table, net) {
            (Table::BlockV4, IpNet::V4(n)) => found(self.block_v4.get(&addr::v4_key(n.addr()), 0)),
            (Table::BlockV6, IpNet::V6(n)) => found(self.block_v6.get(&addr::v6_key(n.addr()), 0)),
            _ => self.matching_exact(table, net),
        }
    }

    /// Clears a table's "active" slot if it is empty. Clearing races with a
    /// concurrent insert, so after clearing we look again and set it back if
    /// an entry arrived meanwhile; an insert that lands later sets the slot
    /// itself (see `insert`).
    fn refresh_active(&mut self, table: Table) -> Result<(), TablesError> {
        if !self.is_empty(table)? {
            return Ok(());
        }
        self.set_config(table.active_slot(), 0)?;
        if !self.is_empty(table)? {
            self.set_config(table.active_slot(), 1)?;
        }
        Ok(())
    }

    /// Recomputes every "active" slot from the tables' contents.
    pub fn sync_active(&mut self) -> Result<(), TablesError> {
        for table in Table::ALL {
            if self.is_empty(table)? {
                self.refresh_active(table)?;
            } else {
                self.set_config(table.active_slot(), 1)?;
            }
        }
        Ok(())
    }

    fn is_empty(&self, table: Table) -> Result<bool, TablesError> {
        let e = map_err(table.map());
        let first = match table {
            Table::BlockV4 => self.block_v4.keys().next().map(|r| r.map(drop)),
            Table::BlockV6 => self.block_v6.keys().next().map(|r| r.map(drop)),
            Table::BlockNetV4 => self.block_net_v4.keys().next().map(|r| r.map(drop)),
            Table::BlockNetV6 => self.block_net_v6.keys().next().map(|r| r.map(drop)),
            Table::AllowV4 => self.allow_v4.keys().next().map(|r| r.map(drop)),
            Table::AllowV6 => self.allow_v6.keys().next().map(|r| r.map(drop)),
        };
        match first {
            None => Ok(true),
            Some(r) => r.map(|()| false).map_err(e),
        }
    }

    /// The global counters, summed over CPUs.
    pub fn stats(&self) -> Result<XdpStats, TablesError> {
        let per_cpu = self.stats.get(&0, 0).map_err(map_err(maps::STATS))?;
        Ok(per_cpu
            .iter()
            .fold(XdpStats::default(), |acc, s| sum_stats(&acc, s)))
    }

    /// Every source in the zero-window SYN table.
    pub fn zero_window(&self) -> Result<Vec<(IpAddr, ZeroWindowEntry)>, TablesError> {
        let mut out = Vec::new();
        for item in self.zw_v4.iter() {
            let (k, v) = item.map_err(map_err(maps::ZW_SYN_V4))?;
            out.push((IpAddr::from(k), v));
        }
        for item in self.zw_v6.iter() {
            let (k, v) = item.map_err(map_err(maps::ZW_SYN_V6))?;
            out.push((IpAddr::from(k), v));
        }
        Ok(out)
    }

    /// Forgets a source's zero-window count (after it was banned, say).
    pub fn forget_zero_window(&mut self, source: IpAddr) -> Result<(), TablesError> {
        let r = match addr::canonical(source) {
            IpAddr::V4(a) => self.zw_v4.remove(&addr::v4_key(a)),
            IpAddr::V6(a) => self.zw_v6.remove(&addr::v6_key(a)),
        };
        match r {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) if errno(&e) == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(map_err(maps::ZW_SYN_V4)(e)),
        }
    }

    /// A runtime setting (slot from `blocker_common::config`).
    pub fn config(&self, index: u32) -> Result<u64, TablesError> {
        self.config.get(&index, 0).map_err(map_err(maps::CONFIG))
    }

    pub fn set_config(&mut self, index: u32, value: u64) -> Result<(), TablesError> {
        self.config
            .set(index, value, 0)
            .map_err(map_err(maps::CONFIG))
    }

    /// Number of rules in each list.
    pub fn counts(&self) -> Result<(usize, usize), TablesError> {
        Ok((
            self.rules_only(List::Allow)?.len(),
            self.rules_only(List::Block)?.len(),
        ))
    }
}

/// What the enforcer, the daemon's pipeline and the council's facts need of
/// the kernel tables: [`Tables`] over the real maps, or an in-memory fake in
/// unit tests (`kernel::fake`), so scheduling and apply logic run without
/// BPF. The methods mean what [`Tables`]' methods of the same name mean.
pub trait RuleTables {
    fn capacity(&self, name: &str) -> Option<u32>;
    fn upsert(
        &mut self,
        list: List,
        net: IpNet,
        ttl: Option<Duration>,
        reason: u32,
    ) -> Result<(RuleEntry, bool), TablesError>;
    fn insert(&mut self, list: List, net: IpNet, entry: RuleEntry) -> Result<(), TablesError>;
    fn remove(&mut self, list: List, net: IpNet) -> Result<bool, TablesError>;
    fn rules(&self, list: List) -> Result<Vec<Rule>, TablesError>;
    fn matching(&self, list: List, addr: IpAddr) -> Result<Option<RuleEntry>, TablesError>;
    fn evict_soonest(&mut self, list: List, net: IpNet) -> Result<Option<Rule>, TablesError>;
    fn expired(&self, now_ns: u64) -> Result<Scan, TablesError>;
    fn entry(&self, list: List, net: IpNet) -> Result<Option<RuleEntry>, TablesError>;
    fn sync_active(&mut self) -> Result<(), TablesError>;
    fn stats(&self) -> Result<XdpStats, TablesError>;
    fn forget_zero_window(&mut self, source: IpAddr) -> Result<(), TablesError>;
    fn config(&self, index: u32) -> Result<u64, TablesError>;
    fn set_config(&mut self, index: u32, value: u64) -> Result<(), TablesError>;

    // Batches. The defaults go rule by rule through the methods above (what
    // the fake needs); [`Tables`] checks capacity up front and batches.

    fn plan_batch(&mut self, rules: &[NewEntry]) -> Result<BatchPlan, TablesError> {
        let now = clock::boottime_ns();
        let entries: Vec<(List, IpNet, RuleEntry)> = rules
            .iter()
            .map(|r| {
                let entry = RuleEntry {
                    expires_at_ns: clock::expiry_from_now(r.ttl),
                    added_at_ns: now,
                    reason: r.reason,
                    ..RuleEntry::default()
                };
                (r.list, r.net, entry)
            })
            .collect();
        self.plan_entries(&entries)
    }
    fn plan_entries(
        &mut self,
        rules: &[(List, IpNet, RuleEntry)],
    ) -> Result<BatchPlan, TablesError> {
        Ok(BatchPlan {
            entries: rules
                .iter()
                .map(|&(list, net, entry)| (Table::of(list, &net), net, entry, false))
                .collect(),
        })
    }
    fn write_batch(&mut self, plan: &BatchPlan) -> Result<usize, TablesError> {
        for &(table, net, entry, _) in &plan.entries {
            self.insert(table.list(), net, entry)?;
        }
        Ok(plan.entries.len())
    }
    fn remove_batch(&mut self, rules: &[(List, IpNet)]) -> Result<usize, TablesError> {
        let mut n = 0;
        for &(list, net) in rules {
            n += usize::from(self.remove(list, net)?);
        }
        Ok(n)
    }
    fn keys(&self) -> Result<RuleKeys, TablesError> {
        let mut all = self.rules(List::Allow)?;
        all.extend(self.rules(List::Block)?);
        Ok(RuleKeys::from_rules(
            all.into_iter().map(|r| (r.list, r.net)),
        ))
    }
    fn restore_batch(
        &mut self,
        rules: &[(List, IpNet, RuleEntry)],
    ) -> Result<Vec<(List, IpNet, TablesError)>, TablesError> {
        let mut failed = Vec::new();
        for &(list, net, entry) in rules {
            if let Err(e) = self.insert(list, net, entry) {
                failed.push((list, net, e));
            }
        }
        Ok(failed)
    }
    fn evict_soonest_many(
        &mut self,
        list: List,
        net: IpNet,
        count: usize,
    ) -> Result<Vec<Rule>, TablesError> {
        let mut out = Vec::new();
        while out.len() < count {
            match self.evict_soonest(list, net)? {
                Some(r) => out.push(r),
                None => break,
            }
        }
        Ok(out)
    }
}

impl RuleTables for Tables {
    fn capacity(&self, name: &str) -> Option<u32> {
        Tables::capacity(self, name)
    }
    fn upsert(
        &mut self,
        list: List,
        net: IpNet,
        ttl: Option<Duration>,
        reason: u32,
    ) -> Result<(RuleEntry, bool), TablesError> {
        Tables::upsert(self, list, net, ttl, reason)
    }
    fn insert(&mut self, list: List, net: IpNet, entry: RuleEntry) -> Result<(), TablesError> {
        Tables::insert(self, list, net, entry)
    }
    fn remove(&mut self, list: List, net: IpNet) -> Result<bool, TablesError> {
        Tables::remove(self, list, net)
    }
    fn rules(&self, list: List) -> Result<Vec<Rule>, TablesError> {
        Tables::rules(self, list)
    }
    fn matching(&self, list: List, addr: IpAddr) -> Result<Option<RuleEntry>, TablesError> {
        Tables::matching(self, list, addr)
    }
    fn evict_soonest(&mut self, list: List, net: IpNet) -> Result<Option<Rule>, TablesError> {
        Tables::evict_soonest(self, list, net)
    }
    fn expired(&self, now_ns: u64) -> Result<Scan, TablesError> {
        Tables::expired(self, now_ns)
    }
    fn entry(&self, list: List, net: IpNet) -> Result<Option<RuleEntry>, TablesError> {
        Tables::entry(self, list, net)
    }
    fn sync_active(&mut self) -> Result<(), TablesError> {
        Tables::sync_active(self)
    }
    fn stats(&self) -> Result<XdpStats, TablesError> {
        Tables::stats(self)
    }
    fn forget_zero_window(&mut self, source: IpAddr) -> Result<(), TablesError> {
        Tables::forget_zero_window(self, source)
    }
    fn config(&self, index: u32) -> Result<u64, TablesError> {
        Tables::config(self, index)
    }
    fn set_config(&mut self, index: u32, value: u64) -> Result<(), TablesError> {
        Tables::set_config(self, index, value)
    }
    fn plan_batch(&mut self, rules: &[NewEntry]) -> Result<BatchPlan, TablesError> {
        Tables::plan_batch(self, rules)
    }
    fn plan_entries(
        &mut self,
        rules: &[(List, IpNet, RuleEntry)],
    ) -> Result<BatchPlan, TablesError> {
        Tables::plan_entries(self, rules)
    }
    fn write_batch(&mut self, plan: &BatchPlan) -> Result<usize, TablesError> {
        Tables::write_batch(self, plan)
    }
    fn remove_batch(&mut self, rules: &[(List, IpNet)]) -> Result<usize, TablesError> {
        Tables::remove_batch(self, rules)
    }
    fn keys(&self) -> Result<RuleKeys, TablesError> {
        Tables::keys(self)
    }
    fn restore_batch(
        &mut self,
        rules: &[(List, IpNet, RuleEntry)],
    ) -> Result<Vec<(List, IpNet, TablesError)>, TablesError> {
        Tables::restore_batch(self, rules)
    }
    fn evict_soonest_many(
        &mut self,
        list: List,
        net: IpNet,
        count: usize,
    ) -> Result<Vec<Rule>, TablesError> {
        Tables::evict_soonest_many(self, list, net, count)
    }
}

/// Live allowlist prefixes (none without tables).
pub fn live_allowlist(tables: Option<&dyn RuleTables>) -> Vec<ipnet::IpNet> {
    let now_ns = clock::boottime_ns();
    tables
        .and_then(|t| t.rules(List::Allow).ok())
        .map(|r| {
            r.into_iter()
                .filter(|r| r.entry.is_live(now_ns))
                .map(|r| r.net)
                .collect()
        })
        .unwrap_or_default()
}

/// Entries per exact blocklist map.
pub fn block_fill(tables: &dyn RuleTables) -> Option<std::collections::HashMap<&'static str, u64>> {
    let rules = tables.rules(List::Block).ok()?;
    let count = |v4: bool| {
        rules
            .iter()
            .filter(|r| addr::is_host(&r.net) && r.net.addr().is_ipv4() == v4)
            .count() as u64
    };
    Some(std::collections::HashMap::from([
        (maps::BLOCK_V4, count(true)),
        (maps::BLOCK_V6, count(false)),
    ]))
}

/// Sum of one rule's per-CPU counters.
pub fn sum_counters<'a>(per_cpu: impl Iterator<Item = &'a RuleCounters>) -> RuleCounters {
    per_cpu.fold(RuleCounters::default(), |acc, c| RuleCounters {
        id: acc.id.max(c.id),
        packets: acc.packets + c.packets,
        bytes: acc.bytes + c.bytes,
    })
}

/// Field-wise sum of two counter sets.
pub fn sum_stats(a: &XdpStats, b: &XdpStats) -> XdpStats {
    XdpStats {
        passed: a.passed + b.passed,
        dropped: a.dropped + b.dropped,
        dropped_bytes: a.dropped_bytes + b.dropped_bytes,
        allowlisted: a.allowlisted + b.allowlisted,
        malformed: a.malformed + b.malformed,
        non_ip: a.non_ip + b.non_ip,
        expired: a.expired + b.expired,
        zw_syn: a.zw_syn + b.zw_syn,
        zw_syn_dropped: a.zw_syn_dropped + b.zw_syn_dropped,
        events: a.events + b.events,
        events_lost: a.events_lost + b.events_lost,
        passed_bytes: a.passed_bytes + b.passed_bytes,
        allowlisted_bytes: a.allowlisted_bytes + b.allowlisted_bytes,
        malformed_bytes: a.malformed_bytes + b.malformed_bytes,
    }
}

/// The key bytes of an exact-table rule (a host prefix), on the stack:
/// bulk paths build a million of them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct ExactKey {
    bytes: [u8; 16],
    len: u8,
}

impl ExactKey {
    fn from_bytes(b: &[u8]) -> Self {
        let mut bytes = [0; 16];
        bytes[..b.len()].copy_from_slice(b);
        Self {
            bytes,
            len: b.len() as u8,
        }
    }
}

impl std::ops::Deref for ExactKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The address an exact table's key holds (4 bytes IPv4, 16 IPv6).
fn exact_ip(key: &[u8]) -> IpAddr {
    match <[u8; 4]>::try_from(key) {
        Ok(v4) => IpAddr::from(v4),
        Err(_) => IpAddr::from(<[u8; 16]>::try_from(key).expect("16-byte key")),
    }
}

fn exact_key(net: &IpNet) -> ExactKey {
    match net {
        IpNet::V4(n) => ExactKey::from_bytes(&addr::v4_key(n.addr())),
        IpNet::V6(n) => ExactKey::from_bytes(&addr::v6_key(n.addr())),
    }
}

/// Every rule's list and prefix, compact: 4 bytes per exact IPv4 ban, 16
/// per exact IPv6 one. What reconciliation at start-up compares a million
/// journaled rules against without holding a million [`Rule`]s.
#[derive(Debug, Default)]
pub struct RuleKeys {
    v4: Vec<u32>,
    v6: Vec<u128>,
    /// The LPM tables' rules (CIDRs and the allowlist).
    other: Vec<(List, IpNet)>,
}

impl RuleKeys {
    /// From any list of rules (sorted here).
    pub fn from_rules(rules: impl IntoIterator<Item = (List, IpNet)>) -> Self {
        let mut k = Self::default();
        for (list, net) in rules {
            k.push(list, net);
        }
        k.sort();
        k
    }

    fn push(&mut self, list: List, net: IpNet) {
        match (Table::of(list, &net), net) {
            (Table::BlockV4, IpNet::V4(n)) => self.v4.push(u32::from(n.addr())),
            (Table::BlockV6, IpNet::V6(n)) => self.v6.push(u128::from(n.addr())),
            _ => self.other.push((list, net)),
        }
    }

    fn sort(&mut self) {
        self.v4.sort_unstable();
        self.v4.dedup();
        self.v6.sort_unstable();
        self.v6.dedup();
        self.other.sort_unstable();
        self.other.dedup();
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len() + self.other.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index of the rule for `net` on `list`, if the tables held it.
    pub fn position(&self, list: List, net: &IpNet) -> Option<usize> {
        match (Table::of(list, net), net) {
            (Table::BlockV4, IpNet::V4(n)) => self.v4.binary_search(&u32::from(n.addr())).ok(),
            (Table::BlockV6, IpNet::V6(n)) => self
                .v6
                .binary_search(&u128::from(n.addr()))
                .ok()
                .map(|i| self.v4.len() + i),
            _ => self
                .other
                .binary_search(&(list, *net))
                .ok()
                .map(|i| self.v4.len() + self.v6.len() + i),
        }
    }

    /// The rule at index `i` (see [`position`](Self::position)).
    pub fn at(&self, i: usize) -> (List, IpNet) {
        let (a, b) = (self.v4.len(), self.v6.len());
        if i < a {
            (
                List::Block,
                addr::host(IpAddr::from(std::net::Ipv4Addr::from(self.v4[i]))),
            )
        } else if i < a + b {
            (
                List::Block,
                addr::host(IpAddr::from(std::net::Ipv6Addr::from(self.v6[i - a]))),
            )
        } else {
            self.other[i - a - b]
        }
    }
}

fn errno(e: &MapError) -> Option<i32> {
    match e {
        MapError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_keys_find_every_rule_by_position() {
        let rules: Vec<(List, IpNet)> = [
            (List::Block, "198.51.100.9/32"),
            (List::Block, "198.51.100.1/32"),
            (List::Block, "2001:db8::1/128"),
            (List::Block, "198.51.100.0/24"),
            (List::Allow, "198.51.100.1/32"),
            (List::Block, "198.51.100.1/32"),
        ]
        .into_iter()
        .map(|(l, n)| (l, n.parse().unwrap()))
        .collect();
        let keys = RuleKeys::from_rules(rules.iter().copied());
        assert_eq!(keys.len(), 5, "the duplicate counts once");
        let mut seen = std::collections::HashSet::new();
        for (list, net) in &rules {
            let i = keys.position(*list, net).expect("held");
            assert_eq!(keys.at(i), (*list, *net));
            seen.insert(i);
        }
        assert_eq!(seen.len(), 5);
        assert_eq!(
            keys.position(List::Block, &"198.51.100.2/32".parse().unwrap()),
            None
        );
        assert_eq!(
            keys.position(List::Allow, &"198.51.100.9/32".parse().unwrap()),
            None
        );
    }
}
