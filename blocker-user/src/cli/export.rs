//! `blocker export`

use std::{process::ExitCode, time::SystemTime};

use blocker::{
    clock,
    kernel::maps::Tables,
    kernel::pins,
    rule::List,
    state::journal::{self, Store},
    state::rulefile,
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

/// [`rulefile::ExportedRule`] borrowing its texts: a million rules from one import
/// share one reason and one source (same JSON).
#[derive(serde::Serialize)]
struct Exported<'a> {
    list: List,
    #[serde(with = "blocker::council::net_serde")]
    prefix: blocker::addr::IpNet,
    expires_at: Option<String>,
    reason: &'a str,
    source: &'a str,
}

/// [`rulefile::Export`] with borrowed rules.
#[derive(serde::Serialize)]
struct ExportOut<'a> {
    format: &'a str,
    version: u32,
    exported_at: String,
    rules: Vec<Exported<'a>>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    pins::require_caps(pins::MAP_CAPS)?;
    let tables = Tables::open(&ctx.pins)?;
    let store = Store::open_in(&ctx.state_dir).ok();
    // One query for every record, not one per rule (a million rules).
    let records = store
        .as_ref()
        .and_then(|s| s.active_labels().ok())
        .unwrap_or_default();
    let now = clock::boottime_ns();
    let mut found = Vec::new();
    for list in [List::Allow, List::Block] {
        found.extend(
            tables
                .rules(list)?
                .into_iter()
                .filter(|r| r.entry.is_live(now))
                .map(|r| (r.list, r.net, r.entry)),
        );
    }
    let mut rules = Vec::with_capacity(found.len());
    for (list, net, entry) in &found {
        let record = records.get(&(*list, *net));
        if let Some(origin) = &args.origin
            && !record.is_some_and(|(_, source)| journal::source_matches(source, origin))
        {
            continue;
        }
        rules.push(Exported {
            list: *list,
            prefix: *net,
            expires_at: (entry.expires_at_ns != 0)
                .then(|| clock::rfc3339(clock::to_system(entry.expires_at_ns))),
            reason: record.map_or_else(|| blocker_common::reason::name(entry.reason), |r| &r.0),
            source: record.map_or("kernel", |r| &r.1),
        });
    }
    if args.json {
        output::json(&ExportOut {
            format: rulefile::FORMAT,
            version: 1,
            exported_at: clock::rfc3339(SystemTime::now()),
            rules,
        })?;
    } else {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        writeln!(
            out,
            "# blocker export: blocked prefixes, {}",
            clock::rfc3339(SystemTime::now())
        )?;
        for r in rules.iter().filter(|r| r.list == List::Block) {
            writeln!(out, "{}", blocker::addr::display(&r.prefix))?;
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}
