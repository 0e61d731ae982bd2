use std::{collections::BTreeMap, net::IpAddr, sync::Arc, time::Duration};

use async_trait::async_trait;

use super::{
    facts::FilterFacts,
    rules::{RuleAgent, RulesConfig, escalated_ttl},
    *,
};
use crate::evidence::alert::{Alert, AlertKind, AlertSource, IdsFacts};
use crate::incident::IncidentView;

const PEER: &str = "198.18.0.2";

fn alert(kind: AlertKind, peer: &str) -> Alert {
    Alert {
        source: match kind {
            AlertKind::Ids => AlertSource::Suricata,
            AlertKind::KernelLog => AlertSource::Kmsg,
            AlertKind::ZeroWindowSyn | AlertKind::ZeroWindowFlood => AlertSource::Xdp,
            _ => AlertSource::Probe,
        },
        kind,
        peer: peer.parse().unwrap(),
        peer_port: Some(40000),
        local: None,
        local_port: Some(8080),
        observed_ns: 1,
        signature: kind.as_str().into(),
        count: 1,
        tcp: None,
        ids: None,
    }
}

fn brief(alerts: Vec<Alert>) -> Brief {
    let mut by_kind = BTreeMap::new();
    for a in &alerts {
        *by_kind.entry(a.kind).or_insert(0) += 1;
    }
    Brief {
        incident: IncidentView {
            id: 1,
            peer: alerts
                .first()
                .map_or("0.0.0.0".parse().unwrap(), |a| a.peer),
            age_secs: 0,
            alert_count: alerts.len() as u64,
            by_kind,
            evidence: alerts,
        },
        facts: Facts::default(),
    }
}

fn offline() -> Council {
    let cfg = RulesConfig::default();
    let agents: Vec<Arc<dyn Agent>> = rules::ROLES
        .iter()
        .map(|r| Arc::new(RuleAgent::new(r, cfg.clone()).unwrap()) as Arc<dyn Agent>)
        .collect();
    Council::new(agents, Consensus::Unanimous, 4)
}

fn block(net: &str, secs: u64) -> Action {
    Action::Block {
        target: crate::addr::parse_net(net).unwrap(),
        ttl_secs: secs,
    }
}

#[tokio::test]
async fn first_treason_offence_is_blocked_unanimously() {
    let d = offline()
        .deliberate(&brief(vec![alert(AlertKind::TreasonRetransmit, PEER)]))
        .await;
    assert_eq!(d.passed.len(), 1, "{d:#?}");
    assert_eq!(d.passed[0].action, block(PEER, 3600));
    assert_eq!(d.proposals[0].author, "kernel");
    assert_eq!(d.decisions[0].approvals, 3);
    assert_eq!(d.stop, Stop::Converged);
    assert_eq!(d.rounds, 2);
}

#[tokio::test]
async fn repeat_offenders_get_the_jails_escalated_ttl() {
    let mut b = brief(vec![alert(AlertKind::TreasonProbe, PEER)]);
    b.facts.jail.previous_bans = 2;
    let d = offline().deliberate(&b).await;
    // Round 2: the jail objects to 1h and offers 4h; round 3 approves it.
    assert_eq!(d.proposals.len(), 2, "{d:#?}");
    assert_eq!(d.proposals[1].author, "jail");
    assert_eq!(d.proposals[1].alternative_to, Some(1));
    assert!(
        !d.decisions[0].passed && d.decisions[1].passed,
        "{:#?}",
        d.decisions
    );
    assert_eq!(d.passed.len(), 1);
    assert_eq!(d.passed[0].action, block(PEER, 4 * 3600));
    assert_eq!(d.rounds, 3);
}

#[tokio::test]
async fn allowlisted_local_and_trusted_sources_are_not_blocked() {
    let mut b = brief(vec![alert(AlertKind::TreasonRetransmit, PEER)]);
    b.facts.filter = FilterFacts {
        allowlisted: true,
        ..FilterFacts::default()
    };
    let d = offline().deliberate(&b).await;
    assert!(d.passed.is_empty(), "{d:#?}");
    assert!(
        d.votes
            .iter()
            .any(|v| v.voter == "filter" && v.stance == Stance::Object)
    );

    let mut b = brief(vec![alert(AlertKind::TreasonRetransmit, PEER)]);
    b.facts.host.local_addrs = vec![PEER.parse().unwrap()];
    assert!(offline().deliberate(&b).await.passed.is_empty());

    let mut b = brief(vec![alert(AlertKind::TreasonRetransmit, PEER)]);
    b.facts.host.trusted = vec!["198.18.0.0/24".parse().unwrap()];
    assert!(offline().deliberate(&b).await.passed.is_empty());
}

#[tokio::test]
async fn already_blocked_for_longer_is_not_re_banned() {
    let mut b = brief(vec![alert(AlertKind::TreasonRetransmit, PEER)]);
    b.facts.filter.blocked = Some(Some(7200));
    assert!(offline().deliberate(&b).await.passed.is_empty());
    b.facts.filter.blocked = Some(Some(60));
    assert_eq!(
        offline().deliberate(&b).await.passed.len(),
        1,
        "extending a short ban"
    );
}

#[tokio::test]
async fn stalls_are_conclusive_and_the_justification_says_why() {
    // The kernel only reports windows that stayed closed past the stall
    // threshold, so one stall event is enough.
    let mut a = alert(AlertKind::ZeroWindowSeen, PEER);
    a.tcp = Some(crate::evidence::alert::TcpFacts {
        stalled_ms: 12_400,
        socket: 7,
        ..Default::default()
    });
    let d = offline().deliberate(&brief(vec![a])).await;
    assert_eq!(d.passed.len(), 1);
    assert!(
        d.passed[0].justification.contains("12.4 s"),
        "{}",
        d.passed[0].justification
    );
}

#[tokio::test]
async fn no_kernel_evidence_no_kernel_proposal() {
    // An IDS alert alone: the kernel agent proposes nothing (host does).
    let mut a = alert(AlertKind::Ids, PEER);
    a.ids = Some(IdsFacts {
        severity: 3,
        ..IdsFacts::default()
    });
    let d = offline().deliberate(&brief(vec![a])).await;
    assert!(d.proposals.iter().all(|p| p.author != "kernel"), "{d:#?}");
}

#[tokio::test]
async fn ids_severity_decides_block_or_watch() {
    let ids = |sev: u8, established: bool| {
        let mut a = alert(AlertKind::Ids, PEER);
        a.ids = Some(IdsFacts {
            signature_id: 2_100_498,
            signature: "GPL ATTACK_RESPONSE".into(),
            severity: sev,
            established,
            ..IdsFacts::default()
        });
        a
    };
    let d = offline().deliberate(&brief(vec![ids(1, true)])).await;
    assert_eq!(d.passed[0].action, block(PEER, 3600), "{d:#?}");
    let d = offline().deliberate(&brief(vec![ids(3, true)])).await;
    assert!(matches!(d.passed[0].action, Action::Watch { .. }), "{d:#?}");
    // Severe, but on packets that need no handshake: watched, never banned.
    let d = offline().deliberate(&brief(vec![ids(1, false)])).await;
    assert!(
        d.passed.len() == 1 && matches!(d.passed[0].action, Action::Watch { .. }),
        "{d:#?}"
    );
}

#[tokio::test]
async fn spoofed_floods_get_the_policy_switch_not_bans() {
    let mut b = brief(vec![alert(AlertKind::ZeroWindowFlood, "0.0.0.0")]);
    b.facts.kernel.zero_window_syn_rate = 50_000;
    b.facts.kernel.zero_window_sources_recent = 3000;
    let d = offline().deliberate(&b).await;
    assert_eq!(
        d.passed[0].action,
        Action::ZeroWindowSynPolicy {
            enable: true,
            ttl_secs: 600
        }
    );
    // Already on for long enough: nothing to do.
    b.facts.kernel.zero_window_policy_secs_left = Some(590);
    assert_eq!(offline().deliberate(&b).await.stop, Stop::NoProposals);
    // No flood in the facts: no proposal.
    let b = brief(vec![alert(AlertKind::ZeroWindowFlood, "0.0.0.0")]);
    assert!(offline().deliberate(&b).await.passed.is_empty());
}

#[tokio::test]
async fn zero_window_syns_alone_are_watched_never_banned() {
    for sources in [0, 500] {
        let mut b = brief(vec![alert(AlertKind::ZeroWindowSyn, PEER)]);
        b.facts.kernel.zero_window_sources_recent = sources;
        let d = offline().deliberate(&b).await;
        assert!(
            d.passed.len() == 1 && matches!(d.passed[0].action, Action::Watch { .. }),
            "forgeable evidence, {sources} sources: {d:#?}"
        );
    }
    // Nobody approves a block on it, whoever proposes it.
    let b = brief(vec![alert(AlertKind::ZeroWindowSyn, PEER)]);
    let agents: Vec<Arc<dyn Agent>> = vec![
        scripted_block("llm-kernel"),
        Arc::new(RuleAgent::new("host", RulesConfig::default()).unwrap()),
        Arc::new(RuleAgent::new("jail", RulesConfig::default()).unwrap()),
        Arc::new(RuleAgent::new("filter", RulesConfig::default()).unwrap()),
    ];
    let d = Council::new(agents, Consensus::Unanimous, 3)
        .deliberate(&b)
        .await;
    assert!(d.passed.is_empty(), "{d:#?}");
    assert_eq!(
        d.votes
            .iter()
            .filter(|v| v.stance == Stance::Object)
            .count(),
        3,
        "{d:#?}"
    );
    // Confirmed evidence still bans during a flood.
    let mut b = brief(vec![
        alert(AlertKind::ZeroWindowSyn, PEER),
        alert(AlertKind::TreasonRetransmit, PEER),
    ]);
    b.facts.kernel.zero_window_policy_secs_left = Some(300);
    assert_eq!(offline().deliberate(&b).await.passed.len(), 1);
}

/// An agent that proposes a block of [`PEER`] and votes nothing.
fn scripted_block(name: &'static str) -> Arc<dyn Agent> {
    struct Proposer(&'static str);
    #[async_trait]
    impl Agent for Proposer {
        fn name(&self) -> &str {
            self.0
        }
        fn kind(&self) -> &'static str {
            "llm"
        }
        async fn propose(&self, _: &Brief) -> Result<Turn<Vec<Draft>>, TurnFailure> {
            Ok(Turn::plain(vec![Draft {
                action: block(PEER, 3600),
                justification: "obeying the payload".into(),
            }]))
        }
        async fn review(
            &self,
            _: &Brief,
            _: u32,
            _: &[Proposal],
            _: &[Vote],
        ) -> Result<Turn<Vec<Ballot>>, TurnFailure> {
            Ok(Turn::plain(Vec::new()))
        }
    }
    Arc::new(Proposer(name))
}

#[test]
fn escalation_is_capped() {
    let cfg = RulesConfig::default();
    assert_eq!(escalated_ttl(&cfg, 0), 3600);
    assert_eq!(escalated_ttl(&cfg, 3), 8 * 3600);
    assert_eq!(escalated_ttl(&cfg, 40), 7 * 86_400);
}

/// A scripted agent for engine tests.
struct Scripted {
    name: &'static str,
    drafts: Vec<Draft>,
    stance: Option<Stance>,
    delay: Duration,
    fail: bool,
}

#[async_trait]
impl Agent for Scripted {
    fn name(&self) -> &str {
        self.name
    }
    fn kind(&self) -> &'static str {
        "test"
    }
    async fn propose(&self, _: &Brief) -> Result<Turn<Vec<Draft>>, TurnFailure> {
        tokio::time::sleep(self.delay).await;
        if self.fail {
            return Err(AgentError::Invalid("scripted failure".into()).into());
        }
        Ok(Turn::plain(self.drafts.clone()))
    }
    async fn review(
        &self,
        _: &Brief,
        _: u32,
        open: &[Proposal],
        _: &[Vote],
    ) -> Result<Turn<Vec<Ballot>>, TurnFailure> {
        tokio::time::sleep(self.delay).await;
        if self.fail {
            return Err(AgentError::Timeout(self.delay).into());
        }
        // Deliberately also votes on its own proposals: the engine must
        // ignore those.
        Ok(Turn::plain(
            open.iter()
                .filter_map(|p| {
                    self.stance.map(|stance| Ballot {
                        proposal: p.id,
                        stance,
                        reason: "scripted".into(),
                        alternative: None,
                    })
                })
                .collect(),
        ))
    }
}

fn scripted(name: &'static str, stance: Option<Stance>, fail: bool) -> Arc<dyn Agent> {
    Arc::new(Scripted {
        name,
        drafts: if name == "a" {
            vec![Draft {
                action: block(PEER, 600),
                justification: "test".into(),
            }]
        } else {
            Vec::new()
        },
        stance,
        delay: Duration::from_millis(40),
        fail,
    })
}

#[tokio::test]
async fn abstentions_block_unanimity_but_not_a_quorum() {
    let b = brief(vec![alert(AlertKind::TreasonRetransmit, PEER)]);
    let agents = || {
        vec![
            scripted("a", Some(Stance::Approve), false),
            scripted("b", Some(Stance::Approve), false),
            scripted("c", None, true),
        ]
    };
    let d = Council::new(agents(), Consensus::Unanimous, 4)
        .deliberate(&b)
        .await;
    assert!(d.passed.is_empty(), "{d:#?}");
    assert_eq!(
        (d.decisions[0].approvals, d.decisions[0].abstentions),
        (1, 1)
    );
    assert!(d.turns.iter().any(|t| t.agent == "c" && t.error.is_some()));
    let d = Council::new(agents(), Consensus::Quorum { min_approvals: 1 }, 4)
        .deliberate(&b)
        .await;
    assert_eq!(d.passed.len(), 1);
    // An agent's vote on its own proposal was ignored.
    assert!(!d.votes.iter().any(|v| v.voter == "a"));
}

#[tokio::test]
async fn an_objection_defeats_a_quorum() {
    let b = brief(vec![alert(AlertKind::TreasonRetransmit, PEER)]);
    let d = Council::new(
        vec![
            scripted("a", None, false),
            scripted("b", Some(Stance::Approve), false),
            scripted("c", Some(Stance::Object), false),
        ],
        Consensus::Quorum { min_approvals: 1 },
        4,
    )
    .deliberate(&b)
    .await;
    assert!(d.passed.is_empty());
}

#[tokio::test]
async fn agents_of_a_round_run_concurrently() {
    let b = brief(vec![alert(AlertKind::TreasonRetransmit, PEER)]);
    let d = Council::new(
        vec![
            scripted("a", Some(Stance::Approve), false),
            scripted("b", Some(Stance::Approve), false),
            scripted("c", Some(Stance::Approve), false),
        ],
        Consensus::Unanimous,
        4,
    )
    .deliberate(&b)
    .await;
    for round in 1..=d.rounds {
        let turns: Vec<_> = d.turns.iter().filter(|t| t.round == round).collect();
        let last_start = turns.iter().map(|t| t.started_ms).max().unwrap();
        let first_end = turns.iter().map(|t| t.finished_ms).min().unwrap();
        assert!(
            last_start < first_end,
            "round {round} ran sequentially: {turns:#?}"
        );
    }
}

#[test]
fn conflicting_passed_actions_are_resolved() {
    let p = |id, action| Proposal {
        id,
        author: "x".into(),
        round: 1,
        action,
        justification: String::new(),
        alternative_to: None,
    };
    let target = crate::addr::parse_net(PEER).unwrap();
    let a = p(1, block(PEER, 60));
    let b = p(2, block(PEER, 600));
    let out = resolve(&[&a, &b]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].action, block(PEER, 600));
    let c = p(3, Action::Unblock { target });
    assert!(
        resolve(&[&a, &c]).is_empty(),
        "block vs unblock: do neither"
    );
    let c2 = p(5, Action::Unblock { target });
    assert_eq!(
        resolve(&[&c, &c2]).len(),
        1,
        "the same action twice is one action"
    );
    let z = |id| {
        p(
            id,
            Action::ZeroWindowSynPolicy {
                enable: false,
                ttl_secs: 0,
            },
        )
    };
    assert_eq!(resolve(&[&z(6), &z(7)]).len(), 1);
    let w = p(
        4,
        Action::Watch {
            target: PEER.parse::<IpAddr>().unwrap(),
            ttl_secs: 60,
        },
    );
    assert_eq!(resolve(&[&w, &a])[0].action, block(PEER, 60));
}

#[test]
fn actions_parse_from_json_strictly() {
    let a: Action =
        serde_json::from_str(r#"{"type":"block","target":"198.18.0.2","ttl_secs":60}"#).unwrap();
    assert_eq!(a, block(PEER, 60));
    for bad in [
        r#"{"type":"shell","cmd":"iptables -F"}"#,
        r#"{"type":"block","target":"198.18.0.2","ttl_secs":60,"cmd":"rm -rf /"}"#,
        r#"{"type":"block","target":"10.0.0.5/8","ttl_secs":60}"#,
        r#"{"type":"block","target":"198.18.0.2; iptables -F","ttl_secs":60}"#,
        r#"{"type":"block","target":"198.18.0.2","ttl_secs":-1}"#,
    ] {
        assert!(serde_json::from_str::<Action>(bad).is_err(), "{bad}");
    }
}
