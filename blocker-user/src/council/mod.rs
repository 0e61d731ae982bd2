//! The council: agents with roles debate an incident and agree on typed
//! actions. MAD-Shield's good idea (specialised "lawyers" argue until all
//! approve) without its flaws: actions are typed data, never shell text;
//! consensus is computed here from structured votes, never parsed from
//! prose; agents of a round run concurrently; and whatever passes still
//! goes through the guard before any map is touched.
//!
//! Protocol:
//! - round 1: every agent proposes actions with a justification;
//! - rounds 2..=max: every agent approves or objects to every open proposal
//!   (not its own), an objection may carry an alternative proposal, which is
//!   voted on in the next round;
//! - the debate stops when a round changes nothing, or at the round limit;
//! - a proposal passes under the [`Consensus`] rule, computed from each
//!   agent's latest vote;
//! - an optional [`Judge`] may then summarise the debate; it runs after the
//!   tally and cannot change what passed.

pub mod budget;
pub mod config;
pub mod facts;
pub mod llm;
pub mod prompt;
pub mod reply;
pub mod rules;

use std::{
    collections::BTreeMap,
    fmt,
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use facts::{Brief, Facts};

use crate::addr;

/// What the council may decide. Typed, bounded, and nothing else: there is
/// no variant that carries a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Drop everything from `target` for `ttl_secs`.
    Block {
        #[serde(with = "net_serde")]
        target: IpNet,
        ttl_secs: u64,
    },
    /// Remove a block rule for exactly `target`.
    Unblock {
        #[serde(with = "net_serde")]
        target: IpNet,
    },
    /// Keep an eye on `target` (recorded, no map change).
    Watch { target: IpAddr, ttl_secs: u64 },
    /// Drop every zero-window SYN (from any non-allowlisted source) for
    /// `ttl_secs`, or switch that off: the answer to spoofed floods where
    /// per-source bans are useless.
    ZeroWindowSynPolicy { enable: bool, ttl_secs: u64 },
}

impl Action {
    /// The action's name, as in its JSON `type` (a metrics label).
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Block { .. } => "block",
            Self::Unblock { .. } => "unblock",
            Self::Watch { .. } => "watch",
            Self::ZeroWindowSynPolicy { .. } => "zero_window_syn_policy",
        }
    }

    /// The prefix this action names, if any.
    pub fn target_net(&self) -> Option<IpNet> {
        match self {
            Self::Block { target, .. } | Self::Unblock { target } => Some(*target),
            Self::Watch { target, .. } => Some(addr::host(*target)),
            Self::ZeroWindowSynPolicy { .. } => None,
        }
    }

    /// Two actions about the same thing (same target, or both the policy).
    fn same_subject(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::ZeroWindowSynPolicy { .. }, Self::ZeroWindowSynPolicy { .. }) => true,
            _ => self.target_net().is_some() && self.target_net() == other.target_net(),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |s: &u64| crate::ttl::format_remaining(Duration::from_secs(*s));
        match self {
            Self::Block { target, ttl_secs } => {
                write!(f, "block {} for {}", addr::display(target), d(ttl_secs))
            }
            Self::Unblock { target } => write!(f, "unblock {}", addr::display(target)),
            Self::Watch { target, ttl_secs } => write!(f, "watch {target} for {}", d(ttl_secs)),
            Self::ZeroWindowSynPolicy {
                enable: true,
                ttl_secs,
            } => {
                write!(f, "drop all zero-window SYNs for {}", d(ttl_secs))
            }
            Self::ZeroWindowSynPolicy { enable: false, .. } => {
                write!(f, "stop dropping zero-window SYNs")
            }
        }
    }
}

/// Serde for prefixes that also accepts a bare address (`198.51.100.7`) and
/// refuses host bits, through the one address parser.
pub mod net_serde {
    use ipnet::IpNet;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &IpNet, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&n.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let s = String::deserialize(d)?;
        crate::addr::parse_net(&s).map_err(serde::de::Error::custom)
    }
}

/// An action an agent puts forward, with its reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    pub action: Action,
    pub justification: String,
}

/// A proposal on the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: u32,
    pub author: String,
    pub round: u32,
    pub action: Action,
    pub justification: String,
    /// The proposal this one was offered as an alternative to.
    pub alternative_to: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stance {
    Approve,
    Object,
    Abstain,
}

/// An agent's vote on one proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ballot {
    pub proposal: u32,
    pub stance: Stance,
    pub reason: String,
    /// With an objection: what the agent would approve instead.
    pub alternative: Option<Draft>,
}

/// A recorded vote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub round: u32,
    pub voter: String,
    pub proposal: u32,
    pub stance: Stance,
    pub reason: String,
}

/// Token and call accounting of one agent turn (zero for rule agents).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub calls: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Self) {
        self.calls += o.calls;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
    }
}

/// One request/reply an agent exchanged (LLM agents), for the transcript.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    pub prompt: String,
    pub reply: String,
    /// Why the reply was rejected, if it was.
    pub rejected: Option<String>,
}

/// What an agent returns from a turn.
#[derive(Clone, Debug, Default)]
pub struct Turn<T> {
    pub output: T,
    pub usage: Usage,
    pub exchanges: Vec<Exchange>,
}

impl<T> Turn<T> {
    pub fn plain(output: T) -> Self {
        Self {
            output,
            usage: Usage::default(),
            exchanges: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Failed(String),
    #[error("no valid reply: {0}")]
    Invalid(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// `[council.llm.budget]` ran out: no call was made.
    #[error("{0}")]
    Budget(String),
}

/// An agent failed for the round; it counts as abstaining. The exchanges it
/// made before failing are kept for the transcript.
#[derive(Debug)]
pub struct TurnFailure {
    pub error: AgentError,
    pub usage: Usage,
    pub exchanges: Vec<Exchange>,
}

impl From<AgentError> for TurnFailure {
    fn from(error: AgentError) -> Self {
        Self {
            error,
            usage: Usage::default(),
            exchanges: Vec::new(),
        }
    }
}

/// A council member: deterministic rules or an LLM, behind one trait.
#[async_trait]
pub trait Agent: Send + Sync {
    /// The role name (host, kernel, jail, filter, ...).
    fn name(&self) -> &str;
    /// "rules" or "llm", for the transcript.
    fn kind(&self) -> &'static str;
    /// The model behind an LLM agent, for the transcript.
    fn model(&self) -> Option<&str> {
        None
    }
    /// The system prompt of an LLM agent, kept once per debate in the
    /// transcript rather than in every exchange.
    fn system_prompt(&self) -> Option<&str> {
        None
    }
    /// Round 1: what this agent proposes.
    async fn propose(&self, brief: &Brief) -> Result<Turn<Vec<Draft>>, TurnFailure>;
    /// Later rounds: a ballot for open proposals. `votes` holds everyone's
    /// latest votes so far.
    async fn review(
        &self,
        brief: &Brief,
        round: u32,
        open: &[Proposal],
        votes: &[Vote],
    ) -> Result<Turn<Vec<Ballot>>, TurnFailure>;
}

/// Summarises a finished debate for people. It sees the outcome only after
/// the tally, so it can never decide what passes.
#[async_trait]
pub trait Judge: Send + Sync {
    async fn summarise(&self, brief: &Brief, debate: &Debate) -> Result<Turn<String>, TurnFailure>;
}

/// Longest judge summary kept.
pub const MAX_SUMMARY: usize = 1000;

/// When a proposal passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum Consensus {
    /// Every agent other than the author approved (an abstention or a
    /// missing vote is not approval).
    #[default]
    Unanimous,
    /// At least `min_approvals` approvals from agents other than the author,
    /// and no objection.
    Quorum { min_approvals: usize },
}

/// Why a debate stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    NoProposals,
    /// A review round changed no vote and added no proposal.
    Converged,
    MaxRounds,
    Cancelled,
    /// The debate's overall deadline passed.
    Deadline,
    /// The LLM budget was exhausted before the debate: no call was made.
    Budget,
}

/// One agent's turn in a round, for the transcript.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TurnRecord {
    pub agent: String,
    pub kind: String,
    pub round: u32,
    /// Milliseconds since the debate started.
    pub started_ms: u64,
    pub finished_ms: u64,
    pub usage: Usage,
    pub error: Option<String>,
    pub exchanges: Vec<Exchange>,
}

/// The tally of one proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub proposal: u32,
    pub passed: bool,
    pub approvals: usize,
    pub objections: usize,
    pub abstentions: usize,
}

/// Who sat on the council, for the transcript.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
}

/// A whole debate: the transcript and its outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Debate {
    pub peer: IpAddr,
    pub agents: Vec<String>,
    #[serde(default)]
    pub members: Vec<Member>,
    pub consensus: Consensus,
    pub proposals: Vec<Proposal>,
    pub votes: Vec<Vote>,
    pub turns: Vec<TurnRecord>,
    pub decisions: Vec<Decision>,
    /// Actions that passed, after conflicts between them were resolved.
    pub passed: Vec<Draft>,
    pub rounds: u32,
    pub stop: Stop,
    pub usage: Usage,
    pub wall_ms: u64,
    /// The judge's summary, if a judge sat (advisory only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Why this council could not conclude, and what the fallback did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<FallbackRecord>,
}

/// An LLM council that could not conclude, and the offline council's
/// debate that decided instead (if one did).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FallbackRecord {
    pub reason: String,
    /// The offline council's debate; `None`: no fallback ran (configured
    /// off, or no confirmed evidence to act on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debate: Option<Box<Debate>>,
}

tokio::task_local! {
    /// When the debate an agent's call belongs to must end (set around
    /// every debate; its agents run on the debate's task).
    pub static DEBATE_DEADLINE: tokio::time::Instant;
}

pub struct Council {
    agents: Vec<Arc<dyn Agent>>,
    consensus: Consensus,
    max_rounds: u32,
    judge: Option<Arc<dyn Judge>>,
    cancel: CancellationToken,
    deadline: Option<Duration>,
    fallback: Option<Arc<Council>>,
    budget: Option<Arc<budget::Budget>>,
}

impl Council {
    pub fn new(agents: Vec<Arc<dyn Agent>>, consensus: Consensus, max_rounds: u32) -> Self {
        Self {
            agents,
            consensus,
            max_rounds: max_rounds.max(2),
            judge: None,
            cancel: CancellationToken::new(),
            deadline: None,
            fallback: None,
            budget: None,
        }
    }

    /// The LLM budget this council's endpoint takes its calls from: once it
    /// is exhausted, debates are not held (the fallback decides).
    pub fn with_budget(mut self, budget: Arc<budget::Budget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The LLM budget's use, for `blocker status` (`None`: no LLM).
    pub fn budget_status(&self) -> Option<budget::BudgetStatus> {
        self.budget.as_ref().map(|b| b.status())
    }

    /// Ends every debate after `deadline` (nothing passes from an
    /// unfinished one; the fallback may decide).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// When this council cannot conclude (deadline, failed calls, budget,
    /// abstentions) about an incident with confirmed evidence, `fallback`
    /// (the offline rules) decides, and the transcript says why.
    pub fn with_fallback(mut self, fallback: Council) -> Self {
        self.fallback = Some(Arc::new(fallback));
        self
    }

    /// Runs a debate on `brief`, then the fallback if this council could
    /// not conclude.
    pub async fn deliberate(&self, brief: &Brief) -> Debate {
        let exhausted = self.budget.as_ref().and_then(|b| b.exhausted());
        let mut debate = match &exhausted {
            Some(_) => {
                let mut d = self.empty_debate(brief);
                d.stop = Stop::Budget;
                d
            }
            None => self.debate(brief).await,
        };
        let reason = match exhausted {
            Some(e) => Some(format!("no LLM debate: {e}")),
            None => inconclusive(&debate),
        };
        let Some(reason) = reason else {
            return debate;
        };
        if let Some(b) = &self.budget
            && (debate.stop == Stop::Budget || b.exhausted().is_some())
        {
            b.refused_debate();
        }
        if self.fallback.is_none() && !self.agents.iter().any(|a| a.kind() == "llm") {
            return debate;
        }
        let actionable = brief.incident.is_global() || !brief.incident.confirmed().is_empty();
        let record = match &self.fallback {
            Some(rules) if actionable => {
                warn!(
                    "debate about {}: {reason}; fell back to the offline council",
                    debate.peer
                );
                let d = Box::pin(rules.debate(brief)).await;
                debate.passed = d.passed.clone();
                FallbackRecord {
                    reason: format!("{reason}; fell back to the offline council"),
                    debate: Some(Box::new(d)),
                }
            }
            Some(_) => FallbackRecord {
                reason: format!(
                    "{reason}; no fallback: the evidence could have been forged, and the offline council bans only on confirmed evidence"
                ),
                debate: None,
            },
            None => FallbackRecord {
                reason: format!("{reason}; no fallback ([council] fallback = \"none\")"),
                debate: None,
            },
        };
        debate.fallback = Some(record);
        debate
    }

    /// Adds a judge that summarises each debate after the tally.
    pub fn with_judge(mut self, judge: Arc<dyn Judge>) -> Self {
        self.judge = Some(judge);
        self
    }

    /// Debates stop (nothing passes) once `cancel` is cancelled; agents'
    /// calls in flight are dropped.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    pub fn max_rounds(&self) -> u32 {
        self.max_rounds
    }

    pub fn agent_names(&self) -> Vec<String> {
        self.agents.iter().map(|a| a.name().to_string()).collect()
    }

    /// `name (kind[, model])` of every member, for logs.
    pub fn describe(&self) -> Vec<String> {
        self.agents
            .iter()
            .map(|a| match a.model() {
                Some(m) => format!("{} ({}, {m})", a.name(), a.kind()),
                None => format!("{} ({})", a.name(), a.kind()),
            })
            .collect()
    }

    /// A debate of this council on `brief` before its first round.
    fn empty_debate(&self, brief: &Brief) -> Debate {
        Debate {
            peer: brief.incident.peer,
            agents: self.agent_names(),
            members: self
                .agents
                .iter()
                .map(|a| Member {
                    name: a.name().to_string(),
                    kind: a.kind().to_string(),
                    model: a.model().map(str::to_string),
                    system_prompt: a.system_prompt().map(str::to_string),
                })
                .collect(),
            consensus: self.consensus,
            proposals: Vec::new(),
            votes: Vec::new(),
            turns: Vec::new(),
            decisions: Vec::new(),
            passed: Vec::new(),
            rounds: 1,
            stop: Stop::MaxRounds,
            usage: Usage::default(),
            wall_ms: 0,
            summary: None,
            fallback: None,
        }
    }

    /// One debate of this council's agents on `brief`; its deadline is
    /// visible to the agents' calls ([`DEBATE_DEADLINE`]), which never wait
    /// for a retry that would end past it.
    async fn debate(&self, brief: &Brief) -> Debate {
        let start = Instant::now();
        let deadline = tokio::time::Instant::from_std(start)
            + self.deadline.unwrap_or(Duration::from_secs(365 * 86_400));
        DEBATE_DEADLINE
            .scope(deadline, self.debate_until(brief, start, deadline))
            .await
    }

    async fn debate_until(
        &self,
        brief: &Brief,
        start: Instant,
        deadline: tokio::time::Instant,
    ) -> Debate {
        let ms = |t: Instant| t.duration_since(start).as_millis() as u64;
        let mut debate = self.empty_debate(brief);
        let cancelled = |mut debate: Debate| {
            warn!(
                "debate about {} cancelled in round {}; nothing passes",
                debate.peer, debate.rounds
            );
            debate.stop = Stop::Cancelled;
            debate.wall_ms = ms(Instant::now());
            debate
        };
        let timed_out = |mut debate: Debate| {
            warn!(
                "debate about {} passed its deadline in round {}; nothing of it passes",
                debate.peer, debate.rounds
            );
            debate.stop = Stop::Deadline;
            debate.wall_ms = ms(Instant::now());
            debate
        };

        // Round 1: proposals, all agents at once.
        let round = futures::future::join_all(self.agents.iter().map(|a| async move {
            let t0 = Instant::now();
            let r = a.propose(brief).await;
            (a, t0, Instant::now(), r)
        }));
        let turns = tokio::select! {
            t = round => t,
            () = self.cancel.cancelled() => return cancelled(debate),
            () = tokio::time::sleep_until(deadline) => return timed_out(debate),
        };
        for (agent, t0, t1, result) in turns {
            let drafts = record(&mut debate, agent.as_ref(), 1, ms(t0), ms(t1), result);
            for d in drafts.unwrap_or_default() {
                push_proposal(&mut debate, agent.name(), 1, d, None);
            }
        }
        if debate.proposals.is_empty() {
            debate.stop = Stop::NoProposals;
            debate.wall_ms = ms(Instant::now());
            return debate;
        }

        // Review rounds.
        let mut latest: BTreeMap<(String, u32), Vote> = BTreeMap::new();
        for round in 2..=self.max_rounds {
            debate.rounds = round;
            let open = debate.proposals.clone();
            let votes: Vec<Vote> = latest.values().cloned().collect();
            let calls = futures::future::join_all(self.agents.iter().map(|a| {
                let (open, votes) = (&open, &votes);
                async move {
                    let t0 = Instant::now();
                    let r = a.review(brief, round, open, votes).await;
                    (a, t0, Instant::now(), r)
                }
            }));
            let turns = tokio::select! {
                t = calls => t,
                () = self.cancel.cancelled() => return cancelled(debate),
                () = tokio::time::sleep_until(deadline) => return timed_out(debate),
            };
            let mut changed = false;
            let mut added = false;
            for (agent, t0, t1, result) in turns {
                let Some(ballots) =
                    record(&mut debate, agent.as_ref(), round, ms(t0), ms(t1), result)
                else {
                    continue;
                };
                for b in ballots {
                    let Some(p) = open.iter().find(|p| p.id == b.proposal) else {
                        warn!(
                            "{} voted on unknown proposal #{}; ignored",
                            agent.name(),
                            b.proposal
                        );
                        continue;
                    };
                    if p.author == agent.name() {
                        debug!(
                            "{} may not vote on its own proposal #{}; ignored",
                            agent.name(),
                            p.id
                        );
                        continue;
                    }
                    let vote = Vote {
                        round,
                        voter: agent.name().to_string(),
                        proposal: p.id,
                        stance: b.stance,
                        reason: b.reason.clone(),
                    };
                    let key = (vote.voter.clone(), vote.proposal);
                    if latest.get(&key).is_none_or(|v| v.stance != vote.stance) {
                        changed = true;
                    }
                    latest.insert(key, vote.clone());
                    debate.votes.push(vote);
                    if b.stance == Stance::Object
                        && let Some(alt) = b.alternative
                        && push_proposal(&mut debate, agent.name(), round, alt, Some(p.id))
                    {
                        added = true;
                    }
                }
            }
            // Every agent has voted on every proposal and nothing new was
            // put forward (or nothing changed at all): another round would
            // only repeat this one.
            let complete = debate.proposals.iter().all(|p| {
                debate
                    .agents
                    .iter()
                    .filter(|a| **a != p.author)
                    .all(|a| latest.contains_key(&(a.clone(), p.id)))
            });
            if !added && (complete || !changed) {
                debate.stop = Stop::Converged;
                break;
            }
        }

        let latest: Vec<Vote> = latest.into_values().collect();
        debate.decisions = debate
            .proposals
            .iter()
            .map(|p| tally(p, &latest, &debate.agents, self.consensus))
            .collect();
        let passed: Vec<&Proposal> = debate
            .proposals
            .iter()
            .zip(&debate.decisions)
            .filter(|(_, d)| d.passed)
            .map(|(p, _)| p)
            .collect();
        debate.passed = resolve(&passed);
        if let Some(judge) = &self.judge {
            let t0 = Instant::now();
            let result = tokio::select! {
                r = judge.summarise(brief, &debate) => r,
                () = self.cancel.cancelled() => Err(AgentError::Failed("cancelled".into()).into()),
            };
            let t1 = Instant::now();
            let round = debate.rounds + 1;
            let summary = record_turn(&mut debate, "judge", "llm", round, ms(t0), ms(t1), result);
            debate.summary =
                summary.map(|s| truncate(&crate::text::sanitize_text(&s), MAX_SUMMARY));
        }
        debate.wall_ms = ms(Instant::now());
        debate
    }
}

/// Why a finished debate could not conclude, if it could not: its
/// deadline passed, or nothing passed for lack of votes rather than
/// because of objections (agents that failed, timed out, ran out of
/// budget or abstained). A debate its agents decided against, or one
/// cancelled by shutdown, concluded.
pub fn inconclusive(d: &Debate) -> Option<String> {
    if d.stop == Stop::Cancelled || !d.passed.is_empty() {
        return None;
    }
    let failures: Vec<String> = d
        .turns
        .iter()
        .filter_map(|t| t.error.as_ref().map(|e| format!("{}: {e}", t.agent)))
        .collect();
    let first = failures.first().cloned().unwrap_or_default();
    if d.stop == Stop::Deadline {
        return Some(format!(
            "the debate passed its deadline after {} ms in round {}",
            d.wall_ms, d.rounds
        ));
    }
    let unvoted = d
        .decisions
        .iter()
        .any(|x| x.objections == 0 && x.abstentions > 0);
    let nobody_proposed = d.proposals.is_empty() && !failures.is_empty();
    (unvoted || nobody_proposed).then(|| {
        format!(
            "the council could not conclude ({} failed or abstaining turn(s){})",
            failures.len(),
            if first.is_empty() {
                String::new()
            } else {
                format!("; first: {first}")
            }
        )
    })
}

/// `s` cut to at most `max` bytes at a char boundary.
pub fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Records an agent's turn in the transcript; `None` when it failed.
fn record<T>(
    debate: &mut Debate,
    agent: &dyn Agent,
    round: u32,
    started_ms: u64,
    finished_ms: u64,
    result: Result<Turn<T>, TurnFailure>,
) -> Option<T> {
    record_turn(
        debate,
        agent.name(),
        agent.kind(),
        round,
        started_ms,
        finished_ms,
        result,
    )
}

fn record_turn<T>(
    debate: &mut Debate,
    name: &str,
    kind: &str,
    round: u32,
    started_ms: u64,
    finished_ms: u64,
    result: Result<Turn<T>, TurnFailure>,
) -> Option<T> {
    let (output, usage, exchanges, error) = match result {
        Ok(t) => (Some(t.output), t.usage, t.exchanges, None),
        Err(f) => {
            warn!(
                "council agent {name} abstains in round {round}: {}",
                f.error
            );
            (None, f.usage, f.exchanges, Some(f.error.to_string()))
        }
    };
    debate.usage += usage;
    debate.turns.push(TurnRecord {
        agent: name.to_string(),
        kind: kind.to_string(),
        round,
        started_ms,
        finished_ms,
        usage,
        error,
        exchanges,
    });
    output
}

/// Adds a proposal unless the same author already proposed the same action.
/// Returns whether it was added.
fn push_proposal(
    debate: &mut Debate,
    author: &str,
    round: u32,
    draft: Draft,
    alternative_to: Option<u32>,
) -> bool {
    if debate
        .proposals
        .iter()
        .any(|p| p.author == author && p.action == draft.action)
    {
        return false;
    }
    let id = debate.proposals.len() as u32 + 1;
    debate.proposals.push(Proposal {
        id,
        author: author.to_string(),
        round,
        action: draft.action,
        justification: draft.justification,
        alternative_to,
    });
    true
}

/// Counts the latest votes of every agent except the author.
fn tally(p: &Proposal, latest: &[Vote], agents: &[String], rule: Consensus) -> Decision {
    let (mut approvals, mut objections, mut abstentions) = (0, 0, 0);
    for agent in agents.iter().filter(|a| **a != p.author) {
        match latest
            .iter()
            .find(|v| v.proposal == p.id && &v.voter == agent)
        {
            Some(v) if v.stance == Stance::Approve => approvals += 1,
            Some(v) if v.stance == Stance::Object => objections += 1,
            _ => abstentions += 1,
        }
    }
    let passed = match rule {
        Consensus::Unanimous => objections == 0 && abstentions == 0,
        Consensus::Quorum { min_approvals } => objections == 0 && approvals >= min_approvals,
    };
    Decision {
        proposal: p.id,
        passed,
        approvals,
        objections,
        abstentions,
    }
}

/// Turns the passed proposals into a consistent set of actions: one per
/// subject. Several blocks of the same target keep the longest TTL; a block
/// and an unblock of the same target cancel out (nothing is done, and the
/// conflict is logged); for the zero-window policy the same applies.
pub fn resolve(passed: &[&Proposal]) -> Vec<Draft> {
    let mut out: Vec<Draft> = Vec::new();
    let mut conflicted: Vec<Action> = Vec::new();
    for p in passed {
        if conflicted.iter().any(|c| c.same_subject(&p.action)) {
            continue;
        }
        // The same action passed twice (several authors proposed it): once.
        if out.iter().any(|d| d.action == p.action) {
            continue;
        }
        match out.iter().position(|d| d.action.same_subject(&p.action)) {
            None => out.push(Draft {
                action: p.action.clone(),
                justification: p.justification.clone(),
            }),
            Some(i) => match (&out[i].action, &p.action) {
                (Action::Block { ttl_secs: a, .. }, Action::Block { ttl_secs: b, .. })
                | (Action::Watch { ttl_secs: a, .. }, Action::Watch { ttl_secs: b, .. }) => {
                    if b > a {
                        out[i] = Draft {
                            action: p.action.clone(),
                            justification: p.justification.clone(),
                        };
                    }
                }
                (
                    Action::ZeroWindowSynPolicy {
                        enable: true,
                        ttl_secs: a,
                    },
                    Action::ZeroWindowSynPolicy {
                        enable: true,
                        ttl_secs: b,
                    },
                ) => {
                    if b > a {
                        out[i].action = p.action.clone();
                    }
                }
                // A watch beside a block of the same host: the block says it all.
                (Action::Block { .. }, Action::Watch { .. }) => {}
                (Action::Watch { .. }, Action::Block { .. }) => {
                    out[i] = Draft {
                        action: p.action.clone(),
                        justification: p.justification.clone(),
                    };
                }
                _ => {
                    warn!(
                        "council passed conflicting actions ({} / {}); doing neither",
                        out[i].action, p.action
                    );
                    conflicted.push(out.remove(i).action);
                }
            },
        }
    }
    out
}

/// Why the council described by `[council]` cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid configuration")]
    Llm(#[from] llm::LlmError),
    #[error(
        "invalid configuration: [council] roles: {role:?} has no offline rules (known: {known})"
    )]
    NoRules { role: String, known: String },
}

/// Builds the council from `[council]`: rule agents, LLM agents (sharing
/// one endpoint, `$OPENAI_API_KEY`), or a mix, plus the optional judge.
pub fn build(c: &config::CouncilConfig) -> Result<Council, BuildError> {
    build_after(c, None)
}

/// [`build`], for a council replacing `previous` (SIGHUP): its LLM budget
/// carries on counting from what `previous` used.
pub fn build_after(
    c: &config::CouncilConfig,
    previous: Option<&Council>,
) -> Result<Council, BuildError> {
    let budget = Arc::new(match previous.and_then(|p| p.budget.as_deref()) {
        Some(old) => budget::Budget::continuing(c.llm.budget.clone(), old),
        None => budget::Budget::new(c.llm.budget.clone()),
    });
    let endpoint = if c.uses_llm() {
        let e = llm::Endpoint::from_env(&c.llm)?.with_budget(budget.clone());
        info!(
            "LLM council endpoint {} ({})",
            e.base_url(),
            if e.has_key() {
                format!("API key from ${}", llm::API_KEY_ENV)
            } else {
                format!("no API key: ${} is not set", llm::API_KEY_ENV)
            }
        );
        Some(Arc::new(e))
    } else {
        None
    };
    let mut agents: Vec<Arc<dyn Agent>> = Vec::new();
    for role in &c.roles {
        match (c.kind_of(role), &endpoint) {
            (config::AgentKind::Llm, Some(endpoint)) => {
                let agent = llm::LlmAgent::new(role, &c.llm, endpoint.clone(), c.max_rounds)?;
                agents.push(Arc::new(agent));
            }
            _ => {
                let agent = rules::RuleAgent::new(role, c.rules.clone()).ok_or_else(|| {
                    BuildError::NoRules {
                        role: role.clone(),
                        known: rules::ROLES.join(", "),
                    }
                })?;
                agents.push(Arc::new(agent));
            }
        }
    }
    let mut council =
        Council::new(agents, c.consensus(), c.max_rounds).with_deadline(c.debate_deadline);
    if let (true, Some(endpoint)) = (c.llm.judge, &endpoint) {
        council = council.with_judge(Arc::new(llm::LlmJudge::new(&c.llm, endpoint.clone())));
    }
    // An LLM outage must not stop protection: the offline rules (every
    // role that has them) decide what the models could not.
    if c.uses_llm() {
        council = council.with_budget(budget);
    }
    if c.uses_llm() && c.fallback == config::Fallback::Rules {
        let offline: Vec<Arc<dyn Agent>> = rules::ROLES
            .iter()
            .filter_map(|r| rules::RuleAgent::new(r, c.rules.clone()))
            .map(|a| Arc::new(a) as Arc<dyn Agent>)
            .collect();
        council = council.with_fallback(Council::new(offline, c.consensus(), c.max_rounds));
    }
    Ok(council)
}

#[cfg(test)]
mod tests;
