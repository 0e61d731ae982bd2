//! The LLM council's cost: a 4-agent, 4-round debate against the local
//! OpenAI-compatible test server with a fixed per-call latency, run by the
//! council as it is (the agents of a round call concurrently) and as a
//! sequential baseline of the same calls (the same agents, serialized by a
//! lock, so the requests are identical). Reports wall time, calls and
//! prompt tokens (from the server's `usage`), the ratio, and an estimate
//! of what re-sending the whole transcript with every call (MAD-Shield's
//! way) would have cost in prompt tokens.
//!
//! Then, when the `blocker` binary is built, one debate through the CLI
//! (`blocker debate --dry-run` then `blocker debates show`), as an example
//! transcript.
//!
//! Environment: BENCH_LATENCY_MS (default 250), BENCH_ROUNDS (repetitions,
//! median reported; default 3), BENCH_JSON (write the results there).

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use blocker::{
    council::{
        Agent, Ballot, Brief, Consensus, Council, Draft, Facts, Proposal, Turn, TurnFailure, Vote,
        llm::{Endpoint, LlmAgent, LlmConfig},
        rules::ROLES,
    },
    evidence::alert::{Alert, AlertKind, AlertSource, TcpFacts},
    incident::IncidentView,
};
use blocker_tests::llm_server::{
    LlmServer, Request, Script, block, object_with, proposals, vote, votes,
};
use serde_json::{Value, json};

const SUSPECT: &str = "198.18.0.66";

/// Every agent calls in every round, and the jail keeps the debate open
/// with a new alternative each round, so all four rounds run: 16 calls.
fn script() -> Script {
    Script::new(|req: &Request| {
        if req.round == 1 {
            return match req.agent.as_str() {
                "kernel" => proposals(&[(
                    block(SUSPECT, 3600),
                    "it shrank its window to zero under data in flight",
                )]),
                "host" => proposals(&[(
                    json!({"type": "watch", "target": SUSPECT, "ttl_secs": 3600}),
                    "keep an eye on it",
                )]),
                _ => proposals(&[]),
            };
        }
        let open: Vec<Value> = req
            .open()
            .into_iter()
            .filter(|p| p["by"] != req.agent.as_str())
            .collect();
        let id = |p: &Value| p["id"].as_u64().unwrap() as u32;
        let newest_block = open
            .iter()
            .filter(|p| p["action"]["type"] == "block")
            .map(id)
            .max();
        votes(
            open.iter()
                .map(
                    |p| match (req.agent.as_str(), p["action"]["type"].as_str().unwrap()) {
                        (_, "watch") => vote(id(p), "approve", "watching costs nothing"),
                        ("jail", _) if Some(id(p)) == newest_block => object_with(
                            id(p),
                            "too short for two earlier bans",
                            block(SUSPECT, 3600 * (u64::from(req.round) + 1)),
                            "escalated for a repeat offender",
                        ),
                        ("jail", _) => vote(id(p), "object", "too short"),
                        ("kernel", _) => vote(id(p), "object", "longer than the evidence supports"),
                        _ => vote(id(p), "approve", "consistent with the evidence"),
                    },
                )
                .collect(),
        )
    })
}

fn brief() -> Brief {
    let alert = Alert {
        source: AlertSource::Probe,
        kind: AlertKind::TreasonRetransmit,
        peer: SUSPECT.parse().unwrap(),
        peer_port: Some(40000),
        local: Some("198.18.0.1".parse().unwrap()),
        local_port: Some(8080),
        observed_ns: 1,
        signature: "tcp_retransmit_timer".into(),
        count: 3,
        tcp: Some(TcpFacts {
            snd_wnd: 0,
            state: 1,
            pending_bytes: 65536,
            stalled_ms: 0,
            socket: 7,
        }),
        ids: None,
    };
    Brief {
        incident: IncidentView {
            id: 1,
            peer: alert.peer,
            age_secs: 2,
            alert_count: 1,
            by_kind: BTreeMap::from([(AlertKind::TreasonRetransmit, 1)]),
            evidence: vec![alert],
        },
        facts: Facts::default(),
    }
}

/// An agent whose calls wait for one shared lock: the same calls, one at a time.
struct Serial {
    inner: Arc<dyn Agent>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

#[async_trait]
impl Agent for Serial {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn propose(&self, brief: &Brief) -> Result<Turn<Vec<Draft>>, TurnFailure> {
        let _one_at_a_time = self.lock.lock().await;
        self.inner.propose(brief).await
    }
    async fn review(
        &self,
        brief: &Brief,
        round: u32,
        open: &[Proposal],
        votes: &[Vote],
    ) -> Result<Turn<Vec<Ballot>>, TurnFailure> {
        let _one_at_a_time = self.lock.lock().await;
        self.inner.review(brief, round, open, votes).await
    }
}

struct Run {
    wall: Duration,
    calls: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    rounds: u32,
    /// Prompt tokens if every call had carried the whole transcript so far.
    resend_estimate: u64,
}

async fn run(latency: Duration, sequential: bool) -> Run {
    let server = LlmServer::start(script(), latency);
    let cfg = LlmConfig {
        model: "bench".into(),
        ..LlmConfig::default()
    };
    let endpoint = Arc::new(Endpoint::new(&server.base_url(), None).unwrap());
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    let agents: Vec<Arc<dyn Agent>> = ROLES
        .iter()
        .map(|r| {
            let a: Arc<dyn Agent> = Arc::new(LlmAgent::new(r, &cfg, endpoint.clone(), 4).unwrap());
            if sequential {
                Arc::new(Serial {
                    inner: a,
                    lock: lock.clone(),
                }) as Arc<dyn Agent>
            } else {
                a
            }
        })
        .collect();
    let council = Council::new(agents, Consensus::Unanimous, 4);
    let b = brief();
    let t = Instant::now();
    let d = council.deliberate(&b).await;
    let wall = t.elapsed();
    assert_eq!(d.rounds, 4, "the benchmark debate must run all four rounds");
    let reqs = server.requests();
    assert_eq!(reqs.len() as u64, u64::from(d.usage.calls));
    // MAD-Shield re-sent the transcript: every call carries the system
    // prompt plus every earlier user prompt and reply of the debate.
    let system = |r: &Request| {
        r.messages()
            .first()
            .map_or(0, |(_, c)| c.len().div_ceil(4) as u64)
    };
    let user = |r: &Request| r.prompt_tokens - system(r);
    let resend_estimate = reqs
        .iter()
        .map(|r| {
            system(r)
                + reqs
                    .iter()
                    .filter(|e| e.round < r.round)
                    .map(|e| user(e) + e.completion_tokens)
                    .sum::<u64>()
                + user(r)
        })
        .sum();
    Run {
        wall,
        calls: u64::from(d.usage.calls),
        prompt_tokens: d.usage.prompt_tokens,
        completion_tokens: d.usage.completion_tokens,
        rounds: d.rounds,
        resend_estimate,
    }
}

fn median(mut v: Vec<Run>) -> Run {
    v.sort_by_key(|r| r.wall);
    v.swap_remove(v.len() / 2)
}

/// One debate through the CLI, for an example transcript.
fn cli_example(latency: Duration) {
    let bin = std::env::var_os("BLOCKER_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/blocker")
        });
    if !bin.exists() {
        println!(
            "\n(no blocker binary at {}: skipping the CLI example)",
            bin.display()
        );
        return;
    }
    let server = LlmServer::start(script(), latency);
    let dir = std::env::temp_dir().join(blocker_tests::unique("blocker-bench-"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("brief.json");
    std::fs::write(&file, serde_json::to_string(&brief()).unwrap()).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&bin)
            .env("BLOCKER_STATE_DIR", &dir)
            .env("BLOCKER_PIN_DIR", dir.join("no-pins"))
            .env_remove("OPENAI_API_KEY")
            .env_remove("BLOCKER_CONFIG")
            .env("RUST_LOG", "error")
            .args(args)
            .output()
            .expect("run blocker");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let url = server.base_url();
    let report: Value = serde_json::from_str(&run(&[
        "debate",
        "--alert",
        file.to_str().unwrap(),
        "--dry-run",
        "--json",
        "--agents",
        "llm",
        "--llm-base-url",
        &url,
        "--model",
        "bench",
    ]))
    .unwrap();
    let id = report["debate_id"].to_string();
    println!("\n$ blocker debates list\n{}", run(&["debates", "list"]));
    println!(
        "$ blocker debates show {id}\n{}",
        run(&["debates", "show", &id])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // `cargo bench` passes --bench; nothing else is expected.
    let latency = Duration::from_millis(
        std::env::var("BENCH_LATENCY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(250),
    );
    let reps: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let concurrent = median(
        (0..reps)
            .map(|_| rt.block_on(run(latency, false)))
            .collect(),
    );
    let sequential = median((0..reps).map(|_| rt.block_on(run(latency, true))).collect());
    let ratio = sequential.wall.as_secs_f64() / concurrent.wall.as_secs_f64();
    println!(
        "LLM debate: 4 agents x {} rounds, {} ms per call (local test server), median of {reps}",
        concurrent.rounds,
        latency.as_millis()
    );
    println!(
        "{:<28} {:>10} {:>6} {:>14} {:>18}",
        "", "wall", "calls", "prompt tokens", "completion tokens"
    );
    for (name, r) in [
        ("concurrent (blocker)", &concurrent),
        ("sequential, same calls", &sequential),
    ] {
        println!(
            "{name:<28} {:>8.0}ms {:>6} {:>14} {:>18}",
            r.wall.as_secs_f64() * 1000.0,
            r.calls,
            r.prompt_tokens,
            r.completion_tokens
        );
    }
    println!("wall-time ratio sequential/concurrent: {ratio:.2}x");
    println!(
        "prompt tokens if every call re-sent the whole transcript (MAD-Shield style, estimate): {} ({:.2}x)",
        concurrent.resend_estimate,
        concurrent.resend_estimate as f64 / concurrent.prompt_tokens as f64
    );
    if let Ok(path) = std::env::var("BENCH_JSON") {
        let j = json!({
            "latency_ms": latency.as_millis() as u64,
            "rounds": concurrent.rounds,
            "agents": 4,
            "concurrent": {"wall_ms": concurrent.wall.as_millis() as u64, "calls": concurrent.calls,
                           "prompt_tokens": concurrent.prompt_tokens, "completion_tokens": concurrent.completion_tokens},
            "sequential": {"wall_ms": sequential.wall.as_millis() as u64, "calls": sequential.calls,
                           "prompt_tokens": sequential.prompt_tokens, "completion_tokens": sequential.completion_tokens},
            "ratio": ratio,
            "resend_estimate_prompt_tokens": concurrent.resend_estimate,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&j).unwrap()).unwrap();
    }
    cli_example(latency);
}
