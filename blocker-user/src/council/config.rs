//! `[council]`: who plays each role, how the council decides, and what
//! decides when the models cannot.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

use super::{llm::LlmConfig, rules::RulesConfig};

/// What plays a role on the council.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// The offline, deterministic rule agent of the role.
    #[default]
    Rules,
    /// A model behind an OpenAI-compatible endpoint (`[council.llm]`).
    Llm,
}

impl crate::choice::Choice for AgentKind {
    const ALL: &'static [Self] = &[Self::Rules, Self::Llm];

    fn name(self) -> &'static str {
        match self {
            Self::Rules => "rules",
            Self::Llm => "llm",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Self::Rules => "The offline, deterministic rule agent of the role",
            Self::Llm => "A model behind an OpenAI-compatible endpoint (`[council.llm]`)",
        }
    }
}

/// How the council decides (`[council]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CouncilConfig {
    pub roles: Vec<String>,
    /// What plays every role, unless `role_agents` says otherwise.
    pub agents: AgentKind,
    /// Per-role exceptions to `agents`, for mixed councils.
    pub role_agents: BTreeMap<String, AgentKind>,
    pub consensus: ConsensusName,
    pub quorum: usize,
    pub max_rounds: u32,
    pub max_concurrent: usize,
    /// Longest a whole debate may take, every round and retry included.
    #[serde(with = "crate::ttl::duration")]
    pub debate_deadline: Duration,
    /// What decides an incident with confirmed evidence when an LLM
    /// council cannot conclude (deadline, errors, budget, abstentions).
    pub fallback: Fallback,
    pub rules: RulesConfig,
    pub llm: LlmConfig,
}

/// `[council] fallback`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// The offline rule agents decide.
    Rules,
    /// Nothing is decided (the transcript says why).
    None,
}

impl Default for CouncilConfig {
    fn default() -> Self {
        Self {
            roles: super::rules::ROLES.iter().map(|r| r.to_string()).collect(),
            agents: AgentKind::Rules,
            role_agents: BTreeMap::new(),
            consensus: ConsensusName::Unanimous,
            quorum: 2,
            max_rounds: 4,
            max_concurrent: 4,
            debate_deadline: Duration::from_secs(60),
            fallback: Fallback::Rules,
            rules: RulesConfig::default(),
            llm: LlmConfig::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConsensusName {
    Unanimous,
    Quorum,
}

impl CouncilConfig {
    /// What plays `role`.
    pub fn kind_of(&self, role: &str) -> AgentKind {
        self.role_agents.get(role).copied().unwrap_or(self.agents)
    }

    /// Whether any role is played by a model (or a judge sits).
    pub fn uses_llm(&self) -> bool {
        self.llm.judge || self.roles.iter().any(|r| self.kind_of(r) == AgentKind::Llm)
    }

    pub fn consensus(&self) -> super::Consensus {
        match self.consensus {
            ConsensusName::Unanimous => super::Consensus::Unanimous,
            ConsensusName::Quorum => super::Consensus::Quorum {
                min_approvals: self.quorum,
            },
        }
    }
}
