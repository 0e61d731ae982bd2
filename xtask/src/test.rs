//! `cargo xtask test`: everything CI checks, in order of cost.

use std::{process::Command, time::Instant};

use anyhow::{Context as _, bail};

use crate::{
    bootstrap, compile, fuzz,
    util::{is_root, note, run},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only run integration tests whose name contains this.
    #[arg(long, value_name = "FILTER")]
    pub filter: Option<String>,
    /// Seconds each fuzz target runs (the fuzz step is bounded; run
    /// `cargo xtask fuzz` by hand for longer).
    #[arg(long, value_name = "SECONDS", default_value_t = fuzz::CI_SECONDS)]
    pub fuzz_seconds: u64,
}

pub fn run_all(args: &Args) -> anyhow::Result<()> {
    if !is_root() {
        bail!(
            "the test suite attaches XDP programs and builds network namespaces, so it needs root; run `sudo -E cargo xtask test`"
        );
    }
    let started = Instant::now();
    let mut steps: Vec<(String, f64)> = Vec::new();
    let mut step = |name: &str, f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<()> {
        note(&format!("== {name}"));
        let t = Instant::now();
        f().with_context(|| format!("step failed: {name}"))?;
        steps.push((name.to_string(), t.elapsed().as_secs_f64()));
        Ok(())
    };

    step("bootstrap", &mut || {
        bootstrap::packages(bootstrap::TEST_PACKAGES)?;
        bootstrap::toolchain().map(drop)
    })?;
    let mut obj = None;
    step("build eBPF", &mut || {
        obj = Some(compile::ebpf()?);
        Ok(())
    })?;
    let obj = obj.expect("built above");
    step("rustfmt --check", &mut || {
        run(Command::new(bootstrap::cargo())
            .current_dir(compile::root())
            .args(["fmt", "--all", "--", "--check"]))?;
        // The fuzz crate is a workspace of its own.
        run(Command::new(bootstrap::cargo())
            .current_dir(compile::root())
            .args(["fmt", "--manifest-path", "fuzz/Cargo.toml", "--", "--check"]))
    })?;
    step("clippy (host crates)", &mut || {
        run(compile::host_cargo(&obj).args([
            "clippy",
            "--workspace",
            "--exclude",
            "blocker-ebpf",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("clippy (eBPF crate)", &mut || {
        let linker = bootstrap::toolchain()?;
        let mut cmd = compile::nightly_cargo(&linker);
        cmd.arg("clippy");
        compile::ebpf_args(&mut cmd);
        cmd.args(["--", "-D", "warnings"]);
        run(&mut cmd)
    })?;
    step("clippy (fuzz crate)", &mut || {
        // A workspace of its own (see fuzz/Cargo.toml), with its own lock
        // file; checked on stable like the host crates.
        run(Command::new(bootstrap::cargo())
            .current_dir(compile::root())
            .args([
                "clippy",
                "--manifest-path",
                "fuzz/Cargo.toml",
                "--target-dir",
            ])
            .arg(compile::target_dir().join("fuzz/clippy"))
            .args(["--all-targets", "--", "-D", "warnings"]))
    })?;
    step("unit tests", &mut || {
        run(compile::host_cargo(&obj).args([
            "test",
            "--workspace",
            "--exclude",
            "blocker-ebpf",
            "--exclude",
            "blocker-tests",
        ]))
    })?;
    step("integration tests (privileged)", &mut || {
        let bin = compile::all(false)?;
        let mut cmd = compile::host_cargo(&obj);
        cmd.args(["test", "-p", "blocker-tests", "--"])
            .env("BLOCKER_BIN", &bin)
            .env("RUST_BACKTRACE", "1");
        if let Some(f) = &args.filter {
            cmd.arg(f);
        }
        run(&mut cmd)
    })?;
    step(
        &format!("fuzz ({}s per target)", args.fuzz_seconds),
        &mut || {
            fuzz::run_all(&fuzz::Args {
                seconds: args.fuzz_seconds,
                targets: Vec::new(),
            })
        },
    )?;

    note("summary:");
    for (name, secs) in &steps {
        note(&format!("  {secs:7.1}s  {name}"));
    }
    note(&format!(
        "all checks passed in {:.0}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}
