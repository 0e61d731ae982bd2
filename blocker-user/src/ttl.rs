//! TTLs as operators type them (`90s`, `30m`, `1h`, `7d`, `1h30m`,
//! `never`), and remaining time as the CLI prints it.

use std::time::Duration;

/// Why a TTL argument was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TtlError {
    #[error("{0:?} is not a duration (examples: 90s, 30m, 1h, 7d, 1h30m, never)")]
    Invalid(String),
    #[error("TTL {0:?} is zero; use a positive duration, or `never` for a permanent rule")]
    Zero(String),
    #[error(
        "TTL {0:?} is longer than the maximum of 10 years (3650d); use `never` for a permanent rule"
    )]
    TooLong(String),
}

/// Longest TTL accepted. Beyond it an expiry in CLOCK_BOOTTIME nanoseconds
/// saturates (u64 holds 584 years) and the kernel entry would silently never
/// expire while the CLI showed a date centuries away; a rule meant to last
/// that long is a permanent one.
pub const MAX_TTL: Duration = Duration::from_secs(3650 * 86_400);

/// A parsed TTL: `None` means permanent.
pub type Ttl = Option<Duration>;

/// Parses `90s`, `30m`, `1h`, `7d`, `1h30m`, `2w`, or `never`/`permanent`.
/// A bare number is refused: seconds or minutes is a guess we won't make.
pub fn parse_ttl(input: &str) -> Result<Ttl, TtlError> {
    let s = input.trim();
    if s.eq_ignore_ascii_case("never") || s.eq_ignore_ascii_case("permanent") {
        return Ok(None);
    }
    if s.is_empty() || s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TtlError::Invalid(input.to_string()));
    }
    let d = parse_duration(s).map_err(|_| TtlError::Invalid(input.to_string()))?;
    if d.is_zero() {
        return Err(TtlError::Zero(input.to_string()));
    }
    if d > MAX_TTL {
        return Err(TtlError::TooLong(input.to_string()));
    }
    Ok(Some(d))
}

/// `humantime::parse_duration` without its panic. humantime 2.4.0 (the
/// latest) carries nanoseconds into seconds only above 10^9, not at it, so
/// spans adding up to exactly u64::MAX seconds plus one second in parts
/// (`18446744073709551615s 45ms 955ms`, found by the `addr` fuzz target)
/// reach `Duration::new`'s overflow panic. Every TTL and config duration
/// goes through here.
///
/// The guard: humantime's running total never exceeds the sum, over every
/// run of digits (whitespace removed, since humantime skips it inside
/// numbers), of (run + 1) times its largest unit, a year; fractions and
/// sub-second parts add less. When that bound stays below u64::MAX
/// seconds, the panic cannot happen; otherwise the input is refused as an
/// overflow, which no TTL or interval of less than 10^11 years trips.
pub fn parse_duration(s: &str) -> Result<Duration, humantime::DurationError> {
    /// humantime's longest unit (365.25 days), in seconds.
    const YEAR_SECS: u128 = 31_557_600;
    let mut bound: u128 = 0;
    let mut run: Option<u128> = None;
    for c in s.chars().filter(|c| !c.is_whitespace()).chain(['.']) {
        match (c.to_digit(10), run) {
            (Some(d), r) => {
                run = Some(r.unwrap_or(0).saturating_mul(10).saturating_add(d.into()));
            }
            (None, Some(r)) => {
                bound = bound.saturating_add(r.saturating_add(1).saturating_mul(YEAR_SECS));
                run = None;
            }
            (None, None) => {}
        }
    }
    if bound >= u128::from(u64::MAX) {
        return Err(humantime::DurationError::NumberOverflow);
    }
    humantime::parse_duration(s)
}

/// `1h 2m`-style rendering with at most two units, rounded down to seconds:
/// enough to read at a glance in a table.
pub fn format_remaining(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut out = Vec::new();
    let mut rest = secs;
    for (size, name) in UNITS {
        if rest >= size {
            out.push(format!("{}{name}", rest / size));
            rest %= size;
        }
        if out.len() == 2 {
            break;
        }
    }
    out.join(" ")
}

/// Human rendering of a TTL: `never` or the duration.
pub fn format_ttl(ttl: Ttl) -> String {
    ttl.map_or_else(|| "never".into(), format_remaining)
}

/// Serde for durations written as `30s`, `5m`, `1h` (every section of
/// the configuration uses it).
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        let d = super::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e} (examples: 30s, 5m, 1h)")))?;
        // Durations reach the kernel and the incident tracker as u64
        // nanoseconds (CLOCK_BOOTTIME). Longer ones would wrap there and
        // slip past the lower bounds `validate` checks: "584years 200days"
        // is a `stall` of a few hours, 2^64 ns one of zero.
        if u64::try_from(d.as_nanos()).is_err() {
            return Err(serde::de::Error::custom(format!(
                "{s:?} is longer than the longest duration blocker handles (about 584 years)"
            )));
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(
            parse_ttl("1000000y"),
            Err(TtlError::TooLong("1000000y".into()))
        );
        assert!(parse_ttl("3650d").is_ok());
        assert!(
            TtlError::TooLong("11y".into())
                .to_string()
                .contains("maximum of 10 years")
        );
        assert_eq!(parse_ttl("90s").unwrap(), Some(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m").unwrap(), Some(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("1h").unwrap(), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_ttl("7d").unwrap(),
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(parse_ttl("1h30m").unwrap(), Some(Duration::from_secs(5400)));
        assert_eq!(
            parse_ttl("1h 30m").unwrap(),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(parse_ttl("never").unwrap(), None);
        assert_eq!(parse_ttl("Permanent").unwrap(), None);
    }

    #[test]
    fn refuses_bad_ttls() {
        for bad in ["", "10", "1 hour ago", "-1h", "h", "1x", "forever"] {
            assert!(
                matches!(parse_ttl(bad), Err(TtlError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(parse_ttl("0s"), Err(TtlError::Zero(_))));
    }

    #[test]
    fn huge_durations_are_errors_not_panics() {
        // The `addr` fuzz target's input: humantime alone panics on it.
        for bad in [
            "18446744073709551615s045ms955ms45ms",
            "18446744073709551615s 1000ms",
            "1844674407370955161 5s 1s",
            "584542046091y",
        ] {
            assert!(
                matches!(parse_ttl(bad), Err(TtlError::Invalid(_))),
                "{bad:?}"
            );
        }
        // Long but sane durations still parse.
        assert_eq!(
            parse_duration("18446744073s 709551615ns")
                .unwrap()
                .as_nanos(),
            u128::from(u64::MAX)
        );
        assert_eq!(
            parse_duration("1000years").unwrap(),
            Duration::from_secs(31_557_600_000)
        );
        assert_eq!(parse_duration("1 2s").unwrap(), Duration::from_secs(12));
    }

    #[test]
    fn formats_remaining() {
        assert_eq!(format_remaining(Duration::from_secs(0)), "0s");
        assert_eq!(format_remaining(Duration::from_millis(59_900)), "59s");
        assert_eq!(format_remaining(Duration::from_secs(3599)), "59m 59s");
        assert_eq!(format_remaining(Duration::from_secs(3600)), "1h");
        assert_eq!(format_remaining(Duration::from_secs(90_061)), "1d 1h");
        assert_eq!(format_ttl(None), "never");
    }
}
