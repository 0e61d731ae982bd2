//! `blocker debates list` and `blocker debates show ID`

use std::process::ExitCode;

use blocker::state::journal::Store;
use serde::Serialize;

use super::{
    Context, UsageError, output,
    transcript::{self, Heading, VerdictView},
};

/// Show the council's debates from the journal: the transcript (proposals,
/// votes, rejected replies, outcome), the cost, and what the guard made of
/// every verdict.
///
/// Example: blocker debates list
///
/// Example: blocker debates show 12 --prompts
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List debates, newest first: rounds, calls, tokens, wall time, result.
    ///
    /// Example: blocker debates list --limit 50 --json
    List {
        /// Show at most this many.
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: usize,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print one debate's transcript and verdicts.
    ///
    /// Example: blocker debates show 12
    Show {
        /// The debate's id (from `blocker debates list`).
        id: i64,
        /// Also print every system prompt, prompt and reply.
        #[arg(long)]
        prompts: bool,
        /// The whole transcript as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct ShowView<'a> {
    id: i64,
    incident_id: Option<i64>,
    debate: &'a blocker::council::Debate,
    verdicts: &'a [VerdictView],
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let store = Store::open_in(&ctx.state_dir)?;
    match args.command {
        Command::List { limit, json } => {
            let rows = store.debates(limit)?;
            if json {
                output::json(&rows)?;
                return Ok(ExitCode::SUCCESS);
            }
            if rows.is_empty() {
                println!(
                    "no debates yet (they are journaled by `blocker run` and `blocker debate`)"
                );
                return Ok(ExitCode::SUCCESS);
            }
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.incident_id.map(|i| i.to_string()).unwrap_or_default(),
                        r.peer.clone(),
                        blocker::clock::rfc3339(
                            std::time::UNIX_EPOCH
                                + std::time::Duration::from_secs(r.started_at.max(0) as u64),
                        ),
                        r.rounds.to_string(),
                        r.calls.to_string(),
                        format!("{}/{}", r.prompt_tokens, r.completion_tokens),
                        format!("{:.2}s", r.wall_ms as f64 / 1000.0),
                        r.stop.clone(),
                        r.passed.to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                output::table(
                    &[
                        "ID",
                        "INCIDENT",
                        "PEER",
                        "STARTED",
                        "ROUNDS",
                        "CALLS",
                        "TOKENS IN/OUT",
                        "WALL",
                        "STOP",
                        "PASSED"
                    ],
                    &table
                )
            );
        }
        Command::Show { id, prompts, json } => {
            let Some((debate, rows)) = store.debate(id)? else {
                return Err(
                    UsageError(format!("no debate #{id} (see `blocker debates list`)")).into(),
                );
            };
            let incident_id = store.debates_incident(id)?;
            let verdicts: Vec<VerdictView> = rows
                .into_iter()
                .map(|r| VerdictView {
                    action: serde_json::from_str(&r.action)
                        .unwrap_or(serde_json::Value::String(r.action)),
                    justification: r.justification,
                    outcome: r.outcome,
                    detail: r.detail,
                    rule_id: r.rule_id,
                })
                .collect();
            if json {
                output::json(&ShowView {
                    id,
                    incident_id,
                    debate: &debate,
                    verdicts: &verdicts,
                })?;
            } else {
                print!(
                    "{}",
                    transcript::render(
                        &debate,
                        &verdicts,
                        &Heading {
                            debate_id: Some(id),
                            incident_id,
                        },
                        prompts
                    )
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
