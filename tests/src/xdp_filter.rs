//! xdp-filter (Debian's xdp-tools) in its address-only mode, the peer the
//! XDP benchmarks measure blocker against: loaded by its own CLI on a veth in
//! a private namespace, its program then run through `BPF_PROG_TEST_RUN`
//! exactly like blocker's.
//!
//! Its tables are per-CPU hashes of at most 10,000 addresses per family
//! (fixed in xdp-filter), filled here through the map it pins under
//! `/sys/fs/bpf/xdp-filter`. Value bits are xdp-filter's `MAP_FLAG_SRC`
//! (match the source address) with the counter above `COUNTER_SHIFT`.

use std::{net::IpAddr, path::PathBuf, process::Command};

use aya::{
    maps::{Map, MapData, PerCpuHashMap, PerCpuValues},
    programs::Xdp,
    util::nr_cpus,
};

use aya_obj::programs::XdpAttachType;

use crate::{describe, unique};

/// Where xdp-filter pins its maps (global: one xdp-filter per host).
const PIN_DIR: &str = "/sys/fs/bpf/xdp-filter";
/// libxdp's own pin directory (its dispatcher state), created on first use.
const LIBXDP_DIR: &str = "/sys/fs/bpf/xdp";
/// `MAP_FLAG_SRC` in xdp-filter's common_kern_user.h.
const MAP_FLAG_SRC: u64 = 1;
/// Entries per map, fixed by xdp-filter.
pub const CAPACITY: usize = 10_000;

pub struct XdpFilter {
    ns: String,
    iface: String,
    prog_pin: PathBuf,
    pub prog: Xdp,
    v4: PerCpuHashMap<MapData, [u8; 4], u64>,
    v6: PerCpuHashMap<MapData, [u8; 16], u64>,
    /// Whether loading created LIBXDP_DIR, so dropping removes it again.
    created_libxdp_dir: bool,
    /// Whether `ns` is this loader's own, so dropping removes it.
    owns_ns: bool,
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", describe(&out));
}

impl XdpFilter {
    /// Loads `xdp-filter load -f ipv4,ipv6` (skb mode; only the program is
    /// measured) on a veth of a fresh namespace.
    pub fn load() -> Self {
        crate::require_root();
        let ns = unique("bxf");
        let iface = unique("xf");
        sh(Command::new("ip").args(["netns", "add", &ns]));
        let guard = NsGuard(ns.clone());
        sh(Command::new("ip").args([
            "-n",
            &ns,
            "link",
            "add",
            &iface,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{iface}p"),
        ]));
        sh(Command::new("ip").args(["-n", &ns, "link", "set", &iface, "up"]));
        let mut f = Self::attach(&ns, &iface, "skb");
        f.owns_ns = true;
        // From here on `Drop for XdpFilter` removes the namespace.
        std::mem::forget(guard);
        f
    }

    /// Loads `xdp-filter load -m MODE -f ipv4,ipv6` on `iface` in the
    /// existing namespace `ns` (which the caller keeps and removes): the
    /// flood bench's receiver.
    pub fn attach(ns: &str, iface: &str, mode: &str) -> Self {
        crate::require_root();
        assert!(
            !std::path::Path::new(PIN_DIR).exists(),
            "{PIN_DIR} exists: another xdp-filter is loaded on this host; unload it first"
        );
        let created_libxdp_dir = !std::path::Path::new(LIBXDP_DIR).exists();
        sh(Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .args(["xdp-filter", "load", "-m", mode, "-f", "ipv4,ipv6", iface]));
        let out = Command::new("bpftool")
            .args(["-j", "prog", "show", "name", "xdpfilt_alw_ip"])
            .output()
            .expect("bpftool");
        assert!(out.status.success(), "{}", describe(&out));
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // One object, or an array of them when several are loaded.
        let id = shown.as_array().and_then(|a| a.last()).unwrap_or(&shown)["id"]
            .as_u64()
            .expect("xdp-filter's program id");
        let prog_pin = PathBuf::from("/sys/fs/bpf").join(unique("bench-xdpfilt-"));
        sh(Command::new("bpftool")
            .args(["prog", "pin", "id", &id.to_string()])
            .arg(&prog_pin));
        let prog = Xdp::from_pin(&prog_pin, XdpAttachType::Interface).expect("open xdp-filter");
        let open = |name: &str| {
            Map::from_map_data(MapData::from_pin(format!("{PIN_DIR}/{name}")).expect(name))
                .expect(name)
        };
        let v4 = PerCpuHashMap::try_from(open("filter_ipv4")).expect("filter_ipv4");
        let v6 = PerCpuHashMap::try_from(open("filter_ipv6")).expect("filter_ipv6");
        Self {
            created_libxdp_dir,
            owns_ns: false,
            ns: ns.to_string(),
            iface: iface.to_string(),
            prog_pin,
            prog,
            v4,
            v6,
        }
    }

    /// Packets its program dropped so far: the `XDP_DROP` line of
    /// `xdp-filter status` (its per-action `xdp_stats_map`, summed over CPUs).
    pub fn dropped(&self) -> u64 {
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .args(["xdp-filter", "status"])
            .output()
            .expect("xdp-filter status");
        assert!(out.status.success(), "{}", describe(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("XDP_DROP")).then(|| w.next()?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no XDP_DROP line in `xdp-filter status`:\n{text}"))
    }

    /// Denies packets from source `addr`.
    pub fn deny_source(&mut self, addr: IpAddr) {
        let cpus = nr_cpus().expect("possible CPUs");
        let value = PerCpuValues::try_from(vec![MAP_FLAG_SRC; cpus]).unwrap();
        match addr {
            IpAddr::V4(a) => self.v4.insert(a.octets(), value, 0),
            IpAddr::V6(a) => self.v6.insert(a.octets(), value, 0),
        }
        .unwrap_or_else(|e| panic!("xdp-filter map insert of {addr}: {e}"));
    }
}

struct NsGuard(String);

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

impl Drop for XdpFilter {
    fn drop(&mut self) {
        let _ = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .args(["xdp-filter", "unload", "--all", &self.iface])
            .output();
        let _ = std::fs::remove_file(&self.prog_pin);
        if self.owns_ns {
            let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        }
        // xdp-filter removes its pins when it unloads the last interface;
        // make sure, so the next run can load it again.
        let _ = std::fs::remove_dir_all(PIN_DIR);
        if self.created_libxdp_dir {
            // remove_dir, not remove_dir_all: only if libxdp left it empty.
            let _ = std::fs::remove_dir(LIBXDP_DIR);
        }
    }
}
