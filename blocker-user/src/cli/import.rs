//! `blocker import`

use std::{path::PathBuf, process::ExitCode, time::SystemTime};

use anyhow::Context as _;
use blocker::{
    addr,
    kernel::maps::Tables,
    kernel::pins,
    rule::List,
    state::enforcer::{Change, EnforceError, Enforcer},
    state::journal::Store,
    state::rulefile,
    ttl,
};
use blocker_common::reason;

use super::{Context, UsageError, choice_arg, output, parse_ttl_arg};

/// Load rules from a file: blocker's JSON export, or a plain list of
/// addresses/CIDRs (one per line, `#` or `;` comments) such as a published
/// blocklist. Everything is validated first; nothing is written if a line is
/// invalid, unless --skip-invalid.
///
/// Example: blocker import drop.txt --ttl 1d --reason "Spamhaus DROP"
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file; `-` reads standard input.
    file: PathBuf,
    /// For plain lists: which list the addresses go to.
    #[arg(long, value_parser = choice_arg::<List>(), default_value = "block")]
    list: List,
    /// For plain lists: how long the rules last (90s, 1h, 7d, never).
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl_arg, default_value = "never")]
    ttl: ttl::Ttl,
    /// For plain lists: the reason recorded [default: "import: FILE"].
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Import the valid lines and report the invalid ones.
    #[arg(long)]
    skip_invalid: bool,
    /// Accept prefixes wider than /8 (IPv4) or /16 (IPv6).
    #[arg(long)]
    force: bool,
    /// Validate and report; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

struct Planned<'a> {
    list: List,
    net: addr::IpNet,
    ttl: ttl::Ttl,
    /// Borrowed for plain lists (one reason for a million lines).
    reason: std::borrow::Cow<'a, str>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let text = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let default_reason = args
        .reason
        .clone()
        .unwrap_or_else(|| format!("import: {}", args.file.display()));
    let mut planned = Vec::new();
    let mut skipped = Vec::new();
    if rulefile::is_export(&text) {
        let export = rulefile::parse_export(&text).map_err(UsageError)?;
        let now = SystemTime::now();
        for r in export.rules {
            let ttl = match &r.expires_at {
                None => None,
                Some(at) => {
                    let at = humantime::parse_rfc3339(at).map_err(|e| {
                        UsageError(format!("rule {}: expires_at {at:?}: {e}", r.prefix))
                    })?;
                    match at.duration_since(now) {
                        Ok(left) if !left.is_zero() => Some(left),
                        // Expired in transit: nothing to import.
                        _ => {
                            skipped.push(format!("{} (expired)", r.prefix));
                            continue;
                        }
                    }
                }
            };
            planned.push(Planned {
                list: r.list,
                net: r.prefix,
                ttl,
                reason: r.reason.into(),
            });
        }
    } else {
        let (nets, errors) = rulefile::parse_plain(&text);
        if !errors.is_empty() {
            for e in &errors {
                eprintln!(
                    "{}:{}: {} ({:?})",
                    args.file.display(),
                    e.line,
                    e.error,
                    e.text
                );
            }
            if !args.skip_invalid {
                return Err(UsageError(format!(
                    "{} invalid line(s); nothing imported (fix them, or pass --skip-invalid)",
                    errors.len()
                ))
                .into());
            }
        }
        let list = args.list;
        planned.extend(nets.into_iter().map(|net| Planned {
            list,
            net,
            ttl: args.ttl,
            reason: default_reason.as_str().into(),
        }));
    }
    let wide: Vec<String> = planned
        .iter()
        .filter(|p| match p.net {
            addr::IpNet::V4(n) => n.prefix_len() < 8,
            addr::IpNet::V6(n) => n.prefix_len() < 16,
        })
        .map(|p| p.net.to_string())
        .collect();
    if !wide.is_empty() && !args.force {
        return Err(UsageError(format!(
            "{} covers a very large part of the address space; pass --force if you mean it",
            wide.join(", ")
        ))
        .into());
    }
    if args.dry_run {
        println!(
            "{} rule(s) would be imported ({} skipped)",
            planned.len(),
            skipped.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    pins::require_caps(pins::MAP_CAPS)?;
    let mut ebpf = pins::load_pinned(&ctx.pins, &ctx.config.maps)?;
    let tables = Tables::from_ebpf(&mut ebpf)?;
    let store = Store::open_in(&ctx.state_dir).map_err(EnforceError::Store)?;
    let mut enforcer = Enforcer::new(tables, store).with_when_full(ctx.config.maps.when_full);
    let changes: Vec<Change<'_>> = planned
        .iter()
        .map(|p| Change {
            list: p.list,
            net: p.net,
            ttl: p.ttl,
            reason: &p.reason,
            reason_code: reason::IMPORT,
            source: "import",
        })
        .collect();
    // Checked to fit before anything is written, one journal commit for the
    // whole file, then batched map writes.
    let applied = enforcer.apply_batch(&changes)?;
    let imported = applied.written;
    let failed: Vec<String> = Vec::new();
    if args.json {
        output::json(&serde_json::json!({
            "imported": imported, "replaced": applied.replaced, "evicted": applied.evicted,
            "skipped": skipped, "failed": failed,
        }))?;
    } else {
        println!(
            "imported {imported} rule(s) ({} replaced){}",
            applied.replaced,
            if skipped.is_empty() {
                String::new()
            } else {
                format!(", skipped {}", skipped.len())
            }
        );
        for f in &failed {
            eprintln!("failed: {f}");
        }
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
