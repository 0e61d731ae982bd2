//! Attaching, replacing and detaching the XDP program on an interface.
//!
//! Each interface has one pinned XDP link under the pin directory
//! (`link_xdp_<iface>`). The next `blocker run` swaps its freshly loaded
//! program into that link with `bpf_link_update`, atomically, so there is no
//! moment without enforcement.

use std::{
    io,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    programs::{ProgramError, Xdp, XdpMode as AyaXdpMode, links::FdLink, links::PinnedLink},
};
use blocker_common::programs;
use tracing::warn;

use serde::{Deserialize, Serialize};

use crate::kernel::{pins::PinDir, sys};

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic (skb) mode.
    #[default]
    Auto,
    /// Native mode only: fastest, needs driver support.
    Driver,
    /// Generic mode: works on every interface, after the kernel allocated the skb.
    Skb,
}

impl crate::choice::Choice for XdpMode {
    const ALL: &'static [Self] = &[Self::Auto, Self::Driver, Self::Skb];

    fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Driver => "driver",
            Self::Skb => "skb",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Self::Auto => "Native (driver) mode, falling back to generic (skb) mode",
            Self::Driver => "Native mode only: fastest, needs driver support",
            Self::Skb => {
                "Generic mode: works on every interface, after the kernel allocated the skb"
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(
        "interface {iface} not found in this network namespace; list interfaces with `ip link`"
    )]
    NoInterface { iface: String },
    #[error("XDP driver mode unsupported on {iface} ({source}); retry with --xdp-mode skb")]
    DriverUnsupported { iface: String, source: ProgramError },
    #[error(
        "another XDP program is already attached to {iface}; remove it with `ip link set dev {iface} xdp off` and retry"
    )]
    Busy { iface: String },
    #[error("attaching XDP to {iface} failed: {source}")]
    Attach { iface: String, source: ProgramError },
    #[error("the eBPF verifier rejected the XDP program: {0}")]
    Load(ProgramError),
    #[error("pinning the XDP link at {path} failed: {source}")]
    Pin {
        path: PathBuf,
        source: aya::pin::PinError,
    },
    #[error("detaching XDP from {iface} failed: {source}")]
    Detach { iface: String, source: io::Error },
    #[error("the object has no program {0}")]
    MissingProgram(&'static str),
}

/// How the XDP program ended up on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Attached {
    /// Native mode, new link.
    Driver,
    /// Generic mode, new link.
    Skb,
    /// The program in an existing pinned link was replaced atomically; the
    /// link keeps the mode it was created with.
    Replaced,
}

/// Loads (once) and attaches the XDP program to `iface`, or swaps it into the
/// interface's pinned link. The link is pinned and this process keeps no
/// reference to it, so `blocker detach` works while the daemon runs and
/// enforcement survives the daemon.
pub fn attach_xdp(
    ebpf: &mut Ebpf,
    pins: &PinDir,
    iface: &str,
    mode: XdpMode,
) -> Result<Attached, AttachError> {
    if sys::if_index(iface).is_none() {
        return Err(AttachError::NoInterface {
            iface: iface.into(),
        });
    }
    let prog: &mut Xdp = ebpf
        .program_mut(programs::XDP)
        .ok_or(AttachError::MissingProgram(programs::XDP))?
        .try_into()
        .map_err(AttachError::Load)?;
    if prog.fd().is_err() {
        prog.load().map_err(AttachError::Load)?;
    }

    let link_path = pins.link(iface);
    if link_path.exists() {
        match replace_in_pinned_link(prog, &link_path) {
            Ok(()) => return Ok(Attached::Replaced),
            Err(reason) => {
                // ENOLINK: the link outlived its interface (deleted and
                // recreated); start over with a new link.
                warn!(
                    "pinned XDP link {} is unusable ({reason}); attaching a new one",
                    link_path.display()
                );
                let _ = std::fs::remove_file(&link_path);
            }
        }
    }

    let (link_id, attached) = match mode {
        XdpMode::Driver => (
            attach_mode(prog, iface, AyaXdpMode::Driver).map_err(|e| driver_error(iface, e))?,
            Attached::Driver,
        ),
        XdpMode::Skb => (
            attach_mode(prog, iface, AyaXdpMode::Skb).map_err(|e| attach_error(iface, e))?,
            Attached::Skb,
        ),
        XdpMode::Auto => match attach_mode(prog, iface, AyaXdpMode::Driver) {
            Ok(id) => (id, Attached::Driver),
            Err(e) if errno(&e) == Some(libc::EBUSY) => return Err(attach_error(iface, e)),
            Err(e) => {
                warn!(
                    "XDP driver mode unsupported on {iface} ({e}); falling back to skb (generic) mode"
                );
                (
                    attach_mode(prog, iface, AyaXdpMode::Skb)
                        .map_err(|e| attach_error(iface, e))?,
                    Attached::Skb,
                )
            }
        },
    };
    let link = prog
        .take_link(link_id)
        .map_err(|e| attach_error(iface, e))?;
    match FdLink::try_from(link) {
        Ok(fd_link) => {
            fd_link.pin(&link_path).map_err(|source| AttachError::Pin {
                path: link_path.clone(),
                source,
            })?;
        }
        Err(e) => {
            // Kernels before 5.9 have no XDP bpf_link; aya fell back to
            // netlink. Such an attachment cannot be pinned, and dropping it
            // would detach, so leave it in place.
            warn!(
                "kernel has no XDP bpf_link ({e}); the program stays attached to {iface} via netlink but cannot be pinned or replaced atomically"
            );
        }
    }
    Ok(attached)
}

fn attach_mode(
    prog: &mut Xdp,
    iface: &str,
    mode: AyaXdpMode,
) -> Result<aya::programs::xdp::XdpLinkId, ProgramError> {
    prog.attach(iface, mode)
}

/// Why a pinned link could not take the new program (the caller then
/// attaches a fresh link, so these are logged, not returned).
#[derive(Debug, thiserror::Error)]
enum ReplaceError {
    #[error("cannot open the pin: {0}")]
    Open(#[source] io::Error),
    #[error("cannot read the link's info: {0}")]
    Info(#[source] io::Error),
    #[error("the link is detached")]
    Detached,
    #[error("{0}")]
    Link(#[from] aya::programs::links::LinkError),
    #[error("{0}")]
    Program(#[from] ProgramError),
}

fn replace_in_pinned_link(prog: &mut Xdp, path: &Path) -> Result<(), ReplaceError> {
    let fd = sys::obj_get(path).map_err(ReplaceError::Open)?;
    let info = sys::xdp_link_info(fd.as_fd()).map_err(ReplaceError::Info)?;
    if info.ifindex == 0 {
        return Err(ReplaceError::Detached);
    }
    let fd_link = FdLink::from(PinnedLink::from_pin(path)?);
    let link = aya::programs::xdp::XdpLink::try_from(fd_link)?;
    let id = prog.attach_to_link(link)?;
    // Close our descriptor; the pin keeps the link (and now our program).
    drop(prog.take_link(id)?);
    Ok(())
}

/// Detaches blocker's XDP program from `iface` and removes the link pin.
/// `Ok(false)` if blocker had no link there.
pub fn detach_xdp(pins: &PinDir, iface: &str) -> Result<bool, AttachError> {
    let path = pins.link(iface);
    if !path.exists() {
        return Ok(false);
    }
    let detach_err = |source| AttachError::Detach {
        iface: iface.into(),
        source,
    };
    let fd = sys::obj_get(&path).map_err(detach_err)?;
    // Force the detach even if another process holds the link open.
    match sys::link_detach(fd.as_fd()) {
        Ok(()) => {}
        // Already detached (interface gone).
        Err(e) if e.raw_os_error() == Some(libc::ENOLINK) => {}
        Err(e) => return Err(detach_err(e)),
    }
    std::fs::remove_file(&path).map_err(detach_err)?;
    Ok(true)
}

/// Kernel view of the pinned link on `iface`, if any.
pub fn link_info(pins: &PinDir, iface: &str) -> Option<sys::XdpLinkInfo> {
    let fd = sys::obj_get(&pins.link(iface)).ok()?;
    sys::xdp_link_info(fd.as_fd()).ok()
}

fn errno(e: &ProgramError) -> Option<i32> {
    match e {
        ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    }
}

fn driver_error(iface: &str, e: ProgramError) -> AttachError {
    if errno(&e) == Some(libc::EBUSY) {
        return attach_error(iface, e);
    }
    AttachError::DriverUnsupported {
        iface: iface.into(),
        source: e,
    }
}

fn attach_error(iface: &str, e: ProgramError) -> AttachError {
    match errno(&e) {
        Some(libc::EBUSY | libc::EEXIST) => AttachError::Busy {
            iface: iface.into(),
        },
        _ => AttachError::Attach {
            iface: iface.into(),
            source: e,
        },
    }
}
