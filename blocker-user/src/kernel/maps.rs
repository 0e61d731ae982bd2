//! Typed access to the kernel tables: the allow and block rules, the
//! counters, the zero-window SYN table and the runtime settings. Every read
//! and write of those maps in userspace goes through [`Tables`].

use std::{net::IpAddr, time::Duration};

use aya::{
    Ebpf,
    maps::{Array, HashMap, IterableMap as _, LpmTrie, Map, MapData, MapError, PerCpuArray},
};
use blocker_common::{
    Ipv4Key, Ipv6Key, LpmV4, RuleEntry, XdpStats, ZeroWindowEntry, config as slot, maps,
};
use ipnet::IpNet;

use crate::{
    addr, clock,
    kernel::pins::{LoadError, PinDir, open_pinned},
    rule::{List, Rule},
};

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
    config: Array<MapData, u64>,
    capacities: std::collections::HashMap<&'static str, u32>,
}

/// Where a rule for a given list and prefix is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// `BPF_EXIST` (linux/bpf.h): update only an existing element.
const BPF_EXIST: u64 = 2;

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
            config: typed(&mut take, maps::CONFIG)?,
            capacities: Default::default(),
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

    /// Writes a rule for `net` on `list` that expires after `ttl` (`None`:
    /// never), keeping the packet counters of the rule it replaces. Returns
    /// the entry written and whether it replaced one.
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
            packets: 0,
            bytes: 0,
            reason,
            flags: 0,
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
                carried.packets = prev.packets;
                carried.bytes = prev.bytes;
                match self.write(table, net, carried, BPF_EXIST) {
                    Ok(()) => return Ok((carried, true)),
                    Err(e) if errno(&e) == Some(libc::ENOENT) => {}
                    Err(e) => return Err(self.write_error(table, e)),
                }
            }
            Err(MapError::KeyNotFound) => {}
            Err(e) => return Err(map_err(table.map())(e)),
        }
        entry.packets = 0;
        self.insert(list, net, entry)?;
        Ok((entry, false))
    }

    /// Writes `entry` as is (restoring or importing rules).
    pub fn insert(&mut self, list: List, net: IpNet, entry: RuleEntry) -> Result<(), TablesError> {
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
            Ok(()) => {
                self.refresh_active(table)?;
                Ok(true)
            }
            Err(e) if matches!(e, MapError::KeyNotFound) || errno(&e) == Some(libc::ENOENT) => {
                Ok(false)
            }
            Err(e) => Err(map_err(table.map())(e)),
        }
    }

    /// Every rule on `list`, sorted by address.
    pub fn rules(&self, list: List) -> Result<Vec<Rule>, TablesError> {
        let mut out = Vec::new();
        for table in Table::ALL.into_iter().filter(|t| t.list() == list) {
            self.collect(table, &mut out)?;
        }
        out.sort_by(|a, b| {
            (a.net.addr(), a.net.prefix_len()).cmp(&(b.net.addr(), b.net.prefix_len()))
        });
        Ok(out)
    }

    fn collect(&self, table: Table, out: &mut Vec<Rule>) -> Result<(), TablesError> {
        let list = table.list();
        let e = map_err(table.map());
        match table {
            Table::BlockV4 => {
                for item in self.block_v4.iter() {
                    let (k, entry) = item.map_err(&e)?;
                    out.push(Rule {
                        list,
                        net: addr::host(IpAddr::from(k)),
                        entry,
                    });
                }
            }
            Table::BlockV6 => {
                for item in self.block_v6.iter() {
                    let (k, entry) = item.map_err(&e)?;
                    out.push(Rule {
                        list,
                        net: addr::host(IpAddr::from(k)),
                        entry,
                    });
                }
            }
            Table::BlockNetV4 | Table::AllowV4 => {
                let trie = if table == Table::AllowV4 {
                    &self.allow_v4
                } else {
                    &self.block_net_v4
                };
                for item in trie.iter() {
                    let (k, entry) = item.map_err(&e)?;
                    if let Some(net) = addr::from_lpm_v4(&k) {
                        out.push(Rule { list, net, entry });
                    }
                }
            }
            Table::BlockNetV6 | Table::AllowV6 => {
                let trie = if table == Table::AllowV6 {
                    &self.allow_v6
                } else {
                    &self.block_net_v6
                };
                for item in trie.iter() {
                    let (k, entry) = item.map_err(&e)?;
                    if let Some(net) = addr::from_lpm_v6(&k) {
                        out.push(Rule { list, net, entry });
                    }
                }
            }
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

    /// Removes rules that expired before `now_ns` (CLOCK_BOOTTIME) and
    /// returns them. The XDP program already ignores them; this frees slots.
    pub fn remove_expired(&mut self, now_ns: u64) -> Result<Vec<Rule>, TablesError> {
        let mut expired = Vec::new();
        for list in [List::Allow, List::Block] {
            for rule in self.rules(list)? {
                if !rule.entry.is_live(now_ns) && self.remove(rule.list, rule.net)? {
                    expired.push(rule);
                }
            }
        }
        Ok(expired)
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
            self.rules(List::Allow)?.len(),
            self.rules(List::Block)?.len(),
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
    fn remove_expired(&mut self, now_ns: u64) -> Result<Vec<Rule>, TablesError>;
    fn sync_active(&mut self) -> Result<(), TablesError>;
    fn stats(&self) -> Result<XdpStats, TablesError>;
    fn forget_zero_window(&mut self, source: IpAddr) -> Result<(), TablesError>;
    fn config(&self, index: u32) -> Result<u64, TablesError>;
    fn set_config(&mut self, index: u32, value: u64) -> Result<(), TablesError>;
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
    fn remove_expired(&mut self, now_ns: u64) -> Result<Vec<Rule>, TablesError> {
        Tables::remove_expired(self, now_ns)
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
    }
}

fn errno(e: &MapError) -> Option<i32> {
    match e {
        MapError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    }
}
