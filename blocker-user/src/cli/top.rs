//! `blocker top`

use std::{
    io::IsTerminal as _,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use blocker::{
    addr,
    daemon::DaemonStatus,
    kernel::{maps::Tables, pins},
    metrics::live::{Live, ip_type},
    ttl,
};
use ratatui::{
    crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers},
    layout::{Constraint, Layout},
    style::{Modifier, Style},
    text::Line,
    widgets::{Block, Paragraph, Row, Table},
};

use super::{Context, output};

/// A live view of what blocker is doing, refreshed every second: drops per
/// source, active bans with their remaining TTL and origin, zero-window SYN
/// talkers, recent verdicts and refusals, probe mode and journal state.
///
/// Reads the pinned maps and the journal, so it works with or without a
/// running daemon. `q` (or Esc, Ctrl-C) quits. When stdout is not a
/// terminal it prints one snapshot as text (or JSON with --json) and exits.
///
/// Example: blocker top
///
/// Example: blocker top --json | jq '.rules | length'
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one snapshot as JSON and exit.
    #[arg(long)]
    json: bool,
    /// Print one plain-text snapshot and exit, even on a terminal.
    #[arg(long)]
    once: bool,
    /// Rows per section.
    #[arg(long, default_value_t = 10, value_name = "N")]
    rows: usize,
}

/// Recent verdicts fetched from the journal per refresh.
const VERDICTS: usize = 10;

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    pins::require_caps(pins::MAP_CAPS)?;
    if !ctx.pins.is_loaded() {
        anyhow::bail!(
            "blocker is not loaded (no pins under {}); start it with `blocker run --iface IFACE`",
            ctx.pins.path().display()
        );
    }
    let tables = Tables::open(&ctx.pins)?;
    let read = || Snapshot::read(&tables, &ctx.state_dir);
    if args.json {
        output::json(&read()?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.once || !std::io::stdout().is_terminal() {
        let live = read()?;
        let view = View::new(&live, None, args.rows);
        for line in &view.header {
            println!("{line}");
        }
        for s in &view.sections {
            println!("\n{}", s.title);
            if s.rows.is_empty() {
                println!("  (none)");
            } else {
                print!("{}", output::table(&s.headers, &s.rows));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut terminal = ratatui::init();
    let result = (|| -> anyhow::Result<()> {
        let mut previous: Option<(Snapshot, Instant)> = None;
        loop {
            let live = read()?;
            let now = Instant::now();
            let rates = previous
                .as_ref()
                .map(|(p, at)| Rates::between(&p.live, &live.live, now.duration_since(*at)));
            let view = View::new(&live, rates, args.rows);
            terminal.draw(|f| view.render(f))?;
            previous = Some((live, now));
            // Redraw once a second; keys are handled as they come.
            let deadline = now + Duration::from_secs(1);
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if !event::poll(left)? {
                    break;
                }
                if let Event::Key(k) = event::read()?
                    && k.kind == KeyEventKind::Press
                    && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
                        || (k.code == KeyCode::Char('c')
                            && k.modifiers.contains(KeyModifiers::CONTROL)))
                {
                    return Ok(());
                }
            }
        }
    })();
    ratatui::restore();
    result?;
    Ok(ExitCode::SUCCESS)
}

/// What `blocker top` shows: the kernel and the journal as any reader sees
/// them ([`Live`], shared with the metrics endpoint), and the running
/// daemon's own status, if one runs.
#[derive(serde::Serialize)]
struct Snapshot {
    #[serde(flatten)]
    live: Live,
    daemon: Option<DaemonStatus>,
}

impl Snapshot {
    fn read(tables: &Tables, state_dir: &std::path::Path) -> anyhow::Result<Self> {
        let mut live =
            Live::read(tables, state_dir, VERDICTS).context("reading the pinned maps")?;
        let daemon = DaemonStatus::read(state_dir);
        // A running daemon knows better than a reader whether its journal
        // works (it may have opened it read-write and failed).
        if let Some(e) = daemon
            .as_ref()
            .and_then(|d| d.council.journal_error.clone())
        {
            live.journal.error = Some(e);
        }
        Ok(Self { live, daemon })
    }

    /// The probe mode a running daemon reports, or `"no daemon"`.
    fn probe_mode(&self) -> String {
        self.daemon
            .as_ref()
            .map_or_else(|| "no daemon".to_string(), |d| d.probes.active.clone())
    }
}

/// Packets per second between two reads.
#[derive(Clone, Copy)]
struct Rates {
    passed: f64,
    dropped: f64,
}

impl Rates {
    fn between(a: &Live, b: &Live, dt: Duration) -> Self {
        let secs = dt.as_secs_f64().max(0.001);
        let per = |x: u64, y: u64| y.saturating_sub(x) as f64 / secs;
        Self {
            passed: per(a.stats.passed, b.stats.passed),
            dropped: per(a.stats.dropped, b.stats.dropped),
        }
    }
}

struct Section {
    title: String,
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

/// What is shown, the same in the terminal view and the plain snapshot.
struct View {
    header: Vec<String>,
    sections: Vec<Section>,
}

impl View {
    fn new(snapshot: &Snapshot, rates: Option<Rates>, n: usize) -> Self {
        let live = &snapshot.live;
        let s = &live.stats;
        let daemon = match &snapshot.daemon {
            Some(d) => format!(
                "daemon: running (pid {}){}",
                d.pid,
                if d.dry_run { ", DRY RUN" } else { "" }
            ),
            None => "daemon: not running (pinned rules still enforced)".to_string(),
        };
        let journal = match &live.journal.error {
            None => "journal: ok".to_string(),
            Some(e) => format!("journal: DEGRADED ({e})"),
        };
        let policy = match live.zero_window_policy_secs {
            Some(left) => format!(
                "zero-window SYN policy: DROPPING ALL for {}",
                ttl::format_remaining(Duration::from_secs(left))
            ),
            None => "zero-window SYN policy: off".to_string(),
        };
        let rate = rates
            .map(|r| format!(" ({:.0}/s passed, {:.0}/s dropped)", r.passed, r.dropped))
            .unwrap_or_default();
        let header = vec![
            format!(
                "blocker top: {daemon} | probes: {} | {journal}",
                snapshot.probe_mode()
            ),
            format!(
                "packets: {} passed, {} dropped ({} bytes), {} allowlisted, {} malformed{rate}",
                s.passed, s.dropped, s.dropped_bytes, s.allowlisted, s.malformed
            ),
            format!(
                "zero-window SYNs: {} seen, {} dropped | {policy}",
                s.zw_syn, s.zw_syn_dropped
            ),
        ];
        let drops = Section {
            title: "Drops per source".into(),
            headers: vec!["ORIGIN", "FAMILY", "PACKETS", "BYTES"],
            rows: live
                .drops_by_origin()
                .into_iter()
                .map(|((origin, family), (p, b))| {
                    vec![origin, family.to_string(), p.to_string(), b.to_string()]
                })
                .collect(),
        };
        let bans: Vec<_> = live.bans().collect();
        let bans = Section {
            title: format!("Active bans ({})", bans.len()),
            headers: vec!["RULE", "ORIGIN", "TTL LEFT", "PACKETS", "BYTES"],
            rows: bans
                .into_iter()
                .take(n)
                .map(|r| {
                    vec![
                        addr::display(&r.net),
                        r.origin.clone(),
                        r.remaining_secs.map_or_else(
                            || "permanent".to_string(),
                            |s| ttl::format_remaining(Duration::from_secs(s)),
                        ),
                        r.packets.to_string(),
                        r.bytes.to_string(),
                    ]
                })
                .collect(),
        };
        let zw = Section {
            title: format!("Zero-window SYN talkers ({})", live.zero_window.len()),
            headers: vec!["SOURCE", "FAMILY", "SYNS", "LAST SEEN"],
            rows: live
                .zero_window
                .iter()
                .take(n)
                .map(|t| {
                    vec![
                        t.source.to_string(),
                        ip_type(&addr::host(t.source)).to_string(),
                        t.count.to_string(),
                        format!("{}s ago", t.last_seen_secs_ago),
                    ]
                })
                .collect(),
        };
        let verdicts = Section {
            title: "Recent verdicts and refusals".into(),
            headers: vec!["WHEN", "PEER", "ACTION", "OUTCOME", "DETAIL"],
            rows: live
                .verdicts
                .iter()
                .take(n)
                .map(|v| {
                    vec![
                        blocker::clock::rfc3339(blocker::clock::from_unix_secs(v.decided_at)),
                        v.peer.clone(),
                        action_text(&v.action),
                        v.outcome.clone(),
                        v.detail.clone().unwrap_or_default(),
                    ]
                })
                .collect(),
        };
        Self {
            header,
            sections: vec![drops, bans, zw, verdicts],
        }
    }

    fn render(&self, f: &mut ratatui::Frame<'_>) {
        let [top, body] = Layout::vertical([
            Constraint::Length(self.header.len() as u16 + 2),
            Constraint::Min(0),
        ])
        .areas(f.area());
        let header: Vec<Line> = self.header.iter().map(|l| Line::from(l.as_str())).collect();
        f.render_widget(
            Paragraph::new(header).block(Block::bordered().title(" blocker top (q quits) ")),
            top,
        );
        let [upper, lower] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(body);
        let [a, b] = Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)])
            .areas(upper);
        let [c, d] = Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)])
            .areas(lower);
        for (section, area) in self.sections.iter().zip([a, b, c, d]) {
            let widths: Vec<Constraint> = section
                .headers
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let w = section
                        .rows
                        .iter()
                        .filter_map(|r| r.get(i))
                        .map(|c| c.chars().count())
                        .chain([h.len()])
                        .max()
                        .unwrap_or(0);
                    Constraint::Length(w as u16)
                })
                .collect();
            let rows: Vec<Row> = section.rows.iter().map(|r| Row::new(r.clone())).collect();
            let table = Table::new(rows, widths)
                .header(
                    Row::new(section.headers.clone())
                        .style(Style::default().add_modifier(Modifier::BOLD)),
                )
                .block(Block::bordered().title(format!(" {} ", section.title)));
            f.render_widget(table, area);
        }
    }
}

/// A journaled action (JSON of the typed action) as one short phrase.
fn action_text(json: &str) -> String {
    serde_json::from_str::<blocker::council::Action>(json)
        .map(|a| a.to_string())
        .unwrap_or_else(|_| json.to_string())
}
