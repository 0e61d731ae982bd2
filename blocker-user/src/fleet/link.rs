//! The connection to NATS: one task that publishes the outbox and consumes
//! the stream with this node's durable consumer. The pipeline owns what is
//! applied; this task only moves typed decisions in and out.
//!
//! While the server is unreachable the client reconnects forever; the
//! outbox keeps growing on disk and is flushed, oldest first, when the
//! server answers again. The durable consumer remembers what this node
//! acknowledged, so a node that restarts or comes back from a partition
//! gets every decision it missed (the stream keeps them for `max_age`).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use async_nats::jetstream::{self, consumer, stream};
use futures::{FutureExt as _, StreamExt as _};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::{Decision, FleetConfig, Rejection, SharedStatus, journal};

/// How often the outbox is polled for rows other processes queued
/// (`blocker ban --share`) and for rows a failed publish left behind.
pub const OUTBOX_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("[fleet] cannot read {path}: {source}")]
    Credentials {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("[fleet] journal {path}: {source}")]
    Journal {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("[fleet] cannot connect to {servers}: {source}")]
    Connect {
        servers: String,
        source: async_nats::ConnectError,
    },
}

/// Peers' decisions for the pipeline, in stream order: everything one
/// drain of the consumer brought. The pipeline applies them as one batch
/// (one journal commit) and answers on `done` once they are applied or
/// refused and journaled; only then are they acknowledged.
pub struct Inbound {
    pub decisions: Vec<Decision>,
    pub done: oneshot::Sender<()>,
}

/// Most messages handed to the pipeline at once.
pub const MAX_BATCH: usize = 512;

/// The pipeline's side of the link.
pub struct Link {
    /// Own decisions to publish (queued on disk first).
    pub publish: mpsc::Sender<Decision>,
}

/// Opens a connection to the journal for the fleet's own use (WAL: the
/// enforcer and the CLI write beside it).
pub fn open_journal(path: &Path) -> Result<Connection, LinkError> {
    let err = |source| LinkError::Journal {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err)?;
    Ok(conn)
}

/// Client options from `[fleet]`: credentials, TLS, reconnect forever.
pub async fn connect_options(cfg: &FleetConfig) -> Result<async_nats::ConnectOptions, LinkError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| LinkError::Credentials {
            path: p.to_owned(),
            source,
        })
    };
    let mut o = if !cfg.creds_file.as_os_str().is_empty() {
        async_nats::ConnectOptions::with_credentials(&read(&cfg.creds_file)?).map_err(|source| {
            LinkError::Credentials {
                path: cfg.creds_file.clone(),
                source,
            }
        })?
    } else if !cfg.nkey_seed_file.as_os_str().is_empty() {
        async_nats::ConnectOptions::with_nkey(read(&cfg.nkey_seed_file)?.trim().to_owned())
    } else if !cfg.token.is_empty() {
        async_nats::ConnectOptions::with_token(cfg.token.clone())
    } else if !cfg.user.is_empty() {
        async_nats::ConnectOptions::with_user_and_password(cfg.user.clone(), cfg.password.clone())
    } else {
        async_nats::ConnectOptions::new()
    };
    if !cfg.tls_ca_file.as_os_str().is_empty() {
        // The client reads it only when it connects, and it retries
        // forever: an unreadable file would show as a silent retry loop.
        read(&cfg.tls_ca_file)?;
        o = o
            .add_root_certificates(cfg.tls_ca_file.clone())
            .require_tls(true);
    }
    Ok(o.name(format!("blocker {}", cfg.node_name()))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100 * attempts as u64).min(2000))
        }))
}

/// The stream's configuration.
pub fn stream_config(cfg: &FleetConfig) -> stream::Config {
    stream::Config {
        name: cfg.stream.clone(),
        subjects: vec![format!("{}.>", cfg.subject)],
        max_age: cfg.max_age,
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        duplicate_window: Duration::from_secs(120),
        description: Some("blocker: decisions shared across the fleet".into()),
        ..Default::default()
    }
}

/// Starts the link. `inbound` carries peers' decisions to the pipeline.
pub async fn spawn(
    cfg: FleetConfig,
    db: PathBuf,
    status: SharedStatus,
    inbound: mpsc::Sender<Inbound>,
) -> Result<Link, LinkError> {
    let node = cfg.node_name();
    {
        let mut s = status.lock().expect("status lock");
        s.enabled = true;
        s.node = node.clone();
        s.servers = cfg.servers.clone();
    }
    let outbox = open_journal(&db)?;
    let opts = connect_options(&cfg).await?;
    let connected = Arc::new(AtomicBool::new(false));
    let flag = connected.clone();
    let st = status.clone();
    let opts = opts.event_callback(move |event| {
        let (flag, st) = (flag.clone(), st.clone());
        async move {
            match &event {
                async_nats::Event::Connected => {
                    flag.store(true, Ordering::Relaxed);
                    info!("fleet: connected to NATS");
                }
                async_nats::Event::Disconnected => {
                    flag.store(false, Ordering::Relaxed);
                    warn!("fleet: disconnected from NATS; enforcing locally, queuing own decisions on disk");
                }
                _ => {}
            }
            let mut s = st.lock().expect("status lock");
            s.connected = flag.load(Ordering::Relaxed);
            if !matches!(event, async_nats::Event::Connected) {
                s.last_error = Some(event.to_string());
            }
        }
    });
    let client = opts
        .connect(cfg.servers.clone())
        .await
        .map_err(|source| LinkError::Connect {
            servers: cfg.servers.join(", "),
            source,
        })?;
    let js = jetstream::new(client.clone());
    let (tx, rx) = mpsc::channel::<Decision>(4096);
    tokio::spawn(publisher(
        cfg.clone(),
        js.clone(),
        outbox,
        rx,
        status.clone(),
        connected.clone(),
    ));
    tokio::spawn(consumer_loop(cfg, js, status, inbound));
    Ok(Link { publish: tx })
}

async fn publisher(
    cfg: FleetConfig,
    js: jetstream::Context,
    outbox: Connection,
    mut rx: mpsc::Receiver<Decision>,
    status: SharedStatus,
    connected: Arc<AtomicBool>,
) {
    // Never held across an await (a connection is not Sync).
    let outbox = std::sync::Mutex::new(outbox);
    let mut poll = tokio::time::interval(OUTBOX_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Some(d) => {
                    enqueue(&outbox, &d);
                    // Take whatever else is waiting: one flush for a burst.
                    while let Ok(d) = rx.try_recv() {
                        enqueue(&outbox, &d);
                    }
                }
                None => return,
            },
            _ = poll.tick() => {}
        }
        if connected.load(Ordering::Relaxed) {
            flush(&cfg, &js, &outbox, &status).await;
        }
        let queued = journal::queued_count(&outbox.lock().expect("outbox lock"));
        if let Ok(n) = queued {
            status.lock().expect("status lock").queued = n;
        }
    }
}

type Outbox = std::sync::Mutex<Connection>;

fn enqueue(outbox: &Outbox, d: &Decision) {
    if let Err(e) = journal::queue(&outbox.lock().expect("outbox lock"), d) {
        // The map already holds the ban; only sharing it is lost.
        warn!(
            "fleet: could not queue {} for publishing: {e}",
            d.describe()
        );
    }
}

/// Publishes queued decisions, oldest first, until the outbox is empty or
/// the server stops answering.
async fn flush(cfg: &FleetConfig, js: &jetstream::Context, outbox: &Outbox, status: &SharedStatus) {
    loop {
        let pending = journal::pending(&outbox.lock().expect("outbox lock"), 256);
        let batch = match pending {
            Ok(b) if b.is_empty() => return,
            Ok(b) => b,
            Err(e) => {
                warn!("fleet: cannot read the outbox: {e}");
                return;
            }
        };
        // Send the whole batch, then collect the acks: one round trip per
        // batch, not per decision.
        let mut acks = Vec::with_capacity(batch.len());
        for q in &batch {
            let msg = jetstream::message::PublishMessage::build()
                .payload(q.decision.to_json().into())
                .message_id(&q.decision.id);
            match js.send_publish(q.decision.subject(&cfg.subject), msg).await {
                Ok(ack) => acks.push((q.row, ack)),
                Err(e) => {
                    status.lock().expect("status lock").last_error = Some(format!("publish: {e}"));
                    break;
                }
            }
        }
        let sent = acks.len();
        // Marked published in one commit for the batch (one fsync, not one
        // per decision); a crash before it resends them, which the
        // Nats-Msg-Id makes harmless.
        let mut marks = Vec::with_capacity(sent);
        let mut failed = false;
        for (row, ack) in acks {
            match ack.await {
                Ok(a) => marks.push((row, a.sequence)),
                Err(e) => {
                    // Stays queued; the Nats-Msg-Id makes a resend of one
                    // the server did store harmless.
                    status.lock().expect("status lock").last_error =
                        Some(format!("publish ack: {e}"));
                    failed = true;
                    break;
                }
            }
        }
        match journal::mark_published_all(&outbox.lock().expect("outbox lock"), &marks) {
            Ok(()) => status.lock().expect("status lock").sent += marks.len() as u64,
            Err(e) => {
                warn!(
                    "fleet: published {} outbox rows but could not mark them: {e}",
                    marks.len()
                );
                return;
            }
        }
        if failed {
            return;
        }
        if sent < batch.len() {
            return;
        }
    }
}

/// Consumes the stream with this node's durable consumer, recreating it
/// (and the stream, if missing) after errors.
async fn consumer_loop(
    cfg: FleetConfig,
    js: jetstream::Context,
    status: SharedStatus,
    inbound: mpsc::Sender<Inbound>,
) {
    let node = cfg.node_name();
    loop {
        match consume(&cfg, &node, &js, &status, &inbound).await {
            Ok(()) => return, // the pipeline went away: shutting down
            Err(e) => {
                status.lock().expect("status lock").last_error = Some(e.clone());
                tracing::debug!("fleet: consumer: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn consume(
    cfg: &FleetConfig,
    node: &str,
    js: &jetstream::Context,
    status: &SharedStatus,
    inbound: &mpsc::Sender<Inbound>,
) -> Result<(), String> {
    let stream = js
        .get_or_create_stream(stream_config(cfg))
        .await
        .map_err(|e| format!("stream {}: {e}", cfg.stream))?;
    let durable = cfg.durable();
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            &durable,
            consumer::pull::Config {
                durable_name: Some(durable.clone()),
                deliver_policy: consumer::DeliverPolicy::All,
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 4096,
                filter_subject: format!("{}.>", cfg.subject),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("consumer {durable}: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("consumer {durable}: {e}"))?;
    info!("fleet: consuming {} as {durable} (node {node})", cfg.stream);
    status.lock().expect("status lock").last_error = None;
    while let Some(first) = messages.next().await {
        // Take what the client already fetched (its pull requests read
        // ahead): one apply and one journal commit for the lot instead of
        // two commits per decision.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match messages.next().now_or_never() {
                Some(Some(m)) => batch.push(m),
                Some(None) | None => break,
            }
        }
        let mut decisions = Vec::new();
        let mut held = Vec::new();
        let mut failed = None;
        for m in batch {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    // Hand on what came before it, then recreate the consumer.
                    failed = Some(format!("consumer {durable}: {e}"));
                    break;
                }
            };
            if let Ok(info) = m.info() {
                status.lock().expect("status lock").lag = info.pending;
            }
            let subject = m.subject.to_string();
            let parsed = Decision::parse(&m.payload, &subject).and_then(|d| {
                if d.origin == node || cfg.policy.knows(&d.origin) {
                    Ok(d)
                } else {
                    Err(Rejection::UnknownOrigin(d.origin))
                }
            });
            match parsed {
                Ok(d) if d.origin == node => {
                    // Our own, coming back: never applied twice, never re-sent.
                }
                Ok(decision) => {
                    decisions.push(decision);
                    held.push(m);
                    continue;
                }
                Err(rejection) => {
                    warn!("fleet: rejected a message on {subject}: {rejection}");
                    *status
                        .lock()
                        .expect("status lock")
                        .rejected
                        .entry(rejection.label().to_owned())
                        .or_default() += 1;
                }
            }
            if let Err(e) = m.ack().await {
                tracing::debug!("fleet: ack: {e}");
            }
        }
        if !decisions.is_empty() {
            let (done, wait) = oneshot::channel();
            if inbound.send(Inbound { decisions, done }).await.is_err() {
                return Ok(());
            }
            // Acknowledged once journaled, in its own task so that the next
            // batch is read meanwhile (the pipeline keeps the order). A
            // crash before the ack means a redelivery, which the pipeline
            // recognises by decision id.
            tokio::spawn(async move {
                if wait.await.is_ok() {
                    for m in held {
                        if let Err(e) = m.ack().await {
                            tracing::debug!("fleet: ack: {e}");
                        }
                    }
                }
            });
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Err(format!("consumer {durable}: message stream ended"))
}
