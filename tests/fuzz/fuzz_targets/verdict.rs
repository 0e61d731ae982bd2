//! What a council agent replies with: JSON parsed into the typed verdicts
//! (`council::Action`, `Draft`, `Ballot`). An LLM's reply is attacker-
//! influenced (prompt injection through alert text), so the parse is the
//! boundary: it never panics, and what it accepts is exactly what it says.
//!
//! TODO: when the LLM reply schema lands (branch `llm`: module
//! `council/reply.rs`, whose `reply::proposals`, `reply::ballots` and
//! `reply::summary` turn a model's raw completion text into drafts, ballots
//! and a summary after checking them against the debate), fuzz those three
//! here as well, with a `reply::Check` built from a fixed incident, and add
//! real model replies to `fuzz/seeds/verdict/`.

#![no_main]

use std::fmt::Debug;

use blocker::{
    addr,
    council::{Action, Ballot, Draft},
};
use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};

/// `Some(value)` when `json` parses as `T`; then it round-trips unchanged.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(json: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(json).ok()?;
    let again = serde_json::to_vec(&value).expect("a parsed verdict serializes");
    let back: T = serde_json::from_slice(&again).unwrap_or_else(|e| {
        panic!(
            "{value:?} serialized as {} does not parse back: {e}",
            String::from_utf8_lossy(&again)
        )
    });
    assert_eq!(back, value);
    Some(value)
}

/// What every accepted action must be, whatever the reply said.
fn check(a: &Action) {
    match a {
        Action::Block { target, .. } | Action::Unblock { target } => {
            // One address parser: no host bits, IPv4-mapped IPv6 unmapped
            // (a mapped prefix would never match a packet in XDP).
            assert_eq!(target.trunc(), *target, "host bits in {target}");
            assert_eq!(addr::canonical(target.addr()), target.addr(), "{target}");
        }
        Action::Watch { .. } | Action::ZeroWindowSynPolicy { .. } => {}
    }
    if let Some(net) = a.target_net() {
        assert_eq!(net.trunc(), net);
    }
    // Shown to operators and put in prompts: typed fields only, one line.
    let shown = a.to_string();
    assert!(shown.len() < 120, "{shown}");
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
}

fuzz_target!(|json: &[u8]| {
    if let Some(a) = round_trip::<Action>(json) {
        check(&a);
    }
    if let Some(d) = round_trip::<Draft>(json) {
        check(&d.action);
    }
    if let Some(b) = round_trip::<Ballot>(json) {
        b.alternative.iter().for_each(|d| check(&d.action));
    }
    // Agents reply with lists.
    if let Some(ds) = round_trip::<Vec<Draft>>(json) {
        ds.iter().for_each(|d| check(&d.action));
    }
    if let Some(bs) = round_trip::<Vec<Ballot>>(json) {
        bs.iter()
            .flat_map(|b| &b.alternative)
            .for_each(|d| check(&d.action));
    }
});
