//! Kernel log lines (`evidence::kmsg::classify`): anything a `/dev/kmsg`
//! record, `dmesg` output or a replayed log file can hold. Never panics; a
//! line it takes for the treason message states facts that survive being
//! printed again the way the kernel prints them.

#![no_main]

use std::net::IpAddr;

use blocker::{
    addr,
    evidence::alert::{AlertKind, AlertSource},
    evidence::kmsg::{self, Parsed, Spelling, TreasonMessage},
};
use libfuzzer_sys::fuzz_target;

/// The message as the kernel would print it (formats in the module docs of
/// `evidence::kmsg`): `%pI4`, or `%pI6`, which is never compressed.
fn render(m: &TreasonMessage) -> String {
    let peer = match m.peer {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => a
            .segments()
            .iter()
            .map(|s| format!("{s:04x}"))
            .collect::<Vec<_>>()
            .join(":"),
    };
    let (p, l, una, nxt) = (m.peer_port, m.local_port, m.snd_una, m.snd_nxt);
    match m.spelling {
        Spelling::TreasonUncloaked => {
            format!(
                "TCP: Treason uncloaked! Peer {peer}:{p}/{l} shrinks window {una}:{nxt}. Repaired."
            )
        }
        Spelling::UnexpectedlyShrunk => {
            format!("Peer {peer}:{p}/{l} unexpectedly shrunk window {una}:{nxt} (repaired)")
        }
        Spelling::ProbingZeroWindow => format!(
            "Probing zero-window on {peer}:{p}/{l}, seq={una}:{nxt}, recv 1ms ago, lasting 2ms"
        ),
    }
}

fuzz_target!(|line: &[u8]| {
    let parsed = kmsg::classify(line);
    if let Ok(text) = std::str::from_utf8(line) {
        // The two entry points agree.
        assert_eq!(
            kmsg::parse_line(text).is_some(),
            matches!(parsed, Parsed::Treason(_))
        );
    }
    match parsed {
        Parsed::Treason(m) => {
            assert_eq!(addr::canonical(m.peer), m.peer, "peer not canonical");
            let again = render(&m);
            assert_eq!(
                kmsg::classify(again.as_bytes()),
                Parsed::Treason(m.clone()),
                "{again:?}"
            );
            let a = m.clone().into_alert(1);
            assert_eq!(
                (a.source, a.kind),
                (AlertSource::Kmsg, AlertKind::KernelLog)
            );
            assert_eq!((a.peer, a.peer_port), (m.peer, Some(m.peer_port)));
            assert_eq!(a.signature, m.spelling.as_str());
        }
        Parsed::Malformed(why) => {
            let msg = why.to_string();
            assert!(msg.len() < 100 && !msg.chars().any(char::is_control));
        }
        Parsed::Other | Parsed::Filler => {}
    }
});
