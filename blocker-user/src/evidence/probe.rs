//! Kernel events from the ring buffer: the treason probes' and the XDP
//! program's zero-window SYN threshold events, turned into alerts.

use std::sync::{Arc, atomic::Ordering};

use aya::maps::{MapData, RingBuf};
use blocker_common::{Event, event_kind};
use tokio::io::unix::AsyncFd;

use crate::{
    addr,
    evidence::alert::{
        Alert, AlertKind, AlertSource, AlertTx, PipelineCounters, TcpFacts, deliver,
    },
};

/// The alert an event stands for; `None` for an event this version does not
/// know (counted as malformed by the reader).
pub fn alert_from_event(ev: &Event) -> Option<Alert> {
    let peer = addr::from_event(ev.family, ev.peer_addr)?;
    let (source, kind, signature) = match ev.kind {
        event_kind::ZERO_WINDOW_SYN => (
            AlertSource::Xdp,
            AlertKind::ZeroWindowSyn,
            "xdp-zero-window-syn",
        ),
        event_kind::TREASON_RETRANSMIT => (
            AlertSource::Probe,
            AlertKind::TreasonRetransmit,
            "retransmit-zero-window",
        ),
        event_kind::TREASON_PROBE => (AlertSource::Probe, AlertKind::TreasonProbe, "persist-probe"),
        event_kind::ZERO_WINDOW_SEEN => (
            AlertSource::Probe,
            AlertKind::ZeroWindowSeen,
            "tcp-probe-zero-window",
        ),
        _ => return None,
    };
    let from_socket = source == AlertSource::Probe;
    Some(Alert {
        source,
        kind,
        peer,
        peer_port: (from_socket && ev.peer_port != 0).then_some(ev.peer_port),
        local: if from_socket {
            addr::from_event(ev.family, ev.local_addr)
        } else {
            None
        },
        local_port: (from_socket && ev.local_port != 0).then_some(ev.local_port),
        observed_ns: ev.ts_ns,
        signature: signature.to_string(),
        count: if from_socket { 1 } else { ev.count },
        tcp: from_socket.then_some(TcpFacts {
            snd_wnd: ev.snd_wnd,
            state: ev.state,
            pending_bytes: ev.count,
            stalled_ms: ev.stalled_ns / 1_000_000,
            socket: socket_id(ev.sock_id),
        }),
        ids: None,
    })
}

/// The identity of a socket as the rest of blocker sees it: a keyed hash
/// (SipHash with a random per-daemon key) of the kernel's `struct sock *`,
/// cut to 32 bits. It tells one connection from another within a daemon's
/// life and reveals nothing about the kernel's address layout: the pointer
/// itself, sent to an LLM endpoint or written to the journal, would leak
/// KASLR to a third party.
pub fn socket_id(sock: u64) -> u64 {
    use std::hash::BuildHasher as _;
    static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(std::hash::RandomState::new).hash_one(sock) & 0xffff_ffff
}

/// Reads the ring buffer until the channel closes.
pub async fn run(
    ring: RingBuf<MapData>,
    tx: AlertTx,
    counters: Arc<PipelineCounters>,
) -> std::io::Result<()> {
    // SAFETY: the RingBuf owns its map fd for as long as the AsyncFd owns
    // the RingBuf, and always reports the same fd.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    while !tx.is_closed() {
        let mut guard = fd.readable_mut().await?;
        let ring = guard.get_inner_mut();
        while let Some(item) = ring.next() {
            if item.len() < size_of::<Event>() {
                counters.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // SAFETY: the kernel wrote an `Event` (checked length); the
            // ring buffer only guarantees 8-byte alignment, so read unaligned.
            let ev: Event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            match alert_from_event(&ev) {
                Some(alert) => deliver(&tx, alert, &counters),
                None => {
                    counters.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        guard.clear_ready();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use blocker_common::{AF_INET, AF_INET6};

    use super::*;

    #[test]
    fn probe_events_become_alerts() {
        let mut ev = Event {
            ts_ns: 42,
            kind: event_kind::TREASON_RETRANSMIT,
            family: AF_INET,
            peer_port: 40000,
            local_port: 8080,
            state: 1,
            snd_wnd: 0,
            count: 1448,
            ..Event::default()
        };
        ev.peer_addr[..4].copy_from_slice(&[198, 18, 0, 2]);
        ev.local_addr[..4].copy_from_slice(&[198, 18, 0, 1]);
        let a = alert_from_event(&ev).unwrap();
        assert_eq!(a.kind, AlertKind::TreasonRetransmit);
        assert_eq!(a.peer.to_string(), "198.18.0.2");
        assert_eq!(a.local.unwrap().to_string(), "198.18.0.1");
        assert_eq!((a.peer_port, a.local_port), (Some(40000), Some(8080)));
        assert_eq!(a.observed_ns, 42);
        assert_eq!(a.tcp.unwrap().pending_bytes, 1448);
    }

    #[test]
    fn socket_identities_are_stable_hashes_never_kernel_pointers() {
        let ptr = 0xffff_8881_0a1a_8000_u64;
        let ev = Event {
            kind: event_kind::TREASON_PROBE,
            family: AF_INET,
            sock_id: ptr,
            ..Event::default()
        };
        let id = alert_from_event(&ev).unwrap().tcp.unwrap().socket;
        assert_ne!(id, ptr);
        assert!(id <= u64::from(u32::MAX), "{id:#x}");
        assert_eq!(socket_id(ptr), id, "the same socket, the same identity");
        assert_ne!(socket_id(ptr + 0x800), id);
    }

    #[test]
    fn xdp_events_carry_the_count_and_ipv6_is_unmapped() {
        let mut ev = Event {
            kind: event_kind::ZERO_WINDOW_SYN,
            family: AF_INET6,
            count: 20,
            ..Event::default()
        };
        ev.peer_addr = "::ffff:198.18.0.7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let a = alert_from_event(&ev).unwrap();
        assert_eq!((a.source, a.count), (AlertSource::Xdp, 20));
        assert_eq!(a.peer.to_string(), "198.18.0.7");
        assert!(a.tcp.is_none() && a.local.is_none());
    }

    #[test]
    fn unknown_events_are_rejected() {
        assert!(
            alert_from_event(&Event {
                kind: 99,
                family: AF_INET,
                ..Event::default()
            })
            .is_none()
        );
        assert!(
            alert_from_event(&Event {
                kind: event_kind::TREASON_PROBE,
                family: 7,
                ..Event::default()
            })
            .is_none()
        );
    }
}
