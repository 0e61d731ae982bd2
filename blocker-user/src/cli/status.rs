//! `blocker status`

use std::process::ExitCode;

use blocker::{
    daemon::DaemonStatus,
    kernel::{maps::Tables, pins, xdp},
};
use serde::Serialize;

use super::{Context, output};

/// Show what is loaded: interfaces with blocker's XDP program, the daemon,
/// and how full the tables are.
///
/// Example: blocker status --json
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Machine-readable output (stable field names).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct StatusView {
    pin_dir: String,
    loaded: bool,
    interfaces: Vec<InterfaceView>,
    daemon: Option<DaemonStatus>,
    tables: Vec<TableView>,
    /// Seconds the drop-all-zero-window-SYNs policy stays on; null when off.
    zero_window_policy_secs: Option<u64>,
}

#[derive(Serialize)]
struct InterfaceView {
    iface: String,
    /// False when the link outlived its interface (deleted, or detached).
    attached: bool,
    ifindex: u32,
    link_id: u32,
    prog_id: u32,
}

#[derive(Serialize)]
struct TableView {
    map: &'static str,
    entries: usize,
    capacity: u32,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    pins::require_caps(pins::MAP_CAPS)?;
    let loaded = ctx.pins.is_loaded();
    let interfaces: Vec<InterfaceView> = ctx
        .pins
        .linked_interfaces()
        .into_iter()
        .map(|iface| {
            let info = xdp::link_info(&ctx.pins, &iface);
            InterfaceView {
                attached: info.is_some_and(|i| i.ifindex != 0),
                ifindex: info.map_or(0, |i| i.ifindex),
                link_id: info.map_or(0, |i| i.link_id),
                prog_id: info.map_or(0, |i| i.prog_id),
                iface,
            }
        })
        .collect();
    let mut tables_view = Vec::new();
    let mut zero_window_policy_secs = None;
    if loaded {
        let tables = Tables::open(&ctx.pins)?;
        let mut count = std::collections::HashMap::<String, usize>::new();
        for list in [blocker::rule::List::Allow, blocker::rule::List::Block] {
            for rule in tables.rules(list)? {
                *count.entry(table_of(&rule)).or_default() += 1;
            }
        }
        let zw = tables.zero_window()?;
        let until = tables.config(blocker_common::config::ZW_DROP_UNTIL_NS)?;
        let now = blocker::clock::boottime_ns();
        zero_window_policy_secs = (until > now).then(|| (until - now) / 1_000_000_000);
        use blocker_common::maps::*;
        for name in [
            ALLOW_V4,
            ALLOW_V6,
            BLOCK_V4,
            BLOCK_V6,
            BLOCK_NET_V4,
            BLOCK_NET_V6,
            ZW_SYN_V4,
            ZW_SYN_V6,
        ] {
            let entries = match name {
                ZW_SYN_V4 => zw.iter().filter(|(a, _)| a.is_ipv4()).count(),
                ZW_SYN_V6 => zw.iter().filter(|(a, _)| a.is_ipv6()).count(),
                _ => count.get(name).copied().unwrap_or(0),
            };
            tables_view.push(TableView {
                map: name,
                entries,
                capacity: tables.capacity(name).unwrap_or(0),
            });
        }
    }
    let view = StatusView {
        pin_dir: ctx.pins.path().display().to_string(),
        loaded,
        interfaces,
        daemon: DaemonStatus::read(&ctx.state_dir),
        tables: tables_view,
        zero_window_policy_secs,
    };
    if args.json {
        output::json(&view)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !view.loaded {
        println!(
            "blocker is not loaded (no pins under {}); start it with `blocker run --iface IFACE`",
            view.pin_dir
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("pins: {}", view.pin_dir);
    match &view.daemon {
        Some(d) => {
            println!(
                "daemon: running (pid {}, since {}){}",
                d.pid,
                d.started_at,
                if d.dry_run { " — DRY RUN" } else { "" }
            );
            println!(
                "probes: {}{}",
                if d.probes.attached.is_empty() {
                    d.probes.active.clone()
                } else {
                    format!("{} ({})", d.probes.active, d.probes.attached.join(", "))
                },
                d.probes
                    .fallback_reason
                    .as_ref()
                    .map(|r| format!("; fallback because: {r}"))
                    .unwrap_or_default()
            );
            println!(
                "alerts: {} delivered, {} dropped (queue full), {} malformed, {} ignored",
                d.alerts.delivered, d.alerts.dropped_full, d.alerts.malformed, d.alerts.ignored
            );
            if !d.shed.is_empty() {
                let shed: Vec<String> = d
                    .shed
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {} {} at the {}",
                            s.count,
                            s.class.as_str(),
                            s.source.as_str(),
                            s.stage
                        )
                    })
                    .collect();
                println!("shed under load: {}", shed.join(", "));
            }
            println!(
                "incidents: {} open, {} opened, {} closed, {} evicted, {} duplicate alerts",
                d.incidents.open,
                d.incidents.counters.opened,
                d.incidents.counters.closed,
                d.incidents.counters.evicted,
                d.incidents.counters.duplicates
            );
            println!(
                "council: {} — {} debates ({} running, {} queued); verdicts: {} applied, {} refused by the guard, {} failed, {} dry-run",
                d.council.agents.join(", "),
                d.council.debates,
                d.council.running,
                d.council.queued,
                d.council.applied,
                d.council.refused,
                d.council.failed,
                d.council.dry_run
            );
            if let Some(b) = &d.council.llm_budget {
                print_budget(b);
            }
            if d.latency.count > 0 {
                println!(
                    "evidence → ban: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} bans (median stages: intake {:.2} ms, council {:.2} ms, journal+map {:.2} ms)",
                    d.latency.p50_ms,
                    d.latency.p99_ms,
                    d.latency.max_ms,
                    d.latency.count,
                    d.latency.intake_p50_ms,
                    d.latency.council_p50_ms,
                    d.latency.apply_p50_ms
                );
            }
            print_journal(&d.journal);
            match &d.gc.error {
                Some(e) => println!("expired rules: collection OFF ({e})"),
                None => println!(
                    "expired rules: {} removed in {} steps (longest {:.1} ms)",
                    d.gc.expired, d.gc.steps, d.gc.max_step_ms
                ),
            }
            let f = &d.fleet;
            if f.enabled {
                println!(
                    "fleet: node {} {} {} — lag {}, {} queued, {} sent{}",
                    f.node,
                    if f.connected {
                        "connected to"
                    } else {
                        "NOT connected to"
                    },
                    f.servers.join(", "),
                    f.lag,
                    f.queued,
                    f.sent,
                    f.last_error
                        .as_ref()
                        .map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                );
                for (origin, c) in &f.origins {
                    println!(
                        "  from {origin}: {} received, {} applied, {} refused",
                        c.received, c.applied, c.refused
                    );
                }
                if !f.rejected.is_empty() {
                    let r: Vec<String> =
                        f.rejected.iter().map(|(k, n)| format!("{k} {n}")).collect();
                    println!("  rejected messages: {}", r.join(", "));
                }
                if f.propagation.count > 0 {
                    println!(
                        "  propagation (origin applied → applied here): p50 {:.1} ms, p99 {:.1} ms over {} decisions",
                        f.propagation.p50_ms, f.propagation.p99_ms, f.propagation.count
                    );
                }
            }
            if let Some(c) = &d.crowdsec {
                print_crowdsec(c);
            }
        }
        None => println!("daemon: not running (pinned rules are still enforced)"),
    }
    if let Some(left) = view.zero_window_policy_secs {
        println!(
            "zero-window SYN policy: dropping all zero-window SYNs for {}",
            blocker::ttl::format_remaining(std::time::Duration::from_secs(left))
        );
    }
    if view.interfaces.is_empty() {
        println!("interfaces: none attached");
    } else {
        let rows: Vec<Vec<String>> = view
            .interfaces
            .iter()
            .map(|i| {
                vec![
                    i.iface.clone(),
                    if i.attached { "attached" } else { "stale link" }.into(),
                    i.link_id.to_string(),
                    i.prog_id.to_string(),
                ]
            })
            .collect();
        print!(
            "{}",
            output::table(&["IFACE", "STATE", "LINK ID", "PROG ID"], &rows)
        );
    }
    let rows: Vec<Vec<String>> = view
        .tables
        .iter()
        .map(|t| {
            vec![
                t.map.to_string(),
                t.entries.to_string(),
                t.capacity.to_string(),
            ]
        })
        .collect();
    print!("{}", output::table(&["MAP", "ENTRIES", "CAPACITY"], &rows));
    Ok(ExitCode::SUCCESS)
}

fn table_of(rule: &blocker::rule::Rule) -> String {
    use blocker_common::maps::*;
    let host = blocker::addr::is_host(&rule.net);
    let v4 = rule.net.addr().is_ipv4();
    match (rule.list, v4, host) {
        (blocker::rule::List::Allow, true, _) => ALLOW_V4,
        (blocker::rule::List::Allow, false, _) => ALLOW_V6,
        (_, true, true) => BLOCK_V4,
        (_, false, true) => BLOCK_V6,
        (_, true, false) => BLOCK_NET_V4,
        (_, false, false) => BLOCK_NET_V6,
    }
    .to_string()
}

/// The CrowdSec bouncer's lines of `blocker status`.
/// The LLM budget line: used of limit per window, and whether it ran out.
fn print_budget(b: &blocker::council::budget::BudgetStatus) {
    let of = |used: u64, limit: u64| {
        if limit == 0 {
            format!("{used} (no limit)")
        } else {
            format!("{used}/{limit} ({} left)", limit.saturating_sub(used))
        }
    };
    println!(
        "LLM budget: this minute {} calls, {} tokens; today {} calls, {} tokens{}",
        of(b.minute.calls, b.minute.calls_limit),
        of(b.minute.tokens, b.minute.tokens_limit),
        of(b.day.calls, b.day.calls_limit),
        of(b.day.tokens, b.day.tokens_limit),
        if b.refused_debates > 0 {
            format!(
                "; {} debates left to the offline council for lack of budget",
                b.refused_debates
            )
        } else {
            String::new()
        }
    );
    if let Some(e) = &b.exhausted {
        println!("LLM budget EXHAUSTED: {e}; the offline council decides meanwhile");
    }
}

/// The journal's retention line.
fn print_journal(j: &blocker::state::retention::RetentionStatus) {
    let limit = |n: u64, f: &dyn Fn(u64) -> String| {
        if n == 0 { "no limit".to_string() } else { f(n) }
    };
    let p = &j.pruned;
    println!(
        "journal: {} KiB of records (file {} KiB; max_size {}, max_age {}); pruned since start: {} incidents, {} debates, {} verdicts, {} lifted rules{}{}{}",
        j.used_bytes / 1024,
        j.file_bytes / 1024,
        limit(j.max_size_bytes, &blocker::state::retention::size::format),
        limit(j.max_age_secs, &|s| blocker::ttl::format_remaining(
            std::time::Duration::from_secs(s)
        )),
        p.incidents,
        p.debates,
        p.verdicts,
        p.rules,
        if j.running { "; pruning now" } else { "" },
        if j.over_size {
            "; OVER max_size: what is left backs active bans"
        } else {
            ""
        },
        j.error
            .as_ref()
            .map(|e| format!("; retention error: {e}"))
            .unwrap_or_default()
    );
}

fn print_crowdsec(c: &blocker::daemon::crowdsec::CrowdsecStatus) {
    let state = if c.connected {
        format!(
            "connected, last pull {}",
            c.last_pull.as_deref().unwrap_or("-")
        )
    } else {
        format!(
            "UNREACHABLE ({} failed pull(s) in a row, retry in {:.0}s: {}); rules already in the kernel keep being enforced",
            c.failures,
            c.retry_in_secs.unwrap_or(0.0),
            c.last_error.as_deref().unwrap_or("-")
        )
    };
    println!("CrowdSec: {} ({state})", c.lapi_url);
    let refused: Vec<String> = c.refused.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let skipped: Vec<String> = c
        .skipped
        .types
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!(
        "  {} live ban decisions, {} prefixes enforced; {} applied, {} lifted, {} unchanged, {} kept (banned longer by another source), {} failed; refused: {}; skipped: {} filtered, {} own, {} invalid, types: {}",
        c.decisions,
        c.enforced,
        c.applied,
        c.removed,
        c.unchanged,
        c.kept_foreign,
        c.failed,
        if refused.is_empty() {
            "none".into()
        } else {
            refused.join(", ")
        },
        c.skipped.filtered,
        c.skipped.own,
        c.skipped.invalid,
        if skipped.is_empty() {
            "none".into()
        } else {
            skipped.join(", ")
        }
    );
    for o in &c.origins {
        println!(
            "  {} {}: {} active, {} packets / {} bytes dropped",
            o.origin, o.ip_type, o.active_decisions, o.dropped_packets, o.dropped_bytes
        );
    }
    if c.push.enabled {
        println!(
            "  push: {} alerts pushed, {} failed, {} dropped{}",
            c.push.pushed,
            c.push.failed,
            c.push.dropped,
            c.push
                .last_error
                .as_deref()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        );
    }
}
