//! What operators and agents type for addresses and TTLs
//! (`addr::parse_net`, `ttl::parse_ttl`): the one address parser decides
//! what a ban covers, so whatever it accepts must mean exactly one prefix.

#![no_main]

use blocker::{addr, ttl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(net) = addr::parse_net(s) {
        // No host bits, IPv4-mapped unmapped: the form the maps hold.
        assert_eq!(net.trunc(), net, "{s:?}");
        assert_eq!(addr::canonical(net.addr()), net.addr(), "{s:?}");
        // Both printed forms read back as the same prefix.
        assert_eq!(addr::parse_net(&net.to_string()), Ok(net));
        assert_eq!(addr::parse_net(&addr::display(&net)), Ok(net));
        assert_eq!(
            addr::is_host(&net),
            net.prefix_len() == net.max_prefix_len()
        );
    }
    match ttl::parse_ttl(s) {
        Ok(Some(d)) => {
            assert!(!d.is_zero(), "{s:?}");
            let shown = ttl::format_remaining(d);
            assert!(!shown.is_empty() && shown.len() < 40, "{shown}");
        }
        Ok(None) => assert!(
            s.trim().eq_ignore_ascii_case("never") || s.trim().eq_ignore_ascii_case("permanent")
        ),
        Err(e) => {
            // The error quotes the input with {:?}: escaped, one line.
            assert!(!e.to_string().contains('\n'));
        }
    }
});
