//! The pin directory and loading the eBPF object against it: the layout
//! check, map resizing, and the capabilities it all needs.
//!
//! All state lives in bpffs under the pin directory (xdp-filter style): the
//! maps by name, and one pinned XDP link per interface (`link_xdp_<iface>`,
//! see [`super::xdp`]). A daemon that dies leaves the link and maps pinned,
//! so enforcement goes on; the next `blocker run` opens the same maps.

use std::{
    io,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, Map, MapData, MapInfo},
};
use blocker_common::{LAYOUT_VERSION, Meta, SockOffsets, TracepointOffsets, globals, maps};
use tracing::{info, warn};

use crate::{
    kernel::maps::MapsConfig,
    kernel::object,
    kernel::sys::{self, Cap},
};

/// Capabilities every command that touches the maps needs.
pub const MAP_CAPS: &[Cap] = &[Cap::Bpf];
/// Capabilities `blocker run` needs (XDP attach, probes).
pub const RUN_CAPS: &[Cap] = &[Cap::Bpf, Cap::NetAdmin, Cap::Perfmon];

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "this blocker binary was built without its eBPF object; build it with `cargo xtask build` (or run it with `cargo xtask run -- ...`)"
    )]
    NoObject,
    #[error(
        "blocker needs root, or {}; run it with sudo (or grant the capabilities with setcap)",
        missing.iter().map(|c| c.name()).collect::<Vec<_>>().join(" and ")
    )]
    NotPrivileged { missing: Vec<Cap> },
    #[error(
        "{dir} is not on a bpf filesystem (it is a regular directory); mount one with `mount -t bpf bpf /sys/fs/bpf` or choose a --pin-dir under /sys/fs/bpf"
    )]
    NotBpffs { dir: PathBuf },
    #[error(
        "cannot tell whether {dir} is on a bpf filesystem ({source}); check the path, or choose a --pin-dir under /sys/fs/bpf"
    )]
    BpffsCheck { dir: PathBuf, source: io::Error },
    #[error(
        "/sys/fs/bpf has no bpf filesystem and mounting one failed ({source}); mount it with `mount -t bpf bpf /sys/fs/bpf` (in a container: `-v /sys/fs/bpf:/sys/fs/bpf`)"
    )]
    MountBpffs { source: io::Error },
    #[error("cannot create pin directory {dir}: {source}")]
    PinDir { dir: PathBuf, source: io::Error },
    #[error(
        "no blocker maps are pinned under {dir}; start `blocker run --iface IFACE` (or ban an address, which creates them)"
    )]
    NotLoaded { dir: PathBuf },
    #[error(
        "the pins under {dir} were written by an incompatible blocker ({detail}); remove them with `blocker detach --all --purge` (bans in the store are restored on the next start) and run again"
    )]
    Incompatible { dir: PathBuf, detail: String },
    #[error("the embedded eBPF object is invalid: {0}")]
    Object(#[from] aya_obj::ParseError),
    #[error("loading the eBPF object failed: {0}")]
    Ebpf(#[from] aya::EbpfError),
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        source: aya::maps::MapError,
    },
    #[error(
        "cannot shrink map {name} to {wanted} entries: it holds {count}; set `{key}` under [maps] to at least {count}, or remove entries first"
    )]
    CannotShrink {
        name: &'static str,
        key: &'static str,
        count: usize,
        wanted: u32,
    },
    #[error("resizing map {name}: {source}")]
    Resize {
        name: &'static str,
        source: io::Error,
    },
}

/// A map whose capacity changed at daemon start.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Resized {
    pub map: &'static str,
    pub from: u32,
    pub to: u32,
    pub entries: usize,
}

/// Fails with [`LoadError::NotPrivileged`] unless the process has `caps`.
pub fn require_caps(caps: &[Cap]) -> Result<(), LoadError> {
    match sys::missing_caps(caps) {
        Ok(missing) if missing.is_empty() => Ok(()),
        Ok(missing) => Err(LoadError::NotPrivileged { missing }),
        // No /proc: let the kernel decide.
        Err(_) => Ok(()),
    }
}

/// The directory in bpffs holding blocker's pins.
#[derive(Clone, Debug)]
pub struct PinDir {
    path: PathBuf,
}

const LINK_PREFIX: &str = "link_xdp_";

impl PinDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Pin path of map `name`.
    pub fn map(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Pin path of the XDP link on `iface`.
    pub fn link(&self, iface: &str) -> PathBuf {
        self.path.join(format!("{LINK_PREFIX}{iface}"))
    }

    /// Interfaces with a pinned XDP link, sorted.
    pub fn linked_interfaces(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix(LINK_PREFIX))
                    .map(str::to_owned)
            })
            .collect();
        out.sort();
        out
    }

    /// Whether blocker's maps are pinned here.
    pub fn is_loaded(&self) -> bool {
        self.map(maps::META).exists()
    }

    /// Makes sure the directory exists on a bpf filesystem, mounting bpffs on
    /// /sys/fs/bpf when the system has not (minimal containers, early boot).
    pub fn ensure(&self) -> Result<(), LoadError> {
        let root = Path::new("/sys/fs/bpf");
        if self.path.starts_with(root) && !sys::is_bpffs(root).unwrap_or(false) {
            std::fs::create_dir_all(root).map_err(|source| LoadError::PinDir {
                dir: root.to_owned(),
                source,
            })?;
            sys::mount_bpffs(root).map_err(|source| LoadError::MountBpffs { source })?;
            info!("mounted a bpf filesystem on {}", root.display());
        }
        std::fs::create_dir_all(&self.path).map_err(|source| LoadError::PinDir {
            dir: self.path.clone(),
            source,
        })?;
        match sys::is_bpffs(&self.path) {
            Ok(true) => Ok(()),
            Ok(false) => Err(LoadError::NotBpffs {
                dir: self.path.clone(),
            }),
            Err(source) => Err(LoadError::BpffsCheck {
                dir: self.path.clone(),
                source,
            }),
        }
    }

    /// Removes every pin (maps and links) and the directory itself.
    pub fn purge(&self) -> io::Result<()> {
        match std::fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// Load-time globals of the object (see `blocker_common::globals`).
#[derive(Clone, Copy, Debug)]
pub struct Globals {
    pub sock_offsets: SockOffsets,
    pub tracepoint_offsets: TracepointOffsets,
    pub event_interval_ns: u64,
    pub stall_ns: u64,
}

impl Default for Globals {
    fn default() -> Self {
        Self {
            sock_offsets: SockOffsets::UNSET,
            tracepoint_offsets: TracepointOffsets::UNSET,
            event_interval_ns: blocker_common::DEFAULT_EVENT_INTERVAL_NS,
            stall_ns: blocker_common::DEFAULT_STALL_NS,
        }
    }
}

impl Globals {
    fn apply<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        loader
            .override_global(globals::SOCK_OFFSETS, &self.sock_offsets, true)
            .override_global(globals::TP_OFFSETS, &self.tracepoint_offsets, true)
            .override_global(globals::EVENT_INTERVAL_NS, &self.event_interval_ns, true)
            .override_global(globals::STALL_NS, &self.stall_ns, true);
    }
}

/// Loads the object with its maps opened from (or created and pinned under)
/// `pins`, sized by `capacities`. Programs are not loaded into the kernel
/// until someone attaches them, so this is also how CLI commands open the
/// maps (with default globals).
pub fn load_pinned(pins: &PinDir, capacities: &MapsConfig) -> Result<Ebpf, LoadError> {
    load_pinned_with(pins, capacities, &Globals::default())
}

/// [`load_pinned`] with explicit globals (the daemon's probe offsets).
pub fn load_pinned_with(
    pins: &PinDir,
    capacities: &MapsConfig,
    globals: &Globals,
) -> Result<Ebpf, LoadError> {
    let bytes = object::bytes()?;
    pins.ensure()?;
    check_pins(pins, bytes)?;
    sys::raise_memlock();
    let map_paths: Vec<(&'static str, PathBuf)> = maps::PINNED
        .iter()
        .map(|&name| (name, pins.map(name)))
        .collect();
    let build = || {
        let mut loader = EbpfLoader::new();
        for (name, path) in &map_paths {
            loader.map_pin_path(name, path.as_path());
        }
        for (name, entries, _) in capacities.entries() {
            loader.map_max_entries(name, entries);
        }
        globals.apply(&mut loader);
        loader.load(bytes)
    };
    // Two processes creating the pins at once (a CLI ban racing a daemon's
    // first start): the loser's BPF_OBJ_PIN fails with EEXIST, and a second
    // attempt opens the winner's maps.
    let mut ebpf = match build() {
        Ok(ebpf) => ebpf,
        Err(first) if pins.is_loaded() => {
            tracing::debug!("retrying load after concurrent pin creation: {first}");
            build()?
        }
        Err(e) => return Err(e.into()),
    };
    stamp_layout(&mut ebpf)?;
    warn_on_capacity_drift(pins, capacities);
    Ok(ebpf)
}

/// [`load_pinned_with`] for the daemon: first resizes pinned maps whose
/// capacity differs from the config. The old pin is renamed aside, the
/// loader creates the map at its new size, the entries are copied, and the
/// old pin goes. The XDP program then swapped into the link uses the new
/// maps. An interrupted resize (daemon killed halfway) is finished on the
/// next start from the renamed pin. Only the daemon resizes: a CLI command
/// must not pull maps out from under a running program.
pub fn load_for_daemon(
    pins: &PinDir,
    capacities: &MapsConfig,
    globals: &Globals,
) -> Result<(Ebpf, Vec<Resized>), LoadError> {
    pins.ensure()?;
    let mut pending: Vec<(&'static str, PathBuf, u32, u32)> = Vec::new();
    for (name, wanted, key) in capacities.entries() {
        let path = pins.map(name);
        // Not "NAME.resizing": bpffs refuses dots in names (bpf_lookup(),
        // kernel/bpf/inode.c).
        let aside = pins.map(&format!("{name}_resizing"));
        let resize_err = |source| LoadError::Resize { name, source };
        if aside.exists() {
            if path.exists() {
                // Killed after the new map was created: copy again (updates
                // are idempotent) and finish.
                let from = MapInfo::from_pin(&aside)
                    .map(|i| i.max_entries())
                    .unwrap_or(0);
                pending.push((name, aside, from, wanted));
                continue;
            }
            std::fs::rename(&aside, &path).map_err(resize_err)?;
        }
        let Ok(info) = MapInfo::from_pin(&path) else {
            continue;
        };
        if info.max_entries() == wanted {
            continue;
        }
        let fd = sys::obj_get(&path).map_err(resize_err)?;
        let count = sys::count_map(fd.as_fd(), info.key_size() as usize).map_err(resize_err)?;
        if count > wanted as usize {
            return Err(LoadError::CannotShrink {
                name,
                key,
                count,
                wanted,
            });
        }
        // bpffs implements rename (bpf_dir_iops.rename = simple_rename,
        // kernel/bpf/inode.c): the pin moves, the map stays the same object.
        std::fs::rename(&path, &aside).map_err(resize_err)?;
        pending.push((name, aside, info.max_entries(), wanted));
    }
    let ebpf = load_pinned_with(pins, capacities, globals)?;
    let mut resized = Vec::new();
    for (name, aside, from, to) in pending {
        let resize_err = |source| LoadError::Resize { name, source };
        let old = sys::obj_get(&aside).map_err(resize_err)?;
        let new = sys::obj_get(&pins.map(name)).map_err(resize_err)?;
        let info = MapInfo::from_pin(&aside).map_err(|source| LoadError::Map { name, source })?;
        if name == maps::RULE_COUNTERS {
            // Rules keep the slot they were given (`id % old capacity`); an
            // array of another length cannot take the old one's contents
            // slot for slot, so the counts start over (rules whose slot is
            // past the new end are no longer counted until re-created).
            std::fs::remove_file(&aside).map_err(resize_err)?;
            info!("resized map {name} from {from} to {to} slots; rule counters start over");
            resized.push(Resized {
                map: name,
                from,
                to,
                entries: 0,
            });
            continue;
        }
        let entries = sys::copy_map(
            old.as_fd(),
            new.as_fd(),
            info.key_size() as usize,
            syscall_value_len(&info),
        )
        .map_err(resize_err)?;
        std::fs::remove_file(&aside).map_err(resize_err)?;
        info!("resized map {name} from {from} to {to} entries ({entries} copied)");
        resized.push(Resized {
            map: name,
            from,
            to,
            entries,
        });
    }
    Ok((ebpf, resized))
}

/// Bytes of one value as `BPF_MAP_LOOKUP_ELEM` writes it: for per-CPU maps
/// one 8-byte aligned slot per possible CPU (`bpf_map_value_size()`,
/// kernel/bpf/syscall.c).
fn syscall_value_len(info: &MapInfo) -> usize {
    use aya::maps::MapType;
    let value = info.value_size() as usize;
    match info.map_type() {
        Ok(
            MapType::PerCpuHash
            | MapType::LruPerCpuHash
            | MapType::PerCpuArray
            | MapType::PerCpuCgroupStorage,
        ) => value.next_multiple_of(8) * aya::util::nr_cpus().map_or(1, |n| n),
        _ => value,
    }
}

/// Loads the object with private, unpinned maps: for `BPF_PROG_TEST_RUN`
/// tests and benchmarks, which must not touch a running blocker's state.
pub fn load_unpinned(capacities: &MapsConfig) -> Result<Ebpf, LoadError> {
    let bytes = object::bytes()?;
    sys::raise_memlock();
    let mut loader = EbpfLoader::new();
    for (name, entries, _) in capacities.entries() {
        loader.map_max_entries(name, entries);
    }
    Ok(loader.load(bytes)?)
}

/// Opens the pinned map `name` under `pins`.
pub fn open_pinned(pins: &PinDir, name: &'static str) -> Result<Map, LoadError> {
    if !pins.is_loaded() {
        return Err(LoadError::NotLoaded {
            dir: pins.path().to_owned(),
        });
    }
    MapData::from_pin(pins.map(name))
        .and_then(Map::from_map_data)
        .map_err(|source| LoadError::Map { name, source })
}

/// Refuses pins that this binary would misread: another layout version, or
/// a map whose type or key/value size differs from the object's definition.
fn check_pins(pins: &PinDir, bytes: &[u8]) -> Result<(), LoadError> {
    let incompatible = |detail: String| LoadError::Incompatible {
        dir: pins.path().to_owned(),
        detail,
    };
    let obj = aya_obj::Object::parse(bytes)?;
    for name in maps::PINNED {
        let path = pins.map(name);
        if !path.exists() {
            continue;
        }
        let def = obj
            .maps
            .get(name)
            .ok_or_else(|| incompatible(format!("the object has no map {name}")))?;
        let info = MapInfo::from_pin(&path).map_err(|source| LoadError::Map { name, source })?;
        let pinned_type = info.map_type().map(|t| t as u32).unwrap_or(u32::MAX);
        if pinned_type != def.map_type()
            || info.key_size() != def.key_size()
            || info.value_size() != def.value_size()
        {
            return Err(incompatible(format!(
                "{name} is pinned as type {pinned_type} with {}-byte keys and {}-byte values, expected type {} with {}/{}",
                info.key_size(),
                info.value_size(),
                def.map_type(),
                def.key_size(),
                def.value_size()
            )));
        }
    }
    if pins.is_loaded() {
        let found = read_layout(pins)?;
        if found != LAYOUT_VERSION && found != 0 {
            return Err(incompatible(format!(
                "layout version {found}, this binary uses {LAYOUT_VERSION}"
            )));
        }
    }
    Ok(())
}

fn read_layout(pins: &PinDir) -> Result<u32, LoadError> {
    let map = open_pinned(pins, maps::META)?;
    let meta: Array<MapData, Meta> = Array::try_from(map).map_err(|source| LoadError::Map {
        name: maps::META,
        source,
    })?;
    meta.get(&0, 0)
        .map(|m| m.layout_version)
        .map_err(|source| LoadError::Map {
            name: maps::META,
            source,
        })
}

/// Records the layout version in freshly created pins.
fn stamp_layout(ebpf: &mut Ebpf) -> Result<(), LoadError> {
    let map_err = |source| LoadError::Map {
        name: maps::META,
        source,
    };
    let map = ebpf.map_mut(maps::META).ok_or(LoadError::Map {
        name: maps::META,
        source: aya::maps::MapError::InvalidName {
            name: maps::META.into(),
        },
    })?;
    let mut meta: Array<&mut MapData, Meta> = Array::try_from(map).map_err(map_err)?;
    if meta.get(&0, 0).map_err(map_err)?.layout_version == 0 {
        meta.set(
            0,
            Meta {
                layout_version: LAYOUT_VERSION,
                flags: 0,
            },
            0,
        )
        .map_err(map_err)?;
    }
    Ok(())
}

fn warn_on_capacity_drift(pins: &PinDir, capacities: &MapsConfig) {
    for (name, wanted, key) in capacities.entries() {
        if let Ok(info) = MapInfo::from_pin(pins.map(name))
            && info.max_entries() != wanted
        {
            warn!(
                "map {name} is pinned with {} entries but [maps] {key} = {wanted}; restart `blocker run` to resize it",
                info.max_entries()
            );
        }
    }
}
