//! SIGTERM, SIGINT and SIGHUP for `blocker run`.
//!
//! The handlers are installed before anything is loaded, so no signal can
//! kill the daemon between two steps of start-up (say, after the XDP link
//! was attached and before it was pinned): a stop request is a flag the
//! start-up checks between its steps (and between reconciliation batches),
//! and the event loop selects on. SIGHUP's default action is to terminate,
//! so it is caught from the start too; a reload requested during start-up
//! is carried out once the loop runs.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Stop and reload requests, from signals (or from code, in tests).
pub struct Signals {
    pub(super) stop: CancellationToken,
    /// Set with `stop`, readable without an async context (start-up steps
    /// are synchronous).
    stopping: Arc<AtomicBool>,
    /// Which signal asked to stop.
    by: Arc<Mutex<&'static str>>,
    /// One pending reload at most: SIGHUPs in a burst coalesce.
    pub(super) reload: mpsc::Receiver<()>,
}

impl Signals {
    /// Installs the handlers. Call it first thing inside the runtime.
    pub fn install() -> std::io::Result<Self> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let (signals, handle) = Self::new();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(()) = term.recv() => handle.stop("SIGTERM"),
                    Some(()) = int.recv() => handle.stop("SIGINT"),
                    Some(()) = hup.recv() => {
                        info!("SIGHUP received: reloading the configuration");
                        let _ = handle.reload.try_send(());
                    }
                    else => break,
                }
            }
        });
        Ok(signals)
    }

    /// Requests without signal handlers, and the handle that raises them.
    pub(super) fn new() -> (Self, SignalHandle) {
        let (tx, rx) = mpsc::channel(1);
        let stop = CancellationToken::new();
        let stopping = Arc::new(AtomicBool::new(false));
        let by = Arc::new(Mutex::new(""));
        (
            Self {
                stop: stop.clone(),
                stopping: stopping.clone(),
                by: by.clone(),
                reload: rx,
            },
            SignalHandle {
                stop,
                stopping,
                by,
                reload: tx,
            },
        )
    }

    /// Whether a stop was requested.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The signal that asked to stop (`SIGTERM`, `SIGINT`).
    pub fn stopped_by(&self) -> &'static str {
        self.by.lock().map(|b| *b).unwrap_or("a signal")
    }

    /// Resolves when a stop is requested.
    pub async fn stopped(&self) {
        self.stop.cancelled().await;
    }

    /// A flag that start-up work on other threads can poll.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.stopping.clone()
    }
}

/// Raises the requests of a [`Signals`].
#[derive(Clone)]
pub(super) struct SignalHandle {
    stop: CancellationToken,
    stopping: Arc<AtomicBool>,
    by: Arc<Mutex<&'static str>>,
    reload: mpsc::Sender<()>,
}

impl SignalHandle {
    pub(super) fn stop(&self, by: &'static str) {
        info!("{by} received: stopping");
        if let Ok(mut b) = self.by.lock() {
            *b = by;
        }
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.cancel();
    }
}
