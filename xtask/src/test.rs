//! `cargo xtask test`: everything CI checks, in order of cost.

use std::{process::Command, time::Instant};

use anyhow::{Context as _, bail};

use crate::{
    bench, bootstrap, compile, crowdsec, fuzz, image,
    util::{is_root, note, run},
    vm,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only run integration tests whose name contains this.
    #[arg(long, value_name = "FILTER")]
    pub filter: Option<String>,
    /// Guest kernels to run the integration tests in after the host's
    /// (QEMU, see `cargo xtask vmtest --help`): comma-separated series
    /// (`6.1`, `6.12`), package names or .deb files. Default, and with no
    /// value: every series.
    #[arg(long, value_delimiter = ',', num_args = 0.., value_name = "KERNELS")]
    pub kernels: Option<Vec<String>>,
    /// Skip the guest kernels (quick local runs; CI runs them).
    #[arg(long, conflicts_with = "kernels")]
    pub no_vm: bool,
    #[command(flatten)]
    pub vm: vm::VmOptions,
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

    let kernels: Vec<String> = match &args.kernels {
        _ if args.no_vm => Vec::new(),
        Some(k) if !k.is_empty() => k.clone(),
        _ => vm::all_guest_kernels(),
    };
    let mut crowdsec_root = None;
    step("bootstrap", &mut || {
        bootstrap::packages(bootstrap::TEST_PACKAGES)?;
        bootstrap::packages(image::IMAGE_PACKAGES)?;
        // The bench smoke below runs xdp-filter, ipset and nft.
        bootstrap::packages(bootstrap::BENCH_PACKAGES)?;
        crowdsec_root = Some(crowdsec::ensure()?);
        if !kernels.is_empty() {
            bootstrap::packages(vm::VM_PACKAGES)?;
        }
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
            .args([
                "fmt",
                "--manifest-path",
                "tests/fuzz/Cargo.toml",
                "--",
                "--check",
            ]))
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
        // A workspace of its own (see tests/fuzz/Cargo.toml), with its own lock
        // file; checked on stable like the host crates.
        run(Command::new(bootstrap::cargo())
            .current_dir(compile::root())
            .args([
                "clippy",
                "--manifest-path",
                "tests/fuzz/Cargo.toml",
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
            "--",
            // Unit tests that need root are #[ignore = "needs root: ..."],
            // so a contributor's plain `cargo test` passes; here we are root.
            "--include-ignored",
        ]))
    })?;
    let mut image_tag = None;
    step("container image", &mut || {
        // The sidecar test (tests/tests/container.rs) runs this image.
        image_tag = Some(image::build(&image::Args {
            engine: Some("podman".into()),
            tag: None,
        })?);
        Ok(())
    })?;
    let image_tag = image_tag.expect("built above");
    let mut k8s_validate = None;
    step("kubernetes-validate", &mut || {
        k8s_validate = Some(bootstrap::kubernetes_validate()?);
        Ok(())
    })?;
    let k8s_validate = k8s_validate.expect("installed above");
    let mut bin = None;
    step("integration tests (privileged)", &mut || {
        let built = compile::all(false)?;
        let mut cmd = compile::host_cargo(&obj);
        cmd.args(["test", "-p", "blocker-tests", "--"])
            .env("BLOCKER_BIN", &built)
            .env("BLOCKER_IMAGE", &image_tag)
            .env("KUBERNETES_VALIDATE", &k8s_validate)
            .env("RUST_BACKTRACE", "1");
        if let Some(root) = &crowdsec_root {
            cmd.env(crowdsec::ROOT_ENV, root);
        }
        if let Some(f) = &args.filter {
            cmd.arg(f);
        }
        bin = Some(built);
        run(&mut cmd)
    })?;
    step("bench smoke (every part, tiny sizes)", &mut || {
        // Keeps `cargo xtask bench` from rotting: each part runs once at
        // tiny sizes in the debug build; no figure is asserted.
        bench::run_all(&bench::Args {
            repeat: None,
            rounds: 1,
            out: None,
            only: None,
            part: None,
            skip: Vec::new(),
            latency_ms: 5,
            smoke: true,
        })
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
    let bin = bin.expect("built above");
    if !kernels.is_empty() {
        step(
            &format!("guest kernels in QEMU ({})", kernels.join(", ")),
            &mut || vm::run_guests(&kernels, &obj, &bin, args.filter.as_deref(), &args.vm),
        )?;
    }

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
