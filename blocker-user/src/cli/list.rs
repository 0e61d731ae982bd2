//! `blocker list`

use std::process::ExitCode;

use blocker::{
    addr, clock,
    kernel::maps::Tables,
    kernel::pins,
    rule::List,
    state::journal::{self, Store},
    ttl,
};
use blocker_common::reason;
use serde::Serialize;

use super::{Context, choice_arg, output};

/// Show the allow and block rules in the kernel, with time left, reason and
/// the packets each one matched.
///
/// Example: blocker list --json
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this list.
    #[arg(long, value_parser = choice_arg::<List>(), value_name = "LIST")]
    list: Option<List>,
    /// Only rules from this source or under it: `crowdsec` (every
    /// CrowdSec origin), `crowdsec:cscli`, `crowdsec:lists:NAME`, `council`,
    /// `cli`, ...
    #[arg(long, value_name = "SOURCE")]
    origin: Option<String>,
    /// Machine-readable output (stable field names).
    #[arg(long)]
    json: bool,
}

/// One rule in `blocker list --json`.
#[derive(Serialize)]
pub struct RuleView {
    pub list: List,
    /// The address as written by operators: hosts without a prefix length.
    pub address: String,
    /// Canonical CIDR form.
    pub prefix: String,
    pub family: &'static str,
    /// Seconds until the rule expires; null for permanent rules.
    pub expires_in_secs: Option<u64>,
    /// RFC 3339 UTC; null for permanent rules.
    pub expires_at: Option<String>,
    /// True when the rule has expired but was not yet garbage-collected (the
    /// kernel already ignores it).
    pub expired: bool,
    pub reason: String,
    pub reason_code: &'static str,
    /// Who added it: cli, council, import, ... (null if the journal has no record).
    pub source: Option<String>,
    pub added_at: String,
    /// Packets matched (dropped for block rules, passed for allow rules).
    pub packets: u64,
    pub bytes: u64,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    pins::require_caps(pins::MAP_CAPS)?;
    let tables = Tables::open(&ctx.pins)?;
    let store = match Store::open_in(&ctx.state_dir) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("journal unavailable, reasons not shown: {e}");
            None
        }
    };
    let now = clock::boottime_ns();
    let lists = args
        .list
        .map_or_else(|| vec![List::Allow, List::Block], |l| vec![l]);
    let mut views = Vec::new();
    for list in lists {
        for rule in tables.rules(list)? {
            let record = store
                .as_ref()
                .and_then(|s| s.active(rule.list, rule.net).ok().flatten());
            if let Some(origin) = &args.origin
                && !record
                    .as_ref()
                    .is_some_and(|r| journal::source_matches(&r.source, origin))
            {
                continue;
            }
            let left = clock::remaining(rule.entry.expires_at_ns, now);
            views.push(RuleView {
                list: rule.list,
                address: addr::display(&rule.net),
                prefix: rule.net.to_string(),
                family: if rule.net.addr().is_ipv4() {
                    "ipv4"
                } else {
                    "ipv6"
                },
                expires_in_secs: left.map(|d| d.as_secs()),
                expires_at: (rule.entry.expires_at_ns != 0)
                    .then(|| clock::rfc3339(clock::to_system(rule.entry.expires_at_ns))),
                expired: !rule.entry.is_live(now),
                reason: record.as_ref().map_or_else(
                    || reason::name(rule.entry.reason).to_string(),
                    |r| r.reason.clone(),
                ),
                reason_code: reason::name(rule.entry.reason),
                source: record.map(|r| r.source),
                added_at: clock::rfc3339(clock::to_system(rule.entry.added_at_ns)),
                packets: rule.counters.packets,
                bytes: rule.counters.bytes,
            });
        }
    }
    if args.json {
        output::json(&serde_json::json!({ "rules": views }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if views.is_empty() && args.origin.is_some() {
        println!("no rules from that origin");
        return Ok(ExitCode::SUCCESS);
    }
    if views.is_empty() {
        println!("no rules (add some with `blocker ban ADDR` or `blocker allow ADDR`)");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            vec![
                v.list.as_str().to_string(),
                v.address.clone(),
                if v.expired {
                    "expired".into()
                } else {
                    ttl::format_ttl(v.expires_in_secs.map(std::time::Duration::from_secs))
                },
                v.packets.to_string(),
                v.bytes.to_string(),
                v.source.clone().unwrap_or_else(|| "-".into()),
                v.reason.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &[
                "LIST",
                "ADDRESS",
                "EXPIRES IN",
                "PACKETS",
                "BYTES",
                "SOURCE",
                "REASON"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}
