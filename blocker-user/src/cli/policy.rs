//! `blocker policy`

use std::process::ExitCode;

use blocker::{clock, kernel::maps::Tables, kernel::pins, ttl};
use blocker_common::config as slot;

use super::{Context, parse_ttl_arg};

/// Switch global XDP policies: drop every zero-window SYN (from any
/// non-allowlisted source) for a while, the answer to spoofed floods where
/// per-source bans cannot help. The council can switch it on too.
///
/// Example: blocker policy zero-window-syn on --ttl 10m
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    policy: Policy,
}

#[derive(Debug, clap::Subcommand)]
enum Policy {
    /// Drop all TCP SYNs that advertise a zero window.
    ZeroWindowSyn {
        #[arg(value_enum)]
        state: OnOff,
        /// How long it stays on (it switches itself off in the kernel).
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl_arg, default_value = "10m")]
        ttl: ttl::Ttl,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    pins::require_caps(pins::MAP_CAPS)?;
    let Policy::ZeroWindowSyn { state, ttl } = args.policy;
    let mut tables = Tables::open(&ctx.pins)?;
    match state {
        OnOff::On => {
            // "never" means as long as CLOCK_BOOTTIME lasts.
            let until = match ttl {
                Some(_) => clock::expiry_from_now(ttl),
                None => u64::MAX,
            };
            tables.set_config(slot::ZW_DROP_UNTIL_NS, until)?;
            println!("dropping all zero-window SYNs for {}", ttl::format_ttl(ttl));
        }
        OnOff::Off => {
            tables.set_config(slot::ZW_DROP_UNTIL_NS, 0)?;
            println!("zero-window SYNs are no longer dropped by policy");
        }
    }
    Ok(ExitCode::SUCCESS)
}
