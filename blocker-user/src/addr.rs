//! Addresses and prefixes: parsing what operators type, and the map keys the
//! kernel compares against. The one place addresses are converted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use blocker_common::{Ipv4Key, Ipv6Key, LpmV4};
pub use ipnet::IpNet;
use ipnet::{Ipv4Net, Ipv6Net};

/// Why an address argument was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddrError {
    #[error(
        "{0:?} is not an IP address or CIDR prefix (examples: 198.51.100.7, 203.0.113.0/24, 2001:db8::/48)"
    )]
    Invalid(String),
    #[error("{input} has host bits set; did you mean {suggestion}?")]
    HostBits { input: String, suggestion: IpNet },
}

/// Parses `198.51.100.7`, `203.0.113.0/24`, `2001:db8::1` or `2001:db8::/48`.
///
/// A bare address is a single host (/32 or /128). Prefixes with host bits set
/// (`10.0.0.5/24`) are refused rather than silently widened, and IPv4-mapped
/// IPv6 (`::ffff:192.0.2.1`) becomes plain IPv4, because that is how the
/// packets arrive at XDP.
pub fn parse_net(input: &str) -> Result<IpNet, AddrError> {
    let s = input.trim();
    let invalid = || AddrError::Invalid(input.to_string());
    let net = match s.split_once('/') {
        None => IpNet::from(s.parse::<IpAddr>().map_err(|_| invalid())?),
        Some((addr, len)) => {
            let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
            // Reject "+8", " 8", "08" oddities: digits only.
            if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
                return Err(invalid());
            }
            let len: u8 = len.parse().map_err(|_| invalid())?;
            IpNet::new(addr, len).map_err(|_| invalid())?
        }
    };
    let net = unmap(net);
    if net.network() != net.addr() {
        return Err(AddrError::HostBits {
            input: input.to_string(),
            suggestion: net.trunc(),
        });
    }
    Ok(net)
}

/// `::ffff:a.b.c.d/len` (len ≥ 96) → `a.b.c.d/(len-96)`; anything else unchanged.
fn unmap(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && v6.prefix_len() >= 96
    {
        return IpNet::V4(Ipv4Net::new(v4, v6.prefix_len() - 96).expect("len - 96 <= 32"));
    }
    net
}

/// A single address as a host prefix (/32 or /128), IPv4-mapped unmapped.
pub fn host(addr: IpAddr) -> IpNet {
    unmap(IpNet::from(addr))
}

/// The canonical form of an address: IPv4-mapped IPv6 becomes IPv4.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether the prefix names exactly one address (stored in the exact-match
/// hash maps rather than the LPM tries).
pub fn is_host(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

/// Formats a prefix the way operators write it: hosts without `/32`/`/128`.
pub fn display(net: &IpNet) -> String {
    if is_host(net) {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

pub fn v4_key(addr: Ipv4Addr) -> Ipv4Key {
    addr.octets()
}

pub fn v6_key(addr: Ipv6Addr) -> Ipv6Key {
    addr.octets()
}

pub fn lpm_v4(net: Ipv4Net) -> aya::maps::lpm_trie::Key<LpmV4> {
    aya::maps::lpm_trie::Key::new(u32::from(net.prefix_len()), LpmV4::new(net.addr().octets()))
}

pub fn lpm_v6(net: Ipv6Net) -> aya::maps::lpm_trie::Key<Ipv6Key> {
    aya::maps::lpm_trie::Key::new(u32::from(net.prefix_len()), net.addr().octets())
}

/// The prefix an IPv4 LPM key stands for; `None` for keys userspace never
/// writes (prefix longer than 32 bits).
pub fn from_lpm_v4(key: &aya::maps::lpm_trie::Key<LpmV4>) -> Option<IpNet> {
    let len = u8::try_from(key.prefix_len()).ok()?;
    Ipv4Net::new(Ipv4Addr::from(key.data().addr), len)
        .ok()
        .map(IpNet::V4)
}

pub fn from_lpm_v6(key: &aya::maps::lpm_trie::Key<Ipv6Key>) -> Option<IpNet> {
    let len = u8::try_from(key.prefix_len()).ok()?;
    Ipv6Net::new(Ipv6Addr::from(key.data()), len)
        .ok()
        .map(IpNet::V6)
}

/// The address in a 16-byte event field of the given family.
pub fn from_event(family: u16, bytes: [u8; 16]) -> Option<IpAddr> {
    match family {
        blocker_common::AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        blocker_common::AF_INET6 => Some(canonical(IpAddr::V6(Ipv6Addr::from(bytes)))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_and_prefixes() {
        assert_eq!(
            parse_net("198.51.100.7").unwrap().to_string(),
            "198.51.100.7/32"
        );
        assert_eq!(
            parse_net(" 203.0.113.0/24 ").unwrap().to_string(),
            "203.0.113.0/24"
        );
        assert_eq!(
            parse_net("2001:db8::1").unwrap().to_string(),
            "2001:db8::1/128"
        );
        assert_eq!(
            parse_net("2001:db8::/48").unwrap().to_string(),
            "2001:db8::/48"
        );
        assert_eq!(parse_net("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
    }

    #[test]
    fn unmaps_ipv4_mapped_ipv6() {
        assert_eq!(
            parse_net("::ffff:192.0.2.1").unwrap().to_string(),
            "192.0.2.1/32"
        );
        assert_eq!(
            parse_net("::ffff:192.0.2.0/120").unwrap().to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            canonical("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn refuses_host_bits_with_a_suggestion() {
        let err = parse_net("10.0.0.5/24").unwrap_err();
        assert_eq!(
            err,
            AddrError::HostBits {
                input: "10.0.0.5/24".into(),
                suggestion: "10.0.0.0/24".parse().unwrap()
            }
        );
        assert!(err.to_string().contains("did you mean 10.0.0.0/24"));
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "1.2.3",
            "1.2.3.4/33",
            "1.2.3.4/",
            "1.2.3.4/+8",
            "1.2.3.4/ 8",
            "1.2.3.4/0008",
            "::1/129",
            "example.com",
            "1.2.3.4/24/1",
            "256.1.1.1",
            "1.2.3.4; rm -rf /",
        ] {
            assert!(
                matches!(parse_net(bad), Err(AddrError::Invalid(_))),
                "{bad:?} parsed"
            );
        }
    }

    #[test]
    fn keys_are_network_byte_order() {
        assert_eq!(v4_key("198.18.0.1".parse().unwrap()), [198, 18, 0, 1]);
        let key = lpm_v4("198.18.0.0/15".parse().unwrap());
        assert_eq!(key.prefix_len(), 15);
        assert_eq!(key.data().addr, [198, 18, 0, 0]);
        assert_eq!(key.data().pad, [0; 4]);
        assert_eq!(
            from_lpm_v4(&key).unwrap(),
            "198.18.0.0/15".parse::<IpNet>().unwrap()
        );
        let key6 = lpm_v6("2001:db8::/32".parse().unwrap());
        assert_eq!(&key6.data()[..4], &[0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(
            from_lpm_v6(&key6).unwrap(),
            "2001:db8::/32".parse::<IpNet>().unwrap()
        );
    }

    #[test]
    fn displays_hosts_without_length() {
        assert_eq!(display(&parse_net("198.18.0.1").unwrap()), "198.18.0.1");
        assert_eq!(
            display(&parse_net("198.18.0.0/16").unwrap()),
            "198.18.0.0/16"
        );
        assert_eq!(display(&parse_net("2001:db8::1").unwrap()), "2001:db8::1");
    }

    #[test]
    fn event_addresses() {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&[198, 18, 0, 9]);
        assert_eq!(
            from_event(blocker_common::AF_INET, b),
            Some("198.18.0.9".parse().unwrap())
        );
        assert_eq!(from_event(99, b), None);
    }
}
