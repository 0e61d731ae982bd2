//! `blocker stats`

use std::process::ExitCode;

use blocker::{kernel::maps::Tables, kernel::pins};
use serde::Serialize;

use super::{Context, output};

/// Show the XDP program's counters (summed over CPUs) and rule counts.
///
/// Example: blocker stats --json
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Machine-readable output (stable field names).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct StatsView {
    passed: u64,
    passed_bytes: u64,
    dropped: u64,
    dropped_bytes: u64,
    allowlisted: u64,
    allowlisted_bytes: u64,
    malformed: u64,
    malformed_bytes: u64,
    non_ip: u64,
    expired_rule_hits: u64,
    zero_window_syns: u64,
    zero_window_syns_dropped: u64,
    events: u64,
    events_lost: u64,
    allow_rules: usize,
    block_rules: usize,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    pins::require_caps(pins::MAP_CAPS)?;
    let tables = Tables::open(&ctx.pins)?;
    let s = tables.stats()?;
    let (allow_rules, block_rules) = tables.counts()?;
    let view = StatsView {
        passed: s.passed,
        passed_bytes: s.passed_bytes,
        dropped: s.dropped,
        dropped_bytes: s.dropped_bytes,
        allowlisted: s.allowlisted,
        allowlisted_bytes: s.allowlisted_bytes,
        malformed: s.malformed,
        malformed_bytes: s.malformed_bytes,
        non_ip: s.non_ip,
        expired_rule_hits: s.expired,
        zero_window_syns: s.zw_syn,
        zero_window_syns_dropped: s.zw_syn_dropped,
        events: s.events,
        events_lost: s.events_lost,
        allow_rules,
        block_rules,
    };
    if args.json {
        output::json(&view)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = [
        ("passed", view.passed, "frames handed to the kernel"),
        ("passed bytes", view.passed_bytes, ""),
        (
            "dropped",
            view.dropped,
            "frames dropped by a block rule or the zero-window policy",
        ),
        ("dropped bytes", view.dropped_bytes, ""),
        (
            "allowlisted",
            view.allowlisted,
            "passed because the source is allowlisted",
        ),
        ("allowlisted bytes", view.allowlisted_bytes, ""),
        (
            "malformed",
            view.malformed,
            "truncated or invalid headers (passed)",
        ),
        ("malformed bytes", view.malformed_bytes, ""),
        ("non-ip", view.non_ip, "ARP, LLDP, ... (passed)"),
        (
            "expired rule hits",
            view.expired_rule_hits,
            "matched a rule past its expiry (ignored)",
        ),
        (
            "zero-window SYNs",
            view.zero_window_syns,
            "TCP SYNs advertising window 0",
        ),
        ("  dropped by policy", view.zero_window_syns_dropped, ""),
        ("events", view.events, "threshold events sent to the daemon"),
        ("events lost", view.events_lost, "ring buffer full"),
        ("allow rules", view.allow_rules as u64, ""),
        ("block rules", view.block_rules as u64, ""),
    ]
    .into_iter()
    .map(|(k, v, note)| vec![k.to_string(), v.to_string(), note.to_string()])
    .collect();
    print!("{}", output::table(&["COUNTER", "VALUE", ""], &rows));
    Ok(ExitCode::SUCCESS)
}
