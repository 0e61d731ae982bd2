//! `blocker unban` and `blocker disallow`

use std::process::ExitCode;

use blocker::{
    addr::{self, IpNet},
    kernel::maps::Tables,
    kernel::pins,
    rule::List,
    state::enforcer::Enforcer,
    state::journal::Store,
};

use super::{Context, output, parse_net_arg};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Addresses or CIDR prefixes, exactly as they were added.
    #[arg(required_unless_present = "origin", value_name = "ADDR|CIDR", value_parser = parse_net_arg)]
    pub targets: Vec<IpNet>,
    /// Instead of addresses: every rule from this source or under it
    /// (`crowdsec:cscli`, `crowdsec:lists:NAME`, `council`, ...). A rule
    /// CrowdSec still decides comes back at the bouncer's next full pull;
    /// delete it there (`cscli decisions delete`) to lift it for good.
    #[arg(long, value_name = "SOURCE", conflicts_with = "targets")]
    pub origin: Option<String>,
    /// Print what was removed as JSON.
    #[arg(long)]
    pub json: bool,
    /// Tell the fleet to lift it too. Implied when this node shared the ban
    /// (`blocker ban --share`); peers lift only bans they got from us.
    /// Example: blocker unban 203.0.113.7 --share
    #[arg(long)]
    pub share: bool,
}

pub fn run(ctx: &Context, args: Args, list: List) -> anyhow::Result<ExitCode> {
    pins::require_caps(pins::MAP_CAPS)?;
    let mut ebpf = pins::load_pinned(&ctx.pins, &ctx.config.maps)?;
    let tables = Tables::from_ebpf(&mut ebpf)?;
    // Removing a rule never enforces anything unrecorded: allowed even with
    // a broken journal.
    let mut enforcer = match Store::open_in(&ctx.state_dir) {
        Ok(store) => Enforcer::new(tables, store),
        Err(e) => {
            tracing::warn!("journal unavailable ({e}); removing from the kernel maps only");
            Enforcer::without_journal(tables, e.to_string())
        }
    };
    let why = if list == List::Block {
        "unban"
    } else {
        "disallow"
    };
    let mut removed = Vec::new();
    let mut absent = Vec::new();
    let targets: Vec<IpNet> = match &args.origin {
        None => args.targets.clone(),
        Some(origin) => {
            let Some(store) = enforcer.store() else {
                anyhow::bail!(
                    "--origin needs the journal (it records each rule's source), which is unavailable: {}",
                    enforcer.journal_error().unwrap_or("not opened")
                );
            };
            store.active_of_origin(list, origin)?
        }
    };
    if let (Some(origin), true) = (&args.origin, targets.is_empty()) {
        eprintln!("no {} rules from {origin}", list.as_str());
    }
    let fleet = &ctx.config.fleet;
    for net in &targets {
        if list == List::Block
            && fleet.enabled
            && let Some(store) = enforcer.store()
            && (args.share
                || blocker::fleet::journal::shared_block(store.conn(), *net).unwrap_or(false))
        {
            let d = blocker::fleet::Decision::unblock(&fleet.node_name(), *net, why);
            blocker::fleet::journal::queue(store.conn(), &d)
                .map_err(|e| anyhow::anyhow!("could not queue the unban for the fleet: {e}"))?;
        }
    }
    if args.origin.is_some() {
        // Every target is an active journal record: one batch of map deletes
        // and one journal transaction (a million rules from an import lift
        // in seconds; one transaction per rule took hours, issue 14).
        let batch: Vec<(List, IpNet)> = targets.iter().map(|n| (list, *n)).collect();
        enforcer.remove_batch(&batch, why)?;
        removed.extend(targets.iter().map(addr::display));
    } else {
        for net in &targets {
            if enforcer.remove(list, *net, why)? {
                removed.push(addr::display(net));
            } else {
                absent.push(*net);
            }
        }
    }
    if args.json {
        output::json(&serde_json::json!({
            "removed": removed,
            "absent": absent.iter().map(addr::display).collect::<Vec<_>>(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let (done, noun) = match list {
        List::Block => ("unbanned", "banned"),
        List::Allow => ("removed from the allowlist:", "allowlisted"),
    };
    {
        // One write per buffer, not per line: an origin can hold a million.
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for r in &removed {
            writeln!(out, "{done} {r}")?;
        }
        out.flush()?;
    }
    for net in &absent {
        // Point at the rule that does cover it, if any.
        let covering = enforcer
            .tables()
            .rules(list)?
            .into_iter()
            .find(|r| r.net.contains(&net.addr()) && r.net != *net);
        match covering {
            Some(r) => eprintln!(
                "{} is not {noun} itself but is covered by {}; remove that prefix instead",
                addr::display(net),
                r.net
            ),
            None => eprintln!("{} was not {noun}", addr::display(net)),
        }
    }
    Ok(ExitCode::SUCCESS)
}
