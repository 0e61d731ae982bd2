//! Alerts: one piece of evidence about one source address, from any alert
//! source (kernel probes, XDP, Suricata, the kernel log). Incidents group
//! them; the council reads them. Everything in here is data: no field of an
//! alert is ever interpreted as an instruction.

use std::{
    net::IpAddr,
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Where an alert came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertSource {
    /// blocker's kernel probes (kprobes or tracepoints).
    Probe,
    /// The XDP program's zero-window SYN threshold.
    Xdp,
    /// A Suricata `eve.json` alert.
    Suricata,
    /// A line in the kernel log (`/dev/kmsg`).
    Kmsg,
}

impl AlertSource {
    /// Every source, in the order of [`index`](Self::index).
    pub const ALL: [Self; 4] = [Self::Probe, Self::Xdp, Self::Suricata, Self::Kmsg];

    /// A dense index (for per-source counter arrays).
    pub const fn index(self) -> usize {
        match self {
            Self::Probe => 0,
            Self::Xdp => 1,
            Self::Suricata => 2,
            Self::Kmsg => 3,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::Xdp => "xdp",
            Self::Suricata => "suricata",
            Self::Kmsg => "kmsg",
        }
    }
}

/// What the evidence says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// A retransmission timer fired while the peer advertised a zero window
    /// with data in flight: the kernel's own "treason uncloaked" condition
    /// (`tcp_retransmit_timer`).
    TreasonRetransmit,
    /// The persist timer keeps probing a peer whose window stayed closed with
    /// nothing acknowledged past the stall threshold: it pins our socket
    /// (sockstress, slow read). Seen by the `tcp_send_probe0` kprobe.
    TreasonProbe,
    /// The same stall seen by the `tcp:tcp_probe` tracepoint fallback.
    ZeroWindowSeen,
    /// The source crossed the zero-window SYN threshold in XDP.
    ZeroWindowSyn,
    /// Zero-window SYNs from everywhere exceed the flood rate: a spoofed
    /// flood no per-source ban can stop (peer is the unspecified address).
    ZeroWindowFlood,
    /// The kernel logged the treason / zero-window message for the peer.
    KernelLog,
    /// An IDS rule matched traffic from the source.
    Ids,
}

/// Whether a remote peer could have forged the source address of the
/// evidence. A per-source ban needs confirmed evidence: a forged address
/// is a bystander's, and banning it turns the blocker against its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceClass {
    /// Seen before any completed handshake: zero-window SYNs, IDS alerts on
    /// packets that need none (UDP, ICMP, a lone SYN). Anyone can send
    /// these with someone else's address (hping3 `-a`).
    Forgeable,
    /// Our socket to the peer was established and carried data (the treason
    /// probes), the kernel said so itself, or an IDS matched an established
    /// TCP flow: the peer answered our SYN-ACK from that address.
    Confirmed,
}

impl EvidenceClass {
    /// Every class, in the order of [`index`](Self::index).
    pub const ALL: [Self; 2] = [Self::Confirmed, Self::Forgeable];

    pub const fn index(self) -> usize {
        match self {
            Self::Confirmed => 0,
            Self::Forgeable => 1,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Forgeable => "forgeable",
        }
    }
}

impl AlertKind {
    /// The evidence class of every alert of this kind; `None` for IDS
    /// alerts, whose class depends on the flow ([`IdsFacts::established`]).
    pub const fn class(self) -> Option<EvidenceClass> {
        match self {
            Self::TreasonRetransmit
            | Self::TreasonProbe
            | Self::ZeroWindowSeen
            | Self::KernelLog => Some(EvidenceClass::Confirmed),
            Self::ZeroWindowSyn | Self::ZeroWindowFlood => Some(EvidenceClass::Forgeable),
            Self::Ids => None,
        }
    }

    /// Evidence the kernel itself produced about a live connection or
    /// packets (as opposed to a third-party report such as an IDS).
    pub const fn is_kernel_evidence(self) -> bool {
        !matches!(self, Self::Ids)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TreasonRetransmit => "treason-retransmit",
            Self::TreasonProbe => "treason-probe",
            Self::ZeroWindowSeen => "zero-window-seen",
            Self::ZeroWindowSyn => "zero-window-syn",
            Self::ZeroWindowFlood => "zero-window-flood",
            Self::KernelLog => "kernel-log",
            Self::Ids => "ids",
        }
    }
}

/// TCP facts a kernel probe saw on the socket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpFacts {
    /// The peer's advertised window (`tcp_sock.snd_wnd`).
    pub snd_wnd: u32,
    /// TCP state number (1 = ESTABLISHED, ...).
    pub state: u16,
    /// Bytes sent and not yet acknowledged.
    pub pending_bytes: u64,
    /// How long the window had been closed with nothing acknowledged, for
    /// stall events (milliseconds).
    pub stalled_ms: u64,
    /// Identity of the socket, to tell one connection from many: a keyed
    /// hash of the kernel's `struct sock *` (see
    /// [`probe::socket_id`](super::probe::socket_id)), never the pointer
    /// itself, which would leak the kernel's address layout (KASLR) into
    /// prompts, the journal and transcripts.
    pub socket: u64,
}

/// Fields of an IDS alert, kept as quoted data. Text fields are truncated
/// (see [`MAX_TEXT`](crate::text::MAX_TEXT)) and never interpreted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdsFacts {
    pub signature_id: u64,
    pub signature: String,
    pub category: String,
    /// Suricata severity: 1 (high) to 3 (low), 4 for informational.
    pub severity: u8,
    pub proto: String,
    /// Attacker-controlled payload text, if the alert carried it.
    pub payload_printable: Option<String>,
    /// The alert matched an established TCP flow (Suricata identified the
    /// application protocol, or logged the TCP state as established): its
    /// source completed a handshake. Otherwise the evidence is forgeable.
    #[serde(default)]
    pub established: bool,
}

/// One piece of evidence about one source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub source: AlertSource,
    pub kind: AlertKind,
    /// The suspect: the remote end for probe events, the packet source for
    /// XDP events, `src_ip` for IDS alerts.
    pub peer: IpAddr,
    pub peer_port: Option<u16>,
    /// Our end, when known.
    pub local: Option<IpAddr>,
    pub local_port: Option<u16>,
    /// CLOCK_BOOTTIME when the evidence was produced (the kernel's timestamp
    /// for probe and XDP events, the read time for log and IDS lines).
    pub observed_ns: u64,
    /// Deduplication key within a source and kind: the IDS rule id, the
    /// kernel message spelling, or the probe name.
    pub signature: String,
    /// Kind-specific count: zero-window SYNs, events merged, ...
    pub count: u64,
    pub tcp: Option<TcpFacts>,
    pub ids: Option<IdsFacts>,
}

impl Alert {
    /// Whether the source address of this evidence could be forged.
    pub fn class(&self) -> EvidenceClass {
        self.kind
            .class()
            .unwrap_or(match self.ids.as_ref().is_some_and(|i| i.established) {
                true => EvidenceClass::Confirmed,
                false => EvidenceClass::Forgeable,
            })
    }
}

/// Counts what the alert pipeline received, dropped and rejected; shared by
/// all sources and read by `blocker status`.
#[derive(Debug, Default)]
pub struct PipelineCounters {
    /// Alerts handed to the incident tracker.
    pub delivered: AtomicU64,
    /// Alerts dropped because the channel was full (consumer behind).
    pub dropped_full: AtomicU64,
    /// Input lines or events rejected as malformed.
    pub malformed: AtomicU64,
    /// Input lines ignored on purpose (non-alert eve events, unrelated
    /// kernel messages).
    pub ignored: AtomicU64,
    /// Of `dropped_full`, by evidence class and source: what a flood shed
    /// at the intake ([`EvidenceClass::index`], [`AlertSource::index`]).
    pub shed: [[AtomicU64; 4]; 2],
}

impl PipelineCounters {
    pub fn snapshot(&self) -> PipelineSnapshot {
        PipelineSnapshot {
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped_full: self.dropped_full.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            ignored: self.ignored.load(Ordering::Relaxed),
        }
    }

    /// Alerts shed at the intake because their lane was full, by class and
    /// source (non-zero ones only).
    pub fn shed(&self) -> Vec<(EvidenceClass, AlertSource, u64)> {
        let mut v = Vec::new();
        for class in EvidenceClass::ALL {
            for source in AlertSource::ALL {
                let n = self.shed[class.index()][source.index()].load(Ordering::Relaxed);
                if n > 0 {
                    v.push((class, source, n));
                }
            }
        }
        v
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineSnapshot {
    pub delivered: u64,
    pub dropped_full: u64,
    pub malformed: u64,
    pub ignored: u64,
}

/// The sources' way into the pipeline: one bounded lane per evidence
/// class, so that a flood of forgeable evidence (spoofed zero-window SYNs,
/// IDS alerts on UDP) fills only its own lane and never crowds out what the
/// kernel confirmed on an established socket. The pipeline drains the
/// confirmed lane first.
#[derive(Clone, Debug)]
pub struct AlertTx {
    confirmed: mpsc::Sender<Alert>,
    forgeable: mpsc::Sender<Alert>,
}

/// The pipeline's end of [`AlertTx`].
#[derive(Debug)]
pub struct AlertRx {
    pub confirmed: mpsc::Receiver<Alert>,
    pub forgeable: mpsc::Receiver<Alert>,
}

/// Two lanes of `capacity` alerts each.
pub fn lanes(capacity: usize) -> (AlertTx, AlertRx) {
    let (ctx, crx) = mpsc::channel(capacity.max(1));
    let (ftx, frx) = mpsc::channel(capacity.max(1));
    (
        AlertTx {
            confirmed: ctx,
            forgeable: ftx,
        },
        AlertRx {
            confirmed: crx,
            forgeable: frx,
        },
    )
}

/// One lane for both classes (tests and tools reading a single source).
impl From<mpsc::Sender<Alert>> for AlertTx {
    fn from(tx: mpsc::Sender<Alert>) -> Self {
        Self {
            confirmed: tx.clone(),
            forgeable: tx,
        }
    }
}

impl AlertTx {
    /// Whether the pipeline has gone (both lanes closed).
    pub fn is_closed(&self) -> bool {
        self.confirmed.is_closed() && self.forgeable.is_closed()
    }

    fn lane(&self, class: EvidenceClass) -> &mpsc::Sender<Alert> {
        match class {
            EvidenceClass::Confirmed => &self.confirmed,
            EvidenceClass::Forgeable => &self.forgeable,
        }
    }
}

/// Sends `alert` into its class's lane without waiting: when the consumer
/// is behind, the alert is dropped and counted (by class and source), so a
/// flood can never grow memory.
pub fn deliver(tx: &AlertTx, alert: Alert, counters: &PipelineCounters) {
    let (class, source) = (alert.class(), alert.source);
    match tx.lane(class).try_send(alert) {
        Ok(()) => {
            counters.delivered.fetch_add(1, Ordering::Relaxed);
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            counters.dropped_full.fetch_add(1, Ordering::Relaxed);
            counters.shed[class.index()][source.index()].fetch_add(1, Ordering::Relaxed);
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            source: AlertSource::Probe,
            kind: AlertKind::TreasonProbe,
            peer: "198.18.0.2".parse().unwrap(),
            peer_port: Some(40000),
            local: None,
            local_port: Some(8080),
            observed_ns: 1,
            signature: "tcp_send_probe0".into(),
            count: 1,
            tcp: None,
            ids: None,
        }
    }

    #[test]
    fn full_channel_drops_and_counts() {
        let (tx, mut rx) = mpsc::channel(2);
        let tx = AlertTx::from(tx);
        let c = PipelineCounters::default();
        for _ in 0..5 {
            deliver(&tx, alert(), &c);
        }
        let s = c.snapshot();
        assert_eq!((s.delivered, s.dropped_full), (2, 3));
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn a_forgeable_flood_fills_only_its_own_lane() {
        let (tx, mut rx) = lanes(2);
        let c = PipelineCounters::default();
        let mut syn = alert();
        syn.source = AlertSource::Xdp;
        syn.kind = AlertKind::ZeroWindowSyn;
        for _ in 0..100 {
            deliver(&tx, syn.clone(), &c);
        }
        deliver(&tx, alert(), &c);
        let s = c.snapshot();
        assert_eq!((s.delivered, s.dropped_full), (3, 98));
        assert_eq!(
            c.shed(),
            vec![(EvidenceClass::Forgeable, AlertSource::Xdp, 98)]
        );
        assert_eq!(
            rx.confirmed.try_recv().unwrap().kind,
            AlertKind::TreasonProbe
        );
        assert_eq!(
            rx.forgeable.try_recv().unwrap().kind,
            AlertKind::ZeroWindowSyn
        );
    }
}
