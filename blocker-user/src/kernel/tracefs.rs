//! tracefs: finding (or mounting) it before the tracepoint fallback of the
//! treason probes attaches. aya's `TracePoint::attach` reads
//! `events/<system>/<event>/id` from tracefs, so it must be mounted; the
//! layout of the records themselves comes from BTF
//! ([`offsets::tracepoint_offsets`](crate::kernel::offsets::tracepoint_offsets)),
//! not from the `format` files.

use std::{
    io,
    path::{Path, PathBuf},
};

use tracing::info;

use crate::kernel::sys;

/// Where tracefs lives since Linux 4.1 (Documentation/trace/ftrace.rst).
pub const TRACEFS: &str = "/sys/kernel/tracing";
/// The older place: with debugfs mounted, the kernel automounts tracefs
/// here for compatibility.
pub const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted and {path} does not exist: the kernel was built without tracing support, or /sys is not mounted"
    )]
    NoMountPoint { path: PathBuf },
    #[error(
        "tracefs is not mounted and mounting it on {path} failed ({source}); mount it with `mount -t tracefs tracefs {path}`"
    )]
    Mount { path: PathBuf, source: io::Error },
}

/// The tracefs directory, if one is mounted at [`TRACEFS`] or (through
/// debugfs) at [`DEBUGFS_TRACING`], in the order aya looks at them.
pub fn find() -> Option<PathBuf> {
    [TRACEFS, DEBUGFS_TRACING]
        .into_iter()
        .map(Path::new)
        .find(|p| sys::is_tracefs(p).unwrap_or(false))
        .map(Path::to_path_buf)
}

/// The tracefs directory, mounting tracefs on [`TRACEFS`] when none is
/// mounted (minimal systems and containers do not mount it).
///
/// Call this before attaching any tracepoint program: aya's `TracePoint`
/// attach reads `events/<system>/<event>/id` from tracefs, and it looks for
/// tracefs only once per process, caching the answer.
pub fn ensure() -> Result<PathBuf, TracefsError> {
    if let Some(path) = find() {
        return Ok(path);
    }
    let root = Path::new(TRACEFS);
    // The kernel creates the mount point itself when it has tracefs
    // (fs/tracefs/inode.c: sysfs_create_mount_point(kernel_kobj,
    // "tracing")); it cannot be created in sysfs by hand.
    if !root.is_dir() {
        return Err(TracefsError::NoMountPoint {
            path: root.to_owned(),
        });
    }
    sys::mount_tracefs(root).map_err(|source| TracefsError::Mount {
        path: root.to_owned(),
        source,
    })?;
    info!("mounted tracefs on {}", root.display());
    Ok(root.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The live tests read tracefs, which only root may (mode 0700).
    fn require_root() {
        assert!(
            rustix::process::geteuid().is_root(),
            "reading tracefs needs root; run the tests with `sudo -E cargo xtask test`"
        );
    }

    /// The field of `line` in a tracefs `format` file, as `(name, offset,
    /// size)`: `field:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;`.
    fn format_field(line: &str) -> Option<(&str, u32, u32)> {
        let mut parts = line.trim().split(';').map(str::trim);
        let decl = parts.next()?.strip_prefix("field:")?;
        let name = decl.rsplit([' ', '*']).next()?.split('[').next()?;
        let num = |p: Option<&str>, key: &str| p?.strip_prefix(key)?.parse().ok();
        Some((
            name,
            num(parts.next(), "offset:")?,
            num(parts.next(), "size:")?,
        ))
    }

    #[test]
    fn format_lines_are_read() {
        assert_eq!(
            format_field("\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;"),
            Some(("skaddr", 8, 8))
        );
        assert_eq!(
            format_field("\tfield:__u8 saddr[28];\toffset:24;\tsize:28;\tsigned:0;"),
            Some(("saddr", 24, 28))
        );
        assert_eq!(format_field("name: tcp_probe"), None);
    }

    /// The offsets blocker takes from BTF (`struct trace_event_raw_*`,
    /// include/trace/trace_events.h) are the ones the kernel itself
    /// publishes for the records in tracefs: the fallback reads the right
    /// bytes on this kernel.
    #[test]
    #[ignore = "needs root: reads tracefs; `cargo xtask test` runs it"]
    fn btf_offsets_match_the_live_formats() {
        require_root();
        let root = ensure().unwrap();
        assert!(sys::is_tracefs(&root).unwrap());
        assert_eq!(find(), Some(root.clone()));
        let btf = crate::kernel::offsets::Btf::from_sys_fs().unwrap();
        let ours = crate::kernel::offsets::tracepoint_offsets(&btf).unwrap();
        assert_eq!(ours.valid, 1);
        for (event, fields) in [
            (
                "tcp_probe",
                vec![
                    ("snd_wnd", ours.probe_snd_wnd, 4),
                    ("snd_nxt", ours.probe_snd_nxt, 4),
                    ("snd_una", ours.probe_snd_una, 4),
                    ("skaddr", ours.probe_skaddr, 8),
                ],
            ),
            (
                "tcp_retransmit_skb",
                vec![
                    ("skaddr", ours.retransmit_skaddr, 8),
                    ("state", ours.retransmit_state, 4),
                ],
            ),
        ] {
            let text = std::fs::read_to_string(root.join("events/tcp").join(event).join("format"))
                .unwrap();
            for (name, offset, size) in fields {
                let found = text
                    .lines()
                    .filter_map(format_field)
                    .find(|f| f.0 == name)
                    .unwrap_or_else(|| panic!("{event} has no field {name} in tracefs"));
                assert_eq!((found.1, found.2), (offset, size), "{event}.{name}");
            }
        }
    }
}
