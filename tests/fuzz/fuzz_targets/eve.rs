//! Suricata `eve.json` lines (`evidence::eve::parse_line`): every byte of a
//! line is attacker-influenced. Never panics, and whatever it accepts is
//! bounded, printable data about a canonical address.

#![no_main]

use blocker::{
    addr,
    evidence::{
        alert::{AlertKind, AlertSource},
        eve::{self, EveError},
    },
    text::MAX_TEXT,
};
use libfuzzer_sys::fuzz_target;

/// Text that reaches logs, prompts and the journal: bounded, one line.
fn inert(what: &str, s: &str) {
    assert!(s.len() <= MAX_TEXT, "{what} is {} bytes", s.len());
    assert!(
        !s.chars().any(char::is_control),
        "{what} has control chars: {s:?}"
    );
}

fuzz_target!(|line: &[u8]| {
    match eve::parse_line(line) {
        Ok(Some(a)) => {
            assert_eq!((a.source, a.kind), (AlertSource::Suricata, AlertKind::Ids));
            // IPv4-mapped IPv6 is unmapped, as XDP sees the packets; a mapped
            // peer would dodge every IPv4 ban and allow rule.
            assert_eq!(addr::canonical(a.peer), a.peer);
            assert!(a.local.is_none_or(|l| addr::canonical(l) == l));
            let ids = a.ids.expect("IDS alerts carry IDS facts");
            assert_eq!(a.signature, format!("sid:{}", ids.signature_id));
            assert_eq!((a.count, a.tcp), (1, None));
            inert("signature", &ids.signature);
            inert("category", &ids.category);
            inert("proto", &ids.proto);
            if let Some(p) = &ids.payload_printable {
                inert("payload_printable", p);
            }
        }
        Ok(None) => {}
        Err(e) => {
            // Reasons are logged: short, and never a terminal escape.
            let msg = e.to_string();
            assert!(msg.len() < 200, "{} bytes: {msg}", msg.len());
            assert!(!msg.chars().any(char::is_control), "{msg:?}");
            if let EveError::TooLong { len } = e {
                assert_eq!(len, line.len());
            }
        }
    }
});
