//! From CrowdSec decisions to the bans blocker should hold.
//!
//! The stream names decisions by id; several can cover one prefix (a
//! community blocklist and a local scenario both ban an address). The
//! [`Book`] keeps every live `ban` decision by prefix, so deleting one of
//! them keeps the ban while another lasts, and the rule blocker holds is
//! the longest-lasting one ([`Book::want`]). Decisions that blocker does
//! not enforce are counted, not kept: other remediation types (`captcha`,
//! `throttle`: XDP can only drop), scopes other than `ip`/`range`, those
//! outside the configured filters, values that are not addresses, and the
//! decisions blocker itself pushed (scenario `blocker/...`: already enforced).

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, SystemTime},
};

use ipnet::IpNet;
use serde::Serialize;

use super::{
    CrowdsecConfig,
    lapi::{Decision, Stream, parse_go_duration},
};
use crate::addr;

/// Every rule source blocker writes for CrowdSec starts with this.
pub const SOURCE_PREFIX: &str = "crowdsec:";

/// Scenarios of the alerts blocker pushes (see `daemon::crowdsec`): their
/// decisions come back through the stream and are already enforced.
pub const OWN_SCENARIO_PREFIX: &str = "blocker/";

/// Distinct skipped decision types counted by name; the rest count as
/// `other`, so hostile input cannot grow the status without bound.
const MAX_TYPE_NAMES: usize = 16;

/// The rule source of a decision: `crowdsec:` and its origin, with the
/// list's name for blocklists (`crowdsec:lists:NAME`), like the origin
/// label of CrowdSec's own bouncers' metrics.
pub fn source_of(d: &Decision) -> String {
    if d.origin.eq_ignore_ascii_case("lists") && !d.scenario.is_empty() {
        format!("{SOURCE_PREFIX}lists:{}", d.scenario)
    } else if d.origin.is_empty() {
        format!("{SOURCE_PREFIX}unknown")
    } else {
        format!("{SOURCE_PREFIX}{}", d.origin)
    }
}

/// The configured filters, applied again on our side (older Local APIs
/// ignore some query parameters).
#[derive(Clone, Debug, Default)]
pub struct Filters {
    scopes: Vec<String>,
    origins: Vec<String>,
    containing: Vec<String>,
    not_containing: Vec<String>,
}

impl Filters {
    pub fn new(cfg: &CrowdsecConfig) -> Self {
        let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect();
        Self {
            scopes: lower(&cfg.scopes),
            origins: lower(&cfg.origins),
            containing: lower(&cfg.scenarios_containing),
            not_containing: lower(&cfg.scenarios_not_containing),
        }
    }

    fn accepts(&self, d: &Decision) -> bool {
        let scenario = d.scenario.to_ascii_lowercase();
        (self.scopes.is_empty() || self.scopes.contains(&d.scope.to_ascii_lowercase()))
            && (self.origins.is_empty() || self.origins.contains(&d.origin.to_ascii_lowercase()))
            && (self.containing.is_empty()
                || self
                    .containing
                    .iter()
                    .any(|s| scenario.contains(s.as_str())))
            && !self
                .not_containing
                .iter()
                .any(|s| scenario.contains(s.as_str()))
    }
}

/// One live ban decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub id: i64,
    pub until: SystemTime,
    /// `crowdsec:ORIGIN`.
    pub source: String,
    pub scenario: String,
}

/// The ban blocker should hold for a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    pub net: IpNet,
    pub until: SystemTime,
    pub source: String,
    pub scenario: String,
    pub decision_id: i64,
    /// Live decisions for the prefix (the longest one is this).
    pub decisions: usize,
}

impl Want {
    /// Time left at `now`; `None` once over.
    pub fn ttl(&self, now: SystemTime) -> Option<Duration> {
        self.until.duration_since(now).ok().filter(|d| !d.is_zero())
    }
}

/// What was not kept, by why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Skipped {
    /// Decisions of other types than `ban`, by type.
    pub types: BTreeMap<String, u64>,
    /// Outside the configured scopes, origins or scenario filters.
    pub filtered: u64,
    /// Pushed by blocker itself (already enforced).
    pub own: u64,
    /// Values or durations that do not parse.
    pub invalid: u64,
    /// Already over when received.
    pub expired: u64,
}

/// What one stream answer changed.
#[derive(Clone, Debug, Default)]
pub struct Delta {
    /// Prefixes whose wanted ban may have changed, each once.
    pub touched: Vec<IpNet>,
    pub received_new: usize,
    pub received_deleted: usize,
    /// Types seen for the first time in this answer (log them once).
    pub new_types: Vec<String>,
    /// One example of an invalid decision, for the log.
    pub invalid_example: Option<String>,
}

/// Every live ban decision, by prefix and by id.
#[derive(Debug, Default)]
pub struct Book {
    by_net: HashMap<IpNet, Vec<Held>>,
    by_id: HashMap<i64, IpNet>,
    pub skipped: Skipped,
}

impl Book {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Prefixes with at least one live decision.
    pub fn nets(&self) -> impl Iterator<Item = &IpNet> {
        self.by_net.keys()
    }

    /// Applies one answer of the stream received at `now`. With `startup`
    /// the answer is the whole list: what it lacks is gone.
    pub fn apply(
        &mut self,
        stream: &Stream,
        startup: bool,
        filters: &Filters,
        now: SystemTime,
    ) -> Delta {
        let mut delta = Delta {
            received_new: stream.new.len(),
            received_deleted: stream.deleted.len(),
            ..Delta::default()
        };
        let mut touched: Vec<IpNet> = Vec::new();
        if startup {
            touched.extend(self.by_net.keys().copied());
            self.by_net.clear();
            self.by_id.clear();
        }
        for d in &stream.deleted {
            if let Some(net) = self.by_id.remove(&d.id) {
                if let Some(list) = self.by_net.get_mut(&net) {
                    list.retain(|h| h.id != d.id);
                    if list.is_empty() {
                        self.by_net.remove(&net);
                    }
                }
                touched.push(net);
            }
        }
        for d in &stream.new {
            if let Some((net, held)) = self.admit(d, filters, now, &mut delta) {
                if let Some(old) = self.by_id.insert(held.id, net)
                    && let Some(list) = self.by_net.get_mut(&old)
                {
                    // The same id again (a re-sent decision): replace it.
                    list.retain(|h| h.id != held.id);
                }
                self.by_net.entry(net).or_default().push(held);
                touched.push(net);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        delta.touched = touched;
        delta
    }

    /// Whether blocker keeps `d`, counting it when not.
    fn admit(
        &mut self,
        d: &Decision,
        filters: &Filters,
        now: SystemTime,
        delta: &mut Delta,
    ) -> Option<(IpNet, Held)> {
        if !filters.accepts(d) {
            self.skipped.filtered += 1;
            return None;
        }
        if d.scenario.starts_with(OWN_SCENARIO_PREFIX) {
            self.skipped.own += 1;
            return None;
        }
        if !d.kind.eq_ignore_ascii_case("ban") {
            let name = if self.skipped.types.len() < MAX_TYPE_NAMES
                || self.skipped.types.contains_key(&d.kind)
            {
                d.kind.clone()
            } else {
                "other".to_string()
            };
            let n = self.skipped.types.entry(name.clone()).or_insert(0);
            if *n == 0 {
                delta.new_types.push(name);
            }
            *n += 1;
            return None;
        }
        let net = match d.scope.to_ascii_lowercase().as_str() {
            "ip" if !d.value.contains('/') => addr::parse_net(&d.value).ok(),
            "range" if d.value.contains('/') => addr::parse_net(&d.value).ok(),
            _ => None,
        };
        let left = parse_go_duration(&d.duration);
        let (Some(net), Some(left)) = (net, left) else {
            self.skipped.invalid += 1;
            delta.invalid_example.get_or_insert_with(|| {
                format!(
                    "decision {} ({} {:?}, duration {:?})",
                    d.id,
                    d.scope,
                    d.value.chars().take(64).collect::<String>(),
                    d.duration.chars().take(32).collect::<String>()
                )
            });
            return None;
        };
        let Some(left) = left.filter(|l| !l.is_zero()) else {
            self.skipped.expired += 1;
            return None;
        };
        Some((
            net,
            Held {
                id: d.id,
                until: now + left,
                source: source_of(d),
                scenario: d.scenario.clone(),
            },
        ))
    }

    /// The ban blocker should hold for `net` at `now`: the live decision
    /// that lasts longest (ties: the newest id), or `None`.
    pub fn want(&self, net: IpNet, now: SystemTime) -> Option<Want> {
        let list = self.by_net.get(&net)?;
        let live: Vec<&Held> = list.iter().filter(|h| h.until > now).collect();
        let best = live.iter().max_by_key(|h| (h.until, h.id))?;
        Some(Want {
            net,
            until: best.until,
            source: best.source.clone(),
            scenario: best.scenario.clone(),
            decision_id: best.id,
            decisions: live.len(),
        })
    }

    /// Live decisions by source and IP family (`ipv4`/`ipv6`), for metrics.
    pub fn active_by_source(&self, now: SystemTime) -> BTreeMap<(String, &'static str), u64> {
        let mut out = BTreeMap::new();
        for (net, list) in &self.by_net {
            let family = if net.addr().is_ipv4() { "ipv4" } else { "ipv6" };
            for h in list.iter().filter(|h| h.until > now) {
                *out.entry((h.source.clone(), family)).or_insert(0) += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(id: i64, origin: &str, kind: &str, scope: &str, value: &str, dur: &str) -> Decision {
        Decision {
            id,
            origin: origin.into(),
            kind: kind.into(),
            scope: scope.into(),
            value: value.into(),
            duration: dur.into(),
            scenario: "crowdsecurity/ssh-bf".into(),
        }
    }

    fn net(s: &str) -> IpNet {
        addr::parse_net(s).unwrap()
    }

    fn all() -> Filters {
        Filters::new(&CrowdsecConfig::default())
    }

    #[test]
    fn origins_become_sources() {
        let mut d = dec(1, "CAPI", "ban", "Ip", "203.0.113.7", "1h");
        assert_eq!(source_of(&d), "crowdsec:CAPI");
        d.origin = "lists".into();
        d.scenario = "firehol_level1".into();
        assert_eq!(source_of(&d), "crowdsec:lists:firehol_level1");
        d.origin = "cscli".into();
        assert_eq!(source_of(&d), "crowdsec:cscli");
    }

    #[test]
    fn bans_are_kept_and_the_rest_counted() {
        let now = SystemTime::now();
        let mut b = Book::default();
        let s = Stream {
            new: vec![
                dec(1, "cscli", "ban", "Ip", "203.0.113.7", "59m58.5s"),
                dec(2, "cscli", "ban", "Range", "203.0.113.0/28", "4h"),
                dec(3, "cscli", "captcha", "Ip", "203.0.113.8", "4h"),
                dec(4, "cscli", "captcha", "Ip", "203.0.113.9", "4h"),
                dec(5, "cscli", "ban", "Username", "root", "4h"),
                dec(6, "cscli", "ban", "Ip", "not-an-ip", "4h"),
                dec(7, "cscli", "ban", "Ip", "203.0.113.10", "soon"),
                dec(8, "cscli", "ban", "Ip", "2001:db8::7", "-1s"),
                dec(9, "cscli", "ban", "Ip", "::ffff:203.0.113.11", "1h"),
            ],
            deleted: vec![],
        };
        let d = b.apply(&s, true, &all(), now);
        assert_eq!(
            d.touched,
            vec![
                net("203.0.113.0/28"),
                net("203.0.113.7"),
                net("203.0.113.11")
            ]
        );
        assert_eq!(d.new_types, vec!["captcha".to_string()]);
        assert!(d.invalid_example.is_some());
        assert_eq!(b.skipped.types.get("captcha"), Some(&2));
        // "Username" is outside the default scopes.
        assert_eq!(b.skipped.filtered, 1);
        assert_eq!(b.skipped.invalid, 2);
        assert_eq!(b.skipped.expired, 1);
        let w = b.want(net("203.0.113.7"), now).unwrap();
        assert_eq!(w.source, "crowdsec:cscli");
        assert_eq!(w.ttl(now).unwrap().as_secs(), 3598);
        // A second answer saying nothing new: nothing touched.
        let d = b.apply(&Stream::default(), false, &all(), now);
        assert!(d.touched.is_empty());
    }

    #[test]
    fn the_longest_decision_wins_and_deleting_one_keeps_the_other() {
        let now = SystemTime::now();
        let mut b = Book::default();
        let s = Stream {
            new: vec![
                dec(1, "cscli", "ban", "Ip", "203.0.113.7", "1h"),
                dec(2, "CAPI", "ban", "Ip", "203.0.113.7", "4h"),
            ],
            deleted: vec![],
        };
        b.apply(&s, true, &all(), now);
        let w = b.want(net("203.0.113.7"), now).unwrap();
        assert_eq!((w.source.as_str(), w.decisions), ("crowdsec:CAPI", 2));
        let s = Stream {
            new: vec![],
            deleted: vec![dec(2, "CAPI", "ban", "Ip", "203.0.113.7", "-1ms")],
        };
        let d = b.apply(&s, false, &all(), now);
        assert_eq!(d.touched, vec![net("203.0.113.7")]);
        let w = b.want(net("203.0.113.7"), now).unwrap();
        assert_eq!((w.source.as_str(), w.decisions), ("crowdsec:cscli", 1));
        let s = Stream {
            new: vec![],
            deleted: vec![dec(1, "cscli", "ban", "Ip", "203.0.113.7", "-1ms")],
        };
        b.apply(&s, false, &all(), now);
        assert_eq!(b.want(net("203.0.113.7"), now), None);
        assert!(b.is_empty());
    }

    #[test]
    fn startup_replaces_everything() {
        let now = SystemTime::now();
        let mut b = Book::default();
        let first = Stream {
            new: vec![dec(1, "cscli", "ban", "Ip", "203.0.113.7", "1h")],
            deleted: vec![],
        };
        b.apply(&first, true, &all(), now);
        let second = Stream {
            new: vec![dec(2, "cscli", "ban", "Ip", "203.0.113.8", "1h")],
            deleted: vec![],
        };
        let d = b.apply(&second, true, &all(), now);
        // The one missing from the full list is touched (to be removed).
        assert_eq!(d.touched, vec![net("203.0.113.7"), net("203.0.113.8")]);
        assert_eq!(b.want(net("203.0.113.7"), now), None);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn filters_and_own_decisions() {
        let now = SystemTime::now();
        let cfg = CrowdsecConfig {
            scopes: vec!["ip".into()],
            origins: vec!["cscli".into(), "crowdsec".into()],
            scenarios_not_containing: vec!["http".into()],
            ..CrowdsecConfig::default()
        };
        let mut b = Book::default();
        let mut http = dec(3, "crowdsec", "ban", "Ip", "203.0.113.9", "1h");
        http.scenario = "crowdsecurity/http-probing".into();
        let mut own = dec(4, "crowdsec", "ban", "Ip", "203.0.113.10", "1h");
        own.scenario = "blocker/slow-read".into();
        let s = Stream {
            new: vec![
                dec(1, "CAPI", "ban", "Ip", "203.0.113.7", "1h"),
                dec(2, "cscli", "ban", "Range", "203.0.113.0/28", "1h"),
                http,
                own,
                dec(5, "cscli", "ban", "Ip", "203.0.113.11", "1h"),
            ],
            deleted: vec![],
        };
        let d = b.apply(&s, true, &Filters::new(&cfg), now);
        assert_eq!(d.touched, vec![net("203.0.113.11")]);
        assert_eq!((b.skipped.filtered, b.skipped.own), (3, 1));
    }

    #[test]
    fn type_names_are_bounded() {
        let now = SystemTime::now();
        let mut b = Book::default();
        let s = Stream {
            new: (0..100)
                .map(|i| dec(i, "cscli", &format!("t{i}"), "Ip", "203.0.113.7", "1h"))
                .collect(),
            deleted: vec![],
        };
        b.apply(&s, true, &all(), now);
        assert_eq!(b.skipped.types.len(), MAX_TYPE_NAMES + 1);
        assert_eq!(
            b.skipped.types.get("other"),
            Some(&(100 - MAX_TYPE_NAMES as u64))
        );
    }
}
