//! Debates logged the way an operator reads them.

use tracing::info;

use crate::{
    council::{self, Debate, Stance},
    incident::IncidentView,
};

/// Logs a debate the way an operator reads it: evidence, proposals, votes,
/// what passed.
pub(super) fn narrate(view: &IncidentView, d: &Debate) {
    // Kinds with the signatures seen (e.g. which spelling of the kernel's
    // treason message), so an operator sees what the evidence was.
    let kinds: Vec<String> = view
        .by_kind
        .iter()
        .map(|(k, n)| {
            let mut sigs: Vec<&str> = view
                .evidence
                .iter()
                .filter(|a| a.kind == *k)
                .map(|a| a.signature.as_str())
                .collect();
            sigs.dedup();
            format!("{} ×{n} [{}]", k.as_str(), sigs.join(", "))
        })
        .collect();
    let subject = if view.is_global() {
        "all sources".to_string()
    } else {
        view.peer.to_string()
    };
    info!(
        "council on incident #{} ({subject}): {} alert(s): {}",
        view.id,
        view.alert_count,
        kinds.join(", ")
    );
    for p in &d.proposals {
        info!(
            "  proposal #{} by {}: {} — {}",
            p.id, p.author, p.action, p.justification
        );
        let votes: Vec<String> = d
            .votes
            .iter()
            .filter(|v| v.proposal == p.id)
            .fold(Vec::<&council::Vote>::new(), |mut acc, v| {
                // Latest vote per agent.
                acc.retain(|x| x.voter != v.voter);
                acc.push(v);
                acc
            })
            .iter()
            .map(|v| {
                format!(
                    "{} {} ({})",
                    v.voter,
                    match v.stance {
                        Stance::Approve => "approves",
                        Stance::Object => "objects",
                        Stance::Abstain => "abstains",
                    },
                    v.reason
                )
            })
            .collect();
        if !votes.is_empty() {
            info!("    {}", votes.join("; "));
        }
    }
    if d.passed.is_empty() {
        info!(
            "  outcome: nothing passed ({} round(s), {:?}, {} ms)",
            d.rounds, d.stop, d.wall_ms
        );
    } else {
        let passed: Vec<String> = d.passed.iter().map(|p| p.action.to_string()).collect();
        info!(
            "  outcome: {} ({} round(s), {} ms)",
            passed.join("; "),
            d.rounds,
            d.wall_ms
        );
    }
}
