//! `cargo xtask bench`: speed and memory targets live here, not in timed
//! tests. Each benchmark measures blocker side by side with a baseline in
//! the same run and reports ratios. Every part writes its results as JSON
//! into the output directory (`bench/` at full size, checked in;
//! `target/bench/smoke/` with `--smoke`), and the run ends by regenerating
//! `REPORT.md` and the SVG plots there from whatever results it holds
//! (see `report.rs`).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::Context as _;

use crate::{
    bootstrap, compile, report,
    util::{is_root, note, run},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runs per measurement for BPF_PROG_TEST_RUN [default: 1000000, 1000
    /// with --smoke].
    #[arg(long)]
    pub repeat: Option<u32>,
    /// Rounds (the median is reported).
    #[arg(long, default_value_t = 7)]
    pub rounds: u32,
    /// Where the results (`PART.json`), REPORT.md and the plots go
    /// [default: bench/, target/bench/smoke/ with --smoke].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run only this benchmark.
    #[arg(long, value_enum)]
    pub only: Option<Which>,
    /// Run only this part, e.g. `cargo xtask bench fleet` (same as --only).
    #[arg(value_enum, conflicts_with = "only")]
    pub part: Option<Which>,
    /// Leave these parts out (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "PARTS")]
    pub skip: Vec<Which>,
    /// Fixed latency of every call to the LLM test server, milliseconds.
    #[arg(long, default_value_t = 250)]
    pub latency_ms: u64,
    /// Tiny sizes and one round of everything, debug builds: checks that
    /// every part still runs (part of `cargo xtask test`); the figures mean
    /// nothing.
    #[arg(long)]
    pub smoke: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// XDP per-packet cost against xdp-filter and a pass-only program
    /// (needs root).
    Xdp,
    /// Per-packet cost against table size, 1 to 1M rules, exact and CIDR,
    /// v4 and v6 (needs root).
    Scale,
    /// Floods over veth: a bounded trafgen SYN flood from banned sources;
    /// receive-side softirq CPU per dropped packet of blocker, xdp-filter,
    /// iptables, ipset, an nftables set and no filter (needs root).
    Flood,
    /// Import, export, unban and restore of 1M exact bans and 100k CIDRs
    /// against `ipset restore` and `nft -f`; map memory and daemon RSS
    /// (needs root).
    Bulk,
    /// Evidence-to-map latency and probe overhead (needs root).
    Pipeline,
    /// A 4-agent, 4-round LLM debate, concurrent against sequential.
    Debate,
    /// Three nodes on a real NATS JetStream server: propagation latency of
    /// shared bans and decisions/s applied on a receiver (needs root).
    Fleet,
}

impl Which {
    pub const ALL: [Which; 7] = [
        Which::Xdp,
        Which::Scale,
        Which::Flood,
        Which::Bulk,
        Which::Pipeline,
        Which::Debate,
        Which::Fleet,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Which::Xdp => "xdp",
            Which::Scale => "scale",
            Which::Flood => "flood",
            Which::Bulk => "bulk",
            Which::Pipeline => "pipeline",
            Which::Debate => "debate",
            Which::Fleet => "fleet",
        }
    }

    /// The bench target in the tests crate.
    fn target(self) -> &'static str {
        match self {
            Which::Scale => "xdp",
            w => w.name(),
        }
    }

    /// Whether the part runs the `blocker` binary (and which build).
    fn needs_bin(self) -> bool {
        matches!(
            self,
            Which::Flood | Which::Bulk | Which::Pipeline | Which::Debate | Which::Fleet
        )
    }
}

pub fn out_dir(args: &Args) -> PathBuf {
    args.out.clone().unwrap_or_else(|| {
        if args.smoke {
            compile::target_dir().join("bench/smoke")
        } else {
            compile::root().join("bench")
        }
    })
}

pub fn run_all(args: &Args) -> anyhow::Result<()> {
    let only = args.part.or(args.only);
    let want = |w| only.is_none_or(|o| o == w) && !args.skip.contains(&w);
    anyhow::ensure!(
        is_root() || only == Some(Which::Debate),
        "benchmarks load BPF programs; run `sudo -E cargo xtask bench` (or --only debate)"
    );
    bootstrap::packages(bootstrap::TEST_PACKAGES)?;
    if only != Some(Which::Debate) {
        bootstrap::packages(bootstrap::BENCH_PACKAGES)?;
    }
    let obj = compile::ebpf()?;
    let out = out_dir(args);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // Full runs measure the release build; the smoke only checks that every
    // part runs, in the debug build `cargo xtask test` already has.
    let bin = if Which::ALL.iter().any(|&w| want(w) && w.needs_bin()) {
        Some(compile::all(!args.smoke)?)
    } else {
        None
    };
    let started = Instant::now();
    let parts: Vec<Which> = Which::ALL.into_iter().filter(|&w| want(w)).collect();
    let mut failed = Vec::new();
    for (i, &w) in parts.iter().enumerate() {
        note(&format!(
            "[{}/{}] {} — {} ({:.0} s so far)",
            i + 1,
            parts.len(),
            w.name(),
            describe(w),
            started.elapsed().as_secs_f64()
        ));
        let t = Instant::now();
        let mut cmd = part_command(args, w, &obj, bin.as_deref(), &out);
        // A failed part is reported, and the others still run: the report
        // keeps that part's last results.
        if let Err(e) = run(&mut cmd) {
            note(&format!("{} FAILED: {e:#}", w.name()));
            failed.push(w.name());
            continue;
        }
        report::stamp_file(&out.join(format!("{}.json", w.name())), args.smoke)?;
        note(&format!(
            "{} done in {:.0} s",
            w.name(),
            t.elapsed().as_secs_f64()
        ));
    }
    let report = report::write(&out, args.smoke)?;
    anyhow::ensure!(
        failed.is_empty(),
        "bench part(s) failed: {} (report written to {})",
        failed.join(", "),
        report.display()
    );
    note(&format!(
        "{} part(s) in {:.0} s; report: {}",
        parts.len(),
        started.elapsed().as_secs_f64(),
        report.display()
    ));
    Ok(())
}

fn describe(w: Which) -> &'static str {
    match w {
        Which::Xdp => "XDP per-packet cost against xdp-filter (BPF_PROG_TEST_RUN)",
        Which::Scale => "per-packet cost against table size, 1 to 1M rules",
        Which::Flood => {
            "floods over veth: softirq CPU per dropped SYN, blocker against xdp-filter, iptables, ipset, nft"
        }
        Which::Bulk => "import/export/unban/restore of a million rules against ipset and nft",
        Which::Pipeline => {
            "pipeline: evidence → map latency over many incidents, probe overhead on vs off"
        }
        Which::Debate => {
            "LLM debate: concurrent against a sequential baseline of the same calls (local test server)"
        }
        Which::Fleet => {
            "fleet: propagation a → b, c of shared bans; a receiver catching up on a burst"
        }
    }
}

/// `cargo bench` (full runs, release) or `cargo test --bench` (the smoke:
/// the dev profile the integration tests already built) of one part.
fn part_command(args: &Args, w: Which, obj: &Path, bin: Option<&Path>, out: &Path) -> Command {
    let mut cmd = compile::host_cargo(obj);
    if args.smoke {
        cmd.args(["test", "-p", "blocker-tests", "--bench", w.target()]);
    } else {
        cmd.args(["bench", "-p", "blocker-tests", "--bench", w.target()]);
    }
    cmd.env("BENCH_JSON", out.join(format!("{}.json", w.name())))
        .env("RUST_BACKTRACE", "1");
    if let Some(b) = bin.filter(|_| w.needs_bin()) {
        cmd.env("BLOCKER_BIN", b);
    }
    if args.smoke {
        cmd.env("BENCH_SMOKE", "1");
    }
    let rounds = if args.smoke { 1 } else { args.rounds };
    match w {
        Which::Xdp | Which::Scale => {
            let repeat = args
                .repeat
                .unwrap_or(if args.smoke { 1000 } else { 1_000_000 });
            cmd.env("BENCH_PART", w.name())
                .env("BENCH_REPEAT", repeat.to_string())
                // The scale part measures 40 cases at 5 sizes: 5 rounds keep
                // it within a few minutes.
                .env(
                    "BENCH_ROUNDS",
                    if w == Which::Scale {
                        rounds.min(5)
                    } else {
                        rounds
                    }
                    .to_string(),
                );
        }
        // Three rounds of blocker against xdp-filter keep the part within
        // about three minutes.
        Which::Flood => {
            cmd.env("BENCH_ROUNDS", rounds.min(3).to_string());
        }
        Which::Bulk => {}
        Which::Pipeline => {
            cmd.env("BENCH_ROUNDS", rounds.min(5).to_string());
            if args.smoke {
                cmd.env("BENCH_INCIDENTS", "4")
                    .env("BENCH_MB", "8")
                    .env("BENCH_GC_RULES", "2000")
                    .env("BENCH_GC_GAP_MS", "500")
                    .env("BENCH_FLOOD_SOURCES", "2000");
            }
        }
        Which::Debate => {
            cmd.env(
                "BENCH_LATENCY_MS",
                if args.smoke { 5 } else { args.latency_ms }.to_string(),
            )
            .env("BENCH_ROUNDS", rounds.min(5).to_string());
        }
        Which::Fleet => {
            if args.smoke {
                cmd.env("BENCH_DECISIONS", "3").env("BENCH_BURST", "20");
            }
        }
    }
    cmd
}
