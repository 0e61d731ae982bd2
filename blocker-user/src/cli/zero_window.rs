//! `blocker zero-window`

use std::process::ExitCode;

use blocker::{clock, kernel::maps::Tables, kernel::pins};
use serde::Serialize;

use super::{Context, output};

/// Show the sources that sent TCP SYNs with a zero window (the spoofed-flood
/// and sockstress opening move), most first.
///
/// Example: blocker zero-window --top 10
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show at most this many sources.
    #[arg(long, default_value_t = 20, value_name = "N")]
    top: usize,
    /// Machine-readable output (stable field names).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct SourceView {
    address: String,
    count: u64,
    first_seen: String,
    last_seen: String,
    /// Whether the kernel already sent a threshold event for this source.
    reported: bool,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    pins::require_caps(pins::MAP_CAPS)?;
    let tables = Tables::open(&ctx.pins)?;
    let mut sources = tables.zero_window()?;
    let total = sources.len();
    sources.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(&b.0)));
    sources.truncate(args.top);
    let views: Vec<SourceView> = sources
        .into_iter()
        .map(|(addr, e)| SourceView {
            address: addr.to_string(),
            count: e.count,
            first_seen: clock::rfc3339(clock::to_system(e.first_seen_ns)),
            last_seen: clock::rfc3339(clock::to_system(e.last_seen_ns)),
            reported: e.reported != 0,
        })
        .collect();
    if args.json {
        output::json(&serde_json::json!({ "total_sources": total, "sources": views }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if views.is_empty() {
        println!("no zero-window SYNs seen");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            vec![
                v.address.clone(),
                v.count.to_string(),
                v.first_seen.clone(),
                v.last_seen.clone(),
                if v.reported { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &["SOURCE", "SYNS", "FIRST SEEN", "LAST SEEN", "REPORTED"],
            &rows
        )
    );
    if total > views.len() {
        println!(
            "({} of {total} sources shown; --top N for more)",
            views.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
