//! `cargo xtask bench`: speed and memory targets live here, not in timed
//! tests. Each benchmark measures blocker side by side with a baseline in
//! the same run and reports ratios.

use crate::{
    bootstrap, compile,
    util::{is_root, note, run},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runs per measurement for BPF_PROG_TEST_RUN.
    #[arg(long, default_value_t = 1_000_000)]
    pub repeat: u32,
    /// Rounds (the median is reported).
    #[arg(long, default_value_t = 7)]
    pub rounds: u32,
    /// Also write the results as JSON beside this file, one per benchmark
    /// (`.xdp.json`, `.pipeline.json`, `.debate.json`).
    #[arg(long, value_name = "FILE")]
    pub json: Option<std::path::PathBuf>,
    /// Run only this benchmark.
    #[arg(long, value_enum)]
    pub only: Option<Which>,
    /// Run only this part, e.g. `cargo xtask bench fleet` (same as --only).
    #[arg(value_enum, conflicts_with = "only")]
    pub part: Option<Which>,
    /// Fixed latency of every call to the LLM test server, milliseconds.
    #[arg(long, default_value_t = 250)]
    pub latency_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// XDP per-packet cost against a pass-only program (needs root).
    Xdp,
    /// Evidence-to-map latency and probe overhead (needs root).
    Pipeline,
    /// A 4-agent, 4-round LLM debate, concurrent against sequential.
    Debate,
    /// Three nodes on a real NATS JetStream server: propagation latency
    /// and decisions/s applied on a receiver (needs root).
    Fleet,
}

pub fn run_all(args: &Args) -> anyhow::Result<()> {
    let want = |w| args.part.or(args.only).is_none_or(|o| o == w);
    anyhow::ensure!(
        is_root() || args.part.or(args.only) == Some(Which::Debate),
        "benchmarks load BPF programs; run `sudo -E cargo xtask bench` (or --only debate)"
    );
    bootstrap::packages(bootstrap::TEST_PACKAGES)?;
    if want(Which::Xdp) || want(Which::Pipeline) {
        bootstrap::packages(bootstrap::BENCH_PACKAGES)?;
    }
    let obj = compile::ebpf()?;
    if want(Which::Xdp) {
        note("XDP per-packet cost (BPF_PROG_TEST_RUN)");
        let mut cmd = compile::host_cargo(&obj);
        cmd.args(["bench", "-p", "blocker-tests", "--bench", "xdp"])
            .env("BENCH_REPEAT", args.repeat.to_string())
            .env("BENCH_ROUNDS", args.rounds.to_string());
        if let Some(j) = &args.json {
            cmd.env("BENCH_JSON", j.with_extension("xdp.json"));
        }
        run(&mut cmd)?;
    }
    if want(Which::Pipeline) {
        note("pipeline: evidence → map latency over many incidents, probe overhead on vs off");
        let bin = compile::all(true)?;
        let mut cmd = compile::host_cargo(&obj);
        cmd.args(["bench", "-p", "blocker-tests", "--bench", "pipeline"])
            .env("BLOCKER_BIN", &bin)
            .env("BENCH_ROUNDS", args.rounds.min(5).to_string());
        if let Some(j) = &args.json {
            cmd.env("BENCH_JSON", j.with_extension("pipeline.json"));
        }
        run(&mut cmd)?;
    }
    if want(Which::Debate) {
        note(
            "LLM debate: concurrent against a sequential baseline of the same calls (local test server)",
        );
        // The example transcript at the end runs the CLI.
        let bin = compile::all(false)?;
        let mut cmd = compile::host_cargo(&obj);
        cmd.args(["bench", "-p", "blocker-tests", "--bench", "debate"])
            .env("BLOCKER_BIN", &bin)
            .env("BENCH_LATENCY_MS", args.latency_ms.to_string())
            .env("BENCH_ROUNDS", args.rounds.min(5).to_string());
        if let Some(j) = &args.json {
            cmd.env("BENCH_JSON", j.with_extension("debate.json"));
        }
        run(&mut cmd)?;
    }
    if want(Which::Fleet) {
        note(
            "fleet: propagation a → b, c over shared operator bans; a receiver catching up on a burst",
        );
        let bin = compile::all(true)?;
        let mut cmd = compile::host_cargo(&obj);
        cmd.args(["bench", "-p", "blocker-tests", "--bench", "fleet"])
            .env("BLOCKER_BIN", &bin);
        if let Some(j) = &args.json {
            cmd.env("BENCH_JSON", j.with_extension("fleet.json"));
        }
        run(&mut cmd)?;
    }
    Ok(())
}
