//! The TOML configuration (`Config::parse`). Not attacker input, but an
//! operator's typo must give an error, never a panic or a config that
//! validates and then means something else.

#![no_main]

use std::time::Duration;

use blocker::{config::Config, guard::Guard};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = Config::parse(text) else {
        return;
    };
    // The daemon hands these to the kernel and the incident tracker as u64
    // nanoseconds (CLOCK_BOOTTIME); a longer duration would wrap there and
    // slip past the lower bounds checked here (a "stall" of 2^64 ns is 0).
    let durations: [(&str, Duration); 12] = [
        ("treason.event_interval", cfg.treason.event_interval),
        ("treason.stall", cfg.treason.stall),
        ("incidents.window", cfg.incidents.window),
        ("incidents.cooldown", cfg.incidents.cooldown),
        ("council.rules.base_ttl", cfg.council.rules.base_ttl),
        ("council.rules.max_ttl", cfg.council.rules.max_ttl),
        ("council.rules.policy_ttl", cfg.council.rules.policy_ttl),
        ("council.rules.watch_ttl", cfg.council.rules.watch_ttl),
        ("guard.min_ttl", cfg.guard.min_ttl),
        ("guard.max_ttl", cfg.guard.max_ttl),
        ("guard.max_policy_ttl", cfg.guard.max_policy_ttl),
        ("daemon.gc_interval", cfg.daemon.gc_interval),
    ];
    for (name, d) in durations {
        assert!(
            u64::try_from(d.as_nanos()).is_ok(),
            "{name} = {d:?} does not fit in u64 nanoseconds"
        );
    }
    // Validation covers what the daemon builds from the config.
    Guard::new(cfg.guard.clone()).expect("validated trusted list");
    // What `blocker config show` prints reads back as the same config.
    let printed = toml::to_string_pretty(&cfg).expect("a parsed config serializes");
    let again = Config::parse(&printed)
        .unwrap_or_else(|e| panic!("printed config does not parse back: {e}\n{printed}"));
    assert_eq!(again, cfg, "{printed}");
});
