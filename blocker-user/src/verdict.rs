//! From a passed verdict to the maps and the journal: one path for the
//! daemon and `blocker debate`. The guard checks each verdict, the enforcer
//! applies it (unless a dry run), and the outcome is journaled.

use std::time::Duration;

use blocker_common::{config as slot, reason};
use serde::Serialize;
use tracing::{info, warn};

use crate::{
    addr, clock,
    council::{Action, Debate, Draft},
    evidence::alert::AlertKind,
    guard::{self, Guard},
    incident::IncidentView,
    kernel::maps::RuleTables,
    rule::List,
    state::{
        enforcer::{Change, Enforcer},
        journal::{Store, VerdictRecord},
    },
};

/// What became of a verdict, for the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// applied, refused, dry-run or failed.
    pub outcome: &'static str,
    /// The guard's reason, or the error.
    pub detail: Option<String>,
    /// The rules row an applied block wrote.
    pub rule_id: Option<i64>,
    /// Why it was refused or failed, as a bounded name (a guard refusal's
    /// kind, `table-full`, `journal-unavailable`, ...): a metrics label.
    #[serde(skip)]
    pub reason: Option<&'static str>,
}

impl Outcome {
    pub fn new(outcome: &'static str, detail: Option<String>) -> Self {
        Self {
            outcome,
            detail,
            rule_id: None,
            reason: None,
        }
    }
}

/// The one path from a debate to the maps, for the daemon and `blocker
/// debate` alike: the guard checks the verdict (its text, then its
/// action), then, unless `enforcer` is `None` (a dry run), the enforcer
/// applies it. Every refusal is logged with its reason; an applied block
/// is counted against the guard's rate here.
pub fn execute<T: RuleTables>(
    enforcer: Option<&mut Enforcer<T>>,
    guard: &mut Guard,
    ctx: &guard::Context<'_>,
    view: &IncidentView,
    draft: &Draft,
    reason_code: u32,
) -> Outcome {
    let action = &draft.action;
    if let Err(refusal) = guard.check_verdict(draft, ctx) {
        warn!(
            "guard refused to {action} (incident #{}): {refusal}",
            view.id
        );
        return Outcome {
            reason: Some(refusal.kind()),
            ..Outcome::new("refused", Some(refusal.to_string()))
        };
    }
    let Some(enforcer) = enforcer else {
        info!("dry run: would {action} (incident #{})", view.id);
        return Outcome::new("dry-run", None);
    };
    let justification = crate::text::clean_justification(&draft.justification);
    let mut rule_id = None;
    let result: Result<(), (&'static str, String)> = match action {
        Action::Block { target, ttl_secs } => enforcer
            .add(&Change {
                list: List::Block,
                net: *target,
                ttl: Some(Duration::from_secs(*ttl_secs)),
                reason: &justification,
                reason_code,
                source: "council",
            })
            .map(|applied| {
                rule_id = Some(applied.record_id);
                guard.record_ban();
            })
            .map_err(|e| (e.kind(), e.to_string())),
        Action::Unblock { target } => enforcer
            .remove(List::Block, *target, "council")
            .map(|_| {
                info!(
                    "verdict applied: unblocked {} (incident #{})",
                    addr::display(target),
                    view.id
                )
            })
            .map_err(|e| (e.kind(), e.to_string())),
        Action::Watch { target, ttl_secs } => {
            info!(
                "verdict: watching {target} for {} (incident #{}; no map change)",
                crate::ttl::format_remaining(Duration::from_secs(*ttl_secs)),
                view.id
            );
            Ok(())
        }
        Action::ZeroWindowSynPolicy { enable, ttl_secs } => {
            let until = if *enable {
                clock::expiry_from_now(Some(Duration::from_secs(*ttl_secs)))
            } else {
                0
            };
            enforcer
                .set_setting(slot::ZW_DROP_UNTIL_NS, until)
                .map(|()| info!("verdict applied: {action} (incident #{})", view.id))
                .map_err(|e| ("map-error", e.to_string()))
        }
    };
    match result {
        Ok(()) => Outcome {
            outcome: "applied",
            detail: None,
            rule_id,
            reason: None,
        },
        Err((kind, e)) => {
            warn!("verdict failed: {action} (incident #{}): {e}", view.id);
            Outcome {
                reason: Some(kind),
                ..Outcome::new("failed", Some(e))
            }
        }
    }
}

/// Journals a debate and what became of each verdict, synchronously (the
/// daemon batches the same records in the background); the debate's id.
pub fn journal(
    store: &mut Store,
    view: &IncidentView,
    debate: &Debate,
    outcomes: &[Outcome],
) -> Option<i64> {
    let debate_id = store
        .record_debate(view.id, debate)
        .map_err(|e| warn!("could not journal the debate: {e}"))
        .ok();
    for (draft, o) in debate.passed.iter().zip(outcomes) {
        let _ = store
            .record_verdict(&VerdictRecord {
                debate_id,
                incident_id: Some(view.id),
                peer: view.peer,
                action: &draft.action,
                justification: &crate::text::clean_justification(&draft.justification),
                outcome: o.outcome,
                detail: o.detail.as_deref(),
                rule_id: o.rule_id,
            })
            .map_err(|e| warn!("could not journal the verdict: {e}"));
    }
    debate_id
}

/// The reason code stored with a council ban, from the incident's evidence.
pub fn reason_code(view: &IncidentView) -> u32 {
    let kernel = [
        AlertKind::TreasonRetransmit,
        AlertKind::TreasonProbe,
        AlertKind::ZeroWindowSeen,
        AlertKind::KernelLog,
    ]
    .iter()
    .any(|k| view.count(*k) > 0);
    let syn = view.count(AlertKind::ZeroWindowSyn) > 0;
    let ids = view.count(AlertKind::Ids) > 0;
    match (kernel, syn, ids) {
        (true, false, false) => reason::TREASON,
        (false, true, false) => reason::ZERO_WINDOW_SYN,
        (false, false, true) => reason::IDS,
        _ => reason::COUNCIL,
    }
}
