//! `cargo xtask image`: the container image, `FROM scratch` around a static
//! (musl) `blocker`.
//!
//! These machines reach no container registry, so nothing can be pulled: no
//! base image, no builder image. A static binary needs no base at all, and
//! musl is the target Rust links fully statically without caveats (a static
//! glibc link warns that `getaddrinfo`, which the LLM client's HTTP
//! connections call, still needs the shared libraries of the glibc it was
//! linked with at run time, and a scratch image has none). The eBPF object is embedded
//! in the binary at build time (`BLOCKER_EBPF_OBJECT`, see
//! blocker-user/build.rs), so the image holds one file. A user with registry
//! access builds the same image from the same `Containerfile` the same way.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::{
    bootstrap, compile,
    util::{cmd_output, note, run},
};

/// The static target the image's binary is built for.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// The image's name; also tagged with the workspace version.
pub const IMAGE: &str = "localhost/blocker";

/// Debian packages for building and running the image.
pub const IMAGE_PACKAGES: &[(&str, &str)] = &[
    (
        "musl-tools",
        "`musl-gcc` compiles the C parts (SQLite, ring) of the static binary",
    ),
    (
        "podman",
        "builds the image offline (FROM scratch) and runs the sidecar test",
    ),
    (
        "runc",
        "podman's runtime here: crun refuses this machine's hybrid cgroup layout",
    ),
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container engine: podman, buildah or docker [default: the first of
    /// them that is installed; podman is installed when none is].
    #[arg(long, value_name = "ENGINE")]
    pub engine: Option<String>,
    /// Image name and tag [default: localhost/blocker:latest].
    #[arg(long, value_name = "NAME")]
    pub tag: Option<String>,
}

fn on_path(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The engine to build with, installing podman (and runc) when none is there.
fn engine(wanted: Option<&str>) -> anyhow::Result<String> {
    if let Some(e) = wanted {
        if !on_path(e) {
            bail!("container engine `{e}` is not installed (or `{e} --version` fails)");
        }
        return Ok(e.to_string());
    }
    if let Some(e) = ["podman", "buildah", "docker"]
        .into_iter()
        .find(|e| on_path(e))
    {
        return Ok(e.to_string());
    }
    note("no container engine found; installing podman and runc from Debian");
    bootstrap::packages(IMAGE_PACKAGES)?;
    Ok("podman".to_string())
}

fn ensure_musl_target() -> anyhow::Result<()> {
    let installed = cmd_output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if installed.lines().any(|l| l.trim() == MUSL_TARGET) {
        return Ok(());
    }
    note(&format!(
        "adding the {MUSL_TARGET} target: the image holds a static binary"
    ));
    run(Command::new("rustup").args(["target", "add", MUSL_TARGET]))
}

/// Builds the static release binary; returns its path.
pub fn static_binary() -> anyhow::Result<PathBuf> {
    bootstrap::packages(&IMAGE_PACKAGES[..1])?;
    ensure_musl_target()?;
    let obj = compile::ebpf()?;
    let mut cmd = compile::host_cargo(&obj);
    cmd.args(["build", "--release", "-p", "blocker", "--bin", "blocker"])
        .args(["--target", MUSL_TARGET])
        // cc-rs would look for x86_64-linux-musl-gcc; Debian names it musl-gcc.
        .env("CC_x86_64_unknown_linux_musl", "musl-gcc");
    run(&mut cmd).context("building the static blocker")?;
    let bin = compile::target_dir()
        .join(MUSL_TARGET)
        .join("release/blocker");
    anyhow::ensure!(bin.exists(), "static binary missing at {}", bin.display());
    Ok(bin)
}

/// Builds the image; returns its name:tag.
pub fn build(args: &Args) -> anyhow::Result<String> {
    let engine = engine(args.engine.as_deref())?;
    let bin = static_binary()?;
    let root = compile::root();
    // The Containerfile copies the binary from this path in the build
    // context (the workspace root; .containerignore keeps everything else
    // out of the context).
    let rel = bin
        .strip_prefix(&root)
        .with_context(|| {
            format!(
                "the binary {} must be inside the workspace (the build context); unset CARGO_TARGET_DIR",
                bin.display()
            )
        })?
        .to_path_buf();
    let tag = args
        .tag
        .clone()
        .unwrap_or_else(|| format!("{IMAGE}:latest"));
    let version = format!("{IMAGE}:{}", env!("CARGO_PKG_VERSION"));
    let mut cmd = Command::new(&engine);
    match engine.as_str() {
        "buildah" => cmd.arg("bud"),
        _ => cmd.arg("build"),
    };
    cmd.arg("-f")
        .arg(root.join("Containerfile"))
        .args(["-t", &tag, "-t", &version])
        .arg("--build-arg")
        .arg(format!("BLOCKER_BIN={}", rel.display()))
        .arg(&root);
    run(&mut cmd).with_context(|| format!("{engine} build"))?;
    note(&format!("built image {tag} ({version}) with {engine}"));
    Ok(tag)
}
