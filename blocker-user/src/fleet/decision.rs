//! What nodes tell each other: typed decisions, never raw evidence, prompts
//! or commands. One JSON object per NATS message; the decision id is also
//! the message's `Nats-Msg-Id`, so JetStream drops a re-sent copy inside its
//! duplicate window and receivers drop later ones by id.
//!
//! Expiry travels as an absolute wall-clock instant (Unix seconds): the
//! stream may hold a decision for days and a node may read it long after it
//! was made, so a relative TTL would be wrong by the time it is read. Each
//! node then converts it to its own CLOCK_BOOTTIME for the kernel
//! (`clock::from_system`). That makes the nodes' wall clocks part of the
//! contract: they are assumed NTP-synchronised to within
//! [`super::FleetConfig::max_clock_skew`], and a decision that only makes
//! sense with a clock far off is refused (see [`Decision::check_clock`]).

use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{addr, clock, rule::List};

/// Version of the message format; receivers refuse other versions.
pub const VERSION: u32 = 1;
/// Longest node name (one subject token).
pub const MAX_NODE: usize = 64;
/// Longest decision id.
pub const MAX_ID: usize = 128;
/// Longest reason text carried (the guard's justification limit).
pub const MAX_REASON: usize = crate::guard::MAX_JUSTIFICATION;
/// Longest incident digest.
pub const MAX_INCIDENT: usize = 256;
/// Largest message accepted, bytes: a valid decision is far smaller.
pub const MAX_MESSAGE: usize = 4096;

/// What a decision does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Drop the target's traffic until `expires_at`.
    Block,
    /// Lift the origin's earlier block of the target.
    Unblock,
}

impl Kind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Unblock => "unblock",
        }
    }
}

/// One decision as published on the stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// [`VERSION`].
    pub v: u32,
    /// Unique per origin; the `Nats-Msg-Id`.
    pub id: String,
    /// The node that decided (also the last token of the subject).
    pub origin: String,
    pub kind: Kind,
    /// Which table: always `block` (no node may allowlist on another).
    pub list: List,
    /// An address or prefix, canonical (host bits zero).
    pub target: IpNet,
    /// Wall-clock expiry, Unix seconds; `None` only for unblocks.
    pub expires_at: Option<i64>,
    /// When the origin applied it, Unix milliseconds (propagation time).
    pub issued_at_ms: i64,
    /// `blocker_common::reason` code.
    pub reason_code: u32,
    /// Free text, as journaled on the origin (checked by the guard here).
    pub reason: String,
    /// A short digest of the incident behind it (kinds and counts), or the
    /// operator's `cli`; evidence itself never travels.
    pub incident: String,
}

/// Why a message was rejected before any policy or guard saw it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("message of {0} bytes is over the {MAX_MESSAGE}-byte limit")]
    TooLarge(usize),
    #[error("not a decision: {0}")]
    Unparsable(String),
    #[error("message format version {0} (this blocker reads {VERSION})")]
    Version(u32),
    #[error("{field} is invalid: {why}")]
    Field { field: &'static str, why: String },
    #[error("published on {subject} but claims origin {origin:?}")]
    SubjectMismatch { subject: String, origin: String },
    #[error("origin {0:?} is not in [fleet.policy] origins")]
    UnknownOrigin(String),
}

impl Rejection {
    /// A short, bounded label for counters.
    pub const fn label(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "too_large",
            Self::Unparsable(_) => "unparsable",
            Self::Version(_) => "version",
            Self::Field { .. } => "invalid",
            Self::SubjectMismatch { .. } => "subject_mismatch",
            Self::UnknownOrigin(_) => "unknown_origin",
        }
    }
}

/// Why a valid decision is not applied on this node at this time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClockRefusal {
    #[error("expired at {0} (before it reached this node)")]
    Expired(String),
    #[error(
        "issued {ahead}s in the future by this node's clock (more than the allowed skew of {skew}s): check NTP on both nodes"
    )]
    IssuedInFuture { ahead: u64, skew: u64 },
    #[error(
        "expires {left}s from now, more than max_ttl ({max}s) plus the allowed skew ({skew}s): an absurd expiry or a clock far off"
    )]
    TooFarAhead { left: u64, max: u64, skew: u64 },
}

/// A node name: one NATS subject token of `[A-Za-z0-9_-]`.
pub fn valid_node(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NODE {
        return Err(format!("must be 1 to {MAX_NODE} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "{c:?} is not allowed (letters, digits, '-' and '_' only)"
        ));
    }
    Ok(())
}

fn field(field: &'static str, why: impl Into<String>) -> Rejection {
    Rejection::Field {
        field,
        why: why.into(),
    }
}

impl Decision {
    /// A block decided on this node now, lasting `ttl`.
    pub fn block(
        origin: &str,
        target: IpNet,
        ttl: Duration,
        reason_code: u32,
        reason: &str,
        incident: &str,
    ) -> Self {
        let now = SystemTime::now();
        let expires =
            clock::unix_secs(now).saturating_add(ttl.as_secs().min(i64::MAX as u64) as i64);
        Self::new(
            origin,
            Kind::Block,
            target,
            Some(expires),
            reason_code,
            reason,
            incident,
        )
    }

    /// An unblock decided on this node now.
    pub fn unblock(origin: &str, target: IpNet, reason: &str) -> Self {
        Self::new(
            origin,
            Kind::Unblock,
            target,
            None,
            blocker_common::reason::MANUAL,
            reason,
            "cli",
        )
    }

    fn new(
        origin: &str,
        kind: Kind,
        target: IpNet,
        expires_at: Option<i64>,
        reason_code: u32,
        reason: &str,
        incident: &str,
    ) -> Self {
        let issued_at_ms = unix_ms(SystemTime::now());
        Self {
            v: VERSION,
            id: new_id(origin, issued_at_ms),
            origin: origin.to_owned(),
            kind,
            list: List::Block,
            target: target.trunc(),
            expires_at,
            issued_at_ms,
            reason_code,
            reason: truncate(&crate::text::sanitize_text(reason), MAX_REASON),
            incident: truncate(&crate::text::sanitize_text(incident), MAX_INCIDENT),
        }
    }

    /// The subject this decision is published on: `<prefix>.<origin>`.
    pub fn subject(&self, prefix: &str) -> String {
        format!("{prefix}.{}", self.origin)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a decision serializes")
    }

    /// Parses and checks a message received on `subject` (whose last token
    /// must be the origin): the shape, never the policy or the guard.
    pub fn parse(payload: &[u8], subject: &str) -> Result<Self, Rejection> {
        if payload.len() > MAX_MESSAGE {
            return Err(Rejection::TooLarge(payload.len()));
        }
        // The version first, so a newer format says so instead of failing
        // on an unknown field.
        let value: serde_json::Value =
            serde_json::from_slice(payload).map_err(|e| Rejection::Unparsable(e.to_string()))?;
        if let Some(v) = value.get("v").and_then(serde_json::Value::as_u64)
            && v != u64::from(VERSION)
        {
            return Err(Rejection::Version(u32::try_from(v).unwrap_or(u32::MAX)));
        }
        let d: Self =
            serde_json::from_value(value).map_err(|e| Rejection::Unparsable(e.to_string()))?;
        d.validate()?;
        if subject.rsplit('.').next() != Some(d.origin.as_str()) {
            return Err(Rejection::SubjectMismatch {
                subject: subject.to_owned(),
                origin: d.origin,
            });
        }
        Ok(d)
    }

    /// Checks every field for what a well-behaved origin sends.
    pub fn validate(&self) -> Result<(), Rejection> {
        valid_node(&self.origin).map_err(|why| field("origin", why))?;
        if self.id.is_empty()
            || self.id.len() > MAX_ID
            || !self.id.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(field(
                "id",
                format!("1 to {MAX_ID} printable ASCII characters"),
            ));
        }
        if self.list != List::Block {
            return Err(field("list", "only block decisions are shared"));
        }
        if self.target.trunc() != self.target {
            return Err(field(
                "target",
                format!("{} has host bits set", self.target),
            ));
        }
        match (self.kind, self.expires_at) {
            (Kind::Block, None) => {
                return Err(field("expires_at", "a shared block must expire"));
            }
            (Kind::Block, Some(e)) if e <= 0 => {
                return Err(field("expires_at", format!("{e} is not a time")));
            }
            (Kind::Unblock, Some(_)) => {
                return Err(field("expires_at", "an unblock has no expiry"));
            }
            _ => {}
        }
        if self.issued_at_ms <= 0 {
            return Err(field("issued_at_ms", "not a time"));
        }
        if self.reason.len() > MAX_REASON {
            return Err(field("reason", format!("over {MAX_REASON} bytes")));
        }
        if self.incident.len() > MAX_INCIDENT {
            return Err(field("incident", format!("over {MAX_INCIDENT} bytes")));
        }
        if self
            .reason
            .chars()
            .chain(self.incident.chars())
            .any(char::is_control)
        {
            return Err(field("reason", "control characters"));
        }
        Ok(())
    }

    /// Checks the decision's times against this node's wall clock `now`:
    /// refuses what already expired, what was issued in the future and what
    /// expires further ahead than `max_ttl` allows, each with `skew` of
    /// slack for clocks that NTP keeps close but not equal. Returns the TTL
    /// left for a block (`None` for an unblock).
    pub fn check_clock(
        &self,
        now: SystemTime,
        max_ttl: Duration,
        skew: Duration,
    ) -> Result<Option<Duration>, ClockRefusal> {
        let now_ms = unix_ms(now);
        let skew_s = skew.as_secs();
        let ahead_ms = self.issued_at_ms.saturating_sub(now_ms);
        if ahead_ms > 0 && ahead_ms as u128 > skew.as_millis() {
            return Err(ClockRefusal::IssuedInFuture {
                ahead: (ahead_ms as u64).div_ceil(1000),
                skew: skew_s,
            });
        }
        let Some(expires) = self.expires_at else {
            return Ok(None);
        };
        let now_s = clock::unix_secs(now);
        if expires <= now_s {
            return Err(ClockRefusal::Expired(clock::rfc3339(
                clock::from_unix_secs(expires),
            )));
        }
        let left = (expires - now_s) as u64;
        if left > max_ttl.as_secs().saturating_add(skew_s) {
            return Err(ClockRefusal::TooFarAhead {
                left,
                max: max_ttl.as_secs(),
                skew: skew_s,
            });
        }
        Ok(Some(Duration::from_secs(left.min(max_ttl.as_secs()))))
    }

    /// `block 198.18.0.2/32 from a (expires …)`, for logs.
    pub fn describe(&self) -> String {
        match self.expires_at {
            Some(e) => format!(
                "{} {} from {} (expires {})",
                self.kind.as_str(),
                addr::display(&self.target),
                self.origin,
                clock::rfc3339(clock::from_unix_secs(e))
            ),
            None => format!(
                "{} {} from {}",
                self.kind.as_str(),
                addr::display(&self.target),
                self.origin
            ),
        }
    }
}

/// Unix milliseconds of `at`.
pub fn unix_ms(at: SystemTime) -> i64 {
    match at.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// `<origin>-<issued ms>-<pid>-<n>`: unique per origin without coordination
/// (the daemon and CLI invocations of one node each have their own pid).
fn new_id(origin: &str, issued_ms: i64) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{origin}-{issued_ms}-{}-{n}", std::process::id())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Decision {
        Decision::block(
            "node-a",
            "198.18.0.2/32".parse().unwrap(),
            Duration::from_secs(3600),
            blocker_common::reason::TREASON,
            "it kept its window closed",
            "treason-probe×3",
        )
    }

    #[test]
    fn round_trips_and_names_its_subject() {
        let d = sample();
        assert_eq!(d.subject("blocker.decisions"), "blocker.decisions.node-a");
        let back = Decision::parse(&d.to_json(), "blocker.decisions.node-a").unwrap();
        assert_eq!(back, d);
        assert!(d.id.starts_with("node-a-"));
        assert_ne!(sample().id, d.id, "ids are unique");
        let u = Decision::unblock("node-a", "2001:db8::/48".parse().unwrap(), "operator");
        assert_eq!(Decision::parse(&u.to_json(), "x.node-a").unwrap(), u);
    }

    #[test]
    fn rejects_malformed_messages() {
        let subject = "blocker.decisions.node-a";
        let parse = |s: &str| Decision::parse(s.as_bytes(), subject);
        assert!(matches!(parse("not json"), Err(Rejection::Unparsable(_))));
        assert!(matches!(parse("{}"), Err(Rejection::Unparsable(_))));
        assert!(matches!(
            Decision::parse(&vec![b' '; MAX_MESSAGE + 1], subject),
            Err(Rejection::TooLarge(_))
        ));
        let good: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        let with = |k: &str, v: serde_json::Value| {
            let mut m = good.clone();
            m[k] = v;
            Decision::parse(m.to_string().as_bytes(), subject)
        };
        assert_eq!(with("v", 2.into()), Err(Rejection::Version(2)));
        assert!(matches!(
            with("command", "rm -rf /".into()),
            Err(Rejection::Unparsable(_))
        ));
        assert!(matches!(
            with("list", "allow".into()),
            Err(Rejection::Field { field: "list", .. })
        ));
        assert!(matches!(
            with("target", "198.18.0.2/24".into()),
            Err(Rejection::Field {
                field: "target",
                ..
            })
        ));
        assert!(matches!(
            with("target", "not-an-address".into()),
            Err(Rejection::Unparsable(_))
        ));
        assert!(matches!(
            with("expires_at", serde_json::Value::Null),
            Err(Rejection::Field {
                field: "expires_at",
                ..
            })
        ));
        assert!(matches!(
            with("origin", "a.b".into()),
            Err(Rejection::Field {
                field: "origin",
                ..
            })
        ));
        assert!(matches!(
            with("origin", "node-b".into()),
            Err(Rejection::SubjectMismatch { .. })
        ));
        assert!(matches!(
            with("reason", "x".repeat(MAX_REASON + 1).into()),
            Err(Rejection::Field {
                field: "reason",
                ..
            })
        ));
        assert!(matches!(
            with("id", "".into()),
            Err(Rejection::Field { field: "id", .. })
        ));
    }

    #[test]
    fn clock_checks() {
        let d = sample();
        let max = Duration::from_secs(86_400);
        let skew = Duration::from_secs(30);
        let now = SystemTime::now();
        let left = d.check_clock(now, max, skew).unwrap().unwrap();
        assert!(left <= Duration::from_secs(3600) && left >= Duration::from_secs(3590));
        // The TTL is capped at the receiver's max_ttl.
        let short = Duration::from_secs(600);
        assert_eq!(
            d.check_clock(now, short, Duration::from_secs(3600))
                .unwrap(),
            Some(short)
        );
        assert!(matches!(
            d.check_clock(now, short, skew),
            Err(ClockRefusal::TooFarAhead { .. })
        ));
        assert!(matches!(
            d.check_clock(now + Duration::from_secs(7200), max, skew),
            Err(ClockRefusal::Expired(_))
        ));
        assert!(matches!(
            d.check_clock(now - Duration::from_secs(120), max, skew),
            Err(ClockRefusal::IssuedInFuture { .. })
        ));
        // Within the skew is fine.
        assert!(
            d.check_clock(now - Duration::from_secs(10), max, skew)
                .is_ok()
        );
        let u = Decision::unblock("n", "198.18.0.2/32".parse().unwrap(), "x");
        assert_eq!(u.check_clock(now, max, skew), Ok(None));
    }

    #[test]
    fn node_names() {
        assert!(valid_node("edge-01_a").is_ok());
        assert!(valid_node("").is_err());
        assert!(valid_node("a.b").is_err());
        assert!(valid_node("a*").is_err());
        assert!(valid_node(&"x".repeat(65)).is_err());
    }
}
