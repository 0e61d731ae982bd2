//! Incidents: alerts grouped per source address while the source keeps
//! misbehaving, with the evidence the council reads.
//!
//! An incident opens with its first alert and closes after `window` without
//! new ones. The council is asked to deliberate when an alert brings *new*
//! evidence: a (source, kind, signature) not seen in this incident within
//! the cooldown, or a doubling of the alert count. Repeats are counted, not
//! re-debated: MAD-Shield deduplicated alerts forever in memory; here the
//! memory of a duplicate lasts `cooldown`, and the whole table is bounded.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::evidence::alert::{Alert, AlertKind, AlertSource, EvidenceClass};

/// The incident as the council sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentView {
    pub id: u64,
    /// The suspect. For a global incident (a spoofed flood with no single
    /// source) this is the unspecified address.
    pub peer: IpAddr,
    /// Seconds since the incident opened.
    pub age_secs: u64,
    pub alert_count: u64,
    pub by_kind: BTreeMap<AlertKind, u64>,
    /// A bounded sample of the alerts, oldest first. Quoted data.
    pub evidence: Vec<Alert>,
}

impl IncidentView {
    /// Whether this incident is about no single source.
    pub fn is_global(&self) -> bool {
        self.peer.is_unspecified()
    }

    pub fn count(&self, kind: AlertKind) -> u64 {
        self.by_kind.get(&kind).copied().unwrap_or(0)
    }

    /// Every address that appears in the evidence as a suspect: the only
    /// addresses a verdict may name (the guard checks).
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = std::iter::once(self.peer)
            .chain(self.evidence.iter().map(|a| a.peer))
            .filter(|a| !a.is_unspecified())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The addresses of [`addresses`](Self::addresses) with confirmed
    /// evidence against them (see [`EvidenceClass`]): the only ones a
    /// per-source block may name.
    pub fn confirmed(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .evidence
            .iter()
            .filter(|a| a.class() == EvidenceClass::Confirmed && !a.peer.is_unspecified())
            .map(|a| crate::addr::canonical(a.peer))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// `[incidents]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentConfig {
    /// An incident closes after this long without a new alert.
    #[serde(with = "crate::ttl::duration")]
    pub window: Duration,
    /// A repeated (source, kind, signature) within this long is a duplicate:
    /// counted, not debated again.
    #[serde(with = "crate::ttl::duration")]
    pub cooldown: Duration,
    /// Open incidents at most; beyond it the stalest one is closed early.
    pub max_open: usize,
    /// Alerts kept as evidence per incident (the rest are counted).
    pub max_evidence: usize,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(300),
            max_open: 10_000,
            max_evidence: 16,
        }
    }
}

type Key = (AlertSource, AlertKind, String);

#[derive(Clone, Debug)]
pub struct Incident {
    pub id: u64,
    pub peer: IpAddr,
    pub opened_ns: u64,
    pub last_ns: u64,
    pub alert_count: u64,
    pub by_kind: BTreeMap<AlertKind, u64>,
    pub evidence: Vec<Alert>,
    seen: HashMap<Key, u64>,
    next_escalation: u64,
    /// A ban was applied; further alerts are only counted.
    pub resolved: bool,
    pub deliberations: u32,
    /// Some of its alerts were confirmed evidence ([`EvidenceClass`]):
    /// such incidents are evicted last when the table is full.
    pub confirmed: bool,
}

impl Incident {
    pub fn view(&self, now_ns: u64) -> IncidentView {
        IncidentView {
            id: self.id,
            peer: self.peer,
            age_secs: now_ns.saturating_sub(self.opened_ns) / 1_000_000_000,
            alert_count: self.alert_count,
            by_kind: self.by_kind.clone(),
            evidence: self.evidence.clone(),
        }
    }
}

/// The council should look at this incident now.
#[derive(Clone, Debug)]
pub struct Trigger {
    pub view: IncidentView,
    /// CLOCK_BOOTTIME of the evidence that triggered it (to measure the
    /// event-to-map latency).
    pub observed_ns: u64,
    /// CLOCK_BOOTTIME when the tracker triggered the debate.
    pub triggered_ns: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerCounters {
    pub opened: u64,
    pub closed: u64,
    pub evicted: u64,
    pub duplicates: u64,
    pub triggers: u64,
}

pub struct Tracker {
    cfg: IncidentConfig,
    open: HashMap<IpAddr, Incident>,
    next_id: u64,
    pub counters: TrackerCounters,
}

impl Tracker {
    /// `first_id`: ids continue from what the journal already holds.
    pub fn new(cfg: IncidentConfig, first_id: u64) -> Self {
        Self {
            cfg,
            open: HashMap::new(),
            next_id: first_id.max(1),
            counters: TrackerCounters::default(),
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    pub fn get(&self, peer: &IpAddr) -> Option<&Incident> {
        self.open.get(peer)
    }

    /// Adds `alert`; returns a trigger when it brings new evidence to an
    /// unresolved incident. `closed` receives an incident evicted to make room.
    pub fn ingest(
        &mut self,
        alert: Alert,
        now_ns: u64,
        closed: &mut Vec<Incident>,
    ) -> Option<Trigger> {
        let peer = crate::addr::canonical(alert.peer);
        if !self.open.contains_key(&peer) && self.open.len() >= self.cfg.max_open.max(1) {
            // Bounded memory: close the stalest incident early, one with
            // only forgeable evidence first, so a spoofed flood of new
            // sources cannot push out what the kernel confirmed.
            if let Some(stale) = self
                .open
                .values()
                .min_by_key(|i| (i.confirmed, i.last_ns))
                .map(|i| i.peer)
                && let Some(i) = self.open.remove(&stale)
            {
                self.counters.evicted += 1;
                closed.push(i);
            }
        }
        let cooldown = self.cfg.cooldown.as_nanos() as u64;
        let max_evidence = self.cfg.max_evidence;
        let incident = self.open.entry(peer).or_insert_with(|| {
            self.counters.opened += 1;
            let id = self.next_id;
            self.next_id += 1;
            Incident {
                id,
                peer,
                opened_ns: now_ns,
                last_ns: now_ns,
                alert_count: 0,
                by_kind: BTreeMap::new(),
                evidence: Vec::new(),
                seen: HashMap::new(),
                next_escalation: 2,
                resolved: false,
                deliberations: 0,
                confirmed: false,
            }
        });
        incident.confirmed |= alert.class() == EvidenceClass::Confirmed;
        incident.last_ns = now_ns;
        incident.alert_count += 1;
        *incident.by_kind.entry(alert.kind).or_insert(0) += 1;
        let key: Key = (alert.source, alert.kind, alert.signature.clone());
        let new_evidence = incident
            .seen
            .get(&key)
            .is_none_or(|&t| now_ns.saturating_sub(t) >= cooldown);
        incident.seen.insert(key, now_ns);
        let escalated = incident.alert_count >= incident.next_escalation;
        if escalated {
            incident.next_escalation = incident.next_escalation.saturating_mul(2);
        }
        let observed_ns = alert.observed_ns;
        if new_evidence && incident.evidence.len() < max_evidence {
            incident.evidence.push(alert);
        }
        if !new_evidence {
            self.counters.duplicates += 1;
        }
        if incident.resolved || !(new_evidence || escalated) {
            return None;
        }
        incident.deliberations += 1;
        self.counters.triggers += 1;
        Some(Trigger {
            view: incident.view(now_ns),
            observed_ns,
            triggered_ns: now_ns,
        })
    }

    /// Marks the incident of `peer` resolved (a ban was applied).
    pub fn resolve(&mut self, peer: IpAddr) {
        if let Some(i) = self.open.get_mut(&peer) {
            i.resolved = true;
        }
    }

    /// Closes incidents idle for longer than the window.
    pub fn expire(&mut self, now_ns: u64) -> Vec<Incident> {
        let window = self.cfg.window.as_nanos() as u64;
        let idle: Vec<IpAddr> = self
            .open
            .values()
            .filter(|i| now_ns.saturating_sub(i.last_ns) >= window)
            .map(|i| i.peer)
            .collect();
        let out: Vec<Incident> = idle
            .into_iter()
            .filter_map(|p| self.open.remove(&p))
            .collect();
        self.counters.closed += out.len() as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn alert(kind: AlertKind, peer: &str, sig: &str) -> Alert {
        Alert {
            source: AlertSource::Probe,
            kind,
            peer: peer.parse().unwrap(),
            peer_port: None,
            local: None,
            local_port: None,
            observed_ns: 5,
            signature: sig.into(),
            count: 1,
            tcp: None,
            ids: None,
        }
    }

    fn tracker() -> Tracker {
        Tracker::new(IncidentConfig::default(), 1)
    }

    #[test]
    fn groups_per_source_and_triggers_on_new_evidence() {
        let mut t = tracker();
        let mut closed = Vec::new();
        let a = alert(AlertKind::ZeroWindowSeen, "198.18.0.2", "tcp_probe");
        let first = t
            .ingest(a.clone(), S, &mut closed)
            .expect("first alert triggers");
        assert_eq!(first.view.alert_count, 1);
        assert_eq!(first.observed_ns, 5);
        // Same key again: the count doubles to 2 → escalation trigger.
        assert!(t.ingest(a.clone(), 2 * S, &mut closed).is_some());
        // Third: duplicate, no doubling.
        assert!(t.ingest(a.clone(), 3 * S, &mut closed).is_none());
        // Fourth doubles again.
        assert!(t.ingest(a.clone(), 4 * S, &mut closed).is_some());
        // A new kind is new evidence.
        let b = alert(
            AlertKind::TreasonRetransmit,
            "198.18.0.2",
            "tcp_retransmit_skb",
        );
        let trig = t.ingest(b, 5 * S, &mut closed).unwrap();
        assert_eq!(trig.view.by_kind[&AlertKind::ZeroWindowSeen], 4);
        assert_eq!(
            trig.view.evidence.len(),
            2,
            "duplicates are counted, not kept"
        );
        // Another source is another incident.
        let c = alert(AlertKind::TreasonRetransmit, "2001:db8::2", "x");
        assert_eq!(t.ingest(c, 5 * S, &mut closed).unwrap().view.id, 2);
        assert_eq!(t.open_count(), 2);
        // Alerts 2-4 repeated the first one's key (two of them still
        // triggered by doubling the count).
        assert_eq!(t.counters.duplicates, 3);
    }

    #[test]
    fn cooldown_ends_and_resolution_silences() {
        let mut t = tracker();
        let mut closed = Vec::new();
        let a = alert(AlertKind::ZeroWindowSyn, "198.18.0.3", "xdp");
        t.ingest(a.clone(), 0, &mut closed).unwrap();
        t.ingest(a.clone(), S, &mut closed); // doubling
        assert!(t.ingest(a.clone(), 2 * S, &mut closed).is_none());
        assert!(
            t.ingest(a.clone(), 400 * S, &mut closed).is_some(),
            "cooldown over"
        );
        t.resolve("198.18.0.3".parse().unwrap());
        let trig = t.ingest(
            alert(AlertKind::Ids, "198.18.0.3", "sid:1"),
            401 * S,
            &mut closed,
        );
        assert!(trig.is_none(), "a resolved incident is not re-debated");
    }

    #[test]
    fn a_full_table_evicts_forgeable_incidents_before_confirmed_ones() {
        let mut t = Tracker::new(
            IncidentConfig {
                max_open: 2,
                ..IncidentConfig::default()
            },
            1,
        );
        let mut closed = Vec::new();
        // The oldest incident is the confirmed one.
        t.ingest(
            alert(AlertKind::TreasonProbe, "198.18.0.1", "probe"),
            0,
            &mut closed,
        );
        for (i, peer) in ["198.18.0.2", "198.18.0.3", "198.18.0.4"]
            .iter()
            .enumerate()
        {
            t.ingest(
                alert(AlertKind::ZeroWindowSyn, peer, "x"),
                (i as u64 + 1) * S,
                &mut closed,
            );
        }
        let gone: Vec<String> = closed.iter().map(|i| i.peer.to_string()).collect();
        assert_eq!(
            gone,
            ["198.18.0.2", "198.18.0.3"],
            "forgeable ones went first"
        );
        assert!(t.get(&"198.18.0.1".parse().unwrap()).is_some());
    }

    #[test]
    fn incidents_close_after_the_window_and_memory_is_bounded() {
        let mut t = Tracker::new(
            IncidentConfig {
                max_open: 3,
                ..IncidentConfig::default()
            },
            10,
        );
        let mut closed = Vec::new();
        for (i, peer) in ["198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.4"]
            .iter()
            .enumerate()
        {
            t.ingest(
                alert(AlertKind::ZeroWindowSyn, peer, "x"),
                i as u64 * S,
                &mut closed,
            );
        }
        assert_eq!(t.open_count(), 3);
        assert_eq!(closed.len(), 1);
        assert_eq!(
            closed[0].peer.to_string(),
            "198.18.0.1",
            "the stalest goes first"
        );
        assert_eq!(closed[0].id, 10);
        assert!(t.expire(30 * S).is_empty());
        // Last alerts at 1 s, 2 s and 3 s: at 62.5 s two are a window old.
        assert_eq!(t.expire(62 * S + S / 2).len(), 2);
        assert_eq!(t.open_count(), 1);
    }

    #[test]
    fn ipv4_mapped_sources_join_the_ipv4_incident() {
        let mut t = tracker();
        let mut closed = Vec::new();
        t.ingest(alert(AlertKind::Ids, "198.18.0.2", "a"), 0, &mut closed);
        t.ingest(
            alert(AlertKind::Ids, "::ffff:198.18.0.2", "b"),
            0,
            &mut closed,
        );
        assert_eq!(t.open_count(), 1);
    }
}
