//! The vocabulary of rules shared by every stage that handles them: which
//! list a rule is on and a rule as the kernel holds it. It sits below both
//! the map layer (`kernel::maps`) and the enforcer (`state`), so neither
//! imports the other's types to name a rule.

use blocker_common::{RuleCounters, RuleEntry};
use ipnet::IpNet;
use serde::Serialize;

/// Which list a rule belongs to.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum List {
    /// Checked first: matching sources always pass.
    Allow,
    /// Matching sources are dropped.
    Block,
}

impl crate::choice::Choice for List {
    const ALL: &'static [Self] = &[Self::Allow, Self::Block];

    fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Block => "block",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Self::Allow => "Checked first: matching sources always pass",
            Self::Block => "Matching sources are dropped",
        }
    }
}

impl List {
    pub fn as_str(self) -> &'static str {
        crate::choice::Choice::name(self)
    }
}

impl std::str::FromStr for List {
    type Err = UnknownList;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        <Self as crate::choice::Choice>::from_name(s).ok_or_else(|| UnknownList(s.to_owned()))
    }
}

/// A list name that is neither `allow` nor `block`.
#[derive(Debug, thiserror::Error)]
#[error("unknown list {0:?}: expected allow or block")]
pub struct UnknownList(pub String);

/// A rule as read back from the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub list: List,
    pub net: IpNet,
    pub entry: RuleEntry,
    /// Its packet and byte counts, summed over the CPUs (zero for a rule that
    /// has not matched, or whose counter slot another rule took over).
    pub counters: RuleCounters,
}
