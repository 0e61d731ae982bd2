//! CLOCK_BOOTTIME, the kernel's clock for rule expiry, and its conversion to
//! wall-clock time. The one place the two clocks meet.
//!
//! The XDP program compares expiries with `bpf_ktime_get_boot_ns()`, which
//! reads CLOCK_BOOTTIME: it keeps counting through suspend, unlike
//! CLOCK_MONOTONIC, and it does not jump with NTP like the wall clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds of CLOCK_BOOTTIME now.
pub fn boottime_ns() -> u64 {
    // CLOCK_BOOTTIME exists since Linux 2.6.39; it is the clock the XDP
    // program's bpf_ktime_get_boot_ns() reads.
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// The CLOCK_BOOTTIME instant `ttl` from now, as stored in `expires_at_ns`.
/// `None` (no TTL) is 0, "never".
pub fn expiry_from_now(ttl: Option<Duration>) -> u64 {
    match ttl {
        None => 0,
        Some(ttl) => boottime_ns()
            .saturating_add(u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX))
            .max(1),
    }
}

/// Time left until `expires_at_ns`: `None` for permanent rules, zero once past.
pub fn remaining(expires_at_ns: u64, now_ns: u64) -> Option<Duration> {
    (expires_at_ns != 0).then(|| Duration::from_nanos(expires_at_ns.saturating_sub(now_ns)))
}

/// Converts a CLOCK_BOOTTIME instant to wall-clock time.
pub fn to_system(boot_ns: u64) -> SystemTime {
    let now_boot = boottime_ns();
    let now = SystemTime::now();
    if boot_ns >= now_boot {
        now + Duration::from_nanos(boot_ns - now_boot)
    } else {
        now - Duration::from_nanos(now_boot - boot_ns)
    }
}

/// Converts wall-clock time to a CLOCK_BOOTTIME instant (clamped at 1 ns for
/// instants before boot, which are already in the past).
pub fn from_system(at: SystemTime) -> u64 {
    let now_boot = boottime_ns();
    let now = SystemTime::now();
    match at.duration_since(now) {
        Ok(ahead) => now_boot.saturating_add(ahead.as_nanos() as u64),
        Err(behind) => now_boot
            .saturating_sub(behind.duration().as_nanos() as u64)
            .max(1),
    }
}

/// Seconds since the Unix epoch, as stored in the database and JSON output.
pub fn unix_secs(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// The wall-clock instant of a Unix timestamp in seconds.
pub fn from_unix_secs(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// RFC 3339 in UTC with second precision: `2026-11-21T12:00:00Z`.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boottime_advances() {
        let a = boottime_ns();
        std::thread::sleep(Duration::from_millis(2));
        assert!(boottime_ns() >= a + 1_000_000);
    }

    #[test]
    fn expiry_and_remaining() {
        assert_eq!(expiry_from_now(None), 0);
        let now = boottime_ns();
        let exp = expiry_from_now(Some(Duration::from_secs(3600)));
        assert!(exp >= now + 3_600_000_000_000);
        let left = remaining(exp, now).unwrap();
        assert!(left <= Duration::from_secs(3601) && left >= Duration::from_secs(3599));
        assert_eq!(remaining(0, now), None);
        assert_eq!(remaining(now - 5, now), Some(Duration::ZERO));
    }

    #[test]
    fn wall_clock_round_trip() {
        let boot = boottime_ns() + 90_000_000_000;
        let wall = to_system(boot);
        let back = from_system(wall);
        assert!(back.abs_diff(boot) < 50_000_000, "{back} vs {boot}");
        assert_eq!(from_system(UNIX_EPOCH), 1);
    }

    #[test]
    fn unix_seconds() {
        let t = from_unix_secs(1_790_000_000);
        assert_eq!(unix_secs(t), 1_790_000_000);
        assert_eq!(rfc3339(from_unix_secs(0)), "1970-01-01T00:00:00Z");
    }
}
