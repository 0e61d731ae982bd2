//! `cargo xtask fuzz`: the cargo-fuzz targets in `tests/fuzz/`, each for a bounded
//! time, failing on the first crash, panic, sanitizer report or hang.
//!
//! Seeds live in `tests/fuzz/seeds/<target>/` (committed, read only); what
//! libFuzzer adds goes to `target/fuzz/corpus/<target>/`, so a longer run by
//! hand keeps building on earlier runs on the same machine, and the work tree
//! stays clean. Crashing inputs land in `target/fuzz/artifacts/<target>/`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};

use crate::{
    bootstrap, compile,
    util::{describe, note},
};

/// Every target, in the order they run.
pub const TARGETS: &[&str] = &["eve", "kmsg", "verdict", "config", "btf", "addr"];

/// Seconds per target in `cargo xtask test`: six targets stay near two
/// minutes, plus the instrumented build.
pub const CI_SECONDS: u64 = 20;

/// A single input taking longer than this is a hang (quadratic parsing, an
/// endless loop over a cyclic BTF blob, ...), reported like a crash.
const HANG_SECONDS: u64 = 10;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds to fuzz each target.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Fuzz only this target (repeatable); default: all of eve, kmsg,
    /// verdict, config, btf, addr.
    #[arg(long = "target", value_name = "T")]
    pub targets: Vec<String>,
}

/// What one bounded run did, from libFuzzer's final statistics.
struct Outcome {
    target: String,
    seconds: f64,
    execs: u64,
    coverage: u64,
    corpus: u64,
}

fn fuzz_dir() -> PathBuf {
    compile::root().join("tests/fuzz")
}

fn work_dir() -> PathBuf {
    compile::target_dir().join("fuzz")
}

/// `cargo fuzz <sub> <common flags>` on nightly. Every invocation must pass
/// the same build flags, or `run` would rebuild what `build` just built.
fn cargo_fuzz(bin_dir: &Path, sub: &str) -> Command {
    let mut cmd = compile::nightly_cargo(bin_dir);
    // cargo-fuzz sets its own RUSTFLAGS (sanitizer, coverage); an encoded
    // set inherited from an outer cargo would replace them.
    cmd.env_remove("CARGO_ENCODED_RUSTFLAGS");
    // The targets do not load BPF: build without the embedded object, so a
    // rebuilt eBPF object does not rebuild the instrumented library.
    cmd.env_remove("BLOCKER_EBPF_OBJECT");
    cmd.args(["fuzz", sub])
        .arg("--fuzz-dir")
        .arg(fuzz_dir())
        .arg("--target-dir")
        .arg(work_dir().join("build"))
        // Overflow checks and debug assertions are part of the oracle.
        .arg("--debug-assertions");
    cmd
}

/// Runs every selected target for `args.seconds`; fails on the first
/// finding. Prints a table of executions per target.
pub fn run_all(args: &Args) -> anyhow::Result<()> {
    let targets: Vec<String> = if args.targets.is_empty() {
        TARGETS.iter().map(|t| (*t).to_string()).collect()
    } else {
        args.targets.clone()
    };
    for t in &targets {
        if !TARGETS.contains(&t.as_str()) {
            bail!(
                "no fuzz target {t:?}; the targets are {}",
                TARGETS.join(", ")
            );
        }
    }
    anyhow::ensure!(args.seconds > 0, "--seconds must be at least 1");
    let bin_dir = bootstrap::cargo_fuzz()?;

    let t = Instant::now();
    crate::util::run(&mut cargo_fuzz(&bin_dir, "build")).context("building the fuzz targets")?;
    note(&format!(
        "fuzz targets built in {:.0}s",
        t.elapsed().as_secs_f64()
    ));

    let mut outcomes = Vec::new();
    for target in &targets {
        outcomes.push(run_one(&bin_dir, target, args.seconds)?);
    }
    note("fuzz summary (executions are libFuzzer's, coverage its edge count):");
    note(&format!(
        "  {:<8} {:>6} {:>10} {:>9} {:>6} {:>7}",
        "target", "secs", "execs", "execs/s", "cov", "corpus"
    ));
    for o in &outcomes {
        note(&format!(
            "  {:<8} {:>6.0} {:>10} {:>9.0} {:>6} {:>7}",
            o.target,
            o.seconds,
            o.execs,
            o.execs as f64 / o.seconds.max(1e-3),
            o.coverage,
            o.corpus
        ));
    }
    Ok(())
}

fn run_one(bin_dir: &Path, target: &str, seconds: u64) -> anyhow::Result<Outcome> {
    let corpus = work_dir().join("corpus").join(target);
    let artifacts = work_dir().join("artifacts").join(target);
    let logs = work_dir().join("logs");
    for d in [&corpus, &artifacts, &logs] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let seeds = fuzz_dir().join("seeds").join(target);
    let dict = fuzz_dir().join("dict").join(format!("{target}.dict"));
    let log = logs.join(format!("{target}.log"));

    let mut cmd = cargo_fuzz(bin_dir, "run");
    // libFuzzer writes new inputs to the first corpus directory only.
    cmd.arg(target).arg(&corpus).arg(&seeds).arg("--");
    cmd.arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={HANG_SECONDS}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1");
    if dict.exists() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    note(&format!(
        "fuzzing {target} for {seconds}s (log: {})",
        log.display()
    ));
    let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let t = Instant::now();
    let status = cmd
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .status()
        .with_context(|| format!("starting {}", describe(&cmd)))?;
    let elapsed = t.elapsed().as_secs_f64();
    let text = fs::read_to_string(&log).unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        for line in tail.iter().rev() {
            eprintln!("{line}");
        }
        bail!(
            "fuzz target {target} failed ({status}); the input is in {} and the full log in {}. \
             Reproduce: PATH={}:$PATH cargo +nightly fuzz run --fuzz-dir tests/fuzz -a {target} <input>",
            artifacts.display(),
            log.display(),
            bin_dir.display()
        );
    }
    let outcome = Outcome {
        target: target.to_string(),
        seconds: elapsed,
        execs: stat(&text, "stat::number_of_executed_units:").unwrap_or(0),
        coverage: done_field(&text, "cov:").unwrap_or(0),
        corpus: done_field(&text, "corp:").unwrap_or(0),
    };
    // A run that executed nothing proves nothing.
    if outcome.execs == 0 {
        bail!("fuzz target {target} ran no inputs; see {}", log.display());
    }
    Ok(outcome)
}

/// `stat::name: N` from `-print_final_stats=1`.
fn stat(log: &str, name: &str) -> Option<u64> {
    log.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// A field of libFuzzer's last status line (`#N DONE cov: 1234 ft: ... corp:
/// 56/7Kb ...`).
fn done_field(log: &str, name: &str) -> Option<u64> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.split_whitespace().nth(1) == Some("DONE"))?;
    let mut words = line.split_whitespace();
    words.find(|w| *w == name)?;
    words.next()?.split('/').next().and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
#2 INITED cov: 100 ft: 120 corp: 10/1000b exec/s: 0 rss: 40Mb
#80000\tDONE   cov: 812 ft: 2900 corp: 240/31Kb lim: 4096 exec/s: 4000 rss: 90Mb
Done 80000 runs in 21 second(s)
stat::number_of_executed_units: 80000
stat::average_exec_per_sec:     3809
";

    #[test]
    fn reads_final_stats() {
        assert_eq!(stat(LOG, "stat::number_of_executed_units:"), Some(80000));
        assert_eq!(done_field(LOG, "cov:"), Some(812));
        assert_eq!(done_field(LOG, "corp:"), Some(240));
        assert_eq!(stat("", "stat::number_of_executed_units:"), None);
    }
}
