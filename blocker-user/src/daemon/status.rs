//! What a running daemon publishes about itself in the state directory
//! (`daemon.json`), read by `blocker status`, `detach` and `debate`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    daemon::DaemonError,
    evidence::alert::{AlertSource, EvidenceClass, PipelineSnapshot},
    incident::TrackerCounters,
    kernel::{probes::ProbeStatus, sys},
};

/// File in the state directory where a running daemon describes itself.
pub const STATUS_FILE: &str = "daemon.json";

/// What a running daemon publishes about itself (`blocker status`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DaemonStatus {
    pub pid: u32,
    pub started_at: String,
    pub updated_at: String,
    pub pin_dir: PathBuf,
    pub dry_run: bool,
    pub interfaces: Vec<InterfaceStatus>,
    pub probes: ProbeStatus,
    pub alerts: PipelineSnapshot,
    /// What floods shed, by stage, evidence class and source (non-zero
    /// counts only): `intake` (a source's lane was full) and `debate-queue`
    /// (the debate queue was full; forgeable incidents go first).
    #[serde(default)]
    pub shed: Vec<ShedStatus>,
    pub incidents: IncidentStatus,
    pub council: CouncilStatus,
    /// Kernel event to map entry, over the last bans.
    pub latency: LatencyStatus,
    /// The CrowdSec bouncer (`[sources.crowdsec]`), when on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crowdsec: Option<super::crowdsec::CrowdsecStatus>,
    /// Decisions shared with and received from the fleet.
    #[serde(default)]
    pub fleet: crate::fleet::FleetStatus,
    /// Journal retention (`[journal]`): what was pruned, the size now.
    #[serde(default)]
    pub journal: crate::state::retention::RetentionStatus,
    /// Expired rules collected (`daemon::gc`).
    #[serde(default)]
    pub gc: super::gc::GcStatus,
}

/// One shed counter of [`DaemonStatus::shed`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShedStatus {
    pub stage: String,
    pub class: EvidenceClass,
    pub source: AlertSource,
    pub count: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct InterfaceStatus {
    pub iface: String,
    pub attached: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct IncidentStatus {
    pub open: usize,
    #[serde(flatten)]
    pub counters: TrackerCounters,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CouncilStatus {
    pub agents: Vec<String>,
    pub debates: u64,
    pub running: usize,
    pub queued: usize,
    /// Triggers dropped because the debate queue was full.
    pub queue_dropped: u64,
    pub applied: u64,
    pub refused: u64,
    pub failed: u64,
    pub dry_run: u64,
    /// Debate/incident records dropped because the journal writer fell behind.
    pub journal_dropped: u64,
    /// Rules evicted to make room in a full table (`when_full = "evict-soonest"`).
    pub evicted: u64,
    /// Why the journal is unavailable (degraded mode), if it is.
    pub journal_error: Option<String>,
    /// The LLM budget (`[council.llm.budget]`), when the council uses a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_budget: Option<crate::council::budget::BudgetStatus>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencyStatus {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Medians of the stages: kernel timestamp → debate triggered (ring
    /// buffer, alert queue), trigger → debate done (council and its
    /// scheduling), debate done → map written (guard, journal commit, map).
    pub intake_p50_ms: f64,
    pub council_p50_ms: f64,
    pub apply_p50_ms: f64,
    /// The most recent samples, milliseconds, oldest first (at most 1000).
    pub recent_ms: Vec<f64>,
}

impl DaemonStatus {
    /// The status file of a daemon that is still running, if any.
    pub fn read(state_dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(state_dir.join(STATUS_FILE)).ok()?;
        let status: Self = serde_json::from_str(&text).ok()?;
        sys::pid_alive(status.pid).then_some(status)
    }
}

pub(super) fn write_status(path: &Path, status: &DaemonStatus) -> Result<(), DaemonError> {
    let io = |source| DaemonError::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(status).expect("status serializes");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
