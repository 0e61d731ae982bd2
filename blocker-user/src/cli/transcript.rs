//! A debate, printed for people: like MAD-Shield's console output (who
//! proposed what, who approved or objected and why, what passed), plus what
//! the seed never had: what the guard made of each verdict, the cost, and
//! every rejected reply with its reason.

use std::fmt::Write as _;

use blocker::council::{Action, Consensus, Debate, Proposal, Stance, TurnRecord};
use serde::Serialize;

/// A verdict and what became of it.
#[derive(Clone, Debug, Serialize)]
pub struct VerdictView {
    pub action: serde_json::Value,
    pub justification: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub rule_id: Option<i64>,
}

/// Header facts that are not part of the debate itself.
pub struct Heading {
    pub debate_id: Option<i64>,
    pub incident_id: Option<i64>,
}

/// Longest rejected reply quoted.
const QUOTE: usize = 240;

fn secs(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.len() > max {
        format!("{}…", blocker::council::truncate(&flat, max))
    } else {
        flat
    }
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

fn turn_line(t: &TurnRecord) -> String {
    let mut s = format!(
        "{} ({}, {}",
        t.agent,
        t.kind,
        secs(t.finished_ms.saturating_sub(t.started_ms))
    );
    if t.usage.calls > 0 {
        let _ = write!(
            s,
            ", {} call{}, {}+{} tokens",
            t.usage.calls,
            if t.usage.calls == 1 { "" } else { "s" },
            t.usage.prompt_tokens,
            t.usage.completion_tokens
        );
    }
    s.push(')');
    s
}

fn stance(s: Stance) -> &'static str {
    match s {
        Stance::Approve => "APPROVE",
        Stance::Object => "OBJECT",
        Stance::Abstain => "ABSTAIN",
    }
}

fn exchanges(out: &mut String, t: &TurnRecord, prompts: bool) {
    for (i, x) in t.exchanges.iter().enumerate() {
        if prompts {
            let _ = writeln!(out, "      prompt {}:", i + 1);
            out.push_str(&indent(&x.prompt, "        | "));
            let _ = writeln!(out, "      reply {}:", i + 1);
            out.push_str(&indent(&x.reply, "        | "));
        }
        if let Some(why) = &x.rejected {
            let _ = writeln!(out, "      reply {} REJECTED: {why}", i + 1);
            if !prompts {
                let _ = writeln!(out, "        > {}", one_line(&x.reply, QUOTE));
            }
        }
    }
}

/// Renders `d` (and its verdicts) as text.
pub fn render(d: &Debate, verdicts: &[VerdictView], h: &Heading, prompts: bool) -> String {
    let mut out = String::new();
    let subject = if d.peer.is_unspecified() {
        "all sources (global incident)".to_string()
    } else {
        d.peer.to_string()
    };
    let _ = write!(out, "Debate");
    if let Some(id) = h.debate_id {
        let _ = write!(out, " #{id}");
    }
    if let Some(i) = h.incident_id {
        let _ = write!(out, " on incident #{i}");
    }
    let _ = writeln!(out, ": {subject}");
    let members: Vec<String> = if d.members.is_empty() {
        d.agents.clone()
    } else {
        d.members
            .iter()
            .map(|m| match &m.model {
                Some(model) => format!("{} ({}, {model})", m.name, m.kind),
                None => format!("{} ({})", m.name, m.kind),
            })
            .collect()
    };
    let _ = writeln!(
        out,
        "  council: {}; consensus: {}",
        members.join(", "),
        match d.consensus {
            Consensus::Unanimous => "unanimous".to_string(),
            Consensus::Quorum { min_approvals } =>
                format!("quorum of {min_approvals}, no objection"),
        }
    );
    let _ = writeln!(
        out,
        "  {} round(s), stopped: {}; {} call(s), {} prompt + {} completion tokens; {}",
        d.rounds,
        serde_json::to_value(d.stop)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        d.usage.calls,
        d.usage.prompt_tokens,
        d.usage.completion_tokens,
        secs(d.wall_ms)
    );
    if prompts {
        for m in &d.members {
            if let Some(p) = &m.system_prompt {
                let _ = writeln!(out, "  system prompt of {}:", m.name);
                out.push_str(&indent(p, "    | "));
            }
        }
    }

    let rounds = d
        .turns
        .iter()
        .map(|t| t.round)
        .max()
        .unwrap_or(0)
        .max(d.rounds);
    for round in 1..=rounds {
        let turns: Vec<&TurnRecord> = d.turns.iter().filter(|t| t.round == round).collect();
        if turns.is_empty() {
            continue;
        }
        let judge = turns.iter().all(|t| t.agent == "judge") && round > d.rounds;
        let start = turns.iter().map(|t| t.started_ms).min().unwrap_or(0);
        let end = turns.iter().map(|t| t.finished_ms).max().unwrap_or(0);
        let what = if judge {
            "judge"
        } else if round == 1 {
            "proposals"
        } else {
            "votes"
        };
        let _ = writeln!(
            out,
            "\nRound {round}: {what} ({})",
            secs(end.saturating_sub(start))
        );
        for t in turns {
            let _ = write!(out, "  {}", turn_line(t));
            match &t.error {
                Some(e) => {
                    let _ = writeln!(out, " ABSTAINED: {e}");
                }
                None => out.push('\n'),
            }
            if round == 1 && !judge {
                let mine: Vec<&Proposal> = d
                    .proposals
                    .iter()
                    .filter(|p| p.author == t.agent && p.round == 1)
                    .collect();
                if mine.is_empty() && t.error.is_none() {
                    let _ = writeln!(out, "    no proposals");
                }
                for p in mine {
                    let _ = writeln!(out, "    #{} {}", p.id, p.action);
                    let _ = writeln!(out, "       \"{}\"", one_line(&p.justification, 400));
                }
            } else if !judge {
                if t.error.is_none()
                    && !d
                        .votes
                        .iter()
                        .any(|v| v.round == round && v.voter == t.agent)
                {
                    let _ = writeln!(out, "    (no votes: nothing open but its own proposals)");
                }
                for v in d
                    .votes
                    .iter()
                    .filter(|v| v.round == round && v.voter == t.agent)
                {
                    let _ = writeln!(
                        out,
                        "    #{:<3} {:<8} {}",
                        v.proposal,
                        stance(v.stance),
                        one_line(&v.reason, 300)
                    );
                    if let Some(alt) = d.proposals.iter().find(|p| {
                        p.author == t.agent
                            && p.round == round
                            && p.alternative_to == Some(v.proposal)
                    }) {
                        let _ = writeln!(
                            out,
                            "         alternative #{}: {} \"{}\"",
                            alt.id,
                            alt.action,
                            one_line(&alt.justification, 300)
                        );
                    }
                }
            }
            exchanges(&mut out, t, prompts);
        }
    }

    let _ = writeln!(out, "\nOutcome");
    if d.proposals.is_empty() {
        let _ = writeln!(out, "  nothing was proposed");
    }
    for (p, dec) in d.proposals.iter().zip(&d.decisions) {
        let verdict = if dec.passed {
            if dec.objections == 0 && dec.abstentions == 0 {
                "FULLY APPROVED".to_string()
            } else {
                "PASSED".to_string()
            }
        } else {
            "not passed".to_string()
        };
        let _ = writeln!(
            out,
            "  #{} {} (by {}): {verdict} ({} approve, {} object, {} abstain)",
            p.id, p.action, p.author, dec.approvals, dec.objections, dec.abstentions
        );
    }
    if d.decisions.is_empty() && !d.proposals.is_empty() {
        let _ = writeln!(
            out,
            "  no tally: the debate was {}",
            if d.stop == blocker::council::Stop::Cancelled {
                "cancelled"
            } else {
                "cut short"
            }
        );
    }

    if let Some(f) = &d.fallback {
        let _ = writeln!(out, "\nFallback: {}", one_line(&f.reason, 600));
        if let Some(fd) = &f.debate {
            for p in &fd.proposals {
                let passed = fd.decisions.iter().any(|x| x.proposal == p.id && x.passed);
                let _ = writeln!(
                    out,
                    "  offline #{} {} (by {}): {} — {}",
                    p.id,
                    p.action,
                    p.author,
                    if passed { "PASSED" } else { "not passed" },
                    one_line(&p.justification, 300)
                );
            }
        }
    }

    let _ = writeln!(out, "\nVerdicts (after the guard)");
    if verdicts.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for v in verdicts {
        let action = serde_json::from_value::<Action>(v.action.clone())
            .map(|a| a.to_string())
            .unwrap_or_else(|_| v.action.to_string());
        let result = match (v.outcome.as_str(), &v.detail, v.rule_id) {
            ("refused", Some(why), _) => format!("REFUSED by the guard: {why}"),
            ("applied", _, Some(id)) => format!("applied (rule #{id})"),
            ("dry-run", _, _) => "dry run: not applied".to_string(),
            (o, Some(why), _) => format!("{o}: {why}"),
            (o, None, _) => o.to_string(),
        };
        let _ = writeln!(out, "  {action}: {result}");
        let _ = writeln!(out, "    \"{}\"", one_line(&v.justification, 400));
    }
    if let Some(s) = &d.summary {
        let _ = writeln!(
            out,
            "\nJudge's summary (advisory, decides nothing)\n  {}",
            one_line(s, 1000)
        );
    }
    out
}
