//! `blocker run`: the long-running daemon.
//!
//! ```text
//! ring buffer (probes, XDP) ─┐
//! /dev/kmsg ─────────────────┼─► bounded queue ─► incidents ─► council (concurrent, bounded)
//! eve.json ──────────────────┘                                     │ typed verdicts
//!                                          maps ◄── enforcer ◄── guard
//! ```
//!
//! - [`run`]: start-up (load, attach, reconcile, start the sources) and the
//!   event loop;
//! - [`pipeline`]: scheduling and applying debates;
//! - [`gc`]: expired rules found by a scanner thread, removed by the
//!   pipeline a chunk at a time;
//! - [`journal_writer`]: debate and incident records, batched off the
//!   critical path;
//! - [`status`]: `daemon.json`, what `blocker status` reads;
//! - [`narrate`]: debates logged for operators;
//! - [`lock`]: one daemon per pin directory and state directory;
//! - [`signals`]: SIGTERM/SIGINT (a clean stop, also during start-up) and
//!   SIGHUP;
//! - [`reload`]: what SIGHUP applies (guard, allowlist, council) and what
//!   needs a restart.

pub mod crowdsec;
mod gc;
mod journal_writer;
pub mod lock;
mod narrate;
mod pipeline;
pub mod reload;
mod run;
mod signals;
pub mod status;

pub use gc::GcStatus;
pub use reload::Reload;
pub use run::run;
pub use signals::Signals;
pub use status::{
    CouncilStatus, DaemonStatus, IncidentStatus, InterfaceStatus, LatencyStatus, STATUS_FILE,
    ShedStatus,
};

use crate::{
    config::{Config, XdpMode},
    council::BuildError,
    kernel::{maps::TablesError, pins::LoadError, probes::ProbeError, xdp::AttachError},
    state::{enforcer::EnforceError, journal::StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Council(#[from] BuildError),
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Tables(#[from] TablesError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Enforce(#[from] EnforceError),
    #[error(transparent)]
    Fleet(#[from] crate::fleet::link::LinkError),
    /// `[guard] trusted` does not parse (the config loader checks it first,
    /// so this means a config built in code).
    #[error("invalid configuration: [guard] trusted")]
    Trusted(#[source] crate::addr::AddrError),
    /// The eBPF object lacks a map this binary needs: a build mismatch.
    #[error("the eBPF object has no {name} map; rebuild with `cargo xtask build`")]
    MissingMap { name: &'static str },
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error(transparent)]
    Metrics(#[from] crate::metrics::serve::ServeError),
    /// `[metrics] addr` does not parse (the config loader checks it first,
    /// so this means a config built in code).
    #[error("invalid configuration: {0}")]
    MetricsAddr(String),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// What `blocker run` was asked to do (flags already merged into `config`).
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub interfaces: Vec<String>,
    pub xdp_mode: XdpMode,
    pub config: Config,
    /// Where SIGHUP reads the configuration again.
    pub reload: Option<Reload>,
}
