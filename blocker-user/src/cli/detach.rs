//! `blocker detach`

use std::process::ExitCode;

use anyhow::bail;
use blocker::{
    daemon::DaemonStatus,
    kernel::{pins, xdp},
};

use super::{Context, UsageError};

/// Remove blocker's XDP program from interfaces.
///
/// The pinned maps stay (bans are kept) unless --purge is given, which
/// removes every pin under the pin directory.
///
/// Example: blocker detach --iface eth0
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Interface to detach from (repeat for several).
    #[arg(
        long = "iface",
        short = 'i',
        value_name = "IFACE",
        required_unless_present = "all"
    )]
    interfaces: Vec<String>,
    /// Detach from every interface blocker is attached to.
    #[arg(long, conflicts_with = "interfaces")]
    all: bool,
    /// Also remove the pinned maps (all rules and counters in the kernel).
    /// The journal keeps the bans; the next `blocker run` restores them.
    #[arg(long)]
    purge: bool,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    pins::require_caps(pins::MAP_CAPS)?;
    let interfaces = if args.all {
        ctx.pins.linked_interfaces()
    } else {
        args.interfaces
    };
    let mut missing = Vec::new();
    for iface in &interfaces {
        if xdp::detach_xdp(&ctx.pins, iface)? {
            println!("detached blocker from {iface}");
        } else {
            missing.push(iface.clone());
        }
    }
    if args.purge {
        if let Some(d) = DaemonStatus::read(&ctx.state_dir) {
            bail!(
                "a blocker daemon (pid {}) is using these pins; stop it before purging",
                d.pid
            );
        }
        ctx.pins.purge()?;
        println!("removed all pins under {}", ctx.pins.path().display());
    }
    if !missing.is_empty() && !args.purge {
        let attached = ctx.pins.linked_interfaces();
        return Err(UsageError(format!(
            "blocker is not attached to {} (attached: {})",
            missing.join(", "),
            if attached.is_empty() {
                "none".into()
            } else {
                attached.join(", ")
            }
        ))
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
