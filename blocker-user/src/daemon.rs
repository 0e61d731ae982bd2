//! `blocker run`: load, attach, and keep the tables tidy until told to stop.
//!
//! Enforcement does not depend on this process: the maps and the XDP links
//! are pinned, and the kernel ignores expired rules by itself. The daemon
//! adds what needs userspace: garbage collection, the journal, and (with the
//! treason work) evidence, the council and verdicts.

use std::{
    future::Future,
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::{
    clock,
    config::{Config, XdpMode},
    enforcer::{EnforceError, Enforcer},
    loader::{self, AttachError, Attached, LoadError, PinDir},
    store::{Store, StoreError},
    sys,
    tables::{Tables, TablesError},
};

/// File in the state directory where a running daemon describes itself.
pub const STATUS_FILE: &str = "daemon.json";

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error(transparent)]
    Tables(#[from] TablesError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Enforce(#[from] EnforceError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// What `blocker run` was asked to do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub interfaces: Vec<String>,
    pub xdp_mode: XdpMode,
    pub config: Config,
}

/// What a running daemon publishes about itself (`blocker status`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DaemonStatus {
    pub pid: u32,
    pub started_at: String,
    pub pin_dir: PathBuf,
    pub interfaces: Vec<InterfaceStatus>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InterfaceStatus {
    pub iface: String,
    pub attached: String,
}

impl DaemonStatus {
    /// The status file of a daemon that is still running, if any.
    pub fn read(state_dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(state_dir.join(STATUS_FILE)).ok()?;
        let status: Self = serde_json::from_str(&text).ok()?;
        sys::pid_alive(status.pid).then_some(status)
    }
}

/// Runs the daemon until `shutdown` resolves.
pub async fn run(opts: RunOptions, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let config = &opts.config;
    loader::require_caps(loader::RUN_CAPS)?;
    let pins = PinDir::new(&config.pin_dir);
    let mut ebpf = loader::load_pinned(&pins, &config.maps)?;
    let mut interfaces = Vec::new();
    for iface in &opts.interfaces {
        let attached = loader::attach_xdp(&mut ebpf, &pins, iface, opts.xdp_mode)?;
        match attached {
            Attached::Replaced => info!(
                "replaced the XDP program on {iface} atomically (pinned link {})",
                pins.link(iface).display()
            ),
            Attached::Driver | Attached::Skb => info!(
                "attached XDP to {iface} in {} mode (pinned link {})",
                if attached == Attached::Driver {
                    "driver"
                } else {
                    "skb"
                },
                pins.link(iface).display()
            ),
        }
        interfaces.push(InterfaceStatus {
            iface: iface.clone(),
            attached: format!("{attached:?}").to_lowercase(),
        });
    }
    let mut tables = Tables::from_ebpf(&mut ebpf)?;
    tables.sync_active()?;
    let store = Store::open_in(&config.state_dir)?;
    let mut enforcer = Enforcer::new(tables, store);

    let status = DaemonStatus {
        pid: std::process::id(),
        started_at: clock::rfc3339(SystemTime::now()),
        pin_dir: config.pin_dir.clone(),
        interfaces,
    };
    let status_path = config.state_dir.join(STATUS_FILE);
    write_status(&status_path, &status)?;
    info!(
        "blocker running (pid {}); maps pinned under {}",
        status.pid,
        pins.path().display()
    );

    let mut gc = tokio::time::interval(config.daemon.gc_interval);
    gc.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = gc.tick() => match enforcer.collect_expired() {
                Ok(expired) => {
                    for rule in expired {
                        info!("{} rule for {} expired and was removed", rule.list.as_str(), crate::addr::display(&rule.net));
                    }
                }
                Err(e) => warn!("garbage collection failed: {e}"),
            },
        }
    }

    let _ = std::fs::remove_file(&status_path);
    for iface in opts.interfaces.iter().filter(|i| pins.link(i).exists()) {
        info!(
            "exiting; XDP stays attached on {iface} and keeps enforcing (remove it with `blocker detach --iface {iface}`)"
        );
    }
    Ok(())
}

fn write_status(path: &Path, status: &DaemonStatus) -> Result<(), DaemonError> {
    let io = |source| DaemonError::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(status).expect("status serializes");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
