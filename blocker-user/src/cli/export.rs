//! `blocker export`

use std::{process::ExitCode, time::SystemTime};

use blocker::{
    clock,
    kernel::maps::Tables,
    kernel::pins,
    rule::List,
    state::journal::{self, Store},
    state::rulefile::{self, Export, ExportedRule},
};

use super::{Context, output};

/// Print the live rules for another host: JSON (for `blocker import`), or
/// a plain address list.
///
/// Example: blocker export --json > rules.json
#[derive(Debug, clap::Args)]
pub struct Args {
    /// blocker's JSON format (keeps lists, expiries and reasons). Without
    /// it: one blocked address or CIDR per line.
    #[arg(long)]
    json: bool,
    /// Only rules from this source or under it (`crowdsec`,
    /// `crowdsec:lists:NAME`, `council`, ...).
    #[arg(long, value_name = "SOURCE")]
    origin: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    pins::require_caps(pins::MAP_CAPS)?;
    let tables = Tables::open(&ctx.pins)?;
    let store = Store::open_in(&ctx.state_dir).ok();
    // One query for every record, not one per rule (a million rules).
    let records: std::collections::HashMap<(List, blocker::addr::IpNet), _> = store
        .as_ref()
        .and_then(|s| s.active_rules().ok())
        .unwrap_or_default()
        .into_iter()
        .map(|r| ((r.list, r.net), r))
        .collect();
    let now = clock::boottime_ns();
    let mut rules = Vec::new();
    for list in [List::Allow, List::Block] {
        for r in tables.rules(list)? {
            if !r.entry.is_live(now) {
                continue;
            }
            let record = records.get(&(r.list, r.net));
            if let Some(origin) = &args.origin
                && !record.is_some_and(|rec| journal::source_matches(&rec.source, origin))
            {
                continue;
            }
            rules.push(ExportedRule {
                list: r.list,
                prefix: r.net,
                expires_at: (r.entry.expires_at_ns != 0)
                    .then(|| clock::rfc3339(clock::to_system(r.entry.expires_at_ns))),
                reason: record.as_ref().map_or_else(
                    || blocker_common::reason::name(r.entry.reason).to_string(),
                    |rec| rec.reason.clone(),
                ),
                source: record.map_or_else(|| "kernel".to_string(), |rec| rec.source.clone()),
            });
        }
    }
    if args.json {
        output::json(&Export {
            format: rulefile::FORMAT.into(),
            version: 1,
            exported_at: clock::rfc3339(SystemTime::now()),
            rules,
        })?;
    } else {
        println!(
            "# blocker export: blocked prefixes, {}",
            clock::rfc3339(SystemTime::now())
        );
        for r in rules.iter().filter(|r| r.list == List::Block) {
            println!("{}", blocker::addr::display(&r.prefix));
        }
    }
    Ok(ExitCode::SUCCESS)
}
