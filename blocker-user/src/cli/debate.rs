//! `blocker debate`

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use blocker::debate;
use serde::Serialize;

use super::{
    Context, CouncilArgs, UsageError, output,
    transcript::{self, Heading, VerdictView},
};

/// Run one council debate on a Suricata alert (or an incident file) and
/// print the transcript and the verdicts.
///
/// FILE holds eve.json alert lines about one source, an incident as JSON
/// (`blocker debate --json` prints one under "incident"), or a brief
/// (`{"incident": ..., "facts": ...}`). The verdicts go through the guard
/// and, unless --dry-run, into the kernel maps, exactly as the daemon's do;
/// the debate is journaled either way (`blocker debates list`). Works with
/// the offline rule agents and with an LLM council.
///
/// Example: blocker debate --alert alert.json --dry-run
///
/// Example: OPENAI_API_KEY=... blocker debate --alert alert.json --agents llm --model gpt-4o-mini --dry-run
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The alert or incident file ("-" for standard input).
    #[arg(long, value_name = "FILE")]
    alert: PathBuf,
    /// Check verdicts with the guard and log them; touch no map.
    #[arg(long)]
    dry_run: bool,
    /// Also print every system prompt, prompt and reply.
    #[arg(long)]
    prompts: bool,
    /// The report (incident, facts, transcript, outcomes) as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    council: CouncilArgs,
}

#[derive(Serialize)]
struct Verdicts<'a> {
    #[serde(flatten)]
    report: &'a debate::Report,
    verdicts: &'a [VerdictView],
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let mut config = ctx.config.clone();
    args.council.apply(&mut config)?;
    let text = if args.alert.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(&args.alert)
            .with_context(|| format!("reading {}", args.alert.display()))?
    };
    let input = debate::parse_input(&text, config.incidents.max_evidence)
        .map_err(|e| UsageError(format!("{}: {e}", args.alert.display())))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(async {
        let cancel = tokio_util::sync::CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("interrupted: cancelling the debate");
                on_signal.cancel();
            }
        });
        debate::run(&config, input, args.dry_run, cancel).await
    })?;
    let verdicts: Vec<VerdictView> = report
        .debate
        .passed
        .iter()
        .zip(&report.outcomes)
        .map(|(d, o)| VerdictView {
            action: serde_json::to_value(&d.action).unwrap_or_default(),
            justification: blocker::text::clean_justification(&d.justification),
            outcome: o.outcome.to_string(),
            detail: o.detail.clone(),
            rule_id: o.rule_id,
        })
        .collect();
    if args.json {
        output::json(&Verdicts {
            report: &report,
            verdicts: &verdicts,
        })?;
    } else {
        let i = &report.incident;
        let kinds: Vec<String> = i
            .by_kind
            .iter()
            .map(|(k, n)| format!("{} ×{n}", k.as_str()))
            .collect();
        println!(
            "Incident #{}: {} alert(s) about {}: {}",
            i.id,
            i.alert_count,
            if i.is_global() {
                "all sources".to_string()
            } else {
                i.peer.to_string()
            },
            kinds.join(", ")
        );
        for a in i.evidence.iter().filter_map(|a| a.ids.as_ref()) {
            println!(
                "  IDS rule {} (severity {}): {:?}",
                a.signature_id, a.severity, a.signature
            );
        }
        print!(
            "{}",
            transcript::render(
                &report.debate,
                &verdicts,
                &Heading {
                    debate_id: report.debate_id,
                    incident_id: Some(report.incident.id as i64),
                },
                args.prompts
            )
        );
        if args.dry_run {
            println!("\n(dry run: no map was touched)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
