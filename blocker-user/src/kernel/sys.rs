//! The few system interfaces aya does not wrap: capabilities, bpffs, the
//! memlock limit, interface names, and `BPF_LINK_DETACH`/link info. All the
//! `unsafe` FFI of the crate lives here.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd as _, OwnedFd},
    path::Path,
};

use aya_obj::generated::{bpf_cmd, bpf_link_info};

/// Capabilities blocker may need, by number (linux/capability.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    NetAdmin = 12,
    SysAdmin = 21,
    Perfmon = 38,
    Bpf = 39,
}

impl Cap {
    pub const fn name(self) -> &'static str {
        match self {
            Self::NetAdmin => "CAP_NET_ADMIN",
            Self::SysAdmin => "CAP_SYS_ADMIN",
            Self::Perfmon => "CAP_PERFMON",
            Self::Bpf => "CAP_BPF",
        }
    }
}

/// The effective capability set of this process, from /proc/self/status.
pub fn effective_caps() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    parse_cap_eff(&status)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no CapEff in /proc/self/status"))
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

/// The capabilities of `needed` this process lacks. CAP_SYS_ADMIN stands in
/// for CAP_BPF and CAP_PERFMON, as it does on kernels before 5.8.
pub fn missing_caps(needed: &[Cap]) -> io::Result<Vec<Cap>> {
    let eff = effective_caps()?;
    let has = |c: Cap| eff & (1u64 << c as u32) != 0;
    Ok(needed
        .iter()
        .copied()
        .filter(|&c| match c {
            Cap::Bpf | Cap::Perfmon => !has(c) && !has(Cap::SysAdmin),
            _ => !has(c),
        })
        .collect())
}

/// `BPF_FS_MAGIC` from linux/magic.h.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// `TRACEFS_MAGIC` from linux/magic.h.
const TRACEFS_MAGIC: i64 = 0x7472_6163;

/// The filesystem type (`f_type`, a `*_MAGIC` of linux/magic.h) of `path`.
/// Like every path lookup, this triggers an automount at `path`, which is
/// how /sys/kernel/debug/tracing gets its tracefs.
fn fs_magic(path: &Path) -> io::Result<i64> {
    #[allow(
        clippy::unnecessary_cast,
        reason = "f_type is i64 on x86_64, u32 elsewhere"
    )]
    Ok(rustix::fs::statfs(path)?.f_type as i64)
}

/// Whether `path` is on a bpf filesystem.
pub fn is_bpffs(path: &Path) -> io::Result<bool> {
    Ok(fs_magic(path)? == BPF_FS_MAGIC)
}

/// Whether `path` is on a tracefs.
pub fn is_tracefs(path: &Path) -> io::Result<bool> {
    Ok(fs_magic(path)? == TRACEFS_MAGIC)
}

/// Mounts a bpf filesystem on `target` (mode 0700, like systemd does).
pub fn mount_bpffs(target: &Path) -> io::Result<()> {
    use rustix::mount::{MountFlags, mount};
    Ok(mount(
        c"bpf",
        target,
        c"bpf",
        MountFlags::empty(),
        c"mode=0700",
    )?)
}

/// Mounts tracefs on `target` with the flags systemd uses for
/// /sys/kernel/tracing (sys-kernel-tracing.mount: nosuid, nodev, noexec).
pub fn mount_tracefs(target: &Path) -> io::Result<()> {
    use rustix::mount::{MountFlags, mount};
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    Ok(mount(c"tracefs", target, c"tracefs", flags, None)?)
}

/// Lifts RLIMIT_MEMLOCK. Kernels before 5.11 charge BPF maps to it and the
/// default 64 KiB is far too small; later kernels use memcg and ignore it.
pub fn raise_memlock() {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let unlimited = Rlimit {
        current: None,
        maximum: None,
    };
    if let Err(e) = setrlimit(Resource::Memlock, unlimited) {
        tracing::debug!("could not lift RLIMIT_MEMLOCK ({e}); fine on kernels >= 5.11");
    }
}

/// A socket to ask the kernel about interfaces (SIOCGIFINDEX and
/// SIOCGIFNAME take any socket, as glibc's if_nametoindex does).
fn netdevice_socket() -> Option<OwnedFd> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socket_with};
    socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .ok()
}

/// The index of interface `name`, or `None` if there is no such interface in
/// this network namespace.
pub fn if_index(name: &str) -> Option<u32> {
    if name.contains('\0') {
        return None;
    }
    rustix::net::netdevice::name_to_index(netdevice_socket()?, name).ok()
}

/// The name of interface `index`, if it exists.
pub fn if_name(index: u32) -> Option<String> {
    rustix::net::netdevice::index_to_name(netdevice_socket()?, index).ok()
}

/// What the kernel reports about an XDP link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpLinkInfo {
    pub link_id: u32,
    pub prog_id: u32,
    /// 0 once the link is detached (interface gone, or `BPF_LINK_DETACH`).
    pub ifindex: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD` on a link; aya's `LinkInfo` hides the XDP ifindex.
pub fn xdp_link_info(link: BorrowedFd<'_>) -> io::Result<XdpLinkInfo> {
    // SAFETY: all-zero is a valid bpf_link_info.
    let mut info: bpf_link_info = unsafe { std::mem::zeroed() };
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let attr = InfoAttr {
        bpf_fd: link.as_raw_fd() as u32,
        info_len: size_of::<bpf_link_info>() as u32,
        info: (&raw mut info) as u64,
    };
    bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &attr)?;
    Ok(XdpLinkInfo {
        link_id: info.id,
        prog_id: info.prog_id,
        // SAFETY: the union member matches the link type; for non-XDP links
        // the caller gets a meaningless number, never UB (plain integers).
        ifindex: unsafe { info.__bindgen_anon_1.xdp.ifindex },
    })
}

/// `BPF_LINK_DETACH` (kernel 5.9): detaches the link now, even while other
/// processes (a running daemon) still hold file descriptors to it.
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    #[repr(C)]
    struct DetachAttr {
        link_fd: u32,
    }
    bpf(
        bpf_cmd::BPF_LINK_DETACH,
        &DetachAttr {
            link_fd: link.as_raw_fd() as u32,
        },
    )
    .map(drop)
}

#[repr(C)]
struct NextKeyAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    next_key: u64,
}

#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Calls `f` with every key of `map` (`BPF_MAP_GET_NEXT_KEY` walk).
fn for_each_key(
    map: BorrowedFd<'_>,
    key_size: usize,
    mut f: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut key = vec![0u8; key_size];
    let mut next = vec![0u8; key_size];
    let mut first = true;
    loop {
        let attr = NextKeyAttr {
            map_fd: map.as_raw_fd() as u32,
            pad: 0,
            // A null key asks for the first key.
            key: if first { 0 } else { key.as_ptr() as u64 },
            next_key: next.as_mut_ptr() as u64,
        };
        match bpf(bpf_cmd::BPF_MAP_GET_NEXT_KEY, &attr) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(e),
        }
        first = false;
        std::mem::swap(&mut key, &mut next);
        f(&key)?;
    }
}

/// The bytes of a slice of plain-old-data map keys or values.
pub fn pod_bytes<T: aya::Pod>(v: &[T]) -> &[u8] {
    // SAFETY: `Pod` types have no padding and no invalid bit patterns; the
    // slice covers exactly `size_of_val(v)` initialised bytes.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), size_of_val(v)) }
}

/// Plain-old-data values out of bytes the kernel wrote (`size_of::<T>()`
/// each, possibly unaligned).
pub fn pod_from_bytes<T: aya::Pod>(b: &[u8]) -> Vec<T> {
    b.chunks_exact(size_of::<T>())
        // SAFETY: each chunk holds `size_of::<T>()` bytes and every bit
        // pattern is a valid `T` (`Pod`).
        .map(|c| unsafe { std::ptr::read_unaligned(c.as_ptr().cast::<T>()) })
        .collect()
}

/// The `batch` part of `union bpf_attr` (`BPF_MAP_*_BATCH`, Linux 5.6,
/// commit cb4d03ab499d).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Writes `keys.len() / key_size` elements in one `BPF_MAP_UPDATE_BATCH`
/// call per `chunk` elements: hash maps take it (`generic_map_update_batch`
/// holds the map's bucket locks one element at a time, no per-element
/// syscall). LPM tries do not implement it (`trie_map_ops` has no
/// `map_update_batch`): the kernel answers `EINVAL`, and callers fall back
/// to one update per element. On failure returns how many were written
/// before it, and the error.
pub fn update_batch(
    map: BorrowedFd<'_>,
    keys: &[u8],
    key_size: usize,
    values: &[u8],
    value_size: usize,
    chunk: usize,
) -> Result<usize, (usize, io::Error)> {
    let n = keys.len() / key_size;
    debug_assert_eq!(values.len(), n * value_size);
    let mut done = 0;
    while done < n {
        let count = (n - done).min(chunk);
        let mut attr = BatchAttr {
            keys: keys[done * key_size..].as_ptr() as u64,
            values: values[done * value_size..].as_ptr() as u64,
            count: count as u32,
            map_fd: map.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // The kernel writes back how many it processed in `count`.
        let r = bpf_mut(bpf_cmd::BPF_MAP_UPDATE_BATCH, &mut attr);
        if let Err(e) = r {
            return Err((done + attr.count as usize, e));
        }
        done += count;
    }
    Ok(n)
}

/// Deletes the given keys in `BPF_MAP_DELETE_BATCH` calls of `chunk` keys.
/// A key that is not there stops a batch with `ENOENT` (the kernel reports
/// how many it deleted first): that key is skipped and the rest go on.
/// Returns how many were deleted.
pub fn delete_batch(
    map: BorrowedFd<'_>,
    keys: &[u8],
    key_size: usize,
    chunk: usize,
) -> io::Result<usize> {
    let n = keys.len() / key_size;
    let (mut at, mut deleted) = (0, 0);
    while at < n {
        let count = (n - at).min(chunk);
        let mut attr = BatchAttr {
            keys: keys[at * key_size..].as_ptr() as u64,
            count: count as u32,
            map_fd: map.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        match bpf_mut(bpf_cmd::BPF_MAP_DELETE_BATCH, &mut attr) {
            Ok(_) => {
                deleted += count;
                at += count;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                deleted += attr.count as usize;
                at += attr.count as usize + 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// Every element of a hash map, read with `BPF_MAP_LOOKUP_BATCH` and handed
/// to `visit` one batch at a time (`chunk` keys and values, concatenated),
/// so a walk of a million entries holds one batch in memory, not the map.
pub fn lookup_chunks(
    map: BorrowedFd<'_>,
    key_size: usize,
    value_size: usize,
    chunk: usize,
    mut visit: impl FnMut(&[u8], &[u8]),
) -> io::Result<()> {
    let mut kbuf = vec![0u8; key_size * chunk];
    let mut vbuf = vec![0u8; value_size * chunk];
    // Opaque batch cursors: hash maps use a u32 bucket index.
    let (mut in_batch, mut out_batch) = (0u64, 0u64);
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                std::ptr::from_mut(&mut in_batch) as u64
            },
            out_batch: std::ptr::from_mut(&mut out_batch) as u64,
            keys: kbuf.as_mut_ptr() as u64,
            values: vbuf.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: map.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        let r = bpf_mut(bpf_cmd::BPF_MAP_LOOKUP_BATCH, &mut attr);
        let got = attr.count as usize;
        visit(&kbuf[..got * key_size], &vbuf[..got * value_size]);
        match r {
            Ok(_) => {}
            // The last batch: the kernel returns what it has with ENOENT.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(e),
        }
        first = false;
        in_batch = out_batch;
    }
}

/// Copies every element of map `src` into map `dst` (same key and value
/// sizes, not per-CPU), returning how many. Used to resize pinned maps.
pub fn copy_map(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    key_size: usize,
    value_size: usize,
) -> io::Result<usize> {
    let mut value = vec![0u8; value_size];
    let mut copied = 0;
    for_each_key(src, key_size, |key| {
        let lookup = ElemAttr {
            map_fd: src.as_raw_fd() as u32,
            pad: 0,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            flags: 0,
        };
        match bpf(bpf_cmd::BPF_MAP_LOOKUP_ELEM, &lookup) {
            Ok(_) => {}
            // Deleted between the two calls: skip it.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(e),
        }
        let update = ElemAttr {
            map_fd: dst.as_raw_fd() as u32,
            pad: 0,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            flags: 0,
        };
        bpf(bpf_cmd::BPF_MAP_UPDATE_ELEM, &update)?;
        copied += 1;
        Ok(())
    })?;
    Ok(copied)
}

/// Number of elements in a map (walking its keys).
pub fn count_map(map: BorrowedFd<'_>, key_size: usize) -> io::Result<usize> {
    let mut n = 0;
    for_each_key(map, key_size, |_| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

/// Bytes available to unprivileged users on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The `BPF_OBJ_GET` part of `union bpf_attr`.
#[repr(C)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// `BPF_OBJ_GET`: opens a pinned object (aya's `PinnedLink` hides its fd).
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = cstring(path)?;
    let attr = ObjAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    let fd = bpf(bpf_cmd::BPF_OBJ_GET, &attr)?;
    // SAFETY: the kernel returned a new file descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn bpf<T>(cmd: bpf_cmd, attr: &T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a prefix of `union bpf_attr` for `cmd`; the kernel
    // zero-extends shorter attributes (CHECK_ATTR).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            std::ptr::from_ref(attr),
            size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// [`bpf`] for commands that write results back into `attr`.
fn bpf_mut<T>(cmd: bpf_cmd, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: as for `bpf`; the kernel writes back only within `attr`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            std::ptr::from_mut(attr),
            size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

fn cstring(path: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt as _;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// The addresses of this network namespace's interfaces (getifaddrs).
pub fn local_addresses() -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&raw mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr of the family it says.
            match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
                libc::AF_INET => {
                    // SAFETY: family checked.
                    let sin = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
                    out.push(std::net::IpAddr::from(
                        u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                    ));
                }
                libc::AF_INET6 => {
                    // SAFETY: family checked.
                    let sin6 = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in6>() };
                    out.push(std::net::IpAddr::from(sin6.sin6_addr.s6_addr));
                }
                _ => {}
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    out.sort();
    out.dedup();
    out
}

/// TCP ports this network namespace listens on, from /proc/net/tcp{,6}.
pub fn listening_ports() -> Vec<u16> {
    let mut ports: Vec<u16> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| parse_listening(&t))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

fn parse_listening(table: &str) -> Vec<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let local = f.nth(1)?;
            let state = f.nth(1)?;
            // 0A is TCP_LISTEN (include/net/tcp_states.h).
            (state == "0A")
                .then(|| local.rsplit_once(':'))
                .flatten()
                .and_then(|(_, port)| u16::from_str_radix(port, 16).ok())
        })
        .collect()
}

/// Whether process `pid` exists.
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Returns the heap's free pages to the kernel (glibc `malloc_trim`): after
/// a large transient allocation, such as reconciling a million rules at
/// start-up, glibc otherwise keeps them and the daemon's RSS stays at its
/// peak. Other C libraries (musl) return memory on their own.
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cap_eff() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
        assert_eq!(parse_cap_eff("Name: x\n"), None);
    }

    #[test]
    fn parses_proc_net_tcp() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n\
   1: 0100007F:A3B2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2\n";
        assert_eq!(parse_listening(t), vec![8080]);
        assert!(local_addresses().iter().any(|a| a.is_loopback()));
    }

    #[test]
    #[ignore = "needs root: mounts tracefs; `cargo xtask test` runs it"]
    fn mounts_tracefs() {
        assert!(
            rustix::process::geteuid().is_root(),
            "this test mounts tracefs, which needs root; run it with `sudo -E cargo xtask test`"
        );
        let dir = std::env::temp_dir().join(format!("blocker-tracefs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!is_tracefs(&dir).unwrap());
        assert!(!is_bpffs(&dir).unwrap());
        let mounted = mount_tracefs(&dir);
        let is_tracefs = is_tracefs(&dir);
        let has_tcp_probe = dir.join("events/tcp/tcp_probe/format").is_file();
        // MNT_DETACH: nothing may keep it busy.
        let unmounted = rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH);
        std::fs::remove_dir(&dir).unwrap();
        mounted.unwrap();
        assert!(is_tracefs.unwrap());
        assert!(has_tcp_probe);
        unmounted.unwrap();
    }

    #[test]
    fn loopback_has_an_index() {
        let idx = if_index("lo").expect("lo exists in every netns");
        assert_eq!(if_name(idx).as_deref(), Some("lo"));
        assert_eq!(if_index("no-such-if0"), None);
        assert_eq!(if_index("bad\0name"), None);
    }
}
