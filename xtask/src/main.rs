//! `cargo xtask`: build, bootstrap, run, test, demo and bench blocker.
//!
//! Every command first makes sure its prerequisites are installed (see
//! `bootstrap`), so a fresh machine needs nothing but rustup and this repo.

mod bench;
mod bootstrap;
mod compile;
mod crowdsec;
mod demo;
mod fuzz;
mod image;
mod report;
mod test;
mod util;
mod vm;

use std::{os::unix::process::CommandExt as _, process::Command};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, test and run blocker")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the build and test prerequisites (idempotent).
    Bootstrap,
    /// Build the eBPF object and the `blocker` binary.
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Build, then run `blocker` with the given arguments (as root, via
    /// `sudo -E` when needed).
    ///
    /// Example: cargo xtask run -- run --iface eth0
    Run {
        #[arg(long)]
        release: bool,
        /// Arguments for `blocker`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// fmt check, clippy -D warnings (host and eBPF), unit tests, the
    /// privileged integration tests, then the same tests in Debian's 6.1
    /// and 6.12 kernels under QEMU (`--no-vm` skips those). Needs root.
    Test(test::Args),
    /// The main job on a fresh machine: a lab of network namespaces where
    /// attackers (slow reader, window shrinker, zero-window SYN flooder)
    /// meet blocker and its offline council, narrated. Needs root.
    Demo,
    /// The privileged tests on other kernels: the host natively, Debian's
    /// 6.1 and 6.12 kernels in QEMU guests (kprobes, other struct layouts).
    /// Needs root.
    ///
    /// Example: cargo xtask vmtest --kernel 6.1 --filter xdp
    Vmtest(vm::Args),
    /// Fuzz the parsers of hostile input (eve.json, kmsg, verdicts, config,
    /// BTF, addresses) with cargo-fuzz, each for a bounded time; fails on
    /// any crash. `cargo xtask test` runs a short round of this.
    ///
    /// Example: cargo xtask fuzz --seconds 600 --target eve
    Fuzz(fuzz::Args),
    /// Build the container image (FROM scratch around a static musl
    /// `blocker`) with podman, buildah or docker; installs podman and runc
    /// when no engine is there.
    ///
    /// Example: cargo xtask image --tag localhost/blocker:dev
    Image(image::Args),
    /// Regenerate docs/ from the code: a man page per subcommand
    /// (docs/man), bash/zsh/fish completions (docs/completions) and the
    /// configuration reference (docs/config.md, from blocker.toml and the
    /// config parser). A unit test fails when the checked-in files differ.
    Docs,
    /// Benchmarks, each side by side with its peer in the same run (XDP
    /// per packet against xdp-filter, table size, bulk loads against ipset
    /// and nft, pipeline, debate, fleet); regenerates bench/REPORT.md and its
    /// plots. Parts run alone by name. All but `debate` need root.
    ///
    /// Example: cargo xtask bench bulk
    Bench(bench::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Bootstrap => {
            bootstrap::packages(bootstrap::TEST_PACKAGES)?;
            let linker = bootstrap::toolchain()?;
            let crowdsec = crowdsec::ensure()?;
            util::note(&format!(
                "ready (bpf-linker in {}, CrowdSec in {})",
                linker.display(),
                crowdsec.display()
            ));
            Ok(())
        }
        Cmd::Build { release } => compile::all(release).map(drop),
        Cmd::Run { release, args } => {
            let bin = compile::all(release)?;
            let mut cmd = if util::is_root() {
                Command::new(&bin)
            } else {
                util::note("blocker needs root for BPF; running it with sudo -E");
                let mut c = Command::new("sudo");
                c.arg("-E").arg(&bin);
                c
            };
            cmd.args(&args);
            Err(anyhow::anyhow!("exec {}: {}", bin.display(), cmd.exec()))
        }
        Cmd::Test(args) => test::run_all(&args),
        Cmd::Vmtest(args) => vm::run_matrix(&args),
        Cmd::Bench(args) => bench::run_all(&args),
        Cmd::Demo => demo::run_demo(),
        Cmd::Fuzz(args) => fuzz::run_all(&args),
        Cmd::Image(args) => image::build(&args).map(drop),
        Cmd::Docs => {
            let bin = compile::all(false)?;
            let docs = compile::root().join("docs");
            // Pages of removed subcommands must go: start from nothing.
            for sub in ["man", "completions"] {
                let _ = std::fs::remove_dir_all(docs.join(sub));
            }
            util::run(Command::new(&bin).arg("docs").arg(&docs))?;
            util::note(&format!("regenerated {}", docs.display()));
            Ok(())
        }
    }
}
