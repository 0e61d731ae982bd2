//! `blocker ban` and `blocker allow`

use std::process::ExitCode;

use blocker::{
    addr::{self, IpNet},
    kernel::maps::Tables,
    kernel::pins,
    rule::List,
    state::enforcer::{Change, EnforceError, Enforcer},
    state::journal::Store,
    ttl,
};
use blocker_common::reason;
use serde::Serialize;

use super::{Context, UsageError, output, parse_net_arg, parse_ttl_arg};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Addresses or CIDR prefixes, IPv4 or IPv6.
    #[arg(required = true, value_name = "ADDR|CIDR", value_parser = parse_net_arg)]
    pub targets: Vec<IpNet>,
    /// How long the rule lasts: 90s, 30m, 1h, 7d, 1h30m, or never.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl_arg, default_value = "never")]
    pub ttl: ttl::Ttl,
    /// Why (kept in the journal and shown by `blocker list`).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Accept prefixes wider than /8 (IPv4) or /16 (IPv6).
    #[arg(long)]
    pub force: bool,
    /// Print the rules written as JSON.
    #[arg(long)]
    pub json: bool,
    /// Share the ban with the fleet (`[fleet]`): it is queued in the journal
    /// and the running daemon publishes it. Needs a --ttl. Also the default
    /// with `[fleet] share_operator_bans = true`.
    /// Example: blocker ban 203.0.113.7 --ttl 1h --share
    #[arg(long)]
    pub share: bool,
}

#[derive(Serialize)]
struct Written {
    list: List,
    address: String,
    prefix: String,
    replaced: bool,
    expires_in_secs: Option<u64>,
    record_id: i64,
}

pub fn run(ctx: &Context, args: Args, list: List) -> anyhow::Result<ExitCode> {
    for net in &args.targets {
        let too_wide = match net {
            IpNet::V4(n) => n.prefix_len() < 8,
            IpNet::V6(n) => n.prefix_len() < 16,
        };
        if too_wide && !args.force {
            return Err(UsageError(format!(
                "{net} covers a very large part of the address space; pass --force if you mean it"
            ))
            .into());
        }
    }
    let fleet = &ctx.config.fleet;
    let share = list == List::Block && (args.share || (fleet.enabled && fleet.share_operator_bans));
    if args.share && list != List::Block {
        return Err(UsageError(
            "only bans are shared with the fleet, never allowlist entries".into(),
        )
        .into());
    }
    if share && !fleet.enabled {
        return Err(UsageError(
            "--share needs the fleet: set [fleet] enabled = true (and its servers) in the config"
                .into(),
        )
        .into());
    }
    if share && args.ttl.is_none() {
        return Err(UsageError(
            "a shared ban must expire (peers refuse permanent ones): give it a --ttl".into(),
        )
        .into());
    }
    pins::require_caps(pins::MAP_CAPS)?;
    let mut ebpf = pins::load_pinned(&ctx.pins, &ctx.config.maps)?;
    let tables = Tables::from_ebpf(&mut ebpf)?;
    let store = Store::open_in(&ctx.state_dir).map_err(EnforceError::Store)?;
    let mut enforcer = Enforcer::new(tables, store).with_when_full(ctx.config.maps.when_full);
    let reason_text = args.reason.clone().unwrap_or_else(|| "manual".into());
    let mut written = Vec::new();
    for net in &args.targets {
        if list == List::Block
            && let Some(allow) = enforcer.tables().matching(List::Allow, net.addr())?
            && allow.is_live(blocker::clock::boottime_ns())
        {
            tracing::warn!(
                "{} is allowlisted; the allowlist wins, so this ban has no effect until `blocker disallow`",
                addr::display(net)
            );
        }
        let applied = enforcer.add(&Change {
            list,
            net: *net,
            ttl: args.ttl,
            reason: &reason_text,
            reason_code: reason::MANUAL,
            source: "cli",
        })?;
        if share && let (Some(store), Some(ttl)) = (enforcer.store(), args.ttl) {
            // The daemon's publisher polls the outbox (see fleet::journal).
            let d = blocker::fleet::Decision::block(
                &fleet.node_name(),
                *net,
                ttl,
                reason::MANUAL,
                &reason_text,
                "operator ban (cli)",
            );
            blocker::fleet::journal::queue(store.conn(), &d).map_err(|e| {
                anyhow::anyhow!("banned, but could not queue it for the fleet: {e}")
            })?;
        }
        written.push(Written {
            list,
            address: addr::display(net),
            prefix: net.to_string(),
            replaced: applied.replaced,
            expires_in_secs: args.ttl.map(|t| t.as_secs()),
            record_id: applied.record_id,
        });
    }
    if args.json {
        output::json(&serde_json::json!({ "written": written }))?;
    } else {
        let verb = if list == List::Block {
            "banned"
        } else {
            "allowed"
        };
        for w in &written {
            println!(
                "{}{verb} {} for {} (reason: {reason_text})",
                if w.replaced { "updated: " } else { "" },
                w.address,
                ttl::format_ttl(args.ttl),
            );
        }
        if ctx.pins.linked_interfaces().is_empty() {
            eprintln!(
                "note: no interface is attached under {}; rules apply once `blocker run --iface IFACE` starts",
                ctx.pins.path().display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
