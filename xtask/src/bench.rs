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
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<std::path::PathBuf>,
}

pub fn run_all(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_root(),
        "benchmarks load BPF programs; run `sudo -E cargo xtask bench`"
    );
    bootstrap::packages(bootstrap::TEST_PACKAGES)?;
    bootstrap::packages(bootstrap::BENCH_PACKAGES)?;
    let obj = compile::ebpf()?;
    note("XDP per-packet cost (BPF_PROG_TEST_RUN)");
    let mut cmd = compile::host_cargo(&obj);
    cmd.args(["bench", "-p", "blocker-tests", "--bench", "xdp"])
        .env("BENCH_REPEAT", args.repeat.to_string())
        .env("BENCH_ROUNDS", args.rounds.to_string());
    if let Some(j) = &args.json {
        cmd.env("BENCH_JSON", j.with_extension("xdp.json"));
    }
    run(&mut cmd)?;

    note("pipeline: evidence → map latency over many incidents, probe overhead on vs off");
    let bin = compile::all(true)?;
    let mut cmd = compile::host_cargo(&obj);
    cmd.args(["bench", "-p", "blocker-tests", "--bench", "pipeline"])
        .env("BLOCKER_BIN", &bin)
        .env("BENCH_ROUNDS", args.rounds.min(5).to_string());
    if let Some(j) = &args.json {
        cmd.env("BENCH_JSON", j.with_extension("pipeline.json"));
    }
    run(&mut cmd)
}
